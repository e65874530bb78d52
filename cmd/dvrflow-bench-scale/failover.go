// Several controllers (-controllers N): how cold start splits the hosts among them, and
// the failover when the one mastering most hosts is SIGKILLed.

package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apiclient"
	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/switchapi"
)

// controller is one dvrflowd among several: its --controller-id, its OpenFlow address
// (the bridges' sessions to it carry that address) and its process.
type controller struct {
	id     string
	ofAddr string
	d      *daemon
}

// controllerID names the k-th controller (from 0): ctl1, ctl2, ...
func controllerID(k int) string { return fmt.Sprintf("ctl%d", k+1) }

// daemons are the dvrflowd processes of a run.
type daemons []*controller

// alive reports the early exit of any daemon not killed on purpose.
func (ds daemons) alive() error {
	var errs []error
	for _, c := range ds {
		if c.d.cmd != nil {
			errs = append(errs, c.d.alive())
		}
	}
	return errors.Join(errs...)
}

// usages reads every running daemon's usage, by controller id.
func (ds daemons) usages() (map[string]usage, error) {
	out := map[string]usage{}
	for _, c := range ds {
		if c.d.cmd == nil {
			continue
		}
		u, err := c.d.usage()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.id, err)
		}
		out[c.id] = u
	}
	return out, nil
}

// renewals reads how every running daemon's lease renewals went, from its own API (the
// answering controller is the only one that reports them), by controller id.
func (ds daemons) renewals(ctx context.Context, token string) (map[string]switchapi.Renewals, error) {
	out := map[string]switchapi.Renewals{}
	for _, c := range ds {
		if c.d.cmd == nil {
			continue
		}
		var cl switchapi.ControllerList
		if _, err := apiclient.New(c.d.apiURL, token, http.DefaultClient).Do(ctx, http.MethodGet, "/v2.0/dvr-controllers", nil, &cl); err != nil {
			return nil, fmt.Errorf("%s: controllers: %w", c.id, err)
		}
		for _, w := range cl.Controllers {
			if w.Self && w.Renewals != nil {
				out[c.id] = *w.Renewals
			}
		}
		if _, ok := out[c.id]; !ok {
			return nil, fmt.Errorf("%s: its /v2.0/dvr-controllers has no renewals of its own", c.id)
		}
	}
	return out, nil
}

// lapses adds up the lapses of rs.
func lapses(rs map[string]switchapi.Renewals) uint64 {
	var n uint64
	for _, r := range rs {
		n += r.Lapses
	}
	return n
}

// cpu is the CPU time of the running daemons together.
func (ds daemons) cpu() (time.Duration, error) {
	us, err := ds.usages()
	var t time.Duration
	for _, u := range us {
		t += u.CPU
	}
	return t, err
}

// split is how the hosts are shared among the controllers.
type split struct {
	Hosts      map[string]int // hosts mastered, by controller id (every controller listed)
	Unmastered []string       // hosts without a live master
}

// splitOf counts the hosts each controller masters; ids lists every controller, so that
// one with no host shows as 0.
func splitOf(ms []switchapi.Mastership, ids []string) split {
	s := split{Hosts: map[string]int{}}
	for _, id := range ids {
		s.Hosts[id] = 0
	}
	for _, m := range ms {
		if m.Controller == "" || !m.Live {
			s.Unmastered = append(s.Unmastered, m.Host)
			continue
		}
		s.Hosts[m.Controller]++
	}
	slices.Sort(s.Unmastered)
	return s
}

// busiest is the controller mastering most hosts (the first in order on a tie).
func (s split) busiest() string {
	best := ""
	for _, id := range sortedIDs(s.Hosts) {
		if best == "" || s.Hosts[id] > s.Hosts[best] {
			best = id
		}
	}
	return best
}

// String lists the split as "ctl1 1667, ctl2 1666, ctl3 1667".
func (s split) String() string {
	parts := make([]string, 0, len(s.Hosts))
	for _, id := range sortedIDs(s.Hosts) {
		parts = append(parts, fmt.Sprintf("%s %d", id, s.Hosts[id]))
	}
	return strings.Join(parts, ", ")
}

