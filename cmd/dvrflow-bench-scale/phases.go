package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apiclient"
	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/topology"
)

// coldResult is what the cold start measured.
type coldResult struct {
	Converged     time.Duration // from the first connection to the last flow-mod of a verified fleet
	Verified      time.Duration // until the harness had verified every bridge
	FlowMods      int64
	FlowsPerHost  [3]int // min, p50, max
	FlowsTotal    int
	Locality      int // hosts whose flows name a network they do not carry
	LocalityNotes []string
}

// coldStart waits until every bridge holds exactly its desired flows (computed from the
// database and the simulator's ports, not asked of the controller). The harness stays idle
// while flow-mods flow (its own computing would slow the controller down on this machine):
// it verifies once the whole fleet has been quiet for settle, and again after the next
// quiet spell for the bridges that did not match yet. The time of convergence is that of
// the last flow-mod a verified bridge received.
func coldStart(ctx context.Context, log *zap.Logger, store *db.Store, f *fleet, d interface{ alive() error }, start time.Time, timeout, settle time.Duration) (coldResult, *topology.View, error) {
	var res coldResult
	verified := map[*simBridge]time.Time{}
	bridges := f.all()
	deadline := start.Add(timeout)
	var v *topology.View
	var last []string
	checkedAt := time.Time{}
	for len(verified) < len(bridges) {
		if err := errors.Join(d.alive(), f.alive()); err != nil {
			return res, nil, err
		}
		if time.Now().After(deadline) {
			return res, nil, fmt.Errorf("cold start: %d of %d bridges hold their desired flows after %v; e.g. %s",
				len(verified), len(bridges), timeout, strings.Join(last, "; "))
		}
		select {
		case <-ctx.Done():
			return res, nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		ready := 0
		for _, b := range bridges {
			if st := b.state(); st.connected && !st.lastMod.IsZero() {
				ready++
			}
		}
		lastMod := time.Unix(0, f.lastNano.Load())
		if ready < len(bridges) || time.Since(lastMod) < settle || !lastMod.After(checkedAt) {
			continue
		}
		checkedAt = time.Now()
		f.sync()
		var err error
		if v, _, err = view(ctx, store); err != nil {
			return res, nil, err
		}
		var todo []*simBridge
		for _, b := range bridges {
			if _, ok := verified[b]; !ok {
				todo = append(todo, b)
			}
		}
		ok, notes, err := verifyAll(v, todo)
		if err != nil {
			return res, nil, err
		}
		for _, b := range ok {
			verified[b] = b.state().lastMod
		}
		if len(notes) > 0 {
			last = notes
		}
		log.Info("cold start", zap.Int("verified", len(verified)), zap.Int("bridges", len(bridges)),
			zap.Duration("elapsed", time.Since(start).Round(time.Millisecond)), zap.Duration("check", time.Since(checkedAt).Round(time.Millisecond)))
	}
	res.Verified = time.Since(start)
	for _, t := range verified {
		res.Converged = max(res.Converged, t.Sub(start))
	}
	res.FlowMods = f.totalFlowMods()
	var perHost []int
	for _, h := range f.names {
		n := 0
		for _, br := range topology.Bridges() {
			bn, err := f.hosts[h].bridges[br].sw.NumFlows()
			if err != nil {
				return res, nil, fmt.Errorf("host %s %s: %w", h, br, err)
			}
			n += bn
		}
		perHost = append(perHost, n)
		res.FlowsTotal += n
	}
	slices.Sort(perHost)
	res.FlowsPerHost = [3]int{perHost[0], perHost[len(perHost)/2], perHost[len(perHost)-1]}
	return res, v, nil
}

// verifyAll diffs bridges against View v on every CPU and returns those that match, and a
// few notes on those that do not.
func verifyAll(v *topology.View, bridges []*simBridge) (ok []*simBridge, notes []string, err error) {
	type result struct {
		b    *simBridge
		note string
		err  error
	}
	work := make(chan *simBridge)
	out := make(chan result)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				missing, extra, ex, err := diff(v, b)
				r := result{b: b, err: err}
				if err == nil && missing+extra > 0 {
					r.note = fmt.Sprintf("%s %s: %d missing, %d extra: %s", b.host, b.br, missing, extra, strings.Join(ex, "; "))
				}
				out <- r
			}
		}()
	}
	go func() {
		for _, b := range bridges {
			work <- b
		}
		close(work)
		wg.Wait()
		close(out)
	}()
	for r := range out {
		switch {
		case r.err != nil:
			err = errors.Join(err, r.err)
		case r.note == "":
			ok = append(ok, r.b)
		case len(notes) < 3:
			notes = append(notes, r.note)
		}
	}
	return ok, notes, err
}

