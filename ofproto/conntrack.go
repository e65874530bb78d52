package ofproto

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Connection tracking and conjunctive matches, the Nicira extensions a stateful firewall
// in OpenFlow is built from (OVS's ovs-actions(7) "ct", "ct_clear", "conjunction"; the
// ct_state, ct_zone, ct_mark and conj_id match fields of ovs-fields(7)).

// Nicira field numbers (class ClassNXM1) of connection tracking and conjunctions.
const (
	NXMConjID  uint8 = 37
	NXMCTState uint8 = 105
	NXMCTZone  uint8 = 106
	NXMCTMark  uint8 = 107
)

// Connection tracking state bits (ct_state).
const (
	CTNew  uint32 = 0x01
	CTEst  uint32 = 0x02
	CTRel  uint32 = 0x04
	CTRpl  uint32 = 0x08
	CTInv  uint32 = 0x10
	CTTrk  uint32 = 0x20
	CTSNAT uint32 = 0x40
	CTDNAT uint32 = 0x80
)

// ctStateNames are the ct_state flags in bit order, as OVS prints them.
var ctStateNames = [...]string{"new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"}

// Nicira action subtypes.
const (
	nxastConjunction uint16 = 34
	nxastCT          uint16 = 35
	nxastCTClear     uint16 = 43
)

// ctRecircNone is NX_CT_RECIRC_NONE: a ct action that does not go on in another table.
const ctRecircNone = 0xff

// CTState matches the connection tracking state bits selected by mask ("+trk+est-rel").
func CTState(flags, mask uint32) Field {
	return Field{Class: ClassNXM1, Type: NXMCTState, Value: u32(flags & mask), Mask: u32(mask)}
}

// CTZone matches the conntrack zone the packet was last tracked in.
func CTZone(zone uint16) Field { return Field{Class: ClassNXM1, Type: NXMCTZone, Value: u16(zone)} }

// CTMark matches the bits of the connection's mark selected by mask.
func CTMark(v, mask uint32) Field {
	return Field{Class: ClassNXM1, Type: NXMCTMark, Value: u32(v & mask), Mask: u32(mask)}
}

// ConjID matches the conjunction ID of a conjunctive match that every clause matched.
func ConjID(id uint32) Field { return Field{Class: ClassNXM1, Type: NXMConjID, Value: u32(id)} }

// SetCTMark sets the connection's mark, inside CT.Actions of a committing ct.
func SetCTMark(v uint32) SetField {
	return SetField{Field{Class: ClassNXM1, Type: NXMCTMark, Value: u32(v)}}
}

// CT sends the packet through the connection tracker (NXAST_CT): in zone Zone, or in the
// zone held by ZoneSrc's bits when ZoneSrc.Bytes is set; Commit records the connection
// (and runs Actions on it, e.g. SetCTMark); with HasTable the packet goes on, tracked, in
// Table (OVS recirculates it), otherwise the tracked copy is dropped.
type CT struct {
	Commit   bool
	Zone     uint16
	ZoneSrc  FieldRef // Bytes 0: the immediate Zone
	HasTable bool
	Table    uint8
	Actions  []Action
}

// CTClear clears the packet's connection tracking state (NXAST_CT_CLEAR).
type CTClear struct{}

// Conjunction is clause Clause (0-based) of NClauses of conjunctive match ID
// (NXAST_CONJUNCTION): a packet that matches a flow of every clause matches conj_id=ID.
type Conjunction struct {
	ID       uint32
	Clause   uint8
	NClauses uint8
}

// Conjunctive reports whether f is a clause flow of conjunctive matches: its only
// instruction applies conjunction actions, as Open vSwitch requires of such flows.
func (f *Flow) Conjunctive() bool {
	if len(f.Actions) == 0 || f.HasGoto || f.Meter != 0 || f.HasMetadata || len(f.OtherInstructions) > 0 {
		return false
	}
	for _, a := range f.Actions {
		if _, ok := a.(Conjunction); !ok {
			return false
		}
	}
	return true
}

