package db_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
)

// dhcpPort returns the managed DHCP port of network netID, nil when it has none; it fails
// the test when there are several.
func dhcpPort(t *testing.T, s *db.Store, netID string) *topology.Port {
	t.Helper()
	var out *topology.Port
	for _, p := range ok(s.ListPorts(context.Background()))(t) {
		if p.NetworkID == netID && topology.IsManagedDHCPPort(&p) {
			if out != nil {
				t.Fatalf("network %s has two DHCP ports: %s and %s", netID, out.ID, p.ID)
			}
			out = &p
		}
	}
	return out
}

func ipsOf(p *topology.Port) string {
	if p == nil {
		return "no port"
	}
	var out []string
	for _, f := range p.FixedIPs {
		out = append(out, f.IPAddress)
	}
	return strings.Join(out, " ")
}

// portChanges returns the port changes after rev as "op:id".
func portChanges(t *testing.T, s *db.Store, rev int64) []string {
	t.Helper()
	var out []string
	for _, c := range changesAfter(t, s, rev) {
		if c.Kind == topology.KindPort {
			out = append(out, string(c.Op)+":"+c.ID)
		}
	}
	return out
}

// TestDHCPPortFollowsSubnets walks a network's DHCP port through Neutron's life cycle:
// created with the first DHCP-enabled subnet at its lowest free address, addresses added
// and removed as subnets come, go and toggle enable_dhcp, deleted with its last address;
// each change is in the change log with the subnet change that caused it.
func TestDHCPPortFollowsSubnets(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t)
	if p := dhcpPort(t, s, n.ID); p != nil {
		t.Fatalf("a network without subnets has DHCP port %+v", p)
	}

	rev := revision(t, s)
	a := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n.ID, CIDR: ptr("10.0.0.0/24")}))(t)
	if got := revision(t, s); got != rev+1 {
		t.Fatalf("subnet create took revisions %d-%d, want one", rev+1, got)
	}
	d := dhcpPort(t, s, n.ID)
	if d == nil {
		t.Fatal("no DHCP port after a DHCP-enabled subnet")
	}
	if d.DeviceOwner != topology.OwnerDHCP || d.DeviceID != "dhcp"+topology.DHCPAgentUUID+"-"+n.ID || d.Name != "" || d.HostID != "" ||
		d.Status != topology.PortStatusActive || !d.AdminStateUp || d.ProjectID != "p" || len(d.SecurityGroups) != 0 ||
		d.SecurityGroups == nil || !d.PortSecurityEnabled || !strings.HasPrefix(d.MACAddress, "fa:16:3e:") || d.ExtraDHCPOpts == nil ||
		ipsOf(d) != "10.0.0.2" || d.FixedIPs[0].SubnetID != a.ID {
		t.Fatalf("DHCP port %+v", d)
	}
	if got, want := fmt.Sprint(portChanges(t, s, rev)), fmt.Sprint([]string{"create:" + d.ID}); got != want {
		t.Fatalf("port changes of the subnet create %s, want %s", got, want)
	}
	vm := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID, DeviceOwner: ptr("compute:nova")}))(t)
	if ipsOf(vm) != "10.0.0.3" {
		t.Fatalf("first VM port has %s, want 10.0.0.3 after the DHCP port's .2", ipsOf(vm))
	}

	// A subnet without DHCP leaves the port alone; turning DHCP on gives it an address.
	rev = revision(t, s)
	b := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n.ID, CIDR: ptr("10.0.1.0/24"), EnableDHCP: ptr(false)}))(t)
	if got := dhcpPort(t, s, n.ID); ipsOf(got) != "10.0.0.2" || got.RevisionNumber != d.RevisionNumber || len(portChanges(t, s, rev)) != 0 {
		t.Fatalf("DHCP port after a subnet without DHCP: %+v", got)
	}
	rev = revision(t, s)
	ok(s.UpdateSubnet(ctx, b.ID, db.SubnetSpec{EnableDHCP: ptr(true)}))(t)
	d = dhcpPort(t, s, n.ID)
	if ipsOf(d) != "10.0.0.2 10.0.1.2" || d.FixedIPs[1].SubnetID != b.ID {
		t.Fatalf("DHCP port after enable_dhcp on the second subnet: %s", ipsOf(d))
	}
	if got, want := fmt.Sprint(portChanges(t, s, rev)), fmt.Sprint([]string{"update:" + d.ID}); got != want {
		t.Fatalf("port changes of enable_dhcp %s, want %s", got, want)
	}
	// Updating a subnet without touching enable_dhcp leaves the port alone.
	rev = revision(t, s)
	ok(s.UpdateSubnet(ctx, b.ID, db.SubnetSpec{Name: ptr("b")}))(t)
	if pc := portChanges(t, s, rev); len(pc) != 0 {
		t.Fatalf("renaming a subnet changed ports: %v", pc)
	}

	// Turning DHCP off takes the address back: it is free again.
	ok(s.UpdateSubnet(ctx, a.ID, db.SubnetSpec{EnableDHCP: ptr(false)}))(t)
	if d = dhcpPort(t, s, n.ID); ipsOf(d) != "10.0.1.2" {
		t.Fatalf("DHCP port after enable_dhcp off on the first subnet: %s", ipsOf(d))
	}
	vm2 := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID, FixedIPs: &[]db.FixedIPSpec{{SubnetID: a.ID}}}))(t)
	if ipsOf(vm2) != "10.0.0.2" {
		t.Fatalf("the DHCP port's old address was not freed: a new port got %s", ipsOf(vm2))
	}

	// Deleting the subnet holding the DHCP port's last address deletes the port with it
	// (its address does not make the subnet in use).
	rev = revision(t, s)
	if err := s.DeleteSubnet(ctx, b.ID); err != nil {
		t.Fatalf("delete of a subnet only the DHCP port uses: %v", err)
	}
	if got := dhcpPort(t, s, n.ID); got != nil {
		t.Fatalf("DHCP port %s left without an address", ipsOf(got))
	}
	if got, want := fmt.Sprint(portChanges(t, s, rev)), fmt.Sprint([]string{"delete:" + d.ID}); got != want {
		t.Fatalf("port changes of the subnet delete %s, want %s", got, want)
	}
	// A VM's address still makes a subnet in use.
	wantErrType(t, s.DeleteSubnet(ctx, a.ID), "SubnetInUse")

	// Turning DHCP on again brings a new port; the network deletes with it.
	ok(s.UpdateSubnet(ctx, a.ID, db.SubnetSpec{EnableDHCP: ptr(true)}))(t)
	if d = dhcpPort(t, s, n.ID); ipsOf(d) != "10.0.0.4" {
		t.Fatalf("DHCP port after enable_dhcp on again: %s, want the lowest free address 10.0.0.4", ipsOf(d))
	}
	wantErrType(t, s.DeleteNetwork(ctx, n.ID), "NetworkInUse")
	for _, p := range []*topology.Port{vm, vm2} {
		if err := s.DeletePort(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
	}
	rev = revision(t, s)
	if err := s.DeleteNetwork(ctx, n.ID); err != nil {
		t.Fatalf("delete of a network with its DHCP port: %v", err)
	}
	if got, want := fmt.Sprint(portChanges(t, s, rev)), fmt.Sprint([]string{"delete:" + d.ID}); got != want {
		t.Fatalf("port changes of the network delete %s, want %s", got, want)
	}
	if ps := ok(s.ListPorts(ctx))(t); len(ps) != 0 {
		t.Fatalf("ports left after the network delete: %+v", ps)
	}
}

