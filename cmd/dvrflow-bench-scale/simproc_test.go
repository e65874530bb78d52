package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
	"github.com/dvrflow/dvrflow/topology"
)

// workerEnv makes the test binary a simulator worker (the re-executed harness).
const workerEnv = "DVRFLOW_BENCH_SIM_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		os.Exit(workerProcess())
	}
	os.Exit(m.Run())
}

// testWorker starts this test binary as a worker, its log in a temporary directory.
func testWorker(t *testing.T) workerCommand {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return workerCommand{path: exe, env: []string{workerEnv + "=1"}, dir: t.TempDir()}
}

// ofPeer is a controller for the simulated bridges: it accepts their sessions and tells
// each apart by the datapath ID of its features reply.
type ofPeer struct {
	ln    net.Listener
	conns chan *peerConn
}

type peerConn struct {
	t    *testing.T
	dpid uint64
	c    net.Conn
	r    *bufio.Reader
}

func newOFPeer(t *testing.T) *ofPeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ofPeer{ln: ln, conns: make(chan *peerConn, 64)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go func() {
				pc := &peerConn{t: t, c: c, r: bufio.NewReader(c)}
				if pc.handshake() == nil {
					p.conns <- pc
				}
			}()
		}
	}()
	return p
}

func (pc *peerConn) handshake() error {
	if _, _, err := ofproto.ReadMessage(pc.r, nil); err != nil {
		return err
	}
	if _, err := pc.c.Write(ofproto.AppendHello(nil, 1, 1<<ofproto.Version)); err != nil {
		return err
	}
	if _, err := pc.c.Write(ofproto.Finish(ofproto.Begin(nil, ofproto.TypeFeaturesRequest, 2), 0)); err != nil {
		return err
	}
	msg, err := pc.next(ofproto.TypeFeaturesReply)
	if err != nil {
		return err
	}
	pc.dpid = binary.BigEndian.Uint64(msg[8:])
	return nil
}

// next reads messages until one of type typ (an error message ends it too).
func (pc *peerConn) next(typ ofproto.MsgType) ([]byte, error) {
	_ = pc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		h, msg, err := ofproto.ReadMessage(pc.r, nil)
		if err != nil {
			return nil, err
		}
		if h.Type == typ {
			return msg, nil
		}
		if h.Type == ofproto.TypeError {
			return nil, fmt.Errorf("error message %x", msg)
		}
	}
}

func (pc *peerConn) send(msg []byte) {
	pc.t.Helper()
	if _, err := pc.c.Write(msg); err != nil {
		pc.t.Fatal(err)
	}
}

func (pc *peerConn) expect(typ ofproto.MsgType) []byte {
	pc.t.Helper()
	msg, err := pc.next(typ)
	if err != nil {
		pc.t.Fatalf("bridge %x: waiting for %v: %v", pc.dpid, typ, err)
	}
	return msg
}

// testHosts are n hosts with a VM port each.
func testHosts(n int) []hostSpec {
	var hs []hostSpec
	for i := 1; i <= n; i++ {
		hs = append(hs, hostSpec{Name: fmt.Sprintf("h%d", i), VMPorts: []string{fmt.Sprintf("vm%d", i)},
			DPIDs: map[string]uint64{"br-int": uint64(i<<4 | 1), "br-tun": uint64(i<<4 | 2), "br-ex": uint64(i<<4 | 3)}})
	}
	return hs
}

// within fails unless from <= at <= to.
func within(t *testing.T, what string, at, from, to time.Time) {
	t.Helper()
	if at.Before(from) || at.After(to) {
		t.Errorf("%s at %v, not within [%v, %v]", what, at.Format(time.StampNano), from.Format(time.StampNano), to.Format(time.StampNano))
	}
}