// MergeConjunctions returns the one flow that installs the conjunctive flows f and g of one
// key (table, priority, match): f carrying the conjunction actions of both, each once,
// sorted by ID and clause. A switch holds one flow per key, so clauses of different
// conjunctions that match the same packets share it (ovn-controller appends them the same
// way). It reports false, and returns f, when either flow is not conjunctive or their
// cookies or timeouts differ.
func MergeConjunctions(f, g *Flow) (Flow, bool) {
	if !f.Conjunctive() || !g.Conjunctive() || f.Cookie != g.Cookie || f.IdleTimeout != g.IdleTimeout || f.HardTimeout != g.HardTimeout {
		return *f, false
	}
	out := *f
	out.Actions = make([]Action, 0, len(f.Actions)+len(g.Actions))
	out.Actions = append(append(out.Actions, f.Actions...), g.Actions...)
	slices.SortFunc(out.Actions, func(x, y Action) int {
		cx, cy := x.(Conjunction), y.(Conjunction)
		return cmp.Or(cmp.Compare(cx.ID, cy.ID), cmp.Compare(cx.Clause, cy.Clause), cmp.Compare(cx.NClauses, cy.NClauses))
	})
	out.Actions = slices.Compact(out.Actions)
	return out, true
}

func appendNicira(b []byte, length, subtype uint16) []byte {
	b = appendU16(b, actExperimenter)
	b = appendU16(b, length)
	b = appendU32(b, ExperimenterNicira)
	return appendU16(b, subtype)
}

func (a CT) appendTo(b []byte) []byte {
	var nested []byte
	for _, x := range a.Actions {
		nested = x.appendTo(nested)
	}
	b = appendNicira(b, uint16(24+len(nested)), nxastCT)
	var flags uint16
	if a.Commit {
		flags |= 1 // NX_CT_F_COMMIT
	}
	b = appendU16(b, flags)
	if a.ZoneSrc.Bytes != 0 {
		b = appendOXMHeader(b, a.ZoneSrc.Class, a.ZoneSrc.Type, false, a.ZoneSrc.Bytes)
		b = appendU16(b, uint16(a.ZoneSrc.Ofs<<6|(16-1))) // ofs_nbits: 16 bits
	} else {
		b = appendU32(b, 0)
		b = appendU16(b, a.Zone)
	}
	table := byte(ctRecircNone)
	if a.HasTable {
		table = a.Table
	}
	b = append(b, table, 0, 0, 0)
	b = appendU16(b, 0) // alg
	return append(b, nested...)
}

func (CTClear) appendTo(b []byte) []byte {
	b = appendNicira(b, 16, nxastCTClear)
	return append(b, 0, 0, 0, 0, 0, 0)
}

func (a Conjunction) appendTo(b []byte) []byte {
	b = appendNicira(b, 16, nxastConjunction)
	b = append(b, a.Clause, a.NClauses)
	return appendU32(b, a.ID)
}

// String implements Action, as OVS's format_CT.
func (a CT) String() string {
	var parts []string
	if a.Commit {
		parts = append(parts, "commit")
	}
	if a.HasTable {
		parts = append(parts, "table="+strconv.Itoa(int(a.Table)))
	}
	if a.ZoneSrc.Bytes != 0 {
		parts = append(parts, "zone="+a.ZoneSrc.String(16))
	} else if a.Zone != 0 {
		parts = append(parts, "zone="+strconv.Itoa(int(a.Zone)))
	}
	if len(a.Actions) > 0 {
		var xs []string
		for _, x := range a.Actions {
			xs = append(xs, x.String())
		}
		parts = append(parts, "exec("+strings.Join(xs, ",")+")")
	}
	return "ct(" + strings.Join(parts, ",") + ")"
}

// String implements Action.
func (CTClear) String() string { return "ct_clear" }

// String implements Action: OVS numbers clauses from 1.
func (a Conjunction) String() string {
	return "conjunction(" + strconv.FormatUint(uint64(a.ID), 10) + "," + strconv.Itoa(int(a.Clause)+1) + "/" +
		strconv.Itoa(int(a.NClauses)) + ")"
}