// locality checks that no host's flows name a network the host does not carry.
func locality(v *topology.View, topo *topology.Topology, f *fleet) (bad int, notes []string, err error) {
	ids := make([]string, 0, len(topo.Networks))
	for _, n := range topo.Networks {
		ids = append(ids, n.ID)
	}
	byVNI := vniIndex(v, ids)
	for _, h := range f.names {
		want := carried(v, h)
		seen := map[string]bool{}
		for _, br := range []topology.Bridge{topology.BrInt, topology.BrTun} {
			_, fs, err := f.hosts[h].bridges[br].portsAndFlows()
			if err != nil {
				return 0, nil, err
			}
			nets, err := networksInFlows(v, h, br, fs, byVNI)
			if err != nil {
				return 0, nil, fmt.Errorf("host %s %s: %w", h, br, err)
			}
			for n := range nets {
				seen[n] = true
			}
		}
		extra := map[string]bool{}
		for n := range seen {
			if !want[n] {
				extra[n] = true
			}
		}
		if len(extra) > 0 {
			bad++
			if len(notes) < 3 {
				notes = append(notes, fmt.Sprintf("%s carries no %s", h, setString(extra)))
			}
		}
	}
	return bad, notes, nil
}

// restartResult is what the controller restart measured.
type restartResult struct {
	Up          time.Duration // dvrflowd answering its API again
	Reconnected time.Duration // every bridge in a new session
	Dumped      time.Duration // every bridge's flows dumped by the new controller
	APIConfirm  time.Duration // switch API: every switch reconciled after the restart (0: no switch API)
	FlowMods    int64         // flow-mods received by all bridges from the kill to the end
	Usage       usage
}

// switchList is the answer of GET /v2.0/dvr-switches (the fields used here).
type switchList struct {
	Switches []struct {
		DPID            string `json:"dpid"`
		LastReconcileAt string `json:"last_reconcile_at"`
		FlowsMissing    int    `json:"flows_missing"`
		FlowsExtra      int    `json:"flows_extra"`
	} `json:"dvr_switches"`
}

