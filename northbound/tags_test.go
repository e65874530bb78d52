package northbound_test

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
)

// tagged creates one resource of proj-a of every tagged collection and returns their
// IDs by collection, with the key of their JSON answers.
func taggedResources(t *testing.T, a *api) (ids map[string]string, keys map[string]string) {
	t.Helper()
	netID, subnetID, extID, _ := base(a, "10.0.0.0/24")
	ids = map[string]string{
		"networks": netID,
		"subnets":  subnetID,
		"ports":    a.create("ports", "port", map[string]any{"network_id": netID, "tenant_id": "proj-a"})["id"].(string),
		"routers":  a.create("routers", "router", map[string]any{"name": "r", "tenant_id": "proj-a"})["id"].(string),
		"floatingips": a.create("floatingips", "floatingip", map[string]any{"floating_network_id": extID,
			"tenant_id": "proj-a"})["id"].(string),
		"security-groups": a.create("security-groups", "security_group", map[string]any{"name": "sg", "tenant_id": "proj-a"})["id"].(string),
		"subnetpools": a.create("subnetpools", "subnetpool", map[string]any{"name": "p", "prefixes": []string{"10.10.0.0/16"},
			"tenant_id": "proj-a"})["id"].(string),
	}
	keys = map[string]string{"networks": "network", "subnets": "subnet", "ports": "port", "routers": "router",
		"floatingips": "floatingip", "security-groups": "security_group", "subnetpools": "subnetpool"}
	return ids, keys
}

func strs(v any) []string {
	out := []string{}
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	sort.Strings(out)
	return out
}

// TestTagRoutes drives neutron-tempest-plugin's tag operations on every tagged
// collection as the owning project: replace all (200 with the tags), add one (201, also
// for a tag it has, with a dot), check one (204; 404 TagNotFound), remove one (204; 404
// TagNotFound), remove all (204). The tags show in the resource's show and list, and each
// change moves its revision_number by one while one that changes nothing does not.
func TestTagRoutes(t *testing.T) {
	a := newAPI(t)
	ids, keys := taggedResources(t, a)
	for coll, id := range ids {
		t.Run(coll, func(t *testing.T) {
			base := "/v2.0/" + coll + "/" + id + "/tags"
			call := func(want int, method, path string, body any) map[string]any {
				t.Helper()
				code, out := a.do(tokenA, method, path, body)
				if code != want {
					t.Fatalf("%s %s: %d, want %d: %v", method, path, code, want, out)
				}
				return out
			}
			show := func() map[string]any {
				t.Helper()
				return call(http.StatusOK, "GET", "/v2.0/"+coll+"/"+id, nil)[keys[coll]].(map[string]any)
			}
			wantTags := func(want ...string) {
				t.Helper()
				sort.Strings(want)
				if got := strs(call(http.StatusOK, "GET", base, nil)["tags"]); !slices.Equal(got, want) {
					t.Fatalf("GET tags: %v, want %v", got, want)
				}
				if got := strs(show()["tags"]); !slices.Equal(got, want) {
					t.Fatalf("show: tags %v, want %v", got, want)
				}
			}
			revisionOf := func() float64 { t.Helper(); return show()["revision_number"].(float64) }

			wantTags()
			r0 := revisionOf()
			out := call(http.StatusOK, "PUT", base, map[string]any{"tags": []string{"red", "blue"}})
			if got := strs(out["tags"]); !slices.Equal(got, []string{"blue", "red"}) {
				t.Fatalf("PUT tags answered %v", out)
			}
			wantTags("red", "blue")
			if r := revisionOf(); r != r0+1 {
				t.Fatalf("revision_number %v after replacing the tags, want %v", r, r0+1)
			}
			call(http.StatusCreated, "PUT", base+"/green", nil)
			call(http.StatusCreated, "PUT", base+"/red", nil)
			call(http.StatusCreated, "PUT", base+"/black.or.white", nil)
			wantTags("red", "blue", "green", "black.or.white")
			if r := revisionOf(); r != r0+3 {
				t.Fatalf("revision_number %v after two new tags and one it had, want %v", r, r0+3)
			}
			call(http.StatusOK, "PUT", base, map[string]any{"tags": []string{"red", "yellow", "purple"}})
			wantTags("red", "yellow", "purple")
			call(http.StatusNoContent, "GET", base+"/red", nil)
			code, out := a.do(tokenA, "GET", base+"/green", nil)
			wantError(t, code, out, http.StatusNotFound, "TagNotFound")
			if msg := out["NeutronError"].(map[string]any)["message"]; msg != "Tag green could not be found." {
				t.Errorf("message %q", msg)
			}
			call(http.StatusNoContent, "DELETE", base+"/red", nil)
			wantTags("yellow", "purple")
			r1 := revisionOf()
			code, out = a.do(tokenA, "DELETE", base+"/green", nil)
			wantError(t, code, out, http.StatusNotFound, "TagNotFound")
			if r := revisionOf(); r != r1 {
				t.Fatalf("a refused delete moved revision_number %v -> %v", r1, r)
			}
			call(http.StatusNoContent, "DELETE", base, nil)
			wantTags()
			listed := call(http.StatusOK, "GET", "/v2.0/"+coll+"?id="+id, nil)
			for _, items := range listed {
				if it := items.([]any); len(it) != 1 || len(it[0].(map[string]any)["tags"].([]any)) != 0 {
					t.Fatalf("listed %v, want the resource with no tags", listed)
				}
			}
		})
	}
}

