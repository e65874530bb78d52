// The load generator of the packet-in benchmarks (arp, dhcp): loads that keep a window of
// requests in flight against the server under test, a warm-up, the measured period, and
// the server's CPU time while measured.

package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
)

// simConfig is what both packet-in benchmarks take.
type simConfig struct {
	Switches    int
	Duration    time.Duration
	Window      int // requests in flight per switch
	HostsPerNet int // hosts sharing one network
	VMsPerHost  int
	Dvrflowd    string // path of the dvrflowd binary
	PGScript    string // deploy/scripts/pg.sh
	ProfileDir  string // when set: CPU profiles of dvrflowd and of the generator while measured
}

// lostAfter is when an unanswered request is counted lost and its slot reused.
const lostAfter = 10 * time.Second

// loadCounts are a load's counters while measured.
type loadCounts struct {
	answered, flooded, wrong, unmatched, lost uint64
	lat                                       []uint32 // microseconds, answered or flooded
	firstWrong                                string   // what the first wrong answer got wrong
}

// add adds o's counters to c.
func (c *loadCounts) add(o *loadCounts) {
	c.answered += o.answered
	c.flooded += o.flooded
	c.wrong += o.wrong
	c.unmatched += o.unmatched
	c.lost += o.lost
	c.lat = append(c.lat, o.lat...)
	if c.firstWrong == "" {
		c.firstWrong = o.firstWrong
	}
}

// counted is the part of a load the harness reads: its counters, under the lock that also
// guards the load's requests in flight.
type counted struct {
	mu  sync.Mutex
	res loadCounts
}

// collect adds the counters to c; with reset it zeroes them.
func (k *counted) collect(c *loadCounts, reset bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	c.add(&k.res)
	if reset {
		k.res = loadCounts{lat: k.res.lat[:0]}
	}
}

// answers returns how many answers were counted (flooded ones too).
func (k *counted) answers() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.res.answered + k.res.flooded
}

// wrongLocked counts a wrong answer and keeps the first reason.
func (k *counted) wrongLocked(why func() string) {
	k.res.wrong++
	if k.res.firstWrong == "" {
		k.res.firstWrong = why()
	}
}

// load is what one simulated switch or host runs: requests kept in flight, answers matched.
type load interface {
	// setWindow sets how many requests the load keeps in flight; with reset, it also
	// forgets those in flight and zeroes its counters.
	setWindow(n int, reset bool)
	// fill sends requests until the window is full.
	fill()
	// expire counts the requests unanswered for lostAfter at now as lost (while measuring)
	// and frees their slots.
	expire(now time.Time)
	collect(c *loadCounts, reset bool)
	answers() uint64
}

// switchLoad is a load that a simulated OpenFlow switch carries: its requests go up as
// PACKET_INs, take sees every message the controller sends it.
type switchLoad interface {
	load
	sim() *ofsim.Switch
	take(msg []byte) bool
}

// loadGen is the load generator: the loads, the phase and the counters.
type loadGen struct {
	log        *zap.Logger
	loads      []load
	running    atomic.Bool
	measuring  atomic.Bool
	reconnects atomic.Int64 // connections dropped by the controller and dialled again
	// onMeasure, when set, runs on its own goroutine as the measured period starts.
	onMeasure func(ctx context.Context, d time.Duration)
}

// loadRow is one server's figures.
type loadRow struct {
	name       string
	procs      int
	loadCounts // summed over the loads, lat sorted
	perSec     float64
	p50, p99   time.Duration
	reconnects int64
	cpu        float64 // CPU seconds the server used while measured
	note       string
}

// perCPU returns the answers per CPU-second of the server over d, 0 when unknown.
func (r *loadRow) perCPU(d time.Duration) float64 {
	if r.cpu <= 0 {
		return 0
	}
	return r.perSec * d.Seconds() / r.cpu
}

