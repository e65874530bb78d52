package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/topology"
)

// simBridge is one simulated bridge and what the harness watched it receive.
type simBridge struct {
	host string
	br   topology.Bridge
	dpid uint64
	sw   bridgeSwitch // nil while the fleet is built
	// initial holds the ports the bridge starts with, until the fleet is built.
	initial []ofsim.Port

	mu         sync.Mutex
	nextPort   uint32
	flowMods   int64     // flow-mods received
	lastMod    time.Time // last flow-mod event
	lastAck    time.Time // first barrier reply after lastMod (zero: none yet)
	lastDump   time.Time
	dumpBy     map[string]time.Time // last flow dump by controller address
	sessions   int                  // controller sessions up
	connectedN int
	recent     []modNote // the last plain flow-mods, newest last (at most maxRecent)
}

// bridgeSwitch is what the harness does to a simulated bridge: localSwitch when the
// bridges run in this process, workerSwitch when a worker process runs them (simproc.go).
type bridgeSwitch interface {
	// PortsAndFlows returns the bridge's ports, ordered by number, and its flows in no
	// particular order.
	PortsAndFlows() ([]ofsim.Port, []ofproto.Flow, error)
	NumFlows() (int, error)
	// AddPort adds a port and tells the controllers with a port status.
	AddPort(ofsim.Port) error
}

// localSwitch is a bridge simulated in this process.
type localSwitch struct{ s *ofsim.Switch }

func (l localSwitch) PortsAndFlows() ([]ofsim.Port, []ofproto.Flow, error) {
	flows, err := l.s.UnorderedFlows()
	if err != nil {
		return nil, nil, err
	}
	return l.s.Ports(), flows, nil
}

func (l localSwitch) NumFlows() (int, error)     { return l.s.NumFlows(), nil }
func (l localSwitch) AddPort(p ofsim.Port) error { return l.s.AddPort(p) }

// modNote is a plain flow-mod a bridge received: when, and which app's flow in which table.
type modNote struct {
	at   time.Time
	what string // "app table command", e.g. "dvr t1 ADD"
}

// maxRecent bounds the flow-mods a bridge remembers (to say what a change did to a host
// it should not have touched).
const maxRecent = 8

// simHost is one simulated hypervisor: its three bridges, as the host helper sets them up.
type simHost struct {
	name    string
	bridges map[topology.Bridge]*simBridge
	plugged map[string]bool // plan links plugged (by link name)
}

// fleet is every simulated bridge, indexed by datapath ID, with a fleet-wide event clock.
type fleet struct {
	hosts     map[string]*simHost
	names     []string // host names, sorted
	byDPID    map[uint64]*simBridge
	sim       *ofsim.Fleet // the bridges simulated in this process (nil: procs)
	procs     *simProcs    // the worker processes simulating the bridges (nil: sim)
	lastNano  atomic.Int64 // time of the last flow-mod or barrier event, Unix ns
	firstNano atomic.Int64 // time of the first flow-mod since it was last zeroed, Unix ns

	// modsBy counts the flow-mods received by controller address (a read-only map).
	modsBy map[string]*atomic.Int64
}

type fleetConfig struct {
	addrs            []string // every bridge connects to each controller
	rate, bundleRate float64
	connectRate      float64
	maxBackoff       time.Duration
	// procs is the number of processes simulating the bridges: 1, this one; more, as many
	// worker processes started by worker, the hosts dealt out among them.
	procs  int
	worker workerCommand
}