// decodeNicira decodes the Nicira actions modelled here; ok is false for others.
func decodeNicira(a []byte) (Action, bool, error) {
	if len(a) < 16 || binary.BigEndian.Uint32(a[4:]) != ExperimenterNicira {
		return nil, false, nil
	}
	switch binary.BigEndian.Uint16(a[8:]) {
	case nxastConjunction:
		if len(a) != 16 {
			return nil, false, nil
		}
		return Conjunction{Clause: a[10], NClauses: a[11], ID: binary.BigEndian.Uint32(a[12:])}, true, nil
	case nxastCTClear:
		if len(a) != 16 {
			return nil, false, nil
		}
		return CTClear{}, true, nil
	case nxastCT:
		if len(a) < 24 {
			return nil, false, nil
		}
		flags := binary.BigEndian.Uint16(a[10:])
		if flags&^1 != 0 || binary.BigEndian.Uint16(a[22:]) != 0 {
			return nil, false, nil // force, NAT or ALG: not modelled, kept raw
		}
		ct := CT{Commit: flags&1 != 0}
		if src := a[12:16]; binary.BigEndian.Uint32(src) != 0 {
			ofsNbits := binary.BigEndian.Uint16(a[16:])
			ref, ok := decodeRef(src, ofsNbits>>6)
			if !ok || ofsNbits&0x3f != 15 {
				return nil, false, nil
			}
			ct.ZoneSrc = ref
		} else {
			ct.Zone = binary.BigEndian.Uint16(a[16:])
		}
		if a[18] != ctRecircNone {
			ct.HasTable, ct.Table = true, a[18]
		}
		nested, err := decodeActions(a[24:])
		if err != nil {
			return nil, false, fmt.Errorf("ct actions: %w", err)
		}
		ct.Actions = nested
		return ct, true, nil
	}
	return nil, false, nil
}

// formatCTState renders a ct_state match as OVS does: each masked flag, in bit order,
// "+name" when set and "-name" when clear.
func formatCTState(f Field) string {
	if len(f.Value) != 4 {
		return hexBytes(f.Value)
	}
	v := binary.BigEndian.Uint32(f.Value)
	mask := ^uint32(0)
	if len(f.Mask) == 4 {
		mask = binary.BigEndian.Uint32(f.Mask)
	}
	var sb strings.Builder
	for i, name := range ctStateNames {
		bit := uint32(1) << i
		if mask&bit == 0 {
			continue
		}
		if v&bit != 0 {
			sb.WriteByte('+')
		} else {
			sb.WriteByte('-')
		}
		sb.WriteString(name)
	}
	if rest := mask &^ 0xff; rest != 0 {
		return hexBytes(f.Value) + "/" + hexBytes(f.Mask)
	}
	return sb.String()
}

// parseCTState parses "+trk+est-rel" (or a number with an optional mask).
func parseCTState(s string) (Field, error) {
	if s == "" || (s[0] != '+' && s[0] != '-') {
		spec := lookupField(ClassNXM1, NXMCTState)
		return spec.parseValueNumeric(s)
	}
	var v, mask uint32
	for len(s) > 0 {
		sign := s[0]
		if sign != '+' && sign != '-' {
			return Field{}, fmt.Errorf("ct_state: want +flag or -flag at %q", s)
		}
		s = s[1:]
		end := strings.IndexAny(s, "+-")
		if end < 0 {
			end = len(s)
		}
		name := s[:end]
		s = s[end:]
		bit := -1
		for i, n := range ctStateNames {
			if n == name {
				bit = i
			}
		}
		if bit < 0 {
			return Field{}, fmt.Errorf("ct_state: unknown flag %q", name)
		}
		mask |= 1 << bit
		if sign == '+' {
			v |= 1 << bit
		}
	}
	return CTState(v, mask), nil
}