// masterships reads every host's master.
func masterships(ctx context.Context, api *apiclient.Client) ([]switchapi.Mastership, error) {
	var ml switchapi.MastershipList
	if _, err := api.Do(ctx, http.MethodGet, "/v2.0/dvr-controllers/masterships", nil, &ml); err != nil {
		return nil, fmt.Errorf("masterships: %w", err)
	}
	return ml.Masterships, nil
}

// controllerHosts reads the number of hosts each controller says it masters.
func controllerHosts(ctx context.Context, api *apiclient.Client) (map[string]int, error) {
	var cl switchapi.ControllerList
	if _, err := api.Do(ctx, http.MethodGet, "/v2.0/dvr-controllers", nil, &cl); err != nil {
		return nil, fmt.Errorf("controllers: %w", err)
	}
	out := map[string]int{}
	for _, c := range cl.Controllers {
		out[c.ID] = len(c.Hosts)
	}
	return out, nil
}

// coldSplit is the hosts' split when cold start completed.
type coldSplit struct {
	split
	Listed   map[string]int // each controller's count in /v2.0/dvr-controllers
	Usage    map[string]usage
	Renewals map[string]switchapi.Renewals
}

// checkSplit records how the hosts are shared when cold start completed, and each
// controller's usage then; a host without a live master fails the run.
func (r *report) checkSplit(ctx context.Context, api *apiclient.Client, ds daemons, token string) error {
	ids := make([]string, 0, len(ds))
	for _, c := range ds {
		ids = append(ids, c.id)
	}
	ms, err := masterships(ctx, api)
	if err != nil {
		return err
	}
	cs := coldSplit{split: splitOf(ms, ids)}
	if cs.Listed, err = controllerHosts(ctx, api); err != nil {
		return err
	}
	if cs.Usage, err = ds.usages(); err != nil {
		return err
	}
	if cs.Renewals, err = ds.renewals(ctx, token); err != nil {
		return err
	}
	r.split = &cs
	if n := lapses(cs.Renewals); n > 0 {
		r.fail("the controllers' leases lapsed %d times up to the end of cold start", n)
	}
	if len(cs.Unmastered) > 0 {
		r.fail("%d hosts without a master when cold start completed: %v", len(cs.Unmastered), head(cs.Unmastered, 5))
	}
	return nil
}

// head returns the first n of s.
func head(s []string, n int) []string { return s[:min(n, len(s))] }

// failoverResult is what the SIGKILL of the busiest controller measured.
type failoverResult struct {
	Victim        string
	Hosts         int                      // hosts it mastered
	P50, P99, Max time.Duration            // per host: a new master, its bridges dumped by it and exact
	NewMasters    map[string]int           // the victim's hosts by new master
	FlowMods      int64                    // received by every bridge from the kill to the end
	FlowModsBy    map[string]int64         // the same by controller id
	SlaveRefused  uint64                   // messages refused OFPBRC_IS_SLAVE in that time
	Unmastered    []string                 // hosts without a live master at the end
	Usage         map[string]usage         // the survivors at the end
	Split         split                    // every host's master at the end
	perHost       map[string]time.Duration // the victim's hosts: time until taken over
}

