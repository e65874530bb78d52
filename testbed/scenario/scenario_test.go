package scenario

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"

	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/testbed/bed"
)

// validConfig is a Config that passes Validate, with real executables.
func validConfig(t *testing.T) Config {
	t.Helper()
	dir := t.TempDir()
	exe := filepath.Join(dir, "bin")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return Config{Prefix: "demo", DatabaseURL: "postgres://x", Token: "t", Dvrflowd: exe, HostHelper: exe, LogDir: dir}
}

func TestConfigValidate(t *testing.T) {
	if err := validConfig(t).Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	notExec := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"prefix empty", func(c *Config) { c.Prefix = "" }, "prefix"},
		{"prefix too long", func(c *Config) { c.Prefix = "abcdefghi" }, "prefix"},
		{"prefix uppercase", func(c *Config) { c.Prefix = "Demo" }, "prefix"},
		{"underlay not a /24", func(c *Config) { c.Underlay = "10.0.0.0/16" }, "underlay"},
		{"underlay not masked", func(c *Config) { c.Underlay = "10.0.0.1/24" }, "underlay"},
		{"underlay IPv6", func(c *Config) { c.Underlay = "fd00::/120" }, "underlay"},
		{"no database", func(c *Config) { c.DatabaseURL = "" }, "database"},
		{"no token", func(c *Config) { c.Token = "" }, "token"},
		{"no dvrflowd", func(c *Config) { c.Dvrflowd = "" }, "dvrflowd"},
		{"dvrflowd missing", func(c *Config) { c.Dvrflowd = "/nonexistent/dvrflowd" }, "dvrflowd"},
		{"helper not executable", func(c *Config) { c.HostHelper = notExec }, "dvrflow-host"},
		{"helper a directory", func(c *Config) { c.HostHelper = t.TempDir() }, "dvrflow-host"},
		{"API listen without port", func(c *Config) { c.APIListen = "0.0.0.0" }, "API listen"},
		{"OF listen a name", func(c *Config) { c.OFListen = "localhost:6653" }, "OpenFlow listen"},
		{"no log dir", func(c *Config) { c.LogDir = "/nonexistent/logs" }, "log directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig(t)
			tc.change(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestHostsMatchTheSeed(t *testing.T) {
	hosts := Hosts("192.168.248")
	opts := seed.DefaultOptions()
	if len(hosts) != len(opts.Hosts) {
		t.Fatalf("%d bed hosts, the seed has %d", len(hosts), len(opts.Hosts))
	}
	for i, h := range hosts {
		s := opts.Hosts[i]
		if h.Name != s.Name || h.Mode != s.Mode || h.TunnelIP != s.TunnelIP {
			t.Errorf("bed host %+v, seed host %+v", h, s)
		}
	}
	cfg := bed.Config{Prefix: "x", Hosts: Hosts("10.9.8"), Underlay: "10.9.8.0/24"}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the hosts on another underlay: %v", err)
	}
}

func TestReachable(t *testing.T) {
	for _, tc := range []struct{ listen, want string }{
		{"0.0.0.0:9696", "192.168.248.254:9696"},
		{"192.168.248.254:6653", "192.168.248.254:6653"},
		{"127.0.0.1:9696", "127.0.0.1:9696"},
	} {
		if got := reachable(tc.listen, "192.168.248.254"); got != tc.want {
			t.Errorf("reachable(%q) = %q, want %q", tc.listen, got, tc.want)
		}
	}
}

// TestChecksFollowTheSeed: every check's addresses are the seed's, and the checks
// that go to the internet name the source the target must see.
func TestChecksFollowTheSeed(t *testing.T) {
	s := &Scenario{Topo: &seed.Topology{
		FloatingIPs: map[string]floatingips.FloatingIP{"VM1": {FloatingIP: "172.24.4.5"}},
		Router: routers.Router{GatewayInfo: routers.GatewayInfo{
			ExternalFixedIPs: []routers.ExternalFixedIP{{IPAddress: "172.24.4.2"}}}},
	}}
	ips := map[string]string{}
	for _, vm := range seed.DefaultOptions().VMs {
		ips[vm.Name] = vm.IP
	}
	want := []struct{ from, to, seenAs string }{
		{"VM1", ips["VM2"], ""},
		{"VM1", ips["VM4"], ""},
		{Internet, seed.DefaultOptions().FloatingIPs["VM1"], ""},
		{"VM1", bed.TargetIP, "172.24.4.5"},
		{"VM4", bed.TargetIP, "172.24.4.2"},
	}
	checks := s.Checks()
	if len(checks) != len(want) {
		t.Fatalf("%d checks, want %d", len(checks), len(want))
	}
	for i, c := range checks {
		if c.From != want[i].from || c.To != want[i].to || c.SeenAs != want[i].seenAs || c.Name == "" || c.What == "" {
			t.Errorf("check %d: %+v, want from %s to %s seen as %q", i+1, c, want[i].from, want[i].to, want[i].seenAs)
		}
	}
	if _, ok := seed.DefaultOptions().FloatingIPs["VM4"]; ok {
		t.Error("the SNAT check needs VM4 without a floating IP")
	}
}

func newProc(t *testing.T, script string) *Process {
	t.Helper()
	return &Process{Name: "test", Path: "/bin/sh", Args: []string{"-c", script},
		LogPath: filepath.Join(t.TempDir(), "p.log"), Env: []string{"SCENARIO_TEST=hello"}}
}

// waitLog waits until p's log holds line n times.
func waitLog(t *testing.T, p *Process, line string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(p.Log(), line) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%q not %d times in the log:\n%s", line, n, p.Log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProcessStartStopRestart(t *testing.T) {
	p := newProc(t, `echo "start $SCENARIO_TEST"; exec sleep 30`)
	if p.Pid() != 0 {
		t.Fatal("pid before start")
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	if pid == 0 {
		t.Fatal("no pid after start")
	}
	if err := p.Start(); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Start: %v", err)
	}
	if err := p.alive(); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "start hello", 1)
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if ended, _ := p.Exited(); !ended || p.Pid() != 0 {
		t.Fatalf("after Stop: ended %v, pid %d", ended, p.Pid())
	}
	if err := p.alive(); err == nil || !strings.Contains(err.Error(), "start hello") {
		t.Fatalf("alive after Stop: %v (want the exit and the log tail)", err)
	}
	// Started again, its log is appended to.
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "start hello", 2)
	p.Kill()
	if ended, err := p.Exited(); !ended || err == nil {
		t.Fatalf("after Kill: ended %v, %v", ended, err)
	}
	if got := strings.Count(p.Log(), "start hello"); got != 2 {
		t.Fatalf("log has %d start lines, want 2:\n%s", got, p.Log())
	}
	if tail := p.LogTail(1); tail != "start hello" {
		t.Fatalf("LogTail(1) = %q", tail)
	}
}

