package ofproto

import (
	"encoding/binary"
	"fmt"
)

// FlowMod is a decoded OFPT_FLOW_MOD.
type FlowMod struct {
	Xid        uint32
	Command    FlowModCommand
	Flow       Flow // Table, Priority, Cookie, timeouts, Match and instructions
	Flags      uint16
	CookieMask uint64
	BufferID   uint32
	OutPort    uint32
	OutGroup   uint32
}

// FlowStats is one entry of an OFPMP_FLOW reply: the flow and its counters.
type FlowStats struct {
	Flow         Flow
	Flags        uint16
	DurationSec  uint32
	DurationNsec uint32
	PacketCount  uint64
	ByteCount    uint64
}

// DecodeFlowMod decodes a whole OFPT_FLOW_MOD message (header included). The returned flow
// does not alias msg. Its match is kept in wire order; call Canonical to normalise it.
func DecodeFlowMod(msg []byte) (FlowMod, error) {
	h, err := ParseHeader(msg)
	if err != nil {
		return FlowMod{}, fmt.Errorf("flow-mod: %w", err)
	}
	if h.Version != Version || h.Type != TypeFlowMod {
		return FlowMod{}, fmt.Errorf("flow-mod: got version %d type %s: %w", h.Version, h.Type, ErrMalformed)
	}
	if int(h.Length) != len(msg) {
		return FlowMod{}, fmt.Errorf("flow-mod: header length %d, message %d bytes: %w", h.Length, len(msg), ErrBadLength)
	}
	if len(msg) < flowModFixed+8 {
		return FlowMod{}, fmt.Errorf("flow-mod: %d bytes: %w", len(msg), ErrTruncated)
	}
	own := make([]byte, len(msg))
	copy(own, msg)
	fm := FlowMod{
		Xid:        h.Xid,
		CookieMask: binary.BigEndian.Uint64(own[16:]),
		Command:    FlowModCommand(own[25]),
		BufferID:   binary.BigEndian.Uint32(own[32:]),
		OutPort:    binary.BigEndian.Uint32(own[36:]),
		OutGroup:   binary.BigEndian.Uint32(own[40:]),
		Flags:      binary.BigEndian.Uint16(own[44:]),
	}
	if fm.Command > FlowDeleteStrict {
		return FlowMod{}, fmt.Errorf("flow-mod: command %d: %w", fm.Command, ErrMalformed)
	}
	f := &fm.Flow
	f.Cookie = binary.BigEndian.Uint64(own[8:])
	f.Table = own[24]
	f.IdleTimeout = binary.BigEndian.Uint16(own[26:])
	f.HardTimeout = binary.BigEndian.Uint16(own[28:])
	f.Priority = binary.BigEndian.Uint16(own[30:])
	rest, err := decodeMatch(own[flowModFixed:], &f.Match)
	if err != nil {
		return FlowMod{}, fmt.Errorf("flow-mod xid %d: %w", h.Xid, err)
	}
	if err := decodeInstructions(rest, f); err != nil {
		return FlowMod{}, fmt.Errorf("flow-mod xid %d: %w", h.Xid, err)
	}
	return fm, nil
}

// DecodeMultipartReply splits an OFPT_MULTIPART_REPLY (header included) into its type,
// flags (MultipartReplyMore: more replies follow with the same xid) and body.
func DecodeMultipartReply(msg []byte) (mpType, flags uint16, body []byte, err error) {
	h, err := ParseHeader(msg)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("multipart reply: %w", err)
	}
	if h.Type != TypeMultipartReply || h.Version != Version {
		return 0, 0, nil, fmt.Errorf("multipart reply: got version %d type %s: %w", h.Version, h.Type, ErrMalformed)
	}
	if int(h.Length) != len(msg) || len(msg) < 16 {
		return 0, 0, nil, fmt.Errorf("multipart reply: header length %d, message %d bytes: %w", h.Length, len(msg), ErrBadLength)
	}
	return binary.BigEndian.Uint16(msg[8:]), binary.BigEndian.Uint16(msg[10:]), msg[16:], nil
}

