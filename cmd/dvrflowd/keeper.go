package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/mastership"
)

// keeperArg runs dvrflowd as its own lease keeper (mastership.RunKeeper): the process
// the mastership loop starts, with the database URL in $DVRFLOW_KEEPER_DB.
const (
	keeperArg   = "lease-keeper"
	keeperDBEnv = "DVRFLOW_KEEPER_DB"
)

// keeperCommand is how this dvrflowd starts its lease keeper.
func keeperCommand(cfg *config, logLevel, logFormat string) (*mastership.KeeperCommand, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("--lease-keeper: finding this program: %w", err)
	}
	return &mastership.KeeperCommand{Path: self, Args: []string{keeperArg, "--log-level", logLevel, "--log-format", logFormat},
		Env: []string{keeperDBEnv + "=" + cfg.DatabaseURL}}, nil
}

// keeperMain runs the lease keeper; it ends when its controller closes its input (stops or
// dies), not on a signal: a terminal's ^C reaches the controller, which stops mastering
// before the keeper releases the lease.
func keeperMain(args []string) int {
	signal.Ignore(os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	fs := flag.NewFlagSet("dvrflowd "+keeperArg, flag.ContinueOnError)
	level := fs.String("log-level", "info", "debug, info, warn or error")
	format := fs.String("log-format", "json", "json or console")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := &config{LogJSON: *format == "json"}
	if err := cfg.LogLevel.Set(*level); err != nil {
		fmt.Fprintln(os.Stderr, "dvrflowd lease-keeper: --log-level:", err)
		return 2
	}
	log, err := newLogger(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dvrflowd lease-keeper:", err)
		return 2
	}
	defer log.Sync() //nolint:errcheck // best effort at exit
	ctx := context.Background()
	leases, err := db.OpenLeases(ctx, os.Getenv(keeperDBEnv))
	if err != nil {
		log.Error("lease keeper failed", zap.Error(err))
		return 1
	}
	defer leases.Close()
	if err := mastership.RunKeeper(ctx, log, leases); err != nil {
		log.Error("lease keeper failed", zap.Error(err))
		return 1
	}
	return 0
}
