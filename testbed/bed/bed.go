// Package bed builds the multi-host test bed of testbed.md on one machine, for the
// integration tests and the demo: every simulated host is a network namespace running
// its own ovsdb-server and ovs-vswitchd (testbed/ovsinst), joined to the others by
// a VXLAN underlay (a Linux bridge in the root namespace), with an external network and
// an "internet" router namespace behind it.
//
// Layout for Config{Prefix: "P", Hosts: h1, h2, ...} (i is the host's 1-based index):
//
//	root netns:  P-ul  Linux bridge, the underlay fabric, 192.168.248.254/24 (controller, API)
//	             P-xl  Linux bridge, the external network 172.24.4.0/24 (no address)
//	             P-u<i> (veth, on P-ul)   peer eth-u   in P-<host>
//	             P-x<i> (veth, on P-xl)   peer eth-ext in P-<host> (the br-ex uplink)
//	             P-xr   (veth, on P-xl)   peer eth-ext in P-inet
//	P-<host>:    ovsdb-server + ovs-vswitchd, files in <dir>/<host>
//	             br-phy (netdev, standalone) ports eth-u; tunnel IP on its internal port
//	P-inet:      eth-ext 172.24.4.1/24 2001:db8:ff::1/64, eth-tgt 203.0.113.1/24
//	             2001:db8:ffff::1/64, IPv4 and IPv6 forwarding, routes back to tenant
//	             prefixes added with RouteBack
//	P-target:    eth0 203.0.113.10/24 2001:db8:ffff::10/64, default via 203.0.113.1 and
//	             via 2001:db8:ffff::1
//	P-<vm>:      VMs added with AddVM (eth0, plugged into br-int of their host)
//
// br-int, br-tun and br-ex are not the bed's: the host helper (host/agent) makes them;
// SetupHostBridges does the same for tests that run without it.
//
// Every name the bed creates starts with "P-" (the bed's directory is
// <tmp>/dvrflow-bed-P), so Close and Sweep find all of it again.
package bed

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/host/agent"
	"github.com/dvrflow/dvrflow/host/hostnet"
	"github.com/dvrflow/dvrflow/host/ovsdb"
	"github.com/dvrflow/dvrflow/host/vmport"
	"github.com/dvrflow/dvrflow/testbed/ovsinst"
)

// Addresses of the bed.
const (
	UnderlayCIDR    = "192.168.248.0/24"
	ControllerIP    = "192.168.248.254" // root side of the underlay bridge (default underlay)
	ExternalCIDR    = "172.24.4.0/24"
	ExternalGateway = "172.24.4.1" // the internet router on the external network
	InternetCIDR    = "203.0.113.0/24"
	InternetGateway = "203.0.113.1"
	TargetIP        = "203.0.113.10" // the test target behind the internet router
)

// IPv6 addresses of the bed's external side. Only the internet router and the target
// have IPv6 (without duplicate address detection and without router advertisements
// accepted); every other namespace the bed makes has it off.
const (
	ExternalCIDR6    = "2001:db8:ff::/64"
	ExternalGateway6 = "2001:db8:ff::1" // the internet router on the external network
	InternetCIDR6    = "2001:db8:ffff::/64"
	InternetGateway6 = "2001:db8:ffff::1"
	TargetIP6        = "2001:db8:ffff::10" // the test target's IPv6 address
)

// Device names inside a host namespace.
const (
	PhysBridge     = "br-phy"  // OVS bridge carrying the tunnel IP
	UnderlayIface  = "eth-u"   // the host's underlay NIC, a port of br-phy
	ExternalIface  = "eth-ext" // the host's external NIC, for br-ex
	ExternalBridge = "br-ex"
)

// HostConfig describes one simulated host.
type HostConfig struct {
	Name     string // host name (binding:host_id), e.g. compute1
	TunnelIP string // 192.168.248.N, N in 1..253
	Mode     string // "dvr" or "dvr_snat"
}

