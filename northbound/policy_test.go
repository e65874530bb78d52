package northbound_test

import (
	"net/http"
	"testing"
)

// Keystone tokens of the policy tests.
const (
	readerA  = "ks-reader-a"  // reader of proj-a
	memberB  = "ks-member-b"  // member of proj-b
	ksAdmin  = "ks-admin"     // admin (of project admin)
	noRoleB  = "ks-no-role-b" // a token of proj-b with none of Neutron's roles
	memberAB = "ks-member-a"  // member of proj-a
)

func policyAPI(t *testing.T) *api {
	return newKeystoneAPI(t, map[string]fakeToken{
		readerA:  {project: "proj-a", roles: []string{"reader"}},
		memberAB: {project: "proj-a", roles: []string{"member", "reader"}},
		memberB:  {project: "proj-b", roles: []string{"member", "reader"}},
		ksAdmin:  {project: "admin", roles: []string{"admin", "member", "reader"}},
		noRoleB:  {project: "proj-b", roles: []string{"observer"}},
	})
}

type refusal struct {
	name, token, method, path string
	body                      any
	code                      int
	typ, message              string
}

// refuse checks that each case is answered its NeutronError and changes nothing.
func refuse(t *testing.T, a *api, cases []refusal) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rev := a.revision()
			code, out := a.do(c.token, c.method, c.path, c.body)
			wantError(t, code, out, c.code, c.typ)
			if msg := out["NeutronError"].(map[string]any)["message"]; c.message != "" && msg != c.message {
				t.Errorf("message %q, want %q", msg, c.message)
			}
			if got := a.revision(); got != rev {
				t.Errorf("the refused request changed the topology: revision %d -> %d", rev, got)
			}
		})
	}
}

