// Command dvrflow-bench-scale measures dvrflow at datacenter scale on one machine: a private
// PostgreSQL, a real dvrflowd process, the topology loaded through the API (topogen), and
// three OpenFlow bridges per host simulated with ofsim (each on its own TCP session, with
// OVS's flow-mod ingest rates; in this process or in worker processes, see -sim-procs
// below). Each simulated host polls its plan once a minute once the topology is loaded,
// its helper's heartbeat (dvrflowd runs with --agent-down-time 5m: loading 5,000 hosts
// takes longer than the default 75 s, and without heartbeats SNAT failover would move
// every router to one host). It runs four benchmarks and prints a table:
//
//  1. cold start: every bridge connects; time until each holds exactly its desired flows
//     (computed here from the database and the simulator's ports, not asked of the
//     controller), dvrflowd's peak RSS and CPU seconds, flows per host, and a check that no
//     host carries a network it has no port on (directly or through its qrouter);
//  2. restart: SIGKILL dvrflowd, start it again; time until every bridge reconnected and
//     was dumped (and, with the switch API, reconciled), and the flow-mods sent (goal 0);
//  3. port bound: ports created one by one through the API and plugged into their host's
//     br-int; time until every bridge that changed answered a barrier after its flows
//     (p50/p99/max), and which hosts were touched against those that should be;
//  4. group join: VM ports join the shared security group (-shared-members of the VMs are
//     in it, its rule names itself as remote) one by one; the same timing, and whether only
//     the hosts with members changed.
//
// With -controllers N (N > 1) it starts N dvrflowd against the one database (--controller-id
// ctl1 to ctlN, each with its own API and OpenFlow ports) and connects every bridge to all of
// them, as OVS does with several controller targets. Cold start also reports how the hosts
// are split among them when it completes (GET /v2.0/dvr-controllers/masterships and
// /v2.0/dvr-controllers) and each one's RSS; a failover replaces the restart: SIGKILL the
// controller mastering most hosts, then per host it mastered the time until a survivor
// masters it, has dumped each of its bridges and every bridge holds exactly its desired
// flows (p50/p99/max), the flow-mods sent (goal 0) and the survivors' RSS. The port-bound and
// group-join benchmarks then run against the survivors.
//
// The bridges hold a session each to every controller: 45,000 sockets for -hosts 5000
// -controllers 3, more than one process may open on a machine whose hard open-files limit
// is 20,000. With -sim-procs N (0, the default: as many as needed) the bridges are simulated
// in N worker processes, this binary run again, the hosts dealt out among them (a host's
// three bridges in one) and the connect rate shared. Each reports every event of its
// bridges with the time it happened there, so the harness times them as if the bridges
// ran in its own process, and answers the harness's reads of a bridge's ports and flows
// (in OpenFlow's wire form) and its plugged ports over a socket; its log goes next to
// dvrflowd's in the work directory (-keep). When one process suffices, the bridges run in
// this one. The table says where they ran and the peak RSS of those processes.
//
// It exits 1 when a correctness check fails (flows not exactly the desired ones, flow-mods on
// restart or failover, a host without a master, a host touched or carrying a network outside
// its set); -strict=false only reports them.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/dvrflow/dvrflow/apiclient"
	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/db/pgtest"
	"github.com/dvrflow/dvrflow/internal/loadavg"
	"github.com/dvrflow/dvrflow/northbound/topogen"
)

type config struct {
	topo        topogen.Options
	ports       int
	dvrflowd    string
	connectRate float64
	rate        float64
	bundleRate  float64
	maxBackoff  time.Duration
	timeout     time.Duration
	quiet       time.Duration
	settle      time.Duration
	durable     bool
	strict      bool
	keep        bool
	profileDir  string
	profileSecs int
	joins       int
	selfProfile string
	controllers int
	lease       time.Duration
	simProcs    int
	logLevel    zapcore.Level
	extraArgs   []string
}

