package northbound_test

import (
	"net/http"
	"slices"
	"testing"
)

// TestSubnetPools: create, show, list, update and delete as neutron-tempest-plugin's
// test_subnetpools does it, with Neutron's shape (prefix lengths as strings, address_scope_id
// null), project scoping (a project sees its pools and shared ones), list filters, sorting
// and pagination, and the extensions listed.
func TestSubnetPools(t *testing.T) {
	a := newAPI(t)
	code, out := a.do(tokenA, "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{
		"name": "pa", "description": "d1", "prefixes": []string{"10.11.12.0/24"}, "min_prefixlen": "29"}})
	if code != http.StatusCreated {
		t.Fatalf("member create: %d %v", code, out)
	}
	pa := out["subnetpool"].(map[string]any)
	for k, want := range map[string]any{"name": "pa", "description": "d1", "project_id": "proj-a", "tenant_id": "proj-a",
		"min_prefixlen": "29", "default_prefixlen": "29", "max_prefixlen": "32", "ip_version": float64(4), "shared": false,
		"is_default": false, "address_scope_id": nil, "default_quota": nil, "revision_number": float64(0)} {
		if pa[k] != want {
			t.Errorf("%s = %#v, want %#v", k, pa[k], want)
		}
	}
	if ps := pa["prefixes"].([]any); len(ps) != 1 || ps[0] != "10.11.12.0/24" {
		t.Errorf("prefixes %v", ps)
	}
	id := pa["id"].(string)
	v6 := a.create("subnetpools", "subnetpool", map[string]any{"name": "p6", "prefixes": []string{"2001:db8:3::/48"}, "min_prefixlen": 64})
	if v6["ip_version"] != float64(6) || v6["max_prefixlen"] != "128" {
		t.Errorf("IPv6 pool %v", v6)
	}
	shared := a.create("subnetpools", "subnetpool", map[string]any{"name": "shared", "prefixes": []string{"10.20.0.0/16"}, "shared": true})
	b := a.create("subnetpools", "subnetpool", map[string]any{"name": "pb", "prefixes": []string{"10.30.0.0/16"}, "tenant_id": "proj-b"})

	// Visibility: its own and shared pools.
	if code, _ := a.do(tokenA, "GET", "/v2.0/subnetpools/"+shared["id"].(string), nil); code != http.StatusOK {
		t.Errorf("member shows a shared pool: %d", code)
	}
	code, out = a.do(tokenA, "GET", "/v2.0/subnetpools/"+b["id"].(string), nil)
	wantError(t, code, out, http.StatusNotFound, "SubnetPoolNotFound")
	code, out = a.do(tokenA, "GET", "/v2.0/subnetpools?sort_key=name&sort_dir=desc", nil)
	var names []string
	for _, p := range list(out, "subnetpools") {
		names = append(names, p["name"].(string))
	}
	if code != http.StatusOK || !slices.Equal(names, []string{"shared", "pa"}) {
		t.Errorf("member lists %d %v", code, names)
	}
	out = a.admin(http.StatusOK, "GET", "/v2.0/subnetpools?shared=False&ip_version=4&fields=id&fields=name", nil)
	if got := list(out, "subnetpools"); len(got) != 2 || len(got[0]) != 2 {
		t.Errorf("filtered list %v", got)
	}
	out = a.admin(http.StatusOK, "GET", "/v2.0/subnetpools?limit=3", nil)
	if len(list(out, "subnetpools")) != 3 || out["subnetpools_links"] == nil {
		t.Errorf("page %v", out)
	}
	code, out = a.do(tokenA, "GET", "/v2.0/subnetpools?unknown_filter=value", nil)
	wantError(t, code, out, http.StatusBadRequest, "HTTPBadRequest")

	// Update: name, bounds, description, prefixes grown.
	code, out = a.do(tokenA, "PUT", "/v2.0/subnetpools/"+id, map[string]any{"subnetpool": map[string]any{
		"name": "pa2", "min_prefixlen": "28", "max_prefixlen": "30", "description": "d2", "prefixes": []string{"10.11.12.0/24", "10.11.15.0/24"}}})
	if code != http.StatusOK {
		t.Fatalf("update: %d %v", code, out)
	}
	up := a.admin(http.StatusOK, "GET", "/v2.0/subnetpools/"+id, nil)["subnetpool"].(map[string]any)
	if up["name"] != "pa2" || up["min_prefixlen"] != "28" || up["max_prefixlen"] != "30" || up["default_prefixlen"] != "29" ||
		up["description"] != "d2" || up["revision_number"] != float64(1) || len(up["prefixes"].([]any)) != 2 {
		t.Errorf("updated %v", up)
	}
	out = a.admin(http.StatusOK, "PUT", "/v2.0/subnetpools/"+id, map[string]any{"subnetpool": map[string]any{"prefixes": []string{"10.11.0.0/16"}}})
	if ps := out["subnetpool"].(map[string]any)["prefixes"].([]any); len(ps) != 1 || ps[0] != "10.11.0.0/16" {
		t.Errorf("extended prefixes %v", ps)
	}

	// Extensions and resources.
	var aliases []string
	for _, e := range list(a.admin(http.StatusOK, "GET", "/v2.0/extensions", nil), "extensions") {
		aliases = append(aliases, e["alias"].(string))
	}
	if !slices.Contains(aliases, "subnet_allocation") || !slices.Contains(aliases, "default-subnetpools") {
		t.Errorf("extensions %v", aliases)
	}

	// Delete.
	if code, out := a.do(tokenA, "DELETE", "/v2.0/subnetpools/"+id, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d %v", code, out)
	}
	code, out = a.do(tokenA, "GET", "/v2.0/subnetpools/"+id, nil)
	wantError(t, code, out, http.StatusNotFound, "SubnetPoolNotFound")
}

