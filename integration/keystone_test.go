//go:build integration

package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/keystone"
	"github.com/dvrflow/dvrflow/northbound"
	ksbed "github.com/dvrflow/dvrflow/testbed/keystone"
)

// TestKeystone runs the Neutron API with a real Keystone (Debian's package, testbed/keystone)
// deciding who each token is: two projects with a member each and a reader in project A,
// dvrflowd's own service user, dvrflow in the catalog as the network endpoint. It checks
// project isolation, the reader's refusals (404 for what it cannot see, 403 for what it
// sees), admin-only attributes refused to members, admin, bad tokens, the openstack CLI and
// gophercloud with password authentication through Keystone, and a stopped Keystone (503
// for a new token, a cached one still served).
func TestKeystone(t *testing.T) {
	if why := ksbed.Unavailable(); why != "" {
		t.Fatal(why)
	}
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatal("python3-openstackclient is not installed (make deps installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	ks, err := ksbed.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("keystone up in %s at %s", time.Since(t0).Round(100*time.Millisecond), ks.URL)
	defer func() {
		if t.Failed() {
			t.Logf("keystone's log:\n%s", ks.Log())
		}
		if err := ks.Close(); err != nil {
			t.Error(err)
		}
	}()
	adm, err := ks.Admin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	projects := map[string]string{}
	for _, p := range []string{"service", "project-a", "project-b"} {
		if projects[p], err = adm.CreateProject(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []struct{ name, project, role string }{
		{"alice", "project-a", "member"},
		{"bob", "project-b", "member"},
		{"rita", "project-a", "reader"},
	} {
		if _, err := adm.CreateUser(ctx, u.name, u.name+"-pw", projects[u.project], u.role); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("keystone set up (3 projects, 3 users) at %s", time.Since(t0).Round(100*time.Millisecond))

	// The openstack CLI: password authentication through Keystone, with OS_* variables or
	// a clouds.yaml (docs/operator.md shows both).
	clouds := filepath.Join(t.TempDir(), "clouds.yaml")
	cloudsYAML := fmt.Sprintf(`clouds:
  dvrflow-bob:
    auth:
      auth_url: %s
      username: bob
      password: bob-pw
      project_name: project-b
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
`, ks.URL)
	if err := os.WriteFile(clouds, []byte(cloudsYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	osc := func(user, password, project string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "openstack", args...)
		for _, e := range os.Environ() {
			if !strings.HasPrefix(e, "OS_") {
				cmd.Env = append(cmd.Env, e)
			}
		}
		if user == "bob" {
			cmd.Env = append(cmd.Env, "OS_CLIENT_CONFIG_FILE="+clouds, "OS_CLOUD=dvrflow-bob")
		} else {
			cmd.Env = append(cmd.Env, "OS_AUTH_URL="+ks.URL, "OS_IDENTITY_API_VERSION=3", "OS_USERNAME="+user,
				"OS_PASSWORD="+password, "OS_PROJECT_NAME="+project, "OS_USER_DOMAIN_NAME=Default",
				"OS_PROJECT_DOMAIN_NAME=Default", "OS_REGION_NAME="+ksbed.Region, "OS_INTERFACE=public")
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// dvrflowd's own user, as docs/operator.md registers it.
	for _, args := range [][]string{
		{"user", "create", "--domain", "Default", "--password", "dvrflow-pw", "dvrflow"},
		{"role", "create", "service"},
		{"role", "add", "--project", "service", "--user", "dvrflow", "service"},
	} {
		if out, err := osc(ksbed.AdminUser, ks.AdminPassword, ksbed.AdminProject, args...); err != nil {
			t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	log := zaptest.NewLogger(t)
	store, err := db.Open(ctx, pg.NewDatabase(t), db.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	kcfg := keystone.DefaultConfig()
	kcfg.AuthURL, kcfg.Username, kcfg.Password, kcfg.Project = ks.URL, "dvrflow", "dvrflow-pw", "service"
	cfg := northbound.DefaultConfig()
	if cfg.Keystone, err = keystone.New(kcfg); err != nil {
		t.Fatal(err)
	}
	api, err := northbound.New(store, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	for _, args := range [][]string{
		{"service", "create", "--name", "neutron", "network"},
		{"endpoint", "create", "--region", ksbed.Region, "network", "public", srv.URL},
	} {
		if out, err := osc(ksbed.AdminUser, ks.AdminPassword, ksbed.AdminProject, args...); err != nil {
			t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	token := func(user, project string) string {
		t.Helper()
		tok, err := ks.Token(ctx, user, user+"-pw", project)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	alice, bob, rita := token("alice", "project-a"), token("bob", "project-b"), token("rita", "project-a")
	admin, err := ks.Token(ctx, ksbed.AdminUser, ks.AdminPassword, ksbed.AdminProject)
	if err != nil {
		t.Fatal(err)
	}
	do := func(tok, method, path string, body any) (int, map[string]any, http.Header) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			raw, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			rd = bytes.NewReader(raw)
		}
		req, err := http.NewRequestWithContext(ctx, method, srv.URL+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if tok != "" {
			req.Header.Set("X-Auth-Token", tok)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		raw, _ := io.ReadAll(resp.Body)
		if len(raw) > 0 {
			if err := json.Unmarshal(raw, &out); err != nil {
				t.Fatalf("%s %s: %d, not JSON: %s", method, path, resp.StatusCode, raw)
			}
		}
		return resp.StatusCode, out, resp.Header
	}
	want := func(tok string, code int, errType, method, path string, body any) map[string]any {
		t.Helper()
		got, out, _ := do(tok, method, path, body)
		if got != code {
			t.Fatalf("%s %s: %d, want %d: %v", method, path, got, code, out)
		}
		if errType != "" {
			if ne, _ := out["NeutronError"].(map[string]any); ne["type"] != errType {
				t.Fatalf("%s %s: %v, want NeutronError %s", method, path, out, errType)
			}
		}
		return out
	}
	names := func(tok string) []string {
		t.Helper()
		var ns []string
		for _, n := range want(tok, 200, "", "GET", "/v2.0/networks", nil)["networks"].([]any) {
			ns = append(ns, n.(map[string]any)["name"].(string))
		}
		slices.Sort(ns)
		return ns
	}

	// A member creates in its own project.
	netA := want(alice, 201, "", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "net-a"}})["network"].(map[string]any)
	if netA["project_id"] != projects["project-a"] {
		t.Fatalf("alice's network in project %v, want project-a %s", netA["project_id"], projects["project-a"])
	}
	netB := want(bob, 201, "", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "net-b"}})["network"].(map[string]any)
	pathA, pathB := "/v2.0/networks/"+netA["id"].(string), "/v2.0/networks/"+netB["id"].(string)

	// Project B neither sees nor changes A's network: 404, as Neutron hides it.
	want(bob, 404, "NetworkNotFound", "GET", pathA, nil)
	want(bob, 404, "NetworkNotFound", "PUT", pathA, map[string]any{"network": map[string]any{"name": "mine"}})
	want(bob, 404, "NetworkNotFound", "DELETE", pathA, nil)
	if got := names(bob); !slices.Equal(got, []string{"net-b"}) {
		t.Fatalf("bob lists %v, want only net-b", got)
	}

	// The reader of A reads A's network and writes nothing.
	if got := names(rita); !slices.Equal(got, []string{"net-a"}) {
		t.Fatalf("rita lists %v, want only net-a", got)
	}
	want(rita, 200, "", "GET", pathA, nil)
	out := want(rita, 403, "PolicyNotAuthorized", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "r"}})
	if msg := out["NeutronError"].(map[string]any)["message"]; msg != "rule:create_network is disallowed by policy" {
		t.Fatalf("reader's create refused with %q", msg)
	}
	want(rita, 403, "PolicyNotAuthorized", "PUT", pathA, map[string]any{"network": map[string]any{"name": "r"}})
	want(rita, 403, "PolicyNotAuthorized", "DELETE", pathA, nil)
	// Another project's network is hidden from the reader as from a member: 404.
	want(rita, 404, "NetworkNotFound", "PUT", pathB, map[string]any{"network": map[string]any{"name": "r"}})
	want(rita, 404, "NetworkNotFound", "DELETE", pathB, nil)

	// What Neutron's default policies leave to admin is 403 to a member.
	portOf := func(f map[string]any) map[string]any {
		f["network_id"] = netA["id"]
		return map[string]any{"port": f}
	}
	for _, r := range []struct {
		name, method, path string
		body               any
	}{
		{"provider:network_type", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:network_type": "vlan"}}},
		{"provider:physical_network", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"provider:physical_network": "public"}}},
		{"provider:segmentation_id", "PUT", pathA, map[string]any{"network": map[string]any{"provider:segmentation_id": 1001}}},
		{"router:external", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"router:external": true}}},
		{"router:external on update", "PUT", pathA, map[string]any{"network": map[string]any{"router:external": true}}},
		{"shared", "PUT", pathA, map[string]any{"network": map[string]any{"shared": true}}},
		{"binding:host_id", "POST", "/v2.0/ports", portOf(map[string]any{"binding:host_id": "compute1"})},
		{"binding:profile", "POST", "/v2.0/ports", portOf(map[string]any{"binding:profile": map[string]any{"x": "y"}})},
		{"distributed", "POST", "/v2.0/routers", map[string]any{"router": map[string]any{"distributed": false}}},
	} {
		want(alice, 403, "PolicyNotAuthorized", r.method, r.path, r.body)
	}
	// Another project's ID is Neutron's populate_project_id refusal: 400.
	want(alice, 400, "HTTPBadRequest", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"project_id": projects["project-b"]}})
	want(alice, 400, "HTTPBadRequest", "POST", "/v2.0/routers", map[string]any{"router": map[string]any{"tenant_id": projects["project-b"]}})
	if got := names(admin); !slices.Equal(got, []string{"net-a", "net-b"}) {
		t.Fatalf("refused creates left networks: admin lists %v", got)
	}
	// A Keystone admin sets them, in any project.
	phys := want(admin, 201, "", "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "phys-b",
		"provider:network_type": "vlan", "provider:physical_network": "public", "provider:segmentation_id": 100,
		"project_id": projects["project-b"]}})["network"].(map[string]any)
	if got := names(bob); !slices.Equal(got, []string{"net-b", "phys-b"}) {
		t.Fatalf("bob lists %v, want net-b and the admin's phys-b", got)
	}
	want(admin, 204, "", "DELETE", "/v2.0/networks/"+phys["id"].(string), nil)
	// A member's write on a shared network of another project it sees: 403.
	want(admin, 200, "", "PUT", pathB, map[string]any{"network": map[string]any{"shared": true}})
	want(alice, 403, "PolicyNotAuthorized", "PUT", pathB, map[string]any{"network": map[string]any{"name": "mine"}})
	want(rita, 403, "PolicyNotAuthorized", "DELETE", pathB, nil)
	want(admin, 200, "", "PUT", pathB, map[string]any{"network": map[string]any{"shared": false}})

	gophercloudClients(ctx, t, ks.URL)

	// Admin sees every project's.
	if got := names(admin); !slices.Equal(got, []string{"net-a", "net-b"}) {
		t.Fatalf("admin lists %v, want net-a and net-b", got)
	}
	want(admin, 200, "", "PUT", pathA, map[string]any{"network": map[string]any{"description": "checked"}})

	// A token Keystone does not know, and none: 401 pointing at Keystone.
	for _, tok := range []string{"", "not-a-token", alice[:len(alice)-4] + "AAAA"} {
		code, out, h := do(tok, "GET", "/v2.0/networks", nil)
		ne, _ := out["NeutronError"].(map[string]any)
		if code != 401 || ne["type"] != "NotAuthenticated" || h.Get("WWW-Authenticate") != `Keystone uri="`+ks.URL+`"` {
			t.Fatalf("token %q: %d %v, WWW-Authenticate %q", tok, code, out, h.Get("WWW-Authenticate"))
		}
	}

	// The openstack CLI finds dvrflow in the catalog.
	listed, err := osc("alice", "alice-pw", "project-a", "network", "list", "-f", "value", "-c", "Name")
	if err != nil || strings.Fields(listed)[0] != "net-a" || len(strings.Fields(listed)) != 1 {
		t.Fatalf("alice: openstack network list: %v\n%s", err, listed)
	}
	listed, err = osc("bob", "", "", "network", "list", "-f", "value", "-c", "Name")
	if err != nil || strings.TrimSpace(listed) != "net-b" {
		t.Fatalf("bob: openstack network list: %v\n%s", err, listed)
	}
	if out, err := osc("rita", "rita-pw", "project-a", "network", "create", "r"); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("rita: openstack network create: %v, want a 403\n%s", err, out)
	}
	cliTopology(t, osc, ks.AdminPassword, netA["id"].(string))

	// Keystone stopped: a token validated before is still served from the cache; a new
	// one cannot be checked: 503.
	fresh := token("bob", "project-b")
	ks.Stop()
	if got := names(alice); !slices.Equal(got, []string{"net-a"}) {
		t.Fatalf("alice (cached) lists %v with Keystone stopped", got)
	}
	want(fresh, 503, "ServiceUnavailable", "GET", "/v2.0/networks", nil)
	if err := ks.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(fresh); !slices.Equal(got, []string{"net-b"}) {
		t.Fatalf("bob's new token after Keystone's restart lists %v", got)
	}
}

