package northbound_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

var neutronDefaultQuotas = map[string]float64{"network": 100, "subnet": 100, "subnetpool": -1, "port": 500,
	"router": 10, "floatingip": 50, "security_group": 10, "security_group_rule": 100}

func wantQuotas(t *testing.T, got map[string]any, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("quota %s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

func withQuotas(over map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range neutronDefaultQuotas {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

func listedProjects(a *api) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, q := range list(a.admin(http.StatusOK, "GET", "/v2.0/quotas", nil), "quotas") {
		out[q["project_id"].(string)] = q
	}
	return out
}

// TestQuotasAPI walks tempest's quota tests: show, default, set, list, reset, and who
// may do each, and Neutron's refusals of bad limits, which change nothing.
func TestQuotasAPI(t *testing.T) {
	a := newAPI(t)
	wantQuotas(t, a.admin(http.StatusOK, "GET", "/v2.0/quotas/proj-a", nil)["quota"].(map[string]any), neutronDefaultQuotas)
	if got := listedProjects(a); len(got) != 0 {
		t.Fatalf("projects with quotas before any was set: %v", got)
	}

	set := a.admin(http.StatusOK, "PUT", "/v2.0/quotas/proj-a", map[string]any{"quota": map[string]any{"network": 0, "port": "0"}})
	wantQuotas(t, set["quota"].(map[string]any), withQuotas(map[string]float64{"network": 0, "port": 0}))
	q, ok := listedProjects(a)["proj-a"]
	if !ok || q["tenant_id"] != "proj-a" {
		t.Fatalf("proj-a not listed with its tenant_id among projects with quotas: %v", q)
	}
	wantQuotas(t, q, withQuotas(map[string]float64{"network": 0, "port": 0}))

	// A project reads its own limits, defaults and details; not another's, nor the list.
	code, out := a.do(tokenA, "GET", "/v2.0/quotas/proj-a", nil)
	if code != http.StatusOK {
		t.Fatalf("project's own quotas: %d %v", code, out)
	}
	wantQuotas(t, out["quota"].(map[string]any), map[string]float64{"network": 0})
	for _, p := range []string{"/v2.0/quotas/proj-a/default", "/v2.0/quotas/proj-a/details", "/v2.0/quotas/proj-a/details.json"} {
		if code, out := a.do(tokenA, "GET", p, nil); code != http.StatusOK {
			t.Fatalf("GET %s as its project: %d %v", p, code, out)
		}
		code, out := a.do(tokenB, "GET", p, nil)
		wantError(t, code, out, http.StatusForbidden, "PolicyNotAuthorized")
	}
	code, out = a.do(tokenB, "GET", "/v2.0/quotas/proj-a", nil)
	wantError(t, code, out, http.StatusForbidden, "PolicyNotAuthorized")
	code, out = a.do(tokenA, "GET", "/v2.0/quotas", nil)
	wantError(t, code, out, http.StatusForbidden, "PolicyNotAuthorized")
	code, out = a.do(tokenA, "PUT", "/v2.0/quotas/proj-a", map[string]any{"quota": map[string]any{"network": 5}})
	wantError(t, code, out, http.StatusForbidden, "PolicyNotAuthorized")
	code, out = a.do(tokenA, "DELETE", "/v2.0/quotas/proj-a", nil)
	wantError(t, code, out, http.StatusForbidden, "PolicyNotAuthorized")
	if p := a.admin(http.StatusOK, "GET", "/v2.0/quotas/project", nil); p["project"].(map[string]any)["project_id"] != "admin" {
		t.Fatalf("GET /v2.0/quotas/project as admin: %v", p)
	}
	if _, out := a.do(tokenA, "GET", "/v2.0/quotas/tenant", nil); out["tenant"].(map[string]any)["tenant_id"] != "proj-a" {
		t.Fatalf("GET /v2.0/quotas/tenant as proj-a: %v", out)
	}

	// Neutron's attribute map: an integer from -1 to 2147483647, a known resource.
	for _, tc := range []struct {
		body    map[string]any
		typ     string
		message string
	}{
		{map[string]any{"security_group": -2}, "HTTPBadRequest", "Invalid input for security_group. Reason: '-2' is too small - must be at least '-1'."},
		{map[string]any{"security_group": 2147483648}, "HTTPBadRequest", "Invalid input for security_group. Reason: '2147483648' is too large - must be no larger than '2147483647'."},
		{map[string]any{"security_group": "value"}, "InvalidInput", "Invalid input for operation: 'value' is not an integer."},
		{map[string]any{"network": 1, "bogus": 1}, "HTTPBadRequest", "Unrecognized attribute(s) 'bogus'"},
	} {
		code, out := a.do(adminToken, "PUT", "/v2.0/quotas/proj-a", map[string]any{"quota": tc.body})
		wantError(t, code, out, http.StatusBadRequest, tc.typ)
		if m := out["NeutronError"].(map[string]any)["message"]; m != tc.message {
			t.Errorf("PUT %v: message %q, want %q", tc.body, m, tc.message)
		}
	}
	wantQuotas(t, a.admin(http.StatusOK, "GET", "/v2.0/quotas/proj-a", nil)["quota"].(map[string]any),
		withQuotas(map[string]float64{"network": 0, "port": 0}))
	for _, v := range []float64{-1, 0, 10, 2147483647} {
		got := a.admin(http.StatusOK, "PUT", "/v2.0/quotas/proj-a", map[string]any{"quota": map[string]any{"security_group": v}})
		wantQuotas(t, got["quota"].(map[string]any), map[string]float64{"security_group": v})
	}

	// Reset: back to the defaults, off the list; a second reset finds nothing.
	a.admin(http.StatusNoContent, "DELETE", "/v2.0/quotas/proj-a", nil)
	if _, ok := listedProjects(a)["proj-a"]; ok {
		t.Fatal("proj-a still listed after its quotas were reset")
	}
	wantQuotas(t, a.admin(http.StatusOK, "GET", "/v2.0/quotas/proj-a", nil)["quota"].(map[string]any), neutronDefaultQuotas)
	wantQuotas(t, a.admin(http.StatusOK, "GET", "/v2.0/quotas/proj-a/default", nil)["quota"].(map[string]any), neutronDefaultQuotas)
	code, out = a.do(adminToken, "DELETE", "/v2.0/quotas/proj-a", nil)
	wantError(t, code, out, http.StatusNotFound, "TenantQuotaNotFound")
}

// overQuota checks Neutron's OverQuota for resource.
func overQuota(t *testing.T, code int, out map[string]any, resource string) {
	t.Helper()
	wantError(t, code, out, http.StatusConflict, "OverQuota")
	if m, want := out["NeutronError"].(map[string]any)["message"], fmt.Sprintf("Quota exceeded for resources: ['%s'].", resource); m != want {
		t.Fatalf("message %q, want %q", m, want)
	}
}

func setQuota(a *api, project string, limits map[string]any) {
	a.t.Helper()
	a.admin(http.StatusOK, "PUT", "/v2.0/quotas/"+project, map[string]any{"quota": limits})
}

// TestQuotaEnforcement follows tempest's and neutron-tempest-plugin's negative quota
// tests: a create past the limit is 409 OverQuota and changes nothing (the revision
// stays), an admin's create in another project counts against that project, a bulk
// create is refused whole, system-made resources count, and -1 is unlimited.
func TestQuotaEnforcement(t *testing.T) {
	a := newAPI(t)
	refused := func(coll, kind string, fields map[string]any, resource string) {
		t.Helper()
		rev := a.revision()
		code, out := a.do(adminToken, "POST", "/v2.0/"+coll, map[string]any{kind: fields})
		overQuota(t, code, out, resource)
		if got := a.revision(); got != rev {
			t.Fatalf("refused %s create changed the revision %d -> %d", kind, rev, got)
		}
	}

	// Networks: two fit, the third is refused; another project is not limited.
	setQuota(a, "proj-a", map[string]any{"network": 2})
	n1 := a.create("networks", "network", map[string]any{"tenant_id": "proj-a"})
	a.create("networks", "network", map[string]any{"project_id": "proj-a"})
	refused("networks", "network", map[string]any{"tenant_id": "proj-a"}, "network")
	a.create("networks", "network", map[string]any{"tenant_id": "proj-b"})
	code, out := a.do(tokenA, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "mine"}})
	overQuota(t, code, out, "network")

	// A bulk create that does not fit whole creates nothing.
	setQuota(a, "proj-a", map[string]any{"network": 3})
	rev := a.revision()
	code, out = a.do(adminToken, "POST", "/v2.0/networks", map[string]any{"networks": []any{
		map[string]any{"tenant_id": "proj-a"}, map[string]any{"tenant_id": "proj-a"}}})
	overQuota(t, code, out, "network")
	if a.revision() != rev {
		t.Fatal("refused bulk create changed the revision")
	}
	a.admin(http.StatusCreated, "POST", "/v2.0/networks", map[string]any{"networks": []any{map[string]any{"tenant_id": "proj-a"}}})

	// Subnets.
	setQuota(a, "proj-a", map[string]any{"subnet": 1})
	a.create("subnets", "subnet", map[string]any{"network_id": n1["id"], "cidr": "10.0.0.0/24", "ip_version": 4, "tenant_id": "proj-a"})
	refused("subnets", "subnet", map[string]any{"network_id": n1["id"], "cidr": "10.1.0.0/24", "ip_version": 4, "tenant_id": "proj-a"}, "subnet")

	// Ports: the DHCP port of the subnet counts as Neutron counts it.
	details := a.admin(http.StatusOK, "GET", "/v2.0/quotas/proj-a/details", nil)["quota"].(map[string]any)
	if p := details["port"].(map[string]any); p["used"] != 1.0 || p["limit"] != 500.0 || p["reserved"] != 0.0 {
		t.Fatalf("port details %v, want the DHCP port used of 500, nothing reserved", p)
	}
	if n := details["network"].(map[string]any); n["used"] != 3.0 || n["limit"] != 3.0 {
		t.Fatalf("network details %v, want 3 used of 3", n)
	}
	setQuota(a, "proj-a", map[string]any{"port": 2})
	a.create("ports", "port", map[string]any{"network_id": n1["id"], "tenant_id": "proj-a"})
	refused("ports", "port", map[string]any{"network_id": n1["id"], "tenant_id": "proj-a"}, "port")

	// Routers and floating IPs.
	setQuota(a, "proj-b", map[string]any{"router": 1, "floatingip": 1})
	a.create("routers", "router", map[string]any{"name": "r", "tenant_id": "proj-b"})
	refused("routers", "router", map[string]any{"name": "r2", "tenant_id": "proj-b"}, "router")
	ext := a.create("networks", "network", map[string]any{"router:external": true,
		"provider:network_type": "flat", "provider:physical_network": "public"})
	a.create("subnets", "subnet", map[string]any{"network_id": ext["id"], "cidr": "172.24.4.0/24", "ip_version": 4})
	a.create("floatingips", "floatingip", map[string]any{"floating_network_id": ext["id"], "tenant_id": "proj-b"})
	refused("floatingips", "floatingip", map[string]any{"floating_network_id": ext["id"], "tenant_id": "proj-b"}, "floatingip")

	// Security groups: the quota is checked before the default group is made, which
	// counts too (Neutron's API reserves the new group first).
	setQuota(a, "proj-c", map[string]any{"security_group": 1})
	sg := a.create("security-groups", "security_group", map[string]any{"name": "g", "tenant_id": "proj-c"})
	refused("security-groups", "security_group", map[string]any{"name": "g2", "tenant_id": "proj-c"}, "security_group")

	// Security group rules: the default group's four and a group's two egress rules count.
	setQuota(a, "proj-c", map[string]any{"security_group_rule": 7})
	a.create("security-group-rules", "security_group_rule", map[string]any{"security_group_id": sg["id"],
		"direction": "ingress", "tenant_id": "proj-c"})
	refused("security-group-rules", "security_group_rule", map[string]any{"security_group_id": sg["id"],
		"direction": "ingress", "protocol": "tcp", "tenant_id": "proj-c"}, "security_group_rule")
	// A project out of rules gets no group, nor its default group (Neutron reserves
	// the default group's rules too).
	setQuota(a, "proj-d", map[string]any{"security_group_rule": 0})
	refused("security-groups", "security_group", map[string]any{"name": "g", "tenant_id": "proj-d"}, "security_group_rule")
	if got := list(a.admin(http.StatusOK, "GET", "/v2.0/security-groups?project_id=proj-d", nil), "security_groups"); len(got) != 0 {
		t.Fatalf("proj-d has groups after a refused create: %v", got)
	}

	// Unlimited, and a limit below the usage: set unless check_limit asks otherwise.
	setQuota(a, "proj-a", map[string]any{"network": -1})
	a.create("networks", "network", map[string]any{"tenant_id": "proj-a"})
	code, out = a.do(adminToken, "PUT", "/v2.0/quotas/proj-a", map[string]any{"quota": map[string]any{"network": 1, "check_limit": true}})
	wantError(t, code, out, http.StatusBadRequest, "BadRequest")
	if m := out["NeutronError"].(map[string]any)["message"]; m != "Quota limit 1 for network must be greater than or equal to already used 4" {
		t.Fatalf("check_limit message %q", m)
	}
	wantQuotas(t, a.admin(http.StatusOK, "GET", "/v2.0/quotas/proj-a", nil)["quota"].(map[string]any), map[string]float64{"network": -1})
	setQuota(a, "proj-a", map[string]any{"network": 1, "force": true})
	refused("networks", "network", map[string]any{"tenant_id": "proj-a"}, "network")
}

// TestQuotaConcurrentCreates races creates past a limit: the count is taken inside
// each create's write, so exactly the limit is created and the rest are OverQuota.
func TestQuotaConcurrentCreates(t *testing.T) {
	a := newAPI(t)
	const limit, creates = 5, 20
	setQuota(a, "proj-a", map[string]any{"network": limit})
	codes := make([]int, creates)
	outs := make([]map[string]any, creates)
	var wg sync.WaitGroup
	for i := range creates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], outs[i] = a.do(tokenA, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": fmt.Sprint("n", i)}})
		}()
	}
	wg.Wait()
	created := 0
	for i, code := range codes {
		switch code {
		case http.StatusCreated:
			created++
		default:
			overQuota(t, code, outs[i], "network")
		}
	}
	stored := len(list(a.admin(http.StatusOK, "GET", "/v2.0/networks?project_id=proj-a", nil), "networks"))
	if created != limit || stored != limit {
		t.Fatalf("%d created, %d stored; want the limit %d", created, stored, limit)
	}
}

