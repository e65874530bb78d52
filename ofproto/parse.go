package ofproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// ParseFlow parses a flow in ovs-ofctl syntax: what String prints, a line of
// `ovs-ofctl dump-flows` (statistics such as n_packets are ignored) or an `ovs-ofctl
// add-flow` argument using the fields and actions this package models. The match is returned
// in canonical order and the flow is validated.
func ParseFlow(s string) (Flow, error) {
	f, err := parseFlow(s)
	if err != nil {
		return Flow{}, fmt.Errorf("parse flow %q: %w", s, err)
	}
	if err := f.Validate(); err != nil {
		return Flow{}, fmt.Errorf("parse flow %q: %w", s, err)
	}
	return f, nil
}

func parseFlow(s string) (Flow, error) {
	f := Flow{Priority: DefaultPriority}
	s = strings.TrimSpace(s)
	i := strings.Index(s, "actions=")
	if i < 0 {
		return f, errors.New("no actions=")
	}
	if i > 0 && s[i-1] != ' ' && s[i-1] != ',' {
		return f, errors.New("actions= must follow a space or a comma")
	}
	matchPart, actPart := strings.TrimSpace(s[:i]), s[i+len("actions="):]

	var (
		pendingL4 []struct{ name, val string }
		ipProto   = -1
		ethType   = -1
	)
	for _, tok := range strings.Split(matchPart, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		key, val, hasVal := strings.Cut(tok, "=")
		if !hasVal {
			et, proto, ok := keywordType(key)
			if !ok {
				return f, fmt.Errorf("unknown keyword %q", key)
			}
			ethType = int(et)
			f.Match = append(f.Match, EthType(et))
			if proto >= 0 {
				ipProto = proto
				f.Match = append(f.Match, IPProto(uint8(proto)))
			}
			continue
		}
		var err error
		switch key {
		case "cookie":
			f.Cookie, err = parseUint(val, 64)
		case "table":
			var t uint64
			t, err = parseUint(val, 8)
			f.Table = uint8(t)
		case "priority":
			var p uint64
			p, err = parseUint(val, 16)
			f.Priority = uint16(p)
		case "idle_timeout":
			var t uint64
			t, err = parseUint(val, 16)
			f.IdleTimeout = uint16(t)
		case "hard_timeout":
			var t uint64
			t, err = parseUint(val, 16)
			f.HardTimeout = uint16(t)
		case "duration", "n_packets", "n_bytes", "idle_age", "hard_age", "reset_counts",
			"importance", "out_port", "out_group":
			// statistics and flow-mod options: ignored
		case "tp_src", "tp_dst", "icmp_type", "icmp_code":
			pendingL4 = append(pendingL4, struct{ name, val string }{key, val})
		default:
			var fl Field
			fl, err = parseField(key, val)
			if err == nil && fl.Mask != nil && allZero(fl.Mask) {
				continue // fully wildcarded: as ovs-ofctl, leave the field out
			}
			if err == nil {
				if fl.Class == ClassBasic && fl.Type == OXMEthType {
					ethType = int(binary.BigEndian.Uint16(fl.Value))
				}
				if fl.Class == ClassBasic && fl.Type == OXMIPProto {
					ipProto = int(fl.Value[0])
				}
				f.Match = append(f.Match, fl)
			}
		}
		if err != nil {
			return f, fmt.Errorf("%s: %w", key, err)
		}
	}
	for _, p := range pendingL4 {
		fl, err := parseL4(p.name, p.val, ethType, ipProto)
		if err != nil {
			return f, fmt.Errorf("%s: %w", p.name, err)
		}
		f.Match = append(f.Match, fl)
	}
	for i := range f.Match {
		for j := i + 1; j < len(f.Match); j++ {
			if f.Match[i].Class == f.Match[j].Class && f.Match[i].Type == f.Match[j].Type {
				return f, fmt.Errorf("field %s given twice", lookupField(f.Match[i].Class, f.Match[i].Type).displayName(f.Match[i]))
			}
		}
	}
	f.Match.Canonical()
	if err := parseInstructions(strings.TrimSpace(actPart), &f); err != nil {
		return f, fmt.Errorf("actions: %w", err)
	}
	return f, nil
}