func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("dvrflow-bench-scale", flag.ContinueOnError)
	c := &config{topo: topogen.DefaultOptions()}
	fs.IntVar(&c.topo.Hosts, "hosts", c.topo.Hosts, "hosts (three bridges each)")
	fs.IntVar(&c.topo.VMsPerHost, "vms-per-host", c.topo.VMsPerHost, "VM ports bound on each host")
	fs.IntVar(&c.topo.Networks, "networks", c.topo.Networks, "tenant networks")
	fs.IntVar(&c.topo.Routers, "routers", c.topo.Routers, "distributed routers")
	fs.Float64Var(&c.topo.FIPPercent, "fip-percent", c.topo.FIPPercent, "percent of VM ports with a floating IP")
	fs.IntVar(&c.topo.SNATHosts, "snat-hosts", c.topo.SNATHosts, "hosts in mode dvr_snat (network nodes)")
	fs.Int64Var(&c.topo.Seed, "seed", c.topo.Seed, "random seed of the topology and of the port-bound choices")
	fs.IntVar(&c.topo.Workers, "load-workers", c.topo.Workers, "concurrent API requests while loading the topology (0: topogen's default)")
	fs.IntVar(&c.ports, "ports", 1000, "ports bound one by one in the port-bound benchmark")
	portSecurity := fs.Bool("port-security", true, "VM ports with port security, each in its project's default group (false: port security off, no per-port firewall flows)")
	fs.IntVar(&c.topo.SharedMembers, "shared-members", 1000, "VMs also in one shared group whose rule names itself as remote group (0: none)")
	fs.IntVar(&c.joins, "joins", 100, "ports joining the shared group one by one in the group-join benchmark")
	fs.StringVar(&c.dvrflowd, "dvrflowd", "bin/dvrflowd", "dvrflowd binary")
	fs.DurationVar(&c.lease, "lease", 0, "with -controllers: each dvrflowd's --lease, renewed every sixth of it (0: dvrflowd's defaults, 1.2s renewed every 200ms); three controllers and the simulator on one small machine stall each other for longer than that")
	fs.IntVar(&c.controllers, "controllers", 1, "dvrflowd processes against the one database (--controller-id ctl1...), every bridge connected to each; more than 1: a failover phase replaces the restart")
	fs.IntVar(&c.simProcs, "sim-procs", 0, "processes simulating the bridges, the hosts dealt out among them (0: one, this one, when its open files limit can be raised to a session per bridge and controller; else the fewest that each hold at most their limit - 2,000 sessions)")
	fs.Float64Var(&c.connectRate, "connect-rate", 500, "bridge sessions started per second at cold start")
	fs.Float64Var(&c.rate, "rate", 10000, "flow-mods per second a bridge takes one by one (OVS: ~10k)")
	fs.Float64Var(&c.bundleRate, "bundle-rate", 60000, "flow-mods per second a bridge takes in bundles (OVS: ~60k)")
	fs.DurationVar(&c.maxBackoff, "max-backoff", 8*time.Second, "bridges' reconnection backoff cap (OVS's max_backoff)")
	fs.DurationVar(&c.timeout, "timeout", 20*time.Minute, "limit of each convergence wait")
	fs.DurationVar(&c.quiet, "quiet", 150*time.Millisecond, "a change is over after this long without a flow-mod or barrier")
	fs.DurationVar(&c.settle, "settle", 3*time.Second, "cold start: verify the flows once the fleet had no flow-mod for this long")
	fs.BoolVar(&c.durable, "pg-durable", true, "PostgreSQL with fsync and synchronous_commit on, as in production")
	fs.BoolVar(&c.strict, "strict", true, "exit 1 when a correctness check fails (false: report it and exit 0)")
	fs.BoolVar(&c.keep, "keep", false, "keep the work directory (dvrflowd log) at the end")
	fs.StringVar(&c.profileDir, "profile-dir", "", "write dvrflowd's CPU profiles of the cold start, the port-bound and the group-join runs and its heap profiles here (dvrflowd --debug-listen)")
	fs.StringVar(&c.selfProfile, "cpuprofile", "", "write this tool's own CPU profile (simulator and verification) to this file")
	fs.IntVar(&c.profileSecs, "profile-seconds", 30, "length of each CPU profile")
	level := fs.String("log-level", "info", "log level of this tool")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c.extraArgs = fs.Args()
	c.topo.NoPortSecurity = !*portSecurity
	if c.topo.NoPortSecurity {
		c.topo.SharedMembers = 0
	}
	var err error
	if c.logLevel, err = zapcore.ParseLevel(*level); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	switch {
	case c.topo.Hosts < 1, c.topo.VMsPerHost < 1, c.topo.Networks < 1:
		return nil, errors.New("-hosts, -vms-per-host and -networks must be positive")
	case c.topo.Routers < 0, c.ports < 0, c.joins < 0, c.topo.FIPPercent < 0 || c.topo.FIPPercent > 100:
		return nil, errors.New("-routers and -ports must not be negative, -fip-percent within 0..100")
	case c.topo.SharedMembers > c.topo.Hosts*c.topo.VMsPerHost:
		return nil, fmt.Errorf("-shared-members %d: more than the %d VMs", c.topo.SharedMembers, c.topo.Hosts*c.topo.VMsPerHost)
	case c.rate < 0, c.bundleRate < 0, c.connectRate < 0:
		return nil, errors.New("-rate, -bundle-rate and -connect-rate must not be negative")
	case c.controllers < 1:
		return nil, fmt.Errorf("-controllers %d: at least 1", c.controllers)
	case c.simProcs < 0:
		return nil, fmt.Errorf("-sim-procs %d: must not be negative", c.simProcs)
	}
	return c, nil
}