// newFleet builds the bridges of every host: br-int with the patches and the taps of the
// host's VM ports, br-tun with its patch and the flow-based VXLAN port, br-ex with its
// patch and an uplink, and on each bridge the links of the host's namespace plan.
func newFleet(log *zap.Logger, cfg fleetConfig, hosts []hostSpec) (*fleet, error) {
	f := &fleet{hosts: map[string]*simHost{}, byDPID: map[uint64]*simBridge{}, modsBy: map[string]*atomic.Int64{}}
	for _, a := range cfg.addrs {
		f.modsBy[a] = &atomic.Int64{}
	}
	for _, h := range hosts {
		sh := &simHost{name: h.Name, bridges: map[topology.Bridge]*simBridge{}, plugged: map[string]bool{}}
		for _, br := range topology.Bridges() {
			dpid, ok := h.DPIDs[string(br)]
			if !ok {
				return nil, fmt.Errorf("host %s: no datapath ID for %s", h.Name, br)
			}
			if _, dup := f.byDPID[dpid]; dup {
				return nil, fmt.Errorf("host %s %s: datapath ID %016x used twice", h.Name, br, dpid)
			}
			var ports []ofsim.Port
			add := func(name string, no uint32) {
				ports = append(ports, ofsim.Port{No: no, Name: name, HWAddr: portMAC(dpid, no)})
			}
			next := uint32(3)
			switch br {
			case topology.BrInt:
				add(apps.PortPatchTun, 1)
				add(apps.PortIntBrEx, 2)
				next = 10
				for _, p := range h.VMPorts {
					add(apps.VMPortName(p), next)
					next++
				}
			case topology.BrTun:
				add(apps.PortPatchInt, 1)
				add(apps.PortVXLAN, 2)
			case topology.BrEx:
				add(apps.PortPhyBrEx, 1)
				add("eth-ext", 2)
			}
			b := &simBridge{host: h.Name, br: br, dpid: dpid, nextPort: next, initial: ports}
			sh.bridges[br] = b
			f.byDPID[dpid] = b
		}
		f.hosts[h.Name] = sh
		f.names = append(f.names, h.Name)
		for _, l := range h.Links {
			if err := f.plug(h.Name, l); err != nil {
				return nil, err
			}
		}
	}
	slices.Sort(f.names)
	if cfg.procs > 1 {
		if err := f.startProcs(log, cfg); err != nil {
			return nil, err
		}
		return f, nil
	}
	f.sim = ofsim.NewFleet(log, ofsim.FleetConfig{Addrs: cfg.addrs, ConnectRate: cfg.connectRate, MaxBackoff: cfg.maxBackoff})
	hook := func(e ofsim.Event) { f.hook(e, time.Now()) }
	for _, b := range f.all() {
		sw := ofsim.New(log, ofsim.Config{DPID: b.dpid, Ports: b.initial, FlowModRate: cfg.rate,
			BundleFlowModRate: cfg.bundleRate, Hook: hook})
		b.sw, b.initial = localSwitch{sw}, nil
		f.sim.Add(sw)
	}
	return f, nil
}

// run connects every bridge and keeps them connected until ctx ends.
func (f *fleet) run(ctx context.Context) error {
	if f.procs != nil {
		return f.procs.run(ctx)
	}
	return f.sim.Run(ctx)
}

// close ends the worker processes, if any (run does when its ctx ends).
func (f *fleet) close() {
	if f.procs != nil {
		f.procs.kill()
	}
}

// alive reports a worker process that exited.
func (f *fleet) alive() error {
	if f.procs != nil {
		return f.procs.alive()
	}
	return nil
}

// sync returns once every event a worker process reported before it was called has been
// recorded (the events of this process's bridges are recorded when they happen). A worker
// that died is reported by alive and by every call to its bridges, not here.
func (f *fleet) sync() {
	if f.procs != nil {
		_ = f.procs.sync()
	}
}

// portMAC makes a stable, locally administered MAC for a bridge port.
func portMAC(dpid uint64, no uint32) net.HardwareAddr {
	return net.HardwareAddr{0x02, byte(dpid >> 16), byte(dpid >> 8), byte(dpid), byte(no >> 8), byte(no)}
}

// plug adds a plan link's OVS end to its bridge (as the host helper does), once.
func (f *fleet) plug(host string, l plan.Link) error {
	h := f.hosts[host]
	if l.Bridge == "" || h.plugged[l.Name] {
		return nil
	}
	b, ok := h.bridges[topology.Bridge(l.Bridge)]
	if !ok {
		return fmt.Errorf("host %s: link %s on unknown bridge %q", host, l.Name, l.Bridge)
	}
	h.plugged[l.Name] = true
	return b.addPort(plan.OVSPeerName(l.Name))
}

// portsAndFlows returns the bridge's ports and flows.
func (b *simBridge) portsAndFlows() ([]ofsim.Port, []ofproto.Flow, error) {
	ports, flows, err := b.sw.PortsAndFlows()
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", b.host, b.br, err)
	}
	return ports, flows, nil
}

func (b *simBridge) addPort(name string) error {
	b.mu.Lock()
	no := b.nextPort
	b.nextPort++
	b.mu.Unlock()
	p := ofsim.Port{No: no, Name: name, HWAddr: portMAC(b.dpid, no)}
	if b.sw == nil {
		// The fleet is being built: a port the bridge starts with.
		b.initial = append(b.initial, p)
		return nil
	}
	if err := b.sw.AddPort(p); err != nil {
		return fmt.Errorf("plug %s on %s %s: %w", name, b.host, b.br, err)
	}
	return nil
}

