package ofsim

import (
	"encoding/binary"

	"github.com/dvrflow/dvrflow/ofproto"
)

// flagCheckOverlap is OFPFF_CHECK_OVERLAP: refuse an add that overlaps a flow of the same
// table and priority.
const flagCheckOverlap uint16 = 1 << 1

// OpenFlow 1.3 instruction and action types Open vSwitch accepts.
var (
	knownInstructions = map[uint16]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true}
	knownActions      = map[uint16]bool{0: true, 11: true, 12: true, 15: true, 16: true, 17: true,
		18: true, 19: true, 20: true, 21: true, 22: true, 23: true, 24: true, 25: true, 26: true, 27: true}
)

// checkStructure refuses what OVS refuses while decoding a flow-mod's instructions and
// actions, with its error type and code: an unknown or repeated instruction, an
// experimenter instruction, an unknown action type, an experimenter action of a vendor it
// does not know, an output to an invalid port, a field set twice in the match.
func checkStructure(f *ofproto.Flow) error {
	seen := map[uint16]bool{}
	if f.HasGoto {
		seen[1] = true
	}
	if f.HasMetadata {
		seen[2] = true
	}
	if len(f.Actions) > 0 {
		seen[4] = true
	}
	if f.Meter != 0 {
		seen[6] = true
	}
	for in := f.OtherInstructions; len(in) >= 4; {
		t, n := binary.BigEndian.Uint16(in), int(binary.BigEndian.Uint16(in[2:]))
		switch {
		case t == 0xffff:
			return &flowModError{errBadInstruction, codeBadInstExp}
		case !knownInstructions[t]:
			return &flowModError{errBadInstruction, codeUnknownInst}
		case seen[t]:
			return &flowModError{errBadInstruction, codeDupInst}
		}
		seen[t] = true
		if n < 8 || n > len(in) {
			break
		}
		in = in[n:]
	}
	for _, a := range f.Actions {
		switch a := a.(type) {
		case ofproto.RawAction:
			t := binary.BigEndian.Uint16(a.Bytes)
			if t == 0xffff {
				if len(a.Bytes) < 8 || binary.BigEndian.Uint32(a.Bytes[4:]) != ofproto.ExperimenterNicira {
					return &flowModError{errBadAction, codeBadActionExp}
				}
				continue
			}
			if !knownActions[t] {
				return &flowModError{errBadAction, codeBadActionType}
			}
		case ofproto.Output:
			if a.Port == 0 || a.Port == ofproto.PortAny || (a.Port > ofproto.PortMax && a.Port < ofproto.PortInPort) {
				return &flowModError{errBadAction, codeBadOutPort}
			}
		}
	}
	fields := map[[3]uint16]bool{}
	for _, fl := range f.Match {
		k := [3]uint16{fl.Class, uint16(fl.Type), 0}
		if fields[k] {
			return &flowModError{errBadMatch, codeDupField}
		}
		fields[k] = true
	}
	return nil
}

// overlaps reports whether a flow of k's table and priority other than k itself could match
// a packet match m matches, or k itself exists (OVS counts an identical flow as an overlap).
func (t flowTable) overlaps(k ofproto.FlowKey, m ofproto.Match) bool {
	if _, ok := t[k]; ok {
		return true
	}
	for ok, e := range t {
		if ok.Table != k.Table || ok.Priority != k.Priority {
			continue
		}
		ef, err := e.flow()
		if err != nil {
			continue
		}
		if matchesIntersect(ef.Match, m) {
			return true
		}
	}
	return false
}

// matchesIntersect reports whether some packet matches both a and b: no field both
// constrain differs on the bits both masks cover.
func matchesIntersect(a, b ofproto.Match) bool {
	for _, af := range a {
		bf, ok := b.Get(af.Class, af.Type)
		if !ok || len(af.Value) != len(bf.Value) {
			continue
		}
		for i := range af.Value {
			am, bm := byte(0xff), byte(0xff)
			if af.Mask != nil {
				am = af.Mask[i]
			}
			if bf.Mask != nil {
				bm = bf.Mask[i]
			}
			if (af.Value[i]^bf.Value[i])&am&bm != 0 {
				return false
			}
		}
	}
	return true
}
