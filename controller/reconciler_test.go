package controller

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
)

// Cookies in these tests: the top byte 0xd0 is ours, anything else is foreign.
const (
	ownMask  = 0xff00_0000_0000_0000
	ownValue = 0xd000_0000_0000_0000
	foreign  = 0x0100_0000_0000_0000
)

func mac(last byte) net.HardwareAddr { return net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, last} }

// testFlows is a small pipeline over three tables.
func testFlows() []ofproto.Flow {
	return []ofproto.Flow{
		{Table: 0, Priority: 10, Cookie: ownValue | 1, Match: ofproto.Match{ofproto.InPort(1)}, HasGoto: true, Goto: 1},
		{Table: 0, Priority: 0, Cookie: ownValue | 1},
		{Table: 1, Priority: 20, Cookie: ownValue | 2, Match: ofproto.Match{ofproto.EthDst(mac(2))},
			Actions: []ofproto.Action{ofproto.Output{Port: 2}}},
		{Table: 1, Priority: 5, Cookie: ownValue | 2, Match: ofproto.Match{ofproto.EthType(0x0806), ofproto.ARPTPA(netip.MustParseAddr("10.0.0.1"))},
			Actions: []ofproto.Action{ofproto.Output{Port: ofproto.PortController, MaxLen: ofproto.ControllerMaxLenNoBuffer}}},
		{Table: 2, Priority: 1, Cookie: ownValue | 3, Actions: []ofproto.Action{ofproto.SetTunDst(netip.MustParseAddr("192.168.248.4")), ofproto.Output{Port: 9}}},
	}
}

type recFixture struct {
	h   *harness
	sw  *ofsim.Switch
	s   *Session
	rec *Reconciler
}

func newRecFixture(t *testing.T, cfg ReconcilerConfig, sw *ofsim.Switch) *recFixture {
	t.Helper()
	h := newHarness(t, Config{})
	if sw == nil {
		sw = newSwitch(t, 0x42)
	}
	s := h.connect(sw)
	cfg.CookieMask, cfg.CookieValue = ownMask, ownValue
	rec := NewReconciler(zaptest.NewLogger(t), sw.DPID(), cfg)
	rec.Bind(s)
	return &recFixture{h: h, sw: sw, s: s, rec: rec}
}

func (f *recFixture) reconcile(t *testing.T) Result {
	t.Helper()
	res, err := f.rec.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// assertSwitchHas compares the switch's flows with want in ovs-ofctl text.
func assertSwitchHas(t *testing.T, sw *ofsim.Switch, want []ofproto.Flow) {
	t.Helper()
	got, err := sw.DumpFlows()
	if err != nil {
		t.Fatal(err)
	}
	gl, lines := ofsim.SplitDump(got), ofsim.DumpLines(want)
	if !slices.Equal(lines, gl) {
		t.Fatalf("switch flows:\n%s\nwant:\n%s", strings.Join(gl, "\n"), strings.Join(lines, "\n"))
	}
}

func TestReconcileAddsThenNothing(t *testing.T) {
	f := newRecFixture(t, ReconcilerConfig{BundleThreshold: -1}, nil)
	if err := f.rec.SetDesired(testFlows()); err != nil {
		t.Fatal(err)
	}
	res := f.reconcile(t)
	if res.Adds != 5 || res.Modifies != 0 || res.Deletes != 0 || !res.Dumped || res.Bundled {
		t.Fatalf("first pass %+v", res)
	}
	assertSwitchHas(t, f.sw, testFlows())
	before := f.sw.Counts()
	res = f.reconcile(t)
	if res.FlowMods() != 0 || res.Dumped {
		t.Fatalf("steady state pass sent %+v", res)
	}
	if f.sw.Counts() != before {
		t.Fatalf("switch got flow-mods in steady state: %+v -> %+v", before, f.sw.Counts())
	}
	st := f.rec.Stats()
	if st.Adds != 5 || st.Installed != 5 || st.Desired != 5 || st.Reconciles != 2 || st.Dumps != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReconcileChangedActionsIsOneModify(t *testing.T) {
	f := newRecFixture(t, ReconcilerConfig{BundleThreshold: -1}, nil)
	flows := testFlows()
	if err := f.rec.SetDesired(flows); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t)
	flows[2].Actions = []ofproto.Action{ofproto.SetEthSrc(mac(9)), ofproto.Output{Port: 3}}
	if err := f.rec.SetDesired(flows); err != nil {
		t.Fatal(err)
	}
	before := f.sw.Counts()
	res := f.reconcile(t)
	if res.Modifies != 1 || res.FlowMods() != 1 {
		t.Fatalf("pass %+v", res)
	}
	if c := f.sw.Counts(); c.ModifyStrict != before.ModifyStrict+1 || c.Total() != before.Total()+1 {
		t.Fatalf("switch counts %+v", c)
	}
	assertSwitchHas(t, f.sw, flows)
}

func TestReconcileChangedPriorityAddsBeforeDelete(t *testing.T) {
	f := newRecFixture(t, ReconcilerConfig{BundleThreshold: -1}, nil)
	flows := testFlows()
	if err := f.rec.SetDesired(flows); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t)
	flows[2].Priority = 30
	if err := f.rec.SetDesired(flows); err != nil {
		t.Fatal(err)
	}
	f.rec.mu.Lock()
	ops, _ := f.rec.diffLocked(time.Now())
	f.rec.mu.Unlock()
	if len(ops) != 2 || ops[0].kind != opAdd || ops[1].kind != opDelete {
		t.Fatalf("ops %v", ops)
	}
	before := f.sw.Counts()
	res := f.reconcile(t)
	if res.Adds != 1 || res.Deletes != 1 || res.FlowMods() != 2 {
		t.Fatalf("pass %+v", res)
	}
	if c := f.sw.Counts(); c.DeleteStrict != before.DeleteStrict+1 || c.Delete != 0 {
		t.Fatalf("deletes must be strict: %+v", c)
	}
	assertSwitchHas(t, f.sw, flows)
}