// TestReaderWrites: a reader's write is 404 on a resource it cannot see, as Neutron hides
// other projects' resources, and 403 on one it sees: its project's, or a shared network.
func TestReaderWrites(t *testing.T) {
	a := policyAPI(t)
	netA := a.create("networks", "network", map[string]any{"name": "a", "tenant_id": "proj-a"})["id"].(string)
	netB := a.create("networks", "network", map[string]any{"name": "b", "tenant_id": "proj-b"})["id"].(string)
	sharedB := a.create("networks", "network", map[string]any{"name": "sb", "tenant_id": "proj-b", "shared": true})["id"].(string)
	subnetB := a.create("subnets", "subnet", map[string]any{"network_id": netB, "cidr": "10.0.2.0/24", "ip_version": 4, "tenant_id": "proj-b"})["id"].(string)
	subnetA := a.create("subnets", "subnet", map[string]any{"network_id": netA, "cidr": "10.0.1.0/24", "ip_version": 4, "tenant_id": "proj-a"})["id"].(string)
	portA := a.create("ports", "port", map[string]any{"network_id": netA, "tenant_id": "proj-a"})["id"].(string)
	portB := a.create("ports", "port", map[string]any{"network_id": netB, "tenant_id": "proj-b"})["id"].(string)
	routerA := a.create("routers", "router", map[string]any{"name": "ra", "tenant_id": "proj-a"})["id"].(string)
	routerB := a.create("routers", "router", map[string]any{"name": "rb", "tenant_id": "proj-b"})["id"].(string)
	sgB := a.create("security-groups", "security_group", map[string]any{"name": "sg", "tenant_id": "proj-b"})["id"].(string)
	const missing = "9f0b4a0e-6a53-4cf4-9d0e-53b1d3a1e4a7"
	rename := func(kind string) map[string]any { return map[string]any{kind: map[string]any{"name": "x"}} }

	refuse(t, a, []refusal{
		// Another project's resources: hidden.
		{"update another project's network", readerA, "PUT", "/v2.0/networks/" + netB, rename("network"), 404, "NetworkNotFound", ""},
		{"delete another project's network", readerA, "DELETE", "/v2.0/networks/" + netB, nil, 404, "NetworkNotFound", ""},
		{"update another project's subnet", readerA, "PUT", "/v2.0/subnets/" + subnetB, rename("subnet"), 404, "SubnetNotFound", ""},
		{"delete another project's port", readerA, "DELETE", "/v2.0/ports/" + portB, nil, 404, "PortNotFound", ""},
		{"update another project's router", readerA, "PUT", "/v2.0/routers/" + routerB, rename("router"), 404, "RouterNotFound", ""},
		{"interface on another project's router", readerA, "PUT", "/v2.0/routers/" + routerB + "/add_router_interface",
			map[string]any{"subnet_id": subnetA}, 404, "RouterNotFound", ""},
		{"delete another project's security group", readerA, "DELETE", "/v2.0/security-groups/" + sgB, nil, 404, "SecurityGroupNotFound", ""},
		{"update a network that does not exist", readerA, "PUT", "/v2.0/networks/" + missing, rename("network"), 404, "NetworkNotFound", ""},
		{"update an agent", readerA, "PUT", "/v2.0/agents/" + missing, map[string]any{"agent": map[string]any{"admin_state_up": false}}, 404, "AgentNotFound", ""},
		// What it sees: refused by policy.
		{"create", readerA, "POST", "/v2.0/networks", rename("network"), 403, "PolicyNotAuthorized", "rule:create_network is disallowed by policy"},
		{"update its project's network", readerA, "PUT", "/v2.0/networks/" + netA, rename("network"), 403, "PolicyNotAuthorized", "rule:update_network is disallowed by policy"},
		{"delete its project's port", readerA, "DELETE", "/v2.0/ports/" + portA, nil, 403, "PolicyNotAuthorized", "rule:delete_port is disallowed by policy"},
		{"interface on its project's router", readerA, "PUT", "/v2.0/routers/" + routerA + "/add_router_interface",
			map[string]any{"subnet_id": subnetA}, 403, "PolicyNotAuthorized", "rule:add_router_interface is disallowed by policy"},
		{"update a shared network", readerA, "PUT", "/v2.0/networks/" + sharedB, rename("network"), 403, "PolicyNotAuthorized", ""},
		// A member: the same answers, from the handlers.
		{"member updates another project's network", memberAB, "PUT", "/v2.0/networks/" + netB, rename("network"), 404, "NetworkNotFound", ""},
		{"member deletes a shared network of another project", memberAB, "DELETE", "/v2.0/networks/" + sharedB, nil, 403, "PolicyNotAuthorized", ""},
		// No role Neutron knows: nothing.
		{"no role", noRoleB, "GET", "/v2.0/networks", nil, 403, "PolicyNotAuthorized", ""},
	})
	// The reader still reads what its project sees.
	if code, out := a.do(readerA, "GET", "/v2.0/networks/"+sharedB, nil); code != http.StatusOK {
		t.Fatalf("reader shows a shared network: %d %v", code, out)
	}
	code, out := a.do(readerA, "GET", "/v2.0/networks", nil)
	if code != http.StatusOK || len(list(out, "networks")) != 2 {
		t.Fatalf("reader lists %d %v, want its network and the shared one", code, out)
	}
}

