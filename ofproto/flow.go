package ofproto

import (
	"cmp"
	"slices"
	"strings"
)

// Flow is one flow entry as the controller wants it (or as dumped from a switch).
type Flow struct {
	Table       uint8
	Priority    uint16
	Cookie      uint64
	IdleTimeout uint16
	HardTimeout uint16
	Match       Match
	Actions     []Action // the apply-actions instruction (nil/empty: none; with no Goto either: drop)
	Meter       uint32   // meter instruction, 0 = none
	Goto        uint8    // goto_table target, valid only if HasGoto
	HasGoto     bool
	// Write-metadata instruction, if any.
	Metadata, MetadataMask uint64
	HasMetadata            bool
	// OtherInstructions holds, verbatim, instructions this package does not model
	// (write_actions, clear_actions, experimenter) of a flow dumped from a switch, so that it
	// compares and re-encodes faithfully. Leave it nil when building flows.
	OtherInstructions []byte
}

// FlowKey identifies a flow in a table the way OVS does: (table, priority, match). It is
// comparable and usable as a map key.
type FlowKey struct {
	Table    uint8
	Priority uint16
	Match    string // canonical encoded OXMs
}

// Key returns the flow's identity. The match is put in canonical form first (on a copy: f is
// not modified), so the key depends neither on the order fields were given in nor on an
// all-ones mask versus an exact match.
func (f *Flow) Key() FlowKey {
	var buf [256]byte
	b := buf[:0]
	m := f.Match
	if !m.isCanonical() {
		m = slices.Clone(m).Canonical()
	}
	for i := range m {
		b = appendOXM(b, m[i])
	}
	return FlowKey{Table: f.Table, Priority: f.Priority, Match: string(b)}
}

func cmpField(a, b Field) int {
	ra, rb := fieldRank(a.Class, a.Type), fieldRank(b.Class, b.Type)
	if ra != rb {
		return ra - rb
	}
	if a.Class != b.Class {
		return int(a.Class) - int(b.Class)
	}
	return int(a.Type) - int(b.Type)
}

// SameInstructions reports whether f and g have identical instructions (apply-actions,
// meter, goto and write-metadata). Cookies and timeouts are not compared.
func (f *Flow) SameInstructions(g *Flow) bool {
	if f.Meter != g.Meter || f.HasGoto != g.HasGoto || (f.HasGoto && f.Goto != g.Goto) ||
		f.HasMetadata != g.HasMetadata ||
		(f.HasMetadata && (f.Metadata != g.Metadata || f.MetadataMask != g.MetadataMask)) {
		return false
	}
	if string(f.OtherInstructions) != string(g.OtherInstructions) || len(f.Actions) != len(g.Actions) {
		return false
	}
	var ba, bb [128]byte
	for i := range f.Actions {
		if string(f.Actions[i].appendTo(ba[:0])) != string(g.Actions[i].appendTo(bb[:0])) {
			return false
		}
	}
	return true
}

// Equal reports whether f and g are the same flow: same key, cookie, timeouts and
// instructions.
func (f *Flow) Equal(g *Flow) bool {
	return f.Table == g.Table && f.Priority == g.Priority && f.Cookie == g.Cookie &&
		f.IdleTimeout == g.IdleTimeout && f.HardTimeout == g.HardTimeout &&
		f.Key() == g.Key() && f.SameInstructions(g)
}

// CompareFlows orders flows as dumps and pages show them: by table, then priority (high
// first), then canonical match. It is the one flow order of dvrflow.
func CompareFlows(a, b *Flow) int {
	if c := ComparePlaces(a, b); c != 0 {
		return c
	}
	return strings.Compare(a.Key().Match, b.Key().Match)
}

// ComparePlaces is CompareFlows without the match: a stable sort with it keeps the
// flows of one table and priority in the order they were computed (golden files).
func ComparePlaces(a, b *Flow) int {
	return cmp.Or(cmp.Compare(a.Table, b.Table), cmp.Compare(b.Priority, a.Priority))
}
