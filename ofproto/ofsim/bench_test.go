package ofsim

import (
	"context"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/ofproto"
)

// BenchmarkStore100kFlows measures flow-mod ingest of the fake switch and the memory a
// stored flow costs (issue 6 runs thousands of these in one process).
func BenchmarkStore100kFlows(b *testing.B) {
	const n = 100_000
	flows := GenerateFlows(n, 1)
	msgs := make([][]byte, n)
	for i := range flows {
		msgs[i] = ofproto.AppendFlowMod(nil, uint32(i), ofproto.FlowAdd, &flows[i], 0)
	}
	var perFlow float64
	var took time.Duration
	for i := 0; i < b.N; i++ {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		s := New(zap.NewNop(), Config{DPID: 1})
		start := time.Now()
		s.mu.Lock()
		for _, m := range msgs {
			if err := s.flowModLocked(nil, s.flows, m); err != nil {
				b.Fatal(err)
			}
		}
		s.mu.Unlock()
		took += time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		perFlow = float64(m1.HeapAlloc-m0.HeapAlloc) / n
		runtime.KeepAlive(s)
	}
	b.ReportMetric(perFlow, "B/flow")
	b.ReportMetric(float64(n*b.N)/took.Seconds(), "flow-mods/s")
}

// BenchmarkIdleSwitchMemory measures what one connected, idle switch costs the simulator
// process (heap and goroutine stack): 1000 switches with three ports each are connected to
// a loopback listener that holds the sockets without reading.
func BenchmarkIdleSwitchMemory(b *testing.B) {
	const n = 1000
	for i := 0; i < b.N; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		accepted := make(chan net.Conn, n)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					close(accepted)
					return
				}
				accepted <- c
			}
		}()
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var connected atomic.Int64
		for j := range n {
			s := New(zap.NewNop(), Config{DPID: uint64(j + 1), Ports: []Port{{No: 1, Name: "patch-tun"}, {No: 2, Name: "int-br-ex"}, {No: 10, Name: "tap0123456789a"}},
				Hook: func(e Event) {
					if e.Kind == EventConnected {
						connected.Add(1)
					}
				}})
			wg.Add(1)
			go func() { defer wg.Done(); _ = s.Run(ctx, ln.Addr().String()) }()
		}
		var held []net.Conn
		for len(held) < n {
			held = append(held, <-accepted)
		}
		for connected.Load() < n {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond) // every hello written
		runtime.GC()
		runtime.ReadMemStats(&m1)
		b.ReportMetric(float64(m1.HeapInuse+m1.StackInuse-m0.HeapInuse-m0.StackInuse)/n, "B/switch")
		cancel()
		wg.Wait()
		for _, c := range held {
			_ = c.Close()
		}
		_ = ln.Close()
	}
}
