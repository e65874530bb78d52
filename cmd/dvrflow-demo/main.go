// Command dvrflow-demo brings dvrflow's seed scenario up on a real multi-host bed on
// this machine and shows its traffic: three hosts (each a network namespace with its own
// Open vSwitch), dvrflowd, one dvrflow-host per host, the seed topology created through
// the REST API, four VMs, and pings east-west, through a floating IP and through SNAT.
//
//	dvrflow-demo up --db-url postgres://...   bring up, show traffic, stay up until Ctrl-C
//	dvrflow-demo up --exit-after-traffic ...  bring up, show traffic, tear down; exit 0 only if every ping worked
//	dvrflow-demo down                         remove whatever a previous up left (state in --state-dir)
//
// It needs root. Every flag can also be set by environment variable DVRFLOW_DEMO_<FLAG>
// (--db-url: DVRFLOW_DEMO_DB_URL); the flag wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`)

// options are the flags of up and down.
type options struct {
	Prefix          string
	Underlay        string
	Listen          string
	OFPort          int
	DatabaseURL     string
	Token           string
	BinDir          string
	StateDir        string
	ExitAfter       bool
	ConvergeTimeout time.Duration
	Pings           int
	T0              float64 // Unix time the elapsed times count from (0: now)
}

func defaultBinDir() string {
	exe, err := os.Executable()
	if err != nil {
		return "bin"
	}
	return filepath.Dir(exe)
}

// parseFlags parses the flags of cmd ("up" or "down"); getenv supplies the
// DVRFLOW_DEMO_* defaults.
func parseFlags(cmd string, args []string, getenv func(string) string, stderr io.Writer) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("dvrflow-demo "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Prefix, "prefix", "demo", "prefix of every namespace, link and directory of the bed")
	fs.Float64Var(&o.T0, "t0", 0, "Unix time (seconds) the progress lines count from, e.g. when make demo started (0: now)")
	fs.StringVar(&o.StateDir, "state-dir", "/run/dvrflow-demo", "where up records what it started (state.json) and keeps its logs, for down")
	if cmd == "up" {
		fs.StringVar(&o.Underlay, "underlay", "192.168.248.0/24", "underlay /24 of the bed: hosts .1-.3, dvrflowd .254")
		fs.StringVar(&o.Listen, "listen", "0.0.0.0:9696", "dvrflowd's API address (the hosts reach it on the underlay, you on 127.0.0.1)")
		fs.IntVar(&o.OFPort, "of-port", 6653, "dvrflowd's OpenFlow port on the underlay address")
		fs.StringVar(&o.DatabaseURL, "db-url", "", "PostgreSQL URL of an empty database (deploy/scripts/pg.sh starts one)")
		fs.StringVar(&o.Token, "token", "demo-admin-token", "the API's admin token (X-Auth-Token)")
		fs.StringVar(&o.BinDir, "bin-dir", defaultBinDir(), "directory holding dvrflowd and dvrflow-host")
		fs.BoolVar(&o.ExitAfter, "exit-after-traffic", false, "tear down after the traffic checks; exit 0 only if every ping worked (CI)")
		fs.DurationVar(&o.ConvergeTimeout, "converge-timeout", 60*time.Second, "how long each wait may take")
		fs.IntVar(&o.Pings, "pings", 4, "pings per traffic check, after its first reply")
	}
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		key := "DVRFLOW_DEMO_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(key); v != "" && envErr == nil {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = fmt.Errorf("%s=%q: %w", key, v, err)
			}
		}
	})
	if envErr != nil {
		return o, envErr
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	return o, o.validate(cmd)
}

func (o options) validate(cmd string) error {
	if !prefixRE.MatchString(o.Prefix) {
		return fmt.Errorf("--prefix %q: want 1-8 of [a-z0-9] starting with a letter", o.Prefix)
	}
	if o.T0 < 0 || o.T0 > float64(time.Now().Add(time.Minute).Unix()) {
		return fmt.Errorf("--t0 %v: want a Unix time not in the future", o.T0)
	}
	if !filepath.IsAbs(o.StateDir) {
		return fmt.Errorf("--state-dir %q: want an absolute path", o.StateDir)
	}
	if cmd != "up" {
		return nil
	}
	if o.DatabaseURL == "" {
		return errors.New("--db-url is required (deploy/scripts/pg.sh start DIR && pg.sh dsn DIR)")
	}
	if o.Token == "" {
		return errors.New("--token must not be empty")
	}
	if o.OFPort < 0 || o.OFPort > 65535 {
		return fmt.Errorf("--of-port %d: want 0 (a free port) to 65535", o.OFPort)
	}
	if o.ConvergeTimeout <= 0 {
		return fmt.Errorf("--converge-timeout %v: want a positive duration", o.ConvergeTimeout)
	}
	if o.Pings < 1 || o.Pings > 100 {
		return fmt.Errorf("--pings %d: want 1 to 100", o.Pings)
	}
	return nil
}

const usage = `usage: dvrflow-demo up [flags]     bring the seed scenario up, show traffic, stay up until Ctrl-C
       dvrflow-demo down [flags]   remove whatever a previous up left
Run "dvrflow-demo up -h" for the flags.`

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	cmd := os.Args[1]
	o, err := parseFlags(cmd, os.Args[2:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dvrflow-demo %s: %v\n", cmd, err)
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(os.Stderr, "dvrflow-demo %s: needs root (network namespaces, Open vSwitch): run it with sudo\n", cmd)
		os.Exit(2)
	}
	// The first SIGINT/SIGTERM cancels ctx and the demo tears down; later ones only say
	// that it is doing so, so that a second Ctrl-C cannot leave half a bed behind.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		for n := 0; ; n++ {
			s := <-sigs
			if n == 0 {
				fmt.Fprintf(os.Stdout, "\n%v: tearing everything down...\n", s)
				cancel()
			} else {
				fmt.Fprintf(os.Stdout, "%v: teardown in progress, please wait\n", s)
			}
		}
	}()
	d := &demo{opts: o, out: os.Stdout, start: time.Now()}
	if o.T0 > 0 {
		d.start = time.Unix(0, int64(o.T0*1e9))
	}
	if cmd == "up" {
		err = d.up(ctx)
	} else {
		err = d.down(context.Background())
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dvrflow-demo %s: %v\n", cmd, err)
		os.Exit(1)
	}
}
