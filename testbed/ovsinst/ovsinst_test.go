//go:build integration

package ovsinst

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("ovsinst: needs root to run ovs-vswitchd and network namespaces; run as root (CI does)")
	}
	for _, b := range []string{"ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovsdb-tool"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("ovsinst: %s not installed (make deps installs openvswitch-switch)", b)
		}
	}
}

func TestStartFlowsStop(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	inst, err := Start(ctx, zaptest.NewLogger(t), "", "")
	if err != nil {
		t.Fatal(err)
	}
	dir := inst.Dir()
	pids := []int{inst.pids[ovsdbPidFile], inst.pids[vswitchdPidFile]}
	t.Cleanup(func() { _ = inst.Stop() })

	if _, err := inst.Vsctl(ctx, "add-br", "br-t", "--", "set", "bridge", "br-t", "datapath_type=netdev",
		"protocols=OpenFlow13", "fail_mode=secure"); err != nil {
		t.Fatal(err, inst.Logs())
	}
	if _, err := inst.Ofctl(ctx, "br-t", "add-flow", "table=0,priority=10,in_port=LOCAL,actions=drop"); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.OfctlInput(ctx, "br-t", "table=3,priority=5,actions=drop\n", "add-flows", Switch, "-"); err != nil {
		t.Fatal(err)
	}
	out, err := inst.Ofctl(ctx, "br-t", "--no-stats", "dump-flows")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"priority=10,in_port=LOCAL actions=drop", "table=3, priority=5 actions=drop"} {
		if !strings.Contains(out, want) {
			t.Errorf("dump-flows lacks %q:\n%s", want, out)
		}
	}
	if v, err := inst.Appctl(ctx, "ovs-vswitchd", "version"); err != nil || !strings.Contains(v, "ovs-vswitchd") {
		t.Errorf("appctl version = %q, %v", v, err)
	}

	if err := inst.Stop(); err != nil {
		t.Fatal(err)
	}
	if exec.Command("ip", "link", "show", "br-t").Run() == nil {
		t.Error("bridge br-t's tap device left behind after Stop")
	}
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			if inst.ours(pid) {
				t.Errorf("pid %d still running after Stop", pid)
			}
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temp dir %s left behind (stat: %v)", dir, err)
	}
}

func TestInNetnsKeepsCallerDir(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := fmt.Sprintf("ovsinst-t%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	dir := t.TempDir()
	keep := dir + "/mine"
	if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	inst, err := Start(ctx, zaptest.NewLogger(t), dir, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Stop() })
	if _, err := Start(ctx, zaptest.NewLogger(t), dir, ns); err == nil {
		t.Fatal("second Start on the same dir succeeded")
	}
	if _, err := inst.Vsctl(ctx, "add-br", "br-n", "--", "set", "bridge", "br-n", "datapath_type=netdev"); err != nil {
		t.Fatal(err, inst.Logs())
	}
	// The bridge's internal port must appear in the namespace, not in ours.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if exec.Command("ip", "-n", ns, "link", "show", "br-n").Run() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("br-n never appeared in netns %s%s", ns, inst.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if exec.Command("ip", "link", "show", "br-n").Run() == nil {
		t.Error("br-n appeared in the root namespace")
	}
	if err := inst.Stop(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "mine" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("after Stop dir holds %q, want only the caller's file", names)
	}
}
