package ofsim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/dvrflow/dvrflow/ofproto"
)

// Output is one packet leaving the switch while executing a packet.
type Output struct {
	Port  uint32 // a port number, or ofproto.PortController / PortLocal
	Frame []byte
	// Tunnel metadata set by the pipeline (for a flow-based tunnel port).
	TunID  uint64
	TunDst netip.Addr
}

// Ethernet types understood by the packet parser.
const (
	ethTypeIPv4 = 0x0800
	ethTypeARP  = 0x0806
	ethTypeIPv6 = 0x86dd
	ethTypeVLAN = 0x8100
	ethTypeQinQ = 0x88a8
)

// packet is a parsed frame plus the pipeline's fields.
type packet struct {
	inPort         uint32
	dst, src       [6]byte
	hasVLAN        bool
	tpid, tci      uint16
	ethType        uint16
	ip             []byte // IPv4 header (with options) when ethType is IPv4
	ip6            []byte // IPv6 header and its extension headers when ethType is IPv6
	proto6         uint8  // the IPv6 packet's upper-layer protocol (after the extension headers)
	arp            []byte // 28-byte ARP body when ethType is ARP
	payload        []byte // what follows the L3 header (or the Ethernet header)
	metadata       uint64
	regs           [8]uint32
	tunID          uint64
	tunSrc, tunDst [4]byte
	hasTunDst      bool
	recirc         uint8 // the table a ct action recirculates the packet to
	hasRecirc      bool
	ctState        uint32
	ctZone         uint16
	ctMark         uint32
	conjID         uint32
}

func parsePacket(inPort uint32, frame []byte) (*packet, error) {
	if len(frame) < 14 {
		return nil, fmt.Errorf("frame of %d bytes is shorter than an Ethernet header", len(frame))
	}
	p := &packet{inPort: inPort}
	copy(p.dst[:], frame[0:6])
	copy(p.src[:], frame[6:12])
	p.ethType = binary.BigEndian.Uint16(frame[12:])
	rest := frame[14:]
	if p.ethType == ethTypeVLAN || p.ethType == ethTypeQinQ {
		if len(rest) < 4 {
			return nil, errors.New("truncated VLAN header")
		}
		p.hasVLAN, p.tpid = true, p.ethType
		p.tci = binary.BigEndian.Uint16(rest)
		p.ethType = binary.BigEndian.Uint16(rest[2:])
		rest = rest[4:]
	}
	switch p.ethType {
	case ethTypeIPv4:
		if len(rest) < 20 || rest[0]>>4 != 4 {
			return nil, errors.New("truncated or bad IPv4 header")
		}
		ihl := int(rest[0]&0x0f) * 4
		if ihl < 20 || len(rest) < ihl {
			return nil, fmt.Errorf("bad IPv4 header length %d", ihl)
		}
		p.ip = slices.Clone(rest[:ihl])
		rest = rest[ihl:]
	case ethTypeIPv6:
		n, proto, err := ipv6Headers(rest)
		if err != nil {
			return nil, err
		}
		p.ip6, p.proto6 = slices.Clone(rest[:n]), proto
		rest = rest[n:]
	case ethTypeARP:
		if len(rest) < 28 {
			return nil, errors.New("truncated ARP")
		}
		p.arp = slices.Clone(rest[:28])
		rest = rest[28:]
	}
	p.payload = slices.Clone(rest)
	return p, nil
}

// ipv6Headers returns the length of the IPv6 header of b with the extension headers that
// follow it (hop-by-hop, routing, destination options: MLD's router alert) and the
// upper-layer protocol after them.
func ipv6Headers(b []byte) (int, uint8, error) {
	if len(b) < 40 || b[0]>>4 != 6 {
		return 0, 0, errors.New("truncated or bad IPv6 header")
	}
	n, next := 40, b[6]
	for next == 0 || next == 43 || next == 60 {
		if len(b) < n+8 {
			return 0, 0, errors.New("truncated IPv6 extension header")
		}
		l := 8 + int(b[n+1])*8
		if len(b) < n+l {
			return 0, 0, errors.New("truncated IPv6 extension header")
		}
		next = b[n]
		n += l
	}
	return n, next, nil
}

