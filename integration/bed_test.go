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

	"github.com/dvrflow/dvrflow/host/agent"
	"github.com/dvrflow/dvrflow/host/vmport"
	"github.com/dvrflow/dvrflow/testbed/bed"
)

func needBed(t *testing.T) {
	t.Helper()
	needOVS(t)
	for _, b := range []string{"tcpdump", "ping", "sysctl"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed: run make deps", b)
		}
	}
}

// assertNothingLeft checks, independently of the bed's own bookkeeping, that nothing
// with prefix is left: namespaces, root links, processes using the bed's directory,
// the directory itself.
func assertNothingLeft(t *testing.T, prefix string) {
	t.Helper()
	if left, err := bed.Leftovers(prefix); err != nil || len(left) > 0 {
		t.Errorf("leftovers of bed %s: %q (err %v)", prefix, left, err)
	}
	ns, _ := exec.Command("ip", "netns", "list").Output()
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, out := range []string{string(ns), string(links)} {
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, " "+prefix+"-") || strings.HasPrefix(line, prefix+"-") {
				t.Errorf("left behind: %s", line)
			}
		}
	}
	ps, _ := exec.Command("ps", "-eo", "pid,args").Output()
	for _, line := range strings.Split(string(ps), "\n") {
		if strings.Contains(line, bed.Dir(prefix)+"/") {
			t.Errorf("process left behind: %s", line)
		}
	}
	if _, err := os.Stat(bed.Dir(prefix)); !os.IsNotExist(err) {
		t.Errorf("bed dir %s left behind (stat: %v)", bed.Dir(prefix), err)
	}
}

