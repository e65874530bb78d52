package ofproto

import (
	"encoding/binary"
	"fmt"
)

// Validate checks f for structural sanity before it is sent: known fields have their wire
// width, masks have the value's length and cover its bits, no field appears twice,
// prerequisites hold as Open vSwitch enforces them (eth_type ARP before arp_*, IPv4/IPv6
// before L3 fields, the IP protocol before L4 ports and ICMP, a VLAN before dl_vlan_pcp and
// set_field vlan_vid), reg_move bit ranges fit their fields, output ports are valid and a
// goto_table goes forward. It does not check table-schema policy: that is the apps' job.
func (f *Flow) Validate() error {
	if f.Table == TableAll {
		return fmt.Errorf("table %d is not a flow table", f.Table)
	}
	if err := f.Match.Validate(); err != nil {
		return err
	}
	if f.HasGoto && f.Goto <= f.Table {
		return fmt.Errorf("goto_table:%d from table %d: must go to a later table", f.Goto, f.Table)
	}
	if f.HasMetadata && f.Metadata&^f.MetadataMask != 0 {
		return fmt.Errorf("write_metadata:%#x/%#x: value has bits outside the mask", f.Metadata, f.MetadataMask)
	}
	vlan := false
	if v, ok := f.Match.Get(ClassBasic, OXMVLANVID); ok && vlanPresent(v) {
		vlan = true
	}
	for i, a := range f.Actions {
		switch a := a.(type) {
		case Output:
			if a.Port == 0 || (a.Port > PortMax && a.Port < PortInPort) || a.Port == PortAny {
				return fmt.Errorf("action %d (%s): invalid port %#x", i, a, a.Port)
			}
		case PushVLAN:
			if a.EtherType != 0x8100 && a.EtherType != 0x88a8 {
				return fmt.Errorf("action %d (%s): ethertype must be 0x8100 or 0x88a8", i, a)
			}
			vlan = true
		case PopVLAN:
			if !vlan {
				return fmt.Errorf("action %d (pop_vlan): no VLAN to pop (match a VLAN or push one)", i)
			}
			vlan = false
		case SetField:
			if a.Field.Mask != nil {
				return fmt.Errorf("action %d (set_field): masked set_field is not OpenFlow 1.3", i)
			}
			if err := checkFieldShape(a.Field); err != nil {
				return fmt.Errorf("action %d (set_field): %w", i, err)
			}
			if a.Field.Class == ClassBasic && (a.Field.Type == OXMVLANVID || a.Field.Type == OXMVLANPCP) && !vlan {
				return fmt.Errorf("action %d (%s): needs a VLAN header (match a VLAN or push_vlan first)", i, a)
			}
			if err := checkPrereq(f.Match, a.Field); err != nil {
				return fmt.Errorf("action %d (%s): %w", i, a, err)
			}
		case RegMove:
			if a.NBits <= 0 {
				return fmt.Errorf("action %d (move): %d bits", i, a.NBits)
			}
			for _, r := range []FieldRef{a.Src, a.Dst} {
				if r.Bytes == 0 || r.Ofs < 0 || r.Ofs+a.NBits > int(r.Bytes)*8 {
					return fmt.Errorf("action %d (move): bits %d..%d outside a %d-bit field", i, r.Ofs, r.Ofs+a.NBits-1, int(r.Bytes)*8)
				}
			}
		case CT:
			if err := validateCT(a); err != nil {
				return fmt.Errorf("action %d (%s): %w", i, a, err)
			}
		case Conjunction:
			if a.NClauses < 2 || a.NClauses > 64 || a.Clause >= a.NClauses {
				return fmt.Errorf("action %d (%s): clause %d of %d", i, a, a.Clause+1, a.NClauses)
			}
		case RawAction:
			if len(a.Bytes) < 8 || len(a.Bytes)%8 != 0 || int(binary.BigEndian.Uint16(a.Bytes[2:])) != len(a.Bytes) {
				return fmt.Errorf("action %d (raw): bad length %d", i, len(a.Bytes))
			}
		}
	}
	return nil
}

// Validate checks the match alone (see Flow.Validate).
func (m Match) Validate() error {
	for i, fl := range m {
		if err := checkFieldShape(fl); err != nil {
			return fmt.Errorf("match field %d: %w", i, err)
		}
		for _, g := range m[i+1:] {
			if g.Class == fl.Class && g.Type == fl.Type {
				return fmt.Errorf("match field %s appears twice", lookupField(fl.Class, fl.Type).displayName(fl))
			}
		}
		if err := checkPrereq(m, fl); err != nil {
			return fmt.Errorf("match field %s: %w", lookupField(fl.Class, fl.Type).displayName(fl), err)
		}
	}
	return nil
}

