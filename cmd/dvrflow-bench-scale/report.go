package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dvrflow/dvrflow/switchapi"
)

// report collects every figure; print writes it as a table.
type report struct {
	load                           time.Duration
	loadRequests                   int64
	ports, networks, routers, fips int
	bridges                        int
	loadUsage, coldUsage, endUsage usage
	cold                           *coldResult
	restart                        *restartResult
	split                          *coldSplit      // several controllers: the hosts' split at cold start
	failover                       *failoverResult // several controllers: the busiest one SIGKILLed
	ctlEnd                         map[string]usage
	renewEnd                       map[string]switchapi.Renewals // several controllers: the survivors' lease renewals at the end
	simCold, simEnd                simUsage                      // the simulator's processes at cold start's convergence and at the end
	bound                          *boundResult
	join                           *joinResult
	finalBad                       int
	failures                       []string
	loadAvgStart, loadAvgEnd       string // the machine's load averages around the run
}

func (r *report) fail(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func gib(b int64) string { return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30)) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func (r *report) print(w io.Writer, cfg *config) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	row := func(k, v, target string) { fmt.Fprintf(tw, "%s\t%s\t%s\n", k, v, target) }
	security := fmt.Sprintf("every VM in its project's default group, %d also in a shared remote group", cfg.topo.SharedMembers)
	if cfg.topo.NoPortSecurity {
		security = "port security off"
	}
	fmt.Fprintf(tw, "dvrflow-bench-scale: %d hosts x %d VMs, %d networks, %d routers, %.0f%% floating IPs, %d dvr_snat hosts, %s; bridges take %.0f flow-mods/s (%.0f/s bundled)\n",
		cfg.topo.Hosts, cfg.topo.VMsPerHost, cfg.topo.Networks, cfg.topo.Routers, cfg.topo.FIPPercent, cfg.topo.SNATHosts, security, cfg.rate, cfg.bundleRate)
	if cfg.controllers > 1 {
		lease := "dvrflowd's default lease (1.2s, renewed every 200ms)"
		if cfg.lease > 0 {
			lease = fmt.Sprintf("--lease %v renewed every %v", cfg.lease, cfg.lease/6)
		}
		fmt.Fprintf(tw, "%d dvrflowd against one database, every bridge connected to each, %s\n", cfg.controllers, lease)
	}
	row("figure", "value", "target")
	row("machine load average (1, 5, 15 min)", fmt.Sprintf("at start %s, at end %s", r.loadAvgStart, r.loadAvgEnd), "")
	if r.load > 0 {
		row("topology load through the API", fmt.Sprintf("%v, %d requests (%d ports, %d networks, %d routers, %d floating IPs)",
			r.load.Round(time.Millisecond), r.loadRequests, r.ports, r.networks, r.routers, r.fips), "")
		row("dvrflowd after the load", fmt.Sprintf("peak RSS %s, CPU %.1f s", gib(r.loadUsage.HWM), r.loadUsage.CPU.Seconds()), "")
	}
	if c := r.cold; c != nil {
		row("1. cold start: every bridge exact", fmt.Sprintf("%v (last flow-mod), verified at %v; %d bridges", c.Converged.Round(time.Millisecond), c.Verified.Round(time.Millisecond), r.bridges),
			fmt.Sprintf("< 10 min: %s", verdict(c.Converged < 10*time.Minute)))
		row("   dvrflowd at convergence", fmt.Sprintf("peak RSS %s, CPU %.1f s", gib(r.coldUsage.HWM), r.coldUsage.CPU.Seconds()),
			fmt.Sprintf("RSS < 16 GiB: %s", verdict(r.coldUsage.HWM < 16<<30)))
		row("   flow-mods received", fmt.Sprintf("%d (%d flows installed)", c.FlowMods, c.FlowsTotal), "")
		row("   flows per host (3 bridges)", fmt.Sprintf("min %d, p50 %d, max %d", c.FlowsPerHost[0], c.FlowsPerHost[1], c.FlowsPerHost[2]), "")
		row("   hosts with a network they do not carry", fmt.Sprint(c.Locality), "0: "+verdict(c.Locality == 0))
	}
	if r.simCold.procs > 0 {
		row("   simulator at convergence", r.simCold.String(), "")
	}
	if rs := r.restart; rs != nil {
		row("2. restart: dvrflowd API up again", rs.Up.Round(time.Millisecond).String(), "")
		row("   every bridge reconnected and dumped", rs.Dumped.Round(time.Millisecond).String(), "")
		if rs.APIConfirm > 0 {
			row("   switch API: every switch reconciled", "seen at "+rs.APIConfirm.Round(time.Millisecond).String()+" (polled every 200 ms)", "")
		} else {
			row("   switch API: every switch reconciled", "no switch API in this dvrflowd", "")
		}
		row("   flow-mods sent", fmt.Sprint(rs.FlowMods), "0: "+verdict(rs.FlowMods == 0))
		row("   restarted dvrflowd", fmt.Sprintf("peak RSS %s, CPU %.1f s", gib(rs.Usage.HWM), rs.Usage.CPU.Seconds()), "")
	}
	r.printControllers(row)
	if b := r.bound; b != nil {
		row("3. port bound -> every changed bridge acked", fmt.Sprintf("p50 %s, p99 %s, max %s over %d ports", ms(b.P50), ms(b.P99), ms(b.Max), b.N),
			fmt.Sprintf("p99 < 100 ms: %s", verdict(b.P99 < 100*time.Millisecond)))
		row("   of which: the API call", fmt.Sprintf("p50 %s, p99 %s", ms(b.APIP50), ms(b.APIP99)), "")
		row("   call to the first flow-mod anywhere", fmt.Sprintf("p50 %s, p99 %s", ms(b.FirstP50), ms(b.FirstP99)), "")
		row("   bridges touched per port", fmt.Sprintf("avg %.1f, max %d", b.BridgesTouched, b.BridgesTouchedMax), "")
		row("   hosts touched / hosts that should", fmt.Sprintf("avg %.1f / %.1f", b.HostsTouched, b.HostsShould), "")
		row("   ports touching a host outside that set", fmt.Sprint(b.Outside), "0: "+verdict(b.Outside == 0))
		row("   ports that gave their host a new qrouter", fmt.Sprint(b.PlanChanges), "")
		row("   dvrflowd at the end", fmt.Sprintf("peak RSS %s, CPU %.1f s", gib(r.endUsage.HWM), r.endUsage.CPU.Seconds()), "")
	}
	if j := r.join; j != nil {
		row("4. port joins the shared group -> every changed bridge acked", fmt.Sprintf("p50 %s, p99 %s, max %s over %d joins (%d members before)", ms(j.P50), ms(j.P99), ms(j.Max), j.N, j.Members),
			fmt.Sprintf("p99 < 100 ms: %s", verdict(j.P99 < 100*time.Millisecond)))
		row("   of which the API call (PUT answered)", fmt.Sprintf("p50 %s, p99 %s", ms(j.APIP50), ms(j.APIP99)), "")
		row("   CPU per join: dvrflowd / the simulated switches", fmt.Sprintf("%s / %s (%d cores)", ms(j.DaemonCPU), ms(j.SelfCPU), runtime.NumCPU()), "")
		row("   hosts touched / hosts with a member", fmt.Sprintf("avg %.1f (max %d) / %.1f", j.HostsTouched, j.HostsTouchedMax, j.HostsShould), "")
		row("   joins touching a host without a member", fmt.Sprint(j.Outside), "0: "+verdict(j.Outside == 0))
		row("   flow-mods per join", fmt.Sprintf("%.1f (%.2f per touched host)", j.FlowMods, j.FlowMods/max(j.HostsTouched, 1)), "")
	}
	if r.simEnd.procs > 0 {
		row("simulator at the end", r.simEnd.String(), "")
	}
	if r.cold != nil {
		row("bridges differing from desired at the end", fmt.Sprint(r.finalBad), "0: "+verdict(r.finalBad == 0))
	}
	_ = tw.Flush()
	for _, f := range r.failures {
		fmt.Fprintln(w, "FAILED:", f)
	}
}

