// Command ofbench measures dvrflow's OpenFlow core.
//
//	ofbench push [-n 100000] [-runs 1]   flows/s into a real OVS bridge (root): dvrflow's
//	                                     reconciler vs `ovs-ofctl --bundle add-flows` of the
//	                                     identical flow set, each on a fresh bridge
//	ofbench sessions [-n 2000]           goroutines and bytes per idle switch session, with
//	                                     the fake switches in a child process
//	ofbench delta [-base 200000] [-change 2000] [-runs 3]
//	                                     a change of -change flows (1/3 adds, 1/3 modifies,
//	                                     1/3 deletes) onto a real OVS bridge holding -base
//	                                     flows (root): dvrflow's reconciler vs
//	                                     `ovs-ofctl --bundle` of the same change
//	ofbench arp [-switches 1000] [-duration 10s] [-window 4] [-controller dvrflow,osken,testcontroller]
//	            [-profile DIR]           ARP packet-ins answered per second and their
//	                                     latency, from simulated switches, against dvrflowd
//	                                     (private PostgreSQL), a minimal os-ken app and
//	                                     ovs-testcontroller, one after another; run from the
//	                                     repository root (bin/dvrflowd, deploy/scripts/pg.sh,
//	                                     deploy/bench/osken_arp.py); -profile writes CPU
//	                                     profiles of dvrflowd and of the generator
//	ofbench dhcp [-switches 1000] [-duration 10s] [-window 4] [-profile DIR]
//	                                     DHCP DISCOVER->OFFER->REQUEST->ACK exchanges per
//	                                     second and per server CPU-second, and their latency,
//	                                     from simulated switches against dvrflowd (private
//	                                     PostgreSQL), then from the same clients through veths
//	                                     against dnsmasq run as Neutron's DHCP agent runs it,
//	                                     one per network in its namespace (root); run from
//	                                     the repository root
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/internal/loadavg"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	n := fs.Int("n", 0, "number of flows (push) or sessions (sessions)")
	runs := fs.Int("runs", 1, "push, delta: repetitions, each on fresh bridges")
	base := fs.Int("base", 200_000, "delta: flows on the bridge before the change")
	change := fs.Int("change", 2000, "delta: flows changed")
	switches := fs.Int("switches", 1000, "arp, dhcp: simulated switches")
	duration := fs.Duration("duration", 10*time.Second, "arp, dhcp: measured time per controller or server")
	window := fs.Int("window", 4, "arp, dhcp: requests (dhcp: exchanges) in flight per switch")
	controllers := fs.String("controller", "dvrflow,osken,testcontroller", "arp: controllers to run, in order")
	hostsPerNet := fs.Int("hosts-per-net", 10, "arp, dhcp: hosts sharing a network")
	vmsPerHost := fs.Int("vms-per-host", 2, "arp, dhcp: VM ports per host")
	dvrflowd := fs.String("dvrflowd", "bin/dvrflowd", "arp, dhcp: the dvrflowd binary")
	pgScript := fs.String("pg-script", "deploy/scripts/pg.sh", "arp, dhcp: the private PostgreSQL script")
	oskenApp := fs.String("osken-app", "deploy/bench/osken_arp.py", "arp: the os-ken app")
	dnsmasq := fs.String("dnsmasq", "dnsmasq", "dhcp: the dnsmasq binary")
	profileDir := fs.String("profile", "", "arp, dhcp: write CPU profiles of dvrflowd and of the generator, while measured, to this directory")
	addr := fs.String("addr", "", "simswitches: controller address")
	verbose := fs.Bool("v", false, "log at debug level")
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
	lcfg := zap.NewProductionConfig()
	lcfg.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	if *verbose {
		lcfg.Level = zap.NewAtomicLevelAt(zap.DebugLevel)
	}
	log, err := lcfg.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ofbench: logger:", err)
		os.Exit(1)
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Every benchmark's figures come with the machine's load around them (simswitches is
	// a benchmark's child, not a benchmark).
	bench := cmd != "simswitches"
	if bench {
		fmt.Printf("load average at start: %s\n", loadavg.Now())
	}
	switch cmd {
	case "push":
		if *n <= 0 {
			*n = 100_000
		}
		if *runs <= 0 {
			fmt.Fprintln(os.Stderr, "ofbench: -runs must be positive")
			os.Exit(2)
		}
		err = runPush(ctx, log, *n, *runs)
	case "delta":
		if *base <= 0 || *change <= 0 || *runs <= 0 {
			fmt.Fprintln(os.Stderr, "ofbench delta: -base, -change and -runs must be positive")
			os.Exit(2)
		}
		err = runDelta(ctx, log, *base, *change, *runs)
	case "arp", "dhcp":
		sim := simConfig{Switches: *switches, Duration: *duration, Window: *window, HostsPerNet: *hostsPerNet,
			VMsPerHost: *vmsPerHost, Dvrflowd: *dvrflowd, PGScript: *pgScript, ProfileDir: *profileDir}
		if *switches <= 0 || *duration <= 0 || *window <= 0 || *hostsPerNet <= 1 || *vmsPerHost <= 0 || *vmsPerHost > 200 {
			err = fmt.Errorf("%s: -switches, -duration, -window, -vms-per-host (<= 200) must be positive and -hosts-per-net at least 2", cmd)
			break
		}
		if cmd == "dhcp" {
			err = runDHCP(ctx, log, dhcpConfig{simConfig: sim, Dnsmasq: *dnsmasq})
			break
		}
		var ctls []string
		if ctls, err = parseControllers(*controllers); err == nil {
			err = runARP(ctx, log, arpConfig{simConfig: sim, Controllers: ctls, OskenApp: *oskenApp})
		}
	case "sessions":
		if *n <= 0 {
			*n = 2000
		}
		err = runSessions(ctx, log, *n)
	case "simswitches":
		if *n <= 0 || *addr == "" {
			fmt.Fprintln(os.Stderr, "ofbench simswitches: -n and -addr are required")
			os.Exit(2)
		}
		err = runSimSwitches(ctx, log, *n, *addr)
	default:
		usage()
	}
	if bench {
		fmt.Printf("load average at end: %s\n", loadavg.Now())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ofbench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: ofbench push [-n flows] [-runs r] | ofbench sessions [-n sessions] | ofbench delta [-base flows] [-change flows] [-runs r] | ofbench arp [-switches n] [-duration d] [-controller list] | ofbench dhcp [-switches n] [-duration d] [-window w]")
	os.Exit(2)
}
