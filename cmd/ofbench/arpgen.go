// The ARP benchmark's load: simulated switches sending ARP requests and matching the replies.

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
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

// arpSwitch is one simulated switch of the ARP load.
type arpSwitch struct {
	counted
	sw     *ofsim.Switch
	gen    *loadGen
	combos []arpCombo

	next    int
	pending []arpPending
	window  int
}

// arpGen is the ARP load: a switch per host.
type arpGen struct {
	loadGen
	sims []*arpSwitch
}

func (g *arpGen) init(t *simTopology) {
	g.sims, g.loads = g.sims[:0], g.loads[:0]
	for h := range t.Hosts {
		s := &arpSwitch{gen: &g.loadGen, sw: newSimSwitch(g.log, t, h)}
		s.setCombos(t, h)
		g.sims = append(g.sims, s)
		g.loads = append(g.loads, s)
	}
}

// setCombos builds the switch's requests: each local VM asks for every other address of
// its network, round robin.
func (s *arpSwitch) setCombos(t *simTopology, h int) {
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

func (s *arpSwitch) sim() *ofsim.Switch { return s.sw }

func (s *arpSwitch) setWindow(n int, reset bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.window = n
	if reset {
		s.pending, s.res = nil, loadCounts{}
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

func (s *arpSwitch) expire(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.pending)
	s.pending = slices.DeleteFunc(s.pending, func(p arpPending) bool { return now.Sub(p.sent) > lostAfter })
	if s.gen.measuring.Load() {
		s.res.lost += uint64(n - len(s.pending))
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
	outPort, data, ok := packetOutData(msg)
	if !ok || len(data) < 14 {
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

// arpFlowsReady waits until every switch holds an ARP_RESPONDER flow for each address its
// requests ask for, learns the local VLAN of its network from them, and rebuilds the
// requests with it.
func arpFlowsReady(ctx context.Context, g *arpGen, t *simTopology) error {
	sws := make([]*ofsim.Switch, len(g.sims))
	for h, s := range g.sims {
		sws[h] = s.sw
	}
	return waitFlows(ctx, sws, "ARP_RESPONDER flows", func(h int, flows []ofproto.Flow) bool {
		s := g.sims[h]
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
		if len(s.combos) == 0 {
			return false
		}
		for _, c := range s.combos {
			if _, found := have[c.key.tpa]; !found {
				return false
			}
		}
		t.VLAN[h] = have[s.combos[0].key.tpa]
		s.mu.Lock()
		s.setCombos(t, h)
		s.mu.Unlock()
		return true
	})
}
