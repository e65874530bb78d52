package northbound_test

import (
	"fmt"
	"net/http"
	"testing"
)

// TestFloatingIPPortOfAnotherProject: a floating IP of one project cannot be associated
// with a port of another, as Neutron's _internal_fip_assoc_data refuses it: the owner of
// the port's network finds the port (Neutron's port query hook) and is answered 400
// BadRequest (neutron-tempest-plugin's test_associate_floating_ip_with_port_from_another_
// project), anyone else 404 PortNotFound; an admin associates it.
func TestFloatingIPPortOfAnotherProject(t *testing.T) {
	a := newAPI(t)
	netA, subnetA, extID, _ := base(a, "10.0.1.0/24")
	router := a.create("routers", "router", map[string]any{"name": "r", "tenant_id": "proj-a",
		"external_gateway_info": map[string]any{"network_id": extID}})["id"].(string)
	a.admin(http.StatusOK, "PUT", "/v2.0/routers/"+router+"/add_router_interface", map[string]any{"subnet_id": subnetA})
	portC := a.create("ports", "port", map[string]any{"network_id": netA, "tenant_id": "proj-c"})["id"].(string)
	fip := func(token string) string {
		t.Helper()
		code, out := a.do(token, "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": extID}})
		if code != http.StatusCreated {
			t.Fatalf("floating IP: %d %v", code, out)
		}
		return out["floatingip"].(map[string]any)["id"].(string)
	}
	fipA, fipB := fip(tokenA), fip(tokenB)
	assoc := func(port string) map[string]any {
		return map[string]any{"floatingip": map[string]any{"port_id": port}}
	}
	create := func(port string) map[string]any {
		return map[string]any{"floatingip": map[string]any{"floating_network_id": extID, "port_id": port}}
	}
	const msg = "Bad floatingip request: Cannot process floating IP association with Port %s, since that port is owned by a different tenant."
	refuse(t, a, []refusal{
		{"associate", tokenA, "PUT", "/v2.0/floatingips/" + fipA, assoc(portC), 400, "BadRequest", fmt.Sprintf(msg, portC)},
		{"create associated", tokenA, "POST", "/v2.0/floatingips", create(portC), 400, "BadRequest", fmt.Sprintf(msg, portC)},
		{"associate, not the network's owner", tokenB, "PUT", "/v2.0/floatingips/" + fipB, assoc(portC), 404, "PortNotFound", ""},
		{"create associated, not the network's owner", tokenB, "POST", "/v2.0/floatingips", create(portC), 404, "PortNotFound", ""},
	})
	out := a.admin(http.StatusOK, "PUT", "/v2.0/floatingips/"+fipA, assoc(portC))
	if got := out["floatingip"].(map[string]any)["port_id"]; got != portC {
		t.Fatalf("admin's association: port_id %v, want %s", got, portC)
	}
}

// TestDeleteExternalNetworkWithFloatingIPs: deleting an external network deletes its
// unassociated floating IPs and subnets with it (tempest's test_delete_external_networks_
// with_floating_ip).
func TestDeleteExternalNetworkWithFloatingIPs(t *testing.T) {
	a := newAPI(t)
	ext := a.create("networks", "network", map[string]any{"name": "ext", "router:external": true})["id"].(string)
	subnet := a.create("subnets", "subnet", map[string]any{"network_id": ext, "cidr": "172.24.5.0/24", "ip_version": 4, "enable_dhcp": false})["id"].(string)
	fip := a.create("floatingips", "floatingip", map[string]any{"floating_network_id": ext})["id"].(string)
	a.admin(http.StatusNoContent, "DELETE", "/v2.0/networks/"+ext, nil)
	code, out := a.do(adminToken, "GET", "/v2.0/floatingips/"+fip, nil)
	wantError(t, code, out, http.StatusNotFound, "FloatingIPNotFound")
	code, out = a.do(adminToken, "GET", "/v2.0/subnets/"+subnet, nil)
	wantError(t, code, out, http.StatusNotFound, "SubnetNotFound")
}
