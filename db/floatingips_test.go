package db_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
)

// A floating IP create adds an agent gateway port for its port's host only when the host
// has none on that external network, and none for an unbound or unassociated port.
func TestAgentGatewayOnCreate(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	f := build(t, s)
	gateways := func() string {
		var hs []string
		for _, p := range ok(s.ListPorts(ctx))(t) {
			if p.DeviceOwner == topology.OwnerFloatingIPAgentGateway {
				if p.NetworkID != f.ext.ID || p.DeviceID != db.AgentID(p.HostID, db.AgentTypeL3) {
					t.Fatalf("agent gateway port %+v", p)
				}
				hs = append(hs, p.HostID)
			}
		}
		return fmt.Sprint(hs)
	}
	unbound := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: f.net1.ID}))(t)
	ok(s.CreateFloatingIP(ctx, db.FloatingIPSpec{ProjectID: "p", FloatingNetworkID: f.ext.ID, PortID: &unbound.ID}))(t)
	ok(s.CreateFloatingIP(ctx, db.FloatingIPSpec{ProjectID: "p", FloatingNetworkID: f.ext.ID}))(t)
	if g := gateways(); g != "[]" {
		t.Fatalf("agent gateways %s, want none", g)
	}
	ports := ok(s.CreatePorts(ctx, []db.PortSpec{
		{ProjectID: "p", NetworkID: f.net1.ID, HostID: ptr("c3")},
		{ProjectID: "p", NetworkID: f.net2.ID, HostID: ptr("c3")},
	}))(t)
	for _, p := range ports {
		ok(s.CreateFloatingIP(ctx, db.FloatingIPSpec{ProjectID: "p", FloatingNetworkID: f.ext.ID, PortID: &p.ID}))(t)
		if g := gateways(); g != "[c3]" {
			t.Fatalf("agent gateways %s, want [c3]", g)
		}
	}
}

// Deleting an external network deletes its unassociated floating IPs with it, in its
// revision, each recorded as an explicit delete records it (the floating IP, then its
// port), whoever's they are; one whose network keeps an associated floating IP (and the
// router gateway that association needs) is refused and changes nothing.
func TestDeleteNetworkDeletesUnassociatedFloatingIPs(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	f := build(t, s)
	ext2 := ok(s.CreateNetwork(ctx, db.NetworkSpec{Name: ptr("ext2"), External: ptr(true)}))(t)
	ok(s.CreateSubnet(ctx, db.SubnetSpec{NetworkID: ext2.ID, CIDR: ptr("172.24.5.0/24")}))(t)
	fips := []*topology.FloatingIP{
		ok(s.CreateFloatingIP(ctx, db.FloatingIPSpec{ProjectID: "p", FloatingNetworkID: ext2.ID}))(t),
		ok(s.CreateFloatingIP(ctx, db.FloatingIPSpec{ProjectID: "q", FloatingNetworkID: ext2.ID}))(t),
	}
	topo, before, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	view := topology.NewView(topo, before) // the controller's, kept by the change log
	if err := s.DeleteNetwork(ctx, ext2.ID); err != nil {
		t.Fatalf("delete an external network with unassociated floating IPs: %v", err)
	}
	changes := ok(s.ChangesSince(ctx, before, 0))(t)
	at := map[string]int{} // kind/id of each deleted resource -> its place in the log
	for i, c := range changes {
		if c.Revision != before+1 || c.Op != topology.OpDelete {
			t.Fatalf("change %d: %s %s %s at revision %d, want deletes at %d", i, c.Op, c.Kind, c.ID, c.Revision, before+1)
		}
		at[string(c.Kind)+"/"+c.ID] = i
	}
	for _, fip := range fips {
		fi, ok1 := at[string(topology.KindFloatingIP)+"/"+fip.ID]
		pi, ok2 := at[string(topology.KindPort)+"/"+fip.FloatingPortID]
		if !ok1 || !ok2 || fi > pi {
			t.Fatalf("floating IP %s deleted at %d (%v), its port at %d (%v): want both, the floating IP first", fip.ID, fi, ok1, pi, ok2)
		}
		if _, err := s.GetFloatingIP(ctx, fip.ID); !db.IsNotFound(err) {
			t.Fatalf("floating IP %s after its network's delete: %v", fip.ID, err)
		}
	}
	if _, ok := at[string(topology.KindNetwork)+"/"+ext2.ID]; !ok {
		t.Fatalf("network delete not recorded: %v", at)
	}
	if _, err := view.Apply(changes); err != nil {
		t.Fatalf("the controller's view applies the delete: %v", err)
	}
	if view.Network(ext2.ID) != nil || view.Port(fips[0].FloatingPortID) != nil || view.Port(fips[1].FloatingPortID) != nil {
		t.Fatalf("the controller's view keeps the network or a floating IP port")
	}
	topo, _, err = s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, fip := range topo.FloatingIPs {
		if fip.FloatingNetworkID == ext2.ID {
			t.Fatalf("snapshot keeps floating IP %+v", fip)
		}
	}

	vm := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: f.net1.ID}))(t)
	assoc := ok(s.CreateFloatingIP(ctx, db.FloatingIPSpec{ProjectID: "p", FloatingNetworkID: f.ext.ID, PortID: &vm.ID}))(t)
	free := ok(s.CreateFloatingIP(ctx, db.FloatingIPSpec{ProjectID: "p", FloatingNetworkID: f.ext.ID}))(t)
	_, before, err = s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantErrType(t, s.DeleteNetwork(ctx, f.ext.ID), "NetworkInUse")
	if _, after, _ := s.Snapshot(ctx); after != before {
		t.Fatalf("refused delete moved the revision %d -> %d", before, after)
	}
	for _, id := range []string{assoc.ID, free.ID} {
		ok(s.GetFloatingIP(ctx, id))(t)
	}
}
