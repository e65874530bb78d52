package northbound_test

import (
	"net/http"
	"strings"
	"testing"
)

// Deviations from Neutron that tempest's and neutron-tempest-plugin's API tests found
// (issue 14), each checked as those tests check it.

// TestFloatingIPBlankUpdate: an update with an empty body disassociates the floating IP
// (test_blank_update_clears_association), one with a description only keeps the
// association (test_floatingip_update_extra_attributes_port_id_not_changed), and
// fixed_ip_address without port_id is 400, as in Neutron.
func TestFloatingIPBlankUpdate(t *testing.T) {
	a := newAPI(t)
	netID, subnetID, extID, _ := base(a, "10.0.1.0/24")
	r := a.create("routers", "router", map[string]any{"tenant_id": "proj-a", "external_gateway_info": map[string]any{"network_id": extID}})
	a.admin(http.StatusOK, "PUT", "/v2.0/routers/"+r["id"].(string)+"/add_router_interface", map[string]any{"subnet_id": subnetID})
	p := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": netID}})["port"].(map[string]any)
	f := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{
		"floating_network_id": extID, "port_id": p["id"]}})["floatingip"].(map[string]any)
	path := "/v2.0/floatingips/" + f["id"].(string)

	kept := a.as(tokenA, http.StatusOK, "PUT", path, map[string]any{"floatingip": map[string]any{"description": "d2"}})["floatingip"].(map[string]any)
	if kept["port_id"] != p["id"] || kept["fixed_ip_address"] == nil || kept["description"] != "d2" {
		t.Fatalf("description update changed the association: %v", kept)
	}
	rev := a.revision()
	code, out := a.do(tokenA, "PUT", path, map[string]any{"floatingip": map[string]any{"fixed_ip_address": "10.0.1.9"}})
	wantError(t, code, out, http.StatusBadRequest, "BadRequest")
	if msg := out["NeutronError"].(map[string]any)["message"]; msg != "Bad floatingip request: fixed_ip_address cannot be specified without a port_id." {
		t.Errorf("fixed_ip_address without port_id: %q", msg)
	}
	if got := a.revision(); got != rev {
		t.Fatalf("refused update changed the revision: %d -> %d", rev, got)
	}
	blank := a.as(tokenA, http.StatusOK, "PUT", path, map[string]any{"floatingip": map[string]any{}})["floatingip"].(map[string]any)
	if blank["port_id"] != nil || blank["fixed_ip_address"] != nil || blank["router_id"] != nil || blank["description"] != "d2" {
		t.Fatalf("blank update: %v; want no association, description kept", blank)
	}
	if shown := a.as(tokenA, http.StatusOK, "GET", path, nil)["floatingip"].(map[string]any); shown["port_id"] != nil {
		t.Fatalf("after a blank update the floating IP shows port %v", shown["port_id"])
	}
}