// TestAdminOnlyAttributes: what Neutron's default policies leave to admin is 403 to a
// member (a Keystone token or a project token alike), on create, bulk create and update,
// and changes nothing; admin sets it.
func TestAdminOnlyAttributes(t *testing.T) {
	a := policyAPI(t)
	_, _, extID, _ := base(a, "10.0.1.0/24")
	netB := a.create("networks", "network", map[string]any{"name": "b", "tenant_id": "proj-b"})["id"].(string)
	a.create("subnets", "subnet", map[string]any{"network_id": netB, "cidr": "10.0.2.0/24", "ip_version": 4, "tenant_id": "proj-b"})
	portB := a.create("ports", "port", map[string]any{"network_id": netB, "tenant_id": "proj-b"})["id"].(string)
	routerB := a.create("routers", "router", map[string]any{"name": "rb", "tenant_id": "proj-b"})["id"].(string)
	network := func(f map[string]any) map[string]any { return map[string]any{"network": f} }
	port := func(f map[string]any) map[string]any {
		if _, ok := f["network_id"]; !ok {
			f["network_id"] = netB
		}
		return map[string]any{"port": f}
	}
	var cases []refusal
	for _, tok := range []string{memberB, tokenB} {
		cases = append(cases,
			refusal{"network_type", tok, "POST", "/v2.0/networks", network(map[string]any{"provider:network_type": "vlan"}), 403, "PolicyNotAuthorized",
				"(rule:create_network and rule:create_network:provider:network_type) is disallowed by policy"},
			refusal{"physical_network", tok, "POST", "/v2.0/networks", network(map[string]any{"provider:physical_network": "public"}), 403, "PolicyNotAuthorized", ""},
			refusal{"segmentation_id", tok, "POST", "/v2.0/networks", network(map[string]any{"provider:segmentation_id": 0}), 403, "PolicyNotAuthorized", ""},
			refusal{"segments", tok, "POST", "/v2.0/networks", network(map[string]any{"segments": []any{map[string]any{"provider:network_type": "vxlan"}}}), 403, "PolicyNotAuthorized", ""},
			refusal{"router:external", tok, "POST", "/v2.0/networks", network(map[string]any{"router:external": true}), 403, "PolicyNotAuthorized", ""},
			refusal{"shared", tok, "POST", "/v2.0/networks", network(map[string]any{"shared": "True"}), 403, "PolicyNotAuthorized", ""},
			refusal{"shared not a boolean", tok, "POST", "/v2.0/networks", network(map[string]any{"shared": "maybe"}), 400, "HTTPBadRequest", ""},
			refusal{"bulk with provider attributes", tok, "POST", "/v2.0/networks", map[string]any{"networks": []any{
				map[string]any{"name": "ok"}, map[string]any{"provider:network_type": "flat"}}}, 403, "PolicyNotAuthorized", ""},
			// Another project is Neutron's populate_project_id's 400, not a policy refusal
			// (neutron-tempest-plugin's test_add_port_with_nonexist_tenant_id).
			refusal{"another project_id", tok, "POST", "/v2.0/networks", network(map[string]any{"project_id": "proj-a"}), 400, "HTTPBadRequest",
				"Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin privileges"},
			refusal{"another tenant_id", tok, "POST", "/v2.0/ports", port(map[string]any{"tenant_id": "proj-a"}), 400, "HTTPBadRequest", ""},
			refusal{"update segmentation_id", tok, "PUT", "/v2.0/networks/" + netB, network(map[string]any{"provider:segmentation_id": 7}), 403, "PolicyNotAuthorized",
				"(rule:update_network and rule:update_network:provider:segmentation_id) is disallowed by policy"},
			refusal{"update router:external", tok, "PUT", "/v2.0/networks/" + netB, network(map[string]any{"router:external": false}), 403, "PolicyNotAuthorized", ""},
			refusal{"binding:host_id", tok, "POST", "/v2.0/ports", port(map[string]any{"binding:host_id": "compute1"}), 403, "PolicyNotAuthorized",
				"(rule:create_port and rule:create_port:binding:host_id) is disallowed by policy"},
			refusal{"binding:profile", tok, "POST", "/v2.0/ports", port(map[string]any{"binding:profile": map[string]any{}}), 403, "PolicyNotAuthorized", ""},
			refusal{"update binding:host_id", tok, "PUT", "/v2.0/ports/" + portB, map[string]any{"port": map[string]any{"binding:host_id": ""}}, 403, "PolicyNotAuthorized", ""},
			refusal{"update binding:profile", tok, "PUT", "/v2.0/ports/" + portB, map[string]any{"port": map[string]any{"binding:profile": map[string]any{"a": 1}}}, 403, "PolicyNotAuthorized", ""},
			refusal{"update mac_address", tok, "PUT", "/v2.0/ports/" + portB, map[string]any{"port": map[string]any{"mac_address": "fa:16:3e:00:00:99"}}, 403, "PolicyNotAuthorized",
				"(rule:update_port and rule:update_port:mac_address) is disallowed by policy"},
			refusal{"distributed", tok, "POST", "/v2.0/routers", map[string]any{"router": map[string]any{"distributed": false}}, 403, "PolicyNotAuthorized", ""},
			refusal{"update distributed", tok, "PUT", "/v2.0/routers/" + routerB, map[string]any{"router": map[string]any{"distributed": true}}, 403, "PolicyNotAuthorized", ""},
			refusal{"enable_snat", tok, "PUT", "/v2.0/routers/" + routerB, map[string]any{"router": map[string]any{
				"external_gateway_info": map[string]any{"network_id": extID, "enable_snat": false}}}, 403, "PolicyNotAuthorized",
				"(rule:update_router and rule:update_router:external_gateway_info:enable_snat) is disallowed by policy"},
			refusal{"floating_ip_address", tok, "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{
				"floating_network_id": extID, "floating_ip_address": "172.24.4.9"}}, 403, "PolicyNotAuthorized",
				"(rule:create_floatingip and rule:create_floatingip:floating_ip_address) is disallowed by policy"},
		)
	}
	refuse(t, a, cases)

	// A default value is not setting the attribute (Neutron's policy checks explicit
	// values): a member's network with shared false and router:external false, and a
	// port with an empty binding:host_id, are created.
	for _, tok := range []string{memberB, tokenB} {
		if code, out := a.do(tok, "POST", "/v2.0/networks", network(map[string]any{"shared": false, "router:external": false})); code != http.StatusCreated {
			t.Errorf("member's network with default shared and router:external: %d %v", code, out)
		}
		if code, out := a.do(tok, "POST", "/v2.0/ports", port(map[string]any{"binding:host_id": ""})); code != http.StatusCreated {
			t.Errorf("member's port with an empty binding:host_id: %d %v", code, out)
		}
	}
	// A Keystone admin sets them.
	for _, r := range []struct {
		method, path string
		body         any
		code         int
	}{
		{"POST", "/v2.0/networks", network(map[string]any{"provider:network_type": "vlan", "provider:physical_network": "public",
			"provider:segmentation_id": 100, "project_id": "proj-b"}), http.StatusCreated},
		{"PUT", "/v2.0/networks/" + netB, network(map[string]any{"shared": true}), http.StatusOK},
		{"PUT", "/v2.0/ports/" + portB, map[string]any{"port": map[string]any{"binding:host_id": "compute1"}}, http.StatusOK},
		{"POST", "/v2.0/routers", map[string]any{"router": map[string]any{"distributed": true, "tenant_id": "proj-a"}}, http.StatusCreated},
	} {
		if code, out := a.do(ksAdmin, r.method, r.path, r.body); code != r.code {
			t.Errorf("keystone admin %s %s: %d %v, want %d", r.method, r.path, code, out, r.code)
		}
	}
	// For an admin, provider attributes stay unchangeable once created.
	code, out := a.do(ksAdmin, "PUT", "/v2.0/networks/"+netB, network(map[string]any{"provider:segmentation_id": 7}))
	wantError(t, code, out, http.StatusBadRequest, "HTTPBadRequest")
}

