package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/integration/ovsinst"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
)

const benchCookie = 0x5b00_0000_0000_0001

// runPush pushes n flows into fresh OVS bridges, with dvrflow and with ovs-ofctl, runs times.
func runPush(ctx context.Context, log *zap.Logger, n, runs int) error {
	if os.Geteuid() != 0 {
		return errors.New("push needs root to run ovs-vswitchd")
	}
	inst, err := ovsinst.Start(ctx, log, "", "")
	if err != nil {
		return err
	}
	defer func() {
		if err := inst.Stop(); err != nil {
			log.Error("stopping OVS", zap.Error(err))
		}
	}()
	flows := ofsim.GenerateFlows(n, benchCookie)
	file := filepath.Join(inst.Dir(), "flows.txt")
	var sb strings.Builder
	for i := range flows {
		sb.WriteString(flows[i].String())
		sb.WriteByte('\n')
	}
	if err := os.WriteFile(file, []byte(sb.String()), 0o600); err != nil {
		return fmt.Errorf("writing flow file: %w", err)
	}

	fmt.Printf("pushing %d flows (4 tables) into fresh userspace bridges, OVS %s\n", n, ovsVersion(ctx, inst))
	var sumOurs, sumOfctl float64
	for r := range runs {
		ours, err := pushDvrflow(ctx, log, inst, fmt.Sprintf("obd%d", r), uint64(0xbe00+r), flows)
		if err != nil {
			return err
		}
		ofctl, err := pushOfctl(ctx, inst, fmt.Sprintf("obo%d", r), uint64(0xbf00+r), file, n)
		if err != nil {
			return err
		}
		ro, rc := float64(n)/ours.Seconds(), float64(n)/ofctl.Seconds()
		sumOurs += ro
		sumOfctl += rc
		fmt.Printf("run %d: dvrflow %8.0f flows/s (%v)   ovs-ofctl --bundle add-flows %8.0f flows/s (%v)   ratio %.2fx\n",
			r+1, ro, ours.Round(time.Millisecond), rc, ofctl.Round(time.Millisecond), ro/rc)
	}
	fmt.Printf("mean: dvrflow %.0f flows/s, ovs-ofctl %.0f flows/s, ratio %.2fx (target >= 0.90x)\n",
		sumOurs/float64(runs), sumOfctl/float64(runs), sumOurs/sumOfctl)
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

func newBridge(ctx context.Context, inst *ovsinst.Instance, name string, dpid uint64) error {
	_, err := inst.Vsctl(ctx, "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev",
		"fail_mode=secure", "protocols=OpenFlow13", fmt.Sprintf("other-config:datapath-id=%016x", dpid))
	return err
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

// pushDvrflow connects a fresh bridge to a controller and times one reconcile pass: dump
// of the empty bridge, the bundle of n adds, commit and barrier.
func pushDvrflow(ctx context.Context, log *zap.Logger, inst *ovsinst.Instance, bridge string, dpid uint64, flows []ofproto.Flow) (time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
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
	defer func() { cancel(); <-done }()

	if err := newBridge(ctx, inst, bridge, dpid); err != nil {
		return 0, err
	}
	defer func() { _, _ = inst.Vsctl(context.WithoutCancel(ctx), "del-br", bridge) }()
	if _, err := inst.Vsctl(ctx, "set-controller", bridge, "tcp:"+ln.Addr().String()); err != nil {
		return 0, err
	}
	var sess *controller.Session
	select {
	case sess = <-connected:
	case <-time.After(30 * time.Second):
		return 0, errors.New("bridge did not connect")
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	rec := controller.NewReconciler(log, dpid, controller.ReconcilerConfig{AlwaysBundle: true})
	if err := rec.SetDesired(flows); err != nil {
		return 0, err
	}
	rec.Bind(sess)
	start := time.Now()
	res, err := rec.Reconcile(ctx)
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if res.Adds != len(flows) || res.Failed != 0 {
		return 0, fmt.Errorf("dvrflow pass: %+v", res)
	}
	if got, err := flowCount(ctx, inst, bridge); err != nil || got != len(flows) {
		return 0, fmt.Errorf("dvrflow bridge holds %d flows (%v), want %d", got, err, len(flows))
	}
	return took, nil
}

// pushOfctl times `ovs-ofctl -O OpenFlow13 --bundle add-flows` of the same flows on a fresh
// bridge.
func pushOfctl(ctx context.Context, inst *ovsinst.Instance, bridge string, dpid uint64, file string, n int) (time.Duration, error) {
	if err := newBridge(ctx, inst, bridge, dpid); err != nil {
		return 0, err
	}
	defer func() { _, _ = inst.Vsctl(context.WithoutCancel(ctx), "del-br", bridge) }()
	start := time.Now()
	if _, err := inst.Ofctl(ctx, bridge, "--bundle", "add-flows", ovsinst.Switch, file); err != nil {
		return 0, err
	}
	took := time.Since(start)
	if got, err := flowCount(ctx, inst, bridge); err != nil || got != n {
		return 0, fmt.Errorf("ovs-ofctl bridge holds %d flows (%v), want %d", got, err, n)
	}
	return took, nil
}