func (p *packet) serialize() []byte {
	b := make([]byte, 0, 64+len(p.payload))
	b = append(b, p.dst[:]...)
	b = append(b, p.src[:]...)
	if p.hasVLAN {
		b = binary.BigEndian.AppendUint16(b, p.tpid)
		b = binary.BigEndian.AppendUint16(b, p.tci)
	}
	b = binary.BigEndian.AppendUint16(b, p.ethType)
	switch {
	case p.ip != nil:
		start := len(b)
		b = append(b, p.ip...)
		h := b[start:]
		binary.BigEndian.PutUint16(h[10:], 0)
		binary.BigEndian.PutUint16(h[10:], ipChecksum(h))
	case p.ip6 != nil:
		b = append(b, p.ip6...)
	case p.arp != nil:
		b = append(b, p.arp...)
	}
	return append(b, p.payload...)
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// fieldID names the fields the simulator reads and writes, whatever their OXM class.
type fieldID uint8

const (
	fNone fieldID = iota
	fInPort
	fMetadata
	fEthDst
	fEthSrc
	fEthType
	fVLANVID
	fIPProto
	fIPv4Src
	fIPv4Dst
	fICMPType
	fICMPCode
	fIPv6Src
	fIPv6Dst
	fICMP6Type
	fICMP6Code
	fNDTarget
	fARPOp
	fARPSPA
	fARPTPA
	fARPSHA
	fARPTHA
	fTunID
	fTunSrc
	fTunDst
	fTCPSrc
	fTCPDst
	fUDPSrc
	fUDPDst
	fCTState
	fCTZone
	fCTMark
	fConjID
	fReg0 // fReg0+n
)

func lookup(class uint16, typ uint8) (fid fieldID, width int) {
	switch class {
	case ofproto.ClassBasic:
		switch typ {
		case ofproto.OXMInPort:
			return fInPort, 4
		case ofproto.OXMMetadata:
			return fMetadata, 8
		case ofproto.OXMEthDst:
			return fEthDst, 6
		case ofproto.OXMEthSrc:
			return fEthSrc, 6
		case ofproto.OXMEthType:
			return fEthType, 2
		case ofproto.OXMVLANVID:
			return fVLANVID, 2
		case ofproto.OXMIPProto:
			return fIPProto, 1
		case ofproto.OXMIPv4Src:
			return fIPv4Src, 4
		case ofproto.OXMIPv4Dst:
			return fIPv4Dst, 4
		case ofproto.OXMICMPv4Type:
			return fICMPType, 1
		case ofproto.OXMICMPv4Code:
			return fICMPCode, 1
		case ofproto.OXMIPv6Src:
			return fIPv6Src, 16
		case ofproto.OXMIPv6Dst:
			return fIPv6Dst, 16
		case ofproto.OXMICMPv6Type:
			return fICMP6Type, 1
		case ofproto.OXMICMPv6Code:
			return fICMP6Code, 1
		case ofproto.OXMIPv6NDTarget:
			return fNDTarget, 16
		case ofproto.OXMARPOp:
			return fARPOp, 2
		case ofproto.OXMARPSPA:
			return fARPSPA, 4
		case ofproto.OXMARPTPA:
			return fARPTPA, 4
		case ofproto.OXMARPSHA:
			return fARPSHA, 6
		case ofproto.OXMARPTHA:
			return fARPTHA, 6
		case ofproto.OXMTunnelID:
			return fTunID, 8
		case ofproto.OXMTCPSrc:
			return fTCPSrc, 2
		case ofproto.OXMTCPDst:
			return fTCPDst, 2
		case ofproto.OXMUDPSrc:
			return fUDPSrc, 2
		case ofproto.OXMUDPDst:
			return fUDPDst, 2
		}
	case ofproto.ClassNXM0:
		switch typ {
		case ofproto.NXMOFInPort:
			return fInPort, 2
		case ofproto.NXMOFEthDst:
			return fEthDst, 6
		case ofproto.NXMOFEthSrc:
			return fEthSrc, 6
		case ofproto.NXMOFEthType:
			return fEthType, 2
		case ofproto.NXMOFIPSrc:
			return fIPv4Src, 4
		case ofproto.NXMOFIPDst:
			return fIPv4Dst, 4
		case ofproto.NXMOFARPOp:
			return fARPOp, 2
		case ofproto.NXMOFARPSPA:
			return fARPSPA, 4
		case ofproto.NXMOFARPTPA:
			return fARPTPA, 4
		}
	case ofproto.ClassNXM1:
		switch {
		case typ <= 7:
			return fReg0 + fieldID(typ), 4
		case typ == ofproto.NXMNXTunID:
			return fTunID, 8
		case typ == ofproto.NXMNXARPSHA:
			return fARPSHA, 6
		case typ == ofproto.NXMNXARPTHA:
			return fARPTHA, 6
		case typ == ofproto.NXMTunIPv4Src:
			return fTunSrc, 4
		case typ == ofproto.NXMTunIPv4Dst:
			return fTunDst, 4
		case typ == ofproto.NXMCTState:
			return fCTState, 4
		case typ == ofproto.NXMCTZone:
			return fCTZone, 2
		case typ == ofproto.NXMCTMark:
			return fCTMark, 4
		case typ == ofproto.NXMConjID:
			return fConjID, 4
		}
	}
	return fNone, 0
}

// get returns the field's value as an integer, or false when the packet lacks it.
func (p *packet) get(f fieldID) (uint64, bool) {
	be := beValue
	proto, isIP := p.ipProto()
	isICMP := p.ip != nil && proto == 1 && len(p.payload) >= 2
	isICMP6 := p.ip6 != nil && proto == ofproto.IPProtoICMPv6 && len(p.payload) >= 2
	isTCP := isIP && proto == 6 && len(p.payload) >= 4
	isUDP := isIP && proto == 17 && len(p.payload) >= 4
	switch {
	case f == fInPort:
		return uint64(p.inPort), true
	case f == fMetadata:
		return p.metadata, true
	case f == fEthDst:
		return be(p.dst[:]), true
	case f == fEthSrc:
		return be(p.src[:]), true
	case f == fEthType:
		return uint64(p.ethType), true
	case f == fVLANVID:
		if !p.hasVLAN {
			return 0, true
		}
		return uint64(p.tci&0x0fff | ofproto.VIDPresent), true
	case f == fIPProto && isIP:
		return uint64(proto), true
	case f == fIPv4Src && p.ip != nil:
		return be(p.ip[12:16]), true
	case f == fIPv4Dst && p.ip != nil:
		return be(p.ip[16:20]), true
	case f == fICMPType && isICMP:
		return uint64(p.payload[0]), true
	case f == fICMPCode && isICMP:
		return uint64(p.payload[1]), true
	case f == fICMP6Type && isICMP6:
		return uint64(p.payload[0]), true
	case f == fICMP6Code && isICMP6:
		return uint64(p.payload[1]), true
	case f == fARPOp && p.arp != nil:
		return be(p.arp[6:8]), true
	case f == fARPSHA && p.arp != nil:
		return be(p.arp[8:14]), true
	case f == fARPSPA && p.arp != nil:
		return be(p.arp[14:18]), true
	case f == fARPTHA && p.arp != nil:
		return be(p.arp[18:24]), true
	case f == fARPTPA && p.arp != nil:
		return be(p.arp[24:28]), true
	case f == fTCPSrc && isTCP, f == fUDPSrc && isUDP:
		return be(p.payload[0:2]), true
	case f == fTCPDst && isTCP, f == fUDPDst && isUDP:
		return be(p.payload[2:4]), true
	case f == fCTState:
		return uint64(p.ctState), true
	case f == fCTZone:
		return uint64(p.ctZone), true
	case f == fCTMark:
		return uint64(p.ctMark), true
	case f == fConjID:
		return uint64(p.conjID), true
	case f == fTunID:
		return p.tunID, true
	case f == fTunSrc:
		return be(p.tunSrc[:]), true
	case f == fTunDst:
		return be(p.tunDst[:]), true
	case f >= fReg0 && f < fReg0+8:
		return uint64(p.regs[f-fReg0]), true
	}
	return 0, false
}

// set writes the field; it fails when the packet lacks the header.
func (p *packet) set(f fieldID, v uint64) error {
	put := func(b []byte) {
		for i := len(b) - 1; i >= 0; i-- {
			b[i] = byte(v)
			v >>= 8
		}
	}
	switch {
	case f == fInPort:
		p.inPort = uint32(v)
	case f == fMetadata:
		p.metadata = v
	case f == fEthDst:
		put(p.dst[:])
	case f == fEthSrc:
		put(p.src[:])
	case f == fEthType:
		p.ethType = uint16(v)
	case f == fVLANVID && p.hasVLAN:
		p.tci = p.tci&0xf000 | uint16(v)&0x0fff
	case f == fIPProto && p.ip != nil:
		p.ip[9] = byte(v)
	case f == fIPv4Src && p.ip != nil:
		put(p.ip[12:16])
	case f == fIPv4Dst && p.ip != nil:
		put(p.ip[16:20])
	case f == fARPOp && p.arp != nil:
		put(p.arp[6:8])
	case f == fARPSHA && p.arp != nil:
		put(p.arp[8:14])
	case f == fARPSPA && p.arp != nil:
		put(p.arp[14:18])
	case f == fARPTHA && p.arp != nil:
		put(p.arp[18:24])
	case f == fARPTPA && p.arp != nil:
		put(p.arp[24:28])
	case f == fTunID:
		p.tunID = v
	case f == fTunSrc:
		put(p.tunSrc[:])
	case f == fTunDst:
		put(p.tunDst[:])
		p.hasTunDst = true
	case f >= fReg0 && f < fReg0+8:
		p.regs[f-fReg0] = uint32(v)
	default:
		return fmt.Errorf("cannot set field %d on this packet", f)
	}
	return nil
}

// ipProto returns the packet's IP protocol (IPv4's, or IPv6's upper-layer one), and false
// for a packet that is not IP.
func (p *packet) ipProto() (uint8, bool) {
	switch {
	case p.ip != nil:
		return p.ip[9], true
	case p.ip6 != nil:
		return p.proto6, true
	}
	return 0, false
}

// getWide returns the value of a field wider than 64 bits (IPv6 addresses), or false when
// the packet lacks it.
func (p *packet) getWide(f fieldID) ([]byte, bool) {
	switch {
	case f == fIPv6Src && p.ip6 != nil:
		return p.ip6[8:24], true
	case f == fIPv6Dst && p.ip6 != nil:
		return p.ip6[24:40], true
	case f == fNDTarget && p.ip6 != nil && p.proto6 == ofproto.IPProtoICMPv6 && len(p.payload) >= 24 &&
		(p.payload[0] == ofproto.ICMPv6NeighborSolicitation || p.payload[0] == ofproto.ICMPv6NeighborAdvertisement):
		return p.payload[8:24], true
	}
	return nil, false
}

func beValue(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// matches reports whether the packet matches every field of m.
func (p *packet) matches(m ofproto.Match) bool {
	for _, fl := range m {
		id, width := lookup(fl.Class, fl.Type)
		if id == fNone || len(fl.Value) != width {
			return false
		}
		if width > 8 {
			v, ok := p.getWide(id)
			if !ok {
				return false
			}
			for i := range v {
				mask := byte(0xff)
				if fl.Mask != nil {
					mask = fl.Mask[i]
				}
				if (v[i]^fl.Value[i])&mask != 0 {
					return false
				}
			}
			continue
		}
		v, ok := p.get(id)
		if !ok {
			return false
		}
		want, mask := beValue(fl.Value), ^uint64(0)
		if fl.Mask != nil {
			mask = beValue(fl.Mask)
		}
		if v&mask != want&mask {
			return false
		}
	}
	return true
}

// Execute runs a frame received on inPort through the flow tables, from table 0, and
// returns the packets output (in order). A CONTROLLER output is returned too and, when
// connected, sent to the controller as a packet-in. A table miss drops the packet.
func (s *Switch) Execute(inPort uint32, frame []byte) ([]Output, error) {
	p, err := parsePacket(inPort, frame)
	if err != nil {
		return nil, fmt.Errorf("ofsim execute: %w", err)
	}
	var outs []Output
	table := uint8(0)
	for range 256 {
		e, f, err := s.lookupFlow(table, p, len(frame))
		if err != nil {
			return nil, err
		}
		if e == nil {
			return outs, nil // table miss: drop
		}
		outs, err = s.applyActions(p, f, outs)
		if err != nil {
			return outs, fmt.Errorf("ofsim execute: table %d flow %s: %w", table, f.String(), err)
		}
		if p.hasRecirc {
			// ct(table=N): the tracked packet resumes in table N.
			table, p.hasRecirc = p.recirc, false
			continue
		}
		if f.HasMetadata {
			p.metadata = p.metadata&^f.MetadataMask | f.Metadata&f.MetadataMask
		}
		if !f.HasGoto {
			return outs, nil
		}
		table = f.Goto
	}
	return outs, errors.New("ofsim execute: pipeline loop")
}

// lookupFlow finds the highest-priority flow of table matching p and counts the packet.
// Conjunctive flows (conjunction actions) match only together: when those matched at one
// priority complete a conjunction, the table is looked up again with conj_id set, as in
// Open vSwitch; otherwise the lookup goes on at lower priorities.
func (s *Switch) lookupFlow(table uint8, p *packet, n int) (*entry, *ofproto.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type hit struct {
		e *entry
		f ofproto.Flow
	}
	var hits []hit
	for _, e := range s.flows {
		if e.table != table {
			continue
		}
		f, err := e.flow()
		if err != nil {
			return nil, nil, fmt.Errorf("ofsim execute: stored flow: %w", err)
		}
		if p.matches(f.Match) {
			hits = append(hits, hit{e, f})
		}
	}
	slices.SortStableFunc(hits, func(a, b hit) int { return int(b.e.priority) - int(a.e.priority) })
	for i := 0; i < len(hits); {
		if len(conjunctions(&hits[i].f)) == 0 {
			h := hits[i]
			h.e.packets++
			h.e.bytes += uint64(n)
			return h.e, &h.f, nil
		}
		j := i
		var same []*ofproto.Flow
		for ; j < len(hits) && hits[j].e.priority == hits[i].e.priority; j++ {
			if len(conjunctions(&hits[j].f)) > 0 {
				same = append(same, &hits[j].f)
			}
		}
		if id, ok := completeConjunction(same); ok && p.conjID == 0 {
			p.conjID = id
			s.mu.Unlock()
			e, f, err := s.lookupFlow(table, p, n)
			s.mu.Lock()
			p.conjID = 0
			return e, f, err
		}
		// Non-conjunctive flows of the same priority still match.
		for k := i; k < j; k++ {
			if len(conjunctions(&hits[k].f)) == 0 {
				h := hits[k]
				h.e.packets++
				h.e.bytes += uint64(n)
				return h.e, &h.f, nil
			}
		}
		i = j
	}
	return nil, nil, nil
}

func (s *Switch) applyActions(p *packet, f *ofproto.Flow, outs []Output) ([]Output, error) {
	emit := func(port uint32) {
		o := Output{Port: port, Frame: p.serialize(), TunID: p.tunID}
		if p.hasTunDst {
			o.TunDst = netip.AddrFrom4(p.tunDst)
		}
		outs = append(outs, o)
	}
	for _, a := range f.Actions {
		switch a := a.(type) {
		case ofproto.Output:
			switch a.Port {
			case ofproto.PortInPort:
				emit(p.inPort)
			case ofproto.PortNormal, ofproto.PortFlood, ofproto.PortAll:
				for _, no := range s.portNumbers() {
					if no != p.inPort {
						emit(no)
					}
				}
			case ofproto.PortController:
				emit(ofproto.PortController)
				frame := p.serialize()
				if a.MaxLen != ofproto.ControllerMaxLenNoBuffer && int(a.MaxLen) < len(frame) {
					frame = frame[:a.MaxLen]
				}
				_ = s.SendPacketIn(f.Table, f.Cookie, p.inPort, frame) // not connected: only recorded
			default:
				if a.Port == p.inPort {
					continue // OpenFlow never outputs to the ingress port unless IN_PORT
				}
				emit(a.Port)
			}
		case ofproto.SetField:
			id, width := lookup(a.Field.Class, a.Field.Type)
			if id == fNone || len(a.Field.Value) != width {
				return outs, fmt.Errorf("set_field of unsupported field %#x:%d", a.Field.Class, a.Field.Type)
			}
			if err := p.set(id, beValue(a.Field.Value)); err != nil {
				return outs, err
			}
		case ofproto.PushVLAN:
			if p.hasVLAN {
				return outs, errors.New("push_vlan on a tagged packet is not simulated")
			}
			p.hasVLAN, p.tpid, p.tci = true, a.EtherType, 0
		case ofproto.PopVLAN:
			if !p.hasVLAN {
				return outs, errors.New("pop_vlan on an untagged packet")
			}
			p.hasVLAN = false
		case ofproto.DecNwTTL:
			ttl := 8 // IPv4's TTL, or IPv6's hop limit
			h := p.ip
			if p.ip6 != nil {
				h, ttl = p.ip6, 7
			}
			if h == nil {
				return outs, errors.New("dec_ttl on a non-IP packet")
			}
			if h[ttl] <= 1 {
				return outs, nil // TTL expired: dropped
			}
			h[ttl]--
		case ofproto.RegMove:
			if err := regMove(p, a); err != nil {
				return outs, err
			}
		case ofproto.CT:
			if err := s.conntrack(p, a); err != nil {
				return outs, err
			}
			if a.HasTable {
				p.recirc, p.hasRecirc = a.Table, true
				return outs, nil
			}
		case ofproto.CTClear:
			p.ctState, p.ctZone, p.ctMark = 0, 0, 0
		default:
			return outs, fmt.Errorf("action %s is not simulated", a.String())
		}
	}
	return outs, nil
}

func regMove(p *packet, a ofproto.RegMove) error {
	src, _ := lookup(a.Src.Class, a.Src.Type)
	dst, _ := lookup(a.Dst.Class, a.Dst.Type)
	if src == fNone || dst == fNone || a.NBits <= 0 || a.NBits > 64 {
		return fmt.Errorf("move: unsupported fields or width")
	}
	v, ok := p.get(src)
	if !ok {
		return errors.New("move: the packet lacks the source field")
	}
	d, ok := p.get(dst)
	if !ok {
		return errors.New("move: the packet lacks the destination field")
	}
	mask := ^uint64(0)
	if a.NBits < 64 {
		mask = 1<<a.NBits - 1
	}
	bits := v >> a.Src.Ofs & mask
	d = d&^(mask<<a.Dst.Ofs) | bits<<a.Dst.Ofs
	if dst == fVLANVID {
		d &= 0x0fff
	}
	return p.set(dst, d)
}

func (s *Switch) portNumbers() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]uint32, 0, len(s.ports))
	for no := range s.ports {
		out = append(out, no)
	}
	slices.Sort(out)
	return out
}