// restart SIGKILLs dvrflowd, starts it again and times the reconciliation of every bridge.
func restart(ctx context.Context, log *zap.Logger, api *apiclient.Client, f *fleet, d *daemon, quiet, timeout time.Duration) (restartResult, error) {
	var res restartResult
	bridges := f.all()
	before := map[*simBridge]int{}
	for _, b := range bridges {
		before[b] = b.state().connectedN
	}
	mods0 := f.totalFlowMods()
	t0 := time.Now()
	if err := d.kill(syscall.SIGKILL); err != nil {
		return res, fmt.Errorf("kill dvrflowd: %w", err)
	}
	if err := d.start(ctx); err != nil {
		return res, err
	}
	res.Up = time.Since(t0)
	deadline := t0.Add(timeout)
	for {
		reconnected, dumped := 0, 0
		var lastDump time.Time
		for _, b := range bridges {
			st := b.state()
			if st.connectedN > before[b] && st.connected {
				reconnected++
			}
			if st.lastDump.After(t0) {
				dumped++
				lastDump = maxTime(lastDump, st.lastDump)
			}
		}
		if dumped == len(bridges) && reconnected == len(bridges) {
			res.Dumped = lastDump.Sub(t0)
			res.Reconnected = res.Dumped
			break
		}
		if err := errors.Join(d.alive(), f.alive()); err != nil {
			return res, err
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("restart: %d of %d bridges reconnected, %d dumped after %v", reconnected, len(bridges), dumped, timeout)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	// The switch API, when dvrflowd has it, says when each switch was reconciled.
	for {
		var sl switchList
		code, err := api.Do(ctx, http.MethodGet, "/v2.0/dvr-switches", nil, &sl)
		if code == http.StatusNotFound {
			break
		}
		if err != nil {
			return res, err
		}
		done := 0
		for _, s := range sl.Switches {
			// RFC 3339 times may have whole seconds only: compare at that resolution.
			at, err := time.Parse(time.RFC3339Nano, s.LastReconcileAt)
			if err == nil && !at.Before(t0.Truncate(time.Second)) && s.FlowsMissing == 0 && s.FlowsExtra == 0 {
				done++
			}
		}
		if done >= len(bridges) {
			res.APIConfirm = time.Since(t0) // when this poll saw it: an upper bound
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("restart: the switch API says %d of %d switches reconciled after %v", done, len(bridges), timeout)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	// Late flow-mods would count: wait for a quiet spell before reading the counters.
	waitQuiet(ctx, f, quiet, time.Now().Add(quiet*10))
	res.FlowMods = f.totalFlowMods() - mods0
	var err error
	res.Usage, err = d.usage()
	log.Info("restart done", zap.Duration("dumped", res.Dumped), zap.Int64("flow_mods", res.FlowMods))
	return res, err
}

// waitQuiet returns once no flow-mod or barrier event happened for d (or at until).
func waitQuiet(ctx context.Context, f *fleet, d time.Duration, until time.Time) {
	defer f.sync()
	for time.Now().Before(until) && ctx.Err() == nil {
		if time.Since(time.Unix(0, f.lastNano.Load())) >= d {
			return
		}
		time.Sleep(d / 10)
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// boundResult is what the port-bound benchmark measured.
type boundResult struct {
	N                  int
	P50, P99, Max      time.Duration
	APIP50, APIP99     time.Duration // the POST /v2.0/ports call alone
	FirstP50, FirstP99 time.Duration // from the call to the first flow-mod anywhere
	Unacked            int           // touched bridges without a barrier reply after their last flow-mod
	BridgesTouched     float64       // per port, average
	BridgesTouchedMax  int
	HostsTouched       float64
	HostsShould        float64
	Outside            int // ports that touched a host outside the set that should change
	OutsideNotes       []string
	PlanChanges        int // ports whose host needed a new qrouter (links plugged by the helper)
}

// portBound binds n ports one after the other and times each until every bridge it
// changed has acknowledged its flows with a barrier reply.
func portBound(ctx context.Context, log *zap.Logger, api *apiclient.Client, v *topology.View, f *fleet, hosts []hostSpec, networks []string, n int, seed int64, quiet time.Duration) (boundResult, error) {
	res := boundResult{N: n}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x5ca1e))
	carriers := map[string]map[string]bool{} // network -> hosts carrying it
	routerHosts := map[string]map[string]bool{}
	routerNets := map[string][]string{}
	routerOf := map[string]string{}
	for _, h := range f.names {
		for nw := range carried(v, h) {
			if carriers[nw] == nil {
				carriers[nw] = map[string]bool{}
			}
			carriers[nw][h] = true
		}
		for _, r := range v.RoutersOn(h) {
			if routerHosts[r] == nil {
				routerHosts[r] = map[string]bool{}
			}
			routerHosts[r][h] = true
		}
	}
	for id, r := range v.Routers() {
		for _, s := range r.Interfaces {
			routerNets[id] = append(routerNets[id], s.NetworkID)
			routerOf[s.NetworkID] = id
		}
	}
	// Hosts with members of each security group: the bench's groups (each project's
	// default, the shared one) name themselves as remote, so a new member's address
	// changes flows on the hosts of the other members.
	groupHosts := map[string]map[string]bool{}
	for _, p := range v.Ports() {
		for _, g := range p.SecurityGroups {
			if p.HostID != "" && topology.Firewalled(p.Port) {
				if groupHosts[g] == nil {
					groupHosts[g] = map[string]bool{}
				}
				groupHosts[g][p.HostID] = true
			}
		}
	}
	bridges := f.all()
	var lats, apiLats, firstLats []time.Duration
	for i := range n {
		h := hosts[rng.IntN(len(hosts))].Name
		nw := networks[rng.IntN(len(networks))]
		r := routerOf[nw]
		needPlan := r != "" && !routerHosts[r][h]
		var planRev int64 = -1
		if needPlan {
			var pr struct {
				Plan plan.Plan `json:"plan"`
			}
			if _, err := api.Do(ctx, http.MethodGet, "/v2.0/dvr-hosts/"+h+"/plan", nil, &pr); err != nil {
				return res, err
			}
			planRev = pr.Plan.Revision
		}
		f.firstNano.Store(0)
		t0 := time.Now()
		var created struct {
			Port struct {
				ID             string   `json:"id"`
				SecurityGroups []string `json:"security_groups"`
			} `json:"port"`
		}
		body := map[string]any{"port": map[string]any{"network_id": nw, "binding:host_id": h, "tenant_id": v.Network(nw).ProjectID,
			"device_owner": "compute:nova", "device_id": fmt.Sprintf("bench-vm-%d", i), "name": fmt.Sprintf("bench-%d", i)}}
		if _, err := api.Do(ctx, http.MethodPost, "/v2.0/ports", body, &created); err != nil {
			return res, err
		}
		apiLats = append(apiLats, time.Since(t0))
		brInt := f.hosts[h].bridges[topology.BrInt]
		plugged := []string{apps.VMPortName(created.Port.ID)}
		if err := brInt.addPort(plugged[0]); err != nil {
			return res, err
		}
		if needPlan {
			res.PlanChanges++
			var pr struct {
				Plan plan.Plan `json:"plan"`
			}
			code, err := api.Do(ctx, http.MethodGet, fmt.Sprintf("/v2.0/dvr-hosts/%s/plan?after_revision=%d&timeout=10", h, planRev), nil, &pr)
			if err != nil {
				return res, err
			}
			if code == http.StatusNotModified {
				return res, fmt.Errorf("port %d: host %s should have gained qrouter-%s but its plan did not change in 10 s", i, h, r)
			}
			for _, ns := range pr.Plan.Namespaces {
				for _, l := range ns.Links {
					if l.Bridge == string(topology.BrInt) && !f.hosts[h].plugged[l.Name] {
						plugged = append(plugged, plan.OVSPeerName(l.Name))
					}
					if err := f.plug(h, l); err != nil {
						return res, err
					}
				}
			}
		}
		// The change is not over before the controller switched every port plugged for it:
		// those flows come with the port-status, at times after a pause longer than
		// settle's quiet spell, and would otherwise count for the next port (on a host
		// outside its set).
		if err := awaitSwitched(ctx, brInt.portsAndFlows, plugged, 10*time.Second); err != nil {
			return res, fmt.Errorf("port %d: %s %s: %w", i, h, topology.BrInt, err)
		}
		c := settle(f, bridges, t0, quiet)
		touched, worst, touchedHosts, how := c.bridges, c.worst, c.hosts, c.how
		res.Unacked += c.unacked
		if touched == 0 {
			return res, fmt.Errorf("port %d on %s: no bridge received a flow-mod within 10 s", i, h)
		}
		lats = append(lats, worst)
		firstLats = append(firstLats, time.Unix(0, f.firstNano.Load()).Sub(t0))
		// The hosts that should change: h, and those carrying a network h carries now: the
		// port's, and every network of the port's router when h gained its qrouter.
		gained := []string{nw}
		if r != "" && !routerHosts[r][h] {
			if routerHosts[r] == nil {
				routerHosts[r] = map[string]bool{}
			}
			routerHosts[r][h] = true
			gained = append(gained, routerNets[r]...)
		}
		should := map[string]bool{h: true}
		for _, g := range created.Port.SecurityGroups {
			for gh := range groupHosts[g] {
				should[gh] = true
			}
			if groupHosts[g] == nil {
				groupHosts[g] = map[string]bool{}
			}
			groupHosts[g][h] = true
		}
		for _, gn := range gained {
			if carriers[gn] == nil {
				carriers[gn] = map[string]bool{}
			}
			carriers[gn][h] = true
			for ch := range carriers[gn] {
				should[ch] = true
			}
		}
		var outside []string
		for th := range touchedHosts {
			if !should[th] {
				outside = append(outside, fmt.Sprintf("%s (%s)", th, strings.Join(how[th], ", ")))
			}
		}
		if len(outside) > 0 {
			res.Outside++
			if len(res.OutsideNotes) < 3 {
				slices.Sort(outside)
				res.OutsideNotes = append(res.OutsideNotes, fmt.Sprintf("port %d on %s/%s (API answered at +%s, gained qrouter: %v) touched %s",
					i, h, nw, ms(apiLats[len(apiLats)-1]), needPlan, strings.Join(outside, "; ")))
			}
		}
		res.BridgesTouched += float64(touched)
		res.BridgesTouchedMax = max(res.BridgesTouchedMax, touched)
		res.HostsTouched += float64(len(touchedHosts))
		res.HostsShould += float64(len(should))
		if (i+1)%100 == 0 {
			log.Info("port bound", zap.Int("done", i+1), zap.Duration("last", worst))
		}
	}
	if n > 0 {
		res.BridgesTouched /= float64(n)
		res.HostsTouched /= float64(n)
		res.HostsShould /= float64(n)
		res.P50, res.P99, res.Max = quantiles(lats)
		res.APIP50, res.APIP99, _ = quantiles(apiLats)
		res.FirstP50, res.FirstP99, _ = quantiles(firstLats)
	}
	return res, nil
}

// awaitSwitched waits until every port named, read by state, is switched both ways: the
// local switching the controller installs once a plugged port's port-status arrives.
func awaitSwitched(ctx context.Context, state func() ([]ofsim.Port, []ofproto.Flow, error), names []string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ports, flows, err := state()
		if err != nil {
			return err
		}
		left := unswitched(ports, flows, names)
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not switched (no flow matches in_port or outputs to it) %v after it was plugged", strings.Join(left, ", "), timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// unswitched returns those of names that are not among ports, or that no flow matches as
// in_port, or that no flow outputs to.
func unswitched(ports []ofsim.Port, flows []ofproto.Flow, names []string) []string {
	in, out := map[uint32]bool{}, map[uint32]bool{}
	for _, f := range flows {
		if fd, ok := f.Match.Get(ofproto.ClassBasic, ofproto.OXMInPort); ok && len(fd.Value) == 4 {
			in[binary.BigEndian.Uint32(fd.Value)] = true
		}
		for _, a := range f.Actions {
			if o, ok := a.(ofproto.Output); ok {
				out[o.Port] = true
			}
		}
	}
	var left []string
	for _, name := range names {
		i := slices.IndexFunc(ports, func(p ofsim.Port) bool { return p.Name == name })
		if i < 0 || !in[ports[i].No] || !out[ports[i].No] {
			left = append(left, name)
		}
	}
	return left
}

// change is what one change did to the fleet.
type change struct {
	bridges, unacked int
	worst            time.Duration       // the last barrier reply after the change's last flow-mod
	hosts            map[string]bool     // hosts with a bridge that received a flow-mod
	how              map[string][]string // host -> "bridge +delay" of its touched bridges
}

// settle waits for a change started at t0 to be over (some flow-mod seen, then a quiet
// spell of at least quiet and at least half the time the change has taken so far: a slow
// controller may send a second wave after a pause, which must not count for the next
// change) and says which bridges it touched and when the last of them acknowledged.
func settle(f *fleet, bridges []*simBridge, t0 time.Time, quiet time.Duration) change {
	limit := t0.Add(10 * time.Second)
	for time.Now().Before(limit) {
		last := time.Unix(0, f.lastNano.Load())
		if last.After(t0) && time.Since(last) >= max(quiet, last.Sub(t0)/2) {
			break
		}
		time.Sleep(quiet / 10)
	}
	f.sync()
	c := change{hosts: map[string]bool{}, how: map[string][]string{}}
	for _, b := range bridges {
		st := b.state()
		if !st.lastMod.After(t0) {
			continue
		}
		c.bridges++
		c.hosts[b.host] = true
		c.how[b.host] = append(c.how[b.host], fmt.Sprintf("%s +%s: %s", b.br, ms(st.lastMod.Sub(t0)), b.modsSince(t0)))
		if st.lastAck.IsZero() {
			c.unacked++
			continue
		}
		c.worst = max(c.worst, st.lastAck.Sub(t0))
	}
	return c
}

// finalCheck diffs every bridge against its desired flows.
func finalCheck(ctx context.Context, store *db.Store, f *fleet) (bad int, notes []string, err error) {
	v, _, err := view(ctx, store)
	if err != nil {
		return 0, nil, err
	}
	all := f.all()
	ok, notes, err := verifyAll(v, all)
	return len(all) - len(ok), notes, err
}

// quantiles returns the median, the 99th percentile and the maximum of ds (sorted in place).
func quantiles(ds []time.Duration) (p50, p99, maxd time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds[min(len(ds)-1, len(ds)*99/100)], ds[len(ds)-1]
}