// parseValueNumeric parses "v[/mask]" as integers of the field's width.
func (s *fieldSpec) parseValueNumeric(val string) (Field, error) {
	f := Field{Class: s.class, Type: s.typ}
	v, m, hasMask := strings.Cut(val, "/")
	var err error
	if f.Value, err = parseUintBytes(v, int(s.bytes)); err != nil {
		return f, err
	}
	if hasMask {
		if f.Mask, err = parseUintBytes(m, int(s.bytes)); err != nil {
			return f, err
		}
	}
	return f, nil
}

// parseCT parses the argument of "ct(...)".
func parseCT(arg string) (CT, error) {
	var ct CT
	for _, opt := range splitActions(arg) {
		opt = strings.TrimSpace(opt)
		key, val, _ := strings.Cut(opt, "=")
		switch {
		case opt == "":
		case opt == "commit":
			ct.Commit = true
		case key == "table":
			t, err := parseUint(val, 8)
			if err != nil {
				return ct, fmt.Errorf("ct table: %w", err)
			}
			ct.HasTable, ct.Table = true, uint8(t)
		case key == "zone":
			if strings.Contains(val, "[") {
				r, n, err := parseRef(val)
				if err != nil {
					return ct, fmt.Errorf("ct zone: %w", err)
				}
				if n != 16 {
					return ct, fmt.Errorf("ct zone: %d bits, want 16", n)
				}
				ct.ZoneSrc = r
				continue
			}
			z, err := parseUint(val, 16)
			if err != nil {
				return ct, fmt.Errorf("ct zone: %w", err)
			}
			ct.Zone = uint16(z)
		case strings.HasPrefix(opt, "exec(") && strings.HasSuffix(opt, ")"):
			for _, x := range splitActions(opt[len("exec(") : len(opt)-1]) {
				act, err := parseAction(strings.TrimSpace(x))
				if err != nil {
					return ct, fmt.Errorf("ct exec: %w", err)
				}
				ct.Actions = append(ct.Actions, act)
			}
		default:
			return ct, fmt.Errorf("ct: unsupported option %q", opt)
		}
	}
	return ct, nil
}

// parseConjunction parses the argument of "conjunction(id,k/n)".
func parseConjunction(arg string) (Conjunction, error) {
	id, kn, ok := strings.Cut(arg, ",")
	k, n, ok2 := strings.Cut(kn, "/")
	if !ok || !ok2 {
		return Conjunction{}, fmt.Errorf("conjunction(%s): want ID,K/N", arg)
	}
	iv, err1 := parseUint(strings.TrimSpace(id), 32)
	kv, err2 := parseUint(strings.TrimSpace(k), 8)
	nv, err3 := parseUint(strings.TrimSpace(n), 8)
	if err1 != nil || err2 != nil || err3 != nil || kv < 1 || nv < 2 || nv > 64 || kv > nv {
		return Conjunction{}, fmt.Errorf("conjunction(%s): clause 1..N of N in 2..64", arg)
	}
	return Conjunction{ID: uint32(iv), Clause: uint8(kv - 1), NClauses: uint8(nv)}, nil
}

// validateCT checks a ct action's shape: only set_field of ct_mark in its actions, and
// those only when it commits.
func validateCT(a CT) error {
	if a.ZoneSrc.Bytes != 0 && (a.ZoneSrc.Ofs < 0 || a.ZoneSrc.Ofs+16 > int(a.ZoneSrc.Bytes)*8) {
		return fmt.Errorf("ct zone: bits %d..%d outside a %d-bit field", a.ZoneSrc.Ofs, a.ZoneSrc.Ofs+15, int(a.ZoneSrc.Bytes)*8)
	}
	if len(a.Actions) > 0 && !a.Commit {
		return fmt.Errorf("ct exec needs commit")
	}
	for _, x := range a.Actions {
		sf, ok := x.(SetField)
		if !ok || sf.Field.Class != ClassNXM1 || sf.Field.Type != NXMCTMark || len(sf.Field.Value) != 4 {
			return fmt.Errorf("ct exec: only set_field of ct_mark, not %s", x)
		}
	}
	return nil
}
