package northbound_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
)

// as sends as a project token and requires status want.
func (a *api) as(token string, want int, method, path string, body any) map[string]any {
	a.t.Helper()
	code, out := a.do(token, method, path, body)
	if code != want {
		a.t.Fatalf("%s %s: status %d, want %d: %v", method, path, code, want, out)
	}
	return out
}

// rulesOf returns a group's rules as direction/ethertype/protocol/remote strings, sorted.
func rulesOf(g map[string]any) []string {
	var out []string
	for _, r := range g["security_group_rules"].([]any) {
		m := r.(map[string]any)
		remote := "any"
		if m["remote_group_id"] != nil {
			remote = "group"
			if m["remote_group_id"] == g["id"] {
				remote = "self"
			}
		}
		if m["remote_ip_prefix"] != nil {
			remote = m["remote_ip_prefix"].(string)
		}
		out = append(out, fmt.Sprintf("%s %s %v %s", m["direction"], m["ethertype"], m["protocol"], remote))
	}
	slices.Sort(out)
	return out
}

// A project's first use creates its default group with Neutron's four rules, once; a new
// group gets the two egress rules; the default group cannot be renamed or deleted by its
// project, a second "default" is refused, and a group in use cannot be deleted.
func TestDefaultSecurityGroup(t *testing.T) {
	a := newAPI(t)
	out := a.as(tokenA, http.StatusOK, "GET", "/v2.0/security-groups", nil)
	gs := list(out, "security_groups")
	if len(gs) != 1 || gs[0]["name"] != "default" || gs[0]["project_id"] != "proj-a" || gs[0]["stateful"] != true {
		t.Fatalf("first list: %v", gs)
	}
	def := gs[0]
	want := []string{"egress IPv4 <nil> any", "egress IPv6 <nil> any", "ingress IPv4 <nil> self", "ingress IPv6 <nil> self"}
	if got := rulesOf(def); !slices.Equal(got, want) {
		t.Fatalf("default rules %v, want %v", got, want)
	}
	// Once only, and another project sees only its own.
	if gs := list(a.as(tokenA, http.StatusOK, "GET", "/v2.0/security-groups", nil), "security_groups"); len(gs) != 1 {
		t.Fatalf("second list: %d groups", len(gs))
	}
	gsB := list(a.as(tokenB, http.StatusOK, "GET", "/v2.0/security-groups", nil), "security_groups")
	if len(gsB) != 1 || gsB[0]["project_id"] != "proj-b" {
		t.Fatalf("project B: %v", gsB)
	}
	code, body := a.do(tokenB, "GET", "/v2.0/security-groups/"+def["id"].(string), nil)
	wantError(t, code, body, http.StatusNotFound, "SecurityGroupNotFound")

	web := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/security-groups",
		map[string]any{"security_group": map[string]any{"name": "web", "description": "front"}})["security_group"].(map[string]any)
	if got := rulesOf(web); !slices.Equal(got, []string{"egress IPv4 <nil> any", "egress IPv6 <nil> any"}) {
		t.Fatalf("new group rules %v", got)
	}

	rev := a.revision()
	code, body = a.do(tokenA, "POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": "default"}})
	wantError(t, code, body, http.StatusConflict, "SecurityGroupDefaultAlreadyExists")
	code, body = a.do(tokenA, "PUT", "/v2.0/security-groups/"+def["id"].(string), map[string]any{"security_group": map[string]any{"name": "other"}})
	wantError(t, code, body, http.StatusConflict, "SecurityGroupCannotUpdateDefault")
	code, body = a.do(tokenA, "DELETE", "/v2.0/security-groups/"+def["id"].(string), nil)
	wantError(t, code, body, http.StatusConflict, "SecurityGroupCannotRemoveDefault")
	code, body = a.do(tokenA, "POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{"name": "x", "rules": []any{}}})
	wantError(t, code, body, http.StatusBadRequest, "HTTPBadRequest")
	code, body = a.do(tokenA, "POST", "/v2.0/security-groups", `{"security_group": {"name": `)
	if code != http.StatusBadRequest {
		t.Fatalf("malformed JSON: %d %v", code, body)
	}
	if got := a.revision(); got != rev {
		t.Fatalf("refused requests changed the revision: %d -> %d", rev, got)
	}

	// A port in the group keeps it from being deleted, and from changing stateful.
	net := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "n"}})["network"].(map[string]any)
	a.as(tokenA, http.StatusCreated, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{
		"network_id": net["id"], "cidr": "10.9.0.0/24", "ip_version": 4}})
	port := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{
		"network_id": net["id"], "security_groups": []string{web["id"].(string)}}})["port"].(map[string]any)
	if sgs := port["security_groups"].([]any); len(sgs) != 1 || sgs[0] != web["id"] {
		t.Fatalf("port groups %v", sgs)
	}
	code, body = a.do(tokenA, "DELETE", "/v2.0/security-groups/"+web["id"].(string), nil)
	wantError(t, code, body, http.StatusConflict, "SecurityGroupInUse")
	code, body = a.do(tokenA, "PUT", "/v2.0/security-groups/"+web["id"].(string), map[string]any{"security_group": map[string]any{"stateful": false}})
	wantError(t, code, body, http.StatusConflict, "SecurityGroupInUse")
	a.as(tokenA, http.StatusOK, "PUT", "/v2.0/ports/"+port["id"].(string), map[string]any{"port": map[string]any{"security_groups": []string{}}})
	upd := a.as(tokenA, http.StatusOK, "PUT", "/v2.0/security-groups/"+web["id"].(string),
		map[string]any{"security_group": map[string]any{"name": "web2", "stateful": false}})["security_group"].(map[string]any)
	if upd["name"] != "web2" || upd["stateful"] != false || upd["revision_number"].(float64) != 1 {
		t.Fatalf("updated group %v", upd)
	}
	a.as(tokenA, http.StatusNoContent, "DELETE", "/v2.0/security-groups/"+web["id"].(string), nil)
	code, body = a.do(tokenA, "GET", "/v2.0/security-groups/"+web["id"].(string), nil)
	wantError(t, code, body, http.StatusNotFound, "SecurityGroupNotFound")
	// An admin may remove a default group, as in Neutron (once no port uses it).
	a.admin(http.StatusNoContent, "DELETE", "/v2.0/security-groups/"+gsB[0]["id"].(string), nil)

	// The extensions are listed.
	exts := map[string]bool{}
	for _, x := range list(a.admin(http.StatusOK, "GET", "/v2.0/extensions", nil), "extensions") {
		exts[x["alias"].(string)] = true
	}
	for _, alias := range []string{"security-group", "port-security", "allowed-address-pairs", "stateful-security-group"} {
		if !exts[alias] {
			t.Errorf("extension %s not listed", alias)
		}
	}
}