func TestReconcileCookieChangeReAdds(t *testing.T) {
	f := newRecFixture(t, ReconcilerConfig{BundleThreshold: -1}, nil)
	flows := testFlows()
	if err := f.rec.SetDesired(flows); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t)
	flows[4].Cookie = ownValue | 0x77
	if err := f.rec.SetDesired(flows); err != nil {
		t.Fatal(err)
	}
	res := f.reconcile(t)
	if res.Adds != 1 || res.FlowMods() != 1 {
		t.Fatalf("pass %+v", res)
	}
	assertSwitchHas(t, f.sw, flows)
}

func TestReconcileStaleAndForeignFlowsOnConnect(t *testing.T) {
	sw := newSwitch(t, 0x43)
	stale := ofproto.Flow{Table: 3, Priority: 7, Cookie: ownValue | 9, Match: ofproto.Match{ofproto.InPort(4)}}
	alien := ofproto.Flow{Table: 3, Priority: 8, Cookie: foreign | 1, Match: ofproto.Match{ofproto.InPort(5)}}
	clash := testFlows()[1]
	clash.Cookie = foreign | 2
	clash.Actions = []ofproto.Action{ofproto.Output{Port: ofproto.PortNormal}}
	for _, fl := range []ofproto.Flow{stale, alien, clash} {
		if err := sw.AddFlow(fl); err != nil {
			t.Fatal(err)
		}
	}
	f := newRecFixture(t, ReconcilerConfig{BundleThreshold: -1}, sw)
	if err := f.rec.SetDesired(testFlows()); err != nil {
		t.Fatal(err)
	}
	res := f.reconcile(t)
	// 4 missing flows added, the clashing foreign flow overwritten, the stale one deleted,
	// the other foreign flow left alone.
	if res.Adds != 5 || res.Deletes != 1 || res.Modifies != 0 {
		t.Fatalf("pass %+v", res)
	}
	assertSwitchHas(t, sw, append(testFlows(), alien))
	st := f.rec.Stats()
	if st.ForeignOverwritten != 1 || st.ForeignLeft != 2 {
		t.Fatalf("stats %+v", st)
	}
	// The connect dump decoded the three flows that are no desired flow byte for byte.
	if st.DumpDecoded != 3 {
		t.Fatalf("dump decoded %d flows, want 3 (stale, alien, clash)", st.DumpDecoded)
	}
}

func TestReconcileEmptyDesiredDeletesOnlyOwned(t *testing.T) {
	sw := newSwitch(t, 0x44)
	alien := ofproto.Flow{Table: 0, Priority: 8, Cookie: foreign, Match: ofproto.Match{ofproto.InPort(5)}}
	if err := sw.AddFlow(alien); err != nil {
		t.Fatal(err)
	}
	f := newRecFixture(t, ReconcilerConfig{BundleThreshold: -1}, sw)
	if err := f.rec.SetDesired(testFlows()); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t)
	if err := f.rec.SetDesired(nil); err != nil {
		t.Fatal(err)
	}
	res := f.reconcile(t)
	if res.Deletes != 5 || res.FlowMods() != 5 {
		t.Fatalf("pass %+v", res)
	}
	assertSwitchHas(t, sw, []ofproto.Flow{alien})
	if c := sw.Counts(); c.Delete != 0 {
		t.Fatalf("non-strict delete (flush) sent: %+v", c)
	}
}

