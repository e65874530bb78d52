package northbound_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// doIfMatch sends a request as admin with an If-Match header.
func (a *api) doIfMatch(ifMatch, method, path string, body any) (int, map[string]any) {
	a.t.Helper()
	return a.send(method, path, body, http.Header{"X-Auth-Token": {adminToken}, "If-Match": {ifMatch}})
}

func revOf(a *api, path, kind string) int64 {
	a.t.Helper()
	return int64(a.admin(http.StatusOK, "GET", path, nil)[kind].(map[string]any)["revision_number"].(float64))
}

// TestIfMatchRevision checks If-Match: revision_number=N on the update and delete of
// every resource with revision numbers (and a router's interface changes): another
// revision is 412 RevisionNumberConstraintFailed changing nothing, the current one
// succeeds.
func TestIfMatchRevision(t *testing.T) {
	a := newAPI(t)
	if !hasExtension(a, "revision-if-match") {
		t.Fatal("revision-if-match is not listed")
	}
	netID, subnetID, extID, _ := base(a, "10.0.1.0/24")
	port := a.create("ports", "port", map[string]any{"network_id": netID})
	router := a.create("routers", "router", map[string]any{"name": "r"})
	fip := a.create("floatingips", "floatingip", map[string]any{"floating_network_id": extID})
	sg := a.create("security-groups", "security_group", map[string]any{"name": "g"})
	rule := a.create("security-group-rules", "security_group_rule", map[string]any{"security_group_id": sg["id"], "direction": "ingress"})
	otherNet := a.create("networks", "network", map[string]any{"name": "other"})
	pool := a.create("subnetpools", "subnetpool", map[string]any{"name": "p", "prefixes": []string{"10.99.0.0/16"}})
	for _, c := range []struct {
		method, path, kind string
		show               string
		body               any
		want               int
	}{
		{"PUT", "/v2.0/networks/" + netID, "network", "", map[string]any{"network": map[string]any{"name": "x"}}, http.StatusOK},
		{"PUT", "/v2.0/subnets/" + subnetID, "subnet", "", map[string]any{"subnet": map[string]any{"name": "x"}}, http.StatusOK},
		{"PUT", "/v2.0/ports/" + port["id"].(string), "port", "", map[string]any{"port": map[string]any{"name": "x"}}, http.StatusOK},
		{"PUT", "/v2.0/routers/" + router["id"].(string), "router", "", map[string]any{"router": map[string]any{"name": "x"}}, http.StatusOK},
		{"PUT", "/v2.0/routers/" + router["id"].(string) + "/add_router_interface", "router", "/v2.0/routers/" + router["id"].(string), map[string]any{"subnet_id": subnetID}, http.StatusOK},
		{"PUT", "/v2.0/routers/" + router["id"].(string) + "/remove_router_interface", "router", "/v2.0/routers/" + router["id"].(string), map[string]any{"subnet_id": subnetID}, http.StatusOK},
		{"PUT", "/v2.0/floatingips/" + fip["id"].(string), "floatingip", "", map[string]any{"floatingip": map[string]any{"description": "x"}}, http.StatusOK},
		{"PUT", "/v2.0/security-groups/" + sg["id"].(string), "security_group", "", map[string]any{"security_group": map[string]any{"name": "x"}}, http.StatusOK},
		{"DELETE", "/v2.0/security-group-rules/" + rule["id"].(string), "security_group_rule", "", nil, http.StatusNoContent},
		{"DELETE", "/v2.0/floatingips/" + fip["id"].(string), "floatingip", "", nil, http.StatusNoContent},
		{"DELETE", "/v2.0/ports/" + port["id"].(string), "port", "", nil, http.StatusNoContent},
		{"DELETE", "/v2.0/routers/" + router["id"].(string), "router", "", nil, http.StatusNoContent},
		{"DELETE", "/v2.0/security-groups/" + sg["id"].(string), "security_group", "", nil, http.StatusNoContent},
		{"DELETE", "/v2.0/networks/" + otherNet["id"].(string), "network", "", nil, http.StatusNoContent},
		{"PUT", "/v2.0/subnetpools/" + pool["id"].(string), "subnetpool", "", map[string]any{"subnetpool": map[string]any{"name": "x"}}, http.StatusOK},
		{"DELETE", "/v2.0/subnetpools/" + pool["id"].(string), "subnetpool", "", nil, http.StatusNoContent},
	} {
		show := c.show
		if show == "" {
			show = c.path
		}
		cur := revOf(a, show, c.kind)
		before := a.revision()
		for _, stale := range []int64{cur - 1, cur + 1} {
			code, out := a.doIfMatch(fmt.Sprintf("revision_number=%d", stale), c.method, c.path, c.body)
			wantError(t, code, out, http.StatusPreconditionFailed, "RevisionNumberConstraintFailed")
			if m, want := out["NeutronError"].(map[string]any)["message"], fmt.Sprintf("Constrained to %d, but current revision is %d", stale, cur); m != want {
				t.Errorf("%s %s: message %q, want %q", c.method, c.path, m, want)
			}
		}
		if a.revision() != before || revOf(a, show, c.kind) != cur {
			t.Fatalf("%s %s: a refused constraint changed something", c.method, c.path)
		}
		if code, out := a.doIfMatch(fmt.Sprintf(`"revision_number=%d"`, cur), c.method, c.path, c.body); code != c.want {
			t.Fatalf("%s %s at the current revision %d: %d %v", c.method, c.path, cur, code, out)
		}
	}
}

