//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
	"github.com/dvrflow/dvrflow/testbed/ovsinst"
)

func ofNeedOVS(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("ofcore: needs root to run ovs-vswitchd; run as root (make integration does)")
	}
	for _, b := range []string{"ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovsdb-tool"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("ofcore: %s not installed (make deps installs openvswitch-switch)", b)
		}
	}
}

// ofProxy sits between OVS and the controller and counts, independently of the
// controller, the flow-mods the controller sends (plain or inside ONF bundles).
type ofProxy struct {
	ln       net.Listener
	target   atomic.Value // string: the controller's address
	flowMods atomic.Int64
	wg       sync.WaitGroup
}

func startProxy(t *testing.T) *ofProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ofProxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.serve(c) }()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); p.wg.Wait() })
	return p
}

func (p *ofProxy) serve(sw net.Conn) {
	defer sw.Close()
	target, _ := p.target.Load().(string)
	ctl, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer ctl.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(ctl, sw); _ = ctl.Close(); done <- struct{}{} }()
	go func() {
		r := bufio.NewReaderSize(ctl, 64<<10)
		w := bufio.NewWriterSize(sw, 64<<10)
		buf := make([]byte, 0, 1<<16)
		for {
			h, msg, err := ofproto.ReadMessage(r, buf)
			if err != nil {
				break
			}
			switch {
			case h.Type == ofproto.TypeFlowMod:
				p.flowMods.Add(1)
			case h.Type == ofproto.TypeExperimenter && len(msg) >= 24+8 &&
				binary.BigEndian.Uint32(msg[12:]) == 2301 && msg[24+1] == byte(ofproto.TypeFlowMod):
				p.flowMods.Add(1)
			}
			if _, err := w.Write(msg); err != nil {
				break
			}
			if r.Buffered() == 0 {
				if err := w.Flush(); err != nil {
					break
				}
			}
		}
		_ = sw.Close()
		done <- struct{}{}
	}()
	<-done
	<-done
}

