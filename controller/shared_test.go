package controller

import (
	"net/netip"
	"slices"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/ofproto"
)

// member is a remote group's member flow: clause 0 of conjunction conj for source addr.
func member(addr string, conj uint32) ofproto.Flow {
	return ofproto.Flow{Table: 12, Priority: 71, Cookie: ownValue | 5,
		Match:   ofproto.Match{ofproto.EthType(ofproto.EthTypeIPv4), ofproto.IPv4Src(netip.MustParseAddr(addr))},
		Actions: []ofproto.Action{ofproto.Conjunction{ID: conj, Clause: 0, NClauses: 2}}}
}

// merged is member with the conjunctions of several groups.
func merged(addr string, conjs ...uint32) ofproto.Flow {
	f := member(addr, conjs[0])
	for _, c := range conjs[1:] {
		f.Actions = append(f.Actions, ofproto.Conjunction{ID: c, Clause: 0, NClauses: 2})
	}
	return f
}

func sharedPart(t *testing.T, prev *SharedPart, flows ...ofproto.Flow) *SharedPart {
	t.Helper()
	s, err := NewSharedPart(flows, prev)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Shared parts: a key that two groups' parts hold is one flow with both conjunctions, which
// follows either part's changes; a newer version costs a reconciler holding the one before
// only its difference, and one holding an older version the full difference, with the same
// result.
func TestSharedPartsMergeConjunctions(t *testing.T) {
	f := newRecFixture(t, ReconcilerConfig{BundleThreshold: -1}, nil)
	private := testFlows()[:2]
	g1 := sharedPart(t, nil, member("10.0.0.1", 2), member("10.0.0.2", 2))
	g2 := sharedPart(t, nil, member("10.0.0.2", 4), member("10.0.0.3", 4))
	if err := f.rec.Set(Update{Parts: map[string][]ofproto.Flow{"p": private}, Shared: map[string]*SharedPart{"g1": g1, "g2": g2}, Complete: true}); err != nil {
		t.Fatal(err)
	}
	if res := f.reconcile(t); res.Adds != 5 {
		t.Fatalf("first pass %+v, want 5 adds", res)
	}
	assertSwitchHas(t, f.sw, append(slices.Clone(private), member("10.0.0.1", 2), merged("10.0.0.2", 2, 4), member("10.0.0.3", 4)))

	// The same flows again are the same version.
	if again := sharedPart(t, g1, member("10.0.0.2", 2), member("10.0.0.1", 2)); again != g1 {
		t.Fatal("unchanged flows made a new version")
	}
	// g1 loses 10.0.0.2 and gains 10.0.0.4: one flow added, the shared one modified.
	g1b := sharedPart(t, g1, member("10.0.0.1", 2), member("10.0.0.4", 2))
	if c, r := g1b.Changes(); c != 1 || r != 1 {
		t.Fatalf("g1b changes %d, removes %d; want 1, 1", c, r)
	}
	if err := f.rec.Set(Update{Shared: map[string]*SharedPart{"g1": g1b}}); err != nil {
		t.Fatal(err)
	}
	if res := f.reconcile(t); res.Adds != 1 || res.Modifies != 1 || res.Deletes != 0 {
		t.Fatalf("after g1b: %+v, want 1 add and 1 modify", res)
	}
	want := append(slices.Clone(private), member("10.0.0.1", 2), member("10.0.0.2", 4), member("10.0.0.3", 4), member("10.0.0.4", 2))
	assertSwitchHas(t, f.sw, want)

	// Another reconciler skipped g1b: given g1c, it diffs in full and ends the same.
	g1c := sharedPart(t, g1b, member("10.0.0.1", 2), member("10.0.0.3", 2), member("10.0.0.4", 2))
	other := NewReconciler(zaptest.NewLogger(t), 7, ReconcilerConfig{CookieMask: ownMask, CookieValue: ownValue})
	for _, u := range []Update{
		{Parts: map[string][]ofproto.Flow{"p": private}, Shared: map[string]*SharedPart{"g1": g1, "g2": g2}, Complete: true},
		{Shared: map[string]*SharedPart{"g1": g1c}},
	} {
		if err := other.Set(u); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.rec.Set(Update{Shared: map[string]*SharedPart{"g1": g1c}}); err != nil {
		t.Fatal(err)
	}
	want = append(slices.Clone(private), member("10.0.0.1", 2), member("10.0.0.2", 4), merged("10.0.0.3", 2, 4), member("10.0.0.4", 2))
	for _, r := range []*Reconciler{f.rec, other} {
		if got := flowStrings(r.Desired()); !slices.Equal(got, flowStrings(sorted(want))) {
			t.Fatalf("desired of %x:\n%v\nwant\n%v", r.dpid, got, flowStrings(sorted(want)))
		}
	}

	// A part may not share a key with a flow that is not conjunctive, nor with another
	// cookie; a refused update changes nothing.
	before := flowStrings(f.rec.Desired())
	clash := member("10.0.0.1", 6)
	clash.Cookie++
	for _, u := range []Update{
		{Shared: map[string]*SharedPart{"g3": sharedPart(t, nil, clash)}},
		{Parts: map[string][]ofproto.Flow{"q": {{Table: 12, Priority: 71, Cookie: ownValue | 5, Match: member("10.0.0.3", 0).Match, HasGoto: true, Goto: 13}}}},
		{Parts: map[string][]ofproto.Flow{"p": private[:1]}, Shared: map[string]*SharedPart{"p": g2}},
	} {
		if err := f.rec.Set(u); err == nil {
			t.Fatalf("update %+v accepted", u)
		}
	}
	if got := flowStrings(f.rec.Desired()); !slices.Equal(got, before) {
		t.Fatalf("refused update changed the desired set:\n%v\n->\n%v", before, got)
	}

	// g2 removed, then everything but the private part: the merged flows become g1's,
	// then go.
	if err := f.rec.Set(Update{Shared: map[string]*SharedPart{"g2": nil}}); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t)
	assertSwitchHas(t, f.sw, append(slices.Clone(private), member("10.0.0.1", 2), member("10.0.0.3", 2), member("10.0.0.4", 2)))
	if err := f.rec.Set(Update{Parts: map[string][]ofproto.Flow{"p": private}, Complete: true}); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t)
	assertSwitchHas(t, f.sw, private)
	if len(f.rec.merged) != 0 || len(f.rec.shared) != 0 {
		t.Fatalf("left behind: %d merged keys, %d shared parts", len(f.rec.merged), len(f.rec.shared))
	}
}

func sorted(fs []ofproto.Flow) []ofproto.Flow {
	out := slices.Clone(fs)
	for i := range out {
		out[i].Match = slices.Clone(out[i].Match).Canonical()
	}
	slices.SortFunc(out, func(a, b ofproto.Flow) int { return ofproto.CompareFlows(&a, &b) })
	return out
}

func flowStrings(fs []ofproto.Flow) []string {
	out := make([]string, len(fs))
	for i := range fs {
		out[i] = fs[i].String()
	}
	return out
}