// Rules: Neutron's validation and errors, normalization, duplicates refused (also under
// concurrent creates), remote groups, and deletes; a refused request changes nothing.
func TestSecurityGroupRules(t *testing.T) {
	a := newAPI(t)
	g := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/security-groups",
		map[string]any{"security_group": map[string]any{"name": "g"}})["security_group"].(map[string]any)
	other := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/security-groups",
		map[string]any{"security_group": map[string]any{"name": "other"}})["security_group"].(map[string]any)
	gid := g["id"].(string)
	rule := func(fields map[string]any) map[string]any {
		fields["security_group_id"] = gid
		return map[string]any{"security_group_rule": fields}
	}
	rev := a.revision()
	for _, c := range []struct {
		fields map[string]any
		code   int
		typ    string
	}{
		{map[string]any{"direction": "sideways"}, 400, "BadRequest"},
		{map[string]any{}, 400, "InvalidInput"},
		{map[string]any{"direction": "ingress", "ethertype": "IPv5"}, 400, "BadRequest"},
		{map[string]any{"direction": "ingress", "protocol": "carrier-pigeon"}, 400, "SecurityGroupRuleInvalidProtocol"},
		{map[string]any{"direction": "ingress", "protocol": 256}, 400, "SecurityGroupRuleInvalidProtocol"},
		{map[string]any{"direction": "ingress", "protocol": "tcp", "port_range_min": 30, "port_range_max": 20}, 400, "SecurityGroupInvalidPortRange"},
		{map[string]any{"direction": "ingress", "protocol": "tcp", "port_range_min": 0}, 400, "SecurityGroupInvalidPortValue"},
		{map[string]any{"direction": "ingress", "port_range_min": 22}, 400, "SecurityGroupProtocolRequiredWithPorts"},
		{map[string]any{"direction": "ingress", "protocol": "gre", "port_range_min": 22}, 400, "SecurityGroupInvalidProtocolForPortRange"},
		{map[string]any{"direction": "ingress", "protocol": "icmp", "port_range_min": 300}, 400, "SecurityGroupInvalidIcmpValue"},
		{map[string]any{"direction": "ingress", "protocol": "icmp", "port_range_max": 0}, 400, "SecurityGroupMissingIcmpType"},
		{map[string]any{"direction": "ingress", "protocol": "ipv6-icmp"}, 400, "SecurityGroupEthertypeConflictWithProtocol"},
		{map[string]any{"direction": "ingress", "remote_ip_prefix": "10.0.0.0/33"}, 400, "BadRequest"},
		{map[string]any{"direction": "ingress", "remote_ip_prefix": "2001:db8::/64"}, 400, "SecurityGroupRuleParameterConflict"},
		{map[string]any{"direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": other["id"]}, 400, "SecurityGroupRemoteGroupAndRemoteIpPrefix"},
		{map[string]any{"direction": "ingress", "remote_group_id": "nope"}, 404, "SecurityGroupNotFound"},
		{map[string]any{"direction": "ingress", "port_range_min": "x"}, 400, "HTTPBadRequest"},
		{map[string]any{"direction": "egress"}, 409, "SecurityGroupRuleExists"}, // the group's own egress rule
	} {
		code, body := a.do(tokenA, "POST", "/v2.0/security-group-rules", rule(c.fields))
		wantError(t, code, body, c.code, c.typ)
	}
	code, body := a.do(tokenA, "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": map[string]any{
		"security_group_id": "nope", "direction": "ingress"}})
	wantError(t, code, body, http.StatusNotFound, "SecurityGroupNotFound")
	code, body = a.do(tokenB, "POST", "/v2.0/security-group-rules", rule(map[string]any{"direction": "ingress"}))
	wantError(t, code, body, http.StatusNotFound, "SecurityGroupNotFound")
	if got := a.revision(); got != rev {
		t.Fatalf("refused rules changed the revision: %d -> %d", rev, got)
	}

	// Normalization: a host address becomes its prefix, a CIDR its network; a TCP port alone
	// is a range of one; protocol numbers stay numbers; the same rule by number and by name
	// is a duplicate.
	ssh := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/security-group-rules", rule(map[string]any{
		"direction": "ingress", "protocol": "TCP", "port_range_min": 22, "remote_ip_prefix": "192.0.2.77/24"}))["security_group_rule"].(map[string]any)
	if ssh["protocol"] != "tcp" || ssh["port_range_max"] != 22.0 || ssh["remote_ip_prefix"] != "192.0.2.0/24" ||
		ssh["ethertype"] != "IPv4" || ssh["normalized_cidr"] != "192.0.2.0/24" {
		t.Fatalf("ssh rule %v", ssh)
	}
	code, body = a.do(tokenA, "POST", "/v2.0/security-group-rules", rule(map[string]any{
		"direction": "ingress", "protocol": "6", "port_range_min": 22, "port_range_max": 22, "remote_ip_prefix": "192.0.2.0/24"}))
	wantError(t, code, body, http.StatusConflict, "SecurityGroupRuleExists")
	vrrp := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/security-group-rules", rule(map[string]any{
		"direction": "ingress", "protocol": 112, "remote_ip_prefix": "198.51.100.5"}))["security_group_rule"].(map[string]any)
	if vrrp["protocol"] != "112" || vrrp["remote_ip_prefix"] != "198.51.100.5/32" || vrrp["port_range_min"] != nil {
		t.Fatalf("vrrp rule %v", vrrp)
	}
	icmp := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/security-group-rules", rule(map[string]any{
		"direction": "ingress", "protocol": "icmp", "port_range_min": 8, "port_range_max": 0,
		"remote_group_id": other["id"]}))["security_group_rule"].(map[string]any)
	if icmp["port_range_min"] != 8.0 || icmp["port_range_max"] != 0.0 || icmp["remote_group_id"] != other["id"] {
		t.Fatalf("icmp rule %v", icmp)
	}
	v6 := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/security-group-rules", rule(map[string]any{
		"direction": "ingress", "ethertype": "IPv6", "protocol": "ipv6-icmp"}))["security_group_rule"].(map[string]any)
	if v6["ethertype"] != "IPv6" {
		t.Fatalf("v6 rule %v", v6)
	}
	// Concurrent creates of one rule: exactly one wins, the others are SecurityGroupRuleExists.
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = a.do(tokenA, "POST", "/v2.0/security-group-rules", rule(map[string]any{
				"direction": "ingress", "protocol": "udp", "port_range_min": 53, "port_range_max": 53}))
		}()
	}
	wg.Wait()
	slices.Sort(codes)
	if codes[0] != http.StatusCreated || codes[1] != http.StatusConflict || codes[7] != http.StatusConflict {
		t.Fatalf("concurrent creates: %v", codes)
	}

	// The group shows its rules; list filters by group; show and delete.
	shown := a.as(tokenA, http.StatusOK, "GET", "/v2.0/security-groups/"+gid, nil)["security_group"].(map[string]any)
	if n := len(shown["security_group_rules"].([]any)); n != 7 {
		t.Fatalf("group has %d rules, want 7 (2 egress, ssh, vrrp, icmp, v6, dns)", n)
	}
	rs := list(a.as(tokenA, http.StatusOK, "GET", "/v2.0/security-group-rules?security_group_id="+gid+"&direction=ingress", nil), "security_group_rules")
	if len(rs) != 5 {
		t.Fatalf("ingress rules of the group: %d, want 5", len(rs))
	}
	a.as(tokenA, http.StatusOK, "GET", "/v2.0/security-group-rules/"+ssh["id"].(string), nil)
	code, body = a.do(tokenB, "GET", "/v2.0/security-group-rules/"+ssh["id"].(string), nil)
	wantError(t, code, body, http.StatusNotFound, "SecurityGroupRuleNotFound")
	a.as(tokenA, http.StatusNoContent, "DELETE", "/v2.0/security-group-rules/"+ssh["id"].(string), nil)
	code, body = a.do(tokenA, "DELETE", "/v2.0/security-group-rules/"+ssh["id"].(string), nil)
	wantError(t, code, body, http.StatusNotFound, "SecurityGroupRuleNotFound")
	// Deleting a group takes the rules naming it as their remote group with it.
	a.as(tokenA, http.StatusNoContent, "DELETE", "/v2.0/security-groups/"+other["id"].(string), nil)
	code, body = a.do(tokenA, "GET", "/v2.0/security-group-rules/"+icmp["id"].(string), nil)
	wantError(t, code, body, http.StatusNotFound, "SecurityGroupRuleNotFound")
}

