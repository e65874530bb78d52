package northbound_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// pageLink returns the href of a list's link rel, failing the test without one.
func pageLink(t *testing.T, out map[string]any, coll, rel string) string {
	t.Helper()
	links, _ := out[coll+"_links"].([]any)
	for _, l := range links {
		if m := l.(map[string]any); m["rel"] == rel {
			return m["href"].(string)
		}
	}
	t.Fatalf("no %q link in %v", rel, out[coll+"_links"])
	return ""
}

func hasPageLink(out map[string]any, coll, rel string) bool {
	links, _ := out[coll+"_links"].([]any)
	for _, l := range links {
		if l.(map[string]any)["rel"] == rel {
			return true
		}
	}
	return false
}

func field(items []map[string]any, f string) string {
	var s []string
	for _, it := range items {
		s = append(s, it[f].(string))
	}
	return strings.Join(s, ",")
}

// TestListFilterValidation checks Neutron's filter-validation: a filter on an attribute
// the collection does not have is 400 whether or not anything is listed (all the bad
// names in the message), one it has is accepted on an empty list too, empty values are
// no filter, and a subnet's hidden "shared" filters by its network's shared without
// being shown.
func TestListFilterValidation(t *testing.T) {
	a := newAPI(t)
	if !hasExtension(a, "filter-validation") {
		t.Fatal("filter-validation is not listed")
	}
	for _, path := range []string{"/v2.0/routers?bogus=1&name=x&other=2", "/v2.0/routers?bogus=1&other=2&bogus=3"} {
		code, out := a.do(adminToken, "GET", path, nil)
		wantError(t, code, out, http.StatusBadRequest, "HTTPBadRequest")
		if m := out["NeutronError"].(map[string]any)["message"]; m != "['bogus', 'other'] is invalid attribute for filtering" {
			t.Errorf("%s: message %q", path, m)
		}
	}
	for _, path := range []string{"/v2.0/routers?name=x&distributed=true", "/v2.0/floatingips?port_id=x", "/v2.0/security-group-rules?direction=ingress&tenant_id=p"} {
		coll := strings.ReplaceAll(strings.TrimPrefix(strings.Split(path, "?")[0], "/v2.0/"), "-", "_")
		if got := list(a.admin(http.StatusOK, "GET", path, nil), coll); len(got) != 0 {
			t.Errorf("%s: %v", path, got)
		}
	}
	code, out := a.do(adminToken, "GET", "/v2.0/routers?sort_key=bogus&sort_dir=asc", nil)
	wantError(t, code, out, http.StatusBadRequest, "HTTPBadRequest")
	if m := out["NeutronError"].(map[string]any)["message"]; m != "['bogus'] is invalid attribute for sort_keys" {
		t.Errorf("sort key message %q", m)
	}

	shared := a.create("networks", "network", map[string]any{"name": "shared", "shared": true})
	private := a.create("networks", "network", map[string]any{"name": "private", "tenant_id": "proj-a"})
	a.create("subnets", "subnet", map[string]any{"name": "s-shared", "network_id": shared["id"], "cidr": "10.1.0.0/24", "ip_version": 4})
	a.create("subnets", "subnet", map[string]any{"name": "s-private", "network_id": private["id"], "cidr": "10.2.0.0/24", "ip_version": 4, "tenant_id": "proj-a"})
	for _, c := range []struct {
		token, query, want string
	}{
		{adminToken, "shared=True", "s-shared"},
		{adminToken, "shared=False", "s-private"},
		{adminToken, "shared=true&shared=false&sort_key=name&sort_dir=asc", "s-private,s-shared"},
		{adminToken, "shared=&sort_key=name&sort_dir=asc", "s-private,s-shared"},
		{adminToken, "name=&sort_key=name&sort_dir=asc", "s-private,s-shared"},
		{tokenA, "shared=false", "s-private"},
		{tokenA, "shared=true", "s-shared"},
		{tokenB, "shared=false", ""},
	} {
		code, out := a.do(c.token, "GET", "/v2.0/subnets?"+c.query, nil)
		if code != http.StatusOK {
			t.Fatalf("subnets?%s: %d %v", c.query, code, out)
		}
		items := list(out, "subnets")
		if got := field(items, "name"); got != c.want {
			t.Errorf("subnets?%s as %s: %q, want %q", c.query, c.token, got, c.want)
		}
		for _, it := range items {
			if _, ok := it["shared"]; ok {
				t.Errorf("subnets?%s shows the hidden shared: %v", c.query, it)
			}
		}
	}
}

