package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/testbed/bed"
	"github.com/dvrflow/dvrflow/testbed/scenario"
)

// demo runs one subcommand, printing progress lines with the time since it started.
type demo struct {
	opts  options
	out   io.Writer
	start time.Time
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.out, "[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

// logDir is where up keeps the processes' logs while it runs.
func (d *demo) logDir() string { return filepath.Join(d.opts.StateDir, "logs") }

// newLogger logs the demo's own packages (bed, scenario) to a file: the terminal shows
// progress lines only.
func newLogger(path string) (*zap.Logger, error) {
	zc := zap.NewProductionConfig()
	zc.OutputPaths, zc.ErrorOutputPaths = []string{path}, []string{path}
	zc.DisableStacktrace = true
	log, err := zc.Build()
	if err != nil {
		return nil, fmt.Errorf("logger: %w", err)
	}
	return log, nil
}

// binary returns the absolute, symlink-free path of name in the bin directory.
func (d *demo) binary(name string) (string, error) {
	p, err := filepath.Abs(filepath.Join(d.opts.BinDir, name))
	if err == nil {
		p, err = filepath.EvalSymlinks(p)
	}
	if err != nil {
		return "", fmt.Errorf("%s not found in %s (run make build, or give --bin-dir): %w", name, d.opts.BinDir, err)
	}
	return p, nil
}

// ofListen is dvrflowd's OpenFlow address: the controller's underlay address.
func (d *demo) ofListen() (string, error) {
	p, err := netip.ParsePrefix(d.opts.Underlay)
	if err != nil || !p.Addr().Is4() || p.Bits() != 24 {
		return "", fmt.Errorf("--underlay %q: want an IPv4 /24 such as %s", d.opts.Underlay, bed.UnderlayCIDR)
	}
	if d.opts.OFPort == 0 {
		return "", nil // the scenario picks a free port
	}
	a := p.Masked().Addr().As4()
	a[3] = 254
	return net.JoinHostPort(netip.AddrFrom4(a).String(), strconv.Itoa(d.opts.OFPort)), nil
}

// underlayFree checks that no other bed (a test's, another demo's) holds the underlay's
// controller address on this machine.
func (d *demo) underlayFree() error {
	p := netip.MustParsePrefix(d.opts.Underlay) // checked by ofListen
	a := p.Masked().Addr().As4()
	a[3] = 254
	ctrl := netip.AddrFrom4(a)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return fmt.Errorf("list addresses: %w", err)
	}
	for _, ad := range addrs {
		if ipn, ok := ad.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(ipn.IP.To4()); ok && ip == ctrl {
				return fmt.Errorf("the underlay %s is in use on this machine (%s is assigned: another bed or demo runs); "+
					"pick a free /24 with --underlay or DVRFLOW_DEMO_UNDERLAY, e.g. 192.168.240.0/24", d.opts.Underlay, ctrl)
			}
		}
	}
	return nil
}

// userURL is the API's URL as a user on this machine reaches it.
func (d *demo) userURL(s *scenario.Scenario) string {
	ap, err := netip.ParseAddrPort(d.opts.Listen)
	if err != nil || !ap.Addr().IsUnspecified() {
		return s.API
	}
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(int(ap.Port())))
}