// Ports: the project's default group when none is named (not for network:* ports),
// port security inherited from the network, Neutron's refusals when port security is
// off, and allowed address pairs.
func TestPortSecurity(t *testing.T) {
	a := newAPI(t)
	mk := func(fields map[string]any) (int, map[string]any) {
		return a.do(tokenA, "POST", "/v2.0/ports", map[string]any{"port": fields})
	}
	net := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "n"}})["network"].(map[string]any)
	if net["port_security_enabled"] != true {
		t.Fatalf("network port security %v", net["port_security_enabled"])
	}
	bare := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{
		"name": "open", "port_security_enabled": false}})["network"].(map[string]any)
	for _, n := range []map[string]any{net, bare} {
		a.as(tokenA, http.StatusCreated, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{
			"network_id": n["id"], "cidr": "10.8.0.0/24", "ip_version": 4}})
	}
	nid := net["id"].(string)
	code, out := mk(map[string]any{"network_id": nid, "device_owner": "compute:nova"})
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, out)
	}
	vm := out["port"].(map[string]any)
	def := list(a.as(tokenA, http.StatusOK, "GET", "/v2.0/security-groups?name=default", nil), "security_groups")[0]
	if sgs := vm["security_groups"].([]any); len(sgs) != 1 || sgs[0] != def["id"] || vm["port_security_enabled"] != true {
		t.Fatalf("VM port: groups %v, port security %v; default group %v", sgs, vm["port_security_enabled"], def["id"])
	}
	code, out = mk(map[string]any{"network_id": nid, "device_owner": "network:dhcp"})
	if code != http.StatusCreated || len(out["port"].(map[string]any)["security_groups"].([]any)) != 0 {
		t.Fatalf("network:dhcp port: %d %v", code, out)
	}
	code, out = mk(map[string]any{"network_id": bare["id"]})
	if p := out["port"].(map[string]any); code != http.StatusCreated || p["port_security_enabled"] != false || len(p["security_groups"].([]any)) != 0 {
		t.Fatalf("port on a network without port security: %d %v", code, out)
	}

	rev := a.revision()
	code, out = mk(map[string]any{"network_id": nid, "port_security_enabled": false, "security_groups": []string{def["id"].(string)}})
	wantError(t, code, out, http.StatusBadRequest, "PortSecurityAndIPRequiredForSecurityGroups")
	code, out = mk(map[string]any{"network_id": bare["id"], "allowed_address_pairs": []any{map[string]any{"ip_address": "10.8.0.200"}}})
	wantError(t, code, out, http.StatusConflict, "AddressPairAndPortSecurityRequired")
	code, out = mk(map[string]any{"network_id": nid, "security_groups": []string{"5b7c2f5e-0000-4000-8000-000000000000"}})
	wantError(t, code, out, http.StatusNotFound, "SecurityGroupNotFound")
	code, out = mk(map[string]any{"network_id": nid, "allowed_address_pairs": []any{map[string]any{"ip_address": "10.8.0.300"}}})
	wantError(t, code, out, http.StatusBadRequest, "BadRequest")
	code, out = mk(map[string]any{"network_id": nid, "allowed_address_pairs": []any{map[string]any{"mac_address": "fa:16:3e:00:00:01"}}})
	wantError(t, code, out, http.StatusBadRequest, "AllowedAddressPairsMissingIP")
	code, out = mk(map[string]any{"network_id": nid, "allowed_address_pairs": []any{
		map[string]any{"ip_address": "10.8.0.200"}, map[string]any{"ip_address": "10.8.0.200"}}})
	wantError(t, code, out, http.StatusBadRequest, "DuplicateAddressPairInRequest")
	code, out = mk(map[string]any{"network_id": nid, "port_security_enabled": "maybe"})
	wantError(t, code, out, http.StatusBadRequest, "HTTPBadRequest")
	if got := a.revision(); got != rev {
		t.Fatalf("refused port creates changed the revision: %d -> %d", rev, got)
	}
	// Another project's group is not visible.
	gB := list(a.as(tokenB, http.StatusOK, "GET", "/v2.0/security-groups", nil), "security_groups")[0]
	rev = a.revision() // project B's first use created its default group
	code, out = mk(map[string]any{"network_id": nid, "security_groups": []string{gB["id"].(string)}})
	wantError(t, code, out, http.StatusNotFound, "SecurityGroupNotFound")
	if got := a.revision(); got != rev {
		t.Fatalf("refused port creates changed the revision: %d -> %d", rev, got)
	}

	// Address pairs: the port's MAC unless given, prefixes kept.
	code, out = mk(map[string]any{"network_id": nid, "allowed_address_pairs": []any{
		map[string]any{"ip_address": "10.8.0.250"}, map[string]any{"ip_address": "10.8.1.0/24", "mac_address": "FA:16:3E:AA:BB:CC"}}})
	if code != http.StatusCreated {
		t.Fatalf("pairs: %d %v", code, out)
	}
	vrrp := out["port"].(map[string]any)
	pairs := vrrp["allowed_address_pairs"].([]any)
	if len(pairs) != 2 || pairs[0].(map[string]any)["mac_address"] != vrrp["mac_address"] ||
		pairs[1].(map[string]any)["ip_address"] != "10.8.1.0/24" || pairs[1].(map[string]any)["mac_address"] != "fa:16:3e:aa:bb:cc" {
		t.Fatalf("pairs %v (port MAC %v)", pairs, vrrp["mac_address"])
	}

	// Update: port security cannot go off while the port has groups (409), nor while it
	// has address pairs; both in one request, as `port set --no-security-group
	// --disable-port-security --no-allowed-address` sends, is accepted.
	vid := "/v2.0/ports/" + vm["id"].(string)
	code, out = a.do(tokenA, "PUT", vid, map[string]any{"port": map[string]any{"port_security_enabled": false}})
	wantError(t, code, out, http.StatusConflict, "PortSecurityPortHasSecurityGroup")
	code, out = a.do(tokenA, "PUT", "/v2.0/ports/"+vrrp["id"].(string), map[string]any{"port": map[string]any{
		"port_security_enabled": false, "security_groups": []string{}}})
	wantError(t, code, out, http.StatusConflict, "AddressPairAndPortSecurityRequired")
	off := a.as(tokenA, http.StatusOK, "PUT", vid, map[string]any{"port": map[string]any{
		"port_security_enabled": false, "security_groups": []string{}}})["port"].(map[string]any)
	if off["port_security_enabled"] != false || len(off["security_groups"].([]any)) != 0 {
		t.Fatalf("port security off: %v", off)
	}
	on := a.as(tokenA, http.StatusOK, "PUT", vid, map[string]any{"port": map[string]any{
		"port_security_enabled": true, "security_groups": []string{def["id"].(string)},
		"allowed_address_pairs": []any{map[string]any{"ip_address": "10.8.0.99"}}}})["port"].(map[string]any)
	if on["port_security_enabled"] != true || len(on["security_groups"].([]any)) != 1 || len(on["allowed_address_pairs"].([]any)) != 1 {
		t.Fatalf("port security on again: %v", on)
	}
	// A port keeps its groups without an address (Neutron's ML2 no longer asks for one).
	noAddr := a.as(tokenA, http.StatusOK, "PUT", vid, map[string]any{"port": map[string]any{"fixed_ips": []any{}}})["port"].(map[string]any)
	if len(noAddr["fixed_ips"].([]any)) != 0 || fmt.Sprint(noAddr["security_groups"]) != fmt.Sprint(on["security_groups"]) {
		t.Fatalf("port without its address: %v", noAddr)
	}
	on = a.as(tokenA, http.StatusOK, "PUT", vid, map[string]any{"port": map[string]any{"fixed_ips": on["fixed_ips"]}})["port"].(map[string]any)

	// Everything survives a restart of the API.
	a.stop()
	a.start()
	again := a.as(tokenA, http.StatusOK, "GET", vid, nil)["port"].(map[string]any)
	if fmt.Sprint(again["security_groups"], again["allowed_address_pairs"]) != fmt.Sprint(on["security_groups"], on["allowed_address_pairs"]) {
		t.Fatalf("after restart: %v / %v", again["security_groups"], again["allowed_address_pairs"])
	}
}

