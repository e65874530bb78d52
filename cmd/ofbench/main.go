// Command ofbench measures dvrflow's OpenFlow core.
//
//	ofbench push [-n 100000] [-runs 1]   flows/s into a real OVS bridge (root): dvrflow's
//	                                     reconciler vs `ovs-ofctl --bundle add-flows` of the
//	                                     identical flow set, each on a fresh bridge
//	ofbench sessions [-n 2000]           goroutines and bytes per idle switch session, with
//	                                     the fake switches in a child process
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	n := fs.Int("n", 0, "number of flows (push) or sessions (sessions)")
	runs := fs.Int("runs", 1, "push: repetitions, each on fresh bridges")
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
	if err != nil {
		fmt.Fprintln(os.Stderr, "ofbench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: ofbench push [-n flows] [-runs r] | ofbench sessions [-n sessions]")
	os.Exit(2)
}
