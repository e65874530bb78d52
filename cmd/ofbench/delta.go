package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
	"github.com/dvrflow/dvrflow/testbed/ovsinst"
)

// deltaChange is one flow change of the delta benchmark, as both sides apply it.
type deltaChange struct {
	base    []ofproto.Flow // the flows the bridge holds before the change
	desired []ofproto.Flow // the full set after the change
	// baseParts is base in the parts the engine would hand it over in (Reconciler.SetParts):
	// each flow the change modifies or deletes in a part of its own, the others in one.
	// changeParts is the change as the engine hands it over: the parts that changed, with
	// their new flows (none for a deleted flow's part), and a new part of the adds.
	baseParts   map[string][]ofproto.Flow
	changeParts map[string][]ofproto.Flow
	changed     int    // flows in changeParts
	ofctl       string // the same change as an `ovs-ofctl --bundle add-flows` file
	// ofctlCookie is ofctl with the deletes in the form dvrflow's reconciler sent them before it used cookie mask 0:
	// strict, and also matching the flow's cookie exactly (cookie mask all ones).
	ofctlCookie string
	adds        int
	mods        int
	dels        int
}

// newDeltaChange builds base DVR-like flows and a change of n flows onto them: a third
// adds, a third modifies of actions (the output port moves), the rest deletes, spread
// evenly over the four tables of the base.
func newDeltaChange(base, n int) (*deltaChange, error) {
	nAdd, nMod := n/3, n/3
	nDel := n - nAdd - nMod
	if base < 4*(nMod+nDel) {
		return nil, fmt.Errorf("a change of %d flows needs a base of at least %d flows", n, 4*(nMod+nDel))
	}
	all := ofsim.GenerateFlows(base+nAdd, benchCookie)
	d := &deltaChange{base: all[:base], adds: nAdd, mods: nMod, dels: nDel}
	desired := slices.Clone(all) // base + the adds
	var sb, sc strings.Builder
	d.changeParts = map[string][]ofproto.Flow{"adds": slices.Clone(all[base:])}
	d.changed = nAdd
	partOf := map[int]string{} // base flow index -> its own part, for the changed ones
	for _, f := range all[base:] {
		line := "add " + f.String() + "\n"
		sb.WriteString(line)
		sc.WriteString(line)
	}
	deleted := make([]bool, len(desired))
	stride := base / (nMod + nDel)
	for j := range nMod + nDel {
		i := j * stride
		if j%2 == 0 && j/2 < nMod {
			// A modify: the flows of tables 1-3 end with an output, move it.
			if len(desired[i].Actions) == 0 {
				i++
			}
			f := desired[i]
			f.Actions = slices.Clone(f.Actions)
			last := len(f.Actions) - 1
			out, ok := f.Actions[last].(ofproto.Output)
			if !ok {
				return nil, fmt.Errorf("flow %s does not end with an output", f.String())
			}
			f.Actions[last] = ofproto.Output{Port: out.Port + 100}
			desired[i] = f
			partOf[i] = fmt.Sprintf("changed-%d", i)
			d.changeParts[partOf[i]] = []ofproto.Flow{f}
			d.changed++
			line := "modify_strict " + f.String() + "\n"
			sb.WriteString(line)
			sc.WriteString(line)
			continue
		}
		deleted[i] = true
		partOf[i] = fmt.Sprintf("changed-%d", i)
		d.changeParts[partOf[i]] = nil
		f := desired[i]
		f.Cookie = 0 // ovs-ofctl: a cookie without mask cannot be matched on in a delete
		s, _, _ := strings.Cut(f.String(), " actions=")
		sb.WriteString("delete_strict " + s + "\n")
		sc.WriteString(fmt.Sprintf("delete_strict cookie=%#x/-1,%s\n", desired[i].Cookie, s))
	}
	d.desired = make([]ofproto.Flow, 0, len(desired)-nDel)
	for i := range desired {
		if !deleted[i] {
			d.desired = append(d.desired, desired[i])
		}
	}
	if len(d.desired) != base+nAdd-nDel {
		return nil, fmt.Errorf("changed set has %d flows, want %d", len(d.desired), base+nAdd-nDel)
	}
	d.baseParts = map[string][]ofproto.Flow{}
	for i, f := range d.base {
		part, ok := partOf[i]
		if !ok {
			part = "unchanged"
		}
		d.baseParts[part] = append(d.baseParts[part], f)
	}
	d.ofctl, d.ofctlCookie = sb.String(), sc.String()
	return d, nil
}