// TestStringLengths: a name or description longer than Neutron's 255 characters is 400
// on create and update of every resource that has one; 255 characters, multi-byte ones
// included, are taken.
func TestStringLengths(t *testing.T) {
	a := newAPI(t)
	netID, subnetID, extID, _ := base(a, "10.0.1.0/24")
	port := a.create("ports", "port", map[string]any{"network_id": netID, "tenant_id": "proj-a"})
	router := a.create("routers", "router", map[string]any{"tenant_id": "proj-a"})
	fip := a.create("floatingips", "floatingip", map[string]any{"floating_network_id": extID, "tenant_id": "proj-a"})
	sg := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": "g"}})["security_group"].(map[string]any)
	long := strings.Repeat("d", 256)
	fits := strings.Repeat("é", 255) // 510 bytes, 255 characters
	for _, r := range []struct {
		coll, kind string
		create     map[string]any // a good create body
		id         string         // an existing one to update ("" for no update)
		attrs      []string
	}{
		{"networks", "network", map[string]any{}, netID, []string{"name", "description"}},
		{"subnets", "subnet", map[string]any{"network_id": netID, "cidr": "10.0.9.0/24", "ip_version": 4}, subnetID, []string{"name", "description"}},
		{"ports", "port", map[string]any{"network_id": netID}, port["id"].(string), []string{"name", "description"}},
		{"routers", "router", map[string]any{}, router["id"].(string), []string{"name", "description"}},
		{"floatingips", "floatingip", map[string]any{"floating_network_id": extID}, fip["id"].(string), []string{"description"}},
		{"security-groups", "security_group", map[string]any{"name": "x"}, sg["id"].(string), []string{"name", "description"}},
		{"security-group-rules", "security_group_rule", map[string]any{"security_group_id": sg["id"], "direction": "ingress"}, "", []string{"description"}},
	} {
		for _, attr := range r.attrs {
			rev := a.revision()
			body := map[string]any{}
			for k, v := range r.create {
				body[k] = v
			}
			body[attr] = long
			code, out := a.do(adminToken, "POST", "/v2.0/"+r.coll, map[string]any{r.kind: body})
			wantError(t, code, out, http.StatusBadRequest, "HTTPBadRequest")
			want := "Invalid input for " + attr + ". Reason: '" + long + "' exceeds maximum length of 255."
			if msg := out["NeutronError"].(map[string]any)["message"]; msg != want {
				t.Errorf("%s create %s: message %q", r.kind, attr, msg)
			}
			if r.id != "" {
				code, out = a.do(adminToken, "PUT", "/v2.0/"+r.coll+"/"+r.id, map[string]any{r.kind: map[string]any{attr: long}})
				wantError(t, code, out, http.StatusBadRequest, "HTTPBadRequest")
			}
			if got := a.revision(); got != rev {
				t.Fatalf("%s %s: refusals changed the revision %d -> %d", r.kind, attr, rev, got)
			}
			if r.id != "" {
				got := a.admin(http.StatusOK, "PUT", "/v2.0/"+r.coll+"/"+r.id, map[string]any{r.kind: map[string]any{attr: fits}})[r.kind].(map[string]any)
				if got[attr] != fits {
					t.Errorf("%s %s of 255 characters not taken: %v", r.kind, attr, got[attr])
				}
			}
		}
	}
}

// TestUUIDAttributes: an attribute whose Neutron validator is type:uuid (network_id,
// subnet_id, port_id, security_groups, a gateway's network_id) given something else is
// 400, not the 404 of a missing resource; a router interface's port_id or subnet_id is
// Neutron's BadRequest. Refusals change nothing.
func TestUUIDAttributes(t *testing.T) {
	a := newAPI(t)
	netID, subnetID, extID, _ := base(a, "10.0.1.0/24")
	router := a.create("routers", "router", map[string]any{"tenant_id": "proj-a"})
	fip := a.create("floatingips", "floatingip", map[string]any{"floating_network_id": extID, "tenant_id": "proj-a"})
	rpath := "/v2.0/routers/" + router["id"].(string)
	rev := a.revision()
	for _, c := range []struct {
		name, method, path string
		body               map[string]any
		typ, msg           string
	}{
		{"port network_id", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": "abc"}},
			"HTTPBadRequest", "Invalid input for network_id. Reason: 'abc' is not a valid UUID."},
		{"subnet network_id", "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": "abc", "cidr": "10.9.0.0/24", "ip_version": 4}},
			"HTTPBadRequest", "Invalid input for network_id. Reason: 'abc' is not a valid UUID."},
		{"port fixed_ips subnet_id", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": netID,
			"fixed_ips": []any{map[string]any{"subnet_id": "abc"}}}}, "HTTPBadRequest", "Invalid input for fixed_ips. Reason: 'abc' is not a valid UUID."},
		{"port security_groups", "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": netID, "security_groups": []string{"nope"}}},
			"HTTPBadRequest", "Invalid input for security_groups. Reason: 'nope' is not a valid UUID."},
		{"floating IP network", "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": "abc"}},
			"HTTPBadRequest", "Invalid input for floating_network_id. Reason: 'abc' is not a valid UUID."},
		{"floating IP create port_id", "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": extID, "port_id": "abc"}},
			"HTTPBadRequest", "Invalid input for port_id. Reason: 'abc' is not a valid UUID."},
		{"floating IP create subnet_id", "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{"floating_network_id": extID, "subnet_id": "abc"}},
			"HTTPBadRequest", "Invalid input for subnet_id. Reason: 'abc' is not a valid UUID."},
		{"floating IP update port_id", "PUT", "/v2.0/floatingips/" + fip["id"].(string), map[string]any{"floatingip": map[string]any{"port_id": "abc"}},
			"HTTPBadRequest", "Invalid input for port_id. Reason: 'abc' is not a valid UUID."},
		{"gateway network_id", "PUT", rpath, map[string]any{"router": map[string]any{"external_gateway_info": map[string]any{"network_id": "abc"}}},
			"HTTPBadRequest", "Invalid input for external_gateway_info. Reason: 'abc' is not a valid UUID."},
		{"interface port_id", "PUT", rpath + "/add_router_interface", map[string]any{"port_id": "abc"},
			"BadRequest", "Bad router request: 'abc' is not a valid UUID."},
		{"interface subnet_id", "PUT", rpath + "/add_router_interface", map[string]any{"subnet_id": "abc"},
			"BadRequest", "Bad router request: 'abc' is not a valid UUID."},
		{"interface removal", "PUT", rpath + "/remove_router_interface", map[string]any{"port_id": "abc"},
			"BadRequest", "Bad router request: 'abc' is not a valid UUID."},
	} {
		code, out := a.do(tokenA, c.method, c.path, c.body)
		wantError(t, code, out, http.StatusBadRequest, c.typ)
		if msg := out["NeutronError"].(map[string]any)["message"]; msg != c.msg {
			t.Errorf("%s: message %q, want %q", c.name, msg, c.msg)
		}
	}
	if got := a.revision(); got != rev {
		t.Fatalf("refusals changed the revision %d -> %d", rev, got)
	}
	// A UUID in another spelling is a UUID: a missing subnet stays 404.
	code, out := a.do(tokenA, "PUT", rpath+"/add_router_interface", map[string]any{"subnet_id": strings.ToUpper(strings.ReplaceAll(subnetID, "-", ""))})
	wantError(t, code, out, http.StatusNotFound, "SubnetNotFound")
}

