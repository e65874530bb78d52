package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/testbed/ovsinst"
)

// What the benchmarks against real OVS (push, delta) share: a private ovs-vswitchd,
// fresh userspace bridges, flow files loaded and counted with ovs-ofctl, and a bridge
// connected to an in-process controller.

// startOVS starts a private ovs-vswitchd for the benchmark named bench (it needs root);
// stop stops it, logging a failure.
func startOVS(ctx context.Context, log *zap.Logger, bench string) (inst *ovsinst.Instance, stop func(), err error) {
	if os.Geteuid() != 0 {
		return nil, nil, fmt.Errorf("%s needs root to run ovs-vswitchd", bench)
	}
	inst, err = ovsinst.Start(ctx, log, "", "")
	if err != nil {
		return nil, nil, fmt.Errorf("start OVS: %w", err)
	}
	return inst, func() {
		if err := inst.Stop(); err != nil {
			log.Error("stopping OVS", zap.Error(err))
		}
	}, nil
}

// writeFlowFile writes flows to path, one a line in ovs-ofctl syntax.
func writeFlowFile(path string, flows []ofproto.Flow) error {
	var sb strings.Builder
	for i := range flows {
		sb.WriteString(flows[i].String())
		sb.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		return fmt.Errorf("writing flow file: %w", err)
	}
	return nil
}

func ovsVersion(ctx context.Context, inst *ovsinst.Instance) string {
	out, err := inst.Vsctl(ctx, "--version")
	if err != nil {
		return "?"
	}
	first, _, _ := strings.Cut(out, "\n")
	return first
}

// newBridge creates an empty OpenFlow 1.3 userspace bridge with the given datapath ID.
func newBridge(ctx context.Context, inst *ovsinst.Instance, name string, dpid uint64) error {
	_, err := inst.Vsctl(ctx, "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev",
		"fail_mode=secure", "protocols=OpenFlow13", fmt.Sprintf("other-config:datapath-id=%016x", dpid))
	return err
}

// dropBridge deletes a bridge, also when ctx is done.
func dropBridge(ctx context.Context, inst *ovsinst.Instance, name string) {
	_, _ = inst.Vsctl(context.WithoutCancel(ctx), "del-br", name)
}

func flowCount(ctx context.Context, inst *ovsinst.Instance, bridge string) (int, error) {
	out, err := inst.Ofctl(ctx, bridge, "dump-aggregate")
	if err != nil {
		return 0, err
	}
	_, rest, ok := strings.Cut(out, "flow_count=")
	if !ok {
		return 0, fmt.Errorf("dump-aggregate: %q", out)
	}
	return strconv.Atoi(strings.Fields(rest)[0])
}

// checkFlowCount fails unless bridge holds want flows; who names the side that filled it.
func checkFlowCount(ctx context.Context, inst *ovsinst.Instance, bridge string, want int, who string) error {
	if got, err := flowCount(ctx, inst, bridge); err != nil || got != want {
		return fmt.Errorf("%s bridge %s holds %d flows (%v), want %d", who, bridge, got, err, want)
	}
	return nil
}

// addFlows runs `ovs-ofctl -O OpenFlow13 --bundle add-flows` of file on bridge, checks the
// bridge then holds want flows, and returns how long ovs-ofctl took (wall clock: process
// start, parsing, connection, bundle, exit).
func addFlows(ctx context.Context, inst *ovsinst.Instance, bridge, file string, want int) (time.Duration, error) {
	start := time.Now()
	if _, err := inst.Ofctl(ctx, bridge, "--bundle", "add-flows", ovsinst.Switch, file); err != nil {
		return 0, err
	}
	took := time.Since(start)
	if err := checkFlowCount(ctx, inst, bridge, want, "ovs-ofctl"); err != nil {
		return 0, err
	}
	return took, nil
}

// controlledBridge creates a fresh bridge connected to an in-process controller and
// returns the bridge's session once it has connected; stop deletes the bridge and stops
// the controller. OVS flushes a bridge's flows when it gains its first controller: load
// flows only after this returns.
func controlledBridge(ctx context.Context, log *zap.Logger, inst *ovsinst.Instance, bridge string, dpid uint64) (sess *controller.Session, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("controller listener: %w", err)
	}
	sctx, cancel := context.WithCancel(ctx)
	srv := controller.NewServer(log, controller.Config{})
	connected := make(chan *controller.Session, 1)
	srv.Subscribe(func(e controller.Event) {
		if c, ok := e.(controller.SwitchConnected); ok && c.DPID == dpid {
			select {
			case connected <- c.Session:
			default:
			}
		}
	})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	stopServer := func() { cancel(); <-done }
	if err := newBridge(ctx, inst, bridge, dpid); err != nil {
		stopServer()
		return nil, nil, err
	}
	stop = func() { dropBridge(ctx, inst, bridge); stopServer() }
	if _, err := inst.Vsctl(ctx, "set-controller", bridge, "tcp:"+ln.Addr().String()); err != nil {
		stop()
		return nil, nil, err
	}
	select {
	case sess = <-connected:
		return sess, stop, nil
	case <-time.After(30 * time.Second):
		stop()
		return nil, nil, fmt.Errorf("bridge %s did not connect", bridge)
	case <-ctx.Done():
		stop()
		return nil, nil, ctx.Err()
	}
}