// runDelta applies a change of n flows onto a bridge holding base flows, runs times, with
// dvrflow's reconciler and with `ovs-ofctl --bundle` (also with the deletes in the form the
// reconciler sends them, to tell OVS's cost from dvrflow's), rotating which goes first,
// each on a fresh bridge loaded with the base flows.
func runDelta(ctx context.Context, log *zap.Logger, base, n, runs int) error {
	ch, err := newDeltaChange(base, n)
	if err != nil {
		return err
	}
	inst, stop, err := startOVS(ctx, log, "delta")
	if err != nil {
		return err
	}
	defer stop()
	baseFile := filepath.Join(inst.Dir(), "base.txt")
	changeFile := filepath.Join(inst.Dir(), "change.txt")
	cookieFile := filepath.Join(inst.Dir(), "change-cookie.txt")
	if err := writeFlowFile(baseFile, ch.base); err != nil {
		return err
	}
	for file, body := range map[string]string{changeFile: ch.ofctl, cookieFile: ch.ofctlCookie} {
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			return fmt.Errorf("writing flow file: %w", err)
		}
	}
	want := base + ch.adds - ch.dels

	fmt.Printf("delta: %d flow changes (%d adds, %d modifies of actions, %d deletes) onto a bridge holding %d flows, OVS %s\n",
		n, ch.adds, ch.mods, ch.dels, base, ovsVersion(ctx, inst))
	fmt.Println("  dvrflow:    controller.Reconciler, after it has dumped the bridge (untimed): SetParts with the")
	fmt.Printf("              %d changed parts holding %d flows (validating and packing them: what the engine\n", len(ch.changeParts), ch.changed)
	fmt.Printf("              hands over, only the changed parts) + Reconcile (diffing the touched keys against the\n")
	fmt.Printf("              %d installed, encoding, one ONF bundle open/adds/commit, barrier reply), in-process\n", base)
	fmt.Println("  ovs-ofctl:  `ovs-ofctl -O OpenFlow13 --bundle add-flows` of a file of add/modify_strict/delete_strict")
	fmt.Println("              lines, wall clock (process start, parsing, connection, bundle, exit)")
	fmt.Println("  ofctl+ck:   the same, with each delete_strict also matching the cookie exactly (cookie=C/-1), the")
	fmt.Println("              form dvrflow's reconciler sent before it used cookie mask 0: what OVS charges for it")
	const nSides = 3
	names := [nSides]string{"dvrflow", "ovs-ofctl", "ofctl+ck"}
	var sum [nSides]time.Duration
	var ok [nSides]int
	for r := range runs {
		var took [nSides]time.Duration
		var dumps [nSides]string
		var errs [nSides]error
		for k := range nSides {
			side := (k + r) % nSides
			bridge, dpid := fmt.Sprintf("od%d%d", side, r), uint64(0xd000+side<<8+r)
			switch side {
			case 0:
				took[side], dumps[side], errs[side] = deltaDvrflow(ctx, log, inst, bridge, dpid, baseFile, ch, want)
			case 1:
				took[side], dumps[side], errs[side] = deltaOfctl(ctx, inst, bridge, dpid, baseFile, changeFile, base, want)
			default:
				took[side], dumps[side], errs[side] = deltaOfctl(ctx, inst, bridge, dpid, baseFile, cookieFile, base, want)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errs[side] != nil && side != 0 {
				return errs[side]
			}
		}
		line := fmt.Sprintf("run %d (%s first):", r+1, names[r%nSides])
		for side := range nSides {
			if errs[side] != nil {
				line += fmt.Sprintf("  %s FAILED (%v)", names[side], errs[side])
				continue
			}
			if dumps[side] != dumps[1] {
				return fmt.Errorf("run %d: %s and ovs-ofctl leave different flow tables", r+1, names[side])
			}
			sum[side] += took[side]
			ok[side]++
			line += fmt.Sprintf("  %s %8.1f ms", names[side], ms(took[side]))
		}
		if errs[0] == nil {
			line += fmt.Sprintf("  ratio dvrflow/ovs-ofctl %.2fx", took[0].Seconds()/took[1].Seconds())
		}
		fmt.Printf("%s  (flow tables identical after: %d flows)\n", line, want)
	}
	mean := func(side int) float64 { return ms(sum[side]) / float64(max(ok[side], 1)) }
	if ok[0] == 0 {
		fmt.Printf("mean: dvrflow failed every run; ovs-ofctl %.1f ms, ofctl+ck %.1f ms (target dvrflow <= 1.20x ovs-ofctl)\n", mean(1), mean(2))
		return errors.New("dvrflow failed every run")
	}
	fmt.Printf("mean: dvrflow %.1f ms (%d of %d runs), ovs-ofctl %.1f ms, ofctl+ck %.1f ms, ratio dvrflow/ovs-ofctl %.2fx (target <= 1.20x)\n",
		mean(0), ok[0], runs, mean(1), mean(2), mean(0)/mean(1))
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// dumpSorted returns the bridge's flows, one per line, sorted, without statistics.
func dumpSorted(ctx context.Context, inst *ovsinst.Instance, bridge string) (string, error) {
	out, err := inst.Ofctl(ctx, bridge, "--no-stats", "dump-flows")
	if err != nil {
		return "", err
	}
	lines := strings.Split(out, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n"), nil
}

// deltaDvrflow connects a fresh bridge to a controller, loads the base into it, lets the
// reconciler dump it (untimed), then times handing over the change (SetParts with only the
// parts that changed, as the engine does) + Reconcile.
func deltaDvrflow(ctx context.Context, log *zap.Logger, inst *ovsinst.Instance, bridge string, dpid uint64,
	baseFile string, ch *deltaChange, want int) (time.Duration, string, error) {
	sess, stop, err := controlledBridge(ctx, log, inst, bridge, dpid)
	if err != nil {
		return 0, "", err
	}
	defer stop()
	if _, err := addFlows(ctx, inst, bridge, baseFile, len(ch.base)); err != nil {
		return 0, "", err
	}
	rec := controller.NewReconciler(log, dpid, controller.ReconcilerConfig{})
	if err := rec.SetParts(ch.baseParts, true); err != nil {
		return 0, "", err
	}
	rec.Bind(sess)
	res, err := rec.Reconcile(ctx) // dumps the base: the warm state a running controller has
	if err != nil {
		return 0, "", err
	}
	if !res.Dumped || res.FlowMods() != 0 {
		return 0, "", fmt.Errorf("dvrflow warm-up pass over the base flows: %+v (want a dump and no flow-mods)", res)
	}

	if path := os.Getenv("OFBENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return 0, "", err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, "", err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	if err := rec.SetParts(ch.changeParts, false); err != nil {
		return 0, "", err
	}
	res, err = rec.Reconcile(ctx)
	took := time.Since(start)
	if err != nil {
		return 0, "", err
	}
	if res.Dumped || res.Adds != ch.adds || res.Modifies != ch.mods || res.Deletes != ch.dels || res.Failed != 0 {
		return 0, "", fmt.Errorf("dvrflow change pass: %+v, want %d adds, %d modifies, %d deletes", res, ch.adds, ch.mods, ch.dels)
	}
	if err := checkFlowCount(ctx, inst, bridge, want, "dvrflow"); err != nil {
		return 0, "", err
	}
	dump, err := dumpSorted(ctx, inst, bridge)
	return took, dump, err
}

// deltaOfctl loads the base into a fresh bridge and times `ovs-ofctl --bundle add-flows` of
// the change file.
func deltaOfctl(ctx context.Context, inst *ovsinst.Instance, bridge string, dpid uint64, baseFile, changeFile string, base, want int) (time.Duration, string, error) {
	if err := newBridge(ctx, inst, bridge, dpid); err != nil {
		return 0, "", err
	}
	defer dropBridge(ctx, inst, bridge)
	if _, err := addFlows(ctx, inst, bridge, baseFile, base); err != nil {
		return 0, "", err
	}
	took, err := addFlows(ctx, inst, bridge, changeFile, want)
	if err != nil {
		return 0, "", err
	}
	dump, err := dumpSorted(ctx, inst, bridge)
	return took, dump, err
}