// TestSubnetPoolRefusals: what neutron-tempest-plugin's negative tests expect, plus
// validation, each refusal changing nothing.
func TestSubnetPoolRefusals(t *testing.T) {
	a := newAPI(t)
	own := a.create("subnetpools", "subnetpool", map[string]any{"name": "pa", "prefixes": []string{"10.11.12.0/24"}, "min_prefixlen": 29,
		"tenant_id": "proj-a"})["id"].(string)
	adminPool := a.create("subnetpools", "subnetpool", map[string]any{"name": "adm", "prefixes": []string{"10.12.0.0/16"}})["id"].(string)
	sharedB := a.create("subnetpools", "subnetpool", map[string]any{"name": "sb", "prefixes": []string{"10.13.0.0/16"}, "shared": true,
		"tenant_id": "proj-b"})["id"].(string)
	pool := func(f map[string]any) map[string]any {
		body := map[string]any{"name": "x", "prefixes": []string{"10.50.0.0/16"}}
		for k, v := range f {
			if v == nil {
				delete(body, k)
			} else {
				body[k] = v
			}
		}
		return map[string]any{"subnetpool": body}
	}
	upd := func(f map[string]any) map[string]any { return map[string]any{"subnetpool": f} }
	const missing = "9f0b4a0e-6a53-4cf4-9d0e-53b1d3a1e4a7"
	refuse(t, a, []refusal{
		{"member shared", tokenA, "POST", "/v2.0/subnetpools", pool(map[string]any{"shared": true}), 403, "PolicyNotAuthorized",
			"(rule:create_subnetpool and rule:create_subnetpool:shared) is disallowed by policy"},
		{"member default", tokenA, "POST", "/v2.0/subnetpools", pool(map[string]any{"is_default": true}), 403, "PolicyNotAuthorized", ""},
		{"member bulk shared", tokenA, "POST", "/v2.0/subnetpools", map[string]any{"subnetpools": []any{pool(nil)["subnetpool"],
			pool(map[string]any{"shared": true})["subnetpool"]}}, 403, "PolicyNotAuthorized", ""},
		{"member makes its pool the default", tokenA, "PUT", "/v2.0/subnetpools/" + own, upd(map[string]any{"is_default": true}), 403, "PolicyNotAuthorized", ""},
		{"member of another project", tokenA, "POST", "/v2.0/subnetpools", pool(map[string]any{"tenant_id": "proj-b"}), 400, "HTTPBadRequest", ""},
		{"show another's pool", tokenA, "GET", "/v2.0/subnetpools/" + adminPool, nil, 404, "SubnetPoolNotFound", ""},
		{"update another's pool", tokenA, "PUT", "/v2.0/subnetpools/" + adminPool, upd(map[string]any{"name": "y"}), 404, "SubnetPoolNotFound", ""},
		{"delete another's pool", tokenA, "DELETE", "/v2.0/subnetpools/" + adminPool, nil, 404, "SubnetPoolNotFound", ""},
		{"update a shared pool of another project", tokenA, "PUT", "/v2.0/subnetpools/" + sharedB, upd(map[string]any{"name": "y"}), 403, "PolicyNotAuthorized", ""},
		{"update missing", tokenA, "PUT", "/v2.0/subnetpools/" + missing, upd(map[string]any{"name": "y"}), 404, "SubnetPoolNotFound", ""},
		{"delete missing", tokenA, "DELETE", "/v2.0/subnetpools/" + missing, nil, 404, "SubnetPoolNotFound", ""},
		{"update shared", adminToken, "PUT", "/v2.0/subnetpools/" + adminPool, upd(map[string]any{"shared": true}), 400, "HTTPBadRequest",
			"Attribute 'shared' not allowed in PUT"},
		{"member updates shared", tokenA, "PUT", "/v2.0/subnetpools/" + adminPool, upd(map[string]any{"shared": true}), 400, "HTTPBadRequest", ""},
		{"update tenant_id", adminToken, "PUT", "/v2.0/subnetpools/" + own, upd(map[string]any{"tenant_id": "admin"}), 400, "HTTPBadRequest", ""},
		{"shrink", tokenA, "PUT", "/v2.0/subnetpools/" + own, upd(map[string]any{"prefixes": []string{"10.11.12.0/26"}}), 400, "IllegalSubnetPoolPrefixUpdate", ""},
		{"no name", adminToken, "POST", "/v2.0/subnetpools", pool(map[string]any{"name": nil}), 400, "HTTPBadRequest",
			"Failed to parse request. Required attribute 'name' not specified"},
		{"blank name", adminToken, "POST", "/v2.0/subnetpools", pool(map[string]any{"name": " "}), 400, "HTTPBadRequest", ""},
		{"no prefixes", adminToken, "POST", "/v2.0/subnetpools", pool(map[string]any{"prefixes": nil}), 400, "HTTPBadRequest", ""},
		{"empty prefixes", adminToken, "POST", "/v2.0/subnetpools", pool(map[string]any{"prefixes": []string{}}), 400, "EmptySubnetPoolPrefixList", ""},
		{"bad prefix", adminToken, "POST", "/v2.0/subnetpools", pool(map[string]any{"prefixes": []string{"10.0.0.0"}}), 400, "HTTPBadRequest", ""},
		{"duplicate prefix", adminToken, "POST", "/v2.0/subnetpools", pool(map[string]any{"prefixes": []string{"10.0.0.0/8", "10.0.0.0/8"}}), 400, "HTTPBadRequest", ""},
		{"negative prefixlen", adminToken, "POST", "/v2.0/subnetpools", pool(map[string]any{"min_prefixlen": -1}), 400, "HTTPBadRequest", ""},
		{"prefixlen not an integer", adminToken, "POST", "/v2.0/subnetpools", pool(map[string]any{"max_prefixlen": "x"}), 400, "HTTPBadRequest", ""},
		{"bounds", adminToken, "POST", "/v2.0/subnetpools", pool(map[string]any{"min_prefixlen": 24, "max_prefixlen": 20}), 400, "IllegalSubnetPoolPrefixBounds", ""},
		{"address scope", adminToken, "POST", "/v2.0/subnetpools", pool(map[string]any{"address_scope_id": missing}), 400, "HTTPBadRequest", ""},
		{"ip_version", adminToken, "POST", "/v2.0/subnetpools", pool(map[string]any{"ip_version": 4}), 400, "HTTPBadRequest", ""},
	})
	// A bulk create is all or nothing.
	refuse(t, a, []refusal{{"bulk with a bad item", adminToken, "POST", "/v2.0/subnetpools", map[string]any{"subnetpools": []any{
		pool(nil)["subnetpool"], pool(map[string]any{"prefixes": []string{}})["subnetpool"]}}, 400, "EmptySubnetPoolPrefixList",
		"Item 1: Empty subnet pool prefix list."}})
	out := a.admin(http.StatusCreated, "POST", "/v2.0/subnetpools", map[string]any{"subnetpools": []any{pool(nil)["subnetpool"],
		pool(map[string]any{"prefixes": []string{"2001:db8::/32"}})["subnetpool"]}})
	if ps := list(out, "subnetpools"); len(ps) != 2 || ps[1]["ip_version"] != float64(6) {
		t.Errorf("bulk create: %v", ps)
	}
	// address_scope_id null is no address scope.
	p := a.create("subnetpools", "subnetpool", map[string]any{"name": "ns", "prefixes": []string{"10.60.0.0/16"}, "address_scope_id": nil})
	if p["address_scope_id"] != nil {
		t.Errorf("address_scope_id %v", p["address_scope_id"])
	}
	// An admin may make a pool the default, one per IP version.
	a.admin(http.StatusOK, "PUT", "/v2.0/subnetpools/"+own, map[string]any{"subnetpool": map[string]any{"is_default": true}})
	refuse(t, a, []refusal{{"second default", adminToken, "POST", "/v2.0/subnetpools", pool(map[string]any{"is_default": true}), 400, "InvalidInput", ""}})
}