// TestTagValidation: Neutron's validate_tags and validate_tag: a body without a tags
// list, a duplicate, a non-string or a tag over 255 characters is 400 InvalidInput and
// changes nothing; an empty tag and tags with commas or spaces are tags like others.
func TestTagValidation(t *testing.T) {
	a := newAPI(t)
	net := a.create("networks", "network", map[string]any{"name": "n", "tenant_id": "proj-a"})["id"].(string)
	base := "/v2.0/networks/" + net + "/tags"
	long := strings.Repeat("x", 256)
	refuse(t, a, []refusal{
		{"no tags", tokenA, "PUT", base, map[string]any{"tag": []string{"a"}}, 400, "InvalidInput",
			"Invalid input for operation: Invalid tags body."},
		{"not a body", tokenA, "PUT", base, `["a"]`, 400, "InvalidInput", "Invalid input for operation: Invalid tags body."},
		{"not a list", tokenA, "PUT", base, map[string]any{"tags": "a"}, 400, "InvalidInput",
			"Invalid input for operation: 'a' is not a list."},
		{"null", tokenA, "PUT", base, `{"tags": null}`, 400, "InvalidInput", ""},
		{"duplicates", tokenA, "PUT", base, map[string]any{"tags": []string{"a", "b", "a"}}, 400, "InvalidInput",
			"Invalid input for operation: Duplicate items in the list: 'a'."},
		{"not strings", tokenA, "PUT", base, map[string]any{"tags": []any{"a", 7}}, 400, "InvalidInput",
			"Invalid input for operation: '7' is not a valid string."},
		{"too long", tokenA, "PUT", base, map[string]any{"tags": []string{long}}, 400, "InvalidInput",
			fmt.Sprintf("Invalid input for operation: '%s' exceeds maximum length of 255.", long)},
		{"one too long", tokenA, "PUT", base + "/" + long, nil, 400, "InvalidInput", ""},
		{"check one too long", tokenA, "GET", base + "/" + long, nil, 400, "InvalidInput", ""},
	})
	odd := []string{"", "a,b", "with space", strings.Repeat("é", 255)}
	a.admin(http.StatusOK, "PUT", base, map[string]any{"tags": odd})
	if got := strs(a.admin(http.StatusOK, "GET", base, nil)["tags"]); !slices.Equal(got, []string{"", "a,b", "with space", odd[3]}) {
		t.Fatalf("tags %v, want %v", got, odd)
	}
	a.admin(http.StatusNoContent, "GET", base+"/with%20space", nil)
	a.admin(http.StatusCreated, "PUT", base+"/a%2Fb", nil)
	a.admin(http.StatusNoContent, "GET", base+"/a%2Fb", nil)
	a.admin(http.StatusNoContent, "DELETE", base+"/a%2Cb", nil)
}

