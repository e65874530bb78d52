// Package ovsinst runs a private Open vSwitch instance (its own ovsdb-server and
// ovs-vswitchd, its own database, sockets, pid and log files in one directory),
// optionally inside a named network namespace. It is what one simulated host of the
// test bed runs, following the recipe of testbed.md.
//
// The package only executes the OVS binaries; it needs root to be useful because
// ovs-vswitchd opens raw sockets and `ip netns exec` needs CAP_SYS_ADMIN.
package ovsinst

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// SchemaPath is where Debian's openvswitch-common installs the Open_vSwitch schema.
const SchemaPath = "/usr/share/openvswitch/vswitch.ovsschema"

// Switch is a placeholder argument for Ofctl: it is replaced by the bridge's
// management socket target. Without it, the target goes right after the first
// non-option argument (the ovs-ofctl command), which is where every ovs-ofctl
// command expects its SWITCH argument.
const Switch = "{switch}"

// Files the instance creates in its directory, relative to it.
const (
	dbFile          = "conf.db"
	dbSocket        = "db.sock"
	ovsdbPidFile    = "ovsdb-server.pid"
	ovsdbLogFile    = "ovsdb-server.log"
	ovsdbCtl        = "ovsdb-server.ctl"
	vswitchdPidFile = "ovs-vswitchd.pid"
	vswitchdLogFile = "ovs-vswitchd.log"
	vswitchdCtl     = "ovs-vswitchd.ctl"
)

// stopGrace is how long Stop waits for a daemon to exit after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// Instance is one running private OVS: an ovsdb-server and an ovs-vswitchd whose
// files all live in Dir.
type Instance struct {
	dir        string
	netns      string
	createdDir bool // Dir was made by Start (Stop removes it)
	log        *zap.Logger
	pids       map[string]int // pid file name -> pid
}

// Start creates the database and starts ovsdb-server and ovs-vswitchd with all their
// files in dir (created when missing; when dir is empty a fresh temporary directory is
// used). When netns is not empty the daemons run inside that named network namespace
// (it must exist), so the bridges' internal ports and the ports they open live there.
// On error, whatever Start already started is stopped again.
func Start(ctx context.Context, log *zap.Logger, dir, netns string) (*Instance, error) {
	inst := &Instance{netns: netns, pids: map[string]int{}}
	if dir == "" {
		d, err := os.MkdirTemp("", "ovsinst-")
		if err != nil {
			return nil, fmt.Errorf("ovsinst: temp dir: %w", err)
		}
		dir, inst.createdDir = d, true
	} else {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("ovsinst: dir %q: %w", dir, err)
		}
		dir = abs
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("ovsinst: create dir: %w", err)
			}
			inst.createdDir = true
		} else if err != nil {
			return nil, fmt.Errorf("ovsinst: dir %q: %w", dir, err)
		}
	}
	inst.dir = dir
	inst.log = log.Named("ovsinst").With(zap.String("dir", dir), zap.String("netns", netns))
	// A unix socket path is limited to 107 bytes; the longest one is <dir>/<bridge>.mgmt.
	if len(filepath.Join(dir, "br-int.mgmt"))+16 > 107 {
		inst.cleanupFiles()
		return nil, fmt.Errorf("ovsinst: dir %q is too long for unix socket paths", dir)
	}
	if _, err := os.Stat(inst.path(dbFile)); err == nil {
		// Another instance's directory: touch nothing in it.
		return nil, fmt.Errorf("ovsinst: %s already exists: refusing to reuse another instance's directory", inst.path(dbFile))
	}
	if err := inst.start(ctx); err != nil {
		if serr := inst.Stop(); serr != nil {
			inst.log.Warn("stop after failed start", zap.Error(serr))
		}
		return nil, err
	}
	inst.log.Info("started", zap.Int("ovsdb_pid", inst.pids[ovsdbPidFile]),
		zap.Int("vswitchd_pid", inst.pids[vswitchdPidFile]))
	return inst, nil
}

func (in *Instance) start(ctx context.Context) error {
	db := in.path(dbFile)
	if out, err := exec.CommandContext(ctx, "ovsdb-tool", "create", db, SchemaPath).CombinedOutput(); err != nil {
		return fmt.Errorf("ovsinst: ovsdb-tool create: %w: %s", err, bytes.TrimSpace(out))
	}
	if err := in.daemon(ctx, ovsdbPidFile, "ovsdb-server", db,
		"--remote=punix:"+in.path(dbSocket),
		"--pidfile="+in.path(ovsdbPidFile),
		"--log-file="+in.path(ovsdbLogFile),
		"--unixctl="+in.path(ovsdbCtl),
		"--detach", "--no-chdir"); err != nil {
		return err
	}
	if _, err := in.Vsctl(ctx, "--no-wait", "init"); err != nil {
		return err
	}
	return in.daemon(ctx, vswitchdPidFile, "ovs-vswitchd", "unix:"+in.path(dbSocket),
		"--pidfile="+in.path(vswitchdPidFile),
		"--log-file="+in.path(vswitchdLogFile),
		"--unixctl="+in.path(vswitchdCtl),
		"--detach", "--no-chdir")
}