// TestDHCPPortLastSubnetDeleted: deleting a network's only subnet takes its DHCP port.
func TestDHCPPortLastSubnetDeleted(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n, sn := tenantNet(t, s, "10.0.0.0/24")
	if d := dhcpPort(t, s, n.ID); ipsOf(d) != "10.0.0.2" {
		t.Fatalf("DHCP port %s", ipsOf(d))
	}
	if err := s.DeleteSubnet(ctx, sn.ID); err != nil {
		t.Fatal(err)
	}
	if d := dhcpPort(t, s, n.ID); d != nil {
		t.Fatalf("DHCP port %s after the last subnet went", ipsOf(d))
	}
	if ps := ok(s.ListPorts(ctx))(t); len(ps) != 0 {
		t.Fatalf("ports left: %+v", ps)
	}
	// The subnet can come back, and so does the port.
	ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n.ID, CIDR: ptr("10.0.0.0/24")}))(t)
	if d := dhcpPort(t, s, n.ID); ipsOf(d) != "10.0.0.2" {
		t.Fatalf("DHCP port %s after the subnet came back", ipsOf(d))
	}
}

// TestDHCPPortRefusedChanges: refused subnet creates (single and bulk) and updates leave
// no DHCP port behind, and no revision.
func TestDHCPPortRefusedChanges(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n, sn := tenantNet(t, s, "10.0.0.0/24")
	bare := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t)
	d := dhcpPort(t, s, n.ID)
	rev := revision(t, s)
	_, err := s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n.ID, CIDR: ptr("10.0.0.128/25")})
	wantErrType(t, err, "InvalidInput") // overlaps
	_, err = s.CreateSubnets(ctx, []db.SubnetSpec{{ProjectID: "p", NetworkID: bare.ID, CIDR: ptr("10.1.0.0/24")},
		{ProjectID: "p", NetworkID: n.ID, CIDR: ptr("10.0.0.0/16")}})
	wantErrType(t, err, "InvalidInput")
	_, err = s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: bare.ID, CIDR: ptr("10.1.0.0/24"), GatewayIP: ptr("10.1.0.2"),
		AllocationPools: &[]topology.AllocationPool{{Start: "10.1.0.2", End: "10.1.0.9"}}})
	wantErrType(t, err, "GatewayConflictWithAllocationPools")
	_, err = s.UpdateSubnet(ctx, sn.ID, db.SubnetSpec{EnableDHCP: ptr(false), GatewayIP: ptr("10.0.0.300")})
	wantErrType(t, err, "InvalidInput")
	if got := revision(t, s); got != rev {
		t.Fatalf("revision %d after refusals, want %d", got, rev)
	}
	if got := dhcpPort(t, s, bare.ID); got != nil {
		t.Fatalf("a refused subnet create left DHCP port %+v", got)
	}
	if got := dhcpPort(t, s, n.ID); got == nil || got.RevisionNumber != d.RevisionNumber || ipsOf(got) != ipsOf(d) {
		t.Fatalf("DHCP port after refusals %+v, want %+v", got, d)
	}
	if ps := ok(s.ListPorts(ctx))(t); len(ps) != 1 {
		t.Fatalf("%d ports after refusals, want the DHCP port alone", len(ps))
	}
}