// TestTagPolicy: whoever sees a resource reads its tags; its project or an admin changes
// them. Another project's resource (or none) is 404 TagResourceNotFound, a reader's
// change of what it sees and a member's change of another project's shared network are
// 403, and none of them changes anything.
func TestTagPolicy(t *testing.T) {
	a := policyAPI(t)
	netA := a.create("networks", "network", map[string]any{"name": "a", "tenant_id": "proj-a"})["id"].(string)
	netB := a.create("networks", "network", map[string]any{"name": "b", "tenant_id": "proj-b"})["id"].(string)
	sharedB := a.create("networks", "network", map[string]any{"name": "sb", "tenant_id": "proj-b", "shared": true})["id"].(string)
	sgB := a.create("security-groups", "security_group", map[string]any{"name": "sg", "tenant_id": "proj-b"})["id"].(string)
	routerB := a.create("routers", "router", map[string]any{"name": "rb", "tenant_id": "proj-b"})["id"].(string)
	for _, id := range []string{netA, netB, sharedB} {
		a.admin(http.StatusOK, "PUT", "/v2.0/networks/"+id+"/tags", map[string]any{"tags": []string{"red"}})
	}
	a.admin(http.StatusCreated, "PUT", "/v2.0/security-groups/"+sgB+"/tags/red", nil)
	const missing = "9f0b4a0e-6a53-4cf4-9d0e-53b1d3a1e4a7"
	tags := map[string]any{"tags": []string{"x"}}
	refuse(t, a, []refusal{
		{"list another project's", memberAB, "GET", "/v2.0/networks/" + netB + "/tags", nil, 404, "TagResourceNotFound",
			"Resource networks " + netB + " could not be found."},
		{"check another project's", tokenA, "GET", "/v2.0/networks/" + netB + "/tags/red", nil, 404, "TagResourceNotFound", ""},
		{"replace another project's", memberAB, "PUT", "/v2.0/networks/" + netB + "/tags", tags, 404, "TagResourceNotFound", ""},
		{"add to another project's", tokenA, "PUT", "/v2.0/networks/" + netB + "/tags/x", nil, 404, "TagResourceNotFound", ""},
		{"remove from another project's", tokenA, "DELETE", "/v2.0/networks/" + netB + "/tags/red", nil, 404, "TagResourceNotFound", ""},
		{"remove all of another project's", tokenA, "DELETE", "/v2.0/networks/" + netB + "/tags", nil, 404, "TagResourceNotFound", ""},
		{"another project's group", tokenA, "DELETE", "/v2.0/security-groups/" + sgB + "/tags/red", nil, 404, "TagResourceNotFound",
			"Resource security_groups " + sgB + " could not be found."},
		{"another project's router", tokenA, "GET", "/v2.0/routers/" + routerB + "/tags", nil, 404, "TagResourceNotFound", ""},
		{"none", tokenA, "PUT", "/v2.0/ports/" + missing + "/tags/x", nil, 404, "TagResourceNotFound", ""},
		{"reader, another project's", readerA, "PUT", "/v2.0/networks/" + netB + "/tags", tags, 404, "TagResourceNotFound", ""},
		{"reader, its project's", readerA, "PUT", "/v2.0/networks/" + netA + "/tags", tags, 403, "PolicyNotAuthorized",
			"rule:update_networks_tags is disallowed by policy"},
		{"reader removes", readerA, "DELETE", "/v2.0/networks/" + netA + "/tags/red", nil, 403, "PolicyNotAuthorized",
			"rule:delete_networks_tags is disallowed by policy"},
		{"member, shared network", memberAB, "PUT", "/v2.0/networks/" + sharedB + "/tags/x", nil, 403, "PolicyNotAuthorized",
			"rule:update_networks_tags is disallowed by policy"},
		{"member removes from a shared network", memberAB, "DELETE", "/v2.0/networks/" + sharedB + "/tags", nil, 403, "PolicyNotAuthorized", ""},
	})
	// Reading is for whoever sees the resource.
	for _, c := range []struct{ token, path string }{
		{readerA, "/v2.0/networks/" + netA + "/tags"}, {memberAB, "/v2.0/networks/" + sharedB + "/tags"},
	} {
		if code, out := a.do(c.token, "GET", c.path, nil); code != http.StatusOK || !slices.Equal(strs(out["tags"]), []string{"red"}) {
			t.Errorf("GET %s: %d %v, want [red]", c.path, code, out)
		}
	}
	if code, out := a.do(readerA, "GET", "/v2.0/networks/"+netA+"/tags/red", nil); code != http.StatusNoContent {
		t.Errorf("reader checks a tag: %d %v", code, out)
	}
	// The owner and admin change them.
	if code, out := a.do(memberAB, "PUT", "/v2.0/networks/"+netA+"/tags/x", nil); code != http.StatusCreated {
		t.Errorf("owner adds a tag: %d %v", code, out)
	}
	if code, out := a.do(ksAdmin, "DELETE", "/v2.0/networks/"+netB+"/tags", nil); code != http.StatusNoContent {
		t.Errorf("admin removes another project's tags: %d %v", code, out)
	}
}