// Bulk create of groups, as tempest's create_bulk_security_groups sends it (each item
// wrapped as a single create's body) or with bare items: all created in one write, in
// order, each with its egress rules; a refused item creates none and is named.
func TestSecurityGroupsBulk(t *testing.T) {
	a := newAPI(t)
	rev := a.revision()
	out := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/security-groups", map[string]any{"security_groups": []any{
		map[string]any{"security_group": map[string]any{"name": "a"}},
		map[string]any{"name": "b", "description": "bee", "stateful": false},
	}})
	gs := list(out, "security_groups")
	if len(gs) != 2 || gs[0]["name"] != "a" || gs[1]["name"] != "b" || gs[1]["description"] != "bee" || gs[1]["stateful"] != false ||
		gs[0]["project_id"] != "proj-a" || len(gs[0]["security_group_rules"].([]any)) != 2 {
		t.Fatalf("bulk created %v", gs)
	}
	if got := a.revision(); got != rev+1 {
		t.Fatalf("revision %d after a bulk create, want %d (one write)", got, rev+1)
	}
	for _, g := range gs {
		a.as(tokenA, http.StatusOK, "GET", "/v2.0/security-groups/"+g["id"].(string), nil)
	}
	listed := len(list(a.as(tokenA, http.StatusOK, "GET", "/v2.0/security-groups", nil), "security_groups"))
	if listed != 3 {
		t.Fatalf("%d groups listed, want 3 (default, a, b)", listed)
	}

	rev = a.revision()
	for _, c := range []struct {
		items []any
		code  int
		typ   string
	}{
		{[]any{map[string]any{"name": "x"}, map[string]any{"security_group": map[string]any{"name": "default"}}}, 409, "SecurityGroupDefaultAlreadyExists"},
		{[]any{map[string]any{"name": "x"}, map[string]any{"name": true}}, 400, "HTTPBadRequest"},
		{[]any{map[string]any{"name": "x"}, map[string]any{"security_group_rules": []any{}}}, 400, "HTTPBadRequest"},
	} {
		code, body := a.do(tokenA, "POST", "/v2.0/security-groups", map[string]any{"security_groups": c.items})
		wantError(t, code, body, c.code, c.typ)
		if m := body["NeutronError"].(map[string]any)["message"].(string); !strings.HasPrefix(m, "Item 1: ") {
			t.Errorf("message %q does not name item 1", m)
		}
	}
	if got := a.revision(); got != rev {
		t.Fatalf("refused bulk creates moved the revision %d -> %d", rev, got)
	}
	if n := len(list(a.as(tokenA, http.StatusOK, "GET", "/v2.0/security-groups", nil), "security_groups")); n != listed {
		t.Fatalf("%d groups after refused bulk creates, want %d", n, listed)
	}
}