func keywordType(k string) (ethType uint16, proto int, ok bool) {
	switch k {
	case "ip":
		return EthTypeIPv4, -1, true
	case "icmp":
		return EthTypeIPv4, 1, true
	case "tcp":
		return EthTypeIPv4, 6, true
	case "udp":
		return EthTypeIPv4, 17, true
	case "sctp":
		return EthTypeIPv4, 132, true
	case "ipv6":
		return EthTypeIPv6, -1, true
	case "icmp6":
		return EthTypeIPv6, 58, true
	case "tcp6":
		return EthTypeIPv6, 6, true
	case "udp6":
		return EthTypeIPv6, 17, true
	case "sctp6":
		return EthTypeIPv6, 132, true
	case "arp":
		return EthTypeARP, -1, true
	case "rarp":
		return 0x8035, -1, true
	}
	return 0, 0, false
}

func parseUint(s string, bits int) (uint64, error) {
	v, err := strconv.ParseUint(s, 0, bits)
	if err != nil {
		return 0, fmt.Errorf("bad number %q", s)
	}
	return v, nil
}

// parseL4 resolves tp_src/tp_dst/icmp_type/icmp_code by the IP protocol of the match.
func parseL4(name, val string, ethType, proto int) (Field, error) {
	var t uint8
	bytes := 2
	switch {
	case name == "icmp_type" && proto == 1 && ethType == int(EthTypeIPv4):
		t, bytes = OXMICMPv4Type, 1
	case name == "icmp_code" && proto == 1 && ethType == int(EthTypeIPv4):
		t, bytes = OXMICMPv4Code, 1
	case name == "icmp_type" && proto == 58 && ethType == int(EthTypeIPv6):
		t, bytes = OXMICMPv6Type, 1
	case name == "icmp_code" && proto == 58 && ethType == int(EthTypeIPv6):
		t, bytes = OXMICMPv6Code, 1
	case name == "tp_src" && proto == 6:
		t = OXMTCPSrc
	case name == "tp_dst" && proto == 6:
		t = OXMTCPDst
	case name == "tp_src" && proto == 17:
		t = OXMUDPSrc
	case name == "tp_dst" && proto == 17:
		t = OXMUDPDst
	default:
		return Field{}, fmt.Errorf("needs a matching IP protocol (tcp, udp, icmp, icmp6) in the match")
	}
	put := func(s string) ([]byte, error) {
		v, err := parseUint(s, bytes*8)
		if err != nil {
			return nil, err
		}
		b := make([]byte, bytes)
		if bytes == 1 {
			b[0] = byte(v)
		} else {
			binary.BigEndian.PutUint16(b, uint16(v))
		}
		return b, nil
	}
	v, m, masked := strings.Cut(val, "/")
	b, err := put(v)
	if err != nil {
		return Field{}, err
	}
	f := basic(t, b)
	if masked {
		if f.Mask, err = put(m); err != nil {
			return Field{}, err
		}
		for i := range f.Value {
			f.Value[i] &= f.Mask[i]
		}
	}
	return f, nil
}

// fieldByName finds a field spec by its ovs-ofctl match or set_field name or alias.
func fieldByName(name string) (*fieldSpec, bool) {
	switch name {
	case "eth_src":
		name = "dl_src"
	case "eth_dst":
		name = "dl_dst"
	case "eth_type":
		name = "dl_type"
	case "ip_src":
		name = "nw_src"
	case "ip_dst":
		name = "nw_dst"
	case "ip_proto":
		name = "nw_proto"
	case "tunnel_id":
		name = "tun_id"
	case "tun_ipv4_dst":
		name = "tun_dst"
	case "tun_ipv4_src":
		name = "tun_src"
	}
	for i := range fieldSpecs {
		s := &fieldSpecs[i]
		if s.name != "" && (s.name == name || s.set == name) {
			return s, true
		}
	}
	return nil, false
}

