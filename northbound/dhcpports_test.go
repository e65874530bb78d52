package northbound_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/topology"
)

// dhcpPorts returns the network:dhcp ports of network netID as the API lists them.
func (a *api) dhcpPorts(token, netID string) []map[string]any {
	a.t.Helper()
	code, out := a.do(token, "GET", "/v2.0/ports?device_owner=network:dhcp&network_id="+netID, nil)
	if code != http.StatusOK {
		a.t.Fatalf("list DHCP ports: %d %v", code, out)
	}
	return list(out, "ports")
}

func addrs(p map[string]any) string {
	var out []string
	for _, f := range p["fixed_ips"].([]any) {
		out = append(out, f.(map[string]any)["ip_address"].(string))
	}
	return strings.Join(out, " ")
}

// TestDHCPPortAPI: the DHCP port as Neutron's agent would have made it, through the
// API: created with the first DHCP-enabled subnet, its addresses following subnet
// creates, enable_dhcp toggles and deletes, gone with the last one or with the network.
func TestDHCPPortAPI(t *testing.T) {
	a := newAPI(t)
	n := a.create("networks", "network", map[string]any{"name": "n", "tenant_id": "proj-a"})
	nid := n["id"].(string)
	if ps := a.dhcpPorts(adminToken, nid); len(ps) != 0 {
		t.Fatalf("DHCP ports before any subnet: %v", ps)
	}
	s1 := a.create("subnets", "subnet", map[string]any{"network_id": nid, "cidr": "10.0.1.0/24", "tenant_id": "proj-a"})
	if ps := a.dhcpPorts(tokenA, nid); len(ps) != 1 { // the network's project sees it
		t.Fatalf("DHCP ports after the first subnet: %v", ps)
	}
	ps := a.dhcpPorts(adminToken, nid) // binding:* are admin's to read
	d := ps[0]
	if d["device_id"] != topology.DHCPDeviceID(nid) || d["name"] != "" || d["binding:host_id"] != "" || d["binding:vif_type"] != "unbound" ||
		d["status"] != "ACTIVE" || d["admin_state_up"] != true || d["project_id"] != "proj-a" || len(d["security_groups"].([]any)) != 0 ||
		d["port_security_enabled"] != true || addrs(d) != "10.0.1.2" || len(d["extra_dhcp_opts"].([]any)) != 0 {
		t.Fatalf("DHCP port %v", d)
	}
	vm := a.create("ports", "port", map[string]any{"network_id": nid, "tenant_id": "proj-a"})
	if addrs(vm) != "10.0.1.3" {
		t.Fatalf("first port after the DHCP port got %s", addrs(vm))
	}
	s2 := a.create("subnets", "subnet", map[string]any{"network_id": nid, "cidr": "10.0.2.0/24", "tenant_id": "proj-a", "enable_dhcp": false})
	if ps := a.dhcpPorts(adminToken, nid); len(ps) != 1 || addrs(ps[0]) != "10.0.1.2" {
		t.Fatalf("DHCP ports after a subnet without DHCP: %v", ps)
	}
	a.admin(http.StatusOK, "PUT", "/v2.0/subnets/"+s2["id"].(string), map[string]any{"subnet": map[string]any{"enable_dhcp": true}})
	if ps := a.dhcpPorts(adminToken, nid); len(ps) != 1 || addrs(ps[0]) != "10.0.1.2 10.0.2.2" || ps[0]["id"] != d["id"] {
		t.Fatalf("DHCP ports after enable_dhcp on the second subnet: %v", ps)
	}
	a.admin(http.StatusOK, "PUT", "/v2.0/subnets/"+s1["id"].(string), map[string]any{"subnet": map[string]any{"enable_dhcp": "false"}})
	if ps := a.dhcpPorts(adminToken, nid); len(ps) != 1 || addrs(ps[0]) != "10.0.2.2" {
		t.Fatalf("DHCP ports after enable_dhcp off on the first subnet: %v", ps)
	}
	// The DHCP port's address does not keep its subnet in use; the port goes with it.
	a.admin(http.StatusNoContent, "DELETE", "/v2.0/subnets/"+s2["id"].(string), nil)
	if ps := a.dhcpPorts(adminToken, nid); len(ps) != 0 {
		t.Fatalf("DHCP ports after their last subnet went: %v", ps)
	}
	code, out := a.do(adminToken, "DELETE", "/v2.0/subnets/"+s1["id"].(string), nil)
	wantError(t, code, out, http.StatusConflict, "SubnetInUse") // the VM port's address does
	a.admin(http.StatusOK, "PUT", "/v2.0/subnets/"+s1["id"].(string), map[string]any{"subnet": map[string]any{"enable_dhcp": true}})
	if ps := a.dhcpPorts(adminToken, nid); len(ps) != 1 || addrs(ps[0]) != "10.0.1.2" {
		t.Fatalf("DHCP ports after enable_dhcp on again: %v", ps)
	}
	// A network with its DHCP port deletes once the VM port is gone.
	code, out = a.do(adminToken, "DELETE", "/v2.0/networks/"+nid, nil)
	wantError(t, code, out, http.StatusConflict, "NetworkInUse")
	a.admin(http.StatusNoContent, "DELETE", "/v2.0/ports/"+vm["id"].(string), nil)
	a.admin(http.StatusNoContent, "DELETE", "/v2.0/networks/"+nid, nil)
	if ps := list(a.admin(http.StatusOK, "GET", "/v2.0/ports?network_id="+nid, nil), "ports"); len(ps) != 0 {
		t.Fatalf("ports left after the network delete: %v", ps)
	}
}

