// Command dvrflow-load loads a scale topology into a running dvrflow API (see package
// northbound/topogen): hosts, tenant networks, distributed routers with gateways, VM
// ports placed on the hosts, floating IPs. Networks, subnets and ports go in Neutron bulk
// requests, the rest one request at a time from concurrent workers. It logs progress and
// a summary (requests, objects, wall time, objects per second) and can write what it
// built as JSON.
//
// Every flag can also be set by environment variable DVRFLOW_<FLAG> (--api:
// DVRFLOW_API, --json-out: DVRFLOW_JSON_OUT); the flag wins.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/dvrflow/dvrflow/internal/envflag"
	"github.com/dvrflow/dvrflow/northbound/topogen"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

type config struct {
	client  topogen.Client
	opt     topogen.Options
	jsonOut string
	level   zapcore.Level
}

func parseFlags(args []string, getenv func(string) string) (*config, error) {
	fs := flag.NewFlagSet("dvrflow-load", flag.ContinueOnError)
	envflag.SetUsage(fs, "DVRFLOW", "usage: dvrflow-load [flags]\n\nLoads a scale topology into a dvrflow API.")
	c := &config{opt: topogen.DefaultOptions()}
	fs.StringVar(&c.client.URL, "api", "http://127.0.0.1:9696", "base URL of the dvrflow API")
	fs.StringVar(&c.client.Token, "token", "", "admin token (X-Auth-Token)")
	fs.IntVar(&c.opt.Hosts, "hosts", c.opt.Hosts, "hosts to register (the first --snat-hosts in mode dvr_snat)")
	fs.IntVar(&c.opt.VMsPerHost, "vms-per-host", c.opt.VMsPerHost, "VM ports bound on each host")
	fs.IntVar(&c.opt.Networks, "networks", c.opt.Networks, "tenant networks (a /24 each)")
	fs.IntVar(&c.opt.Routers, "routers", c.opt.Routers, "distributed routers (two networks and a gateway each)")
	fs.Float64Var(&c.opt.FIPPercent, "fip-percent", c.opt.FIPPercent, "percent of VMs with a floating IP")
	fs.IntVar(&c.opt.SNATHosts, "snat-hosts", c.opt.SNATHosts, "hosts in mode dvr_snat")
	fs.Int64Var(&c.opt.Seed, "seed", c.opt.Seed, "seed of VM placement and floating IP choice")
	fs.IntVar(&c.opt.Workers, "workers", 16, "concurrent requests")
	fs.IntVar(&c.opt.BatchSize, "batch-size", 1000, "objects per bulk create (at most 10000)")
	fs.StringVar(&c.jsonOut, "json-out", "", "write the loaded topology (hosts, DPIDs, VM ports) as JSON to this file")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := envflag.Apply(fs, "DVRFLOW", getenv); err != nil {
		return nil, err
	}
	var err error
	if c.level, err = zapcore.ParseLevel(*level); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if c.client.URL == "" {
		return nil, errors.New("--api is required")
	}
	if err := c.opt.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func run(ctx context.Context, c *config, log *zap.Logger) error {
	res, err := topogen.Load(ctx, log, c.client, c.opt)
	if err != nil {
		return err
	}
	fmt.Printf("loaded %d hosts, %d networks, %d routers, %d VMs in %s: %d requests, %d objects, %.0f objects/s\n",
		len(res.Hosts), c.opt.Networks, c.opt.Routers, c.opt.Hosts*c.opt.VMsPerHost, res.Elapsed.Round(1e6),
		res.Requests, res.Objects, float64(res.Objects)/res.Elapsed.Seconds())
	if c.jsonOut == "" {
		return nil
	}
	f, err := os.Create(c.jsonOut)
	if err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	if err := json.NewEncoder(f).Encode(res); err != nil {
		f.Close()
		return fmt.Errorf("write result %s: %w", c.jsonOut, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write result %s: %w", c.jsonOut, err)
	}
	return nil
}

func main() {
	c, err := parseFlags(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dvrflow-load:", err)
		os.Exit(2)
	}
	zc := zap.NewDevelopmentConfig()
	zc.Level = zap.NewAtomicLevelAt(c.level)
	zc.DisableStacktrace = true
	log, err := zc.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dvrflow-load: logger:", err)
		os.Exit(2)
	}
	defer log.Sync() //nolint:errcheck // best effort at exit
	log = log.With(zap.String("service", "dvrflow-load"))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c, log); err != nil {
		log.Error("load failed", zap.Error(err))
		os.Exit(1)
	}
}
