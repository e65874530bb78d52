// Command dvrflow-host is dvrflow's host helper: it sets up the host's OVS bridges,
// registers the host with the dvrflow API and keeps the host's namespaces matching
// the plan the API serves. Subcommands plug and unplug attach a VM port as Nova does.
//
//	dvrflow-host --host compute1 --api http://192.168.248.254:9696 --tunnel-ip 192.168.248.1 \
//	    --mode dvr --controller tcp:192.168.248.254:6653 --ovsdb unix:/run/openvswitch/db.sock
//	dvrflow-host plug --port-id ID --mac MAC --netns VMNS --ip 10.0.1.5/24 --gw 10.0.1.1
//	dvrflow-host unplug --port-id ID
//
// With several dvrflowd over one database, --api (like --controller) takes each of their
// URLs: the helper talks to the one that last answered and goes on at the next when it
// dies.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/host/agent"
	"github.com/dvrflow/dvrflow/host/hostnet"
	"github.com/dvrflow/dvrflow/host/metadata"
	"github.com/dvrflow/dvrflow/host/ovsdb"
	"github.com/dvrflow/dvrflow/host/vmport"
	"github.com/dvrflow/dvrflow/internal/envflag"
)

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

// Set adds one value, or several separated by commas (as DVRFLOW_CONTROLLER and
// DVRFLOW_API give them).
func (l *listFlag) Set(v string) error {
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x == "" {
			return fmt.Errorf("empty element in %q", v)
		}
		*l = append(*l, x)
	}
	return nil
}

// envPrefix prefixes the environment variable of every flag: --tunnel-ip is also
// DVRFLOW_TUNNEL_IP (the command line wins).
const envPrefix = "DVRFLOW"

const usageHeader = `usage: dvrflow-host [run] [flags]      keep this host's bridges and namespaces as planned
       dvrflow-host plug --port-id ID --mac MAC --netns NS --ip CIDR --gw IP
       dvrflow-host unplug --port-id ID`

func main() {
	log, err := zap.NewProduction()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer func() { _ = log.Sync() }()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	args := os.Args[1:]
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		err = run(ctx, log, args)
	case "plug", "unplug":
		err = plug(ctx, log, cmd, args)
	default:
		err = fmt.Errorf("unknown subcommand %q (want run, plug or unplug)", cmd)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("dvrflow-host failed", zap.String("cmd", cmd), zap.Error(err))
		os.Exit(1)
	}
}

// runConfig is what `dvrflow-host run` is told.
type runConfig struct {
	agent       agent.Config
	ovsdb       string
	netnsPrefix string
	hostNetns   string
	metadata    metadata.Config // NovaURL "": no metadata proxies
}