// hook records what every bridge receives, at the time it happened (now): it runs on the
// bridges' connection goroutines, or on the reader of a worker process's events.
func (f *fleet) hook(e ofsim.Event, now time.Time) {
	b := f.byDPID[e.DPID]
	if b == nil {
		return
	}
	b.mu.Lock()
	switch e.Kind {
	case ofsim.EventConnected:
		b.sessions++
		b.connectedN++
	case ofsim.EventDisconnected:
		b.sessions--
	case ofsim.EventFlowMods:
		if n := f.modsBy[e.Addr]; n != nil {
			n.Add(int64(e.N))
		}
		storeFirst(&f.firstNano, now.UnixNano())
		b.flowMods += int64(e.N)
		b.lastMod, b.lastAck = now, time.Time{}
		what := fmt.Sprintf("bundle of %d", e.N)
		if e.N == 1 {
			app, _ := apps.CookieApp(e.Cookie)
			what = fmt.Sprintf("%s t%d %s", app, e.Table, e.Command)
		}
		if len(b.recent) == maxRecent {
			b.recent = append(b.recent[:0], b.recent[1:]...)
		}
		b.recent = append(b.recent, modNote{at: now, what: what})
	case ofsim.EventBarrier:
		if !b.lastMod.IsZero() && b.lastAck.IsZero() {
			b.lastAck = now
		}
	case ofsim.EventFlowStats:
		b.lastDump = now
		if b.dumpBy == nil {
			b.dumpBy = map[string]time.Time{}
		}
		b.dumpBy[e.Addr] = now
	}
	b.mu.Unlock()
	if e.Kind == ofsim.EventFlowMods || e.Kind == ofsim.EventBarrier {
		storeLast(&f.lastNano, now.UnixNano())
	}
}

// storeFirst sets v to t when v is zero or later than t: the events of several worker
// processes do not arrive in the order they happened.
func storeFirst(v *atomic.Int64, t int64) {
	for {
		old := v.Load()
		if (old != 0 && old <= t) || v.CompareAndSwap(old, t) {
			return
		}
	}
}

// storeLast sets v to t when v is earlier than t.
func storeLast(v *atomic.Int64, t int64) {
	for {
		old := v.Load()
		if old >= t || v.CompareAndSwap(old, t) {
			return
		}
	}
}

// bridgeState is a snapshot of what was watched on one bridge.
type bridgeState struct {
	flowMods                   int64
	lastMod, lastAck, lastDump time.Time
	connected                  bool // at least one controller session up
	connectedN                 int
}

// modsSince returns what the plain flow-mods the bridge received after t0 were about
// (the last maxRecent of them), comma-separated.
func (b *simBridge) modsSince(t0 time.Time) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.recent {
		if m.at.After(t0) {
			out = append(out, m.what)
		}
	}
	return strings.Join(out, ", ")
}

func (b *simBridge) state() bridgeState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bridgeState{b.flowMods, b.lastMod, b.lastAck, b.lastDump, b.sessions > 0, b.connectedN}
}

// dumpedBy returns when the controller at addr last dumped the bridge's flows.
func (b *simBridge) dumpedBy(addr string) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dumpBy[addr]
}

// all returns every bridge, host by host.
func (f *fleet) all() []*simBridge {
	out := make([]*simBridge, 0, 3*len(f.names))
	for _, n := range f.names {
		out = append(out, f.bridgesOf(n)...)
	}
	return out
}

// bridgesOf returns host h's bridges.
func (f *fleet) bridgesOf(h string) []*simBridge {
	out := make([]*simBridge, 0, 3)
	for _, br := range topology.Bridges() {
		out = append(out, f.hosts[h].bridges[br])
	}
	return out
}

// totalFlowMods sums the flow-mods every bridge received.
func (f *fleet) totalFlowMods() int64 {
	f.sync()
	var n int64
	for _, b := range f.byDPID {
		n += b.state().flowMods
	}
	return n
}

// slaveRefused sums the messages every bridge refused with OFPBRC_IS_SLAVE (a controller
// writing to a switch it is not the master of).
func (f *fleet) slaveRefused() (uint64, error) {
	if f.procs != nil {
		return f.procs.slaveRefused()
	}
	var n uint64
	for _, s := range f.sim.Switches() {
		n += s.Counts().SlaveRefused
	}
	return n, nil
}