// Config describes a bed.
type Config struct {
	// Prefix starts every name the bed creates (followed by "-"): 1 to 8 characters
	// of [a-z0-9], beginning with a letter. It must be unique per concurrent bed.
	Prefix string
	Hosts  []HostConfig
	// External adds the external network, the internet router and the target.
	External bool
	// Underlay is the underlay subnet, a /24 ("" for UnderlayCIDR); the root side of
	// the underlay bridge takes its .254. Two beds with the same underlay cannot run
	// at once (the root namespace would hold the address twice): New refuses.
	Underlay string
}

// underlay returns the bed's underlay /24 and the controller's address in it.
func (cfg Config) underlay() (netip.Prefix, netip.Addr, error) {
	u := cfg.Underlay
	if u == "" {
		u = UnderlayCIDR
	}
	p, err := netip.ParsePrefix(u)
	if err != nil || !p.Addr().Is4() || p.Bits() != 24 || p.Masked() != p {
		return netip.Prefix{}, netip.Addr{}, fmt.Errorf("bed: underlay %q: want an IPv4 /24 such as %s", u, UnderlayCIDR)
	}
	a := p.Addr().As4()
	a[3] = 254
	return p, netip.AddrFrom4(a), nil
}

// Host is one simulated host of a bed.
type Host struct {
	Name     string
	Mode     string
	Netns    string // the host's namespace, where its OVS runs
	TunnelIP string
	OVS      *ovsinst.Instance
	// ExternalUplink is the host's NIC on the external network (in Netns), to be
	// added to br-ex; "" when the bed has no external network.
	ExternalUplink string
	// UnderlayLink and ExternalLink are the root-namespace ends of the host's NICs:
	// capture there to see what the host sends on the wire.
	UnderlayLink string
	ExternalLink string
	Dir          string // the host's OVS files
}

// Bed is a running test bed. Its methods are safe for concurrent use.
type Bed struct {
	cfg   Config
	ctrl  string // the controller's address, .254 of the underlay
	dir   string
	log   *zap.Logger
	hosts []*Host

	mu       sync.Mutex
	ovsdb    map[string]*ovsdb.Client // per host, dialed on first use
	running  map[*process]struct{}    // background pings, captures and DHCP clients
	dhcp     map[string]*dhcpRun      // the VMs' DHCP clients by VM name
	captures int                      // captures started, for file names
	closed   bool
}

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,7}$`)

// hostNameRE keeps host and VM names usable in namespace names and log fields.
var hostNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,31}$`)

// Validate reports what is wrong with cfg.
func (cfg Config) Validate() error {
	if !prefixRE.MatchString(cfg.Prefix) {
		return fmt.Errorf("bed: prefix %q: want 1-8 of [a-z0-9] starting with a letter", cfg.Prefix)
	}
	if len(cfg.Hosts) == 0 {
		return errors.New("bed: no hosts")
	}
	if len(cfg.Hosts) > 99 {
		return fmt.Errorf("bed: %d hosts: at most 99", len(cfg.Hosts))
	}
	underlay, ctrl, err := cfg.underlay()
	if err != nil {
		return err
	}
	bcast := underlay.Addr().As4()
	bcast[3] = 255
	names, ips := map[string]bool{}, map[string]bool{}
	for _, h := range cfg.Hosts {
		if !hostNameRE.MatchString(h.Name) || h.Name == "inet" || h.Name == "target" {
			return fmt.Errorf("bed: host name %q: want [a-z0-9_.-], at most 32, not inet/target", h.Name)
		}
		if names[h.Name] {
			return fmt.Errorf("bed: host %q given twice", h.Name)
		}
		names[h.Name] = true
		ip, err := netip.ParseAddr(h.TunnelIP)
		if err != nil || !underlay.Contains(ip) || ip == underlay.Addr() || ip == ctrl || ip == netip.AddrFrom4(bcast) {
			return fmt.Errorf("bed: host %s: tunnel IP %q: want a host address of %s other than %s",
				h.Name, h.TunnelIP, underlay, ctrl)
		}
		if ips[h.TunnelIP] {
			return fmt.Errorf("bed: tunnel IP %s given twice", h.TunnelIP)
		}
		ips[h.TunnelIP] = true
		switch h.Mode {
		case "dvr", "dvr_snat":
		default:
			return fmt.Errorf("bed: host %s: mode %q: want dvr or dvr_snat", h.Name, h.Mode)
		}
	}
	return nil
}