// The same fleet in this process and in two worker processes: the harness records each
// session, flow-mod, barrier reply and flow dump at the time the bridge had it, reads back
// exactly the flows a controller installed, adds a port the controller is told of, and
// counts a message refused from a slave.
func TestWorkersSimulateLikeThisProcess(t *testing.T) {
	for _, procs := range []int{1, 2} {
		t.Run(fmt.Sprintf("procs=%d", procs), func(t *testing.T) {
			peer := newOFPeer(t)
			addr := peer.ln.Addr().String()
			f, err := newFleet(zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)), fleetConfig{addrs: []string{addr}, procs: procs, worker: testWorker(t)}, testHosts(4))
			if err != nil {
				t.Fatal(err)
			}
			defer f.close()
			if procs > 1 && len(f.procs.procs) != procs {
				t.Fatalf("%d worker processes, want %d", len(f.procs.procs), procs)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- f.run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("run: %v", err)
				}
			}()
			conns := map[uint64]*peerConn{}
			for len(conns) < 12 {
				select {
				case pc := <-peer.conns:
					conns[pc.dpid] = pc
				case <-time.After(10 * time.Second):
					t.Fatalf("%d of 12 bridges connected", len(conns))
				}
			}
			f.sync()
			for _, b := range f.all() {
				if st := b.state(); !st.connected || st.connectedN != 1 {
					t.Errorf("%s %s: %+v, want one session", b.host, b.br, st)
				}
			}

			// A flow-mod and a barrier: their times are the bridge's.
			b := f.hosts["h2"].bridges[topology.BrInt]
			pc := conns[b.dpid]
			flow := ofproto.Flow{Table: 0, Priority: 100, Cookie: apps.Cookie(apps.AppFirewall),
				Match: ofproto.Match{ofproto.InPort(10)}, Actions: []ofproto.Action{ofproto.Output{Port: 2}}}
			t0 := time.Now()
			pc.send(ofproto.AppendFlowMod(nil, 5, ofproto.FlowAdd, &flow, 0))
			pc.send(ofproto.AppendBarrierRequest(nil, 6))
			pc.expect(ofproto.TypeBarrierReply)
			// The switch reports its barrier event after it sent the reply, so the event
			// may be recorded after the peer read the reply: the bound is when it is.
			recorded(t, f, func() bool { return !b.state().lastAck.IsZero() })
			t1 := time.Now()
			st := b.state()
			if st.flowMods != 1 || f.modsBy[addr].Load() != 1 || f.totalFlowMods() != 1 {
				t.Errorf("flow-mods: bridge %d, by controller %d, fleet %d; want 1", st.flowMods, f.modsBy[addr].Load(), f.totalFlowMods())
			}
			within(t, "flow-mod", st.lastMod, t0, t1)
			within(t, "barrier reply", st.lastAck, st.lastMod, t1)
			within(t, "fleet's first flow-mod", time.Unix(0, f.firstNano.Load()), t0, t1)
			within(t, "fleet's last event", time.Unix(0, f.lastNano.Load()), st.lastMod, t1)
			if got, want := b.modsSince(t0), fmt.Sprintf("%s t0 ADD", apps.AppFirewall); got != want {
				t.Errorf("modsSince %q, want %q", got, want)
			}
			t2 := time.Now()
			pc.send(ofproto.AppendFlowStatsRequest(nil, 7, ofproto.TableAll, 0, 0, nil))
			pc.expect(ofproto.TypeMultipartReply)
			recorded(t, f, func() bool { return !b.dumpedBy(addr).IsZero() })
			within(t, "flow dump", b.dumpedBy(addr), t2, time.Now())

			// The flows and ports, read back.
			ports, flows, err := b.portsAndFlows()
			if err != nil {
				t.Fatal(err)
			}
			flow.Match = flow.Match.Canonical()
			if len(flows) != 1 || !flows[0].Equal(&flow) {
				t.Errorf("flows %v, want %s", flows, flow.String())
			}
			if n, err := b.sw.NumFlows(); n != 1 || err != nil {
				t.Errorf("NumFlows %d, %v", n, err)
			}
			names := func(ps []ofsim.Port) (out []string) {
				for _, p := range ps {
					out = append(out, fmt.Sprintf("%d:%s", p.No, p.Name))
				}
				return out
			}
			want := []string{"1:" + apps.PortPatchTun, "2:" + apps.PortIntBrEx, "10:" + apps.VMPortName("vm2")}
			if !slices.Equal(names(ports), want) {
				t.Errorf("ports %v, want %v", names(ports), want)
			}

			// A port plugged: the controller hears of it, the harness reads it back.
			if err := b.addPort("qr-test"); err != nil {
				t.Fatal(err)
			}
			ps := pc.expect(ofproto.TypePortStatus)
			if !bytes.Contains(ps, []byte("qr-test")) {
				t.Errorf("port status %x does not name qr-test", ps)
			}
			if ports, _, err = b.portsAndFlows(); err != nil || !slices.Contains(names(ports), "11:qr-test") {
				t.Errorf("ports %v, %v: want 11:qr-test", names(ports), err)
			}

			// A slave's flow-mod is refused and counted.
			other := conns[f.hosts["h3"].bridges[topology.BrTun].dpid]
			other.send(ofproto.AppendRoleRequest(nil, 8, 3, 1)) // OFPCR_ROLE_SLAVE
			other.expect(ofproto.TypeRoleReply)
			other.send(ofproto.AppendFlowMod(nil, 9, ofproto.FlowAdd, &flow, 0))
			if _, err := other.next(ofproto.TypeBarrierReply); err == nil || !strings.Contains(err.Error(), "error message") {
				t.Errorf("slave's flow-mod: %v, want an error message", err)
			}
			if n, err := f.slaveRefused(); n != 1 || err != nil {
				t.Errorf("IS_SLAVE refusals %d, %v; want 1", n, err)
			}

			u, err := f.usage()
			if err != nil || u.procs != procs || u.max <= 0 || u.sum < u.max {
				t.Errorf("simulator usage %+v, %v; want %d processes with their RSS", u, err, procs)
			}
		})
	}
}