func TestProcessStopEscalates(t *testing.T) {
	p := newProc(t, `trap "" TERM; echo ready; while :; do sleep 0.05; done`)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitLog(t, p, "ready", 1)
	err := p.Stop(200 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Stop of a process ignoring SIGTERM: %v", err)
	}
	if ended, _ := p.Exited(); !ended {
		t.Fatal("still running after Stop")
	}
}

func TestProcessBadInput(t *testing.T) {
	if err := (&Process{Name: "x", Path: "/bin/true"}).Start(); err == nil {
		t.Error("Start without a log file succeeded")
	}
	p := &Process{Name: "x", Path: "/nonexistent/binary", LogPath: filepath.Join(t.TempDir(), "l")}
	if err := p.Start(); err == nil {
		t.Error("Start of a missing binary succeeded")
	}
	if ended, _ := p.Exited(); ended || p.Pid() != 0 {
		t.Error("a process that never started counts as started")
	}
	p.Kill() // nothing to do, must not block
	if err := p.Stop(time.Second); err != nil {
		t.Errorf("Stop of a process never started: %v", err)
	}
	nsp := &Process{Path: "/bin/x", Args: []string{"-a"}, Netns: "demo-compute1"}
	if got := nsp.String(); got != "nsenter --net=/run/netns/demo-compute1 -- /bin/x -a" {
		t.Errorf("String() = %q", got)
	}
}