// failover SIGKILLs the controller mastering most hosts and times, per host it mastered,
// until a survivor masters it (GET /v2.0/dvr-controllers/masterships), has dumped each of
// its bridges and every bridge holds exactly its desired flows. retarget moves the
// harness's API calls to a survivor before the kill.
func failover(ctx context.Context, log *zap.Logger, api *apiclient.Client, rt *retarget, store *db.Store, f *fleet, ds daemons,
	quiet, timeout time.Duration) (failoverResult, error) {
	res := failoverResult{NewMasters: map[string]int{}, FlowModsBy: map[string]int64{}, perHost: map[string]time.Duration{}}
	ids := make([]string, 0, len(ds))
	byID := map[string]*controller{}
	for _, c := range ds {
		ids = append(ids, c.id)
		byID[c.id] = c
	}
	ms, err := masterships(ctx, api)
	if err != nil {
		return res, err
	}
	res.Victim = splitOf(ms, ids).busiest()
	victim := byID[res.Victim]
	oldTerm := map[string]int64{}
	for _, m := range ms {
		if m.Controller == res.Victim && m.Live && f.hosts[m.Host] != nil {
			oldTerm[m.Host] = m.Term
		}
	}
	res.Hosts = len(oldTerm)
	for _, c := range ds {
		if c != victim {
			rt.set(strings.TrimPrefix(c.d.apiURL, "http://"))
			break
		}
	}
	v, _, err := view(ctx, store)
	if err != nil {
		return res, err
	}
	mods0 := map[string]int64{}
	for _, c := range ds {
		mods0[c.id] = f.modsBy[c.ofAddr].Load()
	}
	total0 := f.totalFlowMods()
	refused0, err := f.slaveRefused()
	if err != nil {
		return res, err
	}
	t0 := time.Now()
	if err := victim.d.kill(syscall.SIGKILL); err != nil {
		return res, fmt.Errorf("kill %s: %w", victim.id, err)
	}
	deadline := t0.Add(timeout)
	for len(res.perHost) < len(oldTerm) {
		if err := errors.Join(ds.alive(), f.alive()); err != nil {
			return res, err
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("failover: %d of %d hosts of %s taken over after %v", len(res.perHost), len(oldTerm), victim.id, timeout)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		ms, err := masterships(ctx, api)
		if err != nil {
			return res, err
		}
		for _, m := range ms {
			old, mine := oldTerm[m.Host]
			c := byID[m.Controller]
			if _, done := res.perHost[m.Host]; !mine || done || c == nil || c == victim || !m.Live || m.Term <= old {
				continue
			}
			// Taken over once the new master dumped every bridge of the host (its
			// reconciler's first read) and they are exact: at the latest of its claim, those
			// dumps and any flow-mod after the kill.
			at, err := time.Parse(time.RFC3339Nano, m.ClaimedAt)
			if err != nil {
				at = t0
			}
			var bridges []*simBridge
			dumped := true
			for _, b := range f.hosts[m.Host].bridges {
				bridges = append(bridges, b)
				d := b.dumpedBy(c.ofAddr)
				if d.Before(t0) {
					dumped = false
				}
				at = maxTime(at, d)
				if st := b.state(); st.lastMod.After(t0) {
					at = maxTime(at, st.lastMod)
				}
			}
			if !dumped {
				continue
			}
			ok, _, err := verifyAll(v, bridges)
			if err != nil {
				return res, err
			}
			if len(ok) == len(bridges) {
				res.perHost[m.Host] = at.Sub(t0)
				res.NewMasters[c.id]++
			}
		}
	}
	waitQuiet(ctx, f, quiet, time.Now().Add(quiet*10))
	res.FlowMods = f.totalFlowMods() - total0
	for _, c := range ds {
		res.FlowModsBy[c.id] = f.modsBy[c.ofAddr].Load() - mods0[c.id]
	}
	refused, err := f.slaveRefused()
	if err != nil {
		return res, err
	}
	res.SlaveRefused = refused - refused0
	lats := make([]time.Duration, 0, len(res.perHost))
	for _, d := range res.perHost {
		lats = append(lats, d)
	}
	res.P50, res.P99, res.Max = quantiles(lats)
	if ms, err = masterships(ctx, api); err != nil {
		return res, err
	}
	res.Split = splitOf(ms, ids)
	delete(res.Split.Hosts, res.Victim)
	res.Unmastered = res.Split.Unmastered
	if res.Usage, err = ds.usages(); err != nil {
		return res, err
	}
	log.Info("failover done", zap.String("victim", victim.id), zap.Int("hosts", res.Hosts),
		zap.Duration("max", res.Max), zap.Int64("flow_mods", res.FlowMods))
	return res, nil
}

// sortedIDs returns m's keys in order.
func sortedIDs[V any](m map[string]V) []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int {
		// ctl2 before ctl10.
		return cmp.Or(cmp.Compare(len(a), len(b)), cmp.Compare(a, b))
	})
	return ids
}
