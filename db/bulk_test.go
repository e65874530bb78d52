package db_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
)

func revision(t *testing.T, s *db.Store) int64 {
	t.Helper()
	return ok(s.Revision(context.Background()))(t)
}

// changesAt returns the change-log rows after rev, checking they all belong to want
// revisions.
func changesAfter(t *testing.T, s *db.Store, rev int64) []topology.Change {
	t.Helper()
	return ok(s.ChangesSince(context.Background(), rev, 0))(t)
}

func tenantNet(t *testing.T, s *db.Store, cidr string) (*topology.Network, *topology.Subnet) {
	t.Helper()
	ctx := context.Background()
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t)
	sn := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n.ID, CIDR: ptr(cidr)}))(t)
	return n, sn
}

func portSpecs(netID string, n int, host string) []db.PortSpec {
	out := make([]db.PortSpec, n)
	for i := range out {
		out[i] = db.PortSpec{ProjectID: "p", NetworkID: netID, Name: ptr(fmt.Sprintf("vm%d", i)),
			DeviceOwner: ptr("compute:nova"), HostID: ptr(host)}
	}
	return out
}

func TestCreatePortsBulk(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n, sn := tenantNet(t, s, "10.0.0.0/24")
	ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID}))(t) // takes 10.0.0.3 (the DHCP port has .2)
	rev := revision(t, s)
	specs := portSpecs(n.ID, 100, "h1")
	specs[10].FixedIPs = &[]db.FixedIPSpec{{IPAddress: "10.0.0.200"}}
	specs[11].MACAddress = ptr("FA:16:3E:00:00:11")
	ports := ok(s.CreatePorts(ctx, specs))(t)
	if got := revision(t, s); got != rev+1 {
		t.Fatalf("revision %d after bulk create, want %d", got, rev+1)
	}
	cs := changesAfter(t, s, rev)
	if len(cs) != 100 {
		t.Fatalf("%d change rows, want 100", len(cs))
	}
	for i, c := range cs {
		if c.Revision != rev+1 || c.Seq != i || c.Kind != topology.KindPort || c.Op != topology.OpCreate || c.ID != ports[i].ID {
			t.Fatalf("change %d = %+v, want create of port %s at %d", i, c, ports[i].ID, rev+1)
		}
	}
	ips, macs := map[string]bool{}, map[string]bool{}
	next := 4
	for i, p := range ports {
		if len(p.FixedIPs) != 1 || p.FixedIPs[0].SubnetID != sn.ID {
			t.Fatalf("port %d fixed IPs %v", i, p.FixedIPs)
		}
		ip := p.FixedIPs[0].IPAddress
		want := fmt.Sprintf("10.0.0.%d", next)
		if i == 10 {
			want = "10.0.0.200"
		} else {
			next++
		}
		if ip != want {
			t.Fatalf("port %d address %s, want %s (in order, lowest free first)", i, ip, want)
		}
		if ips[ip] || macs[p.MACAddress] {
			t.Fatalf("port %d: address %s or MAC %s given twice", i, ip, p.MACAddress)
		}
		ips[ip], macs[p.MACAddress] = true, true
		if p.HostID != "h1" || p.Name != fmt.Sprintf("vm%d", i) || p.Status != topology.PortStatusDown {
			t.Fatalf("port %d = %+v", i, p)
		}
		got := ok(s.GetPort(ctx, p.ID))(t)
		if got.MACAddress != p.MACAddress || got.FixedIPs[0] != p.FixedIPs[0] {
			t.Fatalf("stored port %+v differs from returned %+v", got, p)
		}
	}
	if ports[11].MACAddress != "fa:16:3e:00:00:11" {
		t.Fatalf("given MAC stored as %s", ports[11].MACAddress)
	}
	// The free list was written back: the next single create continues after the batch
	// and skips the explicit address.
	p := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID}))(t)
	if ip := p.FixedIPs[0].IPAddress; ip != "10.0.0.103" {
		t.Fatalf("address after bulk %s, want 10.0.0.103", ip)
	}
	if _, err := s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID, FixedIPs: &[]db.FixedIPSpec{{IPAddress: "10.0.0.200"}}}); err == nil {
		t.Fatal("address taken by the batch allocated again")
	}
}

