package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
	"github.com/dvrflow/dvrflow/testbed/ovsinst"
)

const benchCookie = 0x5b00_0000_0000_0001

// runPush pushes n flows into fresh OVS bridges, with dvrflow and with ovs-ofctl, runs times.
func runPush(ctx context.Context, log *zap.Logger, n, runs int) error {
	inst, stop, err := startOVS(ctx, log, "push")
	if err != nil {
		return err
	}
	defer stop()
	flows := ofsim.GenerateFlows(n, benchCookie)
	file := filepath.Join(inst.Dir(), "flows.txt")
	if err := writeFlowFile(file, flows); err != nil {
		return err
	}

	fmt.Printf("pushing %d flows (4 tables) into fresh userspace bridges, OVS %s\n", n, ovsVersion(ctx, inst))
	var sumOurs, sumOfctl float64
	for r := range runs {
		// Who goes first alternates: a run's second push may find the machine warmer.
		var ours, ofctl time.Duration
		first := "dvrflow"
		dvrflow := func() (err error) {
			ours, err = pushDvrflow(ctx, log, inst, fmt.Sprintf("obd%d", r), uint64(0xbe00+r), flows)
			return err
		}
		ovsOfctl := func() (err error) {
			ofctl, err = pushOfctl(ctx, inst, fmt.Sprintf("obo%d", r), uint64(0xbf00+r), file, n)
			return err
		}
		order := []func() error{dvrflow, ovsOfctl}
		if r%2 == 1 {
			first, order = "ovs-ofctl", []func() error{ovsOfctl, dvrflow}
		}
		for _, push := range order {
			if err := push(); err != nil {
				return err
			}
		}
		ro, rc := float64(n)/ours.Seconds(), float64(n)/ofctl.Seconds()
		sumOurs += ro
		sumOfctl += rc
		fmt.Printf("run %d (%s first): dvrflow %8.0f flows/s (%v)   ovs-ofctl --bundle add-flows %8.0f flows/s (%v)   ratio %.2fx\n",
			r+1, first, ro, ours.Round(time.Millisecond), rc, ofctl.Round(time.Millisecond), ro/rc)
	}
	fmt.Printf("mean: dvrflow %.0f flows/s, ovs-ofctl %.0f flows/s, ratio %.2fx (target >= 0.90x)\n",
		sumOurs/float64(runs), sumOfctl/float64(runs), sumOurs/sumOfctl)
	fmt.Println("dvrflow's time: validating and packing the desired flows, the dump of the empty bridge, the bundle, its commit and barrier; ovs-ofctl's: its whole run, parsing the flow file included")
	return nil
}

// pushDvrflow connects a fresh bridge to a controller and times one reconcile pass: dump
// of the empty bridge, the bundle of n adds, commit and barrier.
func pushDvrflow(ctx context.Context, log *zap.Logger, inst *ovsinst.Instance, bridge string, dpid uint64, flows []ofproto.Flow) (time.Duration, error) {
	sess, stop, err := controlledBridge(ctx, log, inst, bridge, dpid)
	if err != nil {
		return 0, err
	}
	defer stop()
	rec := controller.NewReconciler(log, dpid, controller.ReconcilerConfig{AlwaysBundle: true})
	// The clock covers what ovs-ofctl's covers: from the flows as data (its file) to the
	// barrier, validation and packing of the desired set included.
	start := time.Now()
	if err := rec.SetDesired(flows); err != nil {
		return 0, err
	}
	rec.Bind(sess)
	res, err := rec.Reconcile(ctx)
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if res.Adds != len(flows) || res.Failed != 0 {
		return 0, fmt.Errorf("dvrflow pass: %+v", res)
	}
	if err := checkFlowCount(ctx, inst, bridge, len(flows), "dvrflow"); err != nil {
		return 0, err
	}
	return took, nil
}

// pushOfctl times `ovs-ofctl -O OpenFlow13 --bundle add-flows` of the same flows on a fresh
// bridge.
func pushOfctl(ctx context.Context, inst *ovsinst.Instance, bridge string, dpid uint64, file string, n int) (time.Duration, error) {
	if err := newBridge(ctx, inst, bridge, dpid); err != nil {
		return 0, err
	}
	defer dropBridge(ctx, inst, bridge)
	return addFlows(ctx, inst, bridge, file, n)
}
