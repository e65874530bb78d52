package mastership

import (
	"context"
	"math"
	"runtime/metrics"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/db"
)

// maxInFlight is how many renewals may be out at once: the store's lease connections.
// Against a round trip r they go out every max(Renew, r/maxInFlight), so a renewal's
// lease has to cover little more than r.
const maxInFlight = db.LeaseConns

// stretch is how many times the slowest renewal of late a renewal's lease covers: a
// renewal may come back twice as late as the slowest before it without a lapse.
const stretch = 4

// slowHalfLife is how fast a slow renewal is forgotten: the lease asked for shrinks back
// to Config.Lease over a few of them once renewals are quick again. An overloaded
// controller stalls in bursts (at 5,000 hosts with three controllers on two cores, 2-4 s
// stalls 20-60 s apart during cold start): forgotten faster, the lease is short again when
// the next burst comes.
const slowHalfLife = time.Minute

// renewal is what one renewal learnt.
type renewal struct {
	lease  db.Lease
	need   bool // the host table should be read and acted on
	lapsed bool // the deadline had passed when it came back
	err    error
}

// renew renews the lease, due at due, and moves the deadline; need says that the host
// table should be read and acted on (something changed, the lease lapsed, or it is time
// to resync).
func (l *Loop) renew(ctx context.Context, due time.Time) renewal {
	if l.shared != nil && l.shared.silent() > heartbeatLimit*l.cfg.MaxLease {
		return renewal{err: errNoHeartbeat}
	}
	sent := time.Now()
	l.mu.Lock()
	ask := l.leaseLocked(sent)
	l.mu.Unlock()
	// A renewal is given the longest lease: one that succeeds late still moves the
	// deadline (from when it was sent) and tells how slow renewals are, while one given up
	// on costs its connection, and the next renewal a new one, when the machine is slowest.
	rctx, cancel := context.WithTimeout(ctx, l.cfg.MaxLease)
	lease, err := l.leases.RenewLease(rctx, l.cfg.ID, l.instance, ask, l.cfg.Settle)
	cancel()
	back := time.Now()
	if err != nil || !lease.Held {
		return renewal{lease: lease, err: err}
	}
	took := back.Sub(due)
	l.mu.Lock()
	defer l.mu.Unlock()
	// What the runtime saw since the last renewal foretells the next: a goroutine of this
	// process that waited a second for a processor, or a collector pause that long, and
	// the next renewal's reply may wait as long.
	rt := l.probe.read()
	l.recordLocked(took, back)
	l.slowest.add(max(rt.schedMax, rt.gcPauseMax), back)
	lapsed := back.After(l.deadline) && !l.deadline.IsZero()
	if dl := sent.Add(ask - ask/20); dl.After(l.deadline) {
		l.deadline = dl
		if l.shared != nil {
			l.shared.store(dl)
		}
		l.armLocked()
	}
	if lapsed {
		l.force = true
	}
	if took > l.cfg.Lease/2 || lapsed {
		l.logSlowLocked(took, due, sent, lease.Received, back, ask, lapsed, rt)
	}
	return renewal{lease: lease, need: l.needLocked(lease), lapsed: lapsed}
}

// needLocked says whether the host table should be read and acted on after renewing
// lease: something changed, the lease lapsed, or it is time to resync. l.mu is held.
func (l *Loop) needLocked(lease db.Lease) bool {
	return l.force || lease.Gen != l.gen || !slices.Equal(lease.Live, l.live) || time.Since(l.lastRead) >= l.cfg.Resync
}

// armLocked sets the watchdog to fire at the deadline. l.mu is held.
func (l *Loop) armLocked() {
	if l.watchdog == nil {
		l.watchdog = time.AfterFunc(time.Until(l.deadline), l.expire)
	} else {
		l.watchdog.Reset(time.Until(l.deadline))
	}
}

// readDeadlineLocked takes the deadline from the keeper process, if there is one: it
// moves with every renewal there, whether or not this process has read the renewal yet.
// l.mu is held.
func (l *Loop) readDeadlineLocked() {
	if l.remote != nil {
		l.deadline = l.remote.mem.load()
	}
}

// leaseLocked returns the lease a renewal sent at now asks for: stretch times the slowest
// renewal of late, at least Config.Lease, at most Config.MaxLease. l.mu is held.
func (l *Loop) leaseLocked(now time.Time) time.Duration {
	ask := min(max(stretch*l.slowest.at(now), l.cfg.Lease), l.cfg.MaxLease)
	l.stats.Lease, l.stats.LongestLease = ask, max(l.stats.LongestLease, ask)
	return ask
}

// recordLocked counts a renewal that took took from due to reply. l.mu is held.
func (l *Loop) recordLocked(took time.Duration, now time.Time) {
	l.slowest.add(took, now)
	l.stats.Renewals++
	l.stats.RenewTime += took
	l.stats.Slowest = max(l.stats.Slowest, took)
	if took > l.cfg.Lease/2 {
		l.stats.Slow++
	}
	i := 0
	for i < len(RenewBuckets) && took > RenewBuckets[i] {
		i++
	}
	l.stats.RenewLatency[i]++
}