// parseField parses one match field "name=value[/mask]".
func parseField(name, val string) (Field, error) {
	switch name {
	case "dl_vlan":
		v, err := parseUint(val, 12)
		if err != nil {
			return Field{}, err
		}
		return VLANVID(uint16(v)), nil
	case "vlan_tci":
		switch val {
		case "0x0000", "0", "0x0000/0x1fff", "0/0x1fff", "0x0000/0xffff", "0/0xffff":
			return VLANNone(), nil
		case "0x1000/0x1000":
			return VLANAny(), nil
		}
		return Field{}, fmt.Errorf("only vlan_tci=0x0000[/0x1fff] and 0x1000/0x1000 are supported, got %q", val)
	case "vlan_vid":
		v, err := parseUint(val, 13)
		if err != nil {
			return Field{}, err
		}
		return basic(OXMVLANVID, u16(uint16(v))), nil
	case "nw_tos":
		v, err := parseUint(val, 8)
		if err != nil {
			return Field{}, err
		}
		if v&3 != 0 {
			return Field{}, fmt.Errorf("nw_tos %d has ECN bits set", v)
		}
		return basic(OXMIPDSCP, []byte{byte(v >> 2)}), nil
	case "in_port":
		p, err := parsePort(val)
		if err != nil {
			return Field{}, err
		}
		return InPort(p), nil
	case "ct_state":
		return parseCTState(val)
	}
	spec, ok := fieldByName(name)
	if !ok {
		return Field{}, fmt.Errorf("unknown field")
	}
	return spec.parseValue(val, true)
}

// parseValue parses a value (with an optional /mask when masked is true) for the field.
func (s *fieldSpec) parseValue(val string, masked bool) (Field, error) {
	f := Field{Class: s.class, Type: s.typ}
	v, m, hasMask := strings.Cut(val, "/")
	if hasMask && !masked {
		return f, fmt.Errorf("mask not allowed in %q", val)
	}
	var err error
	switch s.format {
	case fmtMAC:
		f.Value, err = parseMAC(v)
		if err == nil && hasMask {
			f.Mask, err = parseMAC(m)
		}
	case fmtIPv4:
		var a netip.Addr
		a, err = netip.ParseAddr(v)
		if err == nil && !a.Is4() {
			err = fmt.Errorf("%q is not an IPv4 address", v)
		}
		if err != nil {
			return f, err
		}
		f.Value = ip4(a)
		if hasMask {
			if n, perr := strconv.Atoi(m); perr == nil {
				if n < 0 || n > 32 {
					return f, fmt.Errorf("prefix length %d", n)
				}
				if n < 32 {
					f.Mask = u32(^uint32(0) << (32 - n))
				}
			} else {
				ma, merr := netip.ParseAddr(m)
				if merr != nil || !ma.Is4() {
					return f, fmt.Errorf("bad IPv4 mask %q", m)
				}
				f.Mask = ip4(ma)
			}
		}
	case fmtIPv6:
		var a netip.Addr
		a, err = netip.ParseAddr(v)
		if err == nil && !a.Is6() {
			err = fmt.Errorf("%q is not an IPv6 address", v)
		}
		if err != nil {
			return f, err
		}
		b := a.As16()
		f.Value = b[:]
		if hasMask {
			if n, nerr := strconv.Atoi(m); nerr == nil {
				if n < 0 || n > 128 {
					return f, fmt.Errorf("prefix length %d", n)
				}
				f.Mask = prefix6Field(0, netip.PrefixFrom(a, n)).Mask // nil for /128
				break
			}
			ma, merr := netip.ParseAddr(m)
			if merr != nil || !ma.Is6() {
				return f, fmt.Errorf("bad IPv6 mask %q", m)
			}
			mb := ma.As16()
			f.Mask = mb[:]
		}
	case fmtPort:
		var p uint32
		p, err = parsePort(v)
		f.Value = u32(p)
	default:
		f.Value, err = parseUintBytes(v, int(s.bytes))
		if err == nil && hasMask {
			f.Mask, err = parseUintBytes(m, int(s.bytes))
		}
	}
	if err != nil {
		return f, err
	}
	// Like ovs-ofctl, bits outside the mask are cleared.
	for i := range f.Mask {
		f.Value[i] &= f.Mask[i]
	}
	return f, nil
}