func TestCreatePortsBulkRollback(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n, _ := tenantNet(t, s, "10.0.0.0/24")
	other, _ := tenantNet(t, s, "10.0.1.0/24")
	taken := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID, MACAddress: ptr("fa:16:3e:aa:bb:cc")}))(t)
	for _, tc := range []struct {
		name   string
		mutate func([]db.PortSpec)
		item   int
		typ    string
	}{
		{"address taken in store", func(ps []db.PortSpec) {
			ps[5].FixedIPs = &[]db.FixedIPSpec{{IPAddress: taken.FixedIPs[0].IPAddress}}
		}, 5, "IpAddressAlreadyAllocated"},
		{"address twice in batch", func(ps []db.PortSpec) {
			ps[3].FixedIPs = &[]db.FixedIPSpec{{IPAddress: "10.0.0.99"}}
			ps[7].FixedIPs = &[]db.FixedIPSpec{{IPAddress: "10.0.0.99"}}
		}, 7, "IpAddressAlreadyAllocated"},
		{"explicit address an earlier item got", func(ps []db.PortSpec) {
			ps[7].FixedIPs = &[]db.FixedIPSpec{{IPAddress: "10.0.0.4"}}
		}, 7, "IpAddressAlreadyAllocated"},
		{"MAC taken in store", func(ps []db.PortSpec) { ps[2].MACAddress = ptr("fa:16:3e:aa:bb:cc") }, 2, "MacAddressInUse"},
		{"MAC twice in batch", func(ps []db.PortSpec) {
			ps[1].MACAddress = ptr("fa:16:3e:00:00:01")
			ps[8].MACAddress = ptr("fa:16:3e:00:00:01")
		}, 8, "MacAddressInUse"},
		{"unknown network", func(ps []db.PortSpec) { ps[4].NetworkID = "no-such-network" }, 4, "NetworkNotFound"},
		{"bad MAC", func(ps []db.PortSpec) { ps[6].MACAddress = ptr("zz") }, 6, "InvalidInput"},
		{"address outside subnet", func(ps []db.PortSpec) {
			ps[9].FixedIPs = &[]db.FixedIPSpec{{IPAddress: "10.0.1.5"}}
		}, 9, "InvalidIpForNetwork"},
		{"reserved owner", func(ps []db.PortSpec) { ps[0].DeviceOwner = ptr(topology.OwnerRouterGateway) }, 0, "InvalidInput"},
		{"subnet of another network", func(ps []db.PortSpec) {
			ps[3].NetworkID = other.ID
			ps[3].FixedIPs = &[]db.FixedIPSpec{{IPAddress: "10.0.0.50"}}
		}, 3, "InvalidIpForNetwork"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rev := revision(t, s)
			before := len(ok(s.ListPorts(ctx))(t))
			specs := portSpecs(n.ID, 10, "h1")
			tc.mutate(specs)
			_, err := s.CreatePorts(ctx, specs)
			wantErrType(t, err, tc.typ)
			if !strings.Contains(err.Error(), fmt.Sprintf("Item %d:", tc.item)) {
				t.Fatalf("error %q does not name item %d", err, tc.item)
			}
			if got := revision(t, s); got != rev {
				t.Fatalf("revision moved %d -> %d on a rejected batch", rev, got)
			}
			if after := len(ok(s.ListPorts(ctx))(t)); after != before {
				t.Fatalf("%d ports after a rejected batch, had %d", after, before)
			}
		})
	}
	// Nothing was allocated by the rejected batches: the next address is still .4 (the
	// DHCP port has .2, taken .3).
	p := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID}))(t)
	if ip := p.FixedIPs[0].IPAddress; ip != "10.0.0.4" {
		t.Fatalf("address after rejected batches %s, want 10.0.0.4", ip)
	}
}