// logSlowLocked logs where a slow renewal spent its time, with what the Go runtime saw
// since the renewal before: which of the process (its goroutines waiting for a processor,
// the collector) and the database delayed it. l.mu is held.
func (l *Loop) logSlowLocked(took time.Duration, due, sent, received, back time.Time, ask time.Duration, lapsed bool, rt runtimeView) {
	if back.Sub(l.logged) < 2*time.Second && !lapsed {
		return
	}
	l.logged = back
	l.log.Warn("lease renewal slow",
		zap.Duration("took", took), zap.Bool("after_deadline", lapsed), zap.Duration("asked", ask),
		zap.Duration("due_to_sent", sent.Sub(due)), zap.Duration("sent_to_database", received.Sub(sent)),
		zap.Duration("database_to_read", back.Sub(received)),
		zap.Uint64("goroutines_runnable", rt.runnable), zap.Uint64("goroutines", rt.goroutines),
		zap.Duration("sched_latency_p99", rt.schedP99), zap.Duration("sched_latency_max", rt.schedMax),
		zap.Duration("gc_pause_max", rt.gcPauseMax), zap.Float64("gc_cpu_share", rt.gcShare))
}

// slowest is the slowest renewal of late: each one's time decays by half every
// slowHalfLife.
type slowest struct {
	d    time.Duration
	when time.Time
}

func (s *slowest) at(now time.Time) time.Duration {
	if s.when.IsZero() {
		return 0
	}
	return time.Duration(float64(s.d) * math.Exp2(-now.Sub(s.when).Seconds()/slowHalfLife.Seconds()))
}

func (s *slowest) add(d time.Duration, now time.Time) {
	if d >= s.at(now) {
		s.d, s.when = d, now
	}
}

// probe reads the Go runtime's scheduler and collector metrics, reporting each read what
// happened since the one before.
type probe struct {
	samples []metrics.Sample
	prev    [2][]uint64 // the counts of the scheduler latencies and the collector pauses
	prevGC  float64     // collector CPU seconds
	prevAll float64     // total CPU seconds
}

// runtimeView is what the runtime saw between two reads.
type runtimeView struct {
	runnable, goroutines           uint64
	schedP99, schedMax, gcPauseMax time.Duration
	gcShare                        float64 // of the process's CPU time spent collecting
}

var probeMetrics = []string{"/sched/goroutines/runnable:goroutines", "/sched/goroutines:goroutines",
	"/sched/latencies:seconds", "/sched/pauses/total/gc:seconds",
	"/cpu/classes/gc/total:cpu-seconds", "/cpu/classes/total:cpu-seconds"}

func (p *probe) read() runtimeView {
	if p.samples == nil {
		p.samples = make([]metrics.Sample, len(probeMetrics))
		for i, n := range probeMetrics {
			p.samples[i].Name = n
		}
	}
	metrics.Read(p.samples)
	var v runtimeView
	if s := p.samples[0].Value; s.Kind() == metrics.KindUint64 {
		v.runnable = s.Uint64()
	}
	if s := p.samples[1].Value; s.Kind() == metrics.KindUint64 {
		v.goroutines = s.Uint64()
	}
	for i, s := range p.samples[2:4] {
		if s.Value.Kind() != metrics.KindFloat64Histogram {
			continue
		}
		h := s.Value.Float64Histogram() // overwritten by the next read
		p99, top := histogramSince(h, p.prev[i], 0.99)
		if i == 0 {
			v.schedP99, v.schedMax = p99, top
		} else {
			v.gcPauseMax = top
		}
		p.prev[i] = append(p.prev[i][:0], h.Counts...)
	}
	if p.samples[4].Value.Kind() == metrics.KindFloat64 && p.samples[5].Value.Kind() == metrics.KindFloat64 {
		gc, all := p.samples[4].Value.Float64(), p.samples[5].Value.Float64()
		if d := all - p.prevAll; d > 0 {
			v.gcShare = (gc - p.prevGC) / d
		}
		p.prevGC, p.prevAll = gc, all
	}
	return v
}

// histogramSince returns the q quantile and the largest value of what h counted since it
// counted prev (all of h when prev is nil), each as the upper bound of its bucket.
func histogramSince(h *metrics.Float64Histogram, prev []uint64, q float64) (quantile, top time.Duration) {
	var total uint64
	counts := make([]uint64, len(h.Counts))
	for i, c := range h.Counts {
		if len(prev) == len(h.Counts) {
			c -= prev[i]
		}
		counts[i] = c
		total += c
	}
	if total == 0 {
		return 0, 0
	}
	bound := func(i int) time.Duration {
		b := h.Buckets[i+1]
		if math.IsInf(b, 1) {
			b = h.Buckets[i]
		}
		return time.Duration(b * float64(time.Second))
	}
	want := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range counts {
		if c == 0 {
			continue
		}
		seen += c
		if quantile == 0 && seen >= want {
			quantile = bound(i)
		}
		top = bound(i)
	}
	return quantile, top
}
