// Command dvrflow-host is dvrflow's host helper: it sets up the host's OVS bridges,
// registers the host with the dvrflow API and keeps the host's namespaces matching
// the plan the API serves. Subcommands plug and unplug attach a VM port as Nova does.
//
//	dvrflow-host --host compute1 --api http://192.168.248.254:9696 --tunnel-ip 192.168.248.1 \
//	    --mode dvr --controller tcp:192.168.248.254:6653 --ovsdb unix:/run/openvswitch/db.sock
//	dvrflow-host plug --port-id ID --mac MAC --netns VMNS --ip 10.0.1.5/24 --gw 10.0.1.1
//	dvrflow-host unplug --port-id ID
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/deploy/agent"
	"github.com/dvrflow/dvrflow/deploy/hostnet"
	"github.com/dvrflow/dvrflow/deploy/ovsdb"
	"github.com/dvrflow/dvrflow/deploy/vmport"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

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
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("dvrflow-host failed", zap.String("cmd", cmd), zap.Error(err))
		os.Exit(1)
	}
}

func run(ctx context.Context, log *zap.Logger, args []string) error {
	fs := flag.NewFlagSet("dvrflow-host", flag.ContinueOnError)
	var cfg agent.Config
	var ctrls listFlag
	fs.StringVar(&cfg.Host, "host", env("DVRFLOW_HOST", ""), "host name (binding:host_id) [DVRFLOW_HOST]")
	fs.StringVar(&cfg.API, "api", env("DVRFLOW_API", ""), "dvrflowd REST API URL [DVRFLOW_API]")
	fs.StringVar(&cfg.Token, "token", env("DVRFLOW_TOKEN", ""), "API token (X-Auth-Token) [DVRFLOW_TOKEN]")
	fs.StringVar(&cfg.TunnelIP, "tunnel-ip", env("DVRFLOW_TUNNEL_IP", ""), "VXLAN endpoint IPv4 address [DVRFLOW_TUNNEL_IP]")
	fs.StringVar(&cfg.Mode, "mode", env("DVRFLOW_MODE", "dvr"), "dvr or dvr_snat [DVRFLOW_MODE]")
	fs.Var(&ctrls, "controller", "OpenFlow controller target tcp:IP:6653 (repeatable) [DVRFLOW_CONTROLLERS, comma separated]")
	fs.StringVar(&cfg.DatapathType, "datapath-type", env("DVRFLOW_DATAPATH_TYPE", "system"), "netdev or system")
	endpoint := fs.String("ovsdb", env("DVRFLOW_OVSDB", "unix:/run/openvswitch/db.sock"), "OVSDB endpoint")
	fs.StringVar(&cfg.ExtBridge, "external-bridge", env("DVRFLOW_EXTERNAL_BRIDGE", "br-ex"), "external bridge (\"\" for none)")
	fs.StringVar(&cfg.ExtUplink, "external-uplink", env("DVRFLOW_EXTERNAL_UPLINK", ""), "device to add to the external bridge")
	prefix := fs.String("netns-prefix", "", "prefix of the namespaces this helper owns (test beds only)")
	hostNS := fs.String("host-netns", "", "named namespace where OVS runs (test beds only)")
	poll := fs.Duration("poll-timeout", 30*time.Second, "plan long-poll timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Controllers = ctrls
	if len(cfg.Controllers) == 0 && os.Getenv("DVRFLOW_CONTROLLERS") != "" {
		cfg.Controllers = strings.Split(os.Getenv("DVRFLOW_CONTROLLERS"), ",")
	}
	cfg.PollTimeout = *poll
	if err := cfg.Validate(); err != nil {
		return err
	}
	log = log.With(zap.String("host", cfg.Host))
	ovs, err := ovsdb.Dial(ctx, log, *endpoint)
	if err != nil {
		return err
	}
	defer ovs.Close()
	ap := hostnet.New(log, ovs, hostnet.Config{NamePrefix: *prefix, HostNetns: *hostNS})
	a, err := agent.New(log, cfg, ovs, ap)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

func plug(ctx context.Context, log *zap.Logger, cmd string, args []string) error {
	fs := flag.NewFlagSet("dvrflow-host "+cmd, flag.ContinueOnError)
	var vm vmport.VM
	fs.StringVar(&vm.PortID, "port-id", "", "Neutron port ID (iface-id)")
	fs.StringVar(&vm.MAC, "mac", "", "port MAC (attached-mac)")
	fs.StringVar(&vm.Netns, "netns", "", "VM network namespace")
	fs.StringVar(&vm.CIDR, "ip", "", "VM address, CIDR")
	fs.StringVar(&vm.Gateway, "gw", "", "VM default gateway")
	fs.StringVar(&vm.Bridge, "bridge", "br-int", "integration bridge")
	fs.StringVar(&vm.HostNetns, "host-netns", "", "named namespace where OVS runs (test beds only)")
	endpoint := fs.String("ovsdb", env("DVRFLOW_OVSDB", "unix:/run/openvswitch/db.sock"), "OVSDB endpoint")
	if err := fs.Parse(args); err != nil {
		return err
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
