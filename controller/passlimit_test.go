package controller

import (
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/ofproto/ofsim"
)

// passWatch is an Observer that counts passes.
type passWatch struct {
	nopObserver
	passes atomic.Int64
}

func (p *passWatch) Reconciled(uint64, time.Duration, error) { p.passes.Add(1) }

// Reconcilers sharing a limit of 2 run at most 2 passes at once: 6 switches that take
// 100 flow-mods at 1,000/s (100 ms a pass) need three rounds, where unlimited they need
// one.
func TestPassLimitBoundsPasses(t *testing.T) {
	flows := ofsim.GenerateFlows(100, ownValue)
	run := func(limit *PassLimit) (time.Duration, int) {
		h := newHarness(t, Config{})
		obs := &passWatch{}
		var recs []*Reconciler
		for i := range 6 {
			sw := ofsim.New(zaptest.NewLogger(t), ofsim.Config{DPID: uint64(0x500 + i), NumTables: 32, FlowModRate: 1000})
			s := h.connect(sw)
			rec := NewReconciler(zaptest.NewLogger(t), sw.DPID(), ReconcilerConfig{CookieMask: ownMask, CookieValue: ownValue,
				BundleThreshold: -1, Observer: obs, Passes: limit})
			rec.Bind(s)
			recs = append(recs, rec)
		}
		peak := 0
		start := time.Now()
		for _, r := range recs {
			if err := r.SetDesired(flows); err != nil {
				t.Fatal(err)
			}
			r.Attach(h.ctx, r.sess)
		}
		for obs.passes.Load() < int64(len(recs)) {
			peak = max(peak, limit.Running())
			time.Sleep(time.Millisecond)
		}
		return time.Since(start), peak
	}
	free, _ := run(nil)
	limited, peak := run(NewPassLimit(2))
	t.Logf("6 passes of 100 ms: %v unlimited, %v two at a time (at most %d seen running)", free, limited, peak)
	if limited < 280*time.Millisecond || peak > 2 || peak == 0 {
		t.Fatalf("two at a time took %v (want at least three rounds of 100 ms), %d running at most", limited, peak)
	}
	if free > limited*2/3 {
		t.Fatalf("unlimited took %v, two at a time %v: the limit changed nothing", free, limited)
	}
}