// printControllers writes the rows of a run with several controllers: the split of the
// hosts at cold start, the failover, and each controller's memory.
func (r *report) printControllers(row func(k, v, target string)) {
	if sp := r.split; sp != nil {
		row("   hosts mastered at convergence (masterships)", fmt.Sprintf("%s; without a master: %d", sp.split, len(sp.Unmastered)),
			"0 without: "+verdict(len(sp.Unmastered) == 0))
		listed := make([]string, 0, len(sp.Listed))
		for _, id := range sortedIDs(sp.Listed) {
			listed = append(listed, fmt.Sprintf("%s %d", id, sp.Listed[id]))
		}
		row("   hosts per controller (dvr-controllers)", strings.Join(listed, ", "), "")
		row("   each controller at convergence", usages(sp.Usage), "")
		row("   lease renewals to convergence", renewals(sp.Renewals), "0 lapses: "+verdict(lapses(sp.Renewals) == 0))
	}
	fo := r.failover
	if fo == nil {
		return
	}
	row("2. failover: SIGKILL the busiest controller", fmt.Sprintf("%s, master of %d hosts", fo.Victim, fo.Hosts), "")
	row("   its hosts mastered again and exact", fmt.Sprintf("p50 %s, p99 %s, max %s over %d hosts", ms(fo.P50), ms(fo.P99), ms(fo.Max), len(fo.perHost)), "")
	taken := make([]string, 0, len(fo.NewMasters))
	for _, id := range sortedIDs(fo.NewMasters) {
		taken = append(taken, fmt.Sprintf("%s %d", id, fo.NewMasters[id]))
	}
	row("   its hosts taken over by", strings.Join(taken, ", "), "")
	row("   hosts mastered after the failover", fmt.Sprintf("%s; without a master: %d", fo.Split, len(fo.Unmastered)),
		"0 without: "+verdict(len(fo.Unmastered) == 0))
	row("   flow-mods sent", fmt.Sprint(fo.FlowMods), "0: "+verdict(fo.FlowMods == 0))
	row("   messages refused IS_SLAVE", fmt.Sprint(fo.SlaveRefused), "0: "+verdict(fo.SlaveRefused == 0))
	row("   survivors after the failover", usages(fo.Usage), "")
	if len(r.ctlEnd) > 0 {
		row("   survivors at the end", usages(r.ctlEnd), "")
	}
	if len(r.renewEnd) > 0 {
		row("   survivors' lease renewals, whole run", renewals(r.renewEnd), "")
	}
}

