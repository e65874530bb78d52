package northbound_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/topology"
)

// base creates a tenant network with a subnet and an external network with a subnet.
func base(a *api, cidr string) (netID, subnetID, extID, extSubnetID string) {
	n := a.create("networks", "network", map[string]any{"name": "n", "tenant_id": "proj-a"})
	sn := a.create("subnets", "subnet", map[string]any{"network_id": n["id"], "cidr": cidr, "ip_version": 4, "tenant_id": "proj-a"})
	ext := a.create("networks", "network", map[string]any{"name": "ext", "router:external": true,
		"provider:network_type": "flat", "provider:physical_network": "public"})
	esn := a.create("subnets", "subnet", map[string]any{"network_id": ext["id"], "cidr": "172.24.4.0/24", "ip_version": 4})
	return n["id"].(string), sn["id"].(string), ext["id"].(string), esn["id"].(string)
}

func TestCRUD(t *testing.T) {
	a := newAPI(t)
	netID, subnetID, extID, _ := base(a, "10.0.1.0/24")

	// networks
	n := a.admin(http.StatusOK, "PUT", "/v2.0/networks/"+netID, map[string]any{"network": map[string]any{"name": "renamed", "mtu": 1400}})["network"].(map[string]any)
	if n["name"] != "renamed" || n["mtu"] != float64(1400) || n["revision_number"] != float64(2) {
		t.Fatalf("updated network %v", n)
	}
	if got := a.admin(http.StatusOK, "GET", "/v2.0/networks/"+netID+"?fields=id&fields=subnets", nil)["network"].(map[string]any); len(got) != 2 || len(got["subnets"].([]any)) != 1 {
		t.Fatalf("fields= on show: %v", got)
	}
	// subnets
	sn := a.admin(http.StatusOK, "PUT", "/v2.0/subnets/"+subnetID, map[string]any{"subnet": map[string]any{
		"name": "s1", "dns_nameservers": []string{"8.8.8.8"}, "host_routes": []any{map[string]any{"destination": "10.9.0.0/16", "nexthop": "10.0.1.254"}},
		"allocation_pools": []any{map[string]any{"start": "10.0.1.10", "end": "10.0.1.100"}}}})["subnet"].(map[string]any)
	if sn["name"] != "s1" || len(sn["dns_nameservers"].([]any)) != 1 || sn["allocation_pools"].([]any)[0].(map[string]any)["start"] != "10.0.1.10" {
		t.Fatalf("updated subnet %v", sn)
	}
	// ports: the first automatic address is now the start of the new pool
	p := a.create("ports", "port", map[string]any{"network_id": netID, "name": "p1", "tenant_id": "proj-a"})
	if ip := p["fixed_ips"].([]any)[0].(map[string]any)["ip_address"]; ip != "10.0.1.10" {
		t.Fatalf("first address %v, want 10.0.1.10", ip)
	}
	pid := p["id"].(string)
	p = a.admin(http.StatusOK, "PUT", "/v2.0/ports/"+pid, map[string]any{"port": map[string]any{
		"name": "p1b", "binding:host_id": "compute1", "fixed_ips": []any{map[string]any{"subnet_id": subnetID, "ip_address": "10.0.1.50"}}}})["port"].(map[string]any)
	// compute1 is not registered: the binding failed, as Neutron says of a host without an agent.
	if p["name"] != "p1b" || p["binding:host_id"] != "compute1" || p["binding:vif_type"] != "binding_failed" || p["fixed_ips"].([]any)[0].(map[string]any)["ip_address"] != "10.0.1.50" {
		t.Fatalf("updated port %v", p)
	}
	a.admin(http.StatusCreated, "PUT", "/v2.0/dvr-hosts/compute1", map[string]any{"dvr_host": map[string]any{
		"tunnel_ip": "192.168.248.1", "mode": "dvr", "bridges": map[string]string{}}})
	for _, got := range []map[string]any{
		a.admin(http.StatusOK, "GET", "/v2.0/ports/"+pid, nil)["port"].(map[string]any),
		list(a.admin(http.StatusOK, "GET", "/v2.0/ports?binding:host_id=compute1", nil), "ports")[0],
	} {
		if got["binding:vif_type"] != "ovs" {
			t.Fatalf("port on the registered compute1: vif_type %v", got["binding:vif_type"])
		}
	}
	// the old address is free again
	p2 := a.create("ports", "port", map[string]any{"network_id": netID, "tenant_id": "proj-a"})
	if ip := p2["fixed_ips"].([]any)[0].(map[string]any)["ip_address"]; ip != "10.0.1.10" {
		t.Fatalf("reused address %v, want 10.0.1.10", ip)
	}
	if err := a.store.SetPortStatuses(context.Background(), map[string]topology.PortStatus{pid: "ACTIVE"}); err != nil {
		t.Fatal(err)
	}
	if st := a.admin(http.StatusOK, "GET", "/v2.0/ports/"+pid, nil)["port"].(map[string]any)["status"]; st != "ACTIVE" {
		t.Fatalf("status %v after SetPortStatuses", st)
	}
	// routers: create without gateway, set it, add/remove interface, clear it
	r := a.create("routers", "router", map[string]any{"name": "r", "tenant_id": "proj-a"})
	rid := r["id"].(string)
	if r["distributed"] != true || r["external_gateway_info"] != nil {
		t.Fatalf("router %v", r)
	}
	r = a.admin(http.StatusOK, "PUT", "/v2.0/routers/"+rid, map[string]any{"router": map[string]any{"external_gateway_info": map[string]any{"network_id": extID, "enable_snat": false}}})["router"].(map[string]any)
	if gw := r["external_gateway_info"].(map[string]any); gw["enable_snat"] != false || len(gw["external_fixed_ips"].([]any)) != 1 {
		t.Fatalf("gateway %v", r)
	}
	ri := a.admin(http.StatusOK, "PUT", "/v2.0/routers/"+rid+"/add_router_interface", map[string]any{"subnet_id": subnetID})
	if ri["subnet_id"] != subnetID || ri["id"] != rid || ri["port_id"] == "" {
		t.Fatalf("interface %v", ri)
	}
	owners := func() map[string]int {
		out := map[string]int{}
		for _, p := range list(a.admin(http.StatusOK, "GET", "/v2.0/ports?device_id="+rid, nil), "ports") {
			out[p["device_owner"].(string)]++
		}
		return out
	}
	if o := owners(); o["network:router_interface_distributed"] != 1 || o["network:router_centralized_snat"] != 1 || o["network:router_gateway"] != 1 {
		t.Fatalf("router ports %v", o)
	}
	a.admin(http.StatusOK, "PUT", "/v2.0/routers/"+rid, map[string]any{"router": map[string]any{"external_gateway_info": nil}})
	if o := owners(); o["network:router_centralized_snat"] != 0 || o["network:router_gateway"] != 0 || o["network:router_interface_distributed"] != 1 {
		t.Fatalf("router ports after clearing the gateway %v", o)
	}
	a.admin(http.StatusOK, "PUT", "/v2.0/routers/"+rid+"/remove_router_interface", map[string]any{"port_id": ri["port_id"]})
	if o := owners(); len(o) != 0 {
		t.Fatalf("router ports after removing the interface %v", o)
	}
	// floating IPs: create unassociated, show, update description, delete
	f := a.create("floatingips", "floatingip", map[string]any{"floating_network_id": extID, "tenant_id": "proj-a"})
	fid := f["id"].(string)
	if f["port_id"] != nil || f["status"] != "DOWN" || !strings.HasPrefix(f["floating_ip_address"].(string), "172.24.4.") {
		t.Fatalf("FIP %v", f)
	}
	f = a.admin(http.StatusOK, "PUT", "/v2.0/floatingips/"+fid, map[string]any{"floatingip": map[string]any{"description": "d"}})["floatingip"].(map[string]any)
	if f["description"] != "d" {
		t.Fatalf("FIP %v", f)
	}
	for _, del := range []string{"/v2.0/floatingips/" + fid, "/v2.0/routers/" + rid, "/v2.0/ports/" + pid, "/v2.0/ports/" + p2["id"].(string),
		"/v2.0/subnets/" + subnetID, "/v2.0/networks/" + netID} {
		a.admin(http.StatusNoContent, "DELETE", del, nil)
		code, out := a.do(adminToken, "GET", del, nil)
		if code != http.StatusNotFound {
			t.Fatalf("GET %s after delete: %d %v", del, code, out)
		}
	}
	// nothing of the tenant network is left; the external network keeps its DHCP port
	for _, coll := range []string{"ports", "routers", "floatingips"} {
		items := list(a.admin(http.StatusOK, "GET", "/v2.0/"+coll, nil), coll)
		if coll == "ports" && len(items) == 1 && items[0]["network_id"] == extID && items[0]["device_owner"] == "network:dhcp" {
			continue
		}
		if len(items) != 0 {
			t.Fatalf("%s left: %v", coll, items)
		}
	}
}

