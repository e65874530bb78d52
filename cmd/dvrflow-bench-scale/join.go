package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apiclient"
	"github.com/dvrflow/dvrflow/topology"
)

// joinResult is the group-join benchmark: VM ports joining the shared security group (a
// remote group of its own members) one by one.
type joinResult struct {
	Members         int // members of the group before the first join
	N               int
	P50, P99, Max   time.Duration
	APIP50, APIP99  time.Duration // the API call alone (PUT /v2.0/ports/{id} answered)
	Unacked         int
	HostsTouched    float64 // per join, average
	HostsTouchedMax int
	HostsShould     float64 // hosts with a member of the group, and the joining port's
	FlowMods        float64 // flow-mods per join, average
	// DaemonCPU and SelfCPU are the CPU time per join of dvrflowd and of this tool (the
	// simulated switches, which share the machine's cores with the controller).
	DaemonCPU, SelfCPU time.Duration
	Outside            int // joins that touched a host outside that set
	OutsideNotes       []string
}

// groupJoin makes n VM ports that are not in group join it, one after the other, and times
// each until every bridge it changed has acknowledged its flows with a barrier reply. Only
// the hosts with members should change (the member flow of the new address), and the
// joining port's own host (its rules).
func groupJoin(ctx context.Context, log *zap.Logger, api *apiclient.Client, v *topology.View, f *fleet, group string, n int, seed int64, quiet time.Duration) (joinResult, error) {
	res := joinResult{N: n}
	memberHosts := map[string]bool{}
	for _, p := range v.GroupMembers(group) {
		res.Members++
		memberHosts[p.HostID] = true
	}
	var candidates []*topology.PortInfo
	for _, h := range f.names {
		for _, p := range v.PortsOn(h) {
			if topology.Firewalled(p.Port) && !slices.Contains(p.SecurityGroups, group) {
				candidates = append(candidates, p)
			}
		}
	}
	if len(candidates) < n {
		return res, fmt.Errorf("group join: %d ports outside the group, %d joins asked", len(candidates), n)
	}
	slices.SortFunc(candidates, func(a, b *topology.PortInfo) int { return strings.Compare(a.ID, b.ID) })
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6a6f696e)) // "join"
	rng.Shuffle(len(candidates), func(i, j int) { candidates[i], candidates[j] = candidates[j], candidates[i] })
	bridges := f.all()
	var lats, apiLats []time.Duration
	for i, p := range candidates[:n] {
		f.firstNano.Store(0)
		mods := flowModsOf(bridges)
		t0 := time.Now()
		body := map[string]any{"port": map[string]any{"security_groups": append(slices.Clone(p.SecurityGroups), group)}}
		if _, err := api.Do(ctx, http.MethodPut, "/v2.0/ports/"+p.ID, body, nil); err != nil {
			return res, fmt.Errorf("join %d (port %s): %w", i, p.ID, err)
		}
		apiLats = append(apiLats, time.Since(t0))
		c := settle(f, bridges, t0, quiet)
		if c.bridges == 0 {
			return res, fmt.Errorf("join %d (port %s on %s): no bridge received a flow-mod within 10 s", i, p.ID, p.HostID)
		}
		lats = append(lats, c.worst)
		res.FlowMods += float64(flowModsOf(bridges) - mods)
		res.Unacked += c.unacked
		memberHosts[p.HostID] = true
		var outside []string
		for h := range c.hosts {
			if !memberHosts[h] {
				outside = append(outside, fmt.Sprintf("%s (%s)", h, strings.Join(c.how[h], ", ")))
			}
		}
		if len(outside) > 0 {
			res.Outside++
			if len(res.OutsideNotes) < 3 {
				slices.Sort(outside)
				res.OutsideNotes = append(res.OutsideNotes, fmt.Sprintf("port %s on %s touched %s", p.ID, p.HostID, strings.Join(outside, "; ")))
			}
		}
		res.HostsTouched += float64(len(c.hosts))
		res.HostsTouchedMax = max(res.HostsTouchedMax, len(c.hosts))
		res.HostsShould += float64(len(memberHosts))
		log.Debug("group join", zap.Int("done", i+1), zap.Duration("last", c.worst), zap.Int("hosts", len(c.hosts)))
	}
	if n > 0 {
		res.HostsTouched /= float64(n)
		res.FlowMods /= float64(n)
		res.HostsShould /= float64(n)
		res.P50, res.P99, res.Max = quantiles(lats)
		res.APIP50, res.APIP99, _ = quantiles(apiLats)
	}
	return res, nil
}

// flowModsOf returns the flow-mods the bridges have received.
func flowModsOf(bridges []*simBridge) int64 {
	var n int64
	for _, b := range bridges {
		n += b.state().flowMods
	}
	return n
}

// selfCPU returns the CPU time (user and system) this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