func checkFieldShape(fl Field) error {
	spec := lookupField(fl.Class, fl.Type)
	if len(fl.Value) == 0 || len(fl.Value) > 127 {
		return fmt.Errorf("field %#x:%d: value of %d bytes", fl.Class, fl.Type, len(fl.Value))
	}
	if spec != &unknownSpec && len(fl.Value) != int(spec.bytes) {
		return fmt.Errorf("%s: value of %d bytes, want %d", spec.displayName(fl), len(fl.Value), spec.bytes)
	}
	if fl.Mask != nil {
		if allZero(fl.Mask) {
			return fmt.Errorf("%s: mask of all zeros matches anything: leave the field out", spec.displayName(fl))
		}
		if len(fl.Mask) != len(fl.Value) {
			return fmt.Errorf("%s: mask of %d bytes for a %d-byte value", spec.displayName(fl), len(fl.Mask), len(fl.Value))
		}
		for i := range fl.Value {
			if fl.Value[i]&^fl.Mask[i] != 0 {
				return fmt.Errorf("%s: value has bits outside the mask", spec.displayName(fl))
			}
		}
	}
	return nil
}

func vlanPresent(v Field) bool {
	return len(v.Value) == 2 && v.Value[0]&0x10 != 0 && (v.Mask == nil || (len(v.Mask) == 2 && v.Mask[0]&0x10 != 0))
}

func exactU16(m Match, t uint8) (uint16, bool) {
	f, ok := m.Get(ClassBasic, t)
	if !ok || f.Mask != nil || len(f.Value) != 2 {
		return 0, false
	}
	return binary.BigEndian.Uint16(f.Value), true
}

func exactU8(m Match, t uint8) (uint8, bool) {
	f, ok := m.Get(ClassBasic, t)
	if !ok || f.Mask != nil || len(f.Value) != 1 {
		return 0, false
	}
	return f.Value[0], true
}

// checkPrereq checks that m establishes what field fl needs, as OVS requires.
func checkPrereq(m Match, fl Field) error {
	if fl.Class != ClassBasic {
		return nil
	}
	et, hasET := exactU16(m, OXMEthType)
	proto, hasProto := exactU8(m, OXMIPProto)
	needEth := func(want ...uint16) error {
		for _, w := range want {
			if hasET && et == w {
				return nil
			}
		}
		return fmt.Errorf("needs eth_type %#04x in the match", want[0])
	}
	needProto := func(p uint8, eth ...uint16) error {
		if err := needEth(eth...); err != nil {
			return err
		}
		if !hasProto || proto != p {
			return fmt.Errorf("needs ip_proto %d in the match", p)
		}
		return nil
	}
	switch fl.Type {
	case OXMVLANPCP:
		if v, ok := m.Get(ClassBasic, OXMVLANVID); !ok || !vlanPresent(v) {
			return fmt.Errorf("needs a VLAN (dl_vlan) in the match")
		}
	case OXMARPOp, OXMARPSPA, OXMARPTPA, OXMARPSHA, OXMARPTHA:
		return needEth(EthTypeARP, 0x8035)
	case OXMIPv4Src, OXMIPv4Dst:
		return needEth(EthTypeIPv4)
	case OXMIPv6Src, OXMIPv6Dst:
		return needEth(EthTypeIPv6)
	case OXMIPProto, OXMIPDSCP, OXMIPECN:
		return needEth(EthTypeIPv4, EthTypeIPv6)
	case OXMTCPSrc, OXMTCPDst:
		return needProto(6, EthTypeIPv4, EthTypeIPv6)
	case OXMUDPSrc, OXMUDPDst:
		return needProto(17, EthTypeIPv4, EthTypeIPv6)
	case OXMICMPv4Type, OXMICMPv4Code:
		return needProto(1, EthTypeIPv4)
	case OXMICMPv6Type, OXMICMPv6Code:
		return needProto(58, EthTypeIPv6)
	case OXMIPv6NDTarget, OXMIPv6NDSLL, OXMIPv6NDTLL:
		if err := needProto(58, EthTypeIPv6); err != nil {
			return err
		}
		want := uint8(ICMPv6NeighborSolicitation)
		if fl.Type == OXMIPv6NDTLL {
			want = ICMPv6NeighborAdvertisement
		}
		if t, ok := exactU8(m, OXMICMPv6Type); !ok || t != want && !(fl.Type == OXMIPv6NDTarget && t == ICMPv6NeighborAdvertisement) {
			return fmt.Errorf("needs icmpv6_type %d in the match", want)
		}
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
