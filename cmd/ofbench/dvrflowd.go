// The dvrflowd the packet-in benchmarks run: on a private PostgreSQL, its topology made
// through its API.

package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apiclient"
)

// dvrflowdRun is a dvrflowd the benchmark started.
type dvrflowdRun struct {
	cfg      simConfig
	log      *zap.Logger
	pgDir    string
	p        *proc
	api      *apiclient.Client
	ofAddr   string
	debugURL string // its pprof, when profiling
}

// startDvrflowd starts a private PostgreSQL in dir and dvrflowd on it, with args after its
// own, and waits for its API. The caller ends both with stop; on failure it ends what it
// started itself.
func startDvrflowd(ctx context.Context, log *zap.Logger, cfg simConfig, dir string, args ...string) (*dvrflowdRun, error) {
	d := &dvrflowdRun{cfg: cfg, log: log, pgDir: filepath.Join(dir, "pg")}
	if out, err := exec.CommandContext(ctx, cfg.PGScript, "start", d.pgDir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%s start: %w: %s", cfg.PGScript, err, out)
	}
	dsn, err := exec.CommandContext(ctx, cfg.PGScript, "dsn", d.pgDir).Output()
	if err != nil {
		d.stop()
		return nil, fmt.Errorf("%s dsn: %w", cfg.PGScript, err)
	}
	if err := d.start(ctx, strings.TrimSpace(string(dsn)), dir, args); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

func (d *dvrflowdRun) start(ctx context.Context, dsn, dir string, extra []string) error {
	apiAddr, err := freeAddr()
	if err != nil {
		return err
	}
	if d.ofAddr, err = freeAddr(); err != nil {
		return err
	}
	token := fmt.Sprintf("ofbench-%d", time.Now().UnixNano())
	args := []string{"--db-url", dsn, "--listen", apiAddr, "--of-listen", d.ofAddr, "--log-level", "warn"}
	if d.cfg.ProfileDir != "" {
		debugAddr, err := freeAddr()
		if err != nil {
			return err
		}
		args = append(args, "--debug-listen", debugAddr)
		d.debugURL = "http://" + debugAddr
	}
	if d.p, err = startProc(ctx, dir, "dvrflowd", []string{"DVRFLOW_AUTH_TOKEN=" + token}, d.cfg.Dvrflowd, append(args, extra...)...); err != nil {
		return err
	}
	if err := d.p.waitListening(ctx, apiAddr); err != nil {
		return err
	}
	d.api = apiclient.New("http://"+apiAddr, token, &http.Client{Timeout: time.Minute})
	return nil
}

// stop ends dvrflowd and PostgreSQL.
func (d *dvrflowdRun) stop() {
	if d.p != nil {
		d.p.stop()
	}
	if out, err := exec.Command(d.cfg.PGScript, "stop", d.pgDir).CombinedOutput(); err != nil {
		d.log.Warn("stopping PostgreSQL", zap.Error(err), zap.ByteString("output", out))
	}
}

// load creates topology t through the API and waits for the OpenFlow listener.
func (d *dvrflowdRun) load(ctx context.Context, t *simTopology) error {
	start := time.Now()
	if err := createTopology(ctx, d.api, t); err != nil {
		return d.failed(err)
	}
	fmt.Printf("  dvrflow: topology created through the API in %v (%d hosts, %d networks, %d ports)\n",
		time.Since(start).Round(time.Millisecond), t.Hosts, t.Nets, len(t.VMs))
	return d.p.waitListening(ctx, d.ofAddr)
}

// ready returns a step that runs wait, for the n switches to get their flows (what), and
// says how long it took.
func (d *dvrflowdRun) ready(n int, what string, wait func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		start := time.Now()
		if err := wait(ctx); err != nil {
			return err // measure adds dvrflowd's log
		}
		fmt.Printf("  dvrflow: %d switches connected and programmed with their %s in %v\n",
			n, what, time.Since(start).Round(time.Millisecond))
		return nil
	}
}

// measure loads dvrflowd with g's switches once ready returns, profiled when profiling
// (files named after bench); note describes the row.
func (d *dvrflowdRun) measure(ctx context.Context, g *loadGen, bench string, ready func(context.Context) error, note string) (loadRow, error) {
	if d.cfg.ProfileDir != "" {
		g.onMeasure = func(ctx context.Context, dur time.Duration) {
			profileDuring(ctx, d.log, d.cfg.ProfileDir, bench, d.debugURL, dur)
		}
	}
	row, err := g.run(ctx, g.dial([]string{d.ofAddr}), d.pids(), d.cfg.Window, d.cfg.Duration, ready)
	if err != nil {
		return row, d.failed(err)
	}
	row.procs, row.note = 1, note
	if n, err := d.packetInDrops(ctx); err != nil {
		d.log.Warn("reading dvrflowd's packet-in drops", zap.Error(err))
	} else if n > 0 {
		row.note += fmt.Sprintf("; it dropped %.0f packet-ins over a switch's budget (--packet-in-rate) in the run, "+
			"their requests counted lost only after %v", n, lostAfter)
	}
	return row, nil
}

// packetInDrops returns how many packet-ins dvrflowd dropped because their switch was
// over its budget, from its metrics.
func (d *dvrflowdRun) packetInDrops(ctx context.Context) (float64, error) {
	_, body, err := d.api.Raw(ctx, http.MethodGet, "/metrics", nil)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "dvrflow_packet_in_drops_total "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, errors.New("no dvrflow_packet_in_drops_total in /metrics")
}

// failed adds the end of dvrflowd's log to err, but for a cancelled run.
func (d *dvrflowdRun) failed(err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w\ndvrflowd log:\n%s", err, d.p.tail())
}

func (d *dvrflowdRun) pids() []int { return []int{d.p.cmd.Process.Pid} }
