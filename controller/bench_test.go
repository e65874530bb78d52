package controller

import (
	"context"
	"net"
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
	srv := NewServer(zap.NewNop(), Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(ctx, ln) }()
	sw := ofsim.New(zap.NewNop(), ofsim.Config{DPID: 1})
	for _, f := range flows {
		if err := sw.AddFlow(f); err != nil {
			b.Fatal(err)
		}
	}
	go func() { _ = sw.Run(ctx, ln.Addr().String()) }()
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
