// Package scenario brings dvrflow's seed scenario up on a multi-host bed, for the
// integration tests and for the demo (cmd/dvrflow-demo), so that both run the same code:
// it builds the bed (testbed/bed: three hosts compute1, compute2 and network, an
// external network and an internet target), starts dvrflowd as a process, runs one
// `dvrflow-host run` per host inside the host's namespace with that host's OVSDB socket,
// creates the seed topology through the REST API (northbound/seed), plugs the four VMs,
// waits until every VM port is ACTIVE and every host has applied its plan, and tears all
// of it down again.
package scenario

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apiclient"
	"github.com/dvrflow/dvrflow/host/agent"
	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/testbed/bed"
	"github.com/dvrflow/dvrflow/topology"
)

// Default timeouts of the waits of Up.
const (
	DefaultStartTimeout    = 60 * time.Second // dvrflowd serving, the hosts registered
	DefaultConvergeTimeout = 60 * time.Second // ports ACTIVE, plans applied
	stopGrace              = 10 * time.Second
	progressEvery          = 5 * time.Second
)

// Config says where and how to run the scenario.
type Config struct {
	// Prefix names the bed (see bed.Config.Prefix); it must be unique per running bed.
	Prefix string
	// Underlay is the bed's underlay /24 ("" for bed.UnderlayCIDR, 192.168.248.0/24). The
	// hosts take its .1, .2 and .3; the controller its .254.
	Underlay string
	// DatabaseURL is dvrflowd's PostgreSQL database. It must hold no network yet.
	DatabaseURL string
	// Token is the API's admin token (X-Auth-Token).
	Token string
	// Dvrflowd and HostHelper are the paths of the dvrflowd and dvrflow-host binaries.
	Dvrflowd, HostHelper string
	// APIListen is dvrflowd's --listen ("" for the controller address and a free port).
	// With an unspecified address (0.0.0.0:9696) the hosts use the controller address.
	APIListen string
	// OFListen is dvrflowd's --of-listen ("" for the controller address and a free port).
	OFListen string
	// LogDir receives dvrflowd.log and dvrflow-host-<host>.log. It must exist.
	LogDir string
	// DvrflowdArgs are more dvrflowd arguments (e.g. "--poll-interval", "1s").
	DvrflowdArgs []string
	// Controllers is how many dvrflowd run against the database (0 for one). The first
	// listens on APIListen and OFListen; the others on free ports of the controller
	// address, each with --controller-id ctl<N>, and the helpers are given all of them.
	Controllers int
	// DatabaseURLs, when set, gives controller i its own database URL (the same
	// database reached another way, e.g. through an address a test can cut off).
	DatabaseURLs []string
	// HelperArgs are more arguments of every dvrflow-host run (e.g. "--poll-timeout", "1s").
	HelperArgs []string
	// StartTimeout and ConvergeTimeout bound Up's waits (0 for the defaults).
	StartTimeout, ConvergeTimeout time.Duration
	// Progress, when set, receives a line for each step of Up and Close, and every few
	// seconds of a wait.
	Progress func(line string)
	// Started, when set, is told about every process right after it started (the demo
	// records the pids, for `dvrflow-demo down` after a crash).
	Started func(p *Process)
}

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`)

// Validate reports what is wrong with cfg.
func (cfg Config) Validate() error {
	if !prefixRE.MatchString(cfg.Prefix) {
		return fmt.Errorf("scenario: prefix %q: want 1-8 of [a-z0-9] starting with a letter", cfg.Prefix)
	}
	if _, err := cfg.underlay(); err != nil {
		return err
	}
	if cfg.DatabaseURL == "" {
		return errors.New("scenario: no database URL")
	}
	if cfg.Token == "" {
		return errors.New("scenario: no API token")
	}
	for _, b := range []struct{ what, path string }{{"dvrflowd", cfg.Dvrflowd}, {"dvrflow-host", cfg.HostHelper}} {
		if b.path == "" {
			return fmt.Errorf("scenario: no %s binary given", b.what)
		}
		if st, err := os.Stat(b.path); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("scenario: %s binary %q is not an executable file (run make build)", b.what, b.path)
		}
	}
	for _, l := range []struct{ flag, addr string }{{"API listen", cfg.APIListen}, {"OpenFlow listen", cfg.OFListen}} {
		if l.addr == "" {
			continue
		}
		if _, err := netip.ParseAddrPort(l.addr); err != nil {
			return fmt.Errorf("scenario: %s address %q: want IPv4:port", l.flag, l.addr)
		}
	}
	if st, err := os.Stat(cfg.LogDir); err != nil || !st.IsDir() {
		return fmt.Errorf("scenario: log directory %q does not exist", cfg.LogDir)
	}
	return nil
}

// underlay returns the first three octets of the underlay /24 ("192.168.248").
func (cfg Config) underlay() (string, error) {
	u := cfg.Underlay
	if u == "" {
		u = bed.UnderlayCIDR
	}
	p, err := netip.ParsePrefix(u)
	if err != nil || !p.Addr().Is4() || p.Bits() != 24 || p.Masked() != p {
		return "", fmt.Errorf("scenario: underlay %q: want an IPv4 /24 such as %s", u, bed.UnderlayCIDR)
	}
	return u[:strings.LastIndex(u, ".")], nil
}

// Hosts are the bed's hosts of the seed scenario on underlay net24 ("192.168.248").
func Hosts(net24 string) []bed.HostConfig {
	return []bed.HostConfig{
		{Name: "compute1", TunnelIP: net24 + ".1", Mode: "dvr"},
		{Name: "compute2", TunnelIP: net24 + ".2", Mode: "dvr"},
		{Name: "network", TunnelIP: net24 + ".3", Mode: "dvr_snat"},
	}
}

// Scenario is a running seed scenario.
type Scenario struct {
	Bed      *bed.Bed
	API      string // the REST API's URL as the hosts reach it: http://<controller IP>:<port>
	Token    string
	OFTarget string // the controller as the switches reach it: tcp:<controller IP>:<port>
	Ctrl     *Process
	// With several controllers: each one's process, API URL and OpenFlow target; the
	// first is Ctrl, API and OFTarget.
	Ctrls     []*Process
	APIs      []string
	OFTargets []string
	Helpers   map[string]*Process // by host name
	Topo      *seed.Topology
	VMs       map[string]string // VM name (VM1...) -> its namespace

	cfg     Config
	log     *zap.Logger
	start   time.Time
	closers []func() error // run in reverse order by Close
}

// Up brings the scenario up. On error (or when ctx ends) it tears down what it made
// and returns the error, with the last log lines of the processes it started.
func Up(ctx context.Context, log *zap.Logger, cfg Config) (*Scenario, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.ConvergeTimeout == 0 {
		cfg.ConvergeTimeout = DefaultConvergeTimeout
	}
	s := &Scenario{Token: cfg.Token, Helpers: map[string]*Process{}, VMs: map[string]string{},
		cfg: cfg, log: log.Named("scenario").With(zap.String("prefix", cfg.Prefix)), start: time.Now()}
	if err := s.up(ctx); err != nil {
		tails := s.logTails()
		if cerr := s.Close(); cerr != nil {
			err = fmt.Errorf("%w (and tearing down: %v)", err, cerr)
		}
		return nil, fmt.Errorf("%w%s", err, tails)
	}
	return s, nil
}

func (s *Scenario) progress(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.log.Info(msg)
	if s.cfg.Progress != nil {
		s.cfg.Progress(msg)
	}
}

func (s *Scenario) up(ctx context.Context) error {
	net24, _ := s.cfg.underlay()
	hosts := Hosts(net24)
	s.progress("bed: building %d hosts, each a network namespace with its own ovsdb-server and ovs-vswitchd (prefix %s)",
		len(hosts), s.cfg.Prefix)
	b, err := waitStep(ctx, s, "the bed", func() (*bed.Bed, error) {
		return bed.New(ctx, s.log, bed.Config{Prefix: s.cfg.Prefix, External: true, Underlay: s.cfg.Underlay, Hosts: hosts})
	})
	if err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	s.Bed = b
	s.closers = append(s.closers, b.Close)
	s.progress("bed: %d hosts up (underlay %s.0/24, VXLAN over br-phy), external network %s, internet target %s",
		len(hosts), net24, bed.ExternalCIDR, bed.TargetIP)

	if err := s.startController(ctx); err != nil {
		return err
	}
	if err := s.startHelpers(ctx); err != nil {
		return err
	}
	if err := s.createTopology(ctx); err != nil {
		return err
	}
	if err := s.waitConverged(ctx); err != nil {
		return err
	}
	return s.bootVMs(ctx)
}

// listenAddr returns addr, or the controller address with a free port when addr is "".
func (s *Scenario) listenAddr(addr string) (string, error) {
	if addr != "" {
		return addr, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.Bed.ControllerIP(), "0"))
	if err != nil {
		return "", fmt.Errorf("scenario: free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// reachable turns a listen address into the one the hosts dial: an unspecified address
// becomes the controller address.
func reachable(listen, ctrlIP string) string {
	ap := netip.MustParseAddrPort(listen)
	if ap.Addr().IsUnspecified() {
		return net.JoinHostPort(ctrlIP, fmt.Sprint(ap.Port()))
	}
	return listen
}

func (s *Scenario) startController(ctx context.Context) error {
	n := max(s.cfg.Controllers, 1)
	for i := range n {
		apiListen, ofListen := "", ""
		if i == 0 {
			apiListen, ofListen = s.cfg.APIListen, s.cfg.OFListen
		}
		apiListen, err := s.listenAddr(apiListen)
		if err != nil {
			return err
		}
		if ofListen, err = s.listenAddr(ofListen); err != nil {
			return err
		}
		name, logName, args := "dvrflowd", "dvrflowd.log", []string{}
		if n > 1 {
			name, logName = fmt.Sprintf("dvrflowd ctl%d", i+1), fmt.Sprintf("dvrflowd-ctl%d.log", i+1)
			args = []string{"--controller-id", fmt.Sprintf("ctl%d", i+1)}
		}
		dsn := s.cfg.DatabaseURL
		if i < len(s.cfg.DatabaseURLs) && s.cfg.DatabaseURLs[i] != "" {
			dsn = s.cfg.DatabaseURLs[i]
		}
		p := &Process{Name: name, Path: s.cfg.Dvrflowd, LogPath: filepath.Join(s.cfg.LogDir, logName),
			Args: append(append([]string{"--listen", apiListen, "--of-listen", ofListen, "--log-level", "info"}, args...), s.cfg.DvrflowdArgs...),
			// Secrets through the environment, not the command line that ps shows.
			Env: []string{"DVRFLOW_DATABASE_URL=" + dsn, "DVRFLOW_AUTH_TOKEN=" + s.cfg.Token}}
		if err := s.StartProcess(p); err != nil {
			return err
		}
		s.closers = append(s.closers, func() error { return p.Stop(stopGrace) })
		s.Ctrls = append(s.Ctrls, p)
		s.APIs = append(s.APIs, "http://"+reachable(apiListen, s.Bed.ControllerIP()))
		s.OFTargets = append(s.OFTargets, "tcp:"+reachable(ofListen, s.Bed.ControllerIP()))
	}
	s.Ctrl, s.API, s.OFTarget = s.Ctrls[0], s.APIs[0], s.OFTargets[0]
	for i := range s.Ctrls {
		if err := s.WaitAPIOf(ctx, i); err != nil {
			return err
		}
	}
	var nets struct {
		Networks []struct {
			Name string `json:"name"`
		} `json:"networks"`
	}
	if err := s.Get(ctx, "/v2.0/networks", &nets); err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	if len(nets.Networks) > 0 {
		return fmt.Errorf("scenario: the database already holds %d networks (%s...): the scenario needs an empty database",
			len(nets.Networks), nets.Networks[0].Name)
	}
	for i, p := range s.Ctrls {
		s.progress("controller: %s up (pid %d): API %s, OpenFlow %s", p.Name, p.Pid(), s.APIs[i], s.OFTargets[i])
	}
	return nil
}

// StartProcess starts p and tells Config.Started.
func (s *Scenario) StartProcess(p *Process) error {
	if err := p.Start(); err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	if s.cfg.Started != nil {
		s.cfg.Started(p)
	}
	return nil
}

// WaitAPI waits until dvrflowd answers an authenticated request (after a start or a
// restart of Ctrl).
func (s *Scenario) WaitAPI(ctx context.Context) error { return s.WaitAPIOf(ctx, 0) }

// WaitAPIOf waits until controller i (of Ctrls) answers an authenticated request.
func (s *Scenario) WaitAPIOf(ctx context.Context, i int) error {
	p, api := s.Ctrls[i], s.APIs[i]
	return s.waitFor(ctx, p.Name+" serving the API", s.cfg.StartTimeout, func() (bool, string, error) {
		if err := p.alive(); err != nil {
			return false, "", err
		}
		var v map[string]any
		if _, err := apiclient.New(api, s.Token, nil).Do(ctx, http.MethodGet, "/v2.0/dvr-hosts", nil, &v); err != nil {
			return false, err.Error(), nil
		}
		return true, "", nil
	})
}

func (s *Scenario) startHelpers(ctx context.Context) error {
	for _, h := range s.Bed.Hosts() {
		if err := s.startHelper(h); err != nil {
			return err
		}
	}
	s.progress("hosts: %d dvrflow-host helpers started, one in each host namespace; waiting for them to register", len(s.Helpers))
	if err := s.waitRegistered(ctx); err != nil {
		return err
	}
	var names []string
	for _, h := range s.Bed.Hosts() {
		names = append(names, fmt.Sprintf("%s %s %s", h.Name, h.TunnelIP, h.Mode))
	}
	s.progress("hosts: %d registered with their bridges br-int, br-tun, br-ex (%s)", len(names), strings.Join(names, ", "))
	return nil
}

// AddHost adds a host to the running scenario: the bed builds it, its helper starts as
// every other's and registers it.
func (s *Scenario) AddHost(ctx context.Context, hc bed.HostConfig) (*bed.Host, error) {
	h, err := s.Bed.AddHost(ctx, hc)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	if err := s.startHelper(h); err != nil {
		return nil, err
	}
	if err := s.waitRegistered(ctx); err != nil {
		return nil, err
	}
	s.progress("hosts: %s %s %s added and registered", h.Name, h.TunnelIP, h.Mode)
	return h, nil
}

// startHelper starts the host helper of h in h's namespace.
func (s *Scenario) startHelper(h *bed.Host) error {
	p := &Process{Name: "dvrflow-host " + h.Name, Path: s.cfg.HostHelper, Netns: h.Netns,
		LogPath: filepath.Join(s.cfg.LogDir, "dvrflow-host-"+h.Name+".log"),
		Args: []string{"run", "--host", h.Name, "--api", strings.Join(s.APIs, ","), "--tunnel-ip", h.TunnelIP, "--mode", h.Mode,
			"--controller", strings.Join(s.OFTargets, ","), "--datapath-type", "netdev", "--ovsdb", "unix:" + h.OVS.DBSocket(),
			"--external-bridge", bed.ExternalBridge, "--external-uplink", h.ExternalUplink,
			"--netns-prefix", h.Netns + "-", "--host-netns", h.Netns},
		Env: []string{"DVRFLOW_TOKEN=" + s.cfg.Token}}
	p.Args = append(p.Args, s.cfg.HelperArgs...)
	if err := s.StartProcess(p); err != nil {
		return err
	}
	s.Helpers[h.Name] = p
	s.closers = append(s.closers, func() error { return p.Stop(stopGrace) })
	return nil
}

// waitRegistered waits until every host of the bed is registered, its helper running.
func (s *Scenario) waitRegistered(ctx context.Context) error {
	n := len(s.Bed.Hosts())
	return s.waitFor(ctx, "every host registered", s.cfg.StartTimeout, func() (bool, string, error) {
		for _, p := range s.Helpers {
			if err := p.alive(); err != nil {
				return false, "", err
			}
		}
		var hs struct {
			Hosts []struct {
				Host string `json:"host"`
			} `json:"dvr_hosts"`
		}
		if err := s.Get(ctx, "/v2.0/dvr-hosts", &hs); err != nil {
			return false, err.Error(), nil
		}
		return len(hs.Hosts) == n, fmt.Sprintf("%d of %d hosts", len(hs.Hosts), n), nil
	})
}

func (s *Scenario) createTopology(ctx context.Context) error {
	opts := seed.DefaultOptions()
	for i := range opts.Hosts {
		h := &opts.Hosts[i]
		bh := s.Bed.Host(h.Name)
		if bh == nil {
			return fmt.Errorf("scenario: the seed's host %s is not in the bed", h.Name)
		}
		h.TunnelIP = bh.TunnelIP
		h.Bridges = map[string]string{}
		for _, br := range topology.Bridges() {
			h.Bridges[string(br)] = agent.DatapathID(h.Name, string(br))
		}
	}
	topo, err := seed.Create(ctx, seed.NewClient(s.API, s.Token), opts)
	if err != nil {
		return fmt.Errorf("scenario: seed topology through the API: %w", err)
	}
	s.Topo = topo
	s.progress("topology: 2 networks (net1 %s, net2 %s) + external %s, distributed router R1 with gateway %s, "+
		"%d VM ports, %d floating IPs created through the API",
		topo.Subnet1.CIDR, topo.Subnet2.CIDR, topo.ExternalSub.CIDR, s.GatewayIP(), len(topo.VMs), len(topo.FloatingIPs))
	var plugged []string
	for _, vm := range opts.VMs {
		p := topo.VMs[vm.Name]
		ns, err := s.Bed.AddVM(ctx, vm.Host, strings.ToLower(vm.Name), p.ID, p.MACAddress, "", "")
		if err != nil {
			return fmt.Errorf("scenario: %w", err)
		}
		s.VMs[vm.Name] = ns
		plugged = append(plugged, fmt.Sprintf("%s %s on %s", vm.Name, vm.IP, vm.Host))
	}
	s.progress("VMs: %d plugged into br-int as Nova does, with no address (%s)", len(plugged), strings.Join(plugged, ", "))
	return nil
}

// VMClient is the DHCP client the seed's VMs on a network boot with: Debian's dhclient on
// Net1, busybox udhcpc (as cirros) on Net2.
func (s *Scenario) VMClient(vm string) bed.DHCPClient {
	if p, ok := s.Topo.VMs[vm]; ok && p.NetworkID == s.Topo.Net2.ID {
		return bed.Udhcpc
	}
	return bed.Dhclient
}

// bootVMs boots the seed's VMs once their ports are ACTIVE (Nova starts an instance on
// Neutron's network-vif-plugged event): each runs its DHCP client and gets its port's
// address, mask, routes, MTU and DNS from the controller.
func (s *Scenario) bootVMs(ctx context.Context) error {
	names := slices.Sorted(maps.Keys(s.Topo.VMs))
	for _, name := range names {
		if err := s.Bed.StartDHCP(strings.ToLower(name), s.VMClient(name)); err != nil {
			return fmt.Errorf("scenario: %w", err)
		}
	}
	var leased []string
	for _, name := range names {
		ip := s.Topo.VMs[name].FixedIPs[0].IPAddress
		if err := s.Bed.WaitAddr(ctx, strings.ToLower(name), ip+"/24", s.cfg.ConvergeTimeout); err != nil {
			return fmt.Errorf("scenario: %w", err)
		}
		leased = append(leased, fmt.Sprintf("%s %s by %s", name, ip, s.VMClient(name)))
	}
	s.progress("VMs: %d booted, each configured by its DHCP client from the controller's answers (%s)",
		len(leased), strings.Join(leased, ", "))
	return nil
}

// GatewayIP is the router's address on the external network (SNAT's source address).
func (s *Scenario) GatewayIP() string {
	if s.Topo == nil || len(s.Topo.Router.GatewayInfo.ExternalFixedIPs) == 0 {
		return ""
	}
	ips := s.Topo.Router.GatewayInfo.ExternalFixedIPs
	return ips[len(ips)-1].IPAddress
}

// waitConverged waits until every VM port is ACTIVE (the controller saw its tap) and
// every host has applied the plan the API serves it now.
func (s *Scenario) waitConverged(ctx context.Context) error {
	if err := s.waitFor(ctx, "every VM port ACTIVE", s.cfg.ConvergeTimeout, func() (bool, string, error) {
		var down []string
		for name, p := range s.Topo.VMs {
			var out struct {
				Port struct {
					Status string `json:"status"`
				} `json:"port"`
			}
			if err := s.Get(ctx, "/v2.0/ports/"+p.ID, &out); err != nil {
				return false, err.Error(), nil
			}
			if out.Port.Status != "ACTIVE" {
				down = append(down, name+" "+out.Port.Status)
			}
		}
		return len(down) == 0, strings.Join(down, ", "), nil
	}); err != nil {
		return err
	}
	revs := map[string]int64{}
	if err := s.waitFor(ctx, "every host applying its plan", s.cfg.ConvergeTimeout, func() (bool, string, error) {
		var behind []string
		for _, h := range s.Bed.Hosts() {
			if err := s.Helpers[h.Name].alive(); err != nil {
				return false, "", err
			}
			var p struct {
				Plan struct {
					Revision int64 `json:"revision"`
				} `json:"plan"`
			}
			if err := s.Get(ctx, "/v2.0/dvr-hosts/"+h.Name+"/plan?timeout=0", &p); err != nil {
				return false, err.Error(), nil
			}
			var hi struct {
				Host struct {
					Applied int64 `json:"applied_revision"`
				} `json:"dvr_host"`
			}
			if err := s.Get(ctx, "/v2.0/dvr-hosts/"+h.Name, &hi); err != nil {
				return false, err.Error(), nil
			}
			revs[h.Name] = hi.Host.Applied
			if hi.Host.Applied < p.Plan.Revision {
				behind = append(behind, fmt.Sprintf("%s applied %d of %d", h.Name, hi.Host.Applied, p.Plan.Revision))
			}
		}
		return len(behind) == 0, strings.Join(behind, ", "), nil
	}); err != nil {
		return err
	}
	var applied []string
	for _, h := range s.Bed.Hosts() {
		applied = append(applied, fmt.Sprintf("%s r%d", h.Name, revs[h.Name]))
	}
	s.progress("converged: %d VM ports ACTIVE, every host applied its namespace plan (%s)",
		len(s.Topo.VMs), strings.Join(applied, ", "))
	return nil
}

// Get decodes the JSON answer of an authenticated GET of path into out, from the first
// controller that answers.
func (s *Scenario) Get(ctx context.Context, path string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := apiclient.NewFailover(s.APIs, s.Token, nil, s.log)
	if err != nil {
		return fmt.Errorf("scenario: %w", err)
	}
	_, err = c.Do(ctx, http.MethodGet, path, nil, out)
	return err
}

// waitFor polls cond every 100 ms until it holds, fails, ctx ends or timeout passes,
// telling Progress every few seconds what it still waits for.
func (s *Scenario) waitFor(ctx context.Context, what string, timeout time.Duration,
	cond func() (ok bool, why string, err error)) error {
	start := time.Now()
	next := start.Add(progressEvery)
	for {
		ok, why, err := cond()
		if err != nil {
			return fmt.Errorf("scenario: waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("scenario: timed out after %v waiting for %s: %s", timeout, what, why)
		}
		if time.Now().After(next) {
			next = next.Add(progressEvery)
			if why != "" {
				why = " (" + why + ")"
			}
			s.progress("  ... still waiting for %s%s", what, why)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("scenario: waiting for %s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitStep runs a step that cannot report progress itself, telling Progress every few
// seconds that it is still running.
func waitStep[T any](ctx context.Context, s *Scenario, what string, step func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() { v, err := step(); done <- result{v, err} }()
	start := time.Now()
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			return r.v, r.err
		case <-tick.C:
			s.progress("  ... still building %s (%.0fs)", what, time.Since(start).Seconds())
		case <-ctx.Done():
			r := <-done // the step sees ctx too and ends
			return r.v, r.err
		}
	}
}

// logTails is the end of every process log, for an error message.
func (s *Scenario) logTails() string {
	var b strings.Builder
	procs := slices.Clone(s.Ctrls)
	for _, h := range Hosts("x") {
		procs = append(procs, s.Helpers[h.Name])
	}
	for _, p := range procs {
		if p != nil {
			fmt.Fprintf(&b, "\n--- last lines of %s (%s):\n%s", p.Name, p.LogPath, p.LogTail(15))
		}
	}
	return b.String()
}

// Close stops the host helpers and dvrflowd and tears the bed down. It is safe to call
// more than once.
func (s *Scenario) Close() error {
	if len(s.closers) == 0 {
		return nil
	}
	s.progress("teardown: stopping the host helpers and dvrflowd, removing the bed")
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	s.closers = nil
	if s.Bed != nil {
		left, err := bed.Leftovers(s.cfg.Prefix)
		if err != nil {
			errs = append(errs, err)
		} else if len(left) > 0 {
			errs = append(errs, fmt.Errorf("left behind: %s", strings.Join(left, ", ")))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("scenario: teardown: %w", err)
	}
	s.progress("teardown: done, nothing left of bed %s", s.cfg.Prefix)
	return nil
}