// Revisions as neutron-tempest-plugin's test_revisions checks them: a rule's create and
// delete give its group a new revision; a port's group changes give the port one.
func TestSecurityGroupRevisions(t *testing.T) {
	a := newAPI(t)
	g := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/security-groups",
		map[string]any{"security_group": map[string]any{"name": "g"}})["security_group"].(map[string]any)
	gpath := "/v2.0/security-groups/" + g["id"].(string)
	revOf := func(path, kind string) float64 {
		t.Helper()
		return a.as(tokenA, http.StatusOK, "GET", path, nil)[kind].(map[string]any)["revision_number"].(float64)
	}
	r0 := revOf(gpath, "security_group")
	rule := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": map[string]any{
		"security_group_id": g["id"], "direction": "ingress", "protocol": "tcp", "port_range_min": 60, "port_range_max": 70}})["security_group_rule"].(map[string]any)
	r1 := revOf(gpath, "security_group")
	if r1 <= r0 {
		t.Fatalf("group revision %v after a rule create, was %v", r1, r0)
	}
	a.as(tokenA, http.StatusNoContent, "DELETE", "/v2.0/security-group-rules/"+rule["id"].(string), nil)
	if r2 := revOf(gpath, "security_group"); r2 <= r1 {
		t.Fatalf("group revision %v after a rule delete, was %v", r2, r1)
	}

	// A port on a network without a subnet (so without an address) takes groups.
	net := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "n"}})["network"].(map[string]any)
	port := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net["id"]}})["port"].(map[string]any)
	ppath := "/v2.0/ports/" + port["id"].(string)
	with := a.as(tokenA, http.StatusOK, "PUT", ppath, map[string]any{"port": map[string]any{"security_groups": []any{g["id"]}}})["port"].(map[string]any)
	if with["revision_number"].(float64) <= port["revision_number"].(float64) || fmt.Sprint(with["security_groups"]) != fmt.Sprint([]any{g["id"]}) {
		t.Fatalf("port with the group: %v (was revision %v)", with, port["revision_number"])
	}
	without := a.as(tokenA, http.StatusOK, "PUT", ppath, map[string]any{"port": map[string]any{"security_groups": []any{}}})["port"].(map[string]any)
	if without["revision_number"].(float64) <= with["revision_number"].(float64) || len(without["security_groups"].([]any)) != 0 {
		t.Fatalf("port without groups: %v (was revision %v)", without, with["revision_number"])
	}
}

