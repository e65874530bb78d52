package ofproto

import (
	"strings"
	"testing"
)

// A ct action takes only set_field of ct_mark, and only when it commits; a conjunction's
// clause must be one of its clauses. Flow.Validate refuses the others before they are
// sent (OVS would answer OFPBAC_* errors).
func TestValidateConntrackActions(t *testing.T) {
	zone := RefReg(6)
	ok := []Action{
		CT{HasTable: true, Table: 72, ZoneSrc: zone},
		CT{Commit: true, Zone: 5, Actions: []Action{SetCTMark(1)}},
		CTClear{},
		Conjunction{ID: 9, Clause: 1, NClauses: 2},
	}
	for _, a := range ok {
		f := Flow{Table: 1, Priority: 1, Match: Match{EthType(EthTypeIPv4)}, Actions: []Action{a}}
		if err := f.Validate(); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	bad := map[string]Action{
		"exec without commit": CT{Actions: []Action{SetCTMark(1)}},
		"exec of an output":   CT{Commit: true, Actions: []Action{Output{Port: 1}}},
		"zone bits outside":   CT{ZoneSrc: FieldRef{Class: ClassNXM1, Type: NXMReg0 + 6, Bytes: 4, Ofs: 20}},
		"clause 3 of 2":       Conjunction{ID: 9, Clause: 2, NClauses: 2},
		"one clause":          Conjunction{ID: 9, Clause: 0, NClauses: 1},
	}
	for name, a := range bad {
		f := Flow{Table: 1, Priority: 1, Match: Match{EthType(EthTypeIPv4)}, Actions: []Action{a}}
		if err := f.Validate(); err == nil {
			t.Errorf("%s (%s): accepted", name, a)
		}
	}
	for _, s := range []string{"ct_state=+bogus", "ct_state=trk"} {
		if _, err := ParseFlow(s + " actions=drop"); err == nil || !strings.Contains(err.Error(), "ct_state") {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"conjunction(1,3/2)", "conjunction(1,1/1)", "ct(force)", "ct(zone=NXM_NX_REG6[0..7])"} {
		if _, err := ParseFlow("ip actions=" + s); err == nil {
			t.Errorf("%s: accepted", s)
		}
	}
}