// TestDHCPPortBulkSubnets: a bulk subnet create (the scale loader's) gives every network
// its DHCP port, or an address more on the one it has, with the free lists right after.
func TestDHCPPortBulkSubnets(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	nets := ok(s.CreateNetworks(ctx, []db.NetworkSpec{{ProjectID: "p"}, {ProjectID: "q", PortSecurityEnabled: ptr(false)}, {ProjectID: "p"}}))(t)
	old := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: nets[0].ID, CIDR: ptr("10.9.0.0/24")}))(t)
	d0 := dhcpPort(t, s, nets[0].ID)
	rev := revision(t, s)
	subs := ok(s.CreateSubnets(ctx, []db.SubnetSpec{
		{ProjectID: "p", NetworkID: nets[0].ID, CIDR: ptr("10.0.0.0/24")},
		{ProjectID: "q", NetworkID: nets[1].ID, CIDR: ptr("10.0.0.0/24"), GatewayIP: ptr("10.0.0.254")},
		{ProjectID: "q", NetworkID: nets[1].ID, CIDR: ptr("10.0.1.0/24"), AllocationPools: &[]topology.AllocationPool{{Start: "10.0.1.100", End: "10.0.1.100"}}},
		{ProjectID: "p", NetworkID: nets[2].ID, CIDR: ptr("10.0.2.0/24"), EnableDHCP: ptr(false)},
	}))(t)
	if got := revision(t, s); got != rev+1 {
		t.Fatalf("bulk create took revisions %d-%d, want one", rev+1, got)
	}
	d0b := dhcpPort(t, s, nets[0].ID)
	if d0b.ID != d0.ID || ipsOf(d0b) != "10.9.0.2 10.0.0.2" || d0b.FixedIPs[0].SubnetID != old.ID || d0b.FixedIPs[1].SubnetID != subs[0].ID ||
		d0b.RevisionNumber != d0.RevisionNumber+1 {
		t.Fatalf("existing DHCP port after the batch %+v", d0b)
	}
	d1 := dhcpPort(t, s, nets[1].ID)
	if d1 == nil || ipsOf(d1) != "10.0.0.1 10.0.1.100" || d1.ProjectID != "q" || d1.PortSecurityEnabled || d1.Status != topology.PortStatusActive ||
		d1.DeviceID != topology.DHCPDeviceID(nets[1].ID) || d1.MACAddress == "" {
		t.Fatalf("new DHCP port of the batch %+v", d1)
	}
	if d2 := dhcpPort(t, s, nets[2].ID); d2 != nil {
		t.Fatalf("network without DHCP got DHCP port %+v", d2)
	}
	cs := portChanges(t, s, rev)
	if len(cs) != 2 || cs[0] != "update:"+d0.ID || cs[1] != "create:"+d1.ID {
		t.Fatalf("port changes of the batch %v", cs)
	}
	// The addresses are allocated in the store: the next ones skip them, and the
	// single-address pool is exhausted.
	for _, c := range []struct{ net, subnet, want string }{
		{nets[0].ID, subs[0].ID, "10.0.0.3"}, {nets[1].ID, subs[1].ID, "10.0.0.2"}, {nets[2].ID, subs[3].ID, "10.0.2.2"},
	} {
		p := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: c.net, FixedIPs: &[]db.FixedIPSpec{{SubnetID: c.subnet}}}))(t)
		if ipsOf(p) != c.want {
			t.Fatalf("port on subnet %s got %s, want %s", c.subnet, ipsOf(p), c.want)
		}
	}
	_, err := s.CreatePort(ctx, db.PortSpec{ProjectID: "q", NetworkID: nets[1].ID, FixedIPs: &[]db.FixedIPSpec{{IPAddress: "10.0.1.100"}}})
	wantErrType(t, err, "IpAddressAlreadyAllocated")
	// Deleting one of two subnets takes the port's address on it alone.
	if err := s.DeleteSubnet(ctx, subs[2].ID); err != nil {
		t.Fatal(err)
	}
	if got := dhcpPort(t, s, nets[1].ID); got == nil || got.ID != d1.ID || ipsOf(got) != "10.0.0.1" {
		t.Fatalf("DHCP port after one of its subnets went: %+v", got)
	}
}