func TestReconcileRestartSendsZeroFlowMods(t *testing.T) {
	for _, bundle := range []bool{false, true} {
		t.Run(fmt.Sprintf("bundle=%v", bundle), func(t *testing.T) {
			sw := newSwitch(t, 0x45)
			cfg := ReconcilerConfig{AlwaysBundle: bundle, BundleThreshold: -1}
			f := newRecFixture(t, cfg, sw)
			if err := f.rec.SetDesired(testFlows()); err != nil {
				t.Fatal(err)
			}
			if res := f.reconcile(t); res.Adds != 5 || res.Bundled != bundle {
				t.Fatalf("first pass %+v", res)
			}
			if bundle && sw.Counts().Bundles != 1 {
				t.Fatalf("no bundle committed: %+v", sw.Counts())
			}
			before := sw.Counts()
			// A new controller: new server, new reconciler, the switch reconnects.
			f.h.stop()
			g := newRecFixture(t, cfg, sw)
			if err := g.rec.SetDesired(testFlows()); err != nil {
				t.Fatal(err)
			}
			res := g.reconcile(t)
			if !res.Dumped || res.FlowMods() != 0 {
				t.Fatalf("restart pass %+v", res)
			}
			if changed(before, sw.Counts()) {
				t.Fatalf("switch got flow-mods after restart: %+v -> %+v", before, sw.Counts())
			}
			if n := g.rec.Stats().DumpDecoded; n != 0 {
				t.Fatalf("the restart's dump decoded %d flows, want 0: every flow is byte for byte a desired one", n)
			}
			assertSwitchHas(t, sw, testFlows())
		})
	}
}

func TestReconcileFailedFlowReportedAndRetried(t *testing.T) {
	for _, bundle := range []bool{false, true} {
		t.Run(fmt.Sprintf("bundle=%v", bundle), func(t *testing.T) {
			sw := ofsim.New(zaptest.NewLogger(t), ofsim.Config{DPID: 0x46, NumTables: 32, MaxFlows: 4})
			f := newRecFixture(t, ReconcilerConfig{AlwaysBundle: bundle, BundleThreshold: -1,
				RetryBase: 50 * time.Millisecond}, sw)
			if err := f.rec.SetDesired(testFlows()); err != nil {
				t.Fatal(err)
			}
			res := f.reconcile(t)
			if res.Failed != 1 {
				t.Fatalf("pass %+v", res)
			}
			if bundle {
				// The bundle was rolled back; the next pass applies the rest without the
				// failed flow, which waits for its retry time.
				if sw.NumFlows() != 0 {
					t.Fatalf("refused bundle applied %d flows", sw.NumFlows())
				}
				res = f.reconcile(t)
				if res.Adds != 4 || res.Deferred != 1 || res.Failed != 0 {
					t.Fatalf("pass after rollback %+v", res)
				}
			}
			if sw.NumFlows() != 4 {
				t.Fatalf("switch has %d flows", sw.NumFlows())
			}
			st := f.rec.Stats()
			if len(st.Failed) != 1 || st.Failed[0].Attempts != 1 || !strings.Contains(st.Failed[0].Err, "type 5 code 1") ||
				!strings.Contains(st.Failed[0].Flow, "table=2") || st.Errors != 1 {
				t.Fatalf("failure not reported with the flow: %+v", st)
			}
			// Before the retry time the flow is deferred, not resent.
			if res := f.reconcile(t); res.FlowMods() != 0 || res.Deferred != 1 {
				t.Fatalf("early pass %+v", res)
			}
			// Still full at the retry: attempts grow.
			time.Sleep(60 * time.Millisecond)
			if res := f.reconcile(t); res.Failed != 1 {
				t.Fatalf("retry pass %+v", res)
			}
			if st := f.rec.Stats(); len(st.Failed) != 1 || st.Failed[0].Attempts != 2 {
				t.Fatalf("stats after retry %+v", st.Failed)
			}
		})
	}
}

