// The controllers the ARP benchmark runs: dvrflow, os-ken and ovs-testcontroller.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"go.uber.org/zap"
)

// arpOsken runs the minimal os-ken app (osken-manager) with the address table.
func arpOsken(ctx context.Context, log *zap.Logger, cfg arpConfig, t *simTopology, dir string) (loadRow, error) {
	table := map[string]string{}
	for _, vm := range t.VMs {
		table[vm.IP.String()] = vm.MAC.String()
	}
	tf := filepath.Join(dir, "arp-table.json")
	b, err := json.Marshal(table)
	if err != nil {
		return loadRow{}, err
	}
	if err := os.WriteFile(tf, b, 0o644); err != nil {
		return loadRow{}, err
	}
	addr, err := freeAddr()
	if err != nil {
		return loadRow{}, err
	}
	_, port, _ := net.SplitHostPort(addr)
	p, err := startProc(ctx, dir, "osken", []string{"OFBENCH_ARP_TABLE=" + tf}, "osken-manager",
		"--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", port, cfg.OskenApp)
	if err != nil {
		return loadRow{}, err
	}
	defer p.stop()
	if err := p.waitListening(ctx, addr); err != nil {
		return loadRow{}, err
	}
	g := &arpGen{loadGen: loadGen{log: log}}
	g.init(t)
	row, err := g.run(ctx, g.dial([]string{addr}), []int{p.cmd.Process.Pid}, cfg.Window, cfg.Duration, nil)
	if err != nil {
		return row, fmt.Errorf("%w\nosken-manager log:\n%s", err, p.tail())
	}
	row.procs = 1
	row.note = "os-ken " + oskenVersion() + ": PACKET_OUT with the ARP reply"
	return row, nil
}

func oskenVersion() string {
	out, err := exec.Command("/usr/bin/python3", "-c", "import os_ken; print(os_ken.__version__)").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

// arpTestController runs ovs-testcontroller, a learning switch: it does not answer ARP, it
// floods the request back in a PACKET_OUT, and that is what is counted.
func arpTestController(ctx context.Context, log *zap.Logger, cfg arpConfig, t *simTopology, dir string) (loadRow, error) {
	n := (cfg.Switches + testControllerMaxSwitches - 1) / testControllerMaxSwitches
	var addrs []string
	var procs []*proc
	var pids []int
	for i := range n {
		addr, err := freeAddr()
		if err != nil {
			return loadRow{}, err
		}
		host, port, _ := net.SplitHostPort(addr)
		p, err := startProc(ctx, dir, fmt.Sprintf("testcontroller-%d", i), nil, "ovs-testcontroller",
			"-O", "OpenFlow13", "--unixctl="+filepath.Join(dir, fmt.Sprintf("tc%d.ctl", i)), "-vconsole:info",
			"ptcp:"+port+":"+host)
		if err != nil {
			return loadRow{}, err
		}
		defer p.stop()
		if err := p.waitListening(ctx, addr); err != nil {
			return loadRow{}, err
		}
		addrs = append(addrs, addr)
		procs = append(procs, p)
		pids = append(pids, p.cmd.Process.Pid)
	}
	// A learning switch ignores packet-ins that are not table misses (lswitch.c), so for it
	// the same frames come as table-0 misses.
	tc := *t
	tc.Table, tc.Cook, tc.Miss = 0, 0, true
	g := &arpGen{loadGen: loadGen{log: log}}
	g.init(&tc)
	row, err := g.run(ctx, g.dial(addrs), pids, cfg.Window, cfg.Duration, nil)
	if err != nil {
		return row, fmt.Errorf("%w\novs-testcontroller log (the first):\n%s", err, procs[0].tail())
	}
	row.procs = n
	row.note = fmt.Sprintf("learning switch, does not answer ARP: counts its flooding PACKET_OUT; %d switches per process (its MAX_SWITCHES)", testControllerMaxSwitches)
	return row, nil
}

// arpDvrflow runs dvrflowd on a private PostgreSQL, creates the topology through its API
// and loads it once every switch has its ARP_RESPONDER flows.
func arpDvrflow(ctx context.Context, log *zap.Logger, cfg arpConfig, t *simTopology, dir string) (loadRow, error) {
	d, err := startDvrflowd(ctx, log, cfg.simConfig, dir)
	if err != nil {
		return loadRow{}, err
	}
	defer d.stop()
	if err := d.load(ctx, t); err != nil {
		return loadRow{}, err
	}
	g := &arpGen{loadGen: loadGen{log: log}}
	g.init(t)
	ready := d.ready(len(g.sims), "ARP_RESPONDER flows", func(ctx context.Context) error { return arpFlowsReady(ctx, g, t) })
	return d.measure(ctx, &g.loadGen, "arp", ready, "dvrflowd (private PostgreSQL): PACKET_OUT with the ARP reply")
}