// TestDHCPPortsOfUsers: users may create, change and delete network:dhcp ports as in
// Neutron. Theirs are not the managed one, and lose their address with a subnet; deleting
// the managed one brings a new one, as Neutron's DHCP agent would.
func TestDHCPPortsOfUsers(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n, sn := tenantNet(t, s, "10.0.0.0/24")
	d := dhcpPort(t, s, n.ID)
	mine := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID, DeviceOwner: ptr(topology.OwnerDHCP), DeviceID: ptr("reserved_dhcp_port")}))(t)
	if topology.IsManagedDHCPPort(mine) || ipsOf(mine) != "10.0.0.3" {
		t.Fatalf("user's DHCP port %+v", mine)
	}
	d = ok(s.UpdatePort(ctx, d.ID, db.PortSpec{Name: ptr("dhcp")}))(t)
	if d.Name != "dhcp" || dhcpPort(t, s, n.ID).Name != "dhcp" {
		t.Fatalf("renamed DHCP port %+v", d)
	}
	rev := revision(t, s)
	if err := s.DeletePort(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	nd := dhcpPort(t, s, n.ID)
	if nd == nil || nd.ID == d.ID || ipsOf(nd) != "10.0.0.2" {
		t.Fatalf("after deleting the DHCP port: %+v", nd)
	}
	if got := revision(t, s); got != rev+1 {
		t.Fatalf("delete and re-create took revisions %d-%d, want one", rev+1, got)
	}
	if got, want := fmt.Sprint(portChanges(t, s, rev)), fmt.Sprint([]string{"delete:" + d.ID, "create:" + nd.ID}); got != want {
		t.Fatalf("port changes %s, want %s", got, want)
	}
	// The user's network:dhcp port does not keep the subnet in use either; it stays,
	// without the address.
	if err := s.DeleteSubnet(ctx, sn.ID); err != nil {
		t.Fatal(err)
	}
	if got := ok(s.GetPort(ctx, mine.ID))(t); len(got.FixedIPs) != 0 {
		t.Fatalf("user's DHCP port after the subnet went: %+v", got)
	}
	if got := dhcpPort(t, s, n.ID); got != nil {
		t.Fatalf("managed DHCP port %+v after the last subnet went", got)
	}
	// Deleting the network takes the user's DHCP port too, as Neutron does.
	if err := s.DeleteNetwork(ctx, n.ID); err != nil {
		t.Fatal(err)
	}
}

