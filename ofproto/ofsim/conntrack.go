package ofsim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/dvrflow/dvrflow/ofproto"
)

// The simulator's connection tracker and conjunctive matches: what Execute needs to run a
// stateful firewall pipeline the way Open vSwitch does. Connections are IPv4 and IPv6
// 5-tuples (ICMP and ICMPv6 echo by its identifier) per zone; a ct action looks the packet up and sets
// ct_state (+trk and +new, or +est with +rpl for the reply direction), ct_zone and ct_mark;
// commit records the connection and runs its exec actions (set ct_mark). TCP states and
// invalid packets are not modelled.

// connKey is one direction of a connection.
type connKey struct {
	zone             uint16
	proto            uint8
	src, dst         netip.Addr
	srcPort, dstPort uint16
}

// conn is a committed connection.
type conn struct {
	mark uint32
}

// connOf returns the packet's key in zone, or false when the packet is not IP.
func (p *packet) connOf(zone uint16) (connKey, bool) {
	proto, ok := p.ipProto()
	if !ok {
		return connKey{}, false
	}
	k := connKey{zone: zone, proto: proto}
	if p.ip != nil {
		k.src, k.dst = netip.AddrFrom4([4]byte(p.ip[12:16])), netip.AddrFrom4([4]byte(p.ip[16:20]))
	} else {
		k.src, k.dst = netip.AddrFrom16([16]byte(p.ip6[8:24])), netip.AddrFrom16([16]byte(p.ip6[24:40]))
	}
	switch {
	case (k.proto == 6 || k.proto == 17) && len(p.payload) >= 4:
		k.srcPort, k.dstPort = binary.BigEndian.Uint16(p.payload), binary.BigEndian.Uint16(p.payload[2:])
	case k.proto == 1 && len(p.payload) >= 6 && (p.payload[0] == 8 || p.payload[0] == 0),
		k.proto == ofproto.IPProtoICMPv6 && len(p.payload) >= 6 && (p.payload[0] == 128 || p.payload[0] == 129):
		id := binary.BigEndian.Uint16(p.payload[4:])
		k.srcPort, k.dstPort = id, id
	}
	return k, true
}

func (k connKey) reverse() connKey {
	return connKey{zone: k.zone, proto: k.proto, src: k.dst, dst: k.src, srcPort: k.dstPort, dstPort: k.srcPort}
}

// conntrack runs a ct action on p.
func (s *Switch) conntrack(p *packet, a ofproto.CT) error {
	zone := a.Zone
	if a.ZoneSrc.Bytes != 0 {
		id, _ := lookup(a.ZoneSrc.Class, a.ZoneSrc.Type)
		v, ok := p.get(id)
		if id == fNone || !ok {
			return errors.New("ct: zone from a field the packet lacks")
		}
		zone = uint16(v >> a.ZoneSrc.Ofs)
	}
	k, ok := p.connOf(zone)
	if !ok {
		return errors.New("ct on a non-IP packet")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		s.conns = map[connKey]*conn{}
	}
	c, state := s.conns[k], ofproto.CTTrk|ofproto.CTEst
	if c == nil {
		if c = s.conns[k.reverse()]; c != nil {
			state |= ofproto.CTRpl
		} else {
			state = ofproto.CTTrk | ofproto.CTNew
		}
	}
	if a.Commit {
		if c == nil {
			c = &conn{}
			s.conns[k] = c
		}
		for _, x := range a.Actions {
			sf, ok := x.(ofproto.SetField)
			if !ok || sf.Field.Class != ofproto.ClassNXM1 || sf.Field.Type != ofproto.NXMCTMark {
				return fmt.Errorf("ct exec action %s is not simulated", x.String())
			}
			c.mark = uint32(beValue(sf.Field.Value))
		}
	}
	if !a.HasTable {
		// Without recirculation the packet goes on untracked, as in Open vSwitch.
		p.ctState, p.ctZone, p.ctMark = 0, 0, 0
		return nil
	}
	p.ctState, p.ctZone, p.ctMark = state, zone, 0
	if c != nil {
		p.ctMark = c.mark
	}
	return nil
}

// Connections returns how many connections the switch's tracker holds.
func (s *Switch) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// conjunctions returns the conjunction actions of f, or nil if it is not conjunctive.
func conjunctions(f *ofproto.Flow) []ofproto.Conjunction {
	var out []ofproto.Conjunction
	for _, a := range f.Actions {
		if c, ok := a.(ofproto.Conjunction); ok {
			out = append(out, c)
		}
	}
	return out
}

// completeConjunction returns the conjunction that the conjunctive flows matched at one
// priority complete (every clause matched), the lowest ID first, as OVS chooses.
func completeConjunction(matched []*ofproto.Flow) (uint32, bool) {
	clauses := map[uint32]map[uint8]bool{}
	need := map[uint32]uint8{}
	for _, f := range matched {
		for _, c := range conjunctions(f) {
			if clauses[c.ID] == nil {
				clauses[c.ID] = map[uint8]bool{}
			}
			clauses[c.ID][c.Clause] = true
			need[c.ID] = c.NClauses
		}
	}
	var best uint32
	found := false
	for id, cs := range clauses {
		if len(cs) == int(need[id]) && (!found || id < best) {
			best, found = id, true
		}
	}
	return best, found
}
