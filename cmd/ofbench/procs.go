// Controller processes the benchmarks start and stop, and their CPU time.

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// procCPU returns the user + system CPU time the processes pids have used so far.
func procCPU(pids []int) (time.Duration, error) {
	const clockTick = 100 // USER_HZ on Linux
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("controller CPU time: %w", err)
		}
		// Fields after the command name (which may hold spaces) in parentheses.
		_, rest, ok := strings.Cut(string(b), ") ")
		f := strings.Fields(rest)
		if !ok || len(f) < 13 {
			return 0, fmt.Errorf("controller CPU time: /proc/%d/stat: %q", pid, b)
		}
		var ut, st int64
		if _, err := fmt.Sscan(f[11], &ut); err != nil {
			return 0, fmt.Errorf("controller CPU time: utime %q: %w", f[11], err)
		}
		if _, err := fmt.Sscan(f[12], &st); err != nil {
			return 0, fmt.Errorf("controller CPU time: stime %q: %w", f[12], err)
		}
		total += time.Duration(ut+st) * time.Second / clockTick
	}
	return total, nil
}

// freeAddr returns a free TCP address on 127.0.0.1.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// proc is a controller process the benchmark started.
type proc struct {
	cmd  *exec.Cmd
	logf string
}

func startProc(ctx context.Context, dir, name string, env []string, bin string, args ...string) (*proc, error) {
	logf := filepath.Join(dir, name+".log")
	f, err := os.Create(logf)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	return &proc{cmd: cmd, logf: logf}, nil
}

// stop ends the process (SIGTERM, then SIGKILL after 5s) and waits for it.
func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// tail returns the end of the process's log.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.logf)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// waitListening waits until addr accepts TCP connections or the process exits.
func (p *proc) waitListening(ctx context.Context, addr string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s after 60s:\n%s", p.cmd.Path, addr, p.tail())
		}
		if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
			return fmt.Errorf("%s exited:\n%s", p.cmd.Path, p.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// profileDuring writes CPU profiles of dvrflowd (from its --debug-listen pprof) and of this
// generator, each over d, to dir/dvrflowd-<bench>.pprof and dir/ofbench-<bench>.pprof.
func profileDuring(ctx context.Context, log *zap.Logger, dir, bench, debugURL string, d time.Duration) {
	secs := max(int(d/time.Second)-1, 1)
	if f, err := os.Create(filepath.Join(dir, "ofbench-"+bench+".pprof")); err == nil {
		defer f.Close() // after StopCPUProfile has written the profile
		if err := pprof.StartCPUProfile(f); err == nil {
			defer pprof.StopCPUProfile()
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", debugURL, secs), nil)
	if err != nil {
		log.Warn("profile request", zap.Error(err))
		return
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Warn("fetching dvrflowd's CPU profile", zap.Error(err))
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(filepath.Join(dir, "dvrflowd-"+bench+".pprof"))
	if err != nil {
		log.Warn("profile file", zap.Error(err))
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err != nil {
		log.Warn("writing dvrflowd's CPU profile", zap.Error(err))
	}
}