// TestBedFlowVXLANPing builds a 2-host bed, sets up the host bridges in secure mode
// with a controller nobody answers, installs by hand the few flows that carry VM1
// (host1) <-> VM2 (host2) over the flow-based vxlan0 port, proves the ping on the
// wire, and checks that Close leaves nothing behind.
func TestBedFlowVXLANPing(t *testing.T) {
	needBed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	log := zaptest.NewLogger(t)
	prefix := fmt.Sprintf("bt%d", os.Getpid()%1000000)
	// Its own underlay, so it can run while a bed on the default one is up.
	b, err := bed.New(ctx, log, bed.Config{Prefix: prefix, External: true, Underlay: "192.168.247.0/24", Hosts: []bed.HostConfig{
		{Name: "host1", TunnelIP: "192.168.247.1", Mode: "dvr"},
		{Name: "host2", TunnelIP: "192.168.247.2", Mode: "dvr_snat"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			if err := b.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
	})

	// The management path: every host reaches the controller's address; the
	// internet router reaches the target.
	for _, h := range b.Hosts() {
		if r, err := b.Ping(ctx, h.Netns, b.ControllerIP(), 1, 5*time.Second); err != nil || r.Received != 1 {
			t.Fatalf("%s -> controller IP: %+v, %v", h.Name, r, err)
		}
	}
	if r, err := b.Ping(ctx, b.InternetNetns(), bed.TargetIP, 1, 5*time.Second); err != nil || r.Received != 1 {
		t.Fatalf("internet -> target: %+v, %v", r, err)
	}

	// Secure mode, and a controller that nobody answers (the host's own loopback):
	// only the flows installed below exist.
	noController := []string{"tcp:127.0.0.1:6653"}
	vms := []struct{ host, name, port, mac, ip, peerTunnel string }{
		{"host1", "vm1", "11111111-aaaa-4000-8000-000000000001", "fa:16:3e:00:00:01", "10.0.0.1", "192.168.247.2"},
		{"host2", "vm2", "22222222-bbbb-4000-8000-000000000002", "fa:16:3e:00:00:02", "10.0.0.2", "192.168.247.1"},
	}
	vmNS := map[string]string{}
	for _, vm := range vms {
		h := b.Host(vm.host)
		dpids, err := b.SetupHostBridges(ctx, vm.host, noController)
		if err != nil {
			t.Fatal(err)
		}
		if dpids[agent.BrInt] != agent.DatapathID(vm.host, agent.BrInt) {
			t.Errorf("%s: br-int dpid %q, want %q", vm.host, dpids[agent.BrInt], agent.DatapathID(vm.host, agent.BrInt))
		}
		if br, err := h.OVS.Vsctl(ctx, "port-to-br", h.ExternalUplink); err != nil || br != bed.ExternalBridge {
			t.Errorf("%s: uplink %s on %q (%v), want %s", vm.host, h.ExternalUplink, br, err, bed.ExternalBridge)
		}
		if fm, err := h.OVS.Vsctl(ctx, "get-fail-mode", agent.BrTun); err != nil || fm != "secure" {
			t.Errorf("%s: br-tun fail mode %q (%v)", vm.host, fm, err)
		}
		ns, err := b.AddVM(ctx, vm.host, vm.name, vm.port, vm.mac, vm.ip+"/24", "")
		if err != nil {
			t.Fatal(err)
		}
		vmNS[vm.name] = ns
		cl, err := b.OVSDB(ctx, vm.host)
		if err != nil {
			t.Fatal(err)
		}
		tap := vmport.TapName(vm.port)
		if _, err := cl.OFPort(ctx, tap); err != nil {
			t.Fatal(err)
		}
		flows := map[string]string{
			agent.BrInt: fmt.Sprintf("table=0,priority=10,in_port=%s,actions=output:%s\n"+
				"table=0,priority=10,in_port=%s,actions=output:%s\n", tap, agent.PatchTun, agent.PatchTun, tap),
			agent.BrTun: fmt.Sprintf("table=0,priority=10,in_port=%s,actions=set_field:100->tun_id,set_field:%s->tun_dst,output:%s\n"+
				"table=0,priority=10,in_port=%s,tun_id=100,actions=output:%s\n",
				agent.PatchInt, vm.peerTunnel, agent.VXLAN, agent.VXLAN, agent.PatchInt),
		}
		for br, f := range flows {
			if _, err := h.OVS.OfctlInput(ctx, br, f, "add-flows", "{switch}", "-"); err != nil {
				t.Fatal(err)
			}
		}
	}

	capture, err := b.Capture(ctx, "", b.Host("host1").UnderlayLink, "udp port 4789")
	if err != nil {
		t.Fatal(err)
	}
	bg, err := b.StartPing(ctx, vmNS["vm2"], "10.0.0.1", 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the path (the first packet may wait for OVS to resolve the peer VTEP).
	var r bed.PingResult
	for deadline := time.Now().Add(20 * time.Second); ; {
		if r, err = b.Ping(ctx, vmNS["vm1"], "10.0.0.2", 1, time.Second); err != nil {
			t.Fatal(err)
		}
		if r.Received == 1 {
			break
		}
		if time.Now().After(deadline) {
			for _, h := range b.Hosts() {
				for _, br := range []string{agent.BrInt, agent.BrTun} {
					out, _ := h.OVS.Ofctl(ctx, br, "dump-flows")
					t.Logf("%s %s:\n%s", h.Name, br, out)
				}
			}
			t.Fatalf("vm1 -> vm2 never answered: %s", r.Output)
		}
	}
	if r, err = b.Ping(ctx, vmNS["vm1"], "10.0.0.2", 5, 5*time.Second); err != nil || r.Sent != 5 || r.Received != 5 {
		t.Fatalf("vm1 -> vm2: %+v, %v", r, err)
	}
	bgr, err := bg.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if bgr.Sent < 5 || bgr.Received < 1 {
		t.Errorf("background vm2 -> vm1: %d sent, %d received", bgr.Sent, bgr.Received)
	}
	pkts, err := capture.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var toHost2, fromHost2 int
	for _, p := range pkts {
		if !strings.Contains(p, "vni 100") || !strings.Contains(p, "ICMP echo") {
			continue
		}
		switch {
		case strings.Contains(p, "192.168.247.1.") && strings.Contains(p, "> 192.168.247.2.4789"):
			toHost2++
		case strings.Contains(p, "192.168.247.2.") && strings.Contains(p, "> 192.168.247.1.4789"):
			fromHost2++
		}
	}
	if toHost2 < 5 || fromHost2 < 5 {
		t.Errorf("underlay of host1 saw %d VXLAN ICMP packets to host2 and %d from it, want >= 5 each:\n%s",
			toHost2, fromHost2, strings.Join(pkts, "\n"))
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	assertNothingLeft(t, prefix)
}

// TestBedSweep leaves a bed running (as an interrupted test would) and checks that
// Sweep removes all of it, and that New refuses to start over leftovers.
func TestBedSweep(t *testing.T) {
	needBed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	log := zaptest.NewLogger(t)
	prefix := fmt.Sprintf("bs%d", os.Getpid()%1000000)
	cfg := bed.Config{Prefix: prefix, External: true, Underlay: "192.168.246.0/24",
		Hosts: []bed.HostConfig{{Name: "h1", TunnelIP: "192.168.246.1", Mode: "dvr"}}}
	b, err := bed.New(ctx, log, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if _, err := b.SetupHostBridges(ctx, "h1", []string{"tcp:127.0.0.1:6653"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AddVM(ctx, "h1", "vm1", "33333333-cccc-4000-8000-000000000003", "fa:16:3e:00:00:03", "10.0.0.3/24", "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.StartPing(ctx, b.Netns("vm1"), "10.0.0.9", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := bed.New(ctx, log, cfg); err == nil || !strings.Contains(err.Error(), "leftovers") {
		t.Errorf("New over a running bed: %v, want a leftovers error", err)
	}
	left, err := bed.Leftovers(prefix)
	if err != nil || len(left) < 5 {
		t.Fatalf("a running bed shows %q (%v)", left, err)
	}
	if err := bed.Sweep(ctx, log, prefix); err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, prefix)
}