// TestSyncDHCPPorts: a store whose DHCP-enabled subnets have no DHCP port (written before
// dvrflow kept them) gets them when opened; a full subnet gets none, and a store with
// nothing to do is not written.
func TestSyncDHCPPorts(t *testing.T) {
	ctx := context.Background()
	s, dsn := newStore(t)
	n, _ := tenantNet(t, s, "10.0.0.0/24")
	full := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t)
	fsn := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: full.ID, CIDR: ptr("10.0.1.0/30"), EnableDHCP: ptr(false)}))(t)
	ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: full.ID}))(t) // its only pool address, .2
	// An older store: the DHCP port is not there, the full subnet has DHCP on.
	d := dhcpPort(t, s, n.ID)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`DELETE FROM ports WHERE id = $1`, []any{d.ID}},
		{`INSERT INTO ip_free_ranges (subnet_id, first, last) VALUES ($1, $2, $2)`, []any{d.FixedIPs[0].SubnetID, int64(10<<24 | 2)}},
		{`UPDATE subnets SET obj = obj || '{"enable_dhcp": true}' WHERE id = $1`, []any{fsn.ID}},
	} {
		if _, err := conn.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	rev := revision(t, s)
	s.Close()
	if got := revision(t, openStore(t, dsn)); got != rev+1 {
		t.Fatalf("opening the older store took revisions %d-%d, want one", rev+1, got)
	}
	rev++
	s = openStore(t, dsn)
	nd := dhcpPort(t, s, n.ID)
	if nd == nil || ipsOf(nd) != "10.0.0.2" {
		t.Fatalf("DHCP port after opening an older store: %+v", nd)
	}
	if got := dhcpPort(t, s, full.ID); got != nil {
		t.Fatalf("full subnet got DHCP port %+v", got)
	}
	if got := revision(t, s); got != rev {
		t.Fatalf("opening again wrote revisions %d-%d", rev+1, got)
	}
	if err := s.SyncDHCPPorts(ctx); err != nil {
		t.Fatal(err)
	}
	if got := revision(t, s); got != rev {
		t.Fatalf("a sync with nothing to do wrote revisions %d-%d", rev+1, got)
	}
}