func TestCreatePortsBulkLimits(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n, _ := tenantNet(t, s, "10.0.0.0/29") // 5 addresses: .2 (the DHCP port's), .3-.6
	_, err := s.CreatePorts(ctx, nil)
	wantErrType(t, err, "BadRequest")
	_, err = s.CreatePorts(ctx, make([]db.PortSpec, db.MaxBulk+1))
	wantErrType(t, err, "BulkTooLarge")
	_, err = s.CreatePorts(ctx, portSpecs(n.ID, 5, "h1"))
	wantErrType(t, err, "IpAddressGenerationFailure")
	if ps := ok(s.ListPorts(ctx))(t); len(ps) != 1 || ps[0].DeviceOwner != topology.OwnerDHCP {
		t.Fatalf("%d ports after an exhausted batch, want the DHCP port alone: %+v", len(ps), ps)
	}
	ok(s.CreatePorts(ctx, portSpecs(n.ID, 4, "h1")))(t)
}

func TestCreatePortsBulkConcurrent(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n, _ := tenantNet(t, s, "10.0.0.0/22")
	rev := revision(t, s)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.CreatePorts(ctx, portSpecs(n.ID, 50, fmt.Sprintf("bulk%d", g))); err != nil {
				errs <- err
			}
		}()
	}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if _, err := s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID, HostID: ptr("single")}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ports := ok(s.ListPorts(ctx))(t)
	if len(ports) != 401 { // and the network's DHCP port
		t.Fatalf("%d ports, want 400 and the DHCP port", len(ports))
	}
	seen := map[string]bool{}
	for _, p := range ports {
		ip := p.FixedIPs[0].IPAddress
		if seen[ip] {
			t.Fatalf("address %s given twice", ip)
		}
		seen[ip] = true
	}
	// 4 bulk writes and 200 single ones: 204 revisions, gap-free.
	if got := revision(t, s); got != rev+204 {
		t.Fatalf("revision %d, want %d", got, rev+204)
	}
	// One change per port, and the project's default security group (the group and its
	// four rules) with the first port that needed it.
	cs := changesAfter(t, s, rev)
	if len(cs) != 405 {
		t.Fatalf("%d change rows, want 405", len(cs))
	}
	p := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID}))(t)
	if seen[p.FixedIPs[0].IPAddress] {
		t.Fatalf("free list out of step: %s given again", p.FixedIPs[0].IPAddress)
	}
}

func TestCreateNetworksBulk(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t) // VNI 1001
	rev := revision(t, s)
	nets := ok(s.CreateNetworks(ctx, []db.NetworkSpec{
		{ProjectID: "p", Name: ptr("a")},
		{ProjectID: "p", SegmentationID: ptr(int64(1003))},
		{ProjectID: "p"},
		{ProjectID: "p"},
		{ProjectID: "admin", External: ptr(true), NetworkType: ptr("flat"), PhysicalNetwork: ptr("public")},
	}))(t)
	var vnis []int64
	for _, n := range nets {
		vnis = append(vnis, n.SegmentationID)
	}
	if fmt.Sprint(vnis) != "[1002 1003 1004 1005 0]" || nets[0].Name != "a" || !nets[4].External {
		t.Fatalf("networks %+v (VNIs %v)", nets, vnis)
	}
	if got := revision(t, s); got != rev+1 {
		t.Fatalf("revision %d, want %d", got, rev+1)
	}
	if cs := changesAfter(t, s, rev); len(cs) != 5 {
		t.Fatalf("%d change rows, want 5", len(cs))
	}
	for _, tc := range []struct {
		specs []db.NetworkSpec
		typ   string
	}{
		{[]db.NetworkSpec{{ProjectID: "p"}, {ProjectID: "p", SegmentationID: ptr(int64(1003))}}, "TunnelIdInUse"},
		{[]db.NetworkSpec{{ProjectID: "p", SegmentationID: ptr(int64(7))}, {ProjectID: "p", SegmentationID: ptr(int64(7))}}, "TunnelIdInUse"},
		{[]db.NetworkSpec{{ProjectID: "p", NetworkType: ptr("flat"), PhysicalNetwork: ptr("public")}}, "FlatNetworkInUse"},
		{[]db.NetworkSpec{{ProjectID: "p"}, {ProjectID: "p", NetworkType: ptr("gre")}}, "InvalidInput"},
	} {
		rev := revision(t, s)
		_, err := s.CreateNetworks(ctx, tc.specs)
		wantErrType(t, err, tc.typ)
		if got := revision(t, s); got != rev {
			t.Fatalf("revision moved on rejected batch %v", tc.specs)
		}
	}
	if ns := ok(s.ListNetworks(ctx))(t); len(ns) != 6 {
		t.Fatalf("%d networks, want 6", len(ns))
	}
	// The next single create continues after the batch's VNIs.
	if n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t); n.SegmentationID != 1006 {
		t.Fatalf("VNI after bulk %d, want 1006", n.SegmentationID)
	}
}

