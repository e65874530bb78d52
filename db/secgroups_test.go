package db_test

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
)

// A bulk create of groups is one write: every group with its two egress rules and a tag
// of its own, the projects' default groups first; a batch with a second "default" changes
// nothing and names its item.
func TestCreateSecurityGroupsBulk(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	ok(s.EnsureDefaultSecurityGroup(ctx, "p"))(t)
	rev := revision(t, s)
	gs := ok(s.CreateSecurityGroups(ctx, []db.SecurityGroupSpec{
		{ProjectID: "p", Name: ptr("web")},
		{ProjectID: "p", Name: ptr("db"), Description: ptr("d"), Stateful: ptr(false)},
		{ProjectID: "q", Name: ptr("web")},
	}))(t)
	if got := revision(t, s); got != rev+1 {
		t.Fatalf("revision %d after bulk create, want %d", got, rev+1)
	}
	tags := map[uint32]bool{}
	for i, g := range gs {
		if len(g.Rules) != 2 || g.Rules[0].Direction != topology.DirectionEgress || g.Rules[0].SecurityGroupID != g.Group.ID {
			t.Fatalf("group %d rules %+v", i, g.Rules)
		}
		if tags[g.Group.Tag] {
			t.Fatalf("group %d shares tag %d", i, g.Group.Tag)
		}
		tags[g.Group.Tag] = true
		if shown := ok(s.GetSecurityGroup(ctx, g.Group.ID))(t); !reflect.DeepEqual(shown.Group, g.Group) || len(shown.Rules) != 2 {
			t.Fatalf("group %d stored as %+v, created as %+v", i, shown, g)
		}
	}
	if gs[0].Group.Name != "web" || gs[1].Group.Description != "d" || gs[1].Group.Stateful || !gs[0].Group.Stateful || gs[2].Group.ProjectID != "q" {
		t.Fatalf("groups %+v", gs)
	}
	// p's default group existed; q's is created by the batch: 1 + 4 rules, 3 groups + 6 rules.
	if cs := changesAfter(t, s, rev); len(cs) != 14 {
		t.Fatalf("%d change rows, want 14", len(cs))
	}

	rev = revision(t, s)
	_, err := s.CreateSecurityGroups(ctx, []db.SecurityGroupSpec{{ProjectID: "r", Name: ptr("x")}, {ProjectID: "r", Name: ptr("default")}})
	wantErrType(t, err, "SecurityGroupDefaultAlreadyExists")
	if e, _ := db.AsError(err); !strings.HasPrefix(e.Message, "Item 1: ") {
		t.Fatalf("message %q does not name item 1", e.Message)
	}
	_, err = s.CreateSecurityGroup(ctx, db.SecurityGroupSpec{ProjectID: "r", Name: ptr("default")})
	if e, _ := db.AsError(err); e == nil || e.Message != "Default security group already exists." {
		t.Fatalf("single create of a second default: %v", err)
	}
	if got := revision(t, s); got != rev {
		t.Fatalf("refused creates moved the revision %d -> %d", rev, got)
	}
}