// gophercloudClients drives dvrflow with gophercloud as Go clients of a cloud do:
// openstack.AuthenticatedClient with a password against Keystone, the network endpoint
// from its catalog. A member creates and lists a network; the member of the other
// project neither sees nor changes it (404); the network is deleted again.
func gophercloudClients(ctx context.Context, t *testing.T, authURL string) {
	t.Helper()
	client := func(user, project string) *gophercloud.ServiceClient {
		t.Helper()
		provider, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: authURL,
			Username: user, Password: user + "-pw", DomainName: "Default", TenantName: project})
		if err != nil {
			t.Fatalf("gophercloud: %s authenticates: %v", user, err)
		}
		c, err := openstack.NewNetworkV2(provider, gophercloud.EndpointOpts{Region: ksbed.Region})
		if err != nil {
			t.Fatalf("gophercloud: %s finds the network endpoint: %v", user, err)
		}
		return c
	}
	alice, bob := client("alice", "project-a"), client("bob", "project-b")
	listed := func(c *gophercloud.ServiceClient) []string {
		t.Helper()
		pages, err := networks.List(c, networks.ListOpts{}).AllPages(ctx)
		if err != nil {
			t.Fatalf("gophercloud: list networks: %v", err)
		}
		ns, err := networks.ExtractNetworks(pages)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, n := range ns {
			names = append(names, n.Name)
		}
		slices.Sort(names)
		return names
	}
	n, err := networks.Create(ctx, alice, networks.CreateOpts{Name: "gc-a"}).Extract()
	if err != nil {
		t.Fatalf("gophercloud: alice creates a network: %v", err)
	}
	if n.ProjectID == "" || n.Status != "ACTIVE" {
		t.Errorf("gophercloud: alice's network %+v", n)
	}
	if got := listed(alice); !slices.Equal(got, []string{"gc-a", "net-a"}) {
		t.Errorf("gophercloud: alice lists %v, want gc-a and net-a", got)
	}
	if got := listed(bob); !slices.Equal(got, []string{"net-b"}) {
		t.Errorf("gophercloud: bob lists %v, want only net-b", got)
	}
	name := "bob's"
	for what, err := range map[string]error{
		"shows":   networks.Get(ctx, bob, n.ID).Err,
		"updates": networks.Update(ctx, bob, n.ID, networks.UpdateOpts{Name: &name}).Err,
		"deletes": networks.Delete(ctx, bob, n.ID).ExtractErr(),
	} {
		if !gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			t.Errorf("gophercloud: bob %s alice's network: %v, want 404", what, err)
		}
	}
	if got, err := networks.Get(ctx, alice, n.ID).Extract(); err != nil || got.Name != "gc-a" {
		t.Errorf("gophercloud: alice's network after bob's attempts: %+v, %v", got, err)
	}
	if err := networks.Delete(ctx, alice, n.ID).ExtractErr(); err != nil {
		t.Errorf("gophercloud: alice deletes her network: %v", err)
	}
}