// TestQuotaRoles: a reader reads its project's limits and details but sets and resets
// none (Neutron's admin-only update_quota and delete_quota); a Keystone admin does both.
func TestQuotaRoles(t *testing.T) {
	a := policyAPI(t)
	for _, p := range []string{"/v2.0/quotas/proj-a", "/v2.0/quotas/proj-a/details"} {
		if code, out := a.do(readerA, "GET", p, nil); code != http.StatusOK {
			t.Fatalf("reader GET %s: %d %v", p, code, out)
		}
	}
	code, out := a.do(readerA, "PUT", "/v2.0/quotas/proj-a", map[string]any{"quota": map[string]any{"network": 1}})
	wantError(t, code, out, http.StatusForbidden, "PolicyNotAuthorized")
	if m := out["NeutronError"].(map[string]any)["message"]; m != "rule:update_quota is disallowed by policy" {
		t.Fatalf("reader's PUT refused with %q", m)
	}
	code, out = a.do(memberAB, "DELETE", "/v2.0/quotas/proj-a", nil)
	wantError(t, code, out, http.StatusForbidden, "PolicyNotAuthorized")
	if code, out := a.do(ksAdmin, "PUT", "/v2.0/quotas/proj-a", map[string]any{"quota": map[string]any{"network": 1}}); code != http.StatusOK {
		t.Fatalf("admin PUT: %d %v", code, out)
	}
	_, out = a.do(readerA, "GET", "/v2.0/quotas/proj-a", nil)
	wantQuotas(t, out["quota"].(map[string]any), map[string]float64{"network": 1})
}