// TestAdminReadAttrs: the attributes Neutron's default policies show to admin only
// (provider:*, segments, binding:host_id/profile/vif_type/vif_details, a router's
// distributed) are left out of a project's shows, lists and the answers to its creates,
// and kept for admin.
func TestAdminReadAttrs(t *testing.T) {
	a := policyAPI(t)
	net := a.create("networks", "network", map[string]any{"name": "a", "tenant_id": "proj-a"})["id"].(string)
	a.create("subnets", "subnet", map[string]any{"network_id": net, "cidr": "10.0.1.0/24", "ip_version": 4, "tenant_id": "proj-a"})
	port := a.create("ports", "port", map[string]any{"network_id": net, "tenant_id": "proj-a", "binding:host_id": "compute1"})["id"].(string)
	router := a.create("routers", "router", map[string]any{"name": "r", "tenant_id": "proj-a"})["id"].(string)
	hidden := map[string][]string{
		"network": {"provider:network_type", "provider:physical_network", "provider:segmentation_id"},
		"port":    {"binding:host_id", "binding:profile", "binding:vif_type", "binding:vif_details"},
		"router":  {"distributed"},
	}
	check := func(who, kind string, obj map[string]any, admin bool) {
		t.Helper()
		for _, attr := range hidden[kind] {
			if _, ok := obj[attr]; ok != admin {
				t.Errorf("%s: %s has %s: %v, want %v", who, kind, attr, ok, admin)
			}
		}
		if kind == "port" && obj["binding:vnic_type"] != "normal" {
			t.Errorf("%s: port's binding:vnic_type %v, shown to every caller", who, obj["binding:vnic_type"])
		}
	}
	for _, tc := range []struct {
		token string
		admin bool
	}{{memberAB, false}, {readerA, false}, {ksAdmin, true}} {
		for kind, id := range map[string]string{"network": net, "port": port, "router": router} {
			code, out := a.do(tc.token, http.MethodGet, "/v2.0/"+kind+"s/"+id, nil)
			if code != http.StatusOK {
				t.Fatalf("%s: show %s: %d %v", tc.token, kind, code, out)
			}
			check(tc.token+" show", kind, out[kind].(map[string]any), tc.admin)
			code, out = a.do(tc.token, http.MethodGet, "/v2.0/"+kind+"s?id="+id, nil)
			items, _ := out[kind+"s"].([]any)
			if code != http.StatusOK || len(items) != 1 {
				t.Fatalf("%s: list %s: %d %v", tc.token, kind, code, out)
			}
			check(tc.token+" list", kind, items[0].(map[string]any), tc.admin)
		}
	}
	code, out := a.do(memberAB, http.MethodPost, "/v2.0/routers", map[string]any{"router": map[string]any{"name": "mine"}})
	if code != http.StatusCreated {
		t.Fatalf("member's router create: %d %v", code, out)
	}
	check("member create", "router", out["router"].(map[string]any), false)
}

