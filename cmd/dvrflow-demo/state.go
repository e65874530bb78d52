package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stateFile is the name of the record of a running demo in its state directory.
const stateFile = "state.json"

// procRecord is one process a demo started.
type procRecord struct {
	Name string `json:"name"`
	Pid  int    `json:"pid"`
	Exe  string `json:"exe"` // its executable: a pid is killed only while it still runs this
}

// state is what `down` needs to undo an `up` that did not finish its own teardown: the
// bed's prefix (bed.Sweep removes namespaces, links and OVS daemons by it), the demo's
// own pid and the pids of the processes it started.
type state struct {
	Prefix    string       `json:"prefix"`
	DemoPid   int          `json:"demo_pid"`
	DemoExe   string       `json:"demo_exe"`
	StartedAt time.Time    `json:"started_at"`
	Processes []procRecord `json:"processes"`
}

// stateStore keeps a state in dir/state.json, rewritten (atomically) on every change.
type stateStore struct {
	dir string
	mu  sync.Mutex
	st  state
}

func (s *stateStore) path() string { return filepath.Join(s.dir, stateFile) }

// create writes the first record; it refuses when one exists already.
func (s *stateStore) create(st state) error {
	if _, err := os.Stat(s.path()); err == nil {
		old, rerr := readState(s.dir)
		if rerr != nil {
			return fmt.Errorf("a previous demo left %s (%v): run `dvrflow-demo down` first", s.path(), rerr)
		}
		how := "not running any more"
		if exeOf(old.DemoPid) == old.DemoExe {
			how = fmt.Sprintf("still running as pid %d", old.DemoPid)
		}
		return fmt.Errorf("a previous demo (prefix %s, %s) is recorded in %s: run `dvrflow-demo down` (make demo-down) first",
			old.Prefix, how, s.path())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st = st
	return s.writeLocked()
}

// add records a started process.
func (s *stateStore) add(name string, pid int, exe string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Processes = append(s.st.Processes, procRecord{Name: name, Pid: pid, Exe: exe})
	return s.writeLocked()
}

func (s *stateStore) writeLocked() error {
	b, err := json.MarshalIndent(s.st, "", "  ")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	tmp := s.path() + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := os.Rename(tmp, s.path()); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// remove deletes the record.
func (s *stateStore) remove() error {
	if err := os.Remove(s.path()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// readState reads dir/state.json; os.ErrNotExist when there is none.
func readState(dir string) (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("state %s: %w", filepath.Join(dir, stateFile), err)
	}
	if !prefixRE.MatchString(st.Prefix) {
		return st, fmt.Errorf("state %s: prefix %q: want 1-8 of [a-z0-9] starting with a letter", filepath.Join(dir, stateFile), st.Prefix)
	}
	return st, nil
}

// exeOf is the executable pid runs ("" when there is no such process or it is a zombie).
func exeOf(pid int) string {
	if pid <= 0 {
		return ""
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return ""
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(exe, " (deleted)")
}

// stopPid sends SIGTERM to pid while it runs exe, waits up to grace, then SIGKILLs it
// and waits until it is gone. It reports whether the process was there at all.
func stopPid(pid int, exe string, grace time.Duration) (bool, error) {
	ours := func() bool { return exe != "" && exeOf(pid) == exe }
	if !ours() {
		return false, nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return true, fmt.Errorf("signal pid %d: %w", pid, err)
	}
	deadline := time.Now().Add(grace)
	for ours() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !ours() {
		return true, nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; ours(); i++ {
		if i > 200 {
			return true, fmt.Errorf("pid %d (%s) survives SIGKILL", pid, exe)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true, nil
}