// ofController is one controller process: a server on loopback plus the bridge's reconciler.
type ofController struct {
	srv    *controller.Server
	rec    *controller.Reconciler
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

const (
	ofOwnMask  = 0xff00_0000_0000_0000
	ofOwnValue = 0x5a00_0000_0000_0000
)

func startController(t *testing.T, log *zap.Logger, dpid uint64, desired []ofproto.Flow) *ofController {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &ofController{addr: ln.Addr().String(), cancel: cancel, done: make(chan struct{})}
	c.srv = controller.NewServer(log, controller.Config{Reconciler: controller.ReconcilerConfig{
		CookieMask: ofOwnMask, CookieValue: ofOwnValue, BundleThreshold: 64}})
	c.rec = c.srv.Reconciler(dpid)
	if err := c.rec.SetDesired(desired); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		if err := c.srv.Serve(ctx, ln); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *ofController) stop() {
	c.cancel()
	<-c.done
}

// waitConverged waits for a pass after `after` completed passes that left nothing to do.
func (c *ofController) waitConverged(t *testing.T, after uint64, want int) controller.ReconcilerStats {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := c.rec.Stats()
		if st.Reconciles > after && st.Installed == want && st.LastError == "" && len(st.Failed) == 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("not converged: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startOVS starts an ovsdb-server and ovs-vswitchd of the test's own, stopped at its end
// (their logs printed when it failed).
func startOVS(t *testing.T, ctx context.Context, log *zap.Logger) *ovsinst.Instance {
	t.Helper()
	inst, err := ovsinst.Start(ctx, log, "", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(inst.Logs())
		}
		if err := inst.Stop(); err != nil {
			t.Errorf("stopping OVS: %v", err)
		}
	})
	return inst
}

// ofBridge makes a netdev bridge in secure fail mode, OpenFlow 1.3 only, pointed at addr.
func ofBridge(t *testing.T, ctx context.Context, inst *ovsinst.Instance, name string, dpid uint64, addr string) {
	t.Helper()
	if _, err := inst.Vsctl(ctx, "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev",
		"fail_mode=secure", "protocols=OpenFlow13", fmt.Sprintf("other-config:datapath-id=%016x", dpid)); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.Vsctl(ctx, "set-controller", name, "tcp:"+addr); err != nil {
		t.Fatal(err)
	}
	if _, err := inst.Vsctl(ctx, "set", "controller", name, "max_backoff=1000", "inactivity_probe=5000"); err != nil {
		t.Fatal(err)
	}
}

// dumpFlows returns the bridge's flows as sorted ovs-ofctl --no-stats lines.
func dumpFlows(t *testing.T, ctx context.Context, inst *ovsinst.Instance, bridge string) []string {
	t.Helper()
	out, err := inst.Ofctl(ctx, bridge, "--no-stats", "dump-flows")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	return lines
}

func flowLines(flows []ofproto.Flow) []string {
	lines := make([]string, len(flows))
	for i := range flows {
		lines[i] = flows[i].String()
	}
	slices.Sort(lines)
	return lines
}

func assertSameFlows(t *testing.T, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	var diff []string
	for _, l := range want {
		if _, found := slices.BinarySearch(got, l); !found {
			diff = append(diff, "- "+l)
		}
	}
	for _, l := range got {
		if _, found := slices.BinarySearch(want, l); !found {
			diff = append(diff, "+ "+l)
		}
	}
	if len(diff) > 20 {
		diff = append(diff[:20], fmt.Sprintf("... %d more", len(diff)-20))
	}
	t.Fatalf("bridge flows differ from the desired set (%d vs %d lines; - missing, + unexpected):\n%s",
		len(got), len(want), strings.Join(diff, "\n"))
}

func TestOFCoreRealOVS(t *testing.T) {
	ofNeedOVS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	inst := startOVS(t, ctx, log)

	const dpid = 0xd1f10001
	const n = 4000
	flows := ofsim.GenerateFlows(n, ofOwnValue|1)
	proxy := startProxy(t) // no target yet: it hangs up on the bridge
	bridge := fmt.Sprintf("ofc%d", os.Getpid()%100000)
	ofBridge(t, ctx, inst, bridge, dpid, proxy.ln.Addr().String())
	t.Cleanup(func() { // before OVS stops (cleanups run last-in first-out)
		if _, err := inst.Vsctl(context.Background(), "del-br", bridge); err != nil {
			t.Errorf("deleting bridge: %v", err)
		}
	})
	// OVS flushes the flow table when a bridge gets its first controller, so the flow of
	// another owner (as an operator's ovs-ofctl would add) goes in after set-controller. It
	// must survive every reconcile below.
	if _, err := inst.Ofctl(ctx, bridge, "add-flow", "cookie=0x1,table=9,priority=1,actions=drop"); err != nil {
		t.Fatal(err)
	}
	c1 := startController(t, log, dpid, flows)
	proxy.target.Store(c1.addr)

	st := c1.waitConverged(t, 0, n+1) // the mirror holds the foreign flow too
	if st.Adds != n || st.Bundles != 1 || st.ForeignLeft != 1 || proxy.flowMods.Load() != n {
		t.Fatalf("first install: stats %+v, proxy saw %d flow-mods", st, proxy.flowMods.Load())
	}
	want := append(flowLines(flows), "cookie=0x1, table=9, priority=1 actions=drop")
	slices.Sort(want)
	assertSameFlows(t, dumpFlows(t, ctx, inst, bridge), want)

	// Restart the controller: the bridge reconnects, is dumped, and gets zero flow-mods.
	c1.stop()
	before := proxy.flowMods.Load()
	c2 := startController(t, log, dpid, flows)
	proxy.target.Store(c2.addr)
	st = c2.waitConverged(t, 0, n+1)
	if st.Dumps != 1 || st.Adds+st.Modifies+st.Deletes != 0 || proxy.flowMods.Load() != before {
		t.Fatalf("restart sent flow-mods: stats %+v, proxy saw %d", st, proxy.flowMods.Load()-before)
	}
	// Open vSwitch dumps every flow it got from us byte for byte as we encode it: only the
	// foreign flow needs decoding.
	if st.DumpDecoded != 1 {
		t.Errorf("the restart's dump decoded %d of %d flows, want 1 (the foreign one)", st.DumpDecoded, st.Installed)
	}
	t.Logf("restart: dumped %d flows in a pass of %v, 0 flow-mods, %d decoded", st.Installed, st.LastDuration, st.DumpDecoded)

	// Change the desired set: exactly the difference is sent (10 modifies, 7 adds, 5 deletes).
	changed := slices.Clone(flows)
	for i := 1; i <= 40; i += 4 { // table 1 flows: new output port
		changed[i].Actions = []ofproto.Action{ofproto.PopVLAN{}, ofproto.Output{Port: 63}}
	}
	changed = changed[:len(changed)-5]
	more := ofsim.GenerateFlows(n+7, ofOwnValue|2)[n:]
	changed = append(changed, more...)
	before = proxy.flowMods.Load()
	if err := c2.rec.SetDesired(changed); err != nil {
		t.Fatal(err)
	}
	prev := st
	st = c2.waitConverged(t, prev.Reconciles, len(changed)+1)
	sent := proxy.flowMods.Load() - before
	if d := st.Modifies - prev.Modifies; d != 10 {
		t.Errorf("modifies %d, want 10", d)
	}
	if d := st.Adds - prev.Adds; d != 7 {
		t.Errorf("adds %d, want 7", d)
	}
	if d := st.Deletes - prev.Deletes; d != 5 {
		t.Errorf("deletes %d, want 5", d)
	}
	if sent != 22 {
		t.Errorf("proxy saw %d flow-mods, want 22", sent)
	}
	want = append(flowLines(changed), "cookie=0x1, table=9, priority=1 actions=drop")
	slices.Sort(want)
	assertSameFlows(t, dumpFlows(t, ctx, inst, bridge), want)
}
