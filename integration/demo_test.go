//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/testbed/bed"
)

// demoBins builds what `make demo` runs: dvrflow-demo, dvrflowd and dvrflow-host, in
// one directory (the demo finds the others next to itself).
func demoBins(t *testing.T) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("the demo needs root (network namespaces, OVS)")
	}
	if _, err := exec.LookPath("ovs-vswitchd"); err != nil {
		t.Skip("Open vSwitch is not installed (make test installs it)")
	}
	dir := t.TempDir()
	for _, c := range []string{"dvrflow-demo", "dvrflowd", "dvrflow-host"} {
		buildCmd(t, dir, c)
	}
	return filepath.Join(dir, "dvrflow-demo")
}

// demoArgs are the flags of an `up` that cannot collide with another bed or demo: its
// own prefix, underlay, API port, state directory and a fresh database.
func demoArgs(t *testing.T, prefix, underlay string) (args []string, stateDir string) {
	stateDir = filepath.Join(t.TempDir(), "state")
	_, port, _ := net.SplitHostPort(freeAddr(t, "127.0.0.1"))
	return []string{"up", "--prefix", prefix, "--underlay", underlay, "--listen", "0.0.0.0:" + port, "--of-port", "0",
		"--db-url", pg.NewDatabase(t), "--state-dir", stateDir, "--token", "demo-test-token"}, stateDir
}

// nothingLeft fails t when anything of prefix exists, or a pid recorded in the state
// still runs.
func nothingLeft(t *testing.T, prefix string, pids []int) {
	t.Helper()
	left, err := bed.Leftovers(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("left behind: %s", strings.Join(left, ", "))
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !bytes.Contains(b, []byte(") Z ")) {
				t.Errorf("pid %d still runs: %s", pid, b)
			}
		}
	}
}

// TestDemoExitAfterTraffic runs `dvrflow-demo up --exit-after-traffic` as make demo does
// in CI: it must show every traffic check passing with ping's own output, tear down, exit
// 0 and leave nothing.
func TestDemoExitAfterTraffic(t *testing.T) {
	demo := demoBins(t)
	prefix := fmt.Sprintf("m%d", os.Getpid()%100000)
	args, stateDir := demoArgs(t, prefix, "192.168.242.0/24")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, demo, append(args, "--exit-after-traffic")...)
	out, err := cmd.CombinedOutput()
	t.Logf("dvrflow-demo output:\n%s", out)
	if err != nil {
		t.Fatalf("dvrflow-demo up --exit-after-traffic: %v", err)
	}
	text := string(out)
	for _, want := range []string{
		"bed: 3 hosts up",
		"topology: 2 networks",
		"converged: 4 VM ports ACTIVE",
		"traffic 1/5: OK: east-west, routed by DVR",
		"traffic 2/5: OK: east-west, same network",
		"traffic 3/5: OK: floating IP, inbound",
		"traffic 4/5: OK: floating IP, outbound",
		"traffic 5/5: OK: SNAT",
		"traffic: every check passed",
		"tcpdump at the internet target sees",
		"/status",
		"teardown: done",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	// Ping's own summaries, one per check, each without loss.
	sums := regexp.MustCompile(`(\d+) packets transmitted, (\d+) received, 0% packet loss`).FindAllStringSubmatch(text, -1)
	if len(sums) != 5 {
		t.Errorf("%d loss-free ping summaries in the output, want 5", len(sums))
	}
	if regexp.MustCompile(`\[\s*\d+\.\ds\] `).FindString(text) == "" {
		t.Error("no progress line with elapsed time")
	}
	nothingLeft(t, prefix, nil)
	if _, err := os.Stat(filepath.Join(stateDir, "state.json")); !os.IsNotExist(err) {
		t.Errorf("the state file is still there: %v", err)
	}
}

// TestDemoDownAfterCrash kills an interactive `dvrflow-demo up` with SIGKILL once it is
// up (nothing gets torn down), then `dvrflow-demo down` must remove all of it: the
// processes it recorded, the namespaces, links and OVS daemons of its prefix.
func TestDemoDownAfterCrash(t *testing.T) {
	demo := demoBins(t)
	prefix := fmt.Sprintf("k%d", os.Getpid()%100000)
	args, stateDir := demoArgs(t, prefix, "192.168.241.0/24")
	cmd := exec.Command(demo, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			_ = exec.Command(demo, "down", "--prefix", prefix, "--state-dir", stateDir).Run()
		}
	}()
	var got bytes.Buffer
	up := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			got.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "everything runs; Ctrl-C") {
				up <- true
				_, _ = io.Copy(io.Discard, stdout)
				return
			}
		}
		up <- false
	}()
	select {
	case ok := <-up:
		if !ok {
			t.Fatalf("dvrflow-demo ended before it was up:\n%s", got.String())
		}
	case <-time.After(4 * time.Minute):
		t.Fatal("dvrflow-demo not up after 4 minutes")
	}
	var st struct {
		Prefix    string `json:"prefix"`
		Processes []struct {
			Name string `json:"name"`
			Pid  int    `json:"pid"`
		} `json:"processes"`
	}
	b, err := os.ReadFile(filepath.Join(stateDir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.Prefix != prefix || len(st.Processes) != 4 {
		t.Fatalf("state %s: want prefix %s and 4 processes (dvrflowd, 3 dvrflow-host)", b, prefix)
	}
	var pids []int
	for _, p := range st.Processes {
		pids = append(pids, p.Pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed = true
	if left, _ := bed.Leftovers(prefix); len(left) == 0 {
		t.Fatal("nothing of the bed exists after the crash: the test would prove nothing")
	}
	out, err := exec.Command(demo, "down", "--state-dir", stateDir).CombinedOutput()
	t.Logf("dvrflow-demo down:\n%s", out)
	if err != nil {
		t.Fatalf("dvrflow-demo down: %v", err)
	}
	if !strings.Contains(string(out), "stopped dvrflowd") {
		t.Errorf("down did not stop the recorded dvrflowd")
	}
	nothingLeft(t, prefix, pids)
	// A second down finds nothing to do and succeeds.
	if out, err := exec.Command(demo, "down", "--prefix", prefix, "--state-dir", stateDir).CombinedOutput(); err != nil {
		t.Fatalf("second down: %v\n%s", err, out)
	}
}
