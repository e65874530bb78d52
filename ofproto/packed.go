package ofproto

import (
	"encoding/binary"
	"fmt"
)

// PackedFlow is a flow held as its wire encoding: its key (table, priority, canonical OXMs),
// cookie, timeouts and encoded instructions. A controller holding millions of desired and
// installed flows keeps them packed (about a third of a Flow's memory), compares them by
// bytes and encodes flow-mods from them without unpacking.
type PackedFlow struct {
	Key                      FlowKey
	Cookie                   uint64
	IdleTimeout, HardTimeout uint16
	Conjunctive              bool   // the flow is conjunctive (Flow.Conjunctive)
	Instructions             string // OpenFlow 1.3 instructions, in Open vSwitch's order
}

// Pack packs f (its match in any order: the key is canonical).
func Pack(f *Flow) PackedFlow {
	var buf [256]byte
	return PackedFlow{Key: f.Key(), Cookie: f.Cookie, IdleTimeout: f.IdleTimeout, HardTimeout: f.HardTimeout,
		Conjunctive: f.Conjunctive(), Instructions: string(appendInstructions(buf[:0], f))}
}

// Unpack returns the flow p holds.
func (p *PackedFlow) Unpack() (Flow, error) {
	f := Flow{Table: p.Key.Table, Priority: p.Key.Priority, Cookie: p.Cookie, IdleTimeout: p.IdleTimeout, HardTimeout: p.HardTimeout}
	m, err := decodeOXMs([]byte(p.Key.Match))
	if err != nil {
		return Flow{}, fmt.Errorf("packed flow match: %w", err)
	}
	f.Match = m
	if err := decodeInstructions([]byte(p.Instructions), &f); err != nil {
		return Flow{}, fmt.Errorf("packed flow instructions: %w", err)
	}
	return f, nil
}

// String renders p in ovs-ofctl syntax (or says why it cannot).
func (p *PackedFlow) String() string {
	f, err := p.Unpack()
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return f.String()
}

// AppendFlowMod appends an OFPT_FLOW_MOD of cmd for p, byte for byte what AppendFlowMod
// appends for the flow p holds.
func (p *PackedFlow) AppendFlowMod(b []byte, xid uint32, cmd FlowModCommand, flags uint16) []byte {
	start := len(b)
	b = appendHeader(b, TypeFlowMod, xid)
	b = appendU64(b, p.Cookie)
	b = appendU64(b, 0) // cookie mask
	b = append(b, p.Key.Table, byte(cmd))
	b = appendU16(b, p.IdleTimeout)
	b = appendU16(b, p.HardTimeout)
	b = appendU16(b, p.Key.Priority)
	b = appendU32(b, NoBuffer)
	b = appendU32(b, PortAny)
	b = appendU32(b, GroupAny)
	b = appendU16(b, flags)
	b = append(b, 0, 0)
	m := len(b)
	b = append(b, 0, 1, 0, 0) // OFPMT_OXM
	b = append(b, p.Key.Match...)
	binary.BigEndian.PutUint16(b[m+2:], uint16(len(b)-m))
	for (len(b)-m)%8 != 0 {
		b = append(b, 0)
	}
	if cmd != FlowDelete && cmd != FlowDeleteStrict {
		b = append(b, p.Instructions...)
	}
	return finish(b, start)
}