func TestCreateSubnetsBulk(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	nets := ok(s.CreateNetworks(ctx, []db.NetworkSpec{{ProjectID: "p"}, {ProjectID: "p"}}))(t)
	rev := revision(t, s)
	subs := ok(s.CreateSubnets(ctx, []db.SubnetSpec{
		{ProjectID: "p", NetworkID: nets[0].ID, CIDR: ptr("10.0.0.0/24")},
		{ProjectID: "p", NetworkID: nets[0].ID, CIDR: ptr("10.0.1.0/24"), GatewayIP: ptr("10.0.1.254")},
		{ProjectID: "p", NetworkID: nets[1].ID, CIDR: ptr("10.0.0.0/24")},
	}))(t)
	if got := revision(t, s); got != rev+1 {
		t.Fatalf("revision %d, want %d", got, rev+1)
	}
	// 3 subnet creates, one update of each network and the creation of its DHCP port.
	if cs := changesAfter(t, s, rev); len(cs) != 7 {
		t.Fatalf("%d change rows, want 7", len(cs))
	}
	n0 := ok(s.GetNetwork(ctx, nets[0].ID))(t)
	if len(n0.Subnets) != 2 || n0.Subnets[0] != subs[0].ID || n0.Subnets[1] != subs[1].ID {
		t.Fatalf("network subnets %v", n0.Subnets)
	}
	if subs[1].AllocationPools[0].Start != "10.0.1.1" || subs[1].AllocationPools[0].End != "10.0.1.253" {
		t.Fatalf("pools %v", subs[1].AllocationPools)
	}
	p := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: nets[1].ID}))(t)
	if p.FixedIPs[0].IPAddress != "10.0.0.3" { // after the DHCP port's
		t.Fatalf("first address on bulk subnet %v", p.FixedIPs)
	}
	for _, tc := range []struct {
		specs []db.SubnetSpec
		typ   string
	}{
		{[]db.SubnetSpec{{ProjectID: "p", NetworkID: nets[1].ID, CIDR: ptr("10.9.0.0/24")}, {ProjectID: "p", NetworkID: nets[1].ID, CIDR: ptr("10.9.0.0/25")}}, "InvalidInput"},
		{[]db.SubnetSpec{{ProjectID: "p", NetworkID: nets[1].ID, CIDR: ptr("10.9.0.0/24")}, {ProjectID: "p", NetworkID: nets[1].ID, CIDR: ptr("10.0.0.128/25")}}, "InvalidInput"},
		{[]db.SubnetSpec{{ProjectID: "p", NetworkID: nets[1].ID, CIDR: ptr("10.9.0.0/24")}, {ProjectID: "p", NetworkID: "nope", CIDR: ptr("10.8.0.0/24")}}, "NetworkNotFound"},
		{[]db.SubnetSpec{{ProjectID: "p", NetworkID: nets[1].ID, CIDR: ptr("10.9.0.1/24")}}, "InvalidInput"},
	} {
		rev := revision(t, s)
		_, err := s.CreateSubnets(ctx, tc.specs)
		wantErrType(t, err, tc.typ)
		if got := revision(t, s); got != rev {
			t.Fatalf("revision moved on rejected batch")
		}
	}
	if xs := ok(s.ListSubnets(ctx))(t); len(xs) != 3 {
		t.Fatalf("%d subnets, want 3", len(xs))
	}
}

