package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// daemon is one dvrflowd process under measurement.
type daemon struct {
	log     *zap.Logger
	bin     string
	args    []string
	env     []string
	logPath string
	apiURL  string

	cmd  *exec.Cmd
	logf *os.File
	done chan error
}

// freeAddr returns a free 127.0.0.1 TCP address.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs dvrflowd and waits until its API answers.
func (d *daemon) start(ctx context.Context) error {
	f, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("dvrflowd log: %w", err)
	}
	cmd := exec.Command(d.bin, d.args...)
	cmd.Env = append(os.Environ(), d.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", d.bin, err)
	}
	d.cmd, d.logf, d.done = cmd, f, make(chan error, 1)
	go func() { d.done <- cmd.Wait() }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.apiURL+"/", nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case err := <-d.done:
			d.done <- err
			return fmt.Errorf("dvrflowd exited at start (%v): see %s", err, d.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dvrflowd API at %s not up after 2 minutes: see %s", d.apiURL, d.logPath)
		}
	}
}

// usage is what the process used so far: peak RSS and CPU seconds.
type usage struct {
	HWM, RSS int64 // bytes
	CPU      time.Duration
}

// usage reads the usage of dvrflowd.
func (d *daemon) usage() (usage, error) {
	if d.cmd == nil || d.cmd.Process == nil {
		return usage{}, errors.New("dvrflowd not running")
	}
	u, err := procUsage(d.cmd.Process.Pid)
	if err != nil {
		return u, fmt.Errorf("dvrflowd %w", err)
	}
	return u, nil
}

// procUsage reads /proc/<pid>/status (VmHWM, VmRSS) and /proc/<pid>/stat (utime + stime).
func procUsage(pid int) (usage, error) {
	var u usage
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, fmt.Errorf("status: %w", err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return u, fmt.Errorf("%s %q: %w", k, v, err)
		}
		if k == "VmHWM" {
			u.HWM = kb << 10
		} else {
			u.RSS = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, fmt.Errorf("stat: %w", err)
	}
	// Fields after the parenthesized command: state is field 3, utime 14, stime 15.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return u, fmt.Errorf("stat: %d fields", len(fields))
	}
	ut, err1 := strconv.ParseInt(fields[11], 10, 64)
	stt, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return u, fmt.Errorf("stat: %w", err)
	}
	const clkTck = 100 // USER_HZ on Linux
	u.CPU = time.Duration(ut+stt) * time.Second / clkTck
	return u, nil
}

// kill sends sig and waits for the process to end.
func (d *daemon) kill(sig syscall.Signal) error {
	if d.cmd == nil {
		return nil
	}
	_ = d.cmd.Process.Signal(sig)
	var err error
	select {
	case err = <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		err = <-d.done
	}
	d.cmd = nil
	d.logf.Close()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil // killed or exited by signal: expected
	}
	return err
}

// alive reports an early exit of the daemon.
func (d *daemon) alive() error {
	select {
	case err := <-d.done:
		d.done <- err
		return fmt.Errorf("dvrflowd exited (%v): see %s", err, d.logPath)
	default:
		return nil
	}
}
