// The ARP benchmark's packet generator: simulated switches sending ARP requests and matching the replies.

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
)

// arpKey identifies a request by what its reply carries back.
type arpKey struct {
	sha      [6]byte
	spa, tpa [4]byte
}

// arpCombo is one request a switch sends: from a local VM to another address of its network.
type arpCombo struct {
	key    arpKey
	msg    []byte // the whole PACKET_IN
	inPort uint32
	want   [6]byte // the MAC of the target
}

type arpPending struct {
	combo int
	sent  time.Time
}

// arpResults are one switch's counters.
type arpResults struct {
	answered, flooded, wrong, unmatched, lost uint64
	lat                                       []uint32 // microseconds, answered or flooded
}

// arpSwitch is one simulated switch of the load generator.
type arpSwitch struct {
	sw     *ofsim.Switch
	gen    *arpGen
	combos []arpCombo

	mu      sync.Mutex
	next    int
	pending []arpPending
	window  int
	res     arpResults
}

// arpGen is the load generator: the switches, the phase and the counters.
type arpGen struct {
	log        *zap.Logger
	sims       []*arpSwitch
	running    atomic.Bool
	measuring  atomic.Bool
	reconnects atomic.Int64 // connections dropped by the controller and dialled again
	// onMeasure, when set, runs on its own goroutine as the measured period starts.
	onMeasure func(ctx context.Context, d time.Duration)
}

func (g *arpGen) newSwitch(t *arpTopology, h int) *arpSwitch {
	var ports []ofsim.Port
	for _, vi := range t.ByNet[t.netOf(h)] {
		vm := t.VMs[vi]
		if vm.Host != h {
			continue
		}
		name := fmt.Sprintf("tap%d-%d", h, vm.PortNo)
		if vm.ID != "" {
			name = "tap" + vm.ID[:min(11, len(vm.ID))]
		}
		ports = append(ports, ofsim.Port{No: vm.PortNo, Name: name,
			HWAddr: net.HardwareAddr{0xfe, 0x16, 0x3e, byte(h >> 8), byte(h), byte(vm.PortNo)}})
	}
	s := &arpSwitch{gen: g, sw: ofsim.New(g.log, ofsim.Config{DPID: t.DPIDs[h], Ports: ports})}
	return s
}

// setCombos builds the switch's requests: each local VM asks for every other address of
// its network, round robin.
func (s *arpSwitch) setCombos(t *arpTopology, h int) {
	s.combos = s.combos[:0]
	for _, vi := range t.ByNet[t.netOf(h)] {
		src := t.VMs[vi]
		if src.Host != h {
			continue
		}
		for _, ti := range t.ByNet[src.Net] {
			dst := t.VMs[ti]
			if ti == vi {
				continue
			}
			c := arpCombo{inPort: src.PortNo}
			copy(c.key.sha[:], src.MAC)
			c.key.spa, c.key.tpa = src.IP.As4(), dst.IP.As4()
			copy(c.want[:], dst.MAC)
			frame := ofproto.AppendARPRequest(nil, t.VLAN[h], src.MAC, src.IP, dst.IP)
			c.msg = ofsim.AppendPacketIn(nil, t.Table, t.Cook, src.PortNo, frame)
			if t.Miss {
				c.msg[14] = 0 // ofp_packet_in.reason: OFPR_NO_MATCH
			}
			s.combos = append(s.combos, c)
		}
	}
}

// sendLocked picks the next request not in flight and returns its message.
func (s *arpSwitch) sendLocked(now time.Time) []byte {
	for range len(s.combos) {
		c := s.next % len(s.combos)
		s.next++
		if !slices.ContainsFunc(s.pending, func(p arpPending) bool { return p.combo == c }) {
			s.pending = append(s.pending, arpPending{combo: c, sent: now})
			return s.combos[c].msg
		}
	}
	return nil
}

// fill sends requests until the window is full, in one write.
func (s *arpSwitch) fill() {
	if !s.gen.running.Load() {
		return
	}
	var buf []byte
	now := time.Now()
	s.mu.Lock()
	for len(s.pending) < s.window {
		msg := s.sendLocked(now)
		if msg == nil {
			break
		}
		buf = append(buf, msg...)
	}
	s.mu.Unlock()
	if len(buf) == 0 {
		return
	}
	if err := s.sw.SendRaw(buf); err != nil {
		// The connection dropped: its requests time out as lost, the switch dials again.
		s.gen.log.Debug("sending requests", zap.Uint64("dpid", s.sw.DPID()), zap.Error(err))
	}
}