// parseRun reads the flags of `run`, then the environment for the flags not given
// (DVRFLOW_<FLAG>, and DVRFLOW_CONTROLLERS as older helpers did), and validates them.
func parseRun(args []string, getenv func(string) string, output io.Writer) (*runConfig, error) {
	fs := flag.NewFlagSet("dvrflow-host", flag.ContinueOnError)
	fs.SetOutput(output)
	envflag.SetUsage(fs, envPrefix, usageHeader)
	rc := &runConfig{}
	cfg := &rc.agent
	var ctrls, apis listFlag
	fs.StringVar(&cfg.Host, "host", "", "host name (binding:host_id)")
	fs.Var(&apis, "api", "dvrflowd REST API URL http(s)://host:port (repeatable, or comma separated: every dvrflowd of the cloud, tried in turn when one fails)")
	fs.StringVar(&cfg.Token, "token", "", "API token (X-Auth-Token)")
	fs.StringVar(&cfg.TunnelIP, "tunnel-ip", "", "VXLAN endpoint IPv4 address")
	fs.StringVar(&cfg.Mode, "mode", "dvr", "dvr or dvr_snat")
	fs.Var(&ctrls, "controller", "OpenFlow controller target tcp:IP:6653 (repeatable, or comma separated; DVRFLOW_CONTROLLERS is read too)")
	fs.StringVar(&cfg.DatapathType, "datapath-type", "system", "netdev or system")
	fs.StringVar(&rc.ovsdb, "ovsdb", "unix:/run/openvswitch/db.sock", "OVSDB endpoint")
	fs.StringVar(&cfg.ExtBridge, "external-bridge", "br-ex", "external bridge (\"\" for none)")
	fs.StringVar(&cfg.ExtUplink, "external-uplink", "", "device to add to the external bridge")
	fs.StringVar(&rc.netnsPrefix, "netns-prefix", "", "prefix of the namespaces this helper owns (test beds only)")
	fs.StringVar(&rc.hostNetns, "host-netns", "", "named namespace where OVS runs (test beds only)")
	fs.DurationVar(&cfg.PollTimeout, "poll-timeout", 30*time.Second, "plan long-poll timeout")
	fs.StringVar(&rc.metadata.NovaURL, "metadata-url", "",
		"Nova metadata API URL, e.g. http://nova:8775 (Neutron's nova_metadata_host and port); empty: no metadata proxy")
	fs.StringVar(&rc.metadata.Secret, "metadata-secret", "",
		"shared secret signing instance IDs to Nova (Neutron's metadata_proxy_shared_secret)")
	secretFile := fs.String("metadata-secret-file", "", "file holding the metadata shared secret (instead of --metadata-secret)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if err := envflag.Apply(fs, envPrefix, getenv); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if len(ctrls) == 0 && getenv("DVRFLOW_CONTROLLERS") != "" {
		if err := ctrls.Set(getenv("DVRFLOW_CONTROLLERS")); err != nil {
			return nil, fmt.Errorf("environment variable DVRFLOW_CONTROLLERS: %w", err)
		}
	}
	cfg.Controllers, cfg.APIs = ctrls, apis
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if *secretFile != "" {
		if rc.metadata.Secret != "" {
			return nil, errors.New("both --metadata-secret and --metadata-secret-file: give one")
		}
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return nil, fmt.Errorf("metadata secret: %w", err)
		}
		rc.metadata.Secret = strings.TrimRight(string(b), "\r\n")
	}
	if rc.metadata.NovaURL != "" {
		if err := rc.metadata.Validate(); err != nil {
			return nil, err
		}
	}
	rc.metadata.NamePrefix = rc.netnsPrefix
	return rc, nil
}

func run(ctx context.Context, log *zap.Logger, args []string) error {
	rc, err := parseRun(args, os.Getenv, os.Stderr)
	if err != nil {
		return err
	}
	log = log.With(zap.String("host", rc.agent.Host))
	ovs, err := ovsdb.Dial(ctx, log, rc.ovsdb)
	if err != nil {
		return err
	}
	defer ovs.Close()
	ap := hostnet.New(log, ovs, hostnet.Config{NamePrefix: rc.netnsPrefix, HostNetns: rc.hostNetns})
	var proxies agent.Proxies
	if rc.metadata.NovaURL == "" {
		log.Info("no --metadata-url: instance metadata proxies are not started")
	} else {
		if rc.metadata.Secret == "" {
			log.Warn("empty metadata secret: Nova cannot tell the proxies' requests from forged ones")
		}
		if proxies, err = metadata.New(log, rc.metadata); err != nil {
			return err
		}
	}
	a, err := agent.New(log, rc.agent, ovs, ap, proxies)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

func plug(ctx context.Context, log *zap.Logger, cmd string, args []string) error {
	fs := flag.NewFlagSet("dvrflow-host "+cmd, flag.ContinueOnError)
	envflag.SetUsage(fs, envPrefix, usageHeader)
	var vm vmport.VM
	fs.StringVar(&vm.PortID, "port-id", "", "Neutron port ID (iface-id)")
	fs.StringVar(&vm.MAC, "mac", "", "port MAC (attached-mac)")
	fs.StringVar(&vm.Netns, "netns", "", "VM network namespace")
	fs.StringVar(&vm.CIDR, "ip", "", "VM address, CIDR; empty: none (the VM runs a DHCP client)")
	fs.StringVar(&vm.Gateway, "gw", "", "VM default gateway")
	fs.StringVar(&vm.Bridge, "bridge", "br-int", "integration bridge")
	fs.StringVar(&vm.HostNetns, "host-netns", "", "named namespace where OVS runs (test beds only)")
	endpoint := fs.String("ovsdb", "unix:/run/openvswitch/db.sock", "OVSDB endpoint")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := envflag.Apply(fs, envPrefix, os.Getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if vm.PortID == "" {
		return errors.New("--port-id is required")
	}
	ovs, err := ovsdb.Dial(ctx, log, *endpoint)
	if err != nil {
		return err
	}
	defer ovs.Close()
	if cmd == "unplug" {
		return vmport.Unplug(ctx, ovs, vm.PortID, vm.Bridge, vm.HostNetns)
	}
	return vmport.Plug(ctx, ovs, vm)
}