// DecodeFlowStatsReply decodes the body of one OFPMP_FLOW reply (what DecodeMultipartReply
// returns as body) into flows. A reply with MultipartReplyMore set is followed by more: decode
// each body as it arrives and append. Actions this package does not model are kept as
// RawAction, instructions as Flow.OtherInstructions; nothing stops the decoding but a
// malformed structure, reported with the offset of the entry. The flows do not alias body.
func DecodeFlowStatsReply(body []byte) ([]Flow, error) {
	st, err := DecodeFlowStats(nil, body)
	if err != nil {
		return nil, err
	}
	flows := make([]Flow, len(st))
	for i := range st {
		flows[i] = st[i].Flow
	}
	return flows, nil
}

// DecodeFlowStats is DecodeFlowStatsReply with counters: it appends the entries of body to
// dst.
func DecodeFlowStats(dst []FlowStats, body []byte) ([]FlowStats, error) {
	own := make([]byte, len(body))
	copy(own, body)
	err := EachFlowStats(own, func(e *FlowStatsEntry) error {
		fs, err := e.Decode()
		if err == nil {
			dst = append(dst, fs)
		}
		return err
	})
	return dst, err
}

// FlowStatsEntry is one entry of a flow stats reply with its match and instructions as the
// switch encoded them, not decoded: a reader that holds flows packed compares those bytes
// with its own and decodes only the entries that differ. Its slices alias the reply.
type FlowStatsEntry struct {
	Table                    uint8
	Priority                 uint16
	IdleTimeout, HardTimeout uint16
	Cookie                   uint64
	PacketCount, ByteCount   uint64
	// OXMs is the match's OXM TLVs, nil when the match is not of type OXM or its length
	// does not fit the entry (Decode says why).
	OXMs         []byte
	Instructions []byte // what follows the match's padding
	entry        []byte
}

// Decode decodes the whole entry (what DecodeFlowStats returns for it), aliasing the reply.
func (e *FlowStatsEntry) Decode() (FlowStats, error) {
	b := e.entry
	var fs FlowStats
	f := &fs.Flow
	f.Table, f.Priority, f.IdleTimeout, f.HardTimeout, f.Cookie = e.Table, e.Priority, e.IdleTimeout, e.HardTimeout, e.Cookie
	fs.DurationSec = binary.BigEndian.Uint32(b[4:])
	fs.DurationNsec = binary.BigEndian.Uint32(b[8:])
	fs.Flags = binary.BigEndian.Uint16(b[18:])
	fs.PacketCount, fs.ByteCount = e.PacketCount, e.ByteCount
	rest, err := decodeMatch(b[flowStatsFixed:], &f.Match)
	if err != nil {
		return fs, err
	}
	if err := decodeInstructions(rest, f); err != nil {
		return fs, err
	}
	return fs, nil
}

// EachFlowStats calls fn for each entry of the body of an OFPMP_FLOW reply, checking only
// the entries' framing; an entry's match and instructions are checked by its Decode. It
// stops at the first error, fn's or a malformed entry's, reported with the entry's offset.
func EachFlowStats(body []byte, fn func(*FlowStatsEntry) error) error {
	var e FlowStatsEntry
	for off := 0; off < len(body); {
		if len(body)-off < flowStatsFixed+4 {
			return fmt.Errorf("flow stats at offset %d: %d bytes left: %w", off, len(body)-off, ErrTruncated)
		}
		b := body[off:]
		n := int(binary.BigEndian.Uint16(b))
		if n < flowStatsFixed+8 || n > len(b) || n%8 != 0 {
			return fmt.Errorf("flow stats at offset %d: length %d of %d: %w", off, n, len(b), ErrBadLength)
		}
		b = b[:n:n]
		e = FlowStatsEntry{Table: b[2], Priority: binary.BigEndian.Uint16(b[12:]),
			IdleTimeout: binary.BigEndian.Uint16(b[14:]), HardTimeout: binary.BigEndian.Uint16(b[16:]),
			Cookie: binary.BigEndian.Uint64(b[24:]), PacketCount: binary.BigEndian.Uint64(b[32:]),
			ByteCount: binary.BigEndian.Uint64(b[40:]), entry: b}
		m := b[flowStatsFixed:]
		if ml := int(binary.BigEndian.Uint16(m[2:])); binary.BigEndian.Uint16(m) == 1 && ml >= 4 && (ml+7)&^7 <= len(m) {
			e.OXMs, e.Instructions = m[4:ml], m[(ml+7)&^7:]
		}
		if err := fn(&e); err != nil {
			return fmt.Errorf("flow stats at offset %d: %w", off, err)
		}
		off += n
	}
	return nil
}