func TestListFiltersSortingPagination(t *testing.T) {
	a := newAPI(t)
	for _, name := range []string{"c", "a", "b", "a"} {
		a.create("networks", "network", map[string]any{"name": name})
	}
	names := func(out map[string]any) string {
		var s []string
		for _, n := range list(out, "networks") {
			s = append(s, n["name"].(string))
		}
		return strings.Join(s, ",")
	}
	if got := names(a.admin(http.StatusOK, "GET", "/v2.0/networks?sort_key=name&sort_dir=desc", nil)); got != "c,b,a,a" {
		t.Fatalf("sorted desc: %s", got)
	}
	if got := names(a.admin(http.StatusOK, "GET", "/v2.0/networks?name=a&name=c&sort_key=name", nil)); got != "a,a,c" {
		t.Fatalf("filter name=a|c: %s", got)
	}
	if got := names(a.admin(http.StatusOK, "GET", "/v2.0/networks?router:external=false&shared=False&name=b", nil)); got != "b" {
		t.Fatalf("filter by booleans: %s", got)
	}
	out := a.admin(http.StatusOK, "GET", "/v2.0/networks?sort_key=name&limit=3&fields=name&fields=id", nil)
	if got := names(out); got != "a,a,b" {
		t.Fatalf("page 1: %s", got)
	}
	if n := list(out, "networks")[0]; len(n) != 2 {
		t.Fatalf("fields=name,id gave %v", n)
	}
	next := pageLink(t, out, "networks", "next")
	out = a.admin(http.StatusOK, "GET", strings.TrimPrefix(next, a.url), nil)
	if got := names(out); got != "c" || hasPageLink(out, "networks", "next") {
		t.Fatalf("page 2: %s, links %v", got, out["networks_links"])
	}
	for _, q := range []string{"bogus=1", "sort_key=bogus", "sort_dir=up&sort_key=name"} {
		code, out := a.do(adminToken, "GET", "/v2.0/networks?"+q, nil)
		wantError(t, code, out, http.StatusBadRequest, "HTTPBadRequest")
	}
}