// take sees every message the controller sends the switch; it keeps the PACKET_OUTs.
func (s *arpSwitch) take(msg []byte) bool {
	if ofproto.MsgType(msg[1]) != ofproto.TypePacketOut {
		return false
	}
	now := time.Now()
	key, inPort, flood, ok := parseARPPacketOut(msg)
	s.mu.Lock()
	i := -1
	if ok {
		i = slices.IndexFunc(s.pending, func(p arpPending) bool { return s.combos[p.combo].key == key.key })
	}
	measuring := s.gen.measuring.Load()
	if i < 0 {
		if measuring {
			s.res.unmatched++
		}
		s.mu.Unlock()
		return true
	}
	p := s.pending[i]
	s.pending = slices.Delete(s.pending, i, i+1)
	c := &s.combos[p.combo]
	if measuring {
		switch {
		case flood:
			s.res.flooded++
			s.res.lat = append(s.res.lat, uint32(now.Sub(p.sent)/time.Microsecond))
		case key.sha != c.want || inPort != c.inPort:
			s.res.wrong++
		default:
			s.res.answered++
			s.res.lat = append(s.res.lat, uint32(now.Sub(p.sent)/time.Microsecond))
		}
	}
	s.mu.Unlock()
	return true // the Tap's After refills the window once the whole read is taken
}

// arpReplyKey is what a PACKET_OUT tells: the request it answers and the MAC it gives.
type arpReplyKey struct {
	key arpKey  // of the request answered
	sha [6]byte // the MAC the reply gives for key.tpa
}

// parseARPPacketOut parses a PACKET_OUT carrying an ARP reply (or, from a learning switch,
// the request itself, flood reports that) and returns the request it answers and the port
// of its first output action.
func parseARPPacketOut(msg []byte) (k arpReplyKey, outPort uint32, flood, ok bool) {
	if len(msg) < 24 {
		return k, 0, false, false
	}
	alen := int(binary.BigEndian.Uint16(msg[16:]))
	if 24+alen > len(msg) {
		return k, 0, false, false
	}
	acts, data := msg[24:24+alen], msg[24+alen:]
	if len(acts) >= 8 && binary.BigEndian.Uint16(acts) == 0 {
		outPort = binary.BigEndian.Uint32(acts[4:])
	}
	if len(data) < 14 {
		return k, 0, false, false
	}
	et, off := binary.BigEndian.Uint16(data[12:]), 14
	if et == ofproto.EthTypeVLAN && len(data) >= 18 {
		et, off = binary.BigEndian.Uint16(data[16:]), 18
	}
	a := data[off:]
	if et != ofproto.EthTypeARP || len(a) < 28 {
		return k, 0, false, false
	}
	switch binary.BigEndian.Uint16(a[6:]) {
	case 1: // the request, flooded
		copy(k.key.sha[:], a[8:14])
		copy(k.key.spa[:], a[14:18])
		copy(k.key.tpa[:], a[24:28])
		return k, outPort, true, true
	case 2:
		// The reply: to the asker (tha, tpa), from the address asked for (sha, spa), and the
		// Ethernet header must agree.
		if !bytes.Equal(data[0:6], a[18:24]) || !bytes.Equal(data[6:12], a[8:14]) {
			return k, outPort, false, false
		}
		copy(k.key.sha[:], a[18:24])
		copy(k.key.spa[:], a[24:28])
		copy(k.key.tpa[:], a[14:18])
		copy(k.sha[:], a[8:14])
		return k, outPort, false, true
	}
	return k, 0, false, false
}

// sweep counts requests unanswered for arpTimeout as lost and refills their slots.
func (g *arpGen) sweep(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, s := range g.sims {
				s.mu.Lock()
				n := len(s.pending)
				s.pending = slices.DeleteFunc(s.pending, func(p arpPending) bool { return now.Sub(p.sent) > arpTimeout })
				if g.measuring.Load() {
					s.res.lost += uint64(n - len(s.pending))
				}
				s.mu.Unlock()
				s.fill()
			}
		}
	}
}

// arpRow is one controller's figures.
type arpRow struct {
	name                                      string
	procs                                     int
	answered, flooded, wrong, unmatched, lost uint64
	perSec                                    float64
	p50, p99                                  time.Duration
	reconnects                                int64
	cpu                                       float64 // CPU seconds the controller used while measured
	note                                      string
}