// decodeMatch decodes an ofp_match of type OXM at the start of b into *m and returns what
// follows its padding.
func decodeMatch(b []byte, m *Match) ([]byte, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("match: %d bytes: %w", len(b), ErrTruncated)
	}
	if t := binary.BigEndian.Uint16(b); t != 1 {
		return nil, fmt.Errorf("match type %d (want OXM): %w", t, ErrMalformed)
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	padded := (n + 7) &^ 7
	if n < 4 || padded > len(b) {
		return nil, fmt.Errorf("match length %d of %d bytes: %w", n, len(b), ErrBadLength)
	}
	fields, err := decodeOXMs(b[4:n])
	if err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	*m = fields
	return b[padded:], nil
}

// decodeOXMs decodes a sequence of OXM TLVs. Values alias b.
func decodeOXMs(b []byte) (Match, error) {
	count := 0
	for off := 0; off < len(b); {
		if len(b)-off < 4 {
			return nil, fmt.Errorf("OXM at %d: %w", off, ErrTruncated)
		}
		off += 4 + int(b[off+3])
		count++
	}
	if count == 0 {
		return nil, nil
	}
	m := make(Match, 0, count)
	for off := 0; off < len(b); {
		f, n, err := decodeOXM(b[off:])
		if err != nil {
			return nil, fmt.Errorf("OXM at %d: %w", off, err)
		}
		m = append(m, f)
		off += n
	}
	return m, nil
}

// decodeOXM decodes one OXM TLV at the start of b and returns its length.
func decodeOXM(b []byte) (Field, int, error) {
	if len(b) < 4 {
		return Field{}, 0, fmt.Errorf("header: %w", ErrTruncated)
	}
	class := binary.BigEndian.Uint16(b)
	typ, hasMask, l := b[2]>>1, b[2]&1 != 0, int(b[3])
	if class == 0xffff {
		return Field{}, 0, fmt.Errorf("experimenter OXM class: %w", ErrMalformed)
	}
	if 4+l > len(b) {
		return Field{}, 0, fmt.Errorf("field %#x:%d length %d: %w", class, typ, l, ErrTruncated)
	}
	if l == 0 || (hasMask && l%2 != 0) {
		return Field{}, 0, fmt.Errorf("field %#x:%d length %d: %w", class, typ, l, ErrBadLength)
	}
	f := Field{Class: class, Type: typ}
	v := b[4 : 4+l : 4+l]
	if hasMask {
		f.Value, f.Mask = v[:l/2:l/2], v[l/2:]
	} else {
		f.Value = v
	}
	return f, 4 + l, nil
}