func TestSetDesiredRefusesBadInput(t *testing.T) {
	rec := NewReconciler(zaptest.NewLogger(t), 1, ReconcilerConfig{CookieMask: ownMask, CookieValue: ownValue})
	if err := rec.SetDesired(testFlows()); err != nil {
		t.Fatal(err)
	}
	dup := testFlows()
	d := dup[2]
	d.Actions = []ofproto.Action{ofproto.Output{Port: 7}}
	dup = append(dup, d)
	notOurs := testFlows()
	notOurs[0].Cookie = foreign
	badPrereq := testFlows()
	badPrereq[0].Match = ofproto.Match{ofproto.IPv4Dst(netip.MustParseAddr("10.0.0.1"))}
	badTable := testFlows()
	badTable[0].Table = ofproto.TableAll
	backGoto := testFlows()
	backGoto[2].HasGoto, backGoto[2].Goto = true, 0
	for name, flows := range map[string][]ofproto.Flow{"duplicate key": dup, "foreign cookie": notOurs,
		"missing prerequisite": badPrereq, "table 255": badTable, "goto backwards": backGoto} {
		if err := rec.SetDesired(flows); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if err := rec.SetParts(map[string][]ofproto.Flow{"other": flows}, false); err == nil {
			t.Errorf("%s: accepted by SetParts", name)
		}
	}
	if got := rec.Desired(); len(got) != 5 {
		t.Fatalf("refused input changed the desired set: %d flows", len(got))
	}
}

func TestReconcilerPartUpdateAndBackgroundAttach(t *testing.T) {
	h := newHarness(t, Config{Reconciler: ReconcilerConfig{CookieMask: ownMask, CookieValue: ownValue}})
	rec := h.srv.Reconciler(0x47)
	if err := rec.SetDesired(testFlows()); err != nil {
		t.Fatal(err)
	}
	sw := newSwitch(t, 0x47)
	h.connect(sw) // attach happens on connect
	eventually(t, "flows installed in the background", func() bool { return sw.NumFlows() == 5 })
	extra := ofproto.Flow{Table: 4, Priority: 1, Cookie: ownValue | 5, Actions: []ofproto.Action{ofproto.Output{Port: 1}}}
	want := append(testFlows()[1:], extra)
	if err := rec.SetParts(map[string][]ofproto.Flow{"": want}, false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "update applied", func() bool {
		got, _ := sw.DumpFlows()
		return strings.Count(got, "\n") == 5 && strings.Contains(got, "table=4")
	})
	assertSwitchHas(t, sw, want)
	// Reconnect: dump, nothing to send.
	before := sw.Counts()
	sw.Disconnect()
	h.runSwitch(sw)
	eventually(t, "resynced after reconnect", func() bool { st := rec.Stats(); return st.Dumps == 2 && st.LastError == "" })
	if changed(before, sw.Counts()) {
		t.Fatalf("reconnect sent flow-mods: %+v -> %+v", before, sw.Counts())
	}
}

func TestReconcileLargeDiffUsesBundle(t *testing.T) {
	f := newRecFixture(t, ReconcilerConfig{BundleThreshold: 100}, nil)
	var flows []ofproto.Flow
	for i := range 500 {
		flows = append(flows, ofproto.Flow{Table: uint8(i % 3), Priority: 100, Cookie: ownValue | uint64(i),
			Match:   ofproto.Match{ofproto.InPort(uint32(i%7 + 1)), ofproto.EthDst(mac(byte(i))), ofproto.VLANVID(uint16(i))},
			Actions: []ofproto.Action{ofproto.PopVLAN{}, ofproto.Output{Port: uint32(i%5 + 1)}}})
	}
	if err := f.rec.SetDesired(flows); err != nil {
		t.Fatal(err)
	}
	res := f.reconcile(t)
	if !res.Bundled || res.Adds != 500 || f.sw.Counts().Bundles != 1 {
		t.Fatalf("pass %+v, switch %+v", res, f.sw.Counts())
	}
	if f.sw.NumFlows() != 500 {
		t.Fatalf("%d flows", f.sw.NumFlows())
	}
	// Small change: plain flow-mods.
	flows[0].Actions = []ofproto.Action{ofproto.Output{Port: 9}}
	if err := f.rec.SetDesired(flows); err != nil {
		t.Fatal(err)
	}
	if res := f.reconcile(t); res.Bundled || res.Modifies != 1 {
		t.Fatalf("small pass %+v", res)
	}
}