// A worker process that dies fails the run, with the end of its log; its bridges' calls
// fail too, the other worker's still answer.
func TestWorkerDeathFailsTheRun(t *testing.T) {
	peer := newOFPeer(t)
	f, err := newFleet(zaptest.NewLogger(t), fleetConfig{addrs: []string{peer.ln.Addr().String()}, procs: 2, worker: testWorker(t)}, testHosts(2))
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	done := make(chan error, 1)
	go func() { done <- f.run(context.Background()) }()
	victim := f.procs.procs[0]
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "simulator worker 1") || !strings.Contains(err.Error(), "exited") ||
			!strings.Contains(err.Error(), "worker started") {
			t.Fatalf("run: %v; want worker 1's exit with the end of its log", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run went on after a worker died")
	}
	if err := f.alive(); err == nil {
		t.Error("alive: no error after a worker died")
	}
	if _, _, err := f.hosts["h1"].bridges[topology.BrInt].portsAndFlows(); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("a dead worker's bridge: %v", err)
	}
	// run killed the other worker on its way out.
	if _, _, err := f.hosts["h2"].bridges[topology.BrInt].portsAndFlows(); err == nil {
		t.Error("the other worker still answers after run returned")
	}
}

// An event record carries the event and the time it happened in the worker; the harness
// records that time, not the time it read it, and keeps the fleet's first and last event
// times right when workers' events arrive out of order.
func TestEventRecordsKeepTheWorkersTimes(t *testing.T) {
	addrs := []string{"127.0.0.1:6653", "127.0.0.1:6654"}
	e := ofsim.Event{DPID: 0x21, Kind: ofsim.EventFlowMods, N: 1, Cookie: apps.Cookie(apps.AppFirewall), Table: 7,
		Command: ofproto.FlowModCommand(3), Addr: addrs[1]}
	at := time.Date(2026, 12, 7, 7, 0, 0, 123456789, time.UTC)
	rec := appendEventRecord(nil, e, 1, at.UnixNano())
	if len(rec) != eventRecordLen {
		t.Fatalf("record of %d bytes", len(rec))
	}
	got, gotAt := decodeEventRecord(rec, addrs)
	if got != e || !gotAt.Equal(at) {
		t.Fatalf("decoded %+v at %v, want %+v at %v", got, gotAt, e, at)
	}
	if got, _ := decodeEventRecord(appendEventRecord(nil, e, noAddr, 0), addrs); got.Addr != "" {
		t.Fatalf("no controller decoded as %q", got.Addr)
	}

	f := &fleet{byDPID: map[uint64]*simBridge{0x21: {}, 0x22: {}}, modsBy: map[string]*atomic.Int64{addrs[0]: {}, addrs[1]: {}}}
	barrier := ofsim.Event{DPID: 0x21, Kind: ofsim.EventBarrier, Addr: addrs[1]}
	earlier := ofsim.Event{DPID: 0x22, Kind: ofsim.EventFlowMods, N: 5, Addr: addrs[0]} // a bundle, from another worker
	var stream []byte
	stream = appendEventRecord(stream, e, 1, at.UnixNano())
	stream = appendEventRecord(stream, barrier, 1, at.Add(time.Millisecond).UnixNano())
	stream = appendEventRecord(stream, earlier, 0, at.Add(-time.Millisecond).UnixNano())
	var n atomic.Int64
	if err := f.readEvents(bytes.NewReader(stream), addrs, &n); err != nil || n.Load() != 3 {
		t.Fatalf("read %d events: %v", n.Load(), err)
	}
	st := f.byDPID[0x21].state()
	if !st.lastMod.Equal(at) || !st.lastAck.Equal(at.Add(time.Millisecond)) || st.flowMods != 1 {
		t.Errorf("bridge: %+v, want the flow-mod at %v and its barrier 1 ms later", st, at)
	}
	if f.firstNano.Load() != at.Add(-time.Millisecond).UnixNano() || f.lastNano.Load() != at.Add(time.Millisecond).UnixNano() {
		t.Errorf("fleet's first %v and last %v events", time.Unix(0, f.firstNano.Load()), time.Unix(0, f.lastNano.Load()))
	}
	if f.modsBy[addrs[0]].Load() != 5 || f.modsBy[addrs[1]].Load() != 1 {
		t.Errorf("flow-mods by controller %d, %d", f.modsBy[addrs[0]].Load(), f.modsBy[addrs[1]].Load())
	}
	if err := f.readEvents(bytes.NewReader(stream[:40]), addrs, &n); err == nil {
		t.Error("a cut record read")
	}
}

