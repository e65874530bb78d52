package db_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
)

type fixture struct {
	net1, net2, ext  *topology.Network
	sub1, sub2, esub *topology.Subnet
	router           *topology.Router
}

// build makes two tenant networks on a distributed router with a gateway.
func build(t *testing.T, s *db.Store) fixture {
	t.Helper()
	ctx := context.Background()
	var f fixture
	f.net1 = ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p", Name: ptr("net1")}))(t)
	f.net2 = ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p", Name: ptr("net2")}))(t)
	f.sub1 = ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: f.net1.ID, CIDR: ptr("10.0.1.0/24")}))(t)
	f.sub2 = ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: f.net2.ID, CIDR: ptr("10.0.2.0/24")}))(t)
	f.ext = ok(s.CreateNetwork(ctx, db.NetworkSpec{Name: ptr("ext"), External: ptr(true), NetworkType: ptr("flat"), PhysicalNetwork: ptr("public")}))(t)
	f.esub = ok(s.CreateSubnet(ctx, db.SubnetSpec{NetworkID: f.ext.ID, CIDR: ptr("172.24.4.0/24")}))(t)
	gs := &db.GatewaySpec{NetworkID: f.ext.ID}
	f.router = ok(s.CreateRouter(ctx, db.RouterSpec{ProjectID: "p", Gateway: &gs}))(t)
	ok(s.AddRouterInterface(ctx, f.router.ID, f.sub1.ID, ""))(t)
	ok(s.AddRouterInterface(ctx, f.router.ID, f.sub2.ID, ""))(t)
	return f
}

// TestChangeLogRebuildsSnapshot replays the change log and compares it with a
// snapshot: revisions are gap-free and every object is complete.
func TestChangeLogRebuildsSnapshot(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	f := build(t, s)
	vm := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: f.net1.ID, HostID: ptr("c1"), DeviceOwner: ptr("compute:nova")}))(t)
	fip := ok(s.CreateFloatingIP(ctx, db.FloatingIPSpec{ProjectID: "p", FloatingNetworkID: f.ext.ID, PortID: &vm.ID}))(t)
	ok(s.UpdatePort(ctx, vm.ID, db.PortSpec{HostID: ptr("c2")}))(t) // the agent gateway port moves
	ok2(s.RegisterHost(ctx, db.HostSpec{Name: "c1", TunnelIP: "192.168.248.1", Mode: "dvr"}))(t)
	ok(ensureVLANs(ctx, s, "c1", []string{f.net1.ID, f.net2.ID}))(t)
	if err := releaseVLANs(ctx, s, "c1", []string{f.net2.ID}); err != nil {
		t.Fatal(err)
	}
	ok(s.UpdateFloatingIP(ctx, fip.ID, db.FloatingIPSpec{PortID: ptr("")}))(t)
	p2 := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: f.net2.ID}))(t)
	if err := s.DeletePort(ctx, p2.ID); err != nil {
		t.Fatal(err)
	}
	// Concurrent writers: revisions stay gap-free.
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: f.net2.ID}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()

	topo, rev, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	changes := ok(s.ChangesSince(ctx, 0, 0))(t)
	state := map[topology.Kind]map[string]topology.Record{}
	want := int64(1)
	for _, c := range changes {
		if c.Revision != want && c.Revision != want-1 {
			t.Fatalf("revision %d after %d: gap", c.Revision, want-1)
		}
		if c.Revision == want {
			want++
		}
		if state[c.Kind] == nil {
			state[c.Kind] = map[string]topology.Record{}
		}
		if c.Op == topology.OpDelete {
			delete(state[c.Kind], c.ID)
		} else {
			state[c.Kind][c.ID] = c.Object
		}
	}
	if want-1 != rev {
		t.Fatalf("last change revision %d, snapshot revision %d", want-1, rev)
	}
	check := func(kind topology.Kind, objs any, id func(i int) string, n int) {
		t.Helper()
		raw, _ := json.Marshal(objs)
		var list []json.RawMessage
		json.Unmarshal(raw, &list)
		if len(state[kind]) != n {
			t.Fatalf("%s: change log has %d, snapshot %d", kind, len(state[kind]), n)
		}
		for i, o := range list {
			var a, b any
			json.Unmarshal(o, &a)
			rb, _ := json.Marshal(state[kind][id(i)])
			json.Unmarshal(rb, &b)
			if fmt.Sprint(a) != fmt.Sprint(b) {
				t.Fatalf("%s %s: change log %v, snapshot %v", kind, id(i), b, a)
			}
		}
	}
	check(topology.KindNetwork, topo.Networks, func(i int) string { return topo.Networks[i].ID }, len(topo.Networks))
	check(topology.KindSubnet, topo.Subnets, func(i int) string { return topo.Subnets[i].ID }, len(topo.Subnets))
	check(topology.KindPort, topo.Ports, func(i int) string { return topo.Ports[i].ID }, len(topo.Ports))
	check(topology.KindRouter, topo.Routers, func(i int) string { return topo.Routers[i].ID }, len(topo.Routers))
	check(topology.KindFloatingIP, topo.FloatingIPs, func(i int) string { return topo.FloatingIPs[i].ID }, len(topo.FloatingIPs))
	if len(state[topology.KindLocalVLAN]) != 1 || len(topo.LocalVLANs) != 1 || len(state[topology.KindHost]) != 1 {
		t.Fatalf("local VLANs %v / %v, hosts %v", state[topology.KindLocalVLAN], topo.LocalVLANs, state[topology.KindHost])
	}
	// A bounded read ends on a complete revision.
	part := ok(s.ChangesSince(ctx, 0, 3))(t)
	last := part[len(part)-1].Revision
	var all int
	for _, c := range changes {
		if c.Revision <= last {
			all++
		}
	}
	if len(part) < 3 || len(part) != all {
		t.Fatalf("ChangesSince(0, 3) returned %d changes up to revision %d, which has %d", len(part), last, all)
	}
}