// TestTagFilters: neutron-tempest-plugin's TagFilterTestJSON on every tagged collection:
// tags (all of), tags-any (any of), not-tags (not all of), not-tags-any (none of), each
// comma-separated, repeated values adding to the list; a collection without tags refuses
// them as filters.
func TestTagFilters(t *testing.T) {
	a := newAPI(t)
	netID, _, extID, _ := base(a, "10.0.0.0/24")
	creators := map[string]func(i int) string{
		"networks": func(int) string {
			return a.create("networks", "network", map[string]any{"name": "n", "tenant_id": "proj-a"})["id"].(string)
		},
		"subnets": func(i int) string {
			n := a.create("networks", "network", map[string]any{"name": "n", "tenant_id": "proj-a"})["id"].(string)
			return a.create("subnets", "subnet", map[string]any{"network_id": n, "cidr": fmt.Sprintf("10.1.%d.0/24", i),
				"ip_version": 4, "tenant_id": "proj-a"})["id"].(string)
		},
		"ports": func(int) string {
			return a.create("ports", "port", map[string]any{"network_id": netID, "tenant_id": "proj-a"})["id"].(string)
		},
		"routers": func(int) string {
			return a.create("routers", "router", map[string]any{"name": "r", "tenant_id": "proj-a"})["id"].(string)
		},
		"floatingips": func(int) string {
			return a.create("floatingips", "floatingip", map[string]any{"floating_network_id": extID, "tenant_id": "proj-a"})["id"].(string)
		},
		"security-groups": func(int) string {
			return a.create("security-groups", "security_group", map[string]any{"name": "sg", "tenant_id": "proj-a"})["id"].(string)
		},
		"subnetpools": func(i int) string {
			return a.create("subnetpools", "subnetpool", map[string]any{"name": "p", "prefixes": []string{fmt.Sprintf("10.%d.0.0/16", 100+i)},
				"tenant_id": "proj-a"})["id"].(string)
		},
	}
	for coll, create := range creators {
		t.Run(coll, func(t *testing.T) {
			var ids []string
			for i := range 5 {
				ids = append(ids, create(i))
			}
			for i, tags := range [][]string{{"red"}, {"red", "blue"}, {"red", "blue", "green"}, {"green"}} {
				a.admin(http.StatusOK, "PUT", "/v2.0/"+coll+"/"+ids[i]+"/tags", map[string]any{"tags": tags})
			}
			key := strings.ReplaceAll(coll, "-", "_")
			for _, c := range []struct {
				query string
				want  []int
			}{
				{"tags=red", []int{0, 1, 2}},
				{"tags=red,blue", []int{1, 2}},
				{"tags=red&tags=blue", []int{1, 2}},
				{"tags-any=blue", []int{1, 2}},
				{"tags-any=red,blue", []int{0, 1, 2}},
				{"not-tags=red", []int{3, 4}},
				{"not-tags=red,blue", []int{0, 3, 4}},
				{"not-tags-any=blue", []int{0, 3, 4}},
				{"not-tags-any=red,blue", []int{3, 4}},
				{"tags=red&not-tags-any=green", []int{0, 1}},
				{"tags=", []int{0, 1, 2, 3, 4}},
			} {
				var got, want []string
				for _, it := range list(a.admin(http.StatusOK, "GET", "/v2.0/"+coll+"?"+c.query, nil), key) {
					if id := it["id"].(string); slices.Contains(ids, id) {
						got = append(got, id)
					}
				}
				for _, i := range c.want {
					want = append(want, ids[i])
				}
				sort.Strings(got)
				sort.Strings(want)
				if !slices.Equal(got, want) {
					t.Errorf("?%s: %v, want %v", c.query, got, want)
				}
			}
		})
	}
	code, out := a.do(adminToken, "GET", "/v2.0/security-group-rules?tags-any=red", nil)
	wantError(t, code, out, http.StatusBadRequest, "HTTPBadRequest")
}

// TestTagsOnCreate: a port takes tags on create, single or bulk (Neutron's
// tag-ports-during-bulk-creation), checked as the tags API checks them; no other
// resource does, and no update does.
func TestTagsOnCreate(t *testing.T) {
	a := newAPI(t)
	netID, _, _, _ := base(a, "10.0.0.0/24")
	p := a.create("ports", "port", map[string]any{"network_id": netID, "tags": []string{"tag-1", "tag-2", "tag-3"}})
	if got := p["tags"].([]any); fmt.Sprint(got) != "[tag-1 tag-2 tag-3]" {
		t.Fatalf("created port's tags %v", got)
	}
	out := a.admin(http.StatusCreated, "POST", "/v2.0/ports", map[string]any{"ports": []any{
		map[string]any{"network_id": netID, "tags": []string{"tag-1", "tag-3"}},
		map[string]any{"network_id": netID},
	}})
	ports := list(out, "ports")
	if fmt.Sprint(ports[0]["tags"]) != "[tag-1 tag-3]" || len(ports[1]["tags"].([]any)) != 0 {
		t.Fatalf("bulk-created ports' tags %v, %v", ports[0]["tags"], ports[1]["tags"])
	}
	if got := list(a.admin(http.StatusOK, "GET", "/v2.0/ports?tags=tag-3", nil), "ports"); len(got) != 2 {
		t.Fatalf("%d ports tagged tag-3, want 2", len(got))
	}
	refuse(t, a, []refusal{
		{"duplicate", adminToken, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": netID,
			"tags": []string{"a", "a"}}}, 400, "HTTPBadRequest", "Invalid input for tags. Reason: Duplicate items in the list: 'a'."},
		{"network", adminToken, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"tags": []string{"a"}}},
			400, "HTTPBadRequest", "Attribute 'tags' not allowed in POST"},
		{"port update", adminToken, "PUT", "/v2.0/ports/" + p["id"].(string), map[string]any{"port": map[string]any{"tags": []string{"a"}}},
			400, "HTTPBadRequest", "Attribute 'tags' not allowed in PUT"},
	})
}