func TestProcsFor(t *testing.T) {
	for _, c := range []struct {
		asked, hosts, ctls int
		limit              uint64
		want               int
		bad                bool
	}{
		{0, 5000, 3, 20000, 3, false}, // 2,000 hosts (18,000 sessions) a process
		{0, 2000, 3, 20000, 1, false},
		{0, 5000, 1, 20000, 1, false},
		{4, 5000, 3, 20000, 4, false},
		{2, 5000, 3, 20000, 0, true}, // 22,500 sessions a process
		{8, 4, 1, 20000, 4, false},   // no more processes than hosts
		{0, 10, 3, 2005, 0, true},
	} {
		got, err := procsFor(c.asked, c.hosts, c.ctls, c.limit)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("procsFor(%d, %d hosts, %d controllers, limit %d) = %d, %v; want %d (error: %v)", c.asked, c.hosts, c.ctls, c.limit, got, err, c.want, c.bad)
		}
	}
}

// A worker ends when its stdin does (the harness is gone), with its bridges' sessions.
func TestWorkerEndsWithItsStdin(t *testing.T) {
	peer := newOFPeer(t)
	inR, inW := io.Pipe()
	mine, theirs := net.Pipe()
	defer mine.Close()
	done := make(chan error, 1)
	go func() {
		done <- workerMain(context.Background(), inR, io.Discard, zapcore.AddSync(io.Discard), theirs)
	}()
	cfg := workerConfig{Index: 1, Addrs: []string{peer.ln.Addr().String()}, Bridges: []workerBridge{{DPID: 0x11}}}
	if err := gob.NewEncoder(inW).Encode(cfg); err != nil {
		t.Fatal(err)
	}
	client := rpc.NewClient(mine)
	if err := client.Call("Sim.Start", 0, new(int)); err != nil {
		t.Fatal(err)
	}
	select {
	case pc := <-peer.conns:
		if pc.dpid != 0x11 {
			t.Fatalf("bridge %x connected", pc.dpid)
		}
		inW.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("worker: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the worker went on after its stdin ended")
		}
		if _, err := pc.next(ofproto.TypeBarrierReply); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("the bridge's session outlived its worker: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the bridge did not connect")
	}
}

// recorded waits until the harness has recorded an event: done says it has.
func recorded(t *testing.T, f *fleet, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; {
		f.sync()
		if done() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the event was not recorded within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}