// neutron-tempest-plugin's NegativeSecGroupTest on a network without a subnet: a port
// created with a group holds it against deletion, and a group named twice is 400.
func TestSecurityGroupsOnPortWithoutAddress(t *testing.T) {
	a := newAPI(t)
	net := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "n"}})["network"].(map[string]any)
	g := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/security-groups",
		map[string]any{"security_group": map[string]any{"name": "g"}})["security_group"].(map[string]any)
	port := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{
		"network_id": net["id"], "security_groups": []any{g["id"]}}})["port"].(map[string]any)
	if len(port["fixed_ips"].([]any)) != 0 || fmt.Sprint(port["security_groups"]) != fmt.Sprint([]any{g["id"]}) {
		t.Fatalf("port %v", port)
	}
	code, body := a.do(tokenA, "DELETE", "/v2.0/security-groups/"+g["id"].(string), nil)
	wantError(t, code, body, http.StatusConflict, "SecurityGroupInUse")

	plain := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": net["id"]}})["port"].(map[string]any)
	def := list(a.as(tokenA, http.StatusOK, "GET", "/v2.0/security-groups?name=default", nil), "security_groups")[0]
	if fmt.Sprint(plain["security_groups"]) != fmt.Sprint([]any{def["id"]}) {
		t.Fatalf("port without an address: groups %v, want the default group %v", plain["security_groups"], def["id"])
	}
	rev := a.revision()
	code, body = a.do(tokenA, "PUT", "/v2.0/ports/"+plain["id"].(string), map[string]any{"port": map[string]any{
		"security_groups": []any{g["id"], g["id"]}}})
	wantError(t, code, body, http.StatusBadRequest, "HTTPBadRequest")
	if m := body["NeutronError"].(map[string]any)["message"]; m != "Invalid input for security_groups. Reason: Duplicate items in the list: '"+g["id"].(string)+"'." {
		t.Fatalf("message %q", m)
	}
	code, body = a.do(tokenA, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{
		"network_id": net["id"], "security_groups": []any{g["id"], def["id"], g["id"]}}})
	wantError(t, code, body, http.StatusBadRequest, "HTTPBadRequest")
	if a.revision() != rev {
		t.Fatal("refused port writes moved the revision")
	}
	again := a.as(tokenA, http.StatusOK, "GET", "/v2.0/ports/"+plain["id"].(string), nil)["port"].(map[string]any)
	if fmt.Sprint(again["security_groups"]) != fmt.Sprint(plain["security_groups"]) {
		t.Fatalf("groups %v after a refused update, were %v", again["security_groups"], plain["security_groups"])
	}
}