// Dir is the directory a bed with prefix uses (also what Sweep removes).
func Dir(prefix string) string { return filepath.Join(os.TempDir(), "dvrflow-bed-"+prefix) }

// New builds the bed. On any error it tears down what it made and returns the error.
// It refuses to start when leftovers of the same prefix exist (see Sweep).
func New(ctx context.Context, log *zap.Logger, cfg Config) (*Bed, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &Bed{cfg: cfg, dir: Dir(cfg.Prefix), log: log.Named("bed").With(zap.String("prefix", cfg.Prefix)),
		ovsdb: map[string]*ovsdb.Client{}, running: map[*process]struct{}{}, dhcp: map[string]*dhcpRun{}}
	_, ctrl, _ := cfg.underlay()
	b.ctrl = ctrl.String()
	left, err := leftovers(cfg.Prefix)
	if err != nil {
		return nil, err
	}
	if len(left) > 0 {
		return nil, fmt.Errorf("bed: leftovers of prefix %q exist (%s): run bed.Sweep", cfg.Prefix, strings.Join(left, ", "))
	}
	if owner, err := addressOwner(ctrl); err != nil {
		return nil, err
	} else if owner != "" {
		return nil, fmt.Errorf("bed: %s is already on %s in the root namespace (another bed running?): use another Config.Underlay", ctrl, owner)
	}
	if err := os.Mkdir(b.dir, 0o700); err != nil {
		return nil, fmt.Errorf("bed: %w", err)
	}
	if err := b.build(ctx); err != nil {
		if cerr := b.Close(); cerr != nil {
			b.log.Warn("tear down after failed build", zap.Error(cerr))
		}
		return nil, err
	}
	b.log.Info("bed up", zap.Int("hosts", len(cfg.Hosts)), zap.Bool("external", cfg.External))
	return b, nil
}

// name returns the bed's name for a thing: "<prefix>-<s>".
func (b *Bed) name(s string) string { return b.cfg.Prefix + "-" + s }

func (b *Bed) build(ctx context.Context) error {
	ul, xl := b.name("ul"), b.name("xl")
	if err := b.rootBridge(ctx, ul, b.ctrl+"/24"); err != nil {
		return err
	}
	if b.cfg.External {
		if err := b.rootBridge(ctx, xl, ""); err != nil {
			return err
		}
		if err := b.buildInternet(ctx, xl); err != nil {
			return err
		}
	}
	for i, hc := range b.cfg.Hosts {
		if err := b.buildHost(ctx, i+1, hc); err != nil {
			return fmt.Errorf("bed: host %s: %w", hc.Name, err)
		}
	}
	return nil
}

// rootBridge makes a Linux bridge in the root namespace, without IPv6 (no router
// solicitations or MLD reports in captures).
func (b *Bed) rootBridge(ctx context.Context, name, addr string) error {
	if err := b.ip(ctx, "", "link", "add", name, "type", "bridge"); err != nil {
		return err
	}
	if err := noIPv6(name); err != nil {
		return err
	}
	if addr != "" {
		if err := b.ip(ctx, "", "addr", "add", addr, "dev", name); err != nil {
			return err
		}
	}
	return b.ip(ctx, "", "link", "set", name, "up")
}