func parseMAC(s string) ([]byte, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return nil, fmt.Errorf("bad MAC %q", s)
	}
	return []byte(hw), nil
}

func parseUintBytes(s string, n int) ([]byte, error) {
	v, err := strconv.ParseUint(s, 0, n*8)
	if err != nil {
		return nil, fmt.Errorf("bad %d-byte number %q", n, s)
	}
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b[8-n:], nil
}

func parsePort(s string) (uint32, error) {
	switch strings.ToUpper(s) {
	case "IN_PORT":
		return PortInPort, nil
	case "TABLE":
		return PortTable, nil
	case "NORMAL":
		return PortNormal, nil
	case "FLOOD":
		return PortFlood, nil
	case "ALL":
		return PortAll, nil
	case "CONTROLLER":
		return PortController, nil
	case "LOCAL":
		return PortLocal, nil
	case "ANY", "NONE":
		return PortAny, nil
	}
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return 0, fmt.Errorf("bad port %q", s)
	}
	return uint32(v), nil
}

// splitActions splits an action list at commas outside parentheses and brackets.
func splitActions(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func parseInstructions(s string, f *Flow) error {
	if s == "drop" || s == "" {
		return nil
	}
	for _, a := range splitActions(s) {
		a = strings.TrimSpace(a)
		name, arg, _ := strings.Cut(a, ":")
		if f.HasGoto {
			return fmt.Errorf("%q after goto_table", a)
		}
		switch strings.ToLower(name) {
		case "drop":
			return fmt.Errorf("drop must be the only action")
		case "goto_table":
			t, err := parseUint(arg, 8)
			if err != nil {
				return fmt.Errorf("goto_table: %w", err)
			}
			f.HasGoto, f.Goto = true, uint8(t)
			continue
		case "meter":
			m, err := parseUint(arg, 32)
			if err != nil || m == 0 {
				return fmt.Errorf("meter: bad meter id %q", arg)
			}
			if len(f.Actions) > 0 || f.HasMetadata {
				return fmt.Errorf("meter must come first")
			}
			f.Meter = uint32(m)
			continue
		case "write_metadata":
			v, m, hasMask := strings.Cut(arg, "/")
			mv, err := parseUint(v, 64)
			if err != nil {
				return fmt.Errorf("write_metadata: %w", err)
			}
			mask := ^uint64(0)
			if hasMask {
				if mask, err = parseUint(m, 64); err != nil {
					return fmt.Errorf("write_metadata mask: %w", err)
				}
			}
			f.HasMetadata, f.Metadata, f.MetadataMask = true, mv, mask
			continue
		}
		if f.HasMetadata {
			return fmt.Errorf("%q after write_metadata", a)
		}
		act, err := parseAction(a)
		if err != nil {
			return err
		}
		f.Actions = append(f.Actions, act)
	}
	return nil
}

func parseAction(a string) (Action, error) {
	switch {
	case a == "ct_clear":
		return CTClear{}, nil
	case strings.HasPrefix(a, "ct(") && strings.HasSuffix(a, ")"):
		return parseCT(a[len("ct(") : len(a)-1])
	case strings.HasPrefix(a, "conjunction(") && strings.HasSuffix(a, ")"):
		return parseConjunction(a[len("conjunction(") : len(a)-1])
	}
	name, arg, hasArg := strings.Cut(a, ":")
	switch name {
	case "output":
		p, err := parsePort(arg)
		if err != nil {
			return nil, fmt.Errorf("output: %w", err)
		}
		if p == PortController {
			return Output{Port: p, MaxLen: ControllerMaxLenNoBuffer}, nil
		}
		return Output{Port: p}, nil
	case "CONTROLLER", "controller":
		ml := uint64(ControllerMaxLenNoBuffer)
		if hasArg {
			var err error
			if ml, err = parseUint(arg, 16); err != nil {
				return nil, fmt.Errorf("CONTROLLER: %w", err)
			}
		}
		return Output{Port: PortController, MaxLen: uint16(ml)}, nil
	case "IN_PORT", "NORMAL", "FLOOD", "ALL", "LOCAL", "in_port", "normal", "flood", "all", "local":
		if hasArg {
			return nil, fmt.Errorf("%s takes no argument", name)
		}
		p, _ := parsePort(name)
		return Output{Port: p}, nil
	case "pop_vlan", "strip_vlan":
		if hasArg {
			return nil, fmt.Errorf("pop_vlan takes no argument")
		}
		return PopVLAN{}, nil
	case "dec_ttl":
		if hasArg {
			return nil, fmt.Errorf("dec_ttl with arguments is not supported")
		}
		return DecNwTTL{}, nil
	case "push_vlan":
		t, err := parseUint(arg, 16)
		if err != nil {
			return nil, fmt.Errorf("push_vlan: %w", err)
		}
		return PushVLAN{EtherType: uint16(t)}, nil
	case "group":
		g, err := parseUint(arg, 32)
		if err != nil {
			return nil, fmt.Errorf("group: %w", err)
		}
		return Group{ID: uint32(g)}, nil
	case "set_field", "load":
		if name == "load" {
			return nil, fmt.Errorf("load: not supported, use set_field")
		}
		v, dst, ok := strings.Cut(arg, "->")
		if !ok {
			return nil, fmt.Errorf("set_field %q: want VALUE->FIELD", arg)
		}
		var fl Field
		var err error
		switch dst {
		case "vlan_vid", "in_port":
			fl, err = parseField(dst, v)
		default:
			spec, ok := fieldByName(dst)
			if !ok {
				return nil, fmt.Errorf("set_field: unknown field %q", dst)
			}
			fl, err = spec.parseValue(v, false)
		}
		if err != nil {
			return nil, fmt.Errorf("set_field ->%s: %w", dst, err)
		}
		return SetField{Field: fl}, nil
	case "move":
		src, dst, ok := strings.Cut(arg, "->")
		if !ok {
			return nil, fmt.Errorf("move %q: want SRC[..]->DST[..]", arg)
		}
		sr, sn, err := parseRef(src)
		if err != nil {
			return nil, fmt.Errorf("move: %w", err)
		}
		dr, dn, err := parseRef(dst)
		if err != nil {
			return nil, fmt.Errorf("move: %w", err)
		}
		if sn != dn {
			return nil, fmt.Errorf("move: %d bits to %d bits", sn, dn)
		}
		return RegMove{Src: sr, Dst: dr, NBits: sn}, nil
	}
	return nil, fmt.Errorf("unknown or unsupported action %q", a)
}

// parseRef parses "NXM_OF_ETH_SRC[]", "NXM_NX_REG0[0..15]" or "NXM_NX_REG0[3]".
func parseRef(s string) (FieldRef, int, error) {
	name, rng, ok := strings.Cut(s, "[")
	if !ok || !strings.HasSuffix(rng, "]") {
		return FieldRef{}, 0, fmt.Errorf("bad field reference %q", s)
	}
	rng = strings.TrimSuffix(rng, "]")
	// References are encoded with NXM headers as OVS does: only fields with an NXM class
	// entry (and OXM_OF_METADATA) can be named.
	var spec *fieldSpec
	for i := range fieldSpecs {
		fs := &fieldSpecs[i]
		if fs.nxmName == name && (fs.class != ClassBasic || fs.typ == OXMMetadata) {
			spec = fs
			break
		}
	}
	if spec == nil {
		return FieldRef{}, 0, fmt.Errorf("unknown field %q", name)
	}
	r := FieldRef{Class: spec.class, Type: spec.typ, Bytes: spec.bytes}
	width := int(spec.bytes) * 8
	if rng == "" {
		return r, width, nil
	}
	lo, hi, isRange := strings.Cut(rng, "..")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.Atoi(lo)
	h, err2 := strconv.Atoi(hi)
	if err1 != nil || err2 != nil || l < 0 || h < l || h >= width {
		return FieldRef{}, 0, fmt.Errorf("bad bit range %q of %d-bit %s", rng, width, name)
	}
	r.Ofs = l
	return r, h - l + 1, nil
}