// TestTagsSurviveRestart: tags are stored with their resource.
func TestTagsSurviveRestart(t *testing.T) {
	a := newAPI(t)
	ids, _ := taggedResources(t, a)
	for coll, id := range ids {
		a.admin(http.StatusOK, "PUT", "/v2.0/"+coll+"/"+id+"/tags", map[string]any{"tags": []string{coll, "kept"}})
	}
	a.stop()
	a.start()
	for coll, id := range ids {
		want := []string{"kept", coll}
		sort.Strings(want)
		if got := strs(a.admin(http.StatusOK, "GET", "/v2.0/"+coll+"/"+id+"/tags", nil)["tags"]); !slices.Equal(got, want) {
			t.Errorf("%s: tags %v after restart", coll, got)
		}
	}
}

// TestTagsIfMatch: If-Match: revision_number=N constrains a tag change as it does an
// update of its resource: 412 at another revision, changing nothing.
func TestTagsIfMatch(t *testing.T) {
	a := newAPI(t)
	n := a.create("networks", "network", map[string]any{"name": "n"})
	rev := int(n["revision_number"].(float64))
	put := func(ifMatch int) int {
		t.Helper()
		code, _ := a.doIfMatch(fmt.Sprintf("revision_number=%d", ifMatch), "PUT", "/v2.0/networks/"+n["id"].(string)+"/tags/red", nil)
		return code
	}
	if code := put(rev + 1); code != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match: %d, want 412", code)
	}
	if got := strs(a.admin(http.StatusOK, "GET", "/v2.0/networks/"+n["id"].(string)+"/tags", nil)["tags"]); len(got) != 0 {
		t.Fatalf("tags %v after a refused change", got)
	}
	if code := put(rev); code != http.StatusCreated {
		t.Fatalf("current If-Match: %d, want 201", code)
	}
}

// TestStandardAttrDescription: every resource with standard attributes takes a
// description on create and (but for rules, which have no update) on update, shows it,
// and is filtered by it (standard-attr-description).
func TestStandardAttrDescription(t *testing.T) {
	a := newAPI(t)
	ids, keys := taggedResources(t, a)
	sg := ids["security-groups"]
	ids["security-group-rules"] = a.create("security-group-rules", "security_group_rule", map[string]any{
		"security_group_id": sg, "direction": "ingress", "ethertype": "IPv4", "description": "d1"})["id"].(string)
	keys["security-group-rules"] = "security_group_rule"
	for coll, id := range ids {
		path := "/v2.0/" + coll + "/" + id
		if coll != "security-group-rules" {
			a.admin(http.StatusOK, "PUT", path, map[string]any{keys[coll]: map[string]any{"description": "d1"}})
		}
		if got := a.admin(http.StatusOK, "GET", path, nil)[keys[coll]].(map[string]any)["description"]; got != "d1" {
			t.Errorf("%s: description %v, want d1", coll, got)
		}
		key := strings.ReplaceAll(coll, "-", "_")
		if got := list(a.admin(http.StatusOK, "GET", "/v2.0/"+coll+"?description=d1", nil), key); len(got) != 1 || got[0]["id"] != id {
			t.Errorf("%s?description=d1: %v", coll, got)
		}
	}
	code, out := a.do(adminToken, "GET", "/v2.0/extensions/standard-attr-description", nil)
	if code != http.StatusOK {
		t.Fatalf("standard-attr-description not listed: %d %v", code, out)
	}
	for _, alias := range []string{"standard-attr-tag", "tag-ports-during-bulk-creation"} {
		if code, out := a.do(adminToken, "GET", "/v2.0/extensions/"+alias, nil); code != http.StatusOK {
			t.Errorf("%s not listed: %d %v", alias, code, out)
		}
	}
}