// TestErrors checks each error class's code and type, and that a rejected request
// changes nothing (the topology revision stays where it was).
func TestErrors(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	topo, err := seed.Create(ctx, seed.NewClient(a.url, adminToken), seed.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	net1, sub1 := topo.Net1.ID, topo.Subnet1.ID
	other := a.create("networks", "network", map[string]any{"name": "overlap"})
	overlap := a.create("subnets", "subnet", map[string]any{"network_id": other["id"], "cidr": "10.0.1.0/25", "ip_version": 4})
	vm1 := topo.VMs["VM1"].ID
	const missing = "00000000-0000-4000-8000-000000000000"
	for _, tc := range []struct {
		name, token, method, path string
		body                      any
		code                      int
		typ                       string
	}{
		{"no token", "", "GET", "/v2.0/networks", nil, 401, "NotAuthenticated"},
		{"wrong token", "nope", "GET", "/v2.0/networks", nil, 401, "NotAuthenticated"},
		{"project token on admin API", tokenA, "GET", "/v2.0/dvr-hosts", nil, 403, "PolicyNotAuthorized"},
		{"malformed JSON", adminToken, "POST", "/v2.0/networks", `{"network": {`, 400, "HTTPBadRequest"},
		{"no envelope", adminToken, "POST", "/v2.0/networks", map[string]any{"name": "x"}, 400, "HTTPBadRequest"},
		{"unknown attribute", adminToken, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"colour": "red"}}, 400, "HTTPBadRequest"},
		{"read-only attribute", adminToken, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"status": "DOWN"}}, 400, "HTTPBadRequest"},
		{"read-only on update", adminToken, "PUT", "/v2.0/ports/" + vm1, map[string]any{"port": map[string]any{"network_id": net1}}, 400, "HTTPBadRequest"},
		{"wrong type", adminToken, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"admin_state_up": "maybe"}}, 400, "HTTPBadRequest"},
		{"bad network type", adminToken, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:network_type": "gre"}}, 400, "InvalidInput"},
		{"bad CIDR", adminToken, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net1, "cidr": "10.0.300.0/24", "ip_version": 4}}, 400, "InvalidInput"},
		{"CIDR with host bits", adminToken, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net1, "cidr": "10.0.5.1/24", "ip_version": 4}}, 400, "InvalidInput"},
		{"IPv6 CIDR as ip_version 4", adminToken, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net1, "cidr": "fd00::/64", "ip_version": 4}}, 400, "InvalidInput"},
		{"IPv6 mode on IPv4", adminToken, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net1, "cidr": "10.0.77.0/24", "ip_version": 4, "ipv6_ra_mode": "slaac"}}, 400, "InvalidInput"},
		{"IPv6 mode update", adminToken, "PUT", "/v2.0/subnets/" + sub1, map[string]any{"subnet": map[string]any{"ipv6_address_mode": "slaac"}}, 400, "HTTPBadRequest"},
		{"overlapping subnet on a network", adminToken, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net1, "cidr": "10.0.1.128/25", "ip_version": 4}}, 400, "InvalidInput"},
		{"pool outside CIDR", adminToken, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net1, "cidr": "10.0.9.0/24", "ip_version": 4,
			"allocation_pools": []any{map[string]any{"start": "10.0.8.2", "end": "10.0.9.9"}}}}, 400, "OutOfBoundsAllocationPool"},
		{"gateway in pool", adminToken, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net1, "cidr": "10.0.9.0/24", "ip_version": 4,
			"gateway_ip": "10.0.9.5", "allocation_pools": []any{map[string]any{"start": "10.0.9.2", "end": "10.0.9.9"}}}}, 409, "GatewayConflictWithAllocationPools"},
		{"bad IP", adminToken, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net1, "fixed_ips": []any{map[string]any{"ip_address": "10.0.1.999"}}}}, 400, "InvalidInput"},
		{"IP outside subnet", adminToken, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net1, "fixed_ips": []any{map[string]any{"subnet_id": sub1, "ip_address": "10.0.2.9"}}}}, 400, "InvalidIpForSubnet"},
		{"bad MAC", adminToken, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net1, "mac_address": "fa:16:3e:zz:00:01"}}, 400, "InvalidInput"},
		{"MAC in use", adminToken, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net1, "mac_address": topo.VMs["VM1"].MACAddress}}, 409, "MacAddressInUse"},
		{"IP already allocated", adminToken, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net1, "fixed_ips": []any{map[string]any{"ip_address": "10.0.1.5"}}}}, 409, "IpAddressAlreadyAllocated"},
		{"gateway IP for a VM", adminToken, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net1, "fixed_ips": []any{map[string]any{"ip_address": "10.0.1.1"}}}}, 409, "IpAddressAlreadyAllocated"},
		{"reserved device owner", adminToken, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net1, "device_owner": "network:router_gateway"}}, 400, "InvalidInput"},
		{"unknown network", adminToken, "GET", "/v2.0/networks/" + missing, nil, 404, "NetworkNotFound"},
		{"unknown subnet", adminToken, "DELETE", "/v2.0/subnets/" + missing, nil, 404, "SubnetNotFound"},
		{"unknown port", adminToken, "PUT", "/v2.0/ports/" + missing, map[string]any{"port": map[string]any{"name": "x"}}, 404, "PortNotFound"},
		{"unknown router", adminToken, "GET", "/v2.0/routers/" + missing, nil, 404, "RouterNotFound"},
		{"unknown FIP", adminToken, "DELETE", "/v2.0/floatingips/" + missing, nil, 404, "FloatingIPNotFound"},
		{"port on unknown network", adminToken, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": missing}}, 404, "NetworkNotFound"},
		{"unknown path", adminToken, "GET", "/v2.0/widgets", nil, 404, "HTTPNotFound"},
		{"other project's port", tokenB, "GET", "/v2.0/ports/" + vm1, nil, 404, "PortNotFound"},
		{"network in use", adminToken, "DELETE", "/v2.0/networks/" + net1, nil, 409, "NetworkInUse"},
		{"subnet in use", adminToken, "DELETE", "/v2.0/subnets/" + sub1, nil, 409, "SubnetInUse"},
		{"router in use", adminToken, "DELETE", "/v2.0/routers/" + topo.Router.ID, nil, 409, "RouterInUse"},
		{"interface needed by FIP", adminToken, "PUT", "/v2.0/routers/" + topo.Router.ID + "/remove_router_interface", map[string]any{"subnet_id": sub1}, 409, "RouterInterfaceInUseByFloatingIP"},
		{"gateway needed by FIP", adminToken, "PUT", "/v2.0/routers/" + topo.Router.ID, map[string]any{"router": map[string]any{"external_gateway_info": nil}}, 409, "RouterExternalGatewayInUseByFloatingIp"},
		{"overlapping subnet on a router", adminToken, "PUT", "/v2.0/routers/" + topo.Router.ID + "/add_router_interface", map[string]any{"subnet_id": overlap["id"]}, 400, "BadRequest"},
		{"subnet already on router", adminToken, "PUT", "/v2.0/routers/" + topo.Router.ID + "/add_router_interface", map[string]any{"subnet_id": sub1}, 400, "BadRequest"},
		{"interface body with both", adminToken, "PUT", "/v2.0/routers/" + topo.Router.ID + "/add_router_interface", map[string]any{"subnet_id": sub1, "port_id": vm1}, 400, "BadRequest"},
		{"no such interface", adminToken, "PUT", "/v2.0/routers/" + topo.Router.ID + "/remove_router_interface", map[string]any{"subnet_id": overlap["id"]}, 404, "RouterInterfaceNotFoundForSubnet"},
		{"router port deleted directly", adminToken, "DELETE", "/v2.0/ports/" + topo.Interfaces[0].PortID, nil, 409, "L3PortInUse"},
		{"gateway to a non-external network", adminToken, "POST", "/v2.0/routers", map[string]any{"router": map[string]any{"external_gateway_info": map[string]any{"network_id": net1}}}, 400, "BadRequest"},
		{"FIP on a non-external network", adminToken, "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": net1}}, 400, "BadRequest"},
		{"FIP address taken", adminToken, "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": topo.External.ID, "floating_ip_address": "172.24.4.5"}}, 409, "IpAddressAlreadyAllocated"},
		{"FIP for a port without a router", adminToken, "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": topo.External.ID, "port_id": mustPortOn(a, other["id"].(string))}}, 404, "ExternalGatewayForFloatingIPNotFound"},
		{"second FIP for the same fixed IP", adminToken, "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": topo.External.ID, "port_id": vm1}}, 409, "FloatingIPPortAlreadyAssociated"},
		{"project creating for another project", tokenA, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": "proj-b"}}, 400, "HTTPBadRequest"},
		{"bad host mode", adminToken, "PUT", "/v2.0/dvr-hosts/h9", map[string]any{"dvr_host": map[string]any{"tunnel_ip": "192.168.248.9", "mode": "legacy"}}, 400, "InvalidInput"},
		{"bad tunnel IP", adminToken, "PUT", "/v2.0/dvr-hosts/h9", map[string]any{"dvr_host": map[string]any{"tunnel_ip": "192.168.248", "mode": "dvr"}}, 400, "InvalidInput"},
		{"bad datapath ID", adminToken, "PUT", "/v2.0/dvr-hosts/h9", map[string]any{"dvr_host": map[string]any{"tunnel_ip": "192.168.248.9", "mode": "dvr", "bridges": map[string]string{"br-int": "xyz"}}}, 400, "InvalidInput"},
		{"host with bound ports", adminToken, "DELETE", "/v2.0/dvr-hosts/compute1", nil, 409, "HostInUse"},
		{"unknown host", adminToken, "GET", "/v2.0/dvr-hosts/nowhere", nil, 404, "HostNotFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := a.revision()
			code, out := a.do(tc.token, tc.method, tc.path, tc.body)
			wantError(t, code, out, tc.code, tc.typ)
			if after := a.revision(); after != before {
				t.Fatalf("rejected request moved the revision %d -> %d", before, after)
			}
		})
	}
	// The seed is intact after all of that.
	checkSeed(t, a, topo)
}

