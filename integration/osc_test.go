//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/northbound"
)

// oscAPI is the Neutron API on a fresh database, served in the test's process, with Debian's
// openstack CLI pointed at it (admin token).
type oscAPI struct {
	t     *testing.T
	URL   string
	Token string
	env   []string
}

// newOSCAPI starts the API for t (stopped when t ends); it fails t when the openstack CLI
// is not installed.
func newOSCAPI(t *testing.T) *oscAPI {
	t.Helper()
	if _, err := exec.LookPath("openstack"); err != nil {
		t.Fatal("python3-openstackclient is not installed (make deps installs it)")
	}
	ctx := context.Background()
	log := zaptest.NewLogger(t)
	store, err := db.Open(ctx, pg.NewDatabase(t), db.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	cfg := northbound.DefaultConfig()
	cfg.AdminToken = "osc-admin"
	api, err := northbound.New(store, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &oscAPI{t: t, URL: srv.URL, Token: cfg.AdminToken,
		env: []string{"OS_AUTH_TYPE=admin_token", "OS_ENDPOINT=" + srv.URL, "OS_TOKEN=" + cfg.AdminToken}}
}

// run runs `openstack args...` and returns its output; a failure fails the test.
func (o *oscAPI) run(args ...string) string {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openstack", args...)
	cmd.Env = append(os.Environ(), o.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		o.t.Fatalf("openstack %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// json runs `openstack args... -f json` and decodes its output into dst.
func (o *oscAPI) json(dst any, args ...string) {
	o.t.Helper()
	out := o.run(append(args, "-f", "json")...)
	if err := json.Unmarshal([]byte(out), dst); err != nil {
		o.t.Fatalf("openstack %s: not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}