// A rule's create and delete give its group a new revision (Neutron's rules revise their
// group), and so does the cascade of a deleted remote group; a refused rule does not.
func TestRulesReviseTheirGroup(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	g := ok(s.CreateSecurityGroup(ctx, db.SecurityGroupSpec{ProjectID: "p", Name: ptr("g")}))(t).Group
	remote := ok(s.CreateSecurityGroup(ctx, db.SecurityGroupSpec{ProjectID: "p", Name: ptr("r")}))(t).Group
	groupRev := func(id string) int64 {
		t.Helper()
		return ok(s.GetSecurityGroup(ctx, id))(t).Group.RevisionNumber
	}
	spec := db.RuleSpec{ProjectID: "p", SecurityGroupID: g.ID, Direction: ptr("ingress"), Protocol: ptr("tcp"),
		PortRangeMin: ptr(int64(60)), PortRangeMax: ptr(int64(70))}
	r := ok(s.CreateSecurityGroupRule(ctx, spec))(t)
	if got := groupRev(g.ID); got != g.RevisionNumber+1 {
		t.Fatalf("group revision %d after a rule create, want %d", got, g.RevisionNumber+1)
	}
	rev := revision(t, s)
	_, err := s.CreateSecurityGroupRule(ctx, spec)
	wantErrType(t, err, "SecurityGroupRuleExists")
	if got := groupRev(g.ID); got != g.RevisionNumber+1 || revision(t, s) != rev {
		t.Fatalf("a refused rule moved the group's revision to %d", got)
	}
	if err := s.DeleteSecurityGroupRule(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if got := groupRev(g.ID); got != g.RevisionNumber+2 {
		t.Fatalf("group revision %d after a rule delete, want %d", got, g.RevisionNumber+2)
	}
	ok(s.CreateSecurityGroupRule(ctx, db.RuleSpec{ProjectID: "p", SecurityGroupID: g.ID, Direction: ptr("ingress"), RemoteGroupID: &remote.ID}))(t)
	if got := groupRev(remote.ID); got != remote.RevisionNumber {
		t.Fatalf("the remote group's revision moved to %d: only the rule's own group is revised", got)
	}
	if err := s.DeleteSecurityGroup(ctx, remote.ID, false); err != nil {
		t.Fatal(err)
	}
	if got := groupRev(g.ID); got != g.RevisionNumber+4 {
		t.Fatalf("group revision %d after its remote group's rule went with the group, want %d", got, g.RevisionNumber+4)
	}
}

// IPv6-only protocols, by name or number, are refused in an IPv4 rule and taken in an
// IPv6 one.
func TestRuleIPv6Protocols(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	g := ok(s.CreateSecurityGroup(ctx, db.SecurityGroupSpec{ProjectID: "p", Name: ptr("g")}))(t).Group
	for _, proto := range []string{"ipv6-encap", "ipv6-frag", "ipv6-icmp", "icmpv6", "ipv6-nonxt", "ipv6-opts", "ipv6-route",
		"41", "43", "44", "58", "59", "60"} {
		rev := revision(t, s)
		_, err := s.CreateSecurityGroupRule(ctx, db.RuleSpec{ProjectID: "p", SecurityGroupID: g.ID, Direction: ptr("ingress"), Protocol: ptr(proto)})
		wantErrType(t, err, "SecurityGroupEthertypeConflictWithProtocol")
		if e, _ := db.AsError(err); e.Message != "Invalid ethertype IPv4 for protocol "+proto+"." {
			t.Fatalf("message %q", e.Message)
		}
		if revision(t, s) != rev {
			t.Fatalf("refused %s rule moved the revision", proto)
		}
	}
	for _, proto := range []string{"ipv6-encap", "ipv6-frag", "ipv6-icmp", "ipv6-nonxt", "ipv6-opts", "ipv6-route"} {
		ok(s.CreateSecurityGroupRule(ctx, db.RuleSpec{ProjectID: "p", SecurityGroupID: g.ID, Direction: ptr("ingress"),
			EtherType: ptr("IPv6"), Protocol: ptr(proto)}))(t)
	}
	// Protocols of both families stay open to IPv4 rules.
	for _, proto := range []string{"hopopt", "4", "47"} {
		ok(s.CreateSecurityGroupRule(ctx, db.RuleSpec{ProjectID: "p", SecurityGroupID: g.ID, Direction: ptr("ingress"), Protocol: ptr(proto)}))(t)
	}
}

// A port needs port security for groups, not an address (Neutron's ML2): a port on a
// network without a subnet gets its project's default group, takes groups and keeps
// them when its addresses go.
func TestPortGroupsWithoutAddress(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	bare := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t)
	def := ok(s.EnsureDefaultSecurityGroup(ctx, "p"))(t)
	g := ok(s.CreateSecurityGroup(ctx, db.SecurityGroupSpec{ProjectID: "p", Name: ptr("g")}))(t).Group
	p := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: bare.ID}))(t)
	if len(p.FixedIPs) != 0 || len(p.SecurityGroups) != 1 || p.SecurityGroups[0] != def {
		t.Fatalf("port without an address: fixed IPs %v, groups %v (default %s)", p.FixedIPs, p.SecurityGroups, def)
	}
	named := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: bare.ID, PortSecurity: db.PortSecurity{SecurityGroups: &[]string{g.ID}}}))(t)
	if len(named.SecurityGroups) != 1 || named.SecurityGroups[0] != g.ID {
		t.Fatalf("groups %v, want [%s]", named.SecurityGroups, g.ID)
	}
	dhcp := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: bare.ID, DeviceOwner: ptr("network:dhcp")}))(t)
	if len(dhcp.SecurityGroups) != 0 {
		t.Fatalf("network:dhcp port got groups %v", dhcp.SecurityGroups)
	}
	up := ok(s.UpdatePort(ctx, p.ID, db.PortSpec{PortSecurity: db.PortSecurity{SecurityGroups: &[]string{g.ID}}}))(t)
	if len(up.SecurityGroups) != 1 || up.SecurityGroups[0] != g.ID || up.RevisionNumber <= p.RevisionNumber {
		t.Fatalf("update: groups %v, revision %d (was %d)", up.SecurityGroups, up.RevisionNumber, p.RevisionNumber)
	}

	rev := revision(t, s)
	_, err := s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: bare.ID,
		PortSecurity: db.PortSecurity{PortSecurityEnabled: ptr(false), SecurityGroups: &[]string{g.ID}}})
	wantErrType(t, err, "PortSecurityAndIPRequiredForSecurityGroups")
	_, err = s.UpdatePort(ctx, p.ID, db.PortSpec{PortSecurity: db.PortSecurity{PortSecurityEnabled: ptr(false)}})
	wantErrType(t, err, "PortSecurityPortHasSecurityGroup")
	_, err = s.UpdatePort(ctx, p.ID, db.PortSpec{PortSecurity: db.PortSecurity{PortSecurityEnabled: ptr(false), SecurityGroups: &[]string{g.ID}}})
	wantErrType(t, err, "PortSecurityAndIPRequiredForSecurityGroups")
	if got := revision(t, s); got != rev {
		t.Fatalf("refused port writes moved the revision %d -> %d", rev, got)
	}
	off := ok(s.UpdatePort(ctx, p.ID, db.PortSpec{PortSecurity: db.PortSecurity{PortSecurityEnabled: ptr(false), SecurityGroups: &[]string{}}}))(t)
	if off.PortSecurityEnabled || len(off.SecurityGroups) != 0 {
		t.Fatalf("port security off: %+v", off)
	}

	// A port with an address keeps its groups when the address goes.
	n, _ := tenantNet(t, s, "10.0.0.0/24")
	vm := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID, DeviceOwner: ptr("compute:nova")}))(t)
	gone := ok(s.UpdatePort(ctx, vm.ID, db.PortSpec{FixedIPs: &[]db.FixedIPSpec{}}))(t)
	if len(gone.FixedIPs) != 0 || len(gone.SecurityGroups) != 1 || gone.SecurityGroups[0] != def {
		t.Fatalf("port without its address: fixed IPs %v, groups %v", gone.FixedIPs, gone.SecurityGroups)
	}
}