func (d *demo) up(ctx context.Context) error {
	if _, err := exec.LookPath("ovs-vswitchd"); err != nil {
		return errors.New("ovs-vswitchd not found: install Open vSwitch with deploy/scripts/install-deps.sh (make deps)")
	}
	dvrflowd, err := d.binary("dvrflowd")
	if err != nil {
		return err
	}
	helper, err := d.binary("dvrflow-host")
	if err != nil {
		return err
	}
	ofListen, err := d.ofListen()
	if err != nil {
		return err
	}
	if err := d.underlayFree(); err != nil {
		return err
	}
	if err := os.MkdirAll(d.logDir(), 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("own executable: %w", err)
	}
	if self, err = filepath.EvalSymlinks(self); err != nil {
		return fmt.Errorf("own executable: %w", err)
	}
	store := &stateStore{dir: d.opts.StateDir}
	if err := store.create(state{Prefix: d.opts.Prefix, DemoPid: os.Getpid(), DemoExe: self, StartedAt: time.Now().UTC()}); err != nil {
		return err
	}
	log, err := newLogger(filepath.Join(d.logDir(), "demo.log"))
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	d.say("up: seed scenario on a 3-host bed, prefix %s, logs in %s", d.opts.Prefix, d.logDir())

	cfg := scenario.Config{Prefix: d.opts.Prefix, Underlay: d.opts.Underlay, DatabaseURL: d.opts.DatabaseURL,
		Token: d.opts.Token, Dvrflowd: dvrflowd, HostHelper: helper, APIListen: d.opts.Listen, OFListen: ofListen,
		LogDir: d.logDir(), StartTimeout: d.opts.ConvergeTimeout, ConvergeTimeout: d.opts.ConvergeTimeout,
		Progress: func(line string) { d.say("%s", line) },
		Started: func(p *scenario.Process) {
			if err := store.add(p.Name, p.Pid(), p.Path); err != nil {
				log.Warn("record process", zap.Error(err))
			}
		}}
	s, err := scenario.Up(ctx, log, cfg)
	if err != nil {
		d.cleanState(store)
		return err
	}
	failed := d.traffic(ctx, s)
	if failed == 0 {
		d.say("traffic: every check passed")
	}
	d.printNext(s)
	if !d.opts.ExitAfter && ctx.Err() == nil {
		d.say("up: everything runs; Ctrl-C here (or make demo-down) tears it all down")
		select {
		case <-ctx.Done():
		case <-d.exited(s):
			d.say("up: a process ended on its own:%s", tail(s))
			failed++
		}
	}
	cerr := s.Close()
	d.cleanState(store)
	if cerr != nil {
		return cerr
	}
	if failed > 0 {
		return fmt.Errorf("%d traffic checks failed", failed)
	}
	return nil
}

