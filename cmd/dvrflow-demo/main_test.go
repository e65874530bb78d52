package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseFlagsDefaultsEnvAndFlags(t *testing.T) {
	o, err := parseFlags("up", []string{"--db-url", "postgres://a"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Prefix != "demo" || o.Listen != "0.0.0.0:9696" || o.OFPort != 6653 || o.StateDir != "/run/dvrflow-demo" ||
		o.Token != "demo-admin-token" || o.ExitAfter || o.Pings != 4 {
		t.Fatalf("defaults: %+v", o)
	}
	e := env(map[string]string{"DVRFLOW_DEMO_DB_URL": "postgres://env", "DVRFLOW_DEMO_PREFIX": "envp",
		"DVRFLOW_DEMO_EXIT_AFTER_TRAFFIC": "true", "DVRFLOW_DEMO_CONVERGE_TIMEOUT": "30s"})
	o, err = parseFlags("up", []string{"--prefix", "flagp"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.DatabaseURL != "postgres://env" || o.Prefix != "flagp" || !o.ExitAfter || o.ConvergeTimeout != 30*time.Second {
		t.Fatalf("env and flags (the flag wins): %+v", o)
	}
	o, err = parseFlags("down", nil, env(nil), io.Discard)
	if err != nil || o.Prefix != "demo" {
		t.Fatalf("down: %+v %v", o, err)
	}
}

func TestParseFlagsRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  string
		args []string
		env  map[string]string
		want string
	}{
		{"no db", "up", nil, nil, "--db-url"},
		{"bad prefix", "up", []string{"--db-url", "x", "--prefix", "Bad-1"}, nil, "--prefix"},
		{"relative state dir", "down", []string{"--state-dir", "run"}, nil, "--state-dir"},
		{"empty token", "up", []string{"--db-url", "x", "--token", ""}, nil, "--token"},
		{"of port", "up", []string{"--db-url", "x", "--of-port", "70000"}, nil, "--of-port"},
		{"timeout", "up", []string{"--db-url", "x", "--converge-timeout", "0s"}, nil, "--converge-timeout"},
		{"pings", "up", []string{"--db-url", "x", "--pings", "0"}, nil, "--pings"},
		{"t0 future", "up", []string{"--db-url", "x", "--t0", "99999999999"}, nil, "--t0"},
		{"stray argument", "up", []string{"--db-url", "x", "now"}, nil, "unexpected"},
		{"up flag on down", "down", []string{"--db-url", "x"}, nil, "not defined"},
		{"bad env", "up", []string{"--db-url", "x"}, map[string]string{"DVRFLOW_DEMO_PINGS": "many"}, "DVRFLOW_DEMO_PINGS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.cmd, tc.args, env(tc.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one about %q", err, tc.want)
			}
		})
	}
}

func TestStateStore(t *testing.T) {
	dir := t.TempDir()
	s := &stateStore{dir: dir}
	if _, err := readState(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("readState of nothing: %v", err)
	}
	self, _ := os.Executable()
	if err := s.create(state{Prefix: "demo", DemoPid: os.Getpid(), DemoExe: self}); err != nil {
		t.Fatal(err)
	}
	if err := s.add("dvrflowd", 42, "/bin/dvrflowd"); err != nil {
		t.Fatal(err)
	}
	st, err := readState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Prefix != "demo" || len(st.Processes) != 1 || st.Processes[0] != (procRecord{"dvrflowd", 42, "/bin/dvrflowd"}) {
		t.Fatalf("read back %+v", st)
	}
	// A second up finds the first one's record and refuses, naming it.
	err = (&stateStore{dir: dir}).create(state{Prefix: "other"})
	if err == nil || !strings.Contains(err.Error(), "down") || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("create over a record: %v", err)
	}
	if err := s.remove(); err != nil {
		t.Fatal(err)
	}
	if err := s.remove(); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	// A corrupt or hostile record is refused, not swept.
	for _, bad := range []string{"{", `{"prefix": "../etc"}`, `{"prefix": ""}`} {
		if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := readState(dir); err == nil {
			t.Errorf("readState(%s) succeeded", bad)
		}
	}
}

func TestStopPid(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep")
	}
	cmd := exec.Command(sleep, "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	exe := exeOf(cmd.Process.Pid)
	if exe == "" {
		t.Fatal("exeOf a running child is empty")
	}
	// Another executable under that pid (a reused pid) is left alone.
	if found, err := stopPid(cmd.Process.Pid, "/usr/bin/not-this-one", time.Second); found || err != nil {
		t.Fatalf("stopPid with another exe: %v %v", found, err)
	}
	select {
	case <-done:
		t.Fatal("the process was killed although its executable differs")
	default:
	}
	found, err := stopPid(cmd.Process.Pid, exe, 5*time.Second)
	if !found || err != nil {
		t.Fatalf("stopPid: %v %v", found, err)
	}
	<-done
	if found, _ := stopPid(cmd.Process.Pid, exe, time.Second); found {
		t.Fatal("a gone process counts as found")
	}
	if exeOf(0) != "" || exeOf(-1) != "" {
		t.Fatal("exeOf of no pid")
	}
}

func TestOfListen(t *testing.T) {
	d := &demo{opts: options{Underlay: "192.168.248.0/24", OFPort: 6653}}
	if got, err := d.ofListen(); err != nil || got != "192.168.248.254:6653" {
		t.Fatalf("ofListen = %q %v", got, err)
	}
	d.opts.OFPort = 0
	if got, err := d.ofListen(); err != nil || got != "" {
		t.Fatalf("ofListen with port 0 = %q %v", got, err)
	}
	d.opts.Underlay = "192.168.248.0/16"
	if _, err := d.ofListen(); err == nil {
		t.Fatal("a /16 underlay was accepted")
	}
}
