//go:build integration

package integration

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestScaleSmall runs cmd/dvrflow-bench-scale at 50 hosts (150 simulated bridges, real
// dvrflowd and PostgreSQL) for correctness, not speed: with -strict it fails when a bridge
// does not hold exactly its desired flows after the cold start or at the end, when the
// controller sends a flow-mod on restart over an unchanged topology, when a host carries a
// network it has no port or qrouter on, when binding a port touches a host outside the
// set that carries its network, or when a port joining a security group touches a host
// without a member.
func TestScaleSmall(t *testing.T) {
	out := runScaleBench(t, "-ports", "40", "-joins", "10")
	for _, want := range []string{"1. cold start", "2. restart", "3. port bound", "4. port joins the shared group"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report has no %q row", want)
		}
	}
}

// TestScaleSmallControllers runs it with three controllers and their default lease: the
// hosts split among them at cold start, the busiest one SIGKILLed and its hosts taken
// over with no flow-mod, and no survivor's lease lapsing (each read from its own API).
func TestScaleSmallControllers(t *testing.T) {
	out := runScaleBench(t, "-controllers", "3", "-ports", "10", "-joins", "5")
	for _, want := range []string{"3 dvrflowd against one database", "2. failover: SIGKILL the busiest controller",
		"lease renewals to convergence", "0 lapses: PASS", "survivors' lease renewals, whole run"} {
		if !strings.Contains(out, want) {
			t.Errorf("the report has no %q", want)
		}
	}
}

// runScaleBench builds dvrflowd and dvrflow-bench-scale and runs it -strict at 50 hosts
// with args added, failing the test when it fails; it returns the report.
func runScaleBench(t *testing.T, args ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("scale smoke test: skipped in -short")
	}
	bin := t.TempDir()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin+"/", "./cmd/dvrflowd", "./cmd/dvrflow-bench-scale")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "dvrflow-bench-scale"), append([]string{"-strict",
		"-dvrflowd", filepath.Join(bin, "dvrflowd"), "-hosts", "50", "-vms-per-host", "4", "-networks", "20",
		"-routers", "8", "-fip-percent", "10", "-snat-hosts", "1", "-shared-members", "20", "-connect-rate", "0",
		"-pg-durable=false", "-timeout", "3m", "-log-level", "warn"}, args...)...)
	cmd.Env = os.Environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	t.Logf("dvrflow-bench-scale %s:\n%s", strings.Join(args, " "), out.String())
	if err != nil {
		t.Fatalf("dvrflow-bench-scale -strict at 50 hosts %s: %v", strings.Join(args, " "), err)
	}
	return out.String()
}