// newNetns creates a namespace with lo up and IPv6 off.
func (b *Bed) newNetns(ctx context.Context, ns string) error {
	if err := b.ip(ctx, "", "netns", "add", ns); err != nil {
		return err
	}
	if err := b.ip(ctx, ns, "link", "set", "lo", "up"); err != nil {
		return err
	}
	_, err := b.Exec(ctx, ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	return err
}

// wire makes a veth: rootEnd in the root namespace enslaved to bridge, nsEnd in ns.
func (b *Bed) wire(ctx context.Context, rootEnd, bridge, ns, nsEnd string) error {
	if err := b.ip(ctx, "", "link", "add", rootEnd, "type", "veth", "peer", "name", nsEnd, "netns", ns); err != nil {
		return err
	}
	if err := noIPv6(rootEnd); err != nil {
		return err
	}
	if err := noTxChecksum(ctx, "", rootEnd); err != nil {
		return err
	}
	if err := b.ip(ctx, "", "link", "set", rootEnd, "master", bridge, "up"); err != nil {
		return err
	}
	return b.ip(ctx, ns, "link", "set", nsEnd, "up")
}

func (b *Bed) buildInternet(ctx context.Context, xl string) error {
	inet, tgt := b.name("inet"), b.name("target")
	for _, ns := range []string{inet, tgt} {
		if err := b.newNetns(ctx, ns); err != nil {
			return err
		}
	}
	if err := b.wire(ctx, b.name("xr"), xl, inet, ExternalIface); err != nil {
		return err
	}
	// Created inside inet, so no name ever exists in the root namespace.
	if err := b.ip(ctx, inet, "link", "add", "eth-tgt", "type", "veth", "peer", "name", "eth0", "netns", tgt); err != nil {
		return err
	}
	steps := [][]string{
		{inet, "addr", "add", ExternalGateway + "/24", "dev", ExternalIface},
		{inet, "addr", "add", InternetGateway + "/24", "dev", "eth-tgt"},
		{inet, "link", "set", "eth-tgt", "up"},
		{tgt, "addr", "add", TargetIP + "/24", "dev", "eth0"},
		{tgt, "link", "set", "eth0", "up"},
		{tgt, "route", "add", "default", "via", InternetGateway},
	}
	for _, s := range steps {
		if err := b.ip(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	if _, err := b.Exec(ctx, inet, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"); err != nil {
		return err
	}
	return b.internet6(ctx, inet, tgt)
}

// internet6 gives the internet router and the target IPv6: duplicate address detection
// and router advertisements off before IPv6 goes on (so the router's link-local address
// sends no solicitation on the external network), forwarding on in the router.
func (b *Bed) internet6(ctx context.Context, inet, tgt string) error {
	sysctls := map[string][]string{inet: {ExternalIface, "eth-tgt"}, tgt: {"eth0"}}
	for _, ns := range []string{inet, tgt} {
		args := []string{"sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.default.accept_ra=0"}
		for _, dev := range sysctls[ns] {
			args = append(args, "net.ipv6.conf."+dev+".accept_dad=0", "net.ipv6.conf."+dev+".accept_ra=0")
		}
		if ns == inet {
			args = append(args, "net.ipv6.conf.all.forwarding=1")
		}
		args = append(args, "net.ipv6.conf.all.disable_ipv6=0")
		if _, err := b.Exec(ctx, ns, args...); err != nil {
			return err
		}
	}
	steps := [][]string{
		{inet, "addr", "add", ExternalGateway6 + "/64", "dev", ExternalIface, "nodad"},
		{inet, "addr", "add", InternetGateway6 + "/64", "dev", "eth-tgt", "nodad"},
		{tgt, "addr", "add", TargetIP6 + "/64", "dev", "eth0", "nodad"},
		{tgt, "route", "add", "default", "via", InternetGateway6},
	}
	for _, s := range steps {
		if err := b.ip(ctx, s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// RouteBack routes prefix (a tenant network, IPv4 or IPv6) on the internet router via
// next hop via, an address on the external network of the same family (a router's
// gateway address): the route an upstream router has to the prefixes it hands a cloud
// when they are routed, not NATed. It replaces any route to prefix there; DeleteRouteBack
// removes it, and Close with the router's namespace.
func (b *Bed) RouteBack(ctx context.Context, prefix netip.Prefix, via netip.Addr) error {
	if err := b.checkRouteBack(prefix); err != nil {
		return err
	}
	ext, gw := netip.MustParsePrefix(ExternalCIDR), netip.MustParseAddr(ExternalGateway)
	if via.Is6() {
		ext, gw = netip.MustParsePrefix(ExternalCIDR6), netip.MustParseAddr(ExternalGateway6)
	}
	if !ext.Contains(via) || via == ext.Addr() || via == gw {
		return fmt.Errorf("bed: route back to %s: next hop %s is not another host's address on the external network %s", prefix, via, ext)
	}
	if via.Is6() != prefix.Addr().Is6() {
		return fmt.Errorf("bed: route back to %s via %s: not the same family", prefix, via)
	}
	return b.ip(ctx, b.InternetNetns(), "route", "replace", prefix.String(), "via", via.String(), "dev", ExternalIface)
}

// DeleteRouteBack removes the internet router's route to prefix that RouteBack made.
func (b *Bed) DeleteRouteBack(ctx context.Context, prefix netip.Prefix) error {
	if err := b.checkRouteBack(prefix); err != nil {
		return err
	}
	return b.ip(ctx, b.InternetNetns(), "route", "del", prefix.String(), "dev", ExternalIface)
}

func (b *Bed) checkRouteBack(prefix netip.Prefix) error {
	if !b.cfg.External {
		return errors.New("bed: route back: the bed has no external network")
	}
	if !prefix.IsValid() || prefix.Masked() != prefix || prefix.Addr().Zone() != "" || prefix.Addr().Is4In6() || prefix.Bits() == 0 {
		return fmt.Errorf("bed: route back to %s: want a network prefix", prefix)
	}
	return nil
}

// AddHost builds one more host on the running bed, as New builds each of Config.Hosts.
// On error, what it made of the host is torn down with the bed by Close.
func (b *Bed) AddHost(ctx context.Context, hc HostConfig) (*Host, error) {
	b.mu.Lock()
	cfg := b.cfg
	cfg.Hosts = nil
	for _, h := range b.hosts {
		cfg.Hosts = append(cfg.Hosts, HostConfig{Name: h.Name, TunnelIP: h.TunnelIP, Mode: h.Mode})
	}
	cfg.Hosts = append(cfg.Hosts, hc)
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, errors.New("bed: closed")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := b.buildHost(ctx, len(cfg.Hosts), hc); err != nil {
		return nil, fmt.Errorf("bed: host %s: %w", hc.Name, err)
	}
	b.log.Info("host added", zap.String("host", hc.Name), zap.String("tunnel_ip", hc.TunnelIP), zap.String("mode", hc.Mode))
	return b.Host(hc.Name), nil
}

// buildHost adds the host to b.hosts first, so Close stops its OVS if a later step fails.
// idx numbers its root-namespace links.
func (b *Bed) buildHost(ctx context.Context, idx int, hc HostConfig) error {
	h := &Host{Name: hc.Name, Mode: hc.Mode, Netns: b.name(hc.Name), TunnelIP: hc.TunnelIP,
		UnderlayLink: b.name(fmt.Sprintf("u%d", idx)), Dir: filepath.Join(b.dir, hc.Name)}
	b.mu.Lock()
	b.hosts = append(b.hosts, h)
	b.mu.Unlock()
	if err := b.newNetns(ctx, h.Netns); err != nil {
		return err
	}
	if err := b.wire(ctx, h.UnderlayLink, b.name("ul"), h.Netns, UnderlayIface); err != nil {
		return err
	}
	if b.cfg.External {
		h.ExternalUplink, h.ExternalLink = ExternalIface, b.name(fmt.Sprintf("x%d", idx))
		if err := b.wire(ctx, h.ExternalLink, b.name("xl"), h.Netns, h.ExternalUplink); err != nil {
			return err
		}
	}
	inst, err := ovsinst.Start(ctx, b.log.With(zap.String("host", h.Name)), h.Dir, h.Netns)
	if err != nil {
		return err
	}
	h.OVS = inst
	if _, err := inst.Vsctl(ctx, "add-br", PhysBridge, "--", "set", "bridge", PhysBridge, "datapath_type=netdev",
		"--", "add-port", PhysBridge, UnderlayIface); err != nil {
		return fmt.Errorf("%w%s", err, inst.Logs())
	}
	if err := b.ip(ctx, h.Netns, "addr", "add", h.TunnelIP+"/24", "dev", PhysBridge); err != nil {
		return err
	}
	if err := b.ip(ctx, h.Netns, "link", "set", PhysBridge, "up"); err != nil {
		return err
	}
	return nil
}

// Hosts returns the bed's hosts in configuration order.
func (b *Bed) Hosts() []*Host {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*Host(nil), b.hosts...)
}

// Host returns the host called name, or nil.
func (b *Bed) Host(name string) *Host {
	for _, h := range b.Hosts() {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Prefix is the bed's name prefix (without the "-").
func (b *Bed) Prefix() string { return b.cfg.Prefix }

// Dir is the bed's directory (OVS files, captures).
func (b *Bed) Dir() string { return b.dir }

// ControllerIP is the root namespace's address on the underlay (ControllerIP unless
// Config.Underlay says otherwise), reachable from every host namespace: let the
// controller and the REST API listen there.
func (b *Bed) ControllerIP() string { return b.ctrl }

// Netns is the bed's namespace name for a VM or auxiliary namespace called name.
func (b *Bed) Netns(name string) string { return b.name(name) }

// InternetNetns is the internet router's namespace ("" without External).
func (b *Bed) InternetNetns() string { return b.extName("inet") }

// TargetNetns is the namespace holding TargetIP ("" without External).
func (b *Bed) TargetNetns() string { return b.extName("target") }

// ExternalBridgeLink is the root-namespace Linux bridge of the external network ("" without External).
func (b *Bed) ExternalBridgeLink() string { return b.extName("xl") }

// UnderlayBridgeLink is the root-namespace Linux bridge of the underlay.
func (b *Bed) UnderlayBridgeLink() string { return b.name("ul") }

func (b *Bed) extName(s string) string {
	if !b.cfg.External {
		return ""
	}
	return b.name(s)
}

// OVSDB returns a client of host's ovsdb-server, dialed on first use and closed by Close.
func (b *Bed) OVSDB(ctx context.Context, host string) (*ovsdb.Client, error) {
	h := b.Host(host)
	if h == nil {
		return nil, fmt.Errorf("bed: no host %q", host)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("bed: closed")
	}
	if c := b.ovsdb[host]; c != nil {
		return c, nil
	}
	c, err := ovsdb.Dial(ctx, b.log.With(zap.String("host", host)), "unix:"+h.OVS.DBSocket())
	if err != nil {
		return nil, fmt.Errorf("bed: host %s: %w", host, err)
	}
	b.ovsdb[host] = c
	return c, nil
}

// AgentConfig is the host helper's configuration for host in this bed: netdev
// datapath, br-ex with the host's external uplink (when the bed has one), the given
// API URL and controllers.
func (b *Bed) AgentConfig(host, api string, controllers []string) (agent.Config, error) {
	h := b.Host(host)
	if h == nil {
		return agent.Config{}, fmt.Errorf("bed: no host %q", host)
	}
	cfg := agent.Config{Host: h.Name, API: api, TunnelIP: h.TunnelIP, Mode: h.Mode, Controllers: controllers,
		DatapathType: "netdev", ExtBridge: ExternalBridge, ExtUplink: h.ExternalUplink}
	if err := cfg.Validate(); err != nil {
		return agent.Config{}, fmt.Errorf("bed: host %s: %w", host, err)
	}
	return cfg, nil
}

// HostnetConfig is where host's namespace plans go in this bed: plan namespaces are
// named "<prefix>-<host>-<name>" (so Close removes them), bridge ports in the host's
// namespace.
func (b *Bed) HostnetConfig(host string) (hostnet.Config, error) {
	h := b.Host(host)
	if h == nil {
		return hostnet.Config{}, fmt.Errorf("bed: no host %q", host)
	}
	return hostnet.Config{NamePrefix: h.Netns + "-", HostNetns: h.Netns,
		Bridges: []string{agent.BrInt, ExternalBridge}}, nil
}

// SetupHostBridges does what the host helper does at start for host, without the
// API: br-int, br-tun and br-ex (netdev, fail_mode secure, OpenFlow13, the given
// controllers, fixed datapath IDs), their patch ports, the flow-based vxlan0 on br-tun
// and the host's external uplink on br-ex. It returns the bridges' datapath IDs.
//
// OVS flushes a bridge's flows when it first gets a controller: install nothing
// before this.
func (b *Bed) SetupHostBridges(ctx context.Context, host string, controllers []string) (map[string]string, error) {
	cfg, err := b.AgentConfig(host, "http://"+b.ctrl+":9696", controllers)
	if err != nil {
		return nil, err
	}
	cl, err := b.OVSDB(ctx, host)
	if err != nil {
		return nil, err
	}
	hc, err := b.HostnetConfig(host)
	if err != nil {
		return nil, err
	}
	a, err := agent.New(b.log, cfg, cl, hostnet.New(b.log, cl, hc), nil)
	if err != nil {
		return nil, fmt.Errorf("bed: host %s: %w", host, err)
	}
	dpids, err := a.SetupBridges(ctx)
	if err != nil {
		return nil, fmt.Errorf("bed: host %s: %w", host, err)
	}
	return dpids, nil
}

// AddVM creates a VM namespace "<prefix>-<vmName>" on host, plugged into its br-int as
// `dvrflow-host plug` does (host/vmport): eth0 with mac and cidr, default route via
// gw ("" for none), tap<portID[:11]> on br-int with iface-id and attached-mac. br-int
// must exist; eth0 computes its checksums (noTxChecksum). It returns the VM's namespace name.
func (b *Bed) AddVM(ctx context.Context, host, vmName, portID, mac, cidr, gw string) (string, error) {
	if !hostNameRE.MatchString(vmName) {
		return "", fmt.Errorf("bed: VM name %q: want [a-z0-9_.-], at most 32", vmName)
	}
	h := b.Host(host)
	if h == nil {
		return "", fmt.Errorf("bed: no host %q", host)
	}
	ns := b.name(vmName)
	taken := []string{b.name("inet"), b.name("target")}
	for _, o := range b.Hosts() {
		taken = append(taken, o.Netns)
	}
	for _, t := range taken {
		if t == ns || strings.HasPrefix(ns, t+"-") {
			return "", fmt.Errorf("bed: VM name %q clashes with namespace %s", vmName, t)
		}
	}
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
		return "", fmt.Errorf("bed: namespace %s already exists", ns)
	}
	cl, err := b.OVSDB(ctx, host)
	if err != nil {
		return "", err
	}
	vm := vmport.VM{PortID: portID, MAC: mac, Netns: ns, CIDR: cidr, Gateway: gw, Bridge: agent.BrInt, HostNetns: h.Netns}
	if err := vmport.Plug(ctx, cl, vm); err != nil {
		return "", fmt.Errorf("bed: VM %s on %s: %w", vmName, host, err)
	}
	// The VM's TCP must carry real checksums: the userspace datapath's conntrack checks
	// them (a virtio NIC's offload would be resolved by the hypervisor).
	if err := noTxChecksum(ctx, ns, "eth0"); err != nil {
		return "", err
	}
	return ns, nil
}

// Close stops every background ping, capture and DHCP client, closes the OVSDB clients, stops
// each host's OVS (by pid), deletes every namespace and root-namespace link with the
// bed's prefix and removes the bed's directory. It is safe to call more than once.
func (b *Bed) Close() error {
	b.mu.Lock()
	b.closed = true
	procs := make([]*process, 0, len(b.running))
	for p := range b.running {
		procs = append(procs, p)
	}
	clients := b.ovsdb
	b.ovsdb = map[string]*ovsdb.Client{}
	b.mu.Unlock()

	var errs []error
	for _, p := range procs {
		if err := p.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range clients {
		c.Close()
	}
	for _, h := range b.Hosts() {
		if h.OVS == nil {
			continue
		}
		if err := h.OVS.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("bed: stop OVS of %s: %w", h.Name, err))
			continue
		}
		h.OVS = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), sweepTimeout)
	defer cancel()
	if err := Sweep(ctx, b.log, b.cfg.Prefix); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b.log.Info("bed down")
	return nil
}