// simWorkerArg runs the binary as a simulator worker process (simproc.go), for the harness
// only: it is not among the flags.
const simWorkerArg = "-sim-worker"

func main() {
	if len(os.Args) == 2 && os.Args[1] == simWorkerArg {
		os.Exit(workerProcess())
	}
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dvrflow-bench-scale:", err)
		os.Exit(2)
	}
	zc := zap.NewDevelopmentConfig()
	zc.Development, zc.DisableStacktrace = false, true
	zc.Level = zap.NewAtomicLevelAt(cfg.logLevel)
	log, err := zc.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dvrflow-bench-scale: logger:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.selfProfile != "" {
		pf, err := os.Create(cfg.selfProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "dvrflow-bench-scale: -cpuprofile:", err)
			os.Exit(2)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			fmt.Fprintln(os.Stderr, "dvrflow-bench-scale: -cpuprofile:", err)
			os.Exit(2)
		}
		defer func() { pprof.StopCPUProfile(); _ = pf.Close() }()
	}
	r := &report{loadAvgStart: loadavg.Now()}
	err = run(ctx, log, cfg, r)
	r.loadAvgEnd = loadavg.Now()
	r.print(os.Stdout, cfg)
	if cfg.selfProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		log.Error("benchmark failed", zap.Error(err))
		os.Exit(1)
	}
	if cfg.strict && len(r.failures) > 0 {
		log.Error("correctness checks failed", zap.Strings("failures", r.failures))
		os.Exit(1)
	}
}

