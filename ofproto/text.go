package ofproto

import (
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
)

// TableNames maps table numbers to names for Format ("table=LOCAL_SWITCHING").
type TableNames map[uint8]string

// DefaultPriority is OFP_DEFAULT_PRIORITY, which ovs-ofctl does not print.
const DefaultPriority = 0x8000

// String renders f like one line of `ovs-ofctl -O OpenFlow13 --no-stats dump-flows`
// (without its leading space): cookie (if not 0), table (if not 0), timeouts, priority (if
// not 32768), the match in OVS's order and with OVS's names, then actions.
//
//	cookie=0x1, table=1, priority=2,in_port=3,dl_src=fa:16:3f:00:00:02 actions=goto_table:2
func (f *Flow) String() string { return f.Format(nil) }

// Format is String with table names: a table with a name in names is always printed, by
// name, as `ovs-ofctl --names` does with OVS table names.
func (f *Flow) Format(names TableNames) string {
	var sb strings.Builder
	sb.Grow(128)
	if f.Cookie != 0 {
		sb.WriteString("cookie=0x")
		sb.WriteString(strconv.FormatUint(f.Cookie, 16))
		sb.WriteString(", ")
	}
	if name, ok := names[f.Table]; ok {
		sb.WriteString("table=")
		sb.WriteString(name)
		sb.WriteString(", ")
	} else if f.Table != 0 {
		sb.WriteString("table=")
		sb.WriteString(strconv.Itoa(int(f.Table)))
		sb.WriteString(", ")
	}
	if f.IdleTimeout != 0 {
		sb.WriteString("idle_timeout=")
		sb.WriteString(strconv.Itoa(int(f.IdleTimeout)))
		sb.WriteString(", ")
	}
	if f.HardTimeout != 0 {
		sb.WriteString("hard_timeout=")
		sb.WriteString(strconv.Itoa(int(f.HardTimeout)))
		sb.WriteString(", ")
	}
	m := f.Match.format(f.Priority)
	sb.WriteString(m)
	if sb.Len() > 0 && !strings.HasSuffix(sb.String(), " ") {
		sb.WriteByte(' ')
	}
	sb.WriteString("actions=")
	sb.WriteString(f.formatInstructions())
	return sb.String()
}

// Type keywords for an eth_type (and IP protocol), as ovs-ofctl prints them.
func typeKeyword(m Match) (kw string, eth, proto bool) {
	et, ok := m.Get(ClassBasic, OXMEthType)
	if !ok || et.Mask != nil || len(et.Value) != 2 {
		return "", false, false
	}
	p, hasProto := m.Get(ClassBasic, OXMIPProto)
	if hasProto && (p.Mask != nil || len(p.Value) != 1) {
		hasProto = false
	}
	switch binary.BigEndian.Uint16(et.Value) {
	case EthTypeIPv4:
		if hasProto {
			switch p.Value[0] {
			case 1:
				return "icmp", true, true
			case 6:
				return "tcp", true, true
			case 17:
				return "udp", true, true
			case 132:
				return "sctp", true, true
			}
		}
		return "ip", true, false
	case EthTypeIPv6:
		if hasProto {
			switch p.Value[0] {
			case 58:
				return "icmp6", true, true
			case 6:
				return "tcp6", true, true
			case 17:
				return "udp6", true, true
			case 132:
				return "sctp6", true, true
			}
		}
		return "ipv6", true, false
	case EthTypeARP:
		return "arp", true, false
	case 0x8035:
		return "rarp", true, false
	}
	return "", false, false
}

// textRankKeyword is where match_format writes the type keyword among the fields.
const textRankKeyword = 10

// format renders the match with priority as OVS's match_format does.
func (m Match) format(priority uint16) string {
	var parts []string
	if priority != DefaultPriority {
		parts = append(parts, "priority="+strconv.Itoa(int(priority)))
	}
	kw, skipEth, skipProto := typeKeyword(m)
	idx := make([]int, 0, len(m))
	for i := range m {
		idx = append(idx, i)
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		return lookupField(m[a].Class, m[a].Type).textRank - lookupField(m[b].Class, m[b].Type).textRank
	})
	for _, i := range idx {
		f := m[i]
		// The type keyword (ip, tcp, ...) comes after conj_id and the ct_* fields.
		if kw != "" && lookupField(f.Class, f.Type).textRank >= textRankKeyword {
			parts = append(parts, kw)
			kw = ""
		}
		if f.Class == ClassBasic {
			if (f.Type == OXMEthType && skipEth) || (f.Type == OXMIPProto && skipProto) {
				continue
			}
		}
		parts = append(parts, formatField(f))
	}
	if kw != "" {
		parts = append(parts, kw)
	}
	return strings.Join(parts, ",")
}

func formatField(f Field) string {
	spec := lookupField(f.Class, f.Type)
	if f.Class == ClassBasic {
		switch f.Type {
		case OXMVLANVID:
			if len(f.Value) == 2 && (f.Mask == nil || len(f.Mask) == 2) {
				v := binary.BigEndian.Uint16(f.Value)
				if f.Mask == nil && v&VIDPresent != 0 {
					return "dl_vlan=" + strconv.Itoa(int(v&0x0fff))
				}
				mask := uint16(0x1fff)
				if f.Mask != nil {
					mask = binary.BigEndian.Uint16(f.Mask) & 0x1fff
				}
				return "vlan_tci=0x" + hex4(v&0x1fff) + "/0x" + hex4(mask)
			}
		case OXMIPDSCP:
			if len(f.Value) == 1 && f.Mask == nil {
				return "nw_tos=" + strconv.Itoa(int(f.Value[0])<<2)
			}
		}
	}
	if f.Class == ClassNXM1 && f.Type == NXMCTState {
		return "ct_state=" + formatCTState(f)
	}
	return spec.displayName(f) + "=" + spec.formatValue(f, false)
}

func hex4(v uint16) string {
	return string([]byte{hexDigit(uint64(v) >> 12), hexDigit(uint64(v) >> 8), hexDigit(uint64(v) >> 4), hexDigit(uint64(v))})
}

func (f *Flow) formatInstructions() string {
	var parts []string
	if f.Meter != 0 {
		parts = append(parts, "meter:"+strconv.FormatUint(uint64(f.Meter), 10))
	}
	for _, a := range f.Actions {
		parts = append(parts, a.String())
	}
	if len(f.OtherInstructions) > 0 {
		parts = append(parts, "instructions:"+strings.TrimPrefix(RawAction{Bytes: f.OtherInstructions}.String(), "raw:"))
	}
	if f.HasMetadata {
		s := "write_metadata:0x" + strconv.FormatUint(f.Metadata, 16)
		if f.MetadataMask != ^uint64(0) {
			s += "/0x" + strconv.FormatUint(f.MetadataMask, 16)
		}
		parts = append(parts, s)
	}
	if f.HasGoto {
		parts = append(parts, "goto_table:"+strconv.Itoa(int(f.Goto)))
	}
	if len(parts) == 0 {
		return "drop"
	}
	return strings.Join(parts, ",")
}
