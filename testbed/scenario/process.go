package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is one daemon the scenario runs (dvrflowd, a dvrflow-host), optionally inside a
// named network namespace, with standard output and error appended to a log file. It can
// be stopped and started again (the controller-restart tests do). Its methods are safe
// for concurrent use.
type Process struct {
	Name    string   // what it is, for messages: "dvrflowd", "dvrflow-host compute1"
	Path    string   // the executable
	Args    []string // its arguments
	Env     []string // added to the environment ("KEY=value")
	Netns   string   // named namespace to run in ("" for the caller's)
	LogPath string   // standard output and error are appended here

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	werr error         // cmd.Wait's result, set before done closes
}

// argv is the command line Start runs: with `nsenter --net=/run/netns/NS` in front when
// Netns is set (nsenter execs the program in place, so the pid is the program's). Not
// `ip netns exec`: that gives the program a mount namespace of its own, so namespaces a
// host helper mounts under /run/netns would be invisible to everyone else and die with
// it. A real host runs the helper in the host's mount namespace (systemd), and so does
// the bed.
func (p *Process) argv() []string {
	argv := append([]string{p.Path}, p.Args...)
	if p.Netns != "" {
		argv = append([]string{"nsenter", "--net=" + filepath.Join("/run/netns", p.Netns), "--"}, argv...)
	}
	return argv
}

// Start runs the process. Starting a process that runs is an error.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s: already running (pid %d)", p.Name, p.cmd.Process.Pid)
		}
	}
	if p.Path == "" || p.LogPath == "" {
		return fmt.Errorf("%s: no executable or no log file", p.Name)
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("%s: log: %w", p.Name, err)
	}
	argv := p.argv()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), p.Env...)
	// Its own process group: a Ctrl-C at the terminal reaches the caller only, which
	// stops the scenario in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.werr = err
		p.mu.Unlock()
		close(done)
	}()
	p.cmd, p.done, p.werr = cmd, done, nil
	return nil
}

// Pid is the running process's id, or 0.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	select {
	case <-p.done:
		return 0
	default:
		return p.cmd.Process.Pid
	}
}

// Exited reports whether the process ran and has ended, and how.
func (p *Process) Exited() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false, nil
	}
	select {
	case <-p.done:
		return true, p.werr
	default:
		return false, nil
	}
}

// Kill sends SIGKILL and waits until the process is gone. Killing a process that does
// not run does nothing.
func (p *Process) Kill() { p.signalAndWait(syscall.SIGKILL, 0) }

// Stop sends SIGTERM, waits up to grace, then SIGKILL; it returns once the process is
// gone. It reports whether SIGKILL was needed as an error.
func (p *Process) Stop(grace time.Duration) error {
	if !p.signalAndWait(syscall.SIGTERM, grace) {
		return fmt.Errorf("%s: still running %v after SIGTERM: killed", p.Name, grace)
	}
	return nil
}

// signalAndWait sends sig; with a grace it waits that long and then SIGKILLs. It
// reports whether the process ended within the grace.
func (p *Process) signalAndWait(sig syscall.Signal, grace time.Duration) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
	}
	_ = cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-done:
			return true
		case <-time.After(grace):
			_ = cmd.Process.Kill()
		}
	}
	<-done
	return grace == 0
}

// LogTail returns the last n lines of the process's log.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Log returns the whole log.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// String is the process's command line, for messages.
func (p *Process) String() string { return strings.Join(p.argv(), " ") }

// errExited says a process ended while it should run.
var errExited = errors.New("exited")

// alive returns an error when the process has ended.
func (p *Process) alive() error {
	if ended, err := p.Exited(); ended {
		return fmt.Errorf("%s %w (%v); last log lines:\n%s", p.Name, errExited, err, p.LogTail(20))
	}
	return nil
}