// run connects the switches to addrs (switch i to addrs[i*len(addrs)/n]), waits until each
// switch had one request answered, then loads them with window requests each for d.
//
// pids are the controller's processes: the CPU time they use while measured is reported.
func (g *arpGen) run(ctx context.Context, addrs []string, pids []int, window int, d time.Duration, ready func(context.Context) error) (arpRow, error) {
	var row arpRow
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	errc := make(chan error, len(g.sims))
	for i, s := range g.sims {
		addr := addrs[i*len(addrs)/len(g.sims)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Like OVS: a dropped connection is dialled again, after a pause.
			for attempt := 0; ; attempt++ {
				var d net.Dialer
				c, err := d.DialContext(ctx, "tcp", addr)
				if err == nil {
					tap := ofsim.NewTap(c, s.take)
					tap.After = s.fill
					err = s.sw.Serve(ctx, tap)
				}
				if ctx.Err() != nil {
					return
				}
				g.reconnects.Add(1)
				if attempt == 20 {
					errc <- fmt.Errorf("switch %016x: 20 reconnections, the last: %w", s.sw.DPID(), err)
					return
				}
				g.log.Debug("switch reconnecting", zap.Uint64("dpid", s.sw.DPID()), zap.Error(err))
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Duration(attempt+1) * 100 * time.Millisecond):
				}
			}
		}()
		if i%50 == 49 {
			time.Sleep(5 * time.Millisecond) // do not overflow the listen backlog
		}
	}
	if ready != nil {
		if err := ready(ctx); err != nil {
			return row, err
		}
	}
	// Warm-up: one request in flight per switch until every switch had one answered.
	g.running.Store(true)
	defer g.running.Store(false)
	for _, s := range g.sims {
		s.mu.Lock()
		s.window, s.pending, s.res = 1, nil, arpResults{}
		s.mu.Unlock()
	}
	wg.Add(1)
	go func() { defer wg.Done(); g.sweep(ctx) }()
	g.measuring.Store(true)
	for _, s := range g.sims {
		s.fill()
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		waiting := 0
		for _, s := range g.sims {
			s.mu.Lock()
			if s.res.answered+s.res.flooded == 0 {
				waiting++
			}
			s.mu.Unlock()
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
			return row, fmt.Errorf("%d of %d switches had no request answered in 3 minutes", waiting, len(g.sims))
		}
	}
	// Load: the full window for a second, then measure.
	g.measuring.Store(false)
	for _, s := range g.sims {
		s.mu.Lock()
		s.window = window
		s.mu.Unlock()
		s.fill()
	}
	time.Sleep(time.Second)
	for _, s := range g.sims {
		s.mu.Lock()
		s.res = arpResults{lat: s.res.lat[:0]}
		s.mu.Unlock()
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
	var lat []uint32
	for _, s := range g.sims {
		s.mu.Lock()
		r := s.res
		row.answered += r.answered
		row.flooded += r.flooded
		row.wrong += r.wrong
		row.unmatched += r.unmatched
		row.lost += r.lost
		lat = append(lat, r.lat...)
		s.mu.Unlock()
	}
	row.perSec = float64(row.answered+row.flooded) / took.Seconds()
	row.reconnects = g.reconnects.Load()
	slices.Sort(lat)
	if len(lat) > 0 {
		row.p50 = time.Duration(lat[len(lat)/2]) * time.Microsecond
		row.p99 = time.Duration(lat[len(lat)*99/100]) * time.Microsecond
	}
	return row, nil
}

func (g *arpGen) init(t *arpTopology) {
	g.sims = g.sims[:0]
	for h := range t.Hosts {
		s := g.newSwitch(t, h)
		s.setCombos(t, h)
		g.sims = append(g.sims, s)
	}
}

// arpFlowsReady waits until every switch holds an ARP_RESPONDER flow for each address its
// requests ask for, learns the local VLAN of its network from them, and rebuilds the
// requests with it.
func arpFlowsReady(ctx context.Context, g *arpGen, t *arpTopology) error {
	deadline := time.Now().Add(5 * time.Minute)
	done := make([]bool, len(g.sims))
	left := len(g.sims)
	for left > 0 {
		for h, s := range g.sims {
			if done[h] {
				continue
			}
			flows, err := s.sw.Flows()
			if err != nil {
				return err
			}
			have := map[[4]byte]uint16{}
			for i := range flows {
				f := &flows[i]
				if f.Table != apps.IntARPResponder || f.Cookie != t.Cook {
					continue
				}
				vf, okv := f.Match.Get(ofproto.ClassBasic, ofproto.OXMVLANVID)
				tf, okt := f.Match.Get(ofproto.ClassBasic, ofproto.OXMARPTPA)
				if okv && okt && len(vf.Value) == 2 && len(tf.Value) == 4 {
					have[[4]byte(tf.Value)] = binary.BigEndian.Uint16(vf.Value) & 0x0fff
				}
			}
			ok := len(s.combos) > 0
			for _, c := range s.combos {
				if _, found := have[c.key.tpa]; !found {
					ok = false
					break
				}
			}
			if ok {
				t.VLAN[h] = have[s.combos[0].key.tpa]
				s.setCombos(t, h)
				done[h] = true
				left--
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d switches still lack their ARP_RESPONDER flows after 5 minutes", left, len(g.sims))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return nil
}