// TestIfMatchForms checks the If-Match values Neutron does not constrain with (*, other
// tags, weak tags) and those it refuses (two revision_number tags, not an integer), and
// a constraint on a resource without revision numbers.
func TestIfMatchForms(t *testing.T) {
	a := newAPI(t)
	n := a.create("networks", "network", map[string]any{"name": "n"})
	path := "/v2.0/networks/" + n["id"].(string)
	upd := map[string]any{"network": map[string]any{"name": "x"}}
	for _, v := range []string{"*", "foo", `"foo"`, `W/"revision_number=0"`, `"abc", "revision_number=%d"`, ` revision_number=%d `, "revision_number=+%d"} {
		if strings.Contains(v, "%d") {
			v = fmt.Sprintf(v, revOf(a, path, "network"))
		}
		if code, out := a.doIfMatch(v, "PUT", path, upd); code != http.StatusOK {
			t.Errorf("If-Match %s: %d %v", v, code, out)
		}
	}
	for _, c := range []struct{ value, message string }{
		{"revision_number=abc", "Bad if-match request: Revision number etag must be in the format of revision_number=<int>."},
		{"revision_number=1, revision_number=2", "Bad if-match request: Revision number etag must be in the format of revision_number=<int>."},
		{`"revision_number=1", "revision_number=2"`, "Bad if-match request: Multiple revision_number etags are not supported."},
	} {
		for _, method := range []string{"GET", "PUT", "DELETE"} {
			before := a.revision()
			code, out := a.doIfMatch(c.value, method, path, map[string]any{"network": map[string]any{"name": "y"}})
			wantError(t, code, out, http.StatusBadRequest, "BadRequest")
			if m := out["NeutronError"].(map[string]any)["message"]; m != c.message {
				t.Errorf("If-Match %s: message %q", c.value, m)
			}
			if a.revision() != before {
				t.Errorf("If-Match %s on %s changed something", c.value, method)
			}
		}
	}
	code, out := a.doIfMatch("revision_number=1", "DELETE", "/v2.0/dvr-hosts/compute1", nil)
	wantError(t, code, out, http.StatusBadRequest, "BadRequest")
	// a constraint on another resource's update is only on that resource
	if code, out := a.doIfMatch("revision_number=7", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "new"}}); code != http.StatusCreated {
		t.Errorf("POST with If-Match: %d %v", code, out)
	}
}

// TestIfMatchConcurrent sends concurrent updates constrained to the same revision: the
// check is made in each write's transaction, so exactly one succeeds.
func TestIfMatchConcurrent(t *testing.T) {
	a := newAPI(t)
	n := a.create("networks", "network", map[string]any{"name": "n"})
	path := "/v2.0/networks/" + n["id"].(string)
	cur := revOf(a, path, "network")
	const writers = 8
	codes := make([]int, writers)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], _ = a.doIfMatch(fmt.Sprintf("revision_number=%d", cur), "PUT", path,
				map[string]any{"network": map[string]any{"name": fmt.Sprint("w", i)}})
		}()
	}
	wg.Wait()
	var ok, failed int
	for _, c := range codes {
		switch c {
		case http.StatusOK:
			ok++
		case http.StatusPreconditionFailed:
			failed++
		}
	}
	if ok != 1 || failed != writers-1 {
		t.Fatalf("codes %v: want one 200 and %d 412", codes, writers-1)
	}
	if got := revOf(a, path, "network"); got != cur+1 {
		t.Fatalf("revision %d after one update from %d", got, cur)
	}
}