// TestNetworkOwnerAttributes: what Neutron's default policies leave to the owner of a
// port's network (and admin) is 403 to a member on a shared network of another project,
// on create, bulk create and update, and changes nothing (neutron-tempest-plugin's
// test_create_port_security_false_on_shared_network and test_{create,update}_with_address_
// pair_blocked_on_other_network); fixed_ips naming only a subnet is a shared network's
// users' too on create. The network's owner and admin set them all.
func TestNetworkOwnerAttributes(t *testing.T) {
	a := policyAPI(t)
	shared := a.create("networks", "network", map[string]any{"name": "s", "shared": true})["id"].(string)
	sharedSub := a.create("subnets", "subnet", map[string]any{"network_id": shared, "cidr": "10.0.5.0/24", "ip_version": 4})["id"].(string)
	own := a.create("networks", "network", map[string]any{"name": "b", "tenant_id": "proj-b"})["id"].(string)
	ownSub := a.create("subnets", "subnet", map[string]any{"network_id": own, "cidr": "10.0.6.0/24", "ip_version": 4, "tenant_id": "proj-b"})["id"].(string)
	port := func(network string, f map[string]any) map[string]any {
		f["network_id"] = network
		return map[string]any{"port": f}
	}
	upd := func(f map[string]any) map[string]any { return map[string]any{"port": f} }
	pairs := []any{map[string]any{"ip_address": "1.1.1.1"}}
	for _, tok := range []string{memberB, tokenB} {
		code, out := a.do(tok, "POST", "/v2.0/ports", port(shared, map[string]any{}))
		if code != http.StatusCreated {
			t.Fatalf("member's port on a shared network: %d %v", code, out)
		}
		onShared := out["port"].(map[string]any)["id"].(string)
		refuse(t, a, []refusal{
			{"port_security_enabled", tok, "POST", "/v2.0/ports", port(shared, map[string]any{"port_security_enabled": false}), 403, "PolicyNotAuthorized",
				"(rule:create_port and rule:create_port:port_security_enabled) is disallowed by policy"},
			{"port_security_enabled true", tok, "POST", "/v2.0/ports", port(shared, map[string]any{"port_security_enabled": true}), 403, "PolicyNotAuthorized", ""},
			{"allowed_address_pairs", tok, "POST", "/v2.0/ports", port(shared, map[string]any{"allowed_address_pairs": pairs}), 403, "PolicyNotAuthorized",
				"(rule:create_port and rule:create_port:allowed_address_pairs) is disallowed by policy"},
			{"mac_address", tok, "POST", "/v2.0/ports", port(shared, map[string]any{"mac_address": "fa:16:3e:00:00:09"}), 403, "PolicyNotAuthorized", ""},
			{"fixed_ips ip_address", tok, "POST", "/v2.0/ports", port(shared, map[string]any{"fixed_ips": []any{
				map[string]any{"subnet_id": sharedSub, "ip_address": "10.0.5.9"}}}), 403, "PolicyNotAuthorized",
				"(rule:create_port and rule:create_port:fixed_ips:ip_address) is disallowed by policy"},
			{"network device_owner", tok, "POST", "/v2.0/ports", port(shared, map[string]any{"device_owner": "network:dhcp"}), 403, "PolicyNotAuthorized", ""},
			{"bulk", tok, "POST", "/v2.0/ports", map[string]any{"ports": []any{port(shared, map[string]any{})["port"],
				port(shared, map[string]any{"port_security_enabled": false})["port"]}}, 403, "PolicyNotAuthorized", ""},
			{"update allowed_address_pairs", tok, "PUT", "/v2.0/ports/" + onShared, upd(map[string]any{"allowed_address_pairs": pairs}), 403, "PolicyNotAuthorized",
				"(rule:update_port and rule:update_port:allowed_address_pairs) is disallowed by policy"},
			{"update port_security_enabled", tok, "PUT", "/v2.0/ports/" + onShared, upd(map[string]any{"port_security_enabled": true}), 403, "PolicyNotAuthorized", ""},
			{"update fixed_ips", tok, "PUT", "/v2.0/ports/" + onShared, upd(map[string]any{"fixed_ips": []any{map[string]any{"subnet_id": sharedSub}}}), 403, "PolicyNotAuthorized",
				"(rule:update_port and rule:update_port:fixed_ips) is disallowed by policy"},
			{"update network device_owner", tok, "PUT", "/v2.0/ports/" + onShared, upd(map[string]any{"device_owner": "network:foo"}), 403, "PolicyNotAuthorized", ""},
		})
		// What is not the network owner's alone: a subnet, a device owner of a VM, a name.
		for _, body := range []map[string]any{
			port(shared, map[string]any{"fixed_ips": []any{map[string]any{"subnet_id": sharedSub}}}),
			port(shared, map[string]any{"device_owner": "compute:nova"}),
		} {
			if code, out := a.do(tok, "POST", "/v2.0/ports", body); code != http.StatusCreated {
				t.Errorf("member's port %v on a shared network: %d %v", body, code, out)
			}
		}
		if code, out := a.do(tok, "PUT", "/v2.0/ports/"+onShared, upd(map[string]any{"name": "x", "device_owner": "compute:nova"})); code != http.StatusOK {
			t.Errorf("member renames its port on a shared network: %d %v", code, out)
		}
		// On its own network the member sets them all.
		code, out = a.do(tok, "POST", "/v2.0/ports", port(own, map[string]any{"port_security_enabled": false, "mac_address": "fa:16:3e:00:00:0a",
			"fixed_ips": []any{map[string]any{"subnet_id": ownSub, "ip_address": "10.0.6.9"}}, "device_owner": "network:dhcp"}))
		if code != http.StatusCreated {
			t.Fatalf("member's port on its network: %d %v", code, out)
		}
		mine := out["port"].(map[string]any)["id"].(string)
		if code, out := a.do(tok, "PUT", "/v2.0/ports/"+mine, upd(map[string]any{"port_security_enabled": true, "allowed_address_pairs": pairs,
			"fixed_ips": []any{map[string]any{"subnet_id": ownSub, "ip_address": "10.0.6.10"}}})); code != http.StatusOK {
			t.Errorf("member updates its port on its network: %d %v", code, out)
		}
		a.admin(http.StatusNoContent, "DELETE", "/v2.0/ports/"+mine, nil)
	}
	// Admin sets them on any network.
	a.admin(http.StatusCreated, "POST", "/v2.0/ports", port(shared, map[string]any{"tenant_id": "proj-b", "port_security_enabled": true,
		"allowed_address_pairs": pairs, "mac_address": "fa:16:3e:00:00:0b", "fixed_ips": []any{map[string]any{"subnet_id": sharedSub, "ip_address": "10.0.5.20"}}}))
}