// TestAgentsForProjects: Neutron's agent policies are admin only, and a project's list
// of agents is empty (200), its show of one 404, not 403.
func TestAgentsForProjects(t *testing.T) {
	a := newAPI(t)
	a.admin(http.StatusCreated, "PUT", "/v2.0/dvr-hosts/compute1", map[string]any{"dvr_host": map[string]any{"tunnel_ip": "192.168.248.1", "mode": "dvr"}})
	ags := list(a.admin(http.StatusOK, "GET", "/v2.0/agents", nil), "agents")
	if len(ags) != 2 {
		t.Fatalf("admin sees agents %v", ags)
	}
	if got := list(a.as(tokenA, http.StatusOK, "GET", "/v2.0/agents", nil), "agents"); len(got) != 0 {
		t.Fatalf("a project sees agents %v", got)
	}
	code, out := a.do(tokenA, "GET", "/v2.0/agents/"+ags[0]["id"].(string), nil)
	wantError(t, code, out, http.StatusNotFound, "AgentNotFound")
}

// TestSubnetVisibility: a project sees its subnets and those of shared networks, not
// those of another project's external network (which it sees itself); an admin sees
// every subnet.
func TestSubnetVisibility(t *testing.T) {
	a := newAPI(t)
	_, subnetID, extID, extSubnetID := base(a, "10.0.1.0/24")
	shared := a.create("networks", "network", map[string]any{"shared": true})
	sharedSubnet := a.create("subnets", "subnet", map[string]any{"network_id": shared["id"], "cidr": "10.5.0.0/24", "ip_version": 4})
	ids := func(token string) map[string]bool {
		out := map[string]bool{}
		for _, s := range list(a.as(token, http.StatusOK, "GET", "/v2.0/subnets", nil), "subnets") {
			out[s["id"].(string)] = true
		}
		return out
	}
	if got := ids(tokenA); len(got) != 2 || !got[subnetID] || !got[sharedSubnet["id"].(string)] {
		t.Fatalf("project A sees subnets %v; want its own %s and the shared %s", got, subnetID, sharedSubnet["id"])
	}
	if got := ids(adminToken); len(got) != 3 {
		t.Fatalf("admin sees subnets %v", got)
	}
	code, out := a.do(tokenA, "GET", "/v2.0/subnets/"+extSubnetID, nil)
	wantError(t, code, out, http.StatusNotFound, "SubnetNotFound")
	a.as(tokenA, http.StatusOK, "GET", "/v2.0/networks/"+extID, nil)
	nets := list(a.as(tokenB, http.StatusOK, "GET", "/v2.0/networks", nil), "networks")
	if len(nets) != 2 { // the external and the shared one
		t.Fatalf("project B sees networks %v", nets)
	}
	if ports := list(a.as(tokenB, http.StatusOK, "GET", "/v2.0/ports", nil), "ports"); len(ports) != 0 {
		t.Fatalf("project B sees ports %v", ports)
	}
}

