package ofsim

import (
	"runtime"
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
			if err := s.flowModLocked(s.flows, m); err != nil {
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
