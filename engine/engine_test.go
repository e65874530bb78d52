package engine

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/db/pgtest"
	"github.com/dvrflow/dvrflow/dhcp4"
	"github.com/dvrflow/dvrflow/engine/enginetest"
	"github.com/dvrflow/dvrflow/northbound"
	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/topology"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

const token = "engine-test-token"

// fixture is a whole dvrflow control plane (PostgreSQL store, REST API, OpenFlow server and
// engine) with fake switches standing in for every bridge of the seed's three hosts, and a
// stand-in for each host helper that plugs the ports its plan asks for.
type fixture struct {
	t     *testing.T
	log   *zap.Logger
	store *db.Store
	api   *httptest.Server
	plans *planProxy
	topo  *seed.Topology
	opts  seed.Options
	cfg   Config // of the engine the next startController starts

	mu       sync.Mutex
	eng      *Engine
	ofs      *controller.Server
	addr     string
	stopCtrl context.CancelFunc
	ctrlDone chan struct{}

	switches map[string]*ofsim.Switch // "host/bridge"
	swCancel map[string]context.CancelFunc
	nextPort map[string]uint32
}

// planProxy lets the API keep one PlanSource across controller restarts.
type planProxy struct {
	mu  sync.Mutex
	eng *Engine
}

func (p *planProxy) WaitPlan(ctx context.Context, host string, after int64) (plan.Plan, error) {
	p.mu.Lock()
	e := p.eng
	p.mu.Unlock()
	return e.WaitPlan(ctx, host, after)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), plans: &planProxy{},
		swCancel: map[string]context.CancelFunc{}, nextPort: map[string]uint32{}}
	st, err := db.Open(context.Background(), pg.NewDatabase(t), db.DefaultConfig(), f.log)
	if err != nil {
		t.Fatal(err)
	}
	f.store = st
	t.Cleanup(st.Close)
	cfg := northbound.DefaultConfig()
	cfg.AdminToken = token
	cfg.Plans = f.plans
	api, err := northbound.New(st, cfg, f.log)
	if err != nil {
		t.Fatal(err)
	}
	f.api = httptest.NewServer(api)
	t.Cleanup(f.api.Close)
	f.startController()
	t.Cleanup(f.stopController)
	return f
}

func (f *fixture) startController() {
	f.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	ofs := controller.NewServer(f.log, enginetest.ControllerConfig())
	eng := New(f.log, f.cfg, f.store, ofs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = ofs.Serve(ctx, ln) }()
	go func() { defer wg.Done(); _ = eng.Run(ctx) }()
	go func() { wg.Wait(); close(done) }()
	f.mu.Lock()
	f.eng, f.ofs, f.addr, f.stopCtrl, f.ctrlDone = eng, ofs, ln.Addr().String(), cancel, done
	f.mu.Unlock()
	f.plans.mu.Lock()
	f.plans.eng = eng
	f.plans.mu.Unlock()
}

