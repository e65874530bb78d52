package northbound_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestRefusals: what an operator fed the API on the demo bed that it accepted, and must
// refuse as Neutron does, changing nothing (the revision stays).
func TestRefusals(t *testing.T) {
	a := newAPI(t)
	netID, subnetID, extID, extSubnetID := base(a, "10.0.1.0/24")
	r := a.create("routers", "router", map[string]any{"name": "r", "tenant_id": "proj-a",
		"external_gateway_info": map[string]any{"network_id": extID}})
	rid := r["id"].(string)
	rev := a.revision()
	same := func(what string) {
		t.Helper()
		if got := a.revision(); got != rev {
			t.Errorf("%s changed the topology: revision %d -> %d", what, rev, got)
		}
	}
	cases := []struct {
		name, method, path string
		body               any
		code               int
		typ                string
	}{
		{"interface on the router's own gateway subnet", "PUT", "/v2.0/routers/" + rid + "/add_router_interface",
			map[string]any{"subnet_id": extSubnetID}, http.StatusBadRequest, "BadRequest"},
		{"all-zero MAC", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": netID,
			"mac_address": "00:00:00:00:00:00"}}, http.StatusBadRequest, "InvalidInput"},
		{"broadcast MAC", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": netID,
			"mac_address": "ff:ff:ff:ff:ff:ff"}}, http.StatusBadRequest, "InvalidInput"},
		{"multicast MAC", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": netID,
			"mac_address": "01:00:5e:00:00:01"}}, http.StatusBadRequest, "InvalidInput"},
		{"NUL in a name", "POST", "/v2.0/networks", `{"network": {"name": "a\u0000b"}}`, http.StatusBadRequest, "InvalidInput"},
		{"NUL in a key", "POST", "/v2.0/networks", `{"network": {"na\u0000me": "x"}}`, http.StatusBadRequest, "InvalidInput"},
		{"invalid UTF-8", "POST", "/v2.0/networks", "{\"network\": {\"name\": \"a\xffb\"}}", http.StatusBadRequest, "HTTPBadRequest"},
		{"unknown sort_key", "GET", "/v2.0/networks?sort_key=bogus", nil, http.StatusBadRequest, "HTTPBadRequest"},
		{"10 MB body", "POST", "/v2.0/networks", strings.Repeat(" ", 10<<20), http.StatusRequestEntityTooLarge, "HTTPRequestEntityTooLarge"},
		{"over the bulk limit", "POST", "/v2.0/ports", strings.Repeat(" ", 33<<20), http.StatusRequestEntityTooLarge, "HTTPRequestEntityTooLarge"},
		{"PATCH on a collection", "PATCH", "/v2.0/networks", nil, http.StatusMethodNotAllowed, "HTTPMethodNotAllowed"},
		{"DELETE on a collection", "DELETE", "/v2.0/ports", nil, http.StatusMethodNotAllowed, "HTTPMethodNotAllowed"},
		{"POST on an item", "POST", "/v2.0/networks/" + netID, map[string]any{"network": map[string]any{}}, http.StatusMethodNotAllowed, "HTTPMethodNotAllowed"},
		{"another host's tunnel IP", "PUT", "/v2.0/dvr-hosts/compute9", map[string]any{"dvr_host": map[string]any{
			"tunnel_ip": "192.168.248.1", "mode": "dvr", "bridges": map[string]string{}}}, http.StatusConflict, "TunnelIPInUse"},
	}
	a.admin(http.StatusCreated, "PUT", "/v2.0/dvr-hosts/compute1", map[string]any{"dvr_host": map[string]any{
		"tunnel_ip": "192.168.248.1", "mode": "dvr", "bridges": map[string]string{}}})
	rev = a.revision()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := a.do(adminToken, c.method, c.path, c.body)
			wantError(t, code, out, c.code, c.typ)
			same(c.name)
		})
	}
	// 405 names the methods the path has.
	req, _ := http.NewRequest("PATCH", a.url+"/v2.0/networks/"+netID, nil)
	req.Header.Set("X-Auth-Token", adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if allow := resp.Header.Get("Allow"); resp.StatusCode != http.StatusMethodNotAllowed || allow != "DELETE, GET, PUT" {
		t.Errorf("PATCH on a network: %d, Allow %q; want 405 with DELETE, GET, PUT", resp.StatusCode, allow)
	}
	// An unknown path is still 404.
	code, out := a.do(adminToken, "GET", "/v2.0/nothing-here", nil)
	wantError(t, code, out, http.StatusNotFound, "HTTPNotFound")

	// add/remove interface advance the router's revision_number.
	before := a.admin(http.StatusOK, "GET", "/v2.0/routers/"+rid, nil)["router"].(map[string]any)["revision_number"].(float64)
	a.admin(http.StatusOK, "PUT", "/v2.0/routers/"+rid+"/add_router_interface", map[string]any{"subnet_id": subnetID})
	added := a.admin(http.StatusOK, "GET", "/v2.0/routers/"+rid, nil)["router"].(map[string]any)["revision_number"].(float64)
	a.admin(http.StatusOK, "PUT", "/v2.0/routers/"+rid+"/remove_router_interface", map[string]any{"subnet_id": subnetID})
	removed := a.admin(http.StatusOK, "GET", "/v2.0/routers/"+rid, nil)["router"].(map[string]any)["revision_number"].(float64)
	if !(added > before && removed > added) {
		t.Errorf("router revision_number %v -> %v (add) -> %v (remove): want it to advance each time", before, added, removed)
	}
}