// TestDHCPPortIPv6: as the port Neutron's DHCP agent asks for, the DHCP port has an
// address on every DHCP-enabled subnet of either version: its EUI-64 address on a SLAAC
// or DHCPv6-stateless subnet, the lowest free pool address on a DHCPv6-stateful or
// mode-less one; it loses it when the subnet goes or turns DHCP off, goes with its last
// address, and a store whose DHCP port lacks its IPv6 address (written before) gets it
// when opened.
func TestDHCPPortIPv6(t *testing.T) {
	ctx := context.Background()
	s, dsn := newStore(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID
	v4 := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n, CIDR: ptr("10.0.0.0/24")}))(t)
	d := dhcpPort(t, s, n)
	slaac := ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8::/64", ptr(topology.IPv6SLAAC), ptr(topology.IPv6SLAAC))))(t)
	stateful := ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8:1::/64", nil, ptr(topology.IPv6DHCPStateful))))(t)
	stateless := ok(s.CreateSubnets(ctx, []db.SubnetSpec{v6Subnet(n, "2001:db8:2::/64", ptr(topology.IPv6DHCPStateless), ptr(topology.IPv6DHCPStateless))}))(t)[0]
	off := v6Subnet(n, "2001:db8:3::/64", nil, nil)
	off.EnableDHCP = ptr(false)
	plain := ok(s.CreateSubnet(ctx, off))(t)
	want := []topology.FixedIP{{SubnetID: v4.ID, IPAddress: "10.0.0.2"}, {SubnetID: slaac.ID, IPAddress: eui64Of(t, "2001:db8::", d.MACAddress)},
		{SubnetID: stateful.ID, IPAddress: "2001:db8:1::2"}, {SubnetID: stateless.ID, IPAddress: eui64Of(t, "2001:db8:2::", d.MACAddress)}}
	got := dhcpPort(t, s, n)
	if got.ID != d.ID || !slices.Equal(got.FixedIPs, want) {
		t.Fatalf("DHCP port %s %v, want %s %v", got.ID, got.FixedIPs, d.ID, want)
	}
	// A port gets the next pool address.
	if p := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n, FixedIPs: &[]db.FixedIPSpec{{SubnetID: stateful.ID}}}))(t); p.FixedIPs[0].IPAddress != "2001:db8:1::3" {
		t.Errorf("port on the stateful subnet: %s", ipsOf(p))
	}
	// DHCP on and off on the mode-less subnet.
	ok(s.UpdateSubnet(ctx, plain.ID, db.SubnetSpec{EnableDHCP: ptr(true)}))(t)
	if got := dhcpPort(t, s, n); !slices.Contains(got.FixedIPs, topology.FixedIP{SubnetID: plain.ID, IPAddress: "2001:db8:3::2"}) {
		t.Errorf("DHCP turned on: %v", got.FixedIPs)
	}
	ok(s.UpdateSubnet(ctx, plain.ID, db.SubnetSpec{EnableDHCP: ptr(false)}))(t)
	if got := dhcpPort(t, s, n); !slices.Equal(got.FixedIPs, want) {
		t.Errorf("DHCP turned off: %v, want %v", got.FixedIPs, want)
	}
	// Subnets go, their addresses with them.
	for _, id := range []string{slaac.ID, stateless.ID} {
		if err := s.DeleteSubnet(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if got := dhcpPort(t, s, n); !slices.Equal(got.FixedIPs, []topology.FixedIP{want[0], want[2]}) {
		t.Errorf("after the auto-address subnets went: %v", got.FixedIPs)
	}
	// A network with an IPv6 subnet only: its DHCP port goes with it.
	n6 := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID
	only := ok(s.CreateSubnet(ctx, v6Subnet(n6, "2001:db8:6::/64", nil, ptr(topology.IPv6DHCPStateful))))(t)
	d6 := dhcpPort(t, s, n6)
	if ipsOf(d6) != "2001:db8:6::2" {
		t.Fatalf("DHCP port of the IPv6 network: %s", ipsOf(d6))
	}
	// An older store: that DHCP port is not there. Opening it makes it again.
	conn := ok(pgx.Connect(ctx, dsn))(t)
	defer conn.Close(ctx)
	for _, q := range []string{`DELETE FROM ports WHERE id = '` + d6.ID + `'`,
		`INSERT INTO ip6_free_ranges (subnet_id, first, last) VALUES ('` + only.ID + `', '2001:db8:6::2', '2001:db8:6::2')`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	s = openStore(t, dsn)
	if got := dhcpPort(t, s, n6); got == nil || ipsOf(got) != "2001:db8:6::2" {
		t.Fatalf("DHCP port after opening an older store: %s", ipsOf(got))
	}
	if err := s.DeleteSubnet(ctx, only.ID); err != nil {
		t.Fatal(err)
	}
	if got := dhcpPort(t, s, n6); got != nil {
		t.Errorf("DHCP port without subnets: %v", got.FixedIPs)
	}
}