// printRows prints rows as a table: first heads the column of names, rate the one of
// answers per second.
func printRows(first, rate string, rows []loadRow, d time.Duration) {
	fmt.Printf("\n%-16s %6s %12s %10s %10s %8s %12s %7s %7s %7s %7s  %s\n", first, "procs", rate, "p50", "p99",
		"CPU", "per CPU-s", "lost", "wrong", "stray", "redials", "note")
	for _, r := range rows {
		fmt.Printf("%-16s %6d %12.0f %10v %10v %7.2fs %12.0f %7d %7d %7d %7d  %s\n", r.name, r.procs, r.perSec,
			r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.cpu, r.perCPU(d),
			r.lost, r.wrong, r.unmatched, r.reconnects, r.note)
	}
}

// printRatio prints how a's answers per second and per CPU-second compare with b's; label
// names the two, rate and perCPU say what the ratios are of.
func printRatio(label string, a, b *loadRow, d time.Duration, rate, perCPU string) {
	if a.perSec <= 0 || b.perSec <= 0 {
		return
	}
	fmt.Printf("\nratio %s: %.1fx %s", label, a.perSec/b.perSec, rate)
	if ac, bc := a.perCPU(d), b.perCPU(d); ac > 0 && bc > 0 {
		fmt.Printf(", %.1fx %s", ac/bc, perCPU)
	}
	fmt.Println()
}

// carrier starts what carries the loads' messages to the server under test and back: its
// goroutines join wg and end with ctx; a fatal error goes to report.
type carrier func(ctx context.Context, wg *sync.WaitGroup, report func(error))

// dial is the carrier of switch loads: load i's switch connects to
// addrs[i*len(addrs)/len(loads)] and, like OVS, dials again after a pause when its
// connection drops.
func (g *loadGen) dial(addrs []string) carrier {
	return func(ctx context.Context, wg *sync.WaitGroup, report func(error)) {
		for i, l := range g.loads {
			s, ok := l.(switchLoad)
			if !ok {
				report(fmt.Errorf("load %d has no switch", i))
				return
			}
			addr := addrs[i*len(addrs)/len(g.loads)]
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.serve(ctx, s, addr, report)
			}()
			if i%50 == 49 {
				time.Sleep(5 * time.Millisecond) // do not overflow the listen backlog
			}
		}
	}
}

// serve runs switch load s connected to addr until ctx ends, dialling again after a drop.
func (g *loadGen) serve(ctx context.Context, s switchLoad, addr string, report func(error)) {
	sw := s.sim()
	for attempt := 0; ; attempt++ {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			tap := ofsim.NewTap(c, s.take)
			tap.After = s.fill // the answers of one read are all taken: refill in one write
			err = sw.Serve(ctx, tap)
		}
		if ctx.Err() != nil {
			return
		}
		g.reconnects.Add(1)
		if attempt == 20 {
			report(fmt.Errorf("switch %016x: 20 reconnections, the last: %w", sw.DPID(), err))
			return
		}
		g.log.Debug("switch reconnecting", zap.Uint64("dpid", sw.DPID()), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
		}
	}
}

// sweep counts requests unanswered for lostAfter as lost and refills their slots.
func (g *loadGen) sweep(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, l := range g.loads {
				l.expire(now)
				l.fill()
			}
		}
	}
}

