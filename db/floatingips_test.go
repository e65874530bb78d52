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