// neutron-tempest-plugin's NegativeSecGroupProtocolTest: IPv6-only protocols, by name or
// number (as a JSON number or string), in an IPv4 rule are 400
// SecurityGroupEthertypeConflictWithProtocol; an IPv6 rule takes them.
func TestRuleIPv6ProtocolsInIPv4Rule(t *testing.T) {
	a := newAPI(t)
	g := a.as(tokenA, http.StatusCreated, "POST", "/v2.0/security-groups",
		map[string]any{"security_group": map[string]any{"name": "g"}})["security_group"].(map[string]any)
	rev := a.revision()
	for _, proto := range []any{"ipv6-encap", "ipv6-frag", "ipv6-icmp", "ipv6-nonxt", "ipv6-opts", "ipv6-route", "icmpv6",
		41, 44, 58, 59, 60, 43, "43"} {
		code, body := a.do(tokenA, "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": map[string]any{
			"security_group_id": g["id"], "direction": "ingress", "ethertype": "IPv4", "protocol": proto}})
		wantError(t, code, body, http.StatusBadRequest, "SecurityGroupEthertypeConflictWithProtocol")
		if m := body["NeutronError"].(map[string]any)["message"]; m != fmt.Sprintf("Invalid ethertype IPv4 for protocol %v.", proto) {
			t.Fatalf("message %q", m)
		}
	}
	if a.revision() != rev {
		t.Fatal("refused rules moved the revision")
	}
	a.as(tokenA, http.StatusCreated, "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": map[string]any{
		"security_group_id": g["id"], "direction": "ingress", "ethertype": "IPv6", "protocol": "ipv6-route"}})
}