// TestDHCPPortRefusedSubnetAPI: a refused subnet create, single or bulk, leaves no DHCP
// port and no revision behind; a bulk create gives each network its DHCP port.
func TestDHCPPortRefusedSubnetAPI(t *testing.T) {
	a := newAPI(t)
	n1 := a.create("networks", "network", map[string]any{"name": "n1"})["id"].(string)
	n2 := a.create("networks", "network", map[string]any{"name": "n2"})["id"].(string)
	a.create("subnets", "subnet", map[string]any{"network_id": n1, "cidr": "10.0.1.0/24"})
	rev := a.revision()
	for name, body := range map[string]map[string]any{
		"overlap": {"subnet": map[string]any{"network_id": n1, "cidr": "10.0.1.0/25"}},
		"pool":    {"subnet": map[string]any{"network_id": n2, "cidr": "10.0.2.0/24", "allocation_pools": []any{map[string]any{"start": "10.0.3.2", "end": "10.0.3.9"}}}},
		"bulk":    {"subnets": []any{map[string]any{"network_id": n2, "cidr": "10.0.2.0/24"}, map[string]any{"network_id": n1, "cidr": "10.0.1.128/25"}}},
	} {
		code, out := a.do(adminToken, "POST", "/v2.0/subnets", body)
		if code != http.StatusBadRequest {
			t.Fatalf("%s: %d %v, want 400", name, code, out)
		}
		if got := a.revision(); got != rev {
			t.Fatalf("%s: revision %d, want %d", name, got, rev)
		}
	}
	if ps := a.dhcpPorts(adminToken, n2); len(ps) != 0 {
		t.Fatalf("refused subnet creates left DHCP ports %v", ps)
	}
	if ps := a.dhcpPorts(adminToken, n1); len(ps) != 1 || addrs(ps[0]) != "10.0.1.2" {
		t.Fatalf("DHCP ports of n1 after the refusals: %v", ps)
	}
	out := a.admin(http.StatusCreated, "POST", "/v2.0/subnets", map[string]any{"subnets": []any{
		map[string]any{"network_id": n2, "cidr": "10.0.2.0/24"}, map[string]any{"network_id": n1, "cidr": "10.0.9.0/24"}}})
	if len(list(out, "subnets")) != 2 {
		t.Fatalf("bulk subnets %v", out)
	}
	if ps := a.dhcpPorts(adminToken, n2); len(ps) != 1 || addrs(ps[0]) != "10.0.2.2" {
		t.Fatalf("DHCP ports of n2 after the bulk create: %v", ps)
	}
	if ps := a.dhcpPorts(adminToken, n1); len(ps) != 1 || addrs(ps[0]) != "10.0.1.2 10.0.9.2" {
		t.Fatalf("DHCP ports of n1 after the bulk create: %v", ps)
	}
}

// TestDHCPPortDeletedAPI: deleting the DHCP port is allowed, as in Neutron, and a new one
// takes its place while the network has DHCP-enabled subnets, as the agent would make it.
func TestDHCPPortDeletedAPI(t *testing.T) {
	a := newAPI(t)
	n := a.create("networks", "network", map[string]any{"name": "n"})["id"].(string)
	a.create("subnets", "subnet", map[string]any{"network_id": n, "cidr": "10.0.1.0/24"})
	old := a.dhcpPorts(adminToken, n)[0]
	a.admin(http.StatusOK, "PUT", "/v2.0/ports/"+old["id"].(string), map[string]any{"port": map[string]any{"name": "mine now",
		"extra_dhcp_opts": []any{map[string]any{"opt_name": "mtu", "opt_value": "1400"}}}})
	a.admin(http.StatusNoContent, "DELETE", "/v2.0/ports/"+old["id"].(string), nil)
	ps := a.dhcpPorts(adminToken, n)
	if len(ps) != 1 || ps[0]["id"] == old["id"] || addrs(ps[0]) != "10.0.1.2" || ps[0]["name"] != "" {
		t.Fatalf("DHCP ports after deleting the old one: %v", ps)
	}
}
