// Command dvrctl is the operator's CLI over the dvrflow REST API: hosts, networks,
// subnets, routers, ports, floating IPs, switches and their flows (with drift), the
// controllers with their leases and masterships, a host's namespace plan, and "explain" a
// port: where it is, what routes it, its flows on every switch and the namespaces that
// serve it.
//
//	dvrctl --api http://127.0.0.1:9696 --token SECRET ports --host compute1
//	dvrctl flows compute1 br-int
//	dvrctl explain VM1
//	dvrctl -o json switches
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dvrflow/dvrflow/apiclient"
	"github.com/dvrflow/dvrflow/internal/envflag"
)

// envPrefix prefixes the environment variables of dvrctl's global flags.
const envPrefix = "DVRFLOW"

// options are dvrctl's global flags.
type options struct {
	api     string
	token   string
	output  string
	timeout time.Duration
}

// command is one subcommand.
type command struct {
	name    string
	aliases []string
	args    string
	help    string
	run     func(ctx context.Context, c *cli, args []string) error
}

func commands() []command {
	return []command{
		{name: "hosts", help: "registered hosts: mode, tunnel IP, DVR MAC, liveness, applied plan revision", run: runHosts},
		{name: "networks", aliases: []string{"nets"}, help: "networks", run: runNetworks},
		{name: "subnets", help: "subnets", run: runSubnets},
		{name: "routers", help: "routers", run: runRouters},
		{name: "ports", args: "[--network ID|NAME] [--host HOST] [--device-owner OWNER]", help: "ports, filtered", run: runPorts},
		{name: "fips", aliases: []string{"floatingips"}, help: "floating IPs", run: runFIPs},
		{name: "switches", help: "connected switches: host, bridge, role, master, flows installed/desired, drift, packet-ins", run: runSwitches},
		{name: "controllers", help: "dvrflowd controllers: lease, hosts mastered, addresses (* marks the one answering)", run: runControllers},
		{name: "flows", args: "<host> <bridge> | <dpid>", help: "a switch's flows; drifted ones prefixed MISSING / EXTRA", run: runFlows},
		{name: "explain", args: "<port-id-or-name>", help: "a port: network, subnets, routers, host, floating IPs, its flows on every switch, its namespaces", run: runExplain},
		{name: "plan", args: "<host>", help: "the namespace plan the controller computed for a host", run: runPlan},
		{name: "version", help: "dvrctl's version and the API's", run: runVersion},
	}
}

// cli is one invocation: its options, where it writes, and its environment.
type cli struct {
	opts   options
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// bindGlobals defines the global flags on fs, with the current option values as defaults
// (so that a subcommand's flag set accepts them after the subcommand too).
func (c *cli) bindGlobals(fs *flag.FlagSet) {
	fs.StringVar(&c.opts.api, "api", c.opts.api, "dvrflow API `URL`; several dvrflowd's, comma separated: the first that answers")
	fs.StringVar(&c.opts.token, "token", c.opts.token, "API `token` sent as X-Auth-Token")
	fs.StringVar(&c.opts.output, "output", c.opts.output, "output `format`: table or json")
	envflag.Alias(fs, "o", "output")
	fs.DurationVar(&c.opts.timeout, "timeout", c.opts.timeout, "timeout of the whole command")
}

func usageHeader() string {
	var b strings.Builder
	b.WriteString("usage: dvrctl [global flags] <command> [flags] [args]\n\nCommands:\n")
	for _, cmd := range commands() {
		name := cmd.name
		if len(cmd.aliases) > 0 {
			name += " (" + strings.Join(cmd.aliases, ", ") + ")"
		}
		fmt.Fprintf(&b, "  %-24s %s\n", name, cmd.help)
		if cmd.args != "" {
			fmt.Fprintf(&b, "  %-24s   dvrctl %s %s\n", "", cmd.name, cmd.args)
		}
	}
	b.WriteString("\nGlobal flags may also follow the command. Command filters (ports --network ...) are\nnot read from the environment.")
	return b.String()
}

// run executes dvrctl with args (without the program name). It returns flag.ErrHelp
// after printing help.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := &cli{opts: options{api: "http://127.0.0.1:9696", output: "table", timeout: 30 * time.Second},
		stdout: stdout, stderr: stderr, getenv: getenv}
	fs := flag.NewFlagSet("dvrctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c.bindGlobals(fs)
	envflag.SetUsage(fs, envPrefix, usageHeader())
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := envflag.Apply(fs, envPrefix, getenv); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no command given")
	}
	name, rest := fs.Arg(0), fs.Args()[1:]
	for _, cmd := range commands() {
		if cmd.name != name && !slices.Contains(cmd.aliases, name) {
			continue
		}
		if err := c.validate(); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, c.opts.timeout)
		defer cancel()
		return cmd.run(ctx, c, rest)
	}
	return fmt.Errorf("unknown command %q (try dvrctl --help)", name)
}

func (c *cli) validate() error {
	if c.opts.output != "table" && c.opts.output != "json" {
		return fmt.Errorf("--output %q: want table or json", c.opts.output)
	}
	if c.opts.timeout <= 0 {
		return fmt.Errorf("--timeout %s: must be positive", c.opts.timeout)
	}
	if c.opts.api == "" {
		return errors.New("--api (or DVRFLOW_API) is empty")
	}
	if urls := c.apis(); len(urls) > 1 {
		if err := apiclient.CheckURLs(urls); err != nil {
			return fmt.Errorf("--api: %w", err)
		}
	}
	return nil
}

// apis returns the URLs of --api, split at commas.
func (c *cli) apis() []string {
	var out []string
	for _, u := range strings.Split(c.opts.api, ",") {
		out = append(out, strings.TrimSpace(u))
	}
	return out
}

// parse parses a subcommand's flags (its own, defined by define, and the global ones)
// and checks its number of positional arguments.
func (c *cli) parse(name, argsHelp string, args []string, minArgs, maxArgs int, define func(fs *flag.FlagSet)) ([]string, error) {
	fs := flag.NewFlagSet("dvrctl "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	if define != nil {
		define(fs)
	}
	c.bindGlobals(fs)
	envflag.SetUsage(fs, envPrefix, "usage: dvrctl "+name+" "+argsHelp)
	// Flags may come before, between and after the positional arguments; after "--"
	// everything is positional.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if len(pos) < minArgs || len(pos) > maxArgs {
		return nil, fmt.Errorf("usage: dvrctl %s %s", name, argsHelp)
	}
	return pos, nil
}

func (c *cli) client() *client { return newClient(c.apis(), c.opts.token) }

func (c *cli) json() bool { return c.opts.output == "json" }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "dvrctl:", oneLine(err.Error()))
		os.Exit(1)
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