// exited is closed when dvrflowd or a host helper ends.
func (d *demo) exited(s *scenario.Scenario) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		for {
			procs := []*scenario.Process{s.Ctrl}
			for _, p := range s.Helpers {
				procs = append(procs, p)
			}
			for _, p := range procs {
				if ended, _ := p.Exited(); ended {
					close(ch)
					return
				}
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
	return ch
}

func tail(s *scenario.Scenario) string {
	var b strings.Builder
	for _, p := range append([]*scenario.Process{s.Ctrl}, helpers(s)...) {
		if ended, err := p.Exited(); ended {
			fmt.Fprintf(&b, "\n%s: %v\n%s", p.Name, err, p.LogTail(15))
		}
	}
	return b.String()
}

func helpers(s *scenario.Scenario) []*scenario.Process {
	var out []*scenario.Process
	for _, h := range scenario.Hosts("x") {
		if p := s.Helpers[h.Name]; p != nil {
			out = append(out, p)
		}
	}
	return out
}

// cleanState removes the state record and the logs once everything is down.
func (d *demo) cleanState(store *stateStore) {
	if err := store.remove(); err != nil {
		d.say("warning: %v", err)
	}
	if err := os.RemoveAll(d.logDir()); err != nil {
		d.say("warning: %v", err)
	}
	_ = os.Remove(d.opts.StateDir) // only when empty: pg.sh may keep its cluster there
}

// traffic runs the scenario's checks, printing ping's own output; it returns how many
// failed.
func (d *demo) traffic(ctx context.Context, s *scenario.Scenario) int {
	checks := s.Checks()
	failed := 0
	for i, c := range checks {
		if ctx.Err() != nil {
			return failed + len(checks) - i
		}
		d.say("traffic %d/%d: %s", i+1, len(checks), c.What)
		r, err := s.Run(ctx, c, d.opts.Pings, d.opts.ConvergeTimeout)
		if r.Ping.Output != "" {
			fmt.Fprintf(d.out, "    $ ip netns exec %s ping -c %d %s\n", s.Netns(c.From), d.opts.Pings, c.To)
			for _, l := range strings.Split(strings.TrimRight(r.Ping.Output, "\n"), "\n") {
				fmt.Fprintf(d.out, "    %s\n", l)
			}
		}
		if len(r.Seen) > 0 {
			seen := r.Seen[0]
			if i := strings.Index(seen, c.SeenAs+" > "); i >= 0 {
				seen = seen[i:]
			}
			fmt.Fprintf(d.out, "    tcpdump at the internet target sees %d of them as: %s\n", len(r.Seen), seen)
		}
		if err != nil {
			failed++
			d.say("traffic %d/%d: FAILED: %s: %v", i+1, len(checks), c.Name, err)
			continue
		}
		d.say("traffic %d/%d: OK: %s, %d/%d replies (first reply after %.1fs)",
			i+1, len(checks), c.Name, r.Ping.Received, r.Ping.Sent, r.Converged.Seconds())
	}
	return failed
}

// printNext says where to look and what to try while the demo runs.
func (d *demo) printNext(s *scenario.Scenario) {
	u := d.userURL(s)
	bin := d.opts.BinDir
	if rel, err := filepath.Rel(mustGetwd(), bin); err == nil && !strings.HasPrefix(rel, "..") {
		bin = rel
	}
	vm1 := s.Topo.VMs["VM1"].ID
	ofctl := func(host, br string) string {
		return fmt.Sprintf("ovs-ofctl -O OpenFlow13 dump-flows unix:%s", s.Bed.Host(host).OVS.MgmtSocket(br))
	}
	fmt.Fprintf(d.out, `
Status page:  %[1]s/status   (hosts: %[1]s/status/hosts/compute1)
Metrics:      %[1]s/metrics
OpenAPI:      %[1]s/openapi.json

Try (the token is the API's admin token):
  export DVRFLOW_API=%[1]s DVRFLOW_TOKEN=%[2]s
  curl -s -H "X-Auth-Token: $DVRFLOW_TOKEN" $DVRFLOW_API/v2.0/networks
  curl -s -H "X-Auth-Token: $DVRFLOW_TOKEN" $DVRFLOW_API/v2.0/dvr-switches
  curl -s -H "X-Auth-Token: $DVRFLOW_TOKEN" "$DVRFLOW_API/v2.0/ports?binding:host_id=compute1"
  %[3]s/dvrctl hosts
  %[3]s/dvrctl ports
  %[3]s/dvrctl flows compute1 br-int
  %[3]s/dvrctl explain %[4]s        # VM1's port
  %[3]s/dvrctl -o json hosts

  # Debian's python3-openstackclient, with the API's static admin token (no Keystone):
%[9]s
  # inside the bed:
  ip netns exec %[5]s ping 10.0.2.5          # VM1 -> VM2
  ip netns exec %[6]s ping 172.24.4.5      # the internet -> VM1's floating IP
  ip netns list | grep '^%[8]s-'
  %[7]s
`, u, s.Token, bin, vm1, s.VMs["VM1"], s.Bed.TargetNetns(), ofctl("compute1", "br-int"), d.opts.Prefix, s.OpenStack())
	fmt.Fprintln(d.out)
}

func mustGetwd() string {
	wd, err := os.Getwd()
	if err != nil {
		return "/"
	}
	return wd
}

// down stops what the state directory records (the demo itself first, which tears
// down in order), then sweeps the bed's prefix and checks that nothing is left.
func (d *demo) down(ctx context.Context) error {
	prefix := d.opts.Prefix
	st, err := readState(d.opts.StateDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		d.say("down: no demo recorded in %s; sweeping prefix %s to be sure", d.opts.StateDir, prefix)
	case err != nil:
		return err
	default:
		prefix = st.Prefix
		d.say("down: demo of %s, prefix %s", st.StartedAt.Local().Format(time.DateTime), prefix)
		if found, err := stopPid(st.DemoPid, st.DemoExe, 90*time.Second); err != nil {
			return err
		} else if found {
			d.say("down: the running demo (pid %d) tore itself down", st.DemoPid)
		}
		for _, p := range st.Processes {
			found, err := stopPid(p.Pid, p.Exe, 10*time.Second)
			if err != nil {
				return err
			}
			if found {
				d.say("down: stopped %s (pid %d)", p.Name, p.Pid)
			}
		}
	}
	log, err := zap.NewProduction()
	if err != nil {
		return fmt.Errorf("logger: %w", err)
	}
	if err := bed.Sweep(ctx, log.WithOptions(zap.IncreaseLevel(zap.WarnLevel)), prefix); err != nil {
		return fmt.Errorf("sweep bed %s: %w", prefix, err)
	}
	left, err := bed.Leftovers(prefix)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("still there after the sweep: %s", strings.Join(left, ", "))
	}
	d.cleanState(&stateStore{dir: d.opts.StateDir})
	d.say("down: nothing left of prefix %s (namespaces, links, OVS daemons, processes)", prefix)
	return nil
}