// TestListPagination walks pages as neutron-tempest-plugin's BaseSearchCriteriaTest
// does: limits, markers, next links to the empty page after the last, previous links
// back to the first, page_reverse from a marker and from the end, sort directions, and
// Neutron's answers to limit=0, bad limits and unknown markers.
func TestListPagination(t *testing.T) {
	a := newAPI(t)
	if !hasExtension(a, "pagination") || !hasExtension(a, "sorting") {
		t.Fatal("pagination or sorting is not listed")
	}
	for _, n := range []string{"test1", "abc1", "test10", "123test", "test1"} {
		a.create("networks", "network", map[string]any{"name": n})
	}
	get := func(q string) map[string]any {
		t.Helper()
		return a.admin(http.StatusOK, "GET", "/v2.0/networks?"+q, nil)
	}
	follow := func(href string) map[string]any {
		t.Helper()
		if !strings.HasPrefix(href, a.url+"/v2.0/networks?") {
			t.Fatalf("link %s is not to the networks of %s", href, a.url)
		}
		return a.admin(http.StatusOK, "GET", strings.TrimPrefix(href, a.url), nil)
	}
	for _, dir := range []string{"asc", "desc"} {
		all := list(get("sort_key=name&sort_dir="+dir), "networks")
		want := field(all, "name")
		if dir == "asc" && want != "123test,abc1,test1,test1,test10" {
			t.Fatalf("sorted: %s", want)
		}
		// one by one with markers
		var got []map[string]any
		for range all {
			q := "limit=1&sort_key=name&sort_dir=" + dir
			if len(got) > 0 {
				q += "&marker=" + got[len(got)-1]["id"].(string)
			}
			p := list(get(q), "networks")
			if len(p) != 1 {
				t.Fatalf("%s: %d items", q, len(p))
			}
			got = append(got, p...)
		}
		if g := field(got, "name"); g != want {
			t.Errorf("%s with markers: %s, want %s", dir, g, want)
		}
		// with next links, to the empty page after the last, then back with previous
		got = nil
		out := get("limit=1&sort_key=name&sort_dir=" + dir)
		for range all {
			got = append(got, list(out, "networks")...)
			out = follow(pageLink(t, out, "networks", "next"))
		}
		if len(list(out, "networks")) != 0 || hasPageLink(out, "networks", "next") {
			t.Fatalf("after the last page: %v", out)
		}
		if g := field(got, "name"); g != want {
			t.Errorf("%s with next links: %s, want %s", dir, g, want)
		}
		var back []map[string]any
		for range all {
			out = follow(pageLink(t, out, "networks", "previous"))
			p := list(out, "networks")
			if len(p) != 1 {
				t.Fatalf("previous page: %v", out)
			}
			back = append(p, back...)
		}
		if g := field(back, "name"); g != want {
			t.Errorf("%s with previous links: %s, want %s", dir, g, want)
		}
		// page_reverse from the end, pages of 2 in the requested order
		var rev []map[string]any
		out = get("limit=2&page_reverse=True&sort_key=name&sort_dir=" + dir)
		for i := 0; i < 3; i++ {
			p := list(out, "networks")
			if len(p) > 2 || len(p) == 0 {
				t.Fatalf("reversed page %d: %v", i, p)
			}
			rev = append(p, rev...)
			if i < 2 {
				out = follow(pageLink(t, out, "networks", "previous"))
			}
		}
		if g := field(rev, "name"); g != want {
			t.Errorf("%s reversed: %s, want %s", dir, g, want)
		}
		// the first page, short, has no previous
		if hasPageLink(out, "networks", "previous") || !hasPageLink(out, "networks", "next") {
			t.Errorf("first reversed page's links: %v", out["networks_links"])
		}
		// tempest's _test_list_pagination_page_reverse: the 2 before the third
		first3 := list(get("limit=3&sort_key=name&sort_dir="+dir), "networks")
		p := list(get("limit=2&page_reverse=True&sort_key=name&sort_dir="+dir+"&marker="+first3[2]["id"].(string)), "networks")
		if g, w := field(p, "name"), field(first3[:2], "name"); g != w {
			t.Errorf("%s reversed from a marker: %s, want %s", dir, g, w)
		}
	}

	// links: the full first page has next and previous, both the same query otherwise
	out := get("limit=2&sort_key=name&sort_dir=asc&name=test1&name=abc1&name=test10")
	items := list(out, "networks")
	next, err := url.Parse(pageLink(t, out, "networks", "next"))
	if err != nil {
		t.Fatal(err)
	}
	nq := next.Query()
	if nq.Get("marker") != items[1]["id"] || nq.Get("limit") != "2" || nq.Get("sort_key") != "name" || len(nq["name"]) != 3 || nq.Has("page_reverse") {
		t.Errorf("next link %s", next)
	}
	prev, err := url.Parse(pageLink(t, out, "networks", "previous"))
	if err != nil {
		t.Fatal(err)
	}
	if pq := prev.Query(); pq.Get("marker") != items[0]["id"] || pq.Get("page_reverse") != "True" || len(pq["name"]) != 3 {
		t.Errorf("previous link %s", prev)
	}
	// a marker the filter leaves out still marks its place
	abc := list(get("name=abc1"), "networks")[0]["id"].(string)
	if g := field(list(get("limit=2&sort_key=name&sort_dir=asc&name=test1&name=test10&marker="+abc), "networks"), "name"); g != "test1,test1" {
		t.Errorf("after a filtered-out marker: %s", g)
	}

	// limit=0 and no limit: everything, no links; a marker without a limit is ignored
	for _, q := range []string{"limit=0", "", "marker=" + abc, "limit=0&marker=" + abc} {
		out := get(q)
		if n := len(list(out, "networks")); n != 5 || out["networks_links"] != nil {
			t.Errorf("?%s: %d networks, links %v", q, n, out["networks_links"])
		}
	}
	for _, q := range []string{"limit=-1", "limit=x", "limit="} {
		code, out := a.do(adminToken, "GET", "/v2.0/networks?"+q, nil)
		wantError(t, code, out, http.StatusBadRequest, "BadRequest")
		l := strings.TrimPrefix(q, "limit=")
		if m := out["NeutronError"].(map[string]any)["message"]; m != "Bad limit request: Limit must be an integer 0 or greater and not '"+l+"'." {
			t.Errorf("?%s: message %q", q, m)
		}
	}
	code, out := a.do(adminToken, "GET", "/v2.0/networks?limit=1&marker=nope", nil)
	wantError(t, code, out, http.StatusNotFound, "NetworkNotFound")
	// subnets are paged through Neutron's objects layer: an unknown marker is ignored
	net := list(get("name=abc1"), "networks")[0]
	a.create("subnets", "subnet", map[string]any{"network_id": net["id"], "cidr": "10.3.0.0/24", "ip_version": 4})
	if got := list(a.admin(http.StatusOK, "GET", "/v2.0/subnets?limit=1&marker=nope", nil), "subnets"); len(got) != 1 {
		t.Errorf("subnets after an unknown marker: %v", got)
	}
}