func (f *fixture) stopController() {
	f.mu.Lock()
	stop, done := f.stopCtrl, f.ctrlDone
	f.stopCtrl = nil
	f.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// seedTopology creates the seed scenario through the REST API, with each host's bridges
// registered under the datapath IDs its helper would use.
func (f *fixture) seedTopology() {
	f.t.Helper()
	opts := enginetest.SeedOptions()
	topo, err := seed.Create(context.Background(), seed.NewClient(f.api.URL, token), opts)
	if err != nil {
		f.t.Fatalf("seed: %v", err)
	}
	f.topo, f.opts = topo, opts
}

// connectSwitches starts a fake switch for every bridge of every seed host, with the fixed
// ports the helper creates (patches, vxlan0, uplink) and the taps of the host's VMs; ports
// the helpers plug later are numbered from 100.
func (f *fixture) connectSwitches() {
	f.t.Helper()
	f.switches = enginetest.Switches(f.log, f.opts, f.topo)
	for key := range f.switches {
		if strings.HasSuffix(key, "/"+string(topology.BrInt)) {
			f.nextPort[key] = 100
		}
		f.runSwitch(key)
	}
}

func (f *fixture) runSwitch(key string) {
	sw := f.switches[key]
	f.mu.Lock()
	addr := f.addr
	f.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	f.swCancel[key] = cancel
	go func() { _ = sw.Run(ctx, addr) }()
	f.t.Cleanup(cancel)
}

// helpers plays the host helpers' part that matters to flows: every bridge-plugged link of a
// host's plan appears as a port of its br-int.
func (f *fixture) helpers(ctx context.Context) {
	for _, h := range []string{"compute1", "compute2", "network"} {
		go func() {
			after := int64(-1)
			plugged := map[string]bool{}
			for ctx.Err() == nil {
				p, err := f.plans.WaitPlan(ctx, h, after)
				if err != nil {
					continue
				}
				after = p.Revision
				for _, ns := range p.Namespaces {
					for _, l := range ns.Links {
						if l.Bridge == "" || plugged[l.Name] {
							continue
						}
						plugged[l.Name] = true
						key := h + "/" + l.Bridge
						f.mu.Lock()
						no := f.nextPort[key]
						f.nextPort[key]++
						f.mu.Unlock()
						if err := f.switches[key].AddPort(ofsim.Port{No: no, Name: "t" + l.Name}); err != nil {
							f.t.Errorf("plug %s on %s: %v", l.Name, key, err)
						}
					}
				}
			}
		}()
	}
}

// converged reports whether every switch holds exactly the flows the apps compute for it
// now (and more than the miss flows: its host's ports are known).
func (f *fixture) converged() (bool, string) {
	f.mu.Lock()
	eng, ofs := f.eng, f.ofs
	f.mu.Unlock()
	var ready bool
	eng.ReadView(func(v *topology.View) { ready = v != nil })
	if !ready {
		return false, "no view yet"
	}
	for key, sw := range f.switches {
		host, b, _ := strings.Cut(key, "/")
		want := ofs.Reconciler(sw.DPID()).Desired()
		if len(want) <= len(apps.Tables(topology.Bridge(b))) {
			return false, key + ": only miss flows desired"
		}
		got, err := sw.DumpFlows()
		if err != nil {
			return false, err.Error()
		}
		if !enginetest.SameFlows(got, want) {
			return false, fmt.Sprintf("%s of %s: switch differs from desired", b, host)
		}
	}
	return true, ""
}

func (f *fixture) port(name string) *topology.PortInfo {
	var p *topology.PortInfo
	f.eng.ReadView(func(v *topology.View) { p = v.Port(f.topo.VMs[name].ID) })
	return p
}

// newConverged is a fixture with the seed topology, every switch connected, the helpers'
// stand-ins running until the test ends, and every switch holding its desired flows.
func newConverged(t *testing.T) (*fixture, context.Context) {
	t.Helper()
	f := newFixture(t)
	f.seedTopology()
	f.connectSwitches()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	f.helpers(ctx)
	enginetest.Eventually(t, "every switch holding its desired flows", f.converged)
	return f, ctx
}

func TestSeedConvergesAndSurvivesRestart(t *testing.T) {
	f, ctx := newConverged(t)

	// Every VM port is ACTIVE once its tap is on its host's br-int.
	enginetest.Eventually(t, "VM ports ACTIVE", func() (bool, string) {
		for name, vm := range f.topo.VMs {
			p, err := f.store.GetPort(ctx, vm.ID)
			if err != nil || p.Status != topology.PortStatusActive {
				return false, name + " not ACTIVE"
			}
		}
		return true, ""
	})

	// Every bridge realized the revision its desired set was computed at.
	enginetest.Eventually(t, "every bridge at its desired revision", func() (bool, string) {
		for k, sw := range f.switches {
			st := f.ofs.Reconciler(sw.DPID()).Stats()
			if st.DesiredRevision == 0 || st.RealizedRevision != st.DesiredRevision {
				return false, fmt.Sprintf("%s: realized r%d, desired r%d", k, st.RealizedRevision, st.DesiredRevision)
			}
		}
		return true, ""
	})

	// So is every router interface, SNAT, gateway and agent gateway port, once its
	// namespace end is on a br-int where it belongs (Neutron shows them ACTIVE).
	enginetest.Eventually(t, "router-owned ports ACTIVE", func() (bool, string) {
		ps, err := f.store.ListPorts(ctx)
		if err != nil {
			return false, err.Error()
		}
		n := 0
		for _, p := range ps {
			switch p.DeviceOwner {
			case topology.OwnerRouterInterfaceDistributed, topology.OwnerRouterCentralizedSNAT, topology.OwnerRouterGateway, topology.OwnerFloatingIPAgentGateway:
				if p.Status != topology.PortStatusActive {
					return false, p.DeviceOwner + " " + p.ID + " " + string(p.Status)
				}
				n++
			}
		}
		return n == 6, fmt.Sprintf("%d router-owned ports", n) // 2 interfaces, 2 snat, the gateway, compute1's agent gateway
	})

	// Namespaces: qrouter and fip on compute1, qrouter on compute2, snat on network, and
	// the metadata proxy of both networks where their VMs are.
	for host, want := range map[string][]string{
		"compute1": {"qrouter-", "fip-", "qmeta-", "qmeta-"}, "compute2": {"qrouter-", "qmeta-", "qmeta-"}, "network": {"snat-"}} {
		p, err := f.eng.WaitPlan(ctx, host, -1)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ns := range p.Namespaces {
			got = append(got, ns.Name[:strings.Index(ns.Name, "-")+1])
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s plan namespaces %v, want %v", host, got, want)
		}
	}

	t.Run("ARP answered by the controller, not flooded", func(t *testing.T) {
		vm1, vm4 := f.port("VM1"), f.port("VM4")
		sw := f.switches["compute1/br-int"]
		po := askController(t, sw, 10, ofproto.AppendARPRequest(nil, 0, vm1.MAC, vm1.IPs[0].Addr, vm4.IPs[0].Addr), "the ARP reply")
		req, _ := ofproto.ParseARPRequest(ofproto.AppendARPRequest(nil, 0, vm1.MAC, vm1.IPs[0].Addr, vm4.IPs[0].Addr))
		want := ofproto.ARPReply(req, vm4.MAC)
		if string(po[0].Data) != string(want) || len(po[0].Actions) != 1 || po[0].Actions[0].String() != "output:10" {
			t.Fatalf("packet-out %x %v, want %x output:10", po[0].Data, po[0].Actions, want)
		}
	})

	t.Run("DHCP answered by the controller on the port's own switch", func(t *testing.T) {
		vm1 := f.port("VM1")
		sw := f.switches["compute1/br-int"]
		sw.TakePacketOuts()
		spoofed := dhcp4.AppendRequest(nil, &dhcp4.Message{Type: dhcp4.Discover, XID: 8, CHAddr: f.port("VM4").MAC}, nil)
		if outs, err := sw.Execute(10, spoofed); err != nil || len(outs) != 0 {
			t.Fatalf("VM1 sending DHCP with VM4's MAC: %+v %v, want dropped", outs, err)
		}
		po := askController(t, sw, 10, dhcp4.AppendRequest(nil, &dhcp4.Message{Type: dhcp4.Discover, XID: 9, CHAddr: vm1.MAC}, nil), "the OFFER")
		offer, err := dhcp4.ParseReply(po[0].Data)
		if err != nil {
			t.Fatal(err)
		}
		if offer.Reply.Type != dhcp4.Offer || offer.Reply.XID != 9 || offer.Reply.YIAddr != vm1.IPs[0].Addr ||
			len(po[0].Actions) != 1 || po[0].Actions[0].String() != "output:10" {
			t.Fatalf("packet-out %+v %v, want an OFFER of %s on output:10", offer.Reply, po[0].Actions, vm1.IPs[0].Addr)
		}
		if n := f.eng.Stats().DHCP[apps.DHCPOffered]; n != 1 {
			t.Errorf("%d offers counted, want 1", n)
		}
	})

	t.Run("routed frame leaves compute1 with its DVR MAC, arrives with the gateway MAC", func(t *testing.T) {
		vm2 := f.port("VM2")
		var (
			sub2   *topology.SubnetInfo
			c1, c2 *topology.HostInfo
			vni    uint64
			vlan   uint16
		)
		f.eng.ReadView(func(v *topology.View) {
			sub2 = v.Subnet(vm2.IPs[0].SubnetID)
			c1, c2 = v.Host("compute1"), v.Host("compute2")
			vni = uint64(v.Network(vm2.NetworkID).SegmentationID)
			vlan, _ = v.LocalVLAN("compute2", vm2.NetworkID)
		})
		qr2 := f.portNo("compute1/br-int", "tqr-"+sub2.RouterIf.ID[:11])
		frame := ipFrame(vm2.MAC, sub2.GatewayMAC, netip.MustParseAddr("10.0.1.5"), vm2.IPs[0].Addr)
		outs, err := f.switches["compute1/br-int"].Execute(qr2, frame)
		if err != nil || len(outs) != 1 || outs[0].Port != 1 {
			t.Fatalf("br-int compute1: %+v %v, want patch-tun", outs, err)
		}
		outs, err = f.switches["compute1/br-tun"].Execute(1, outs[0].Frame)
		if err != nil || len(outs) != 1 || outs[0].Port != 2 {
			t.Fatalf("br-tun compute1: %+v %v, want vxlan0", outs, err)
		}
		if outs[0].TunDst != c2.TunnelIP || outs[0].TunID != vni || net.HardwareAddr(outs[0].Frame[6:12]).String() != c1.DVRMAC.String() {
			t.Fatalf("tunnelled to %v VNI %d from %s, want %v VNI %d from compute1's DVR MAC %s",
				outs[0].TunDst, outs[0].TunID, net.HardwareAddr(outs[0].Frame[6:12]), c2.TunnelIP, vni, c1.DVRMAC)
		}
		// On compute2, br-tun pushed compute2's local VLAN and handed the frame to br-int.
		tagged := withVLAN(outs[0].Frame, vlan)
		outs, err = f.switches["compute2/br-int"].Execute(1, tagged)
		vm2Tap := f.portNo("compute2/br-int", apps.VMPortName(vm2.ID))
		if err != nil || len(outs) != 1 || outs[0].Port != vm2Tap {
			t.Fatalf("br-int compute2: %+v %v, want VM2's tap %d", outs, err, vm2Tap)
		}
		if src := net.HardwareAddr(outs[0].Frame[6:12]).String(); src != sub2.GatewayMAC.String() {
			t.Fatalf("VM2 sees source MAC %s, want Net2's gateway MAC %s", src, sub2.GatewayMAC)
		}
	})

	// A restart of the controller with nothing changed sends zero flow-mods.
	before := map[string]ofsim.Counts{}
	for k, sw := range f.switches {
		before[k] = sw.Counts()
	}
	f.stopController()
	f.startController()
	for k := range f.switches {
		f.swCancel[k]()
		f.runSwitch(k)
	}
	enginetest.Eventually(t, "reconnected and reconciled", func() (bool, string) {
		for k, sw := range f.switches {
			st := f.ofs.Reconciler(sw.DPID()).Stats()
			if st.Reconciles == 0 || st.Dumps == 0 {
				return false, k + " not reconciled yet"
			}
		}
		return f.converged()
	})
	for k, sw := range f.switches {
		b, a := before[k], sw.Counts()
		if a.Add != b.Add || a.Modify != b.Modify || a.ModifyStrict != b.ModifyStrict || a.Delete != b.Delete || a.DeleteStrict != b.DeleteStrict {
			t.Errorf("%s: restart sent flow-mods: %+v -> %+v", k, b, a)
		}
		// Nor anything the switch refuses (it had an existing meter added again).
		if sess, ok := f.ofs.Session(sw.DPID()); !ok {
			t.Errorf("%s: not connected after the restart", k)
		} else if n := sess.ErrorsReceived(); n != 0 {
			t.Errorf("%s: %d switch errors after the restart", k, n)
		}
	}

	// Deleting VM3's port leaves compute1's qrouter (VM1 is still there); deleting VM1's too
	// removes it, and with it compute1's flows for Net2.
	for _, name := range []string{"VM3", "VM1"} {
		if err := f.store.DeletePort(ctx, f.topo.VMs[name].ID); err != nil {
			t.Fatal(err)
		}
	}
	enginetest.Eventually(t, "compute1 without qrouter", func() (bool, string) {
		p, err := f.eng.WaitPlan(ctx, "compute1", -1)
		if err != nil {
			return false, err.Error()
		}
		return len(p.Namespaces) == 0, fmt.Sprintf("%d namespaces", len(p.Namespaces))
	})
	enginetest.Eventually(t, "flows converged after deletes", f.converged)
	dump, _ := f.switches["compute1/br-int"].DumpFlows()
	for _, name := range []string{"VM1", "VM2", "VM3"} {
		if mac := f.topo.VMs[name].MACAddress; strings.Contains(dump, mac) {
			t.Errorf("compute1 br-int still has flows for %s (%s):\n%s", name, mac, dump)
		}
	}
}

func (f *fixture) portNo(key, name string) uint32 {
	f.t.Helper()
	sw := f.switches[key]
	for _, s := range f.ofs.Sessions() {
		if s.DPID() != sw.DPID() {
			continue
		}
		for _, p := range s.Ports() {
			if p.Name == name {
				return p.No
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.eng.bridges {
		if b.dpid == sw.DPID() {
			if no, ok := b.ports[name]; ok {
				return no
			}
		}
	}
	f.t.Fatalf("no port %s on %s", name, key)
	return 0
}

func ipFrame(dst, src net.HardwareAddr, from, to netip.Addr) []byte {
	b := append(append([]byte{}, dst...), src...)
	b = binary.BigEndian.AppendUint16(b, 0x0800)
	h := []byte{0x45, 0, 0, 28, 0, 0, 0, 0, 63, 1, 0, 0}
	fa, ta := from.As4(), to.As4()
	h = append(append(h, fa[:]...), ta[:]...)
	b = append(b, h...)
	return append(b, 8, 0, 0xf7, 0xff, 0, 0, 0, 0) // ICMP echo request
}

func withVLAN(frame []byte, vlan uint16) []byte {
	out := append([]byte{}, frame[:12]...)
	out = binary.BigEndian.AppendUint16(out, ofproto.EthTypeVLAN)
	out = binary.BigEndian.AppendUint16(out, vlan)
	return append(out, frame[12:]...)
}

// A deleted host's switches lose dvrflow's flows at once, and get none back when they
// reconnect. Before: its reconcilers kept their last desired set and re-installed it.
// askController sends frame into sw from inPort, checks that the switch sends it to the
// controller only, and waits for the controller's packet-outs (what names the answer).
func askController(t *testing.T, sw *ofsim.Switch, inPort uint32, frame []byte, what string) []ofsim.PacketOut {
	t.Helper()
	sw.TakePacketOuts()
	outs, err := sw.Execute(inPort, frame)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 1 || outs[0].Port != ofproto.PortController {
		t.Fatalf("%s: the frame went to %+v, want the controller only", what, outs)
	}
	var po []ofsim.PacketOut
	enginetest.Eventually(t, what, func() (bool, string) {
		po = append(po, sw.TakePacketOuts()...)
		return len(po) > 0, "no packet-out"
	})
	return po
}

func TestDeletedHostFlowsRemoved(t *testing.T) {
	f, ctx := newConverged(t)

	bridges := map[string]string{}
	var keys []string
	for _, b := range topology.Bridges() {
		dpid := enginetest.DPID("compute3", b)
		bridges[string(b)] = ofproto.DPID(dpid).String()
		key := "compute3/" + string(b)
		keys = append(keys, key)
		var ports []ofsim.Port
		for name, no := range enginetest.Ports(f.opts, f.topo, "compute3", b) {
			ports = append(ports, ofsim.Port{No: no, Name: name})
		}
		f.switches[key] = ofsim.New(f.log, ofsim.Config{DPID: dpid, Ports: ports})
		f.runSwitch(key)
	}
	if _, _, err := f.store.RegisterHost(ctx, db.HostSpec{Name: "compute3", TunnelIP: "192.168.248.30", Mode: topology.HostModeDVR, Bridges: bridges}); err != nil {
		t.Fatal(err)
	}
	flowsOf := func(key string) int {
		dump, err := f.switches[key].DumpFlows()
		if err != nil {
			return -1
		}
		if dump = strings.TrimSpace(dump); dump == "" {
			return 0
		}
		return len(strings.Split(dump, "\n"))
	}
	enginetest.Eventually(t, "compute3's switches given their flows", func() (bool, string) {
		for _, k := range keys {
			if n := flowsOf(k); n <= 0 {
				return false, fmt.Sprintf("%s has %d flows", k, n)
			}
		}
		return true, ""
	})
	if err := f.store.DeleteHost(ctx, "compute3"); err != nil {
		t.Fatal(err)
	}
	empty := func() (bool, string) {
		for _, k := range keys {
			if n := flowsOf(k); n != 0 {
				return false, fmt.Sprintf("%s still has %d flows", k, n)
			}
		}
		return true, ""
	}
	enginetest.Eventually(t, "the deleted host's switches without dvrflow flows", empty)
	for _, k := range keys {
		f.swCancel[k]()
		f.runSwitch(k)
	}
	enginetest.Eventually(t, "reconnected and reconciled", func() (bool, string) {
		for _, k := range keys {
			if st := f.ofs.Reconciler(f.switches[k].DPID()).Stats(); st.Reconciles < 2 {
				return false, fmt.Sprintf("%s: %d reconciles", k, st.Reconciles)
			}
		}
		return true, ""
	})
	time.Sleep(200 * time.Millisecond)
	if ok, why := empty(); !ok {
		t.Fatalf("after reconnecting: %s", why)
	}
	for _, k := range keys {
		f.swCancel[k]()
		delete(f.switches, k)
	}
	enginetest.Eventually(t, "the other hosts still converged", f.converged)
}

// Removing a router interface leaves nothing of it behind: no flow on any switch with its
// MAC or its gateway address, and no link, address or neighbour of its subnet in any
// namespace plan (the helpers realize plans exactly, so the kernels follow).
func TestInterfaceRemovedLeavesNothing(t *testing.T) {
	f, ctx := newConverged(t)

	net3, err := f.store.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "demo", Name: ptr("net3")})
	if err != nil {
		t.Fatal(err)
	}
	sub3, err := f.store.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "demo", NetworkID: net3.ID, CIDR: ptr("10.0.3.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	vm5, err := f.store.CreatePort(ctx, db.PortSpec{ProjectID: "demo", NetworkID: net3.ID, HostID: ptr("compute2"), DeviceOwner: ptr("compute:nova")})
	if err != nil {
		t.Fatal(err)
	}
	ri, err := f.store.AddRouterInterface(ctx, f.topo.Router.ID, sub3.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	ifp, err := f.store.GetPort(ctx, ri.PortID)
	if err != nil {
		t.Fatal(err)
	}
	// traces lists what of the interface the switches and plans hold.
	traces := func() []string {
		var out []string
		for key, sw := range f.switches {
			dump, err := sw.DumpFlows()
			if err != nil {
				return []string{err.Error()}
			}
			for _, l := range strings.Split(dump, "\n") {
				if strings.Contains(l, ifp.MACAddress) || strings.Contains(l, "10.0.3.1,") || strings.HasSuffix(l, "10.0.3.1") {
					out = append(out, key+": "+l)
				}
			}
		}
		for _, h := range []string{"compute1", "compute2", "network"} {
			p, err := f.eng.WaitPlan(ctx, h, -1)
			if err != nil {
				return []string{err.Error()}
			}
			for _, ns := range p.Namespaces {
				for _, l := range ns.Links {
					if l.IfaceID == ifp.ID || strings.Contains(strings.Join(l.Addresses, " "), "10.0.3.") {
						out = append(out, h+" "+ns.Name+" link "+l.Name)
					}
				}
				for _, n := range ns.Neighbors {
					if strings.HasPrefix(n.IP, "10.0.3.") {
						out = append(out, h+" "+ns.Name+" neighbour "+n.IP)
					}
				}
				for _, r := range ns.Routes {
					if strings.HasPrefix(r.Dst, "10.0.3.") {
						out = append(out, h+" "+ns.Name+" route "+r.Dst)
					}
				}
			}
		}
		slices.Sort(out)
		return out
	}
	enginetest.Eventually(t, "the interface realized", func() (bool, string) {
		tr := traces()
		var neigh bool
		for _, x := range tr {
			if strings.Contains(x, "neighbour "+vm5.FixedIPs[0].IPAddress) {
				neigh = true
			}
		}
		return neigh && len(tr) > 3, strings.Join(tr, "\n")
	})
	if _, err := f.store.RemoveRouterInterface(ctx, f.topo.Router.ID, sub3.ID, ""); err != nil {
		t.Fatal(err)
	}
	enginetest.Eventually(t, "nothing of the interface left", func() (bool, string) {
		if ok, why := f.converged(); !ok {
			return false, why
		}
		tr := traces()
		return len(tr) == 0, strings.Join(tr, "\n")
	})
}

func ptr[T any](v T) *T { return &v }

// A host out of local VLANs (4,094 networks present) gets no VLAN for one more network, and
// says so; the other hosts' changes go on: before, every pass failed and the whole
// controller stood still (seen at 5,000 hosts, when SNAT failover moved every router to one
// dvr_snat host).
func TestHostOutOfVLANsDoesNotStopOthers(t *testing.T) {
	f, ctx := newConverged(t)
	var used int
	f.eng.ReadView(func(v *topology.View) {
		for vl := uint16(1); vl <= 4094; vl++ {
			if _, ok := v.NetworkOfVLAN("compute1", vl); ok {
				used++
			}
		}
	})
	// Fill compute1: one VM port in each of 4,094-used new networks (no subnets needed),
	// in a project whose quotas the operator lifted.
	if _, err := f.store.SetQuotas(ctx, "demo", map[string]int64{"network": -1, "port": -1}, false); err != nil {
		t.Fatal(err)
	}
	for left := 4094 - used; left > 0; {
		n := min(left, db.MaxBulk)
		specs := make([]db.NetworkSpec, n)
		for i := range specs {
			specs[i] = db.NetworkSpec{ProjectID: "demo"}
		}
		nets, err := f.store.CreateNetworks(ctx, specs)
		if err != nil {
			t.Fatal(err)
		}
		ports := make([]db.PortSpec, n)
		for i := range ports {
			ports[i] = db.PortSpec{ProjectID: "demo", NetworkID: nets[i].ID, HostID: ptr("compute1"), DeviceOwner: ptr("compute:nova"),
				PortSecurity: db.PortSecurity{PortSecurityEnabled: ptr(false), SecurityGroups: &[]string{}}}
		}
		if _, err := f.store.CreatePorts(ctx, ports); err != nil {
			t.Fatal(err)
		}
		left -= n
	}
	full := func() (bool, string) {
		var missing map[string][]string
		f.eng.ReadView(func(v *topology.View) { missing = v.MissingVLANs([]string{"compute1"}) })
		return len(missing["compute1"]) == 0, fmt.Sprintf("compute1 still waits for %d local VLANs", len(missing["compute1"]))
	}
	enginetest.Eventually(t, "compute1 holding 4,094 local VLANs", full)

	// One network too many on compute1, and, after it, a new port on compute2.
	over, err := f.store.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "demo", Name: ptr("one-too-many")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.CreatePort(ctx, db.PortSpec{ProjectID: "demo", NetworkID: over.ID, HostID: ptr("compute1"), DeviceOwner: ptr("compute:nova")}); err != nil {
		t.Fatal(err)
	}
	other, err := f.store.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "demo", Name: ptr("elsewhere")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.CreatePort(ctx, db.PortSpec{ProjectID: "demo", NetworkID: other.ID, HostID: ptr("compute2"), DeviceOwner: ptr("compute:nova")}); err != nil {
		t.Fatal(err)
	}
	enginetest.Eventually(t, "compute2's new network has a local VLAN and compute2 its flows", func() (bool, string) {
		var vl uint16
		var ok, missing1 bool
		f.eng.ReadView(func(v *topology.View) {
			vl, ok = v.LocalVLAN("compute2", other.ID)
			_, has := v.LocalVLAN("compute1", over.ID)
			missing1 = !has
		})
		if !ok {
			return false, "compute2 has no local VLAN for its new network"
		}
		if !missing1 {
			return false, "compute1 got a 4,095th local VLAN"
		}
		dump, err := f.switches["compute2/br-int"].DumpFlows()
		if err != nil {
			return false, err.Error()
		}
		tag := fmt.Sprintf("dl_vlan=%d", vl)
		return strings.Contains(dump, tag), "compute2's br-int has no flow of " + tag
	})
}
