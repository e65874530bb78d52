package northbound_test

import (
	"net/http"
	"testing"
)

// TestNetworkMTUAPI: with global_physnet_mtu 1500, VXLAN networks get 1450 and flat ones
// 1500; a larger mtu is refused as Neutron refuses it, a negative one as its validator
// does, a tiny one once the network has a subnet; refusals change nothing.
func TestNetworkMTUAPI(t *testing.T) {
	a := newAPI(t)
	vx := a.create("networks", "network", map[string]any{"name": "vx"})
	flat := a.create("networks", "network", map[string]any{"name": "flat", "provider:network_type": "flat", "provider:physical_network": "public"})
	if vx["mtu"] != float64(1450) || flat["mtu"] != float64(1500) {
		t.Fatalf("MTUs: vxlan %v, flat %v; want 1450 and 1500", vx["mtu"], flat["mtu"])
	}
	if n := a.create("networks", "network", map[string]any{"mtu": "1400"}); n["mtu"] != float64(1400) {
		t.Fatalf("mtu 1400 asked, %v given", n["mtu"])
	}
	vid := vx["id"].(string)
	a.create("subnets", "subnet", map[string]any{"network_id": vid, "cidr": "10.0.1.0/24"})
	rev := a.revision()
	for _, c := range []struct {
		name, method, path string
		body               map[string]any
		code               int
		typ, msg           string
	}{
		{"create above", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"mtu": 1451}}, http.StatusBadRequest, "InvalidInput",
			"Invalid input for operation: Requested MTU is too big, maximum is 1450."},
		{"tempest's max_mtu + 1", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"mtu": 1501}}, http.StatusBadRequest, "InvalidInput",
			"Invalid input for operation: Requested MTU is too big, maximum is 1450."},
		{"flat above", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:network_type": "flat",
			"provider:physical_network": "other", "mtu": 1501}}, http.StatusBadRequest, "InvalidInput",
			"Invalid input for operation: Requested MTU is too big, maximum is 1500."},
		{"update above", "PUT", "/v2.0/networks/" + vid, map[string]any{"network": map[string]any{"mtu": 9000}}, http.StatusBadRequest, "InvalidInput",
			"Invalid input for operation: Requested MTU is too big, maximum is 1450."},
		{"negative", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"mtu": -1}}, http.StatusBadRequest, "HTTPBadRequest",
			"Invalid input for mtu. Reason: '-1' should be non-negative."},
		{"below 68 with a subnet", "PUT", "/v2.0/networks/" + vid, map[string]any{"network": map[string]any{"mtu": 60}}, http.StatusConflict,
			"NetworkMTUSubnetConflict", "MTU of " + vid + " is not valid, subnet requires a minimum of 68"},
	} {
		code, out := a.do(adminToken, c.method, c.path, c.body)
		wantError(t, code, out, c.code, c.typ)
		if msg := out["NeutronError"].(map[string]any)["message"]; msg != c.msg {
			t.Errorf("%s: message %q, want %q", c.name, msg, c.msg)
		}
		if got := a.revision(); got != rev {
			t.Fatalf("%s: revision %d, want %d", c.name, got, rev)
		}
	}
	n := a.admin(http.StatusOK, "PUT", "/v2.0/networks/"+vid, map[string]any{"network": map[string]any{"mtu": 0}})["network"].(map[string]any)
	if n["mtu"] != float64(1450) {
		t.Fatalf("mtu 0 on update gives %v, want the maximum 1450", n["mtu"])
	}
}