func run(ctx context.Context, log *zap.Logger, cfg *config, r *report) (err error) {
	work, err := os.MkdirTemp("", "dvrflow-bench-scale-")
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	defer func() {
		if cfg.keep {
			log.Info("work directory kept", zap.String("dir", work))
			return
		}
		_ = os.RemoveAll(work)
	}()
	bin, err := filepath.Abs(cfg.dvrflowd)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("dvrflowd binary: %w (go build -o bin/ ./cmd/dvrflowd)", err)
	}

	// Three bridges a host, a session each to every controller, and room for the rest, in
	// this process or in as many worker processes as their open files limit needs.
	procs, err := simProcsFor(cfg.simProcs, cfg.topo.Hosts, cfg.controllers)
	if err != nil {
		return err
	}
	worker := workerCommand{args: []string{simWorkerArg}, dir: work}
	if procs > 1 {
		if worker.path, err = os.Executable(); err != nil {
			return fmt.Errorf("simulator workers: %w", err)
		}
	}

	// 1. PostgreSQL and dvrflowd.
	pg, err := pgtest.Start(ctx, pgtest.Options{Durable: cfg.durable})
	if err != nil {
		return fmt.Errorf("PostgreSQL: %w", err)
	}
	defer func() { err = errors.Join(err, pg.Stop()) }()
	_, dsn, err := pg.CreateDatabase(ctx)
	if err != nil {
		return err
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	token := hex.EncodeToString(tok)
	var ds daemons
	var prof *profiler
	for k := range cfg.controllers {
		apiAddr, err := freeAddr()
		if err != nil {
			return err
		}
		ofAddr, err := freeAddr()
		if err != nil {
			return err
		}
		args := []string{"--db-url", dsn, "--listen", apiAddr, "--of-listen", ofAddr, "--log-level", "warn",
			"--agent-down-time", agentDownTime.String()}
		c := &controller{ofAddr: ofAddr}
		logName := "dvrflowd.log"
		if cfg.controllers > 1 {
			c.id = controllerID(k)
			args = append(args, "--controller-id", c.id)
			if cfg.lease > 0 {
				args = append(args, "--lease", cfg.lease.String(), "--lease-renew", (cfg.lease / 6).String())
			}
			logName = "dvrflowd-" + c.id + ".log"
		}
		if cfg.profileDir != "" && k == 0 {
			dbg, err := freeAddr()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
				return fmt.Errorf("profile dir: %w", err)
			}
			args = append(args, "--debug-listen", dbg)
			prof = &profiler{log: log, url: "http://" + dbg, dir: cfg.profileDir}
			defer prof.wait()
		}
		c.d = &daemon{log: log, bin: bin, logPath: filepath.Join(work, logName), apiURL: "http://" + apiAddr,
			args: append(args, cfg.extraArgs...), env: []string{"DVRFLOW_AUTH_TOKEN=" + token}}
		if err := c.d.start(ctx); err != nil {
			return err
		}
		defer func() {
			if kerr := c.d.kill(syscall.SIGTERM); kerr != nil {
				err = errors.Join(err, kerr)
			}
		}()
		ds = append(ds, c)
	}
	// d serves the harness's API calls and is the one measured in the single-controller
	// rows; after a failover, a survivor.
	d := ds[0].d
	store, err := db.Open(ctx, dsn, db.DefaultConfig(), log.Named("harness-db"))
	if err != nil {
		return err
	}
	defer store.Close()

	// 2. The topology, through the API.
	rt := &retarget{next: http.DefaultTransport}
	ct := &countingTransport{next: rt}
	hc := &http.Client{Transport: ct, Timeout: 5 * time.Minute}
	api := apiclient.New(d.apiURL, token, hc)
	t0 := time.Now()
	topo, err := topogen.Load(ctx, log, topogen.Client{URL: d.apiURL, Token: token, HTTP: hc}, cfg.topo)
	if err != nil {
		return fmt.Errorf("loading the topology: %w", err)
	}
	r.load, r.loadRequests = time.Since(t0), ct.n.Load()
	// Every simulated host's helper polls its plan, as the real one does: that poll is its
	// heartbeat, without which SNAT failover would move every router to the one dvr_snat
	// host the benchmark happened to poll last.
	hbctx, hbcancel := context.WithCancel(ctx)
	defer hbcancel()
	names := make([]string, len(topo.Hosts))
	for i, h := range topo.Hosts {
		names[i] = h.Name
	}
	go heartbeats(hbctx, log, api, names, heartbeatEvery)
	v, dbTopo, err := view(ctx, store)
	if err != nil {
		return err
	}
	r.ports, r.networks, r.routers, r.fips = len(dbTopo.Ports), len(dbTopo.Networks), len(dbTopo.Routers), len(dbTopo.FloatingIPs)
	if u, err := d.usage(); err == nil {
		r.loadUsage = u
	}
	hosts := make([]hostSpec, 0, len(topo.Hosts))
	netSet := map[string]bool{}
	for _, h := range topo.Hosts {
		hs := hostSpec{Name: h.Name, DPIDs: h.DPIDs}
		for _, p := range h.Ports {
			hs.VMPorts = append(hs.VMPorts, p.ID)
			netSet[p.Network] = true
		}
		for _, ns := range apps.Plan(v, h.Name).Namespaces {
			for _, l := range ns.Links {
				if l.Bridge != "" {
					hs.Links = append(hs.Links, l)
				}
			}
		}
		hosts = append(hosts, hs)
	}
	networks := make([]string, 0, len(netSet))
	for n := range netSet {
		networks = append(networks, n)
	}
	slices.Sort(networks)

	// 3. Cold start.
	ofAddrs := make([]string, 0, len(ds))
	for _, c := range ds {
		ofAddrs = append(ofAddrs, c.ofAddr)
	}
	f, err := newFleet(log.Named("sim"), fleetConfig{addrs: ofAddrs, rate: cfg.rate, bundleRate: cfg.bundleRate,
		connectRate: cfg.connectRate, maxBackoff: cfg.maxBackoff, procs: procs, worker: worker}, hosts)
	if err != nil {
		return err
	}
	defer f.close()
	r.bridges = len(f.byDPID)
	fctx, fcancel := context.WithCancel(ctx)
	fdone := make(chan error, 1)
	start := time.Now()
	go func() { fdone <- f.run(fctx) }()
	prof.fetch(ctx, "cpu-coldstart.pprof", fmt.Sprintf("profile?seconds=%d", cfg.profileSecs))
	defer func() {
		fcancel()
		err = errors.Join(err, <-fdone)
	}()
	cold, v, err := coldStart(ctx, log, store, f, ds, start, cfg.timeout, cfg.settle)
	if err != nil {
		return err
	}
	r.cold = &cold
	if r.coldUsage, err = d.usage(); err != nil {
		return err
	}
	if r.simCold, err = f.usage(); err != nil {
		return err
	}
	if prof != nil {
		prof.wait()
		if err := prof.get(ctx, "heap-coldstart.pprof", "heap"); err != nil {
			log.Warn("heap profile", zap.Error(err))
		}
	}
	if cold.Locality, cold.LocalityNotes, err = locality(v, dbTopo, f); err != nil {
		return err
	}
	r.cold = &cold
	if cold.Locality > 0 {
		r.fail("%d hosts carry networks they have no port or qrouter on: %v", cold.Locality, cold.LocalityNotes)
	}

	if len(ds) == 1 {
		// 4. Restart.
		rs, err := restart(ctx, log, api, f, d, cfg.quiet*4, cfg.timeout)
		if err != nil {
			return err
		}
		r.restart = &rs
		if rs.FlowMods != 0 {
			r.fail("the controller sent %d flow-mods when it restarted over an unchanged topology", rs.FlowMods)
		}
	} else {
		// 4. The split at cold start, then the failover of the busiest controller.
		if err := r.checkSplit(ctx, api, ds, token); err != nil {
			return err
		}
		fo, err := failover(ctx, log, api, rt, store, f, ds, cfg.quiet*4, cfg.timeout)
		if err != nil {
			return err
		}
		r.failover = &fo
		if fo.FlowMods != 0 {
			r.fail("the failover sent %d flow-mods to switches that held their flows (%v)", fo.FlowMods, fo.FlowModsBy)
		}
		if fo.SlaveRefused != 0 {
			r.fail("switches refused %d messages from controllers that were not their master during the failover", fo.SlaveRefused)
		}
		if len(fo.Unmastered) > 0 {
			r.fail("%d hosts without a master after the failover: %v", len(fo.Unmastered), head(fo.Unmastered, 5))
		}
		for _, c := range ds {
			if c.d.cmd != nil {
				d = c.d
				break
			}
		}
	}

	// 5. Ports bound one by one.
	if cfg.ports > 0 {
		prof.fetch(ctx, "cpu-portbound.pprof", fmt.Sprintf("profile?seconds=%d", cfg.profileSecs))
		pb, err := portBound(ctx, log, api, v, f, hosts, networks, cfg.ports, cfg.topo.Seed, cfg.quiet)
		if err != nil {
			return err
		}
		r.bound = &pb
		if pb.Outside > 0 {
			r.fail("%d ports changed flows on hosts that carry neither the network nor its router: %v", pb.Outside, pb.OutsideNotes)
		}
		if pb.Unacked > 0 {
			r.fail("%d bridges were sent flow-mods with no barrier after them", pb.Unacked)
		}
	}
	// 6. Ports joining the shared security group one by one.
	if cfg.joins > 0 && topo.SharedGroup != "" {
		v, _, err := view(ctx, store)
		if err != nil {
			return err
		}
		prof.fetch(ctx, "cpu-join.pprof", fmt.Sprintf("profile?seconds=%d", cfg.profileSecs))
		before, err := ds.cpu()
		if err != nil {
			return err
		}
		selfBefore := f.cpu()
		jr, err := groupJoin(ctx, log, api, v, f, topo.SharedGroup, cfg.joins, cfg.topo.Seed, cfg.quiet)
		if err != nil {
			return err
		}
		after, err := ds.cpu()
		if err != nil {
			return err
		}
		jr.DaemonCPU = (after - before) / time.Duration(max(jr.N, 1))
		jr.SelfCPU = (f.cpu() - selfBefore) / time.Duration(max(jr.N, 1))
		r.join = &jr
		if jr.Outside > 0 {
			r.fail("%d group joins changed flows on hosts without a member: %v", jr.Outside, jr.OutsideNotes)
		}
		if jr.Unacked > 0 {
			r.fail("%d bridges were sent flow-mods with no barrier after them", jr.Unacked)
		}
	}
	if r.endUsage, err = d.usage(); err != nil {
		return err
	}
	if len(ds) > 1 {
		if r.ctlEnd, err = ds.usages(); err != nil {
			return err
		}
		if r.renewEnd, err = ds.renewals(ctx, token); err != nil {
			return err
		}
		if n, before := lapses(r.renewEnd), lapses(r.split.Renewals); n > before {
			r.fail("the surviving controllers' leases lapsed %d times after cold start", n-before)
		}
	}
	if r.simEnd, err = f.usage(); err != nil {
		return err
	}

	// 7. Every bridge holds exactly its desired flows at the end.
	bad, notes, err := finalCheck(ctx, store, f)
	if err != nil {
		return err
	}
	r.finalBad = bad
	if bad > 0 {
		r.fail("%d bridges differ from their desired flows at the end: %v", bad, notes)
	}
	return nil
}