// cliTopology drives dvrflow with the openstack CLI through Keystone as a tenant does:
// the admin makes an external network; alice (member of project A) builds a subnet on
// netA, a router with an interface and a gateway, a port, a security group with a rule
// and a floating IP on the port. Bob (project B) can neither see nor change any of them,
// rita (reader of A) sees them and changes nothing, and alice cannot set what is admin's.
func cliTopology(t *testing.T, osc func(user, password, project string, args ...string) (string, error), adminPassword, netA string) {
	t.Helper()
	run := func(user, password, project string, args ...string) string {
		t.Helper()
		out, err := osc(user, password, project, args...)
		if err != nil {
			t.Fatalf("%s: openstack %s: %v\n%s", user, strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(out)
	}
	admin := func(args ...string) string {
		return run(ksbed.AdminUser, adminPassword, ksbed.AdminProject, args...)
	}
	alice := func(args ...string) string { return run("alice", "alice-pw", "project-a", args...) }
	id := []string{"-f", "value", "-c", "id"}

	admin(append([]string{"network", "create", "--external", "cli-ext"}, id...)...)
	admin("subnet", "create", "--network", "cli-ext", "--subnet-range", "203.0.113.0/24", "--no-dhcp", "cli-ext-sub")

	subnet := alice(append([]string{"subnet", "create", "--network", netA, "--subnet-range", "10.20.0.0/24", "cli-sub"}, id...)...)
	router := alice(append([]string{"router", "create", "cli-router"}, id...)...)
	alice("router", "add", "subnet", router, subnet)
	alice("router", "set", "--external-gateway", "cli-ext", router)
	group := alice(append([]string{"security", "group", "create", "cli-web"}, id...)...)
	alice("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "80", "--ingress", group)
	port := alice(append([]string{"port", "create", "--network", netA, "--security-group", group, "cli-port"}, id...)...)
	fip := alice(append([]string{"floating", "ip", "create", "--port", port, "cli-ext"}, id...)...)
	if got := alice("floating", "ip", "show", fip, "-f", "value", "-c", "port_id"); got != port {
		t.Fatalf("floating ip's port %q, want %s", got, port)
	}
	if got := alice("router", "show", router, "-f", "json", "-c", "interfaces_info"); !strings.Contains(got, subnet) {
		t.Fatalf("router's interfaces %s lack subnet %s", got, subnet)
	}

	// Project B sees none of it and changes none of it: "No ... found" (404).
	for _, args := range [][]string{
		{"network", "show", netA},
		{"subnet", "show", subnet},
		{"router", "show", router},
		{"router", "set", "--name", "bobs", router},
		{"router", "delete", router},
		{"port", "show", port},
		{"port", "set", "--name", "bobs", port},
		{"port", "delete", port},
		{"security", "group", "show", group},
		{"floating", "ip", "delete", fip},
	} {
		out, err := osc("bob", "", "", args...)
		if err == nil || !strings.Contains(out, "No ") && !strings.Contains(out, "404") {
			t.Errorf("bob: openstack %s: %v, want not found\n%s", strings.Join(args, " "), err, out)
		}
	}
	// The reader of A sees them and writes nothing (403).
	if got := run("rita", "rita-pw", "project-a", "port", "show", port, "-f", "value", "-c", "name"); got != "cli-port" {
		t.Errorf("rita: port show: %q", got)
	}
	for _, args := range [][]string{
		{"router", "create", "rita-router"},
		{"router", "remove", "subnet", router, subnet},
		{"port", "set", "--name", "ritas", port},
		{"security", "group", "rule", "create", "--protocol", "udp", group},
		{"floating", "ip", "unset", "--port", fip},
	} {
		out, err := osc("rita", "rita-pw", "project-a", args...)
		if err == nil || !strings.Contains(out, "403") && !strings.Contains(out, "disallowed by policy") {
			t.Errorf("rita: openstack %s: %v, want 403\n%s", strings.Join(args, " "), err, out)
		}
	}
	// What is admin's stays admin's.
	for _, args := range [][]string{
		{"network", "create", "--provider-network-type", "vlan", "--provider-physical-network", "public", "alice-vlan"},
		{"network", "create", "--external", "alice-ext"},
		{"port", "set", "--host", "compute1", port},
	} {
		out, err := osc("alice", "alice-pw", "project-a", args...)
		if err == nil || !strings.Contains(out, "403") && !strings.Contains(out, "disallowed by policy") {
			t.Errorf("alice: openstack %s: %v, want 403\n%s", strings.Join(args, " "), err, out)
		}
	}

	// Alice takes it down again, as a tenant does.
	alice("floating", "ip", "delete", fip)
	alice("port", "delete", port)
	alice("router", "unset", "--external-gateway", router)
	alice("router", "remove", "subnet", router, subnet)
	alice("router", "delete", router)
	alice("security", "group", "delete", group)
	alice("subnet", "delete", subnet)
	admin("network", "delete", "cli-ext")
}
