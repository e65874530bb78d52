package mastership

import (
	"math"
	"runtime/metrics"
	"testing"
	"time"
)

// histogramSince reads only what was counted since the previous read, and names the
// upper bounds of the buckets it lands in.
func TestHistogramSince(t *testing.T) {
	buckets := []float64{0, 0.001, 0.01, 0.1, 1, math.Inf(1)}
	prev := &metrics.Float64Histogram{Buckets: buckets, Counts: []uint64{100, 0, 0, 0, 0}}
	h := &metrics.Float64Histogram{Buckets: buckets, Counts: []uint64{198, 0, 1, 0, 1}}
	p99, top := histogramSince(h, prev.Counts, 0.99)
	if p99 != 100*time.Millisecond || top != time.Second {
		t.Errorf("since prev: p99 %s, max %s; want 100ms and 1s", p99, top)
	}
	if p99, top = histogramSince(h, nil, 0.5); p99 != time.Millisecond || top != time.Second {
		t.Errorf("whole: p50 %s, max %s; want 1ms and 1s", p99, top)
	}
	if p99, top = histogramSince(h, h.Counts, 0.99); p99 != 0 || top != 0 {
		t.Errorf("nothing since: %s %s", p99, top)
	}
}

// The probe reads the runtime metrics it names (a name the runtime dropped would read as
// zero goroutines).
func TestProbeReadsTheRuntime(t *testing.T) {
	var p probe
	p.read()
	busy := make(chan struct{})
	go func() {
		for range 1_000_000 {
			_ = make([]byte, 1024)
		}
		close(busy)
	}()
	<-busy
	v := p.read()
	if v.goroutines == 0 {
		t.Errorf("%+v: no goroutines read", v)
	}
	for _, s := range p.samples {
		if s.Value.Kind() == metrics.KindBad {
			t.Errorf("runtime metric %s not supported", s.Name)
		}
	}
}
