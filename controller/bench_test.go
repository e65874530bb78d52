package controller

import (
	"context"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
)

// BenchmarkReconcile10kIntoFakeSwitch measures the controller side of a full install:
// dump, diff, encode 10,000 flow-mods in a bundle, commit and barrier, against an
// unthrottled fake switch over loopback TCP.
func BenchmarkReconcile10kIntoFakeSwitch(b *testing.B) {
	const n = 10_000
	flows := ofsim.GenerateFlows(n, 1)
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		srv := NewServer(zap.NewNop(), Config{})
		ctx, cancel := context.WithCancel(context.Background())
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); _ = srv.Serve(ctx, ln) }()
		sw := ofsim.New(zap.NewNop(), ofsim.Config{DPID: 1})
		go func() { _ = sw.Run(ctx, ln.Addr().String()) }()
		var s *Session
		for s == nil {
			s, _ = srv.Session(1)
			time.Sleep(time.Millisecond)
		}
		rec := NewReconciler(zap.NewNop(), 1, ReconcilerConfig{AlwaysBundle: true})
		if err := rec.SetDesired(flows); err != nil {
			b.Fatal(err)
		}
		rec.Bind(s)
		b.StartTimer()
		start := time.Now()
		res, err := rec.Reconcile(ctx)
		total += time.Since(start)
		b.StopTimer()
		if err != nil || res.Adds != n || sw.NumFlows() != n {
			b.Fatalf("%+v %v, %d flows", res, err, sw.NumFlows())
		}
		cancel()
		<-done
		b.StartTimer()
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "flows/s")
}

// BenchmarkDiff100kSteadyState measures a pass over 100,000 flows with nothing to change
// (no I/O: diff of desired against the mirror), right after a dump (every flow compared
// by content) and after our own install (the mirror shares the desired flows).
func BenchmarkDiff100kSteadyState(b *testing.B) {
	b.Run("after-dump", func(b *testing.B) { benchDiff(b, false) })
	b.Run("after-install", func(b *testing.B) { benchDiff(b, true) })
}

func benchDiff(b *testing.B, shared bool) {
	flows := ofsim.GenerateFlows(100_000, 1)
	rec := NewReconciler(zap.NewNop(), 1, ReconcilerConfig{})
	if err := rec.SetDesired(flows); err != nil {
		b.Fatal(err)
	}
	src := rec
	if !shared {
		src = NewReconciler(zap.NewNop(), 1, ReconcilerConfig{})
		if err := src.SetDesired(flows); err != nil {
			b.Fatal(err)
		}
	}
	for k, w := range src.desired {
		rec.installed[k] = w.flow
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rec.mu.Lock()
		ops, _ := rec.diffLocked(time.Now())
		rec.mu.Unlock()
		if len(ops) != 0 {
			b.Fatal(len(ops))
		}
	}
}

// BenchmarkDump100k measures a reconciler's first dump of a switch holding 100,000 flows
// over loopback TCP, as on a restart or a mastership move: "as-desired" when the switch
// holds exactly the desired flows (each entry compared by its bytes, none decoded), and
// "decode-all" when none is desired (each entry decoded and packed, as every dump did
// before the byte comparison).
func BenchmarkDump100k(b *testing.B) {
	const n = 100_000
	flows := ofsim.GenerateFlows(n, 1)
	ctx, srv, addr := benchServer(b)
	sw := ofsim.New(zap.NewNop(), ofsim.Config{DPID: 1})
	for _, f := range flows {
		if err := sw.AddFlow(f); err != nil {
			b.Fatal(err)
		}
	}
	go func() { _ = sw.Run(ctx, addr) }()
	var s *Session
	for s == nil {
		s, _ = srv.Session(1)
		time.Sleep(time.Millisecond)
	}
	for _, c := range []struct {
		name    string
		desired []ofproto.Flow
		decoded uint64
	}{{"as-desired", flows, 0}, {"decode-all", nil, n}} {
		b.Run(c.name, func(b *testing.B) {
			rec := NewReconciler(zap.NewNop(), 1, ReconcilerConfig{})
			if err := rec.SetDesired(c.desired); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				inst, _, err := rec.dump(ctx, s, nil)
				if err != nil || len(inst) != n {
					b.Fatalf("%d flows, %v", len(inst), err)
				}
			}
			b.StopTimer()
			if d := rec.Stats().DumpDecoded; d != c.decoded*uint64(b.N) {
				b.Fatalf("decoded %d flows in %d dumps, want %d each", d, b.N, c.decoded)
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "flows/s")
		})
	}
}

// passCounter is an Observer that signals when a number of passes have ended.
type passCounter struct {
	nopObserver
	left atomic.Int64
	done chan struct{}
}

func (p *passCounter) Reconciled(uint64, time.Duration, error) {
	if p.left.Add(-1) == 0 {
		p.done <- struct{}{}
	}
}

// BenchmarkFanOut500 measures one change that many switches take at once, as a port joining
// a security group: 500 switches over loopback TCP, each holding 100 flows, each given one
// changed flow; an op ends when every switch's pass (flow-mod and barrier) has ended. It
// reports the controller's CPU per switch (user and system, simulated switches included).
func BenchmarkFanOut500(b *testing.B) {
	const switches, held = 500, 100
	obs := &passCounter{done: make(chan struct{}, 1)}
	ctx, srv, addr := benchServer(b)
	recs := make([]*Reconciler, switches)
	base := ofsim.GenerateFlows(held, 1)
	obs.left.Store(switches)
	for i := range recs {
		dpid := uint64(i + 1)
		sw := ofsim.New(zap.NewNop(), ofsim.Config{DPID: dpid})
		go func() { _ = sw.Run(ctx, addr) }()
		var s *Session
		for s == nil {
			s, _ = srv.Session(dpid)
			time.Sleep(100 * time.Microsecond)
		}
		recs[i] = NewReconciler(zap.NewNop(), dpid, ReconcilerConfig{Observer: obs})
		if err := recs[i].SetParts(map[string][]ofproto.Flow{"base": base}, false); err != nil {
			b.Fatal(err)
		}
		recs[i].Attach(ctx, s)
	}
	<-obs.done // every switch installed its base flows
	flow := func(n int) []ofproto.Flow {
		return []ofproto.Flow{{Table: 7, Priority: 100, Cookie: 1, Match: ofproto.Match{ofproto.InPort(uint32(n%60 + 1))},
			Actions: []ofproto.Action{ofproto.Output{Port: uint32(n%50 + 1)}}}}
	}
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		obs.left.Store(switches)
		for _, r := range recs {
			if err := r.SetParts(map[string][]ofproto.Flow{"join": flow(i)}, false); err != nil {
				b.Fatal(err)
			}
		}
		<-obs.done
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	b.ReportMetric(float64(cpu.Microseconds())/float64(switches*b.N), "cpu-µs/switch")
}

// benchServer serves OpenFlow on a loopback port until the benchmark ends.
func benchServer(b *testing.B) (context.Context, *Server, string) {
	b.Helper()
	srv := NewServer(zap.NewNop(), Config{})
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(ctx, ln) }()
	return ctx, srv, ln.Addr().String()
}
