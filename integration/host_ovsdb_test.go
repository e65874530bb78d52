//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/host/ovsdb"
	"github.com/dvrflow/dvrflow/testbed/ovsinst"
)

// needOVS skips a test that needs root and Open vSwitch.
func needOVS(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, ovs-vswitchd); CI runs integration tests as root")
	}
	for _, b := range []string{"ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ip", "nft"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed: run make deps", b)
		}
	}
}

// testNetns creates a network namespace named for this test run and removes it at cleanup.
func testNetns(t *testing.T, tag string) string {
	t.Helper()
	ns := fmt.Sprintf("dfh%d-%s", os.Getpid()%100000, tag)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	return ns
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestHostOVSDBOnRealServer(t *testing.T) {
	needOVS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := zaptest.NewLogger(t)
	ns := testNetns(t, "ovsdb")
	inst, err := ovsinst.Start(ctx, log, "", ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := inst.Stop(); err != nil {
			t.Error(err)
		}
	})
	c, err := ovsdb.Dial(ctx, log, "unix:"+inst.DBSocket())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	for i, n := range []string{"br-int", "br-tun"} {
		b := ovsdb.Bridge{Name: n, DatapathType: "netdev", FailMode: "secure", Protocols: []string{"OpenFlow13"},
			Controllers: []string{"tcp:127.0.0.1:16653"}, DatapathID: fmt.Sprintf("00000000000000a%d", i)}
		if ch, err := c.EnsureBridge(ctx, b); err != nil || !ch {
			t.Fatalf("EnsureBridge(%s) = %v, %v", n, ch, err)
		}
		if ch, err := c.EnsureBridge(ctx, b); err != nil || ch {
			t.Fatalf("EnsureBridge(%s) again = %v, %v; want no change", n, ch, err)
		}
	}
	if _, err := c.EnsurePatchPair(ctx, "br-int", "patch-tun", "br-tun", "patch-int"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.EnsureVXLAN(ctx, "br-tun", "vxlan0", "192.168.248.1"); err != nil {
		t.Fatal(err)
	}
	// What OVS itself says.
	for _, q := range [][]string{
		{"get", "bridge", "br-int", "fail_mode", "protocols", "datapath_type"},
		{"get-controller", "br-int"},
		{"get", "controller", "br-int", "connection_mode"},
		{"get", "interface", "vxlan0", "type", "options"},
		{"get", "interface", "patch-int", "options:peer"},
	} {
		out, err := inst.Vsctl(ctx, q...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("ovs-vsctl %s: %s", strings.Join(q, " "), strings.ReplaceAll(out, "\n", " | "))
	}
	for q, want := range map[string]string{
		"get-controller br-int":                               "tcp:127.0.0.1:16653",
		"get controller br-int connection_mode":               "out-of-band",
		"get interface patch-int type options:peer":           "patch\npatch-tun",
		"get bridge br-int fail_mode protocols datapath_type": "secure\n[OpenFlow13]\nnetdev",
	} {
		if out, _ := inst.Vsctl(ctx, strings.Fields(q)...); out != want {
			t.Errorf("ovs-vsctl %s = %q, want %q", q, out, want)
		}
	}
	if out, _ := inst.Vsctl(ctx, "get", "interface", "vxlan0", "options"); out != `{key=flow, local_ip="192.168.248.1", remote_ip=flow}` {
		t.Errorf("vxlan0 options = %q", out)
	}
	// ovs-vswitchd applies the committed configuration on its own time: wait for br-tun's
	// management socket rather than racing it.
	var show string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if show, err = inst.Ofctl(ctx, "br-tun", "show"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(show, "dpid:00000000000000a1") {
		t.Errorf("br-tun datapath ID not applied:\n%s", show)
	}

	// A VM-style port: a veth inside the host namespace, plugged with iface-id.
	run(t, "ip", "-n", ns, "link", "add", "tap-t1", "type", "veth", "peer", "name", "vm-t1")
	run(t, "ip", "-n", ns, "link", "set", "tap-t1", "up")
	if _, err := c.PlugPort(ctx, "br-int", "tap-t1", "port-1", "fa:16:3e:00:00:01", ""); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	n, err := c.OFPort(wctx, "tap-t1")
	if err != nil {
		t.Fatal(err, inst.Logs())
	}
	if n <= 0 {
		t.Fatalf("ofport = %d", n)
	}
	if out, _ := inst.Vsctl(ctx, "get", "interface", "tap-t1", "ofport", "external_ids:iface-id", "external_ids:attached-mac"); out != fmt.Sprintf("%d\nport-1\n\"fa:16:3e:00:00:01\"", n) {
		t.Errorf("tap-t1 = %q", out)
	}
	if _, err := c.UnplugPort(ctx, "br-int", "tap-t1"); err != nil {
		t.Fatal(err)
	}
	if out, _ := inst.Vsctl(ctx, "list-ports", "br-int"); strings.Contains(out, "tap-t1") {
		t.Errorf("tap-t1 still on br-int: %s", out)
	}
}