// TestSubnetFromPool: a subnet created with subnetpool_id gets its CIDR from the pool
// (prefixlen, cidr, the pool's default_prefixlen, or use_default_subnetpool) and shows its
// pool; exhaustion, another pool on the network, a pool the caller cannot see and a pool
// in use are refused as Neutron does, changing nothing.
func TestSubnetFromPool(t *testing.T) {
	a := newAPI(t)
	poolA := a.create("subnetpools", "subnetpool", map[string]any{"name": "pa", "prefixes": []string{"10.11.12.0/24"}, "min_prefixlen": "28",
		"max_prefixlen": "30", "tenant_id": "proj-a"})["id"].(string)
	other := a.create("subnetpools", "subnetpool", map[string]any{"name": "other", "prefixes": []string{"192.168.0.0/16"}, "tenant_id": "proj-a"})["id"].(string)
	hidden := a.create("subnetpools", "subnetpool", map[string]any{"name": "hidden", "prefixes": []string{"10.99.0.0/16"}})["id"].(string)
	net := func() string {
		_, out := a.do(tokenA, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "n"}})
		return out["network"].(map[string]any)["id"].(string)
	}
	subnet := func(fields map[string]any) (int, map[string]any) {
		body := map[string]any{"ip_version": 4}
		for k, v := range fields {
			body[k] = v
		}
		if _, ok := body["network_id"]; !ok {
			body["network_id"] = net()
		}
		return a.do(tokenA, "POST", "/v2.0/subnets", map[string]any{"subnet": body})
	}
	for _, c := range []struct {
		fields map[string]any
		want   string
	}{
		{map[string]any{"subnetpool_id": poolA, "prefixlen": "30"}, "10.11.12.0/30"},
		{map[string]any{"subnetpool_id": poolA, "cidr": "10.11.12.16/28"}, "10.11.12.16/28"},
		{map[string]any{"subnetpool_id": poolA}, "10.11.12.32/28"},
	} {
		code, out := subnet(c.fields)
		if code != http.StatusCreated {
			t.Fatalf("%v: %d %v", c.fields, code, out)
		}
		sn := out["subnet"].(map[string]any)
		if sn["cidr"] != c.want || sn["subnetpool_id"] != poolA {
			t.Errorf("%v: cidr %v pool %v, want %s", c.fields, sn["cidr"], sn["subnetpool_id"], c.want)
		}
	}
	plainNet := net()
	code, out := subnet(map[string]any{"network_id": plainNet, "cidr": "10.10.10.0/24", "subnetpool_id": nil})
	if code != http.StatusCreated || out["subnet"].(map[string]any)["subnetpool_id"] != nil {
		t.Fatalf("plain subnet: %d %v", code, out)
	}
	// The project has 36 /32s of the pool: a quota of 36 leaves no room for a /30.
	a.admin(http.StatusOK, "PUT", "/v2.0/subnetpools/"+poolA, map[string]any{"subnetpool": map[string]any{"default_quota": 36}})
	refuse(t, a, []refusal{
		{"another pool on the network", tokenA, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": plainNet,
			"ip_version": 4, "subnetpool_id": other, "cidr": "10.100.0.0/28", "gateway_ip": "10.100.0.1"}}, 400, "NetworkSubnetPoolAffinityError", ""},
		{"a pool it cannot see", tokenA, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": plainNet,
			"ip_version": 4, "subnetpool_id": hidden}}, 404, "SubnetPoolNotFound", ""},
		{"cidr and prefixlen", tokenA, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": plainNet,
			"ip_version": 4, "subnetpool_id": other, "cidr": "192.168.0.0/24", "prefixlen": 24}}, 400, "BadRequest", ""},
		{"pool and default", tokenA, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": plainNet,
			"ip_version": 4, "subnetpool_id": other, "use_default_subnetpool": true}}, 400, "BadRequest", ""},
		{"no default pool", tokenA, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": plainNet,
			"ip_version": 4, "use_default_subnetpool": true}}, 400, "BadRequest", "Bad subnets request: No default subnetpool found for IPv4."},
		{"quota", tokenA, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net(),
			"ip_version": 4, "subnetpool_id": poolA, "prefixlen": 30}}, 409, "SubnetPoolQuotaExceeded", ""},
		{"pool in use", tokenA, "DELETE", "/v2.0/subnetpools/" + poolA, nil, 400, "SubnetPoolDeleteError", ""},
	})
	// Exhaustion: /28s fill the pool's /24.
	a.admin(http.StatusOK, "PUT", "/v2.0/subnetpools/"+poolA, map[string]any{"subnetpool": map[string]any{"default_quota": 0}})
	for i := 3; i < 16; i++ {
		if code, out := subnet(map[string]any{"subnetpool_id": poolA}); code != http.StatusCreated {
			t.Fatalf("/28 number %d: %d %v", i, code, out)
		}
	}
	refuse(t, a, []refusal{{"exhausted", tokenA, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"network_id": net(),
		"ip_version": 4, "subnetpool_id": poolA}}, 409, "SubnetAllocationError",
		"Failed to allocate subnet: Insufficient prefix space to allocate subnet size /28."}})

	// use_default_subnetpool: the default pool of the version, if the caller sees it.
	def := a.create("subnetpools", "subnetpool", map[string]any{"name": "def", "prefixes": []string{"172.16.0.0/16"}, "default_prefixlen": 24,
		"is_default": true, "shared": true})["id"].(string)
	code, out = subnet(map[string]any{"use_default_subnetpool": true})
	if code != http.StatusCreated || out["subnet"].(map[string]any)["subnetpool_id"] != def || out["subnet"].(map[string]any)["cidr"] != "172.16.0.0/24" {
		t.Fatalf("default pool: %d %v", code, out)
	}
	// Bulk: distinct prefixes.
	out = a.admin(http.StatusCreated, "POST", "/v2.0/subnets", map[string]any{"subnets": []any{
		map[string]any{"network_id": net(), "ip_version": 4, "subnetpool_id": def},
		map[string]any{"network_id": net(), "ip_version": 4, "subnetpool_id": def, "prefixlen": 25}}})
	if subs := list(out, "subnets"); subs[0]["cidr"] != "172.16.1.0/24" || subs[1]["cidr"] != "172.16.2.0/25" {
		t.Errorf("bulk from a pool: %v %v", subs[0]["cidr"], subs[1]["cidr"])
	}
}