// decodeInstructions decodes the instruction list b into f.
func decodeInstructions(b []byte, f *Flow) error {
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			return fmt.Errorf("instruction at %d: %d bytes: %w", off, len(b)-off, ErrTruncated)
		}
		in := b[off:]
		t, n := binary.BigEndian.Uint16(in), int(binary.BigEndian.Uint16(in[2:]))
		if n < 8 || n > len(in) || n%8 != 0 {
			return fmt.Errorf("instruction %d at %d: length %d of %d: %w", t, off, n, len(in), ErrBadLength)
		}
		in = in[:n]
		switch t {
		case instGotoTable:
			f.HasGoto, f.Goto = true, in[4]
		case instWriteMetadata:
			if n != 24 {
				return fmt.Errorf("write_metadata length %d: %w", n, ErrBadLength)
			}
			f.HasMetadata = true
			f.Metadata = binary.BigEndian.Uint64(in[8:])
			f.MetadataMask = binary.BigEndian.Uint64(in[16:])
		case instApplyActions:
			acts, err := decodeActions(in[8:])
			if err != nil {
				return fmt.Errorf("apply_actions: %w", err)
			}
			f.Actions = append(f.Actions, acts...)
		case instMeter:
			f.Meter = binary.BigEndian.Uint32(in[4:])
		default:
			f.OtherInstructions = append(f.OtherInstructions, in...)
		}
		off += n
	}
	return nil
}

// decodeActions decodes an action list. Unknown actions become RawAction.
func decodeActions(b []byte) ([]Action, error) {
	var acts []Action
	for off := 0; off < len(b); {
		if len(b)-off < 8 {
			return nil, fmt.Errorf("action at %d: %d bytes: %w", off, len(b)-off, ErrTruncated)
		}
		a := b[off:]
		t, n := binary.BigEndian.Uint16(a), int(binary.BigEndian.Uint16(a[2:]))
		if n < 8 || n > len(a) || n%8 != 0 {
			return nil, fmt.Errorf("action %d at %d: length %d of %d: %w", t, off, n, len(a), ErrBadLength)
		}
		a = a[:n:n]
		act, err := decodeAction(t, a)
		if err != nil {
			return nil, fmt.Errorf("action %d at %d: %w", t, off, err)
		}
		acts = append(acts, act)
		off += n
	}
	return acts, nil
}

func decodeAction(t uint16, a []byte) (Action, error) {
	n := len(a)
	switch t {
	case actOutput:
		if n != 16 {
			return nil, fmt.Errorf("output length %d: %w", n, ErrBadLength)
		}
		return Output{Port: binary.BigEndian.Uint32(a[4:]), MaxLen: binary.BigEndian.Uint16(a[8:])}, nil
	case actPushVLAN:
		return PushVLAN{EtherType: binary.BigEndian.Uint16(a[4:])}, nil
	case actPopVLAN:
		return PopVLAN{}, nil
	case actDecNwTTL:
		return DecNwTTL{}, nil
	case actGroup:
		return Group{ID: binary.BigEndian.Uint32(a[4:])}, nil
	case actSetField:
		f, l, err := decodeOXM(a[4:])
		if err != nil {
			return nil, fmt.Errorf("set_field: %w", err)
		}
		if f.Mask != nil || (4+l+7)&^7 != n {
			return RawAction{Bytes: a}, nil
		}
		return SetField{Field: f}, nil
	case actExperimenter:
		if act, ok, err := decodeNicira(a); err != nil || ok {
			return act, err
		}
		if n == 24 && binary.BigEndian.Uint32(a[4:]) == ExperimenterNicira &&
			binary.BigEndian.Uint16(a[8:]) == nxastRegMove {
			src, ok1 := decodeRef(a[16:], binary.BigEndian.Uint16(a[12:]))
			dst, ok2 := decodeRef(a[20:], binary.BigEndian.Uint16(a[14:]))
			if ok1 && ok2 {
				return RegMove{Src: src, Dst: dst, NBits: int(binary.BigEndian.Uint16(a[10:]))}, nil
			}
		}
	}
	return RawAction{Bytes: a}, nil
}

func decodeRef(h []byte, ofs uint16) (FieldRef, bool) {
	class := binary.BigEndian.Uint16(h)
	if class == 0xffff || h[2]&1 != 0 || h[3] == 0 {
		return FieldRef{}, false
	}
	return FieldRef{Class: class, Type: h[2] >> 1, Bytes: h[3], Ofs: int(ofs)}, true
}