// renewals lists how each controller's lease renewals went.
func renewals(rs map[string]switchapi.Renewals) string {
	parts := make([]string, 0, len(rs))
	for _, id := range sortedIDs(rs) {
		r := rs[id]
		parts = append(parts, fmt.Sprintf("%s %d lapses, %d of %d slow, slowest %s, longest lease asked %.1f s", id, r.Lapses,
			r.Slow, r.Count, ms(time.Duration(r.SlowestMS*float64(time.Millisecond))), r.LongestLeaseSeconds))
	}
	return strings.Join(parts, "; ")
}

// usages lists each controller's peak RSS and CPU.
func usages(us map[string]usage) string {
	parts := make([]string, 0, len(us))
	for _, id := range sortedIDs(us) {
		parts = append(parts, fmt.Sprintf("%s peak RSS %s, CPU %.1f s", id, gib(us[id].HWM), us[id].CPU.Seconds()))
	}
	return strings.Join(parts, "; ")
}

// String says where the bridges were simulated and the peak RSS there.
func (u simUsage) String() string {
	if u.procs == 1 {
		return fmt.Sprintf("in the harness's process: peak RSS %s, CPU %.1f s", gib(u.max), u.cpu.Seconds())
	}
	return fmt.Sprintf("%d worker processes: peak RSS %s together, %s the largest; CPU %.1f s", u.procs, gib(u.sum), gib(u.max), u.cpu.Seconds())
}
