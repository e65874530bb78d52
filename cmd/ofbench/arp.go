package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
)

// arpConfig is what `ofbench arp` runs.
type arpConfig struct {
	Switches    int
	Duration    time.Duration
	Window      int      // requests in flight per switch
	Controllers []string // dvrflow, osken, testcontroller, in this order
	HostsPerNet int      // hosts sharing one network
	VMsPerHost  int
	Dvrflowd    string // path of the dvrflowd binary
	PGScript    string // deploy/scripts/pg.sh
	OskenApp    string // deploy/bench/osken_arp.py
	ProfileDir  string // when set: CPU profiles of dvrflowd and of the generator while measured
}

// The controllers `ofbench arp` knows.
const (
	ctlDvrflow = "dvrflow"
	ctlOsken   = "osken"
	ctlTestCtl = "testcontroller"
)

// testControllerMaxSwitches is how many switches one ovs-testcontroller serves
// (MAX_SWITCHES in its source): the load is spread over as many processes as needed.
const testControllerMaxSwitches = 16

// arpTimeout is when an unanswered request is counted lost and its slot reused.
const arpTimeout = 10 * time.Second

// runARP runs the ARP benchmark against each controller in turn.
func runARP(ctx context.Context, log *zap.Logger, cfg arpConfig) error {
	dir, err := os.MkdirTemp("", "ofbench-arp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // the postgres user must reach its cluster inside
		return err
	}
	topo := newARPTopology(cfg)
	fmt.Printf("arp: %d simulated OF1.3 switches (one process, this one), %d networks of %d hosts, %d VMs per host;\n",
		cfg.Switches, topo.Nets, cfg.HostsPerNet, cfg.VMsPerHost)
	fmt.Printf("     each switch keeps %d ARP requests in flight as PACKET_INs (table %d, cookie %#x, in_port the VM's;\n",
		cfg.Window, apps.IntARPResponder, topo.Cook)
	fmt.Println("     to ovs-testcontroller the same frames as table-0 misses, the only packet-ins a learning switch handles)")
	fmt.Printf("     for the other addresses of its network; %v measured after a warm-up; lost = unanswered for %v\n", cfg.Duration, arpTimeout)
	var rows []arpRow
	for _, name := range cfg.Controllers {
		var row arpRow
		switch name {
		case ctlDvrflow:
			row, err = arpDvrflow(ctx, log, cfg, topo, dir)
		case ctlOsken:
			row, err = arpOsken(ctx, log, cfg, topo, dir)
		case ctlTestCtl:
			row, err = arpTestController(ctx, log, cfg, topo, dir)
		default:
			return fmt.Errorf("unknown controller %q (want %s, %s or %s)", name, ctlDvrflow, ctlOsken, ctlTestCtl)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		row.name = name
		rows = append(rows, row)
		fmt.Printf("  %s done: %.0f/s\n", name, row.perSec)
	}
	fmt.Printf("\n%-16s %6s %12s %10s %10s %8s %12s %7s %7s %7s %7s  %s\n", "controller", "procs", "answered/s", "p50", "p99",
		"ctl CPU", "per CPU-s", "lost", "wrong", "stray", "redials", "note")
	perSec, perCPUs := map[string]float64{}, map[string]float64{}
	for _, r := range rows {
		perSec[r.name] = r.perSec
		if r.cpu > 0 {
			perCPUs[r.name] = r.perSec * cfg.Duration.Seconds() / r.cpu
		}
		perCPU := 0.0
		if r.cpu > 0 {
			perCPU = r.perSec * cfg.Duration.Seconds() / r.cpu
		}
		fmt.Printf("%-16s %6d %12.0f %10v %10v %7.2fs %12.0f %7d %7d %7d %7d  %s\n", r.name, r.procs, r.perSec,
			r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.cpu, perCPU,
			r.lost, r.wrong, r.unmatched, r.reconnects, r.note)
	}
	if d, o := perSec[ctlDvrflow], perSec[ctlOsken]; d > 0 && o > 0 {
		fmt.Printf("\nratio dvrflow/os-ken: %.1fx answered/s (target >= 20x)", d/o)
		if dc, oc := perCPUs[ctlDvrflow], perCPUs[ctlOsken]; dc > 0 && oc > 0 {
			fmt.Printf(", %.1fx answers per controller CPU-second", dc/oc)
		}
		fmt.Println()
	}
	fmt.Printf("(2 cores shared by the generator, the controller and anything else running: ctl CPU is the\n" +
		" controller's user+system CPU time while measured, per CPU-s its answers per CPU-second)\n")
	return nil
}

// parseControllers parses the -controller list.
func parseControllers(s string) ([]string, error) {
	var out []string
	for _, c := range strings.Split(s, ",") {
		c = strings.TrimSpace(c)
		switch c {
		case ctlDvrflow, ctlOsken, ctlTestCtl:
			if slices.Contains(out, c) {
				return nil, fmt.Errorf("controller %q given twice", c)
			}
			out = append(out, c)
		case "":
		default:
			return nil, fmt.Errorf("unknown controller %q (want %s, %s or %s)", c, ctlDvrflow, ctlOsken, ctlTestCtl)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no controller given")
	}
	return out, nil
}
