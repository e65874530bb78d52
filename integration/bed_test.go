//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/netip"
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

// TestBedExternalIPv6 builds a one-host bed with the external network and checks its
// IPv6 side: the internet router reaches the target over IPv6 and holds its external
// address without duplicate address detection (nothing tentative); a stand-in for a
// router's gateway port on the external network (a namespace with 2001:db8:ff::10 and a
// tenant address 2001:db8:1::5 behind it, IPv4 alike) reaches the target from its tenant
// address only once RouteBack routes the tenant prefix to it (routed, no NAT: the target
// answers the tenant address), and no longer after DeleteRouteBack; Close leaves nothing.
func TestBedExternalIPv6(t *testing.T) {
	needBed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	log := zaptest.NewLogger(t)
	prefix := fmt.Sprintf("b6%d", os.Getpid()%1000000)
	b, err := bed.New(ctx, log, bed.Config{Prefix: prefix, External: true, Underlay: "192.168.245.0/24",
		Hosts: []bed.HostConfig{{Name: "host1", TunnelIP: "192.168.245.1", Mode: "dvr_snat"}}})
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
	inet := b.InternetNetns()
	for _, c := range []struct{ from, to string }{{inet, bed.TargetIP6}, {b.TargetNetns(), bed.ExternalGateway6}, {inet, bed.TargetIP}} {
		if r, err := b.Ping(ctx, c.from, c.to, 1, 5*time.Second); err != nil || r.Received != 1 {
			t.Fatalf("%s -> %s: %+v, %v", c.from, c.to, r, err)
		}
	}
	do := func(ns string, args ...string) string {
		t.Helper()
		out, err := b.Exec(ctx, ns, args...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out
	}
	addrs := do(inet, "ip", "-6", "addr", "show", "dev", bed.ExternalIface)
	if !strings.Contains(addrs, "inet6 "+bed.ExternalGateway6+"/64 scope global") || strings.Contains(addrs, "tentative") {
		t.Errorf("internet router's external IPv6 addresses:\n%s", addrs)
	}
	if got := strings.TrimSpace(do(inet, "sysctl", "-n", "net.ipv6.conf.all.forwarding")); got != "1" {
		t.Errorf("internet router: IPv6 forwarding %s", got)
	}

	// The stand-in for a router's gateway port, on the external network's bridge.
	gw := b.Netns("gw6")
	do("", "ip", "netns", "add", gw)
	do("", "ip", "link", "add", prefix+"-xg", "type", "veth", "peer", "name", "eth0", "netns", gw)
	do("", "sysctl", "-q", "-w", "net.ipv6.conf."+prefix+"-xg.disable_ipv6=1")
	do("", "ip", "link", "set", prefix+"-xg", "master", b.ExternalBridgeLink(), "up")
	do(gw, "sysctl", "-q", "-w", "net.ipv6.conf.eth0.accept_dad=0", "net.ipv6.conf.eth0.accept_ra=0")
	for _, args := range [][]string{
		{"link", "set", "lo", "up"}, {"link", "set", "eth0", "up"},
		{"addr", "add", "172.24.4.10/24", "dev", "eth0"}, {"addr", "add", "2001:db8:ff::10/64", "dev", "eth0", "nodad"},
		{"addr", "add", "10.0.1.5/32", "dev", "lo"}, {"addr", "add", "2001:db8:1::5/128", "dev", "lo"},
		{"route", "add", "default", "via", bed.ExternalGateway}, {"route", "add", "default", "via", bed.ExternalGateway6},
	} {
		do(gw, append([]string{"ip"}, args...)...)
	}
	fromTenant := func(src, dst string) bool {
		out, err := b.Exec(ctx, gw, "ping", "-n", "-c", "1", "-W", "2", "-I", src, dst)
		t.Logf("ping -I %s %s: %v\n%s", src, dst, err, out)
		return err == nil && strings.Contains(out, " 1 received")
	}
	pairs := []struct {
		tenant, src, via, dst string
	}{
		{"2001:db8:1::/64", "2001:db8:1::5", "2001:db8:ff::10", bed.TargetIP6},
		{"10.0.1.0/24", "10.0.1.5", "172.24.4.10", bed.TargetIP},
	}
	for _, p := range pairs {
		if fromTenant(p.src, p.dst) {
			t.Errorf("%s reached %s without a route back", p.src, p.dst)
		}
		if err := b.RouteBack(ctx, netip.MustParsePrefix(p.tenant), netip.MustParseAddr(p.via)); err != nil {
			t.Fatal(err)
		}
		if !fromTenant(p.src, p.dst) {
			t.Errorf("%s did not reach %s with the route back via %s", p.src, p.dst, p.via)
		}
		// From the target's side too: it reaches the tenant address itself.
		if r, err := b.Ping(ctx, b.TargetNetns(), p.src, 1, 5*time.Second); err != nil || r.Received != 1 {
			t.Errorf("target -> %s: %+v, %v", p.src, r, err)
		}
	}
	if err := b.RouteBack(ctx, netip.MustParsePrefix("2001:db8:1::/64"), netip.MustParseAddr("172.24.4.10")); err == nil {
		t.Error("RouteBack accepted an IPv6 prefix via an IPv4 next hop")
	}
	for _, p := range pairs {
		if err := b.DeleteRouteBack(ctx, netip.MustParsePrefix(p.tenant)); err != nil {
			t.Fatal(err)
		}
		if fromTenant(p.src, p.dst) {
			t.Errorf("%s reached %s after DeleteRouteBack", p.src, p.dst)
		}
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	assertNothingLeft(t, prefix)
}