// TestRouterInterfacePortFixedIPs: as tempest's test_router_interface_port_update_with_fixed_ip,
// a project updates its router interface port's fixed_ips to [{"subnet_id"}] (the address
// stays) and may move it within the subnet; a port's subnet-only entry keeps its address
// as in Neutron.
func TestRouterInterfacePortFixedIPs(t *testing.T) {
	a := newAPI(t)
	netID, subnetID, _, _ := base(a, "10.0.1.0/24")
	r := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/routers", map[string]any{"router": map[string]any{"name": "r"}})["router"].(map[string]any)
	ri := a.as(tokenA, http.StatusOK, "PUT", "/v2.0/routers/"+r["id"].(string)+"/add_router_interface", map[string]any{"subnet_id": subnetID})
	path := "/v2.0/ports/" + ri["port_id"].(string)
	fixed := func(p map[string]any) string {
		ips := p["port"].(map[string]any)["fixed_ips"].([]any)
		if len(ips) != 1 || ips[0].(map[string]any)["subnet_id"] != subnetID {
			t.Fatalf("fixed_ips %v, want one on %s", ips, subnetID)
		}
		return ips[0].(map[string]any)["ip_address"].(string)
	}
	if ip := fixed(a.as(tokenA, http.StatusOK, "PUT", path, map[string]any{"port": map[string]any{
		"fixed_ips": []any{map[string]any{"subnet_id": subnetID}}}})); ip != "10.0.1.1" {
		t.Fatalf("subnet-only update gave the interface %s, want 10.0.1.1 kept", ip)
	}
	if ip := fixed(a.as(tokenA, http.StatusOK, "PUT", path, map[string]any{"port": map[string]any{
		"fixed_ips": []any{map[string]any{"subnet_id": subnetID, "ip_address": "10.0.1.40"}}}})); ip != "10.0.1.40" {
		t.Fatalf("interface moved to %s, want 10.0.1.40", ip)
	}
	vm := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": netID}})
	ip := fixed(vm)
	if got := fixed(a.as(tokenA, http.StatusOK, "PUT", "/v2.0/ports/"+vm["port"].(map[string]any)["id"].(string), map[string]any{"port": map[string]any{
		"fixed_ips": []any{map[string]any{"subnet_id": subnetID}}}})); got != ip {
		t.Fatalf("a port's subnet-only update moved it from %s to %s", ip, got)
	}
}

// TestAgentUpdate: an admin changes an agent's admin_state_up and description (Neutron's
// writable agent attributes), which survive a restart and go with the host; other
// attributes are 400, a project's update 404. Agents are not topology: no revision.
func TestAgentUpdate(t *testing.T) {
	a := newAPI(t)
	reg := map[string]any{"dvr_host": map[string]any{"tunnel_ip": "192.168.248.1", "mode": "dvr"}}
	a.admin(http.StatusCreated, "PUT", "/v2.0/dvr-hosts/compute1", reg)
	l3 := list(a.admin(http.StatusOK, "GET", "/v2.0/agents?agent_type=L3+agent", nil), "agents")[0]
	path := "/v2.0/agents/" + l3["id"].(string)
	rev := a.revision()
	got := a.admin(http.StatusOK, "PUT", path, map[string]any{"agent": map[string]any{"admin_state_up": false, "description": "drained"}})["agent"].(map[string]any)
	if got["admin_state_up"] != false || got["description"] != "drained" || got["host"] != "compute1" || got["agent_type"] != "L3 agent" {
		t.Fatalf("updated agent %v", got)
	}
	for _, c := range []struct {
		name, token string
		body        map[string]any
		code        int
		typ, msg    string
	}{
		{"read-only attribute", adminToken, map[string]any{"agent": map[string]any{"host": "compute2"}}, http.StatusBadRequest, "HTTPBadRequest", "Attribute 'host' not allowed in PUT"},
		{"unknown attribute", adminToken, map[string]any{"agent": map[string]any{"colour": "red"}}, http.StatusBadRequest, "HTTPBadRequest", "Unrecognized attribute(s) 'colour'"},
		{"not a boolean", adminToken, map[string]any{"agent": map[string]any{"admin_state_up": "maybe"}}, http.StatusBadRequest, "HTTPBadRequest", ""},
		{"description too long", adminToken, map[string]any{"agent": map[string]any{"description": strings.Repeat("d", 256)}}, http.StatusBadRequest, "HTTPBadRequest", ""},
		{"project", tokenA, map[string]any{"agent": map[string]any{"admin_state_up": true}}, http.StatusNotFound, "AgentNotFound", "Agent " + l3["id"].(string) + " could not be found."},
	} {
		code, out := a.do(c.token, "PUT", path, c.body)
		wantError(t, code, out, c.code, c.typ)
		if msg := out["NeutronError"].(map[string]any)["message"]; c.msg != "" && msg != c.msg {
			t.Errorf("%s: message %q, want %q", c.name, msg, c.msg)
		}
	}
	code, out := a.do(adminToken, "PUT", "/v2.0/agents/5b7c2f5e-0000-4000-8000-000000000000", map[string]any{"agent": map[string]any{"admin_state_up": true}})
	wantError(t, code, out, http.StatusNotFound, "AgentNotFound")
	if got := a.revision(); got != rev {
		t.Fatalf("agent updates moved the revision %d -> %d", rev, got)
	}

	a.stop()
	a.start()
	for _, ag := range list(a.admin(http.StatusOK, "GET", "/v2.0/agents", nil), "agents") {
		want := ag["id"] != l3["id"] // the OVS agent keeps the defaults
		if ag["admin_state_up"] != want || (ag["description"] == nil) != want {
			t.Errorf("after restart: %s admin_state_up %v, description %v", ag["agent_type"], ag["admin_state_up"], ag["description"])
		}
	}
	got = a.admin(http.StatusOK, "PUT", path, map[string]any{"agent": map[string]any{"description": nil}})["agent"].(map[string]any)
	if got["description"] != nil || got["admin_state_up"] != false {
		t.Fatalf("description cleared: %v", got)
	}
	// The settings go with the host: registered again, its agents have the defaults.
	a.admin(http.StatusNoContent, "DELETE", "/v2.0/dvr-hosts/compute1", nil)
	a.admin(http.StatusCreated, "PUT", "/v2.0/dvr-hosts/compute1", reg)
	if got := a.admin(http.StatusOK, "GET", path, nil)["agent"].(map[string]any); got["admin_state_up"] != true {
		t.Fatalf("re-registered host's agent: %v", got)
	}
}