// daemon runs a detaching OVS daemon (inside the namespace when there is one) and
// records its pid from the pid file it wrote. --detach returns only once the daemon is
// ready, so the pid file exists when the command returns successfully.
func (in *Instance) daemon(ctx context.Context, pidFile, bin string, args ...string) error {
	argv := append([]string{"env", "OVS_RUNDIR=" + in.dir, "OVS_LOGDIR=" + in.dir, "OVS_DBDIR=" + in.dir, bin}, args...)
	if in.netns != "" {
		argv = append([]string{"ip", "netns", "exec", in.netns}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ovsinst: start %s: %w: %s%s", bin, err, bytes.TrimSpace(out), in.logTail(bin))
	}
	pid, err := readPid(in.path(pidFile))
	if err != nil {
		return fmt.Errorf("ovsinst: %s started but: %w", bin, err)
	}
	in.pids[pidFile] = pid
	return nil
}

// Dir is the directory holding the instance's database, sockets, pid and log files.
func (in *Instance) Dir() string { return in.dir }

// Netns is the named network namespace the daemons run in ("" for the caller's).
func (in *Instance) Netns() string { return in.netns }

// DBSocket is the path of ovsdb-server's unix socket (use "unix:"+DBSocket() as an
// OVSDB endpoint).
func (in *Instance) DBSocket() string { return in.path(dbSocket) }

// MgmtSocket is the path of a bridge's OpenFlow management socket.
func (in *Instance) MgmtSocket(bridge string) string { return in.path(bridge + ".mgmt") }

// Vsctl runs `ovs-vsctl --db=unix:<dir>/db.sock --timeout=30 args...` and returns its
// standard output with surrounding white space trimmed.
func (in *Instance) Vsctl(ctx context.Context, args ...string) (string, error) {
	argv := append([]string{"--db=unix:" + in.path(dbSocket), "--timeout=30"}, args...)
	return in.run(ctx, "", "ovs-vsctl", argv...)
}

// Ofctl runs `ovs-ofctl -O OpenFlow13 ...` against a bridge's management socket. The
// target unix:<dir>/<bridge>.mgmt replaces an argument equal to Switch, or else is
// inserted right after the first argument that is not an option, so
//
//	Ofctl(ctx, "br-int", "--no-stats", "dump-flows")          // ovs-ofctl -O OpenFlow13 --no-stats dump-flows unix:...
//	Ofctl(ctx, "br-int", "add-flow", "table=0,actions=drop")  // ovs-ofctl -O OpenFlow13 add-flow unix:... table=0,...
//
// both do what they say.
func (in *Instance) Ofctl(ctx context.Context, bridge string, args ...string) (string, error) {
	return in.OfctlInput(ctx, bridge, "", args...)
}

// OfctlInput is Ofctl with stdin fed from input, for `add-flows {switch} -` and the like.
func (in *Instance) OfctlInput(ctx context.Context, bridge, input string, args ...string) (string, error) {
	argv, err := ofctlArgs(in.MgmtSocket(bridge), args)
	if err != nil {
		return "", err
	}
	return in.run(ctx, input, "ovs-ofctl", argv...)
}

func ofctlArgs(sock string, args []string) ([]string, error) {
	target := "unix:" + sock
	argv := []string{"-O", "OpenFlow13"}
	placed := false
	for _, a := range args {
		if a == Switch {
			if placed {
				return nil, errors.New("ovsinst: ofctl: switch placeholder given twice")
			}
			argv, placed = append(argv, target), true
			continue
		}
		argv = append(argv, a)
	}
	if placed {
		return argv, nil
	}
	for i := 2; i < len(argv); i++ {
		if !strings.HasPrefix(argv[i], "-") {
			out := append([]string{}, argv[:i+1]...)
			out = append(out, target)
			return append(out, argv[i+1:]...), nil
		}
	}
	return nil, fmt.Errorf("ovsinst: ofctl %q: no command", args)
}

// Appctl runs `ovs-appctl -t <ctl socket>` against "ovs-vswitchd" or "ovsdb-server".
func (in *Instance) Appctl(ctx context.Context, daemon string, args ...string) (string, error) {
	var ctl string
	switch daemon {
	case "ovs-vswitchd":
		ctl = vswitchdCtl
	case "ovsdb-server":
		ctl = ovsdbCtl
	default:
		return "", fmt.Errorf("ovsinst: appctl: unknown daemon %q", daemon)
	}
	return in.run(ctx, "", "ovs-appctl", append([]string{"-t", in.path(ctl)}, args...)...)
}

func (in *Instance) run(ctx context.Context, input, bin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "OVS_RUNDIR="+in.dir)
	if input != "" {
		cmd.Stdin = strings.NewReader(input)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ovsinst: %s %s: %w: %s", bin, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Logs returns the last lines of both daemons' log files, for test failure messages.
func (in *Instance) Logs() string {
	return in.logTail("ovsdb-server") + in.logTail("ovs-vswitchd")
}

func (in *Instance) logTail(bin string) string {
	b, err := os.ReadFile(in.path(bin + ".log"))
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "\n--- " + bin + ".log (tail) ---\n" + strings.Join(lines, "\n")
}

// Stop terminates the two daemons this instance started (by the pids read from its own
// pid files, checked against /proc so a recycled pid is never signalled), then removes
// the files it created: the whole directory when Start made it, else only its own files.
//
// Before the daemons die, Stop deletes every bridge with ovs-vsctl: a netdev bridge's
// internal port is a tap device owned by ovs-vswitchd, and a killed vswitchd leaves it
// behind in its namespace.
func (in *Instance) Stop() error {
	in.deleteBridges()
	var errs []error
	// vswitchd first: it holds the database connection.
	for _, pf := range []string{vswitchdPidFile, ovsdbPidFile} {
		pid, ok := in.pids[pf]
		if !ok {
			continue
		}
		if err := in.kill(pid); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(in.pids, pf)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	in.cleanupFiles()
	in.log.Info("stopped")
	return nil
}

// deleteBridges removes every bridge while ovs-vswitchd still runs, so it deletes
// their tap devices itself. Failures are logged: Stop kills the daemons regardless.
func (in *Instance) deleteBridges() {
	if pid, ok := in.pids[vswitchdPidFile]; !ok || !in.ours(pid) {
		return
	}
	if pid, ok := in.pids[ovsdbPidFile]; !ok || !in.ours(pid) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopGrace)
	defer cancel()
	out, err := in.Vsctl(ctx, "list-br")
	if err != nil {
		in.log.Warn("stop: list bridges", zap.Error(err))
		return
	}
	args := []string{}
	for _, br := range strings.Fields(out) {
		args = append(args, "--", "--if-exists", "del-br", br)
	}
	if len(args) == 0 {
		return
	}
	// Without --no-wait ovs-vsctl returns once ovs-vswitchd has applied the change,
	// that is, once the devices are gone.
	if _, err := in.Vsctl(ctx, args[1:]...); err != nil {
		in.log.Warn("stop: delete bridges", zap.Error(err))
	}
}

func (in *Instance) cleanupFiles() {
	if in.createdDir {
		_ = os.RemoveAll(in.dir)
		return
	}
	names := []string{dbFile, "." + dbFile + ".~lock~", dbSocket, ovsdbPidFile, ovsdbLogFile, ovsdbCtl,
		vswitchdPidFile, vswitchdLogFile, vswitchdCtl}
	for _, n := range names {
		_ = os.Remove(in.path(n))
	}
	mg, _ := filepath.Glob(in.path("*.mgmt"))
	sn, _ := filepath.Glob(in.path("*.snoop"))
	for _, f := range append(mg, sn...) {
		_ = os.Remove(f)
	}
}

// kill sends SIGTERM to pid when it is still one of our daemons, and SIGKILL after
// stopGrace; it returns once the process is gone.
func (in *Instance) kill(pid int) error {
	if !in.ours(pid) {
		return nil // already gone (or the pid was recycled by someone else's process)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("ovsinst: SIGTERM %d: %w", pid, err)
	}
	deadline := time.Now().Add(stopGrace)
	for in.ours(pid) {
		if time.Now().After(deadline) {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("ovsinst: SIGKILL %d: %w", pid, err)
			}
			deadline = time.Now().Add(stopGrace)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// ours reports whether pid is a live (non-zombie) process whose command line names
// this instance's directory.
func (in *Instance) ours(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	return bytes.Contains(cmdline, []byte(in.dir+"/"))
}

func (in *Instance) path(name string) string { return filepath.Join(in.dir, name) }

func readPid(file string) (int, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("read pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pid file %s: bad content %q", file, b)
	}
	return pid, nil
}