// mustPortOn creates a port on network (a network without a router).
func mustPortOn(a *api, network string) string {
	return a.create("ports", "port", map[string]any{"network_id": network})["id"].(string)
}

// TestConcurrentPortCreates races 50 port creates on a /27: every address is given once,
// and the creates beyond the pool get a clean 409.
func TestConcurrentPortCreates(t *testing.T) {
	a := newAPI(t)
	n := a.create("networks", "network", map[string]any{"name": "small"})
	a.create("subnets", "subnet", map[string]any{"network_id": n["id"], "cidr": "10.5.0.0/27", "ip_version": 4})
	const creates = 50
	const pool = 28 // .3 - .30: the DHCP port has .2
	type result struct {
		code int
		out  map[string]any
	}
	results := make([]result, creates)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, out := a.do(adminToken, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": n["id"], "name": fmt.Sprint("p", i)}})
			results[i] = result{code, out}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	var ips []string
	var conflicts int
	for _, r := range results {
		switch r.code {
		case http.StatusCreated:
			ip := r.out["port"].(map[string]any)["fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)
			if seen[ip] {
				t.Fatalf("address %s given twice", ip)
			}
			seen[ip] = true
			ips = append(ips, ip)
		case http.StatusConflict:
			wantError(t, r.code, r.out, http.StatusConflict, "IpAddressGenerationFailure")
			conflicts++
		default:
			t.Fatalf("unexpected response %d %v", r.code, r.out)
		}
	}
	if len(ips) != pool || conflicts != creates-pool {
		t.Fatalf("%d created, %d conflicts; want %d and %d", len(ips), conflicts, pool, creates-pool)
	}
	sort.Strings(ips)
	if seen["10.5.0.1"] || seen["10.5.0.2"] || !seen["10.5.0.3"] || !seen["10.5.0.30"] {
		t.Fatalf("addresses %v: want .3-.30, without the gateway and the DHCP port's .2", ips)
	}
	// The rejected creates left no port behind.
	if got := len(list(a.admin(http.StatusOK, "GET", "/v2.0/ports", nil), "ports")); got != pool+1 {
		t.Fatalf("%d ports stored, want %d and the DHCP port", got, pool)
	}
}

// TestRestartPersistence stops the API and the store, opens them again on the same
// database, and checks that everything is there and allocation continues cleanly.
func TestRestartPersistence(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	topo, err := seed.Create(ctx, seed.NewClient(a.url, adminToken), seed.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	snapshot := func() map[string]any {
		out := map[string]any{}
		for _, coll := range []string{"networks", "subnets", "ports", "routers", "floatingips"} {
			out[coll] = a.admin(http.StatusOK, "GET", "/v2.0/"+coll+"?sort_key=id", nil)
		}
		out["macs"] = a.admin(http.StatusOK, "GET", "/v2.0/dvr-host-macs", nil)
		return out
	}
	before := snapshot()
	rev := a.revision()
	a.stop()
	a.start()
	if got := a.revision(); got != rev {
		t.Fatalf("revision %d after restart, want %d", got, rev)
	}
	after := snapshot()
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("topology changed across restart:\nbefore %v\nafter  %v", before, after)
	}
	checkSeed(t, a, topo)
	// Re-registering a host keeps its DVR MAC.
	h := a.admin(http.StatusOK, "PUT", "/v2.0/dvr-hosts/compute1", map[string]any{"dvr_host": map[string]any{"tunnel_ip": "192.168.248.1", "mode": "dvr"}})["dvr_host"].(map[string]any)
	if h["mac_address"] != topo.Hosts["compute1"].MACAddress {
		t.Fatalf("DVR MAC %v after restart, want %s", h["mac_address"], topo.Hosts["compute1"].MACAddress)
	}
	// Allocation continues without collision: new ports avoid the seed's addresses,
	// a new network gets a new VNI.
	used := map[string]bool{}
	for _, p := range list(a.admin(http.StatusOK, "GET", "/v2.0/ports", nil), "ports") {
		for _, f := range p["fixed_ips"].([]any) {
			used[f.(map[string]any)["ip_address"].(string)] = true
		}
	}
	for i := 0; i < 5; i++ {
		p := a.create("ports", "port", map[string]any{"network_id": topo.Net1.ID})
		ip := p["fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)
		if used[ip] {
			t.Fatalf("address %s allocated twice across restart", ip)
		}
		used[ip] = true
	}
	n3 := a.create("networks", "network", map[string]any{"name": "net3"})
	for _, n := range []string{topo.Net1.ID, topo.Net2.ID} {
		old := a.admin(http.StatusOK, "GET", "/v2.0/networks/"+n, nil)["network"].(map[string]any)
		if old["provider:segmentation_id"] == n3["provider:segmentation_id"] {
			t.Fatalf("VNI %v reused across restart", n3["provider:segmentation_id"])
		}
	}
}

func TestProjectScoping(t *testing.T) {
	a := newAPI(t)
	// Project A creates its own network; admin creates a shared and an external one.
	code, out := a.do(tokenA, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "a-net"}})
	if code != http.StatusCreated || out["network"].(map[string]any)["project_id"] != "proj-a" {
		t.Fatalf("project create: %d %v", code, out)
	}
	a.create("networks", "network", map[string]any{"name": "shared", "shared": true})
	a.create("networks", "network", map[string]any{"name": "ext", "router:external": true})
	a.create("networks", "network", map[string]any{"name": "private-admin"})
	names := func(token string) string {
		_, out := a.do(token, "GET", "/v2.0/networks?sort_key=name", nil)
		var s []string
		for _, n := range list(out, "networks") {
			s = append(s, n["name"].(string))
		}
		return strings.Join(s, ",")
	}
	if got := names(tokenA); got != "a-net,ext,shared" {
		t.Fatalf("project A sees %s", got)
	}
	if got := names(tokenB); got != "ext,shared" {
		t.Fatalf("project B sees %s", got)
	}
	if got := names(adminToken); got != "a-net,ext,private-admin,shared" {
		t.Fatalf("admin sees %s", got)
	}
	aNet := out["network"].(map[string]any)["id"].(string)
	code, out = a.do(tokenB, "DELETE", "/v2.0/networks/"+aNet, nil)
	wantError(t, code, out, http.StatusNotFound, "NetworkNotFound")
}

func TestHostsAndAgents(t *testing.T) {
	a := newAPI(t)
	body := map[string]any{"dvr_host": map[string]any{"tunnel_ip": "192.168.248.1", "mode": "dvr",
		"bridges": map[string]string{"br-int": "0x00001a2b3c4d5e6f", "br-tun": "2"}}}
	h := a.admin(http.StatusCreated, "PUT", "/v2.0/dvr-hosts/compute1", body)["dvr_host"].(map[string]any)
	mac := h["mac_address"].(string)
	if !strings.HasPrefix(mac, "fa:16:3f:") || h["bridges"].(map[string]any)["br-tun"] != "0000000000000002" || h["alive"] != true {
		t.Fatalf("host %v", h)
	}
	rev := a.revision()
	// Same registration again: 200, same MAC, a heartbeat only (no revision).
	h = a.admin(http.StatusOK, "PUT", "/v2.0/dvr-hosts/compute1", body)["dvr_host"].(map[string]any)
	if h["mac_address"] != mac || a.revision() != rev {
		t.Fatalf("re-registration changed MAC or revision: %v", h)
	}
	// A changed tunnel IP is a topology change, MAC kept.
	body["dvr_host"].(map[string]any)["tunnel_ip"] = "192.168.248.11"
	h = a.admin(http.StatusOK, "PUT", "/v2.0/dvr-hosts/compute1", body)["dvr_host"].(map[string]any)
	if h["mac_address"] != mac || h["tunnel_ip"] != "192.168.248.11" || a.revision() != rev+1 {
		t.Fatalf("update: %v (revision %d, want %d)", h, a.revision(), rev+1)
	}
	h = a.admin(http.StatusOK, "PUT", "/v2.0/dvr-hosts/compute1/applied", map[string]any{"revision": 7})["dvr_host"].(map[string]any)
	if h["applied_revision"] != float64(7) {
		t.Fatalf("applied: %v", h)
	}
	code, out := a.do(adminToken, "PUT", "/v2.0/dvr-hosts/compute1/applied", map[string]any{"rev": 7})
	wantError(t, code, out, http.StatusBadRequest, "HTTPBadRequest")
	ags := list(a.admin(http.StatusOK, "GET", "/v2.0/agents?agent_type=L3+agent", nil), "agents")
	if len(ags) != 1 || ags[0]["configurations"].(map[string]any)["agent_mode"] != "dvr" || ags[0]["host"] != "compute1" {
		t.Fatalf("L3 agents %v", ags)
	}
	ag := a.admin(http.StatusOK, "GET", "/v2.0/agents/"+ags[0]["id"].(string), nil)["agent"].(map[string]any)
	if ag["agent_type"] != "L3 agent" {
		t.Fatalf("agent %v", ag)
	}
	a.admin(http.StatusNoContent, "DELETE", "/v2.0/dvr-hosts/compute1", nil)
	if macs := list(a.admin(http.StatusOK, "GET", "/v2.0/dvr-host-macs", nil), "dvr_host_macs"); len(macs) != 0 {
		t.Fatalf("host MACs after delete: %v", macs)
	}
}