// TestPortSecurityOnCreate walks neutron-tempest-plugin's port-security tests: a port's
// port_security_enabled given on create wins over its network's (true on a network
// without it gets the default group, false gets none), security_groups [] with port
// security on is no group, and a network's port_security_enabled is taken on create and
// update.
func TestPortSecurityOnCreate(t *testing.T) {
	a := newAPI(t)
	net := func(ps bool) string {
		n := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"port_security_enabled": ps}})["network"].(map[string]any)
		if n["port_security_enabled"] != ps {
			t.Fatalf("network created with port security %v shows %v", ps, n["port_security_enabled"])
		}
		a.as(tokenA, http.StatusCreated, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": n["id"], "cidr": "10.7.0.0/24", "ip_version": 4}})
		return n["id"].(string)
	}
	port := func(fields map[string]any) map[string]any {
		return a.as(tokenA, http.StatusCreated, "POST", "/v2.0/ports", map[string]any{"port": fields})["port"].(map[string]any)
	}
	off, on := net(false), net(true)
	if p := port(map[string]any{"network_id": off, "port_security_enabled": true}); p["port_security_enabled"] != true || len(p["security_groups"].([]any)) != 1 {
		t.Fatalf("port security on, on a network without: %v %v", p["port_security_enabled"], p["security_groups"])
	}
	if p := port(map[string]any{"network_id": on, "port_security_enabled": false}); p["port_security_enabled"] != false || len(p["security_groups"].([]any)) != 0 {
		t.Fatalf("port security off: %v %v", p["port_security_enabled"], p["security_groups"])
	}
	if p := port(map[string]any{"network_id": on, "security_groups": []string{}}); p["port_security_enabled"] != true || len(p["security_groups"].([]any)) != 0 {
		t.Fatalf("no groups: %v %v", p["port_security_enabled"], p["security_groups"])
	}
	if p := port(map[string]any{"network_id": on, "security_groups": []string{}, "port_security_enabled": false}); p["port_security_enabled"] != false {
		t.Fatalf("no groups, port security off: %v", p["port_security_enabled"])
	}
	n := a.as(tokenA, http.StatusOK, "PUT", "/v2.0/networks/"+off, map[string]any{"network": map[string]any{"port_security_enabled": true}})["network"].(map[string]any)
	if n["port_security_enabled"] != true {
		t.Fatalf("network update: %v", n["port_security_enabled"])
	}
	if p := port(map[string]any{"network_id": off}); p["port_security_enabled"] != true {
		t.Fatalf("port inherits %v after the network's update", p["port_security_enabled"])
	}
}