// TestSubnetPoolReaderWrites: a reader's write on a pool is 404 when it cannot see the
// pool and 403 when it can, as for the other resources; it still reads.
func TestSubnetPoolReaderWrites(t *testing.T) {
	a := policyAPI(t)
	own := a.create("subnetpools", "subnetpool", map[string]any{"name": "a", "prefixes": []string{"10.1.0.0/16"}, "tenant_id": "proj-a"})["id"].(string)
	hidden := a.create("subnetpools", "subnetpool", map[string]any{"name": "b", "prefixes": []string{"10.2.0.0/16"}, "tenant_id": "proj-b"})["id"].(string)
	rename := map[string]any{"subnetpool": map[string]any{"name": "x"}}
	refuse(t, a, []refusal{
		{"create", readerA, "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "r", "prefixes": []string{"10.3.0.0/16"}}},
			403, "PolicyNotAuthorized", "rule:create_subnetpool is disallowed by policy"},
		{"update its project's", readerA, "PUT", "/v2.0/subnetpools/" + own, rename, 403, "PolicyNotAuthorized", "rule:update_subnetpool is disallowed by policy"},
		{"delete its project's", readerA, "DELETE", "/v2.0/subnetpools/" + own, nil, 403, "PolicyNotAuthorized", ""},
		{"update another project's", readerA, "PUT", "/v2.0/subnetpools/" + hidden, rename, 404, "SubnetPoolNotFound", ""},
		{"member default", memberAB, "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "r",
			"prefixes": []string{"10.3.0.0/16"}, "is_default": true}}, 403, "PolicyNotAuthorized", ""},
	})
	if code, out := a.do(readerA, "GET", "/v2.0/subnetpools/"+own, nil); code != http.StatusOK {
		t.Fatalf("reader shows its pool: %d %v", code, out)
	}
	if code, out := a.do(memberAB, "POST", "/v2.0/subnetpools", map[string]any{"subnetpool": map[string]any{"name": "m",
		"prefixes": []string{"10.4.0.0/16"}, "is_default": false, "shared": false}}); code != http.StatusCreated {
		t.Fatalf("member creates a non-default, unshared pool: %d %v", code, out)
	}
}