func TestDVRAllocations(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	f := build(t, s)
	if f.router.LinkLocal != "169.254.64.0/31" || !f.router.Distributed {
		t.Fatalf("router %+v", f.router)
	}
	gs2 := &db.GatewaySpec{NetworkID: f.ext.ID}
	r2 := ok(s.CreateRouter(ctx, db.RouterSpec{ProjectID: "p", Gateway: &gs2}))(t)
	if r2.LinkLocal != "169.254.64.2/31" {
		t.Fatalf("second router link-local %s", r2.LinkLocal)
	}
	var noGW *db.GatewaySpec
	r2 = ok(s.UpdateRouter(ctx, r2.ID, db.RouterSpec{Gateway: &noGW}))(t)
	if r2.LinkLocal != "" || r2.Gateway != nil {
		t.Fatalf("router without gateway %+v", r2)
	}
	gs3 := &db.GatewaySpec{NetworkID: f.ext.ID}
	r3 := ok(s.CreateRouter(ctx, db.RouterSpec{ProjectID: "p", Gateway: &gs3}))(t)
	if r3.LinkLocal != "169.254.64.2/31" {
		t.Fatalf("freed /31 not reused: %s", r3.LinkLocal)
	}

	// Floating IP agent gateway ports follow the hosts of FIP ports.
	fgHosts := func() []string {
		var hs []string
		for _, p := range ok(s.ListPorts(ctx))(t) {
			if p.DeviceOwner == topology.OwnerFloatingIPAgentGateway {
				hs = append(hs, p.HostID)
			}
		}
		sort.Strings(hs)
		return hs
	}
	vm1 := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: f.net1.ID, HostID: ptr("c1")}))(t)
	vm2 := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: f.net2.ID, HostID: ptr("c1")}))(t)
	fip1 := ok(s.CreateFloatingIP(ctx, db.FloatingIPSpec{ProjectID: "p", FloatingNetworkID: f.ext.ID, PortID: &vm1.ID}))(t)
	ok(s.CreateFloatingIP(ctx, db.FloatingIPSpec{ProjectID: "p", FloatingNetworkID: f.ext.ID, PortID: &vm2.ID}))(t)
	if hs := fgHosts(); fmt.Sprint(hs) != "[c1]" {
		t.Fatalf("agent gateways %v, want [c1]", hs)
	}
	ok(s.UpdatePort(ctx, vm2.ID, db.PortSpec{HostID: ptr("c2")}))(t)
	if hs := fgHosts(); fmt.Sprint(hs) != "[c1 c2]" {
		t.Fatalf("agent gateways %v, want [c1 c2]", hs)
	}
	if err := s.DeleteFloatingIP(ctx, fip1.ID); err != nil {
		t.Fatal(err)
	}
	if hs := fgHosts(); fmt.Sprint(hs) != "[c2]" {
		t.Fatalf("agent gateways %v, want [c2]", hs)
	}
	if err := s.DeletePort(ctx, vm2.ID); err != nil { // disassociates its FIP
		t.Fatal(err)
	}
	if hs := fgHosts(); len(hs) != 0 {
		t.Fatalf("agent gateways %v, want none", hs)
	}

	// Local VLANs: lowest free per host, stable, idempotent, released.
	m := ok(ensureVLANs(ctx, s, "c1", []string{f.net2.ID, f.net1.ID}))(t)
	rev := ok(s.Revision(ctx))(t)
	again := ok(ensureVLANs(ctx, s, "c1", []string{f.net1.ID, f.net2.ID}))(t)
	if fmt.Sprint(m) != fmt.Sprint(again) || ok(s.Revision(ctx))(t) != rev {
		t.Fatalf("EnsureLocalVLANs not idempotent: %v then %v", m, again)
	}
	if m[f.net1.ID] == m[f.net2.ID] || m[f.net1.ID] < 1 || m[f.net2.ID] > 2 {
		t.Fatalf("local VLANs %v", m)
	}
	other := ok(ensureVLANs(ctx, s, "c2", []string{f.net2.ID}))(t)
	if other[f.net2.ID] != 1 {
		t.Fatalf("c2's first VLAN %v, want 1", other)
	}
	if err := releaseVLANs(ctx, s, "c1", []string{f.net1.ID}); err != nil {
		t.Fatal(err)
	}
	n3 := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t)
	m3 := ok(ensureVLANs(ctx, s, "c1", []string{n3.ID, f.net2.ID}))(t)
	if m3[n3.ID] != m[f.net1.ID] || m3[f.net2.ID] != m[f.net2.ID] {
		t.Fatalf("after release: %v (before %v)", m3, m)
	}
	_, err := ensureVLANs(ctx, s, "c1", []string{"no-such-network"})
	wantErrType(t, err, "NetworkNotFound")

	// VNIs: lowest free in the range; explicit segments conflict.
	if f.net1.SegmentationID != 1001 || f.net2.SegmentationID != 1002 {
		t.Fatalf("VNIs %d %d", f.net1.SegmentationID, f.net2.SegmentationID)
	}
	_, err = s.CreateNetwork(ctx, db.NetworkSpec{NetworkType: ptr("vxlan"), SegmentationID: ptr(int64(1001))})
	wantErrType(t, err, "TunnelIdInUse")
	_, err = s.CreateNetwork(ctx, db.NetworkSpec{NetworkType: ptr("flat"), PhysicalNetwork: ptr("public")})
	wantErrType(t, err, "FlatNetworkInUse")
	ok(s.CreateNetwork(ctx, db.NetworkSpec{NetworkType: ptr("vlan"), PhysicalNetwork: ptr("physnet1"), SegmentationID: ptr(int64(100))}))(t)
	_, err = s.CreateNetwork(ctx, db.NetworkSpec{NetworkType: ptr("vlan"), PhysicalNetwork: ptr("physnet1"), SegmentationID: ptr(int64(100))})
	wantErrType(t, err, "VlanIdInUse")
}

