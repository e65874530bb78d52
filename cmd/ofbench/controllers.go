// The controllers the ARP benchmark runs: dvrflow, os-ken and ovs-testcontroller.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/dvrflow/dvrflow/apiclient"
	"go.uber.org/zap"
)

// arpOsken runs the minimal os-ken app (osken-manager) with the address table.
func arpOsken(ctx context.Context, log *zap.Logger, cfg arpConfig, t *arpTopology, dir string) (arpRow, error) {
	table := map[string]string{}
	for _, vm := range t.VMs {
		table[vm.IP.String()] = vm.MAC.String()
	}
	tf := filepath.Join(dir, "arp-table.json")
	b, err := json.Marshal(table)
	if err != nil {
		return arpRow{}, err
	}
	if err := os.WriteFile(tf, b, 0o644); err != nil {
		return arpRow{}, err
	}
	addr, err := freeAddr()
	if err != nil {
		return arpRow{}, err
	}
	_, port, _ := net.SplitHostPort(addr)
	p, err := startProc(ctx, dir, "osken", []string{"OFBENCH_ARP_TABLE=" + tf}, "osken-manager",
		"--ofp-listen-host", "127.0.0.1", "--ofp-tcp-listen-port", port, cfg.OskenApp)
	if err != nil {
		return arpRow{}, err
	}
	defer p.stop()
	if err := p.waitListening(ctx, addr); err != nil {
		return arpRow{}, err
	}
	g := &arpGen{log: log}
	g.init(t)
	row, err := g.run(ctx, []string{addr}, []int{p.cmd.Process.Pid}, cfg.Window, cfg.Duration, nil)
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
func arpTestController(ctx context.Context, log *zap.Logger, cfg arpConfig, t *arpTopology, dir string) (arpRow, error) {
	n := (cfg.Switches + testControllerMaxSwitches - 1) / testControllerMaxSwitches
	var addrs []string
	var procs []*proc
	var pids []int
	for i := range n {
		addr, err := freeAddr()
		if err != nil {
			return arpRow{}, err
		}
		host, port, _ := net.SplitHostPort(addr)
		p, err := startProc(ctx, dir, fmt.Sprintf("testcontroller-%d", i), nil, "ovs-testcontroller",
			"-O", "OpenFlow13", "--unixctl="+filepath.Join(dir, fmt.Sprintf("tc%d.ctl", i)), "-vconsole:info",
			"ptcp:"+port+":"+host)
		if err != nil {
			return arpRow{}, err
		}
		defer p.stop()
		if err := p.waitListening(ctx, addr); err != nil {
			return arpRow{}, err
		}
		addrs = append(addrs, addr)
		procs = append(procs, p)
		pids = append(pids, p.cmd.Process.Pid)
	}
	// A learning switch ignores packet-ins that are not table misses (lswitch.c), so for it
	// the same frames come as table-0 misses.
	tc := *t
	tc.Table, tc.Cook, tc.Miss = 0, 0, true
	g := &arpGen{log: log}
	g.init(&tc)
	row, err := g.run(ctx, addrs, pids, cfg.Window, cfg.Duration, nil)
	if err != nil {
		return row, fmt.Errorf("%w\novs-testcontroller log (the first):\n%s", err, procs[0].tail())
	}
	row.procs = n
	row.note = fmt.Sprintf("learning switch, does not answer ARP: counts its flooding PACKET_OUT; %d switches per process (its MAX_SWITCHES)", testControllerMaxSwitches)
	return row, nil
}

// arpDvrflow runs dvrflowd on a private PostgreSQL, creates the topology through its API
// and loads it once every switch has its ARP_RESPONDER flows.
func arpDvrflow(ctx context.Context, log *zap.Logger, cfg arpConfig, t *arpTopology, dir string) (arpRow, error) {
	pgDir := filepath.Join(dir, "pg")
	if out, err := exec.CommandContext(ctx, cfg.PGScript, "start", pgDir).CombinedOutput(); err != nil {
		return arpRow{}, fmt.Errorf("%s start: %w: %s", cfg.PGScript, err, out)
	}
	defer func() {
		if out, err := exec.Command(cfg.PGScript, "stop", pgDir).CombinedOutput(); err != nil {
			log.Warn("stopping PostgreSQL", zap.Error(err), zap.ByteString("output", out))
		}
	}()
	dsn, err := exec.CommandContext(ctx, cfg.PGScript, "dsn", pgDir).Output()
	if err != nil {
		return arpRow{}, fmt.Errorf("%s dsn: %w", cfg.PGScript, err)
	}
	apiAddr, err := freeAddr()
	if err != nil {
		return arpRow{}, err
	}
	ofAddr, err := freeAddr()
	if err != nil {
		return arpRow{}, err
	}
	token := fmt.Sprintf("arpbench-%d", time.Now().UnixNano())
	args := []string{"--db-url", strings.TrimSpace(string(dsn)), "--listen", apiAddr, "--of-listen", ofAddr, "--log-level", "warn"}
	var debugAddr string
	if cfg.ProfileDir != "" {
		if debugAddr, err = freeAddr(); err != nil {
			return arpRow{}, err
		}
		args = append(args, "--debug-listen", debugAddr)
	}
	p, err := startProc(ctx, dir, "dvrflowd", []string{"DVRFLOW_AUTH_TOKEN=" + token}, cfg.Dvrflowd, args...)
	if err != nil {
		return arpRow{}, err
	}
	defer p.stop()
	if err := p.waitListening(ctx, apiAddr); err != nil {
		return arpRow{}, err
	}
	c := apiclient.New("http://"+apiAddr, token, &http.Client{Timeout: time.Minute})
	start := time.Now()
	if err := createTopology(ctx, c, t); err != nil {
		return arpRow{}, fmt.Errorf("%w\ndvrflowd log:\n%s", err, p.tail())
	}
	fmt.Printf("  dvrflow: topology created through the API in %v (%d hosts, %d networks, %d ports)\n",
		time.Since(start).Round(time.Millisecond), t.Hosts, t.Nets, len(t.VMs))
	if err := p.waitListening(ctx, ofAddr); err != nil {
		return arpRow{}, err
	}
	g := &arpGen{log: log}
	g.init(t)
	if cfg.ProfileDir != "" {
		g.onMeasure = func(ctx context.Context, d time.Duration) {
			profileDuring(ctx, log, cfg.ProfileDir, "http://"+debugAddr, d)
		}
	}
	ready := func(ctx context.Context) error {
		start := time.Now()
		if err := arpFlowsReady(ctx, g, t); err != nil {
			return fmt.Errorf("%w\ndvrflowd log:\n%s", err, p.tail())
		}
		fmt.Printf("  dvrflow: %d switches connected and programmed with their ARP_RESPONDER flows in %v\n",
			len(g.sims), time.Since(start).Round(time.Millisecond))
		return nil
	}
	row, err := g.run(ctx, []string{ofAddr}, []int{p.cmd.Process.Pid}, cfg.Window, cfg.Duration, ready)
	if err != nil {
		return row, fmt.Errorf("%w\ndvrflowd log:\n%s", err, p.tail())
	}
	row.procs = 1
	row.note = "dvrflowd (private PostgreSQL): PACKET_OUT with the ARP reply"
	return row, nil
}