// run starts carry, waits for ready, then until each load had one request answered with
// one request in flight each, then loads the server with window requests per load for d.
//
// pids are the server's processes: the CPU time they use while measured is reported.
func (g *loadGen) run(ctx context.Context, carry carrier, pids []int, window int, d time.Duration, ready func(context.Context) error) (loadRow, error) {
	var row loadRow
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	errc := make(chan error, 1)
	report := func(err error) {
		select {
		case errc <- err:
		default: // the first error is the one returned
		}
	}
	carry(ctx, &wg, report)
	if ready != nil {
		if err := ready(ctx); err != nil {
			return row, err
		}
	}
	// Warm-up: one request in flight per load until every load had one answered.
	g.running.Store(true)
	defer g.running.Store(false)
	for _, l := range g.loads {
		l.setWindow(1, true)
	}
	wg.Add(1)
	go func() { defer wg.Done(); g.sweep(ctx) }()
	g.measuring.Store(true)
	for _, l := range g.loads {
		l.fill()
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		waiting := 0
		for _, l := range g.loads {
			if l.answers() == 0 {
				waiting++
			}
		}
		if waiting == 0 {
			break
		}
		select {
		case err := <-errc:
			return row, err
		case <-ctx.Done():
			return row, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			var c loadCounts
			for _, l := range g.loads {
				l.collect(&c, false)
			}
			return row, fmt.Errorf("%d of %d loads had no request answered in 3 minutes (%d wrong answers; the first: %s)",
				waiting, len(g.loads), c.wrong, c.firstWrong)
		}
	}
	// Load: the full window for a second, then measure.
	g.measuring.Store(false)
	for _, l := range g.loads {
		l.setWindow(window, false)
		l.fill()
	}
	time.Sleep(time.Second)
	var discard loadCounts
	for _, l := range g.loads {
		l.collect(&discard, true)
	}
	cpu0, err := procCPU(pids)
	if err != nil {
		return row, err
	}
	start := time.Now()
	g.measuring.Store(true)
	if g.onMeasure != nil {
		wg.Add(1)
		go func() { defer wg.Done(); g.onMeasure(ctx, d) }()
	}
	select {
	case err := <-errc:
		return row, err
	case <-ctx.Done():
		return row, ctx.Err()
	case <-time.After(d):
	}
	g.measuring.Store(false)
	took := time.Since(start)
	cpu1, err := procCPU(pids)
	if err != nil {
		return row, err
	}
	row.cpu = (cpu1 - cpu0).Seconds()
	for _, l := range g.loads {
		l.collect(&row.loadCounts, false)
	}
	row.perSec = float64(row.answered+row.flooded) / took.Seconds()
	row.reconnects = g.reconnects.Load()
	slices.Sort(row.lat)
	if n := len(row.lat); n > 0 {
		row.p50 = time.Duration(row.lat[n/2]) * time.Microsecond
		row.p99 = time.Duration(row.lat[n*99/100]) * time.Microsecond
	}
	return row, nil
}

// waitFlows polls the flow tables of the switches until ok holds for each (i is the
// switch's index), for at most 5 minutes; what names the flows in the error.
func waitFlows(ctx context.Context, sws []*ofsim.Switch, what string, ok func(i int, flows []ofproto.Flow) bool) error {
	deadline := time.Now().Add(5 * time.Minute)
	done := make([]bool, len(sws))
	left := len(sws)
	for left > 0 {
		for i, sw := range sws {
			if done[i] {
				continue
			}
			flows, err := sw.Flows()
			if err != nil {
				return err
			}
			if ok(i, flows) {
				done[i] = true
				left--
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d switches still lack their %s after 5 minutes", left, len(sws), what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil
}

// packetOutData splits a PACKET_OUT into the port of its first action when that is an
// output (0 otherwise) and the frame it carries.
func packetOutData(msg []byte) (outPort uint32, data []byte, ok bool) {
	if len(msg) < 24 {
		return 0, nil, false
	}
	alen := int(binary.BigEndian.Uint16(msg[16:]))
	if 24+alen > len(msg) {
		return 0, nil, false
	}
	acts := msg[24 : 24+alen]
	if len(acts) >= 8 && binary.BigEndian.Uint16(acts) == 0 {
		outPort = binary.BigEndian.Uint32(acts[4:])
	}
	return outPort, msg[24+alen:], true
}

// newSimSwitch returns the simulated br-int of host h: a port per local VM, named as
// dvrflow names the VM's OVS port.
func newSimSwitch(log *zap.Logger, t *simTopology, h int) *ofsim.Switch {
	var ports []ofsim.Port
	for _, vm := range t.vmsOf(h) {
		name := fmt.Sprintf("tap%d-%d", h, vm.PortNo)
		if vm.ID != "" {
			name = "tap" + vm.ID[:min(11, len(vm.ID))]
		}
		ports = append(ports, ofsim.Port{No: vm.PortNo, Name: name,
			HWAddr: net.HardwareAddr{0xfe, 0x16, 0x3e, byte(h >> 8), byte(h), byte(vm.PortNo)}})
	}
	return ofsim.New(log, ofsim.Config{DPID: t.DPIDs[h], Ports: ports})
}