func TestSetPortStatuses(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n, _ := tenantNet(t, s, "10.0.0.0/24")
	ports := ok(s.CreatePorts(ctx, portSpecs(n.ID, 4, "h1")))(t)
	err := s.SetPortStatuses(ctx, map[string]topology.PortStatus{ports[0].ID: "ACTIVE", ports[1].ID: "UP"})
	wantErrType(t, err, "InvalidInput")
	rev := revision(t, s)
	st := map[string]topology.PortStatus{ports[0].ID: "ACTIVE", ports[1].ID: "ACTIVE", ports[2].ID: "DOWN", "gone": "ACTIVE"}
	if err := s.SetPortStatuses(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got := revision(t, s); got != rev+1 {
		t.Fatalf("revision %d, want %d", got, rev+1)
	}
	cs := changesAfter(t, s, rev)
	if len(cs) != 2 {
		t.Fatalf("%d change rows, want 2 (port 2 was already DOWN): %v", len(cs), cs)
	}
	for i, p := range ports {
		got := ok(s.GetPort(ctx, p.ID))(t)
		want, rn := topology.PortStatusDown, int64(0)
		if i < 2 {
			want, rn = topology.PortStatusActive, 1
		}
		if got.Status != want || got.RevisionNumber != rn {
			t.Fatalf("port %d status %s revision_number %d, want %s %d", i, got.Status, got.RevisionNumber, want, rn)
		}
	}
	if err := s.SetPortStatuses(ctx, st); err != nil {
		t.Fatal(err)
	}
	if got := revision(t, s); got != rev+1 {
		t.Fatalf("a no-op status write made revision %d", got)
	}
}

func TestLocalVLANsManyHosts(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	nets := ok(s.CreateNetworks(ctx, []db.NetworkSpec{{ProjectID: "p"}, {ProjectID: "p"}, {ProjectID: "p"}}))(t)
	a, b, c := nets[0].ID, nets[1].ID, nets[2].ID
	ok(ensureVLANs(ctx, s, "h1", []string{b}))(t)
	rev := revision(t, s)
	got := ok(s.EnsureLocalVLANs(ctx, map[string][]string{"h1": {a, b, c}, "h2": {c}}))(t)
	single := ok(ensureVLANs(ctx, s, "h1", []string{a, b, c}))(t)
	for _, id := range []string{a, b, c} {
		if got["h1"][id] != single[id] || got["h1"][id] == 0 {
			t.Fatalf("h1 VLANs %v, single view %v", got["h1"], single)
		}
	}
	if len(got["h2"]) != 1 || got["h2"][c] != 1 {
		t.Fatalf("h2 VLANs %v", got["h2"])
	}
	if r := revision(t, s); r != rev+1 {
		t.Fatalf("revision %d, want %d", r, rev+1)
	}
	if cs := changesAfter(t, s, rev); len(cs) != 3 {
		t.Fatalf("%d change rows, want 3", len(cs))
	}
	ok(s.EnsureLocalVLANs(ctx, map[string][]string{"h1": {a}, "h2": {c}}))(t)
	if r := revision(t, s); r != rev+1 {
		t.Fatalf("an ensure of existing VLANs made revision %d", r)
	}
	_, err := s.EnsureLocalVLANs(ctx, map[string][]string{"h3": {a}, "h4": {"nope"}})
	wantErrType(t, err, "NetworkNotFound")
	if r := revision(t, s); r != rev+1 {
		t.Fatalf("a rejected ensure made revision %d", r)
	}
	_, err = s.EnsureLocalVLANs(ctx, map[string][]string{"": {a}})
	wantErrType(t, err, "InvalidInput")

	if err := s.ReleaseLocalVLANs(ctx, map[string][]string{"h1": {a, c}, "h2": nil}); err != nil {
		t.Fatal(err)
	}
	if cs := changesAfter(t, s, rev+1); len(cs) != 3 {
		t.Fatalf("%d release rows, want 3", len(cs))
	}
	topo, _ := ok2(s.Snapshot(ctx))(t)
	if len(topo.LocalVLANs) != 1 || topo.LocalVLANs[0].Host != "h1" || topo.LocalVLANs[0].NetworkID != b {
		t.Fatalf("local VLANs after release %+v", topo.LocalVLANs)
	}
	r := revision(t, s)
	if err := s.ReleaseLocalVLANs(ctx, map[string][]string{"h2": nil}); err != nil {
		t.Fatal(err)
	}
	if got := revision(t, s); got != r {
		t.Fatalf("releasing nothing made revision %d", got)
	}
}
