package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
)

// arpConfig is what `ofbench arp` runs.
type arpConfig struct {
	simConfig
	Controllers []string // dvrflow, osken, testcontroller, in this order
	OskenApp    string   // deploy/bench/osken_arp.py
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
	topo := newSimTopology(cfg.simConfig, "arpbench")
	fmt.Printf("arp: %d simulated OF1.3 switches (one process, this one), %d networks of %d hosts, %d VMs per host;\n",
		cfg.Switches, topo.Nets, cfg.HostsPerNet, cfg.VMsPerHost)
	fmt.Printf("     each switch keeps %d ARP requests in flight as PACKET_INs (table %d, cookie %#x, in_port the VM's;\n",
		cfg.Window, apps.IntARPResponder, topo.Cook)
	fmt.Println("     to ovs-testcontroller the same frames as table-0 misses, the only packet-ins a learning switch handles)")
	fmt.Printf("     for the other addresses of its network; %v measured after a warm-up; lost = unanswered for %v\n", cfg.Duration, lostAfter)
	var rows []loadRow
	for _, name := range cfg.Controllers {
		var row loadRow
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
	printRows("controller", "answered/s", rows, cfg.Duration)
	byName := map[string]*loadRow{}
	for i := range rows {
		byName[rows[i].name] = &rows[i]
	}
	if d, o := byName[ctlDvrflow], byName[ctlOsken]; d != nil && o != nil {
		printRatio("dvrflow/os-ken", d, o, cfg.Duration, "answered/s (target >= 20x)", "answers per controller CPU-second")
	}
	fmt.Printf("(2 cores shared by the generator, the controller and anything else running: CPU is the\n" +
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