func TestReconcileFallsBackWithoutBundles(t *testing.T) {
	sw := ofsim.New(zaptest.NewLogger(t), ofsim.Config{DPID: 0x48, NumTables: 32, NoBundles: true})
	f := newRecFixture(t, ReconcilerConfig{AlwaysBundle: true}, sw)
	if err := f.rec.SetDesired(testFlows()); err != nil {
		t.Fatal(err)
	}
	res := f.reconcile(t)
	if res.Bundled || res.Adds != 5 || res.Failed != 0 {
		t.Fatalf("pass %+v", res)
	}
	assertSwitchHas(t, sw, testFlows())
	if st := f.rec.Stats(); st.Bundles != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A controller that restarts knows nothing of a switch's flows until its apps have computed
// them: attaching a reconciler that was never given a desired set must not touch the switch
// (an empty desired set would delete every owned flow and drop traffic).
func TestUnprimedReconcilerSendsNothing(t *testing.T) {
	h := newHarness(t, Config{Reconciler: ReconcilerConfig{CookieMask: ownMask, CookieValue: ownValue}})
	sw := newSwitch(t, 0x48)
	for _, f := range testFlows() {
		if err := sw.AddFlow(f); err != nil {
			t.Fatal(err)
		}
	}
	before := sw.Counts()
	rec := h.srv.Reconciler(0x48)
	h.connect(sw)
	time.Sleep(100 * time.Millisecond) // give a wrongly started pass the time to act
	if changed(before, sw.Counts()) || sw.NumFlows() != len(testFlows()) {
		t.Fatalf("unprimed reconciler changed the switch: %+v -> %+v, %d flows", before, sw.Counts(), sw.NumFlows())
	}
	if err := rec.SetDesired(testFlows()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "first pass after SetDesired", func() bool { return rec.Stats().Reconciles >= 1 })
	if changed(before, sw.Counts()) {
		t.Fatalf("identical desired set sent flow-mods: %+v -> %+v", before, sw.Counts())
	}
}

// changed reports whether a switch's flow tables were written to between two counts:
// flow-mods of any kind or bundles (dumps, barriers and reconnections are not writes).
func changed(before, after ofsim.Counts) bool {
	return after.Add != before.Add || after.Modify != before.Modify || after.ModifyStrict != before.ModifyStrict ||
		after.Delete != before.Delete || after.DeleteStrict != before.DeleteStrict || after.Bundles != before.Bundles
}

// SetParts replaces the parts it is given and keeps the others; complete drops the rest; a
// key held by two parts is refused and changes nothing.
func TestSetParts(t *testing.T) {
	rec := NewReconciler(zaptest.NewLogger(t), 1, ReconcilerConfig{CookieMask: ownMask, CookieValue: ownValue})
	fs := testFlows()
	keys := func() []string {
		var out []string
		for _, f := range rec.Desired() {
			out = append(out, f.String())
		}
		return out
	}
	if err := rec.SetParts(map[string][]ofproto.Flow{"a": fs[:2], "b": fs[2:4], "c": fs[4:]}, true); err != nil {
		t.Fatal(err)
	}
	if got := keys(); len(got) != 5 {
		t.Fatalf("desired %v, want 5 flows", got)
	}
	if err := rec.SetParts(map[string][]ofproto.Flow{"b": fs[2:3]}, false); err != nil {
		t.Fatal(err)
	}
	if got := keys(); len(got) != 4 || slices.Contains(got, fs[3].String()) {
		t.Fatalf("after replacing part b: %v", got)
	}
	before := keys()
	if err := rec.SetParts(map[string][]ofproto.Flow{"c": fs[:1]}, false); err == nil {
		t.Fatal("a key of part a accepted in part c")
	}
	if err := rec.SetParts(map[string][]ofproto.Flow{"x": fs[4:], "y": fs[4:]}, false); err == nil {
		t.Fatal("one key in two new parts accepted")
	}
	if got := keys(); !slices.Equal(got, before) {
		t.Fatalf("refused update changed the desired set: %v -> %v", before, got)
	}
	// Moving a flow from one part to another in one call is fine.
	if err := rec.SetParts(map[string][]ofproto.Flow{"a": fs[1:2], "c": append([]ofproto.Flow{fs[0]}, fs[4:]...)}, false); err != nil {
		t.Fatal(err)
	}
	if err := rec.SetParts(map[string][]ofproto.Flow{"c": fs[4:]}, true); err != nil {
		t.Fatal(err)
	}
	if got := keys(); len(got) != 1 || got[0] != fs[4].String() {
		t.Fatalf("after a complete set of part c: %v", got)
	}
}

// The diff after SetParts looks only at the keys that changed, and finds what a diff of
// every key finds.
func TestPartialDiffEqualsFullDiff(t *testing.T) {
	rec := NewReconciler(zaptest.NewLogger(t), 1, ReconcilerConfig{CookieMask: ownMask, CookieValue: ownValue})
	all := ofsim.GenerateFlows(400, 3)
	for i := range all {
		all[i].Cookie = ownValue | uint64(i%7)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	opsOf := func(full bool) []string {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		saved := rec.fullDiff
		rec.fullDiff = full
		ops, _ := rec.diffLocked(time.Now())
		rec.fullDiff = saved
		var out []string
		for _, o := range ops {
			out = append(out, o.kind.String()+" "+o.flow.String())
		}
		slices.Sort(out)
		return out
	}
	for step := range 50 {
		parts := map[string][]ofproto.Flow{}
		for range 1 + rng.IntN(3) {
			p := fmt.Sprint(rng.IntN(8))
			var fs []ofproto.Flow
			for i := rng.IntN(40); i < len(all); i += 8 + rng.IntN(40) {
				if fmt.Sprint(i%8) == p {
					f := all[i]
					if rng.IntN(4) == 0 {
						f.Cookie ^= 1
					}
					fs = append(fs, f)
				}
			}
			parts[p] = fs
		}
		if err := rec.SetParts(parts, step == 0); err != nil {
			t.Fatal(err)
		}
		partial, full := opsOf(false), opsOf(true)
		if !slices.Equal(partial, full) {
			t.Fatalf("step %d: partial diff %d ops, full diff %d ops", step, len(partial), len(full))
		}
		// Install the difference, as a pass would.
		rec.mu.Lock()
		ops, _ := rec.diffLocked(time.Now())
		rec.fullDiff, rec.pending = false, map[ofproto.FlowKey]struct{}{}
		for _, o := range ops {
			if o.kind == opDelete {
				delete(rec.installed, o.key)
			} else {
				rec.installed[o.key] = o.flow
			}
		}
		rec.mu.Unlock()
		if left := opsOf(true); len(left) != 0 {
			t.Fatalf("step %d: %d ops left after installing", step, len(left))
		}
	}
}

// A bridge realizes a revision once a pass installed all of its desired set: with a flow
// refused (a full table), it stays at the last revision it holds entirely.
func TestRealizedRevision(t *testing.T) {
	sw := ofsim.New(zaptest.NewLogger(t), ofsim.Config{DPID: 0x47, NumTables: 32, MaxFlows: 5})
	f := newRecFixture(t, ReconcilerConfig{BundleThreshold: -1, RetryBase: time.Hour}, sw)
	flows := testFlows()
	if err := f.rec.Set(Update{Revision: 3, Parts: map[string][]ofproto.Flow{"a": flows[:4]}, Complete: true}); err != nil {
		t.Fatal(err)
	}
	if st := f.rec.Stats(); st.DesiredRevision != 3 || st.RealizedRevision != 0 {
		t.Fatalf("before a pass: %+v", st)
	}
	f.reconcile(t)
	if st := f.rec.Stats(); st.DesiredRevision != 3 || st.RealizedRevision != 3 {
		t.Fatalf("after a pass: desired r%d realized r%d, want r3 r3", st.DesiredRevision, st.RealizedRevision)
	}
	// Revision 4 adds two flows; the switch holds at most 5: one is refused.
	extra := flows[4]
	extra.Priority++
	if err := f.rec.Set(Update{Revision: 4, Parts: map[string][]ofproto.Flow{"b": {flows[4], extra}}}); err != nil {
		t.Fatal(err)
	}
	if res := f.reconcile(t); res.Failed != 1 {
		t.Fatalf("pass %+v, want one refused flow", res)
	}
	if st := f.rec.Stats(); st.DesiredRevision != 4 || st.RealizedRevision != 3 {
		t.Fatalf("with a refused flow: desired r%d realized r%d, want r4 r3", st.DesiredRevision, st.RealizedRevision)
	}
	// Revision 5 drops both: realized.
	if err := f.rec.Set(Update{Revision: 5, Parts: map[string][]ofproto.Flow{"b": nil}}); err != nil {
		t.Fatal(err)
	}
	f.reconcile(t)
	if st := f.rec.Stats(); st.RealizedRevision != 5 {
		t.Fatalf("after the fix: realized r%d, want r5 (%+v)", st.RealizedRevision, st)
	}
}