func TestVNIRangeExhausted(t *testing.T) {
	ctx := context.Background()
	cfg := db.DefaultConfig()
	cfg.VNIMin, cfg.VNIMax = 5000, 5001
	s, err := db.Open(ctx, pg.NewDatabase(t), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ok(s.CreateNetwork(ctx, db.NetworkSpec{}))(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{}))(t)
	_, err = s.CreateNetwork(ctx, db.NetworkSpec{})
	wantErrType(t, err, "NoNetworkAvailable")
	if err := s.DeleteNetwork(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
	if n2 := ok(s.CreateNetwork(ctx, db.NetworkSpec{}))(t); n2.SegmentationID != 5001 {
		t.Fatalf("freed VNI not reused: %d", n2.SegmentationID)
	}
}

func TestHostMACsStable(t *testing.T) {
	ctx := context.Background()
	s, dsn := newStore(t)
	macs := map[string]string{}
	for i := 0; i < 20; i++ {
		h, created := ok2(s.RegisterHost(ctx, db.HostSpec{Name: fmt.Sprint("h", i), TunnelIP: fmt.Sprintf("10.1.0.%d", i+1), Mode: "dvr"}))(t)
		if !created || h.MACAddress[:9] != "fa:16:3f:" {
			t.Fatalf("host %+v created=%v", h, created)
		}
		for _, m := range macs {
			if m == h.MACAddress {
				t.Fatalf("duplicate DVR MAC %s", m)
			}
		}
		macs[h.Name] = h.MACAddress
	}
	s.Close()
	s2 := openStore(t, dsn)
	for name, mac := range macs {
		h := ok(s2.GetHost(ctx, name))(t)
		if h.MACAddress != mac {
			t.Fatalf("host %s MAC %s after reopen, want %s", name, h.MACAddress, mac)
		}
	}
	// A base with a non-zero 4th octet is copied (dvr-reference.md section 2).
	cfg := db.DefaultConfig()
	cfg.DVRBaseMAC = []byte{0xfa, 0x16, 0x3f, 0x42, 0, 0}
	s3, err := db.Open(ctx, pg.NewDatabase(t), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	h, _ := ok2(s3.RegisterHost(ctx, db.HostSpec{Name: "x", TunnelIP: "10.1.1.1", Mode: "dvr_snat"}))(t)
	if h.MACAddress[:12] != "fa:16:3f:42:" {
		t.Fatalf("MAC %s from base fa:16:3f:42:00:00", h.MACAddress)
	}
}

func TestListen(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := db.DefaultConfig()
	cfg.PollInterval = time.Hour // only notifications (and the initial poll) count here
	s, err := db.Open(ctx, pg.NewDatabase(t), cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	revs := make(chan int64, 16)
	done := make(chan error, 1)
	go func() { done <- s.Listen(ctx, func(rev int64) { revs <- rev }) }()
	if r := <-revs; r != 0 {
		t.Fatalf("initial revision %d, want 0", r)
	}
	ok(s.CreateNetwork(ctx, db.NetworkSpec{}))(t)
	select {
	case r := <-revs:
		if r != 1 {
			t.Fatalf("notified revision %d, want 1", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Listen returned %v, want context.Canceled", err)
	}
}
