package db_test

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
)

// v6Subnet is a subnet spec on network of cidr, IPv6, with ipv6_ra_mode and
// ipv6_address_mode (nil: not given).
func v6Subnet(network, cidr string, ra, addr *string) db.SubnetSpec {
	return db.SubnetSpec{ProjectID: "p", NetworkID: network, IPVersion: ptr(6), CIDR: ptr(cidr), IPv6RAMode: ra, IPv6AddressMode: addr}
}

func addrsOf(p *topology.Port) []string {
	out := make([]string, len(p.FixedIPs))
	for i, f := range p.FixedIPs {
		out[i] = f.IPAddress
	}
	return out
}

// Every IPv6 subnet rule refuses with Neutron's type and message, and changes nothing.
func TestIPv6SubnetValidation(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID
	ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8:1::/64", nil, nil)))(t)
	slaac, stateful := ptr(topology.IPv6SLAAC), ptr(topology.IPv6DHCPStateful)
	with := func(sp db.SubnetSpec, f func(*db.SubnetSpec)) db.SubnetSpec { f(&sp); return sp }
	for _, c := range []struct {
		name, typ, msg string
		spec           db.SubnetSpec
	}{
		{"cidr not of ip_version", "InvalidInput", "Invalid input for operation: cidr '2001:db8::/64' does not match the ip_version '4'",
			with(v6Subnet(n, "2001:db8::/64", nil, nil), func(sp *db.SubnetSpec) { sp.IPVersion = ptr(4) })},
		{"ip_version 5", "InvalidInput", "Invalid input for ip_version. Reason: 5 is not in [4, 6].",
			with(v6Subnet(n, "2001:db8::/64", nil, nil), func(sp *db.SubnetSpec) { sp.IPVersion = ptr(5) })},
		{"host bits", "InvalidInput", "Invalid input for operation: '2001:db8::1/64' isn't a recognized IP subnet cidr, '2001:db8::/64' is recommended",
			v6Subnet(n, "2001:db8::1/64", nil, nil)},
		{"::", "InvalidInput", "Invalid input for operation: IPv6 subnet '::' is not supported", v6Subnet(n, "::/0", nil, nil)},
		{"/127", "InvalidInput", "too small", v6Subnet(n, "2001:db8::/127", nil, nil)},
		{"overlap", "InvalidInput", "overlaps with another subnet", v6Subnet(n, "2001:db8:1::/80", nil, nil)},
		{"slaac not /64", "InvalidInput", "Invalid input for operation: Invalid CIDR 2001:db8::/80 for IPv6 address mode. OpenStack uses the EUI-64 address format, which requires the prefix to be /64",
			v6Subnet(n, "2001:db8::/80", slaac, nil)},
		{"stateless not /64", "InvalidInput", "requires the prefix to be /64", v6Subnet(n, "2001:db8::/72", nil, ptr(topology.IPv6DHCPStateless))},
		{"modes differ", "InvalidInput", "Invalid input for operation: ipv6_ra_mode set to 'slaac' with ipv6_address_mode set to 'dhcpv6-stateful' is not valid. If both attributes are set, they must be the same value",
			v6Subnet(n, "2001:db8::/64", slaac, stateful)},
		{"modes without DHCP", "InvalidInput", "Invalid input for operation: ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False",
			with(v6Subnet(n, "2001:db8::/64", nil, slaac), func(sp *db.SubnetSpec) { sp.EnableDHCP = ptr(false) })},
		{"unknown mode", "InvalidInput", "Invalid input for ipv6_address_mode. Reason: 'dhcp' is not in", v6Subnet(n, "2001:db8::/64", nil, ptr("dhcp"))},
		{"ra mode on IPv4", "InvalidInput", "Invalid input for operation: ipv6_ra_mode is not valid when ip_version is 4",
			db.SubnetSpec{ProjectID: "p", NetworkID: n, CIDR: ptr("10.0.0.0/24"), IPv6RAMode: slaac}},
		{"address mode on IPv4", "InvalidInput", "Invalid input for operation: ipv6_address_mode is not valid when ip_version is 4",
			db.SubnetSpec{ProjectID: "p", NetworkID: n, CIDR: ptr("10.0.0.0/24"), IPv6AddressMode: slaac}},
		{"IPv4 gateway", "InvalidInput", "Invalid input for operation: gateway_ip '10.0.0.1' does not match the ip_version '6'",
			with(v6Subnet(n, "2001:db8::/64", nil, nil), func(sp *db.SubnetSpec) { sp.GatewayIP = ptr("10.0.0.1") })},
		{"IPv4 nameserver", "InvalidInput", "Invalid input for operation: dns_nameserver '8.8.8.8' does not match the ip_version '6'",
			with(v6Subnet(n, "2001:db8::/64", nil, nil), func(sp *db.SubnetSpec) { sp.DNSNameservers = &[]string{"8.8.8.8"} })},
		{"IPv6 nameserver on IPv4", "InvalidInput", "Invalid input for operation: dns_nameserver '2001:4860::8888' does not match the ip_version '4'",
			db.SubnetSpec{ProjectID: "p", NetworkID: n, CIDR: ptr("10.0.0.0/24"), DNSNameservers: &[]string{"2001:4860::8888"}}},
		{"IPv4 route", "InvalidInput", "Invalid input for operation: nexthop '10.0.0.1' does not match the ip_version '6'",
			with(v6Subnet(n, "2001:db8::/64", nil, nil), func(sp *db.SubnetSpec) {
				sp.HostRoutes = &[]topology.HostRoute{{Destination: "10.1.0.0/16", NextHop: "10.0.0.1"}}
			})},
		{"pool with the first address", "OutOfBoundsAllocationPool", "The allocation pool 2001:db8::-2001:db8::9 spans beyond the subnet cidr 2001:db8::/64.",
			with(v6Subnet(n, "2001:db8::/64", nil, nil), func(sp *db.SubnetSpec) {
				sp.AllocationPools = &[]topology.AllocationPool{{Start: "2001:db8::", End: "2001:db8::9"}}
			})},
		{"IPv4 pool", "InvalidAllocationPool", "The allocation pool 10.0.0.2-10.0.0.9 is not valid.",
			with(v6Subnet(n, "2001:db8::/64", nil, nil), func(sp *db.SubnetSpec) {
				sp.AllocationPools = &[]topology.AllocationPool{{Start: "10.0.0.2", End: "10.0.0.9"}}
			})},
		{"gateway in pool", "GatewayConflictWithAllocationPools", "Gateway ip 2001:db8::1 conflicts with allocation pool 2001:db8::1-2001:db8::9.",
			with(v6Subnet(n, "2001:db8::/64", nil, nil), func(sp *db.SubnetSpec) {
				sp.AllocationPools = &[]topology.AllocationPool{{Start: "2001:db8::1", End: "2001:db8::9"}}
			})},
	} {
		t.Run(c.name, func(t *testing.T) {
			rev := revision(t, s)
			_, err := s.CreateSubnet(ctx, c.spec)
			wantErrType(t, err, c.typ)
			if e, _ := db.AsError(err); !strings.Contains(e.Message, c.msg) {
				t.Errorf("message %q, want %q", e.Message, c.msg)
			}
			if got := revision(t, s); got != rev {
				t.Errorf("revision %d -> %d", rev, got)
			}
		})
	}
	// A network below IPv6's minimum MTU takes no IPv6 subnet, and one with an IPv6 subnet
	// cannot go below it.
	small := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p", MTU: ptr(1000)}))(t).ID
	_, err := s.CreateSubnet(ctx, v6Subnet(small, "2001:db8:9::/64", nil, nil))
	wantErrType(t, err, "NetworkMTUSubnetConflict")
	_, err = s.UpdateNetwork(ctx, n, db.NetworkSpec{MTU: ptr(1279)})
	wantErrType(t, err, "NetworkMTUSubnetConflict")
	// DHCP cannot be turned off under IPv6 modes.
	sl := ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8:2::/64", slaac, slaac)))(t)
	_, err = s.UpdateSubnet(ctx, sl.ID, db.SubnetSpec{EnableDHCP: ptr(false)})
	wantErrType(t, err, "InvalidInput")
}

// An IPv6 subnet's defaults are Neutron's: gateway the first address after the prefix's,
// one pool from the next to the last address of the prefix.
func TestIPv6SubnetDefaults(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID
	v4 := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n, CIDR: ptr("10.0.0.0/24")}))(t)
	sn := ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:DB8::/64", ptr(topology.IPv6SLAAC), nil)))(t)
	want := []topology.AllocationPool{{Start: "2001:db8::2", End: "2001:db8::ffff:ffff:ffff:ffff"}}
	if sn.IPVersion != 6 || sn.CIDR != "2001:db8::/64" || sn.GatewayIP != "2001:db8::1" || !slices.Equal(sn.AllocationPools, want) ||
		sn.IPv6RAMode != "slaac" || sn.IPv6AddressMode != "" {
		t.Errorf("subnet %+v", sn)
	}
	if v4.IPVersion != 4 || v4.IPv6RAMode != "" {
		t.Errorf("IPv4 subnet %+v", v4)
	}
	// The gateway and pools change as on IPv4.
	up := ok(s.UpdateSubnet(ctx, sn.ID, db.SubnetSpec{GatewayIP: ptr("2001:db8::ffff"),
		AllocationPools: &[]topology.AllocationPool{{Start: "2001:db8::10", End: "2001:db8::20"}}}))(t)
	if up.GatewayIP != "2001:db8::ffff" || up.AllocationPools[0].Start != "2001:db8::10" {
		t.Errorf("updated %+v", up)
	}
}

// Pool addresses of a mode-less (or DHCPv6-stateful) IPv6 subnet: a specific one, the
// lowest free ones, exhaustion, release.
func TestIPv6PoolAllocation(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID
	spec := v6Subnet(n, "2001:db8::/125", nil, nil) // pool ::2-::7
	spec.EnableDHCP = ptr(false)                    // no DHCP port to take ::2
	sn := ok(s.CreateSubnet(ctx, spec))(t)
	port := func(ips *[]db.FixedIPSpec) (*topology.Port, error) {
		return s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n, FixedIPs: ips})
	}
	five := ok(port(&[]db.FixedIPSpec{{IPAddress: "2001:db8::5"}}))(t)
	if got := addrsOf(five); !slices.Equal(got, []string{"2001:db8::5"}) || five.FixedIPs[0].SubnetID != sn.ID {
		t.Fatalf("specific address: %v", five.FixedIPs)
	}
	_, err := port(&[]db.FixedIPSpec{{IPAddress: "2001:db8::5"}})
	wantErrType(t, err, "IpAddressAlreadyAllocated")
	_, err = port(&[]db.FixedIPSpec{{IPAddress: "2001:db8::1:5"}})
	wantErrType(t, err, "InvalidIpForNetwork")
	var got []string
	for range 5 {
		got = append(got, addrsOf(ok(port(nil))(t))...)
	}
	if want := []string{"2001:db8::2", "2001:db8::3", "2001:db8::4", "2001:db8::6", "2001:db8::7"}; !slices.Equal(got, want) {
		t.Errorf("addresses %v, want %v", got, want)
	}
	rev := revision(t, s)
	_, err = port(nil)
	wantErrType(t, err, "IpAddressGenerationFailure")
	if r := revision(t, s); r != rev {
		t.Errorf("refused port: revision %d -> %d", rev, r)
	}
	if err := s.DeletePort(ctx, five.ID); err != nil {
		t.Fatal(err)
	}
	if again := ok(port(nil))(t); !slices.Equal(addrsOf(again), []string{"2001:db8::5"}) {
		t.Errorf("after release: %v", again.FixedIPs)
	}
	// A subnet with allocations cannot go.
	wantErrType(t, s.DeleteSubnet(ctx, sn.ID), "SubnetInUse")
}

// A port on a network with IPv4, SLAAC and DHCPv6-stateful subnets gets, as in Neutron,
// one IPv4 address, one stateful pool address and its EUI-64 address; the EUI-64 address
// follows the MAC, and no other address can be asked on the SLAAC subnet.
func TestDualStackPort(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID
	v4 := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n, CIDR: ptr("10.0.0.0/24")}))(t)
	slaac := ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8::/64", ptr(topology.IPv6SLAAC), ptr(topology.IPv6SLAAC))))(t)
	stateful := ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8:1::/64", nil, ptr(topology.IPv6DHCPStateful))))(t)
	// Neutron's own example: fa:16:3e:4f:00:00 on 2001:db8::/64. The DHCP port has the
	// first pool addresses, 10.0.0.2 and 2001:db8:1::2.
	p := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n, MACAddress: ptr("fa:16:3e:4f:00:00")}))(t)
	want := []topology.FixedIP{{SubnetID: v4.ID, IPAddress: "10.0.0.3"}, {SubnetID: stateful.ID, IPAddress: "2001:db8:1::3"},
		{SubnetID: slaac.ID, IPAddress: "2001:db8::f816:3eff:fe4f:0"}}
	if !slices.Equal(p.FixedIPs, want) {
		t.Fatalf("fixed IPs %v, want %v", p.FixedIPs, want)
	}
	// The automatic path (no MAC, no fixed IPs) gives the same kinds of address.
	auto := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n}))(t)
	if len(auto.FixedIPs) != 3 || auto.FixedIPs[0].IPAddress != "10.0.0.4" || auto.FixedIPs[1].IPAddress != "2001:db8:1::4" ||
		!strings.HasPrefix(auto.FixedIPs[2].IPAddress, "2001:db8::") {
		t.Errorf("automatic port %v", auto.FixedIPs)
	}
	// Another address on the SLAAC subnet: refused, nothing changes.
	rev := revision(t, s)
	_, err := s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n, MACAddress: ptr("fa:16:3e:4f:00:01"),
		FixedIPs: &[]db.FixedIPSpec{{SubnetID: slaac.ID, IPAddress: "2001:db8::5"}}})
	wantErrType(t, err, "InvalidInput")
	if e, _ := db.AsError(err); !strings.Contains(e.Message, "IPv6 address 2001:db8::5 cannot be directly assigned to a port on subnet "+slaac.ID+
		" as the subnet is configured for automatic addresses") {
		t.Errorf("message %q", e.Message)
	}
	if r := revision(t, s); r != rev {
		t.Errorf("refused port: revision %d -> %d", rev, r)
	}
	// Its own EUI-64 address may be named; fixed IPs given still bring the SLAAC address.
	named := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n, MACAddress: ptr("fa:16:3e:4f:00:02"),
		FixedIPs: &[]db.FixedIPSpec{{SubnetID: slaac.ID, IPAddress: "2001:db8::f816:3eff:fe4f:2"}}}))(t)
	if !slices.Equal(addrsOf(named), []string{"2001:db8::f816:3eff:fe4f:2"}) {
		t.Errorf("named EUI-64: %v", named.FixedIPs)
	}
	only4 := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n, MACAddress: ptr("fa:16:3e:4f:00:03"),
		FixedIPs: &[]db.FixedIPSpec{{SubnetID: v4.ID}}}))(t)
	if !slices.Equal(addrsOf(only4), []string{"10.0.0.5", "2001:db8::f816:3eff:fe4f:3"}) {
		t.Errorf("IPv4 asked: %v", only4.FixedIPs)
	}
	// Changing the fixed IPs keeps the EUI-64 address; changing the MAC moves it.
	up := ok(s.UpdatePort(ctx, only4.ID, db.PortSpec{FixedIPs: &[]db.FixedIPSpec{{IPAddress: "10.0.0.50"}}}))(t)
	if !slices.Equal(addrsOf(up), []string{"2001:db8::f816:3eff:fe4f:3", "10.0.0.50"}) {
		t.Errorf("fixed IPs updated: %v", up.FixedIPs)
	}
	up = ok(s.UpdatePort(ctx, only4.ID, db.PortSpec{MACAddress: ptr("fa:16:3e:4f:00:33")}))(t)
	if !slices.Equal(addrsOf(up), []string{"2001:db8::f816:3eff:fe4f:33", "10.0.0.50"}) {
		t.Errorf("MAC updated: %v", up.FixedIPs)
	}
	// The former address is free again: a port with the old MAC takes it.
	ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n, MACAddress: ptr("fa:16:3e:4f:00:03")}))(t)
	// A SLAAC subnet's addresses go with its ports: only the stateful one is in use...
	wantErrType(t, s.DeleteSubnet(ctx, stateful.ID), "SubnetInUse")
}

// A bulk create addresses its ports on IPv6 subnets as single creates do.
func TestBulkPortsIPv6(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID
	ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n, CIDR: ptr("10.0.0.0/24")}))(t)
	ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8::/64", ptr(topology.IPv6SLAAC), nil)))(t)
	ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8:1::/120", nil, nil)))(t)
	ports := ok(s.CreatePorts(ctx, []db.PortSpec{
		{ProjectID: "p", NetworkID: n, MACAddress: ptr("fa:16:3e:00:00:01")},
		{ProjectID: "p", NetworkID: n, MACAddress: ptr("fa:16:3e:00:00:02"), FixedIPs: &[]db.FixedIPSpec{{IPAddress: "2001:db8:1::9"}}},
	}))(t)
	if got := addrsOf(&ports[0]); !slices.Equal(got, []string{"10.0.0.3", "2001:db8:1::3", "2001:db8::f816:3eff:fe00:1"}) { // ::2: the DHCP port's
		t.Errorf("port 0: %v", got)
	}
	if got := addrsOf(&ports[1]); !slices.Equal(got, []string{"2001:db8:1::9", "2001:db8::f816:3eff:fe00:2"}) {
		t.Errorf("port 1: %v", got)
	}
	// The same address again, in a batch: refused, nothing written.
	rev := revision(t, s)
	_, err := s.CreatePorts(ctx, []db.PortSpec{{ProjectID: "p", NetworkID: n, FixedIPs: &[]db.FixedIPSpec{{IPAddress: "2001:db8:1::9"}}}})
	wantErrType(t, err, "IpAddressAlreadyAllocated")
	if r := revision(t, s); r != rev {
		t.Errorf("refused batch: revision %d -> %d", rev, r)
	}
}

// A router interface on an IPv6 subnet takes the subnet's gateway, SLAAC or not; a subnet
// whose RAs come from an external router is refused, as in Neutron.
func TestRouterInterfaceIPv6(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	r := ok(s.CreateRouter(ctx, db.RouterSpec{ProjectID: "p"}))(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID
	v4 := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n, CIDR: ptr("10.0.0.0/24")}))(t)
	slaac := ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8::/64", ptr(topology.IPv6SLAAC), ptr(topology.IPv6SLAAC))))(t)
	plain := ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8:1::/64", nil, nil)))(t)
	ext := ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8:2::/64", nil, ptr(topology.IPv6SLAAC))))(t)
	for _, sn := range []*topology.Subnet{v4, slaac} {
		ri := ok(s.AddRouterInterface(ctx, r.ID, sn.ID, ""))(t)
		p := ok(s.GetPort(ctx, ri.PortID))(t)
		if want := []topology.FixedIP{{SubnetID: sn.ID, IPAddress: sn.GatewayIP}}; !slices.Equal(p.FixedIPs, want) {
			t.Errorf("interface on %s: %v, want %v", sn.CIDR, p.FixedIPs, want)
		}
	}
	// The second IPv6 subnet of the network joins the first's port (TestRouterInterfaceIPv6Ports).
	ri := ok(s.AddRouterInterface(ctx, r.ID, plain.ID, ""))(t)
	if p := ok(s.GetPort(ctx, ri.PortID))(t); !slices.Contains(p.FixedIPs, topology.FixedIP{SubnetID: plain.ID, IPAddress: plain.GatewayIP}) {
		t.Errorf("interface on %s: %v", plain.CIDR, p.FixedIPs)
	}
	rev := revision(t, s)
	_, err := s.AddRouterInterface(ctx, r.ID, ext.ID, "")
	wantErrType(t, err, "BadRequest")
	if e, _ := db.AsError(err); e.Message != "Bad router request: IPv6 subnet "+ext.ID+" configured to receive RAs from an external router cannot be added to Neutron Router." {
		t.Errorf("message %q", e.Message)
	}
	if got := revision(t, s); got != rev {
		t.Errorf("refused interface: revision %d -> %d", rev, got)
	}
	_, err = s.AddRouterInterface(ctx, r.ID, slaac.ID, "")
	wantErrType(t, err, "BadRequest") // one interface per subnet
	// By port: a port with one address on the SLAAC subnet.
	r2 := ok(s.CreateRouter(ctx, db.RouterSpec{ProjectID: "p"}))(t)
	n2 := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID
	ok(s.CreateSubnet(ctx, v6Subnet(n2, "2001:db8:5::/64", ptr(topology.IPv6SLAAC), nil)))(t)
	p := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n2}))(t)
	ok(s.AddRouterInterface(ctx, r2.ID, "", p.ID))(t)
	ok(s.RemoveRouterInterface(ctx, r.ID, slaac.ID, ""))(t)
}

// A database holding IPv4 allocations migrates to 010 without loss: its addresses stay
// taken and its subnets keep allocating.
func TestMigrationIPv6(t *testing.T) {
	ctx := context.Background()
	s, dsn := newStore(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID
	ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n, CIDR: ptr("10.0.0.0/29")}))(t)
	p := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n}))(t)
	// Back to the schema before 010.
	conn := ok(pgx.Connect(ctx, dsn))(t)
	defer conn.Close(ctx)
	for _, q := range []string{`DROP VIEW ip_allocations_all`, `DROP TABLE ip6_allocations`, `DROP TABLE ip6_free_ranges`,
		`DELETE FROM schema_migrations WHERE name = '010_ipv6.sql'`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s2 := openStore(t, dsn)
	_, err := s2.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n, FixedIPs: &[]db.FixedIPSpec{{IPAddress: p.FixedIPs[0].IPAddress}}})
	wantErrType(t, err, "IpAddressAlreadyAllocated")
	next := ok(s2.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n}))(t)
	if next.FixedIPs[0].IPAddress != "10.0.0.4" {
		t.Errorf("next address %v", next.FixedIPs)
	}
	ok(s2.CreateSubnet(ctx, v6Subnet(n, "2001:db8::/64", nil, nil)))(t)
	wantErrType(t, s2.DeleteSubnet(ctx, "nope"), "SubnetNotFound")
}

// An auto-address subnet created on a network with ports gives each, but router ports, its
// EUI-64 address (the DHCP port's: TestDHCPPortIPv6); deleting it takes those back, and
// only a router interface on it keeps it in use (Neutron's add_auto_addrs_on_network_ports
// and _remove_subnet_ip_allocations_from_ports).
func TestAutoAddressSubnetOnPorts(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID
	v4 := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n, CIDR: ptr("10.0.0.0/24")}))(t)
	vm := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n, MACAddress: ptr("fa:16:3e:4f:00:00")}))(t)
	r := ok(s.CreateRouter(ctx, db.RouterSpec{ProjectID: "p"}))(t)
	qr := ok(s.AddRouterInterface(ctx, r.ID, v4.ID, ""))(t)
	sl := ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8::/64", ptr(topology.IPv6SLAAC), nil)))(t)
	if got := addrsOf(ok(s.GetPort(ctx, vm.ID))(t)); !slices.Equal(got, []string{"10.0.0.3", "2001:db8::f816:3eff:fe4f:0"}) {
		t.Errorf("VM port after the SLAAC subnet: %v", got)
	}
	for _, p := range ok(s.ListPorts(ctx))(t) {
		if p.ID != vm.ID && !topology.IsManagedDHCPPort(&p) && slices.ContainsFunc(p.FixedIPs, func(f topology.FixedIP) bool { return f.SubnetID == sl.ID }) {
			t.Errorf("%s port %s got %v", p.DeviceOwner, p.ID, p.FixedIPs)
		}
	}
	// In bulk too.
	bulk := ok(s.CreateSubnets(ctx, []db.SubnetSpec{v6Subnet(n, "2001:db8:1::/64", nil, ptr(topology.IPv6DHCPStateless))}))(t)
	if got := addrsOf(ok(s.GetPort(ctx, vm.ID))(t)); !slices.Equal(got, []string{"10.0.0.3", "2001:db8::f816:3eff:fe4f:0", "2001:db8:1:0:f816:3eff:fe4f:0"}) {
		t.Errorf("VM port after the bulk subnet: %v", got)
	}
	// A router interface holds the subnet; the VM's address does not.
	ri := ok(s.AddRouterInterface(ctx, r.ID, sl.ID, ""))(t)
	rev := revision(t, s)
	wantErrType(t, s.DeleteSubnet(ctx, sl.ID), "SubnetInUse")
	if got := revision(t, s); got != rev {
		t.Errorf("refused delete: revision %d -> %d", rev, got)
	}
	ok(s.RemoveRouterInterface(ctx, r.ID, "", ri.PortID))(t)
	if err := s.DeleteSubnet(ctx, sl.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSubnet(ctx, bulk[0].ID); err != nil {
		t.Fatal(err)
	}
	if got := addrsOf(ok(s.GetPort(ctx, vm.ID))(t)); !slices.Equal(got, []string{"10.0.0.3"}) {
		t.Errorf("VM port after the deletes: %v", got)
	}
	if p := ok(s.GetPort(ctx, qr.PortID))(t); len(p.FixedIPs) != 1 {
		t.Errorf("IPv4 interface %v", p.FixedIPs)
	}
}

// A gateway on an external network with an IPv6 subnet gets an address there too;
// floating IPs stay IPv4: none from a network without an IPv4 subnet, none for an IPv6
// fixed address (Neutron's messages).
func TestGatewayAndFloatingIPsIPv6(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	ext := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p", External: ptr(true)}))(t).ID
	ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: ext, CIDR: ptr("172.24.4.0/24")}))(t)
	ok(s.CreateSubnet(ctx, v6Subnet(ext, "2001:db8:ff::/64", nil, nil)))(t)
	gw := &db.GatewaySpec{NetworkID: ext}
	r := ok(s.CreateRouter(ctx, db.RouterSpec{ProjectID: "p", Gateway: &gw}))(t)
	var got []string
	for _, f := range r.Gateway.ExternalFixedIPs {
		got = append(got, f.IPAddress)
	}
	if !slices.Equal(got, []string{"172.24.4.3", "2001:db8:ff::3"}) { // .2 and ::2: the DHCP port's
		t.Errorf("gateway addresses %v", got)
	}
	ext6 := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p", External: ptr(true)}))(t).ID
	ok(s.CreateSubnet(ctx, v6Subnet(ext6, "2001:db8:fe::/64", nil, nil)))(t)
	_, err := s.CreateFloatingIP(ctx, db.FloatingIPSpec{ProjectID: "p", FloatingNetworkID: ext6})
	wantErrType(t, err, "BadRequest")
	if e, _ := db.AsError(err); e.Message != "Bad floatingip request: Network "+ext6+" does not contain any IPv4 subnet" {
		t.Errorf("message %q", e.Message)
	}
	fip := ok(s.CreateFloatingIP(ctx, db.FloatingIPSpec{ProjectID: "p", FloatingNetworkID: ext}))(t)
	if fip.FloatingIPAddress != "172.24.4.4" {
		t.Errorf("floating IP %s", fip.FloatingIPAddress)
	}
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID
	sn := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n, CIDR: ptr("10.0.0.0/24")}))(t)
	ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8::/64", ptr(topology.IPv6SLAAC), nil)))(t)
	ok(s.AddRouterInterface(ctx, r.ID, sn.ID, ""))(t)
	vm := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n, MACAddress: ptr("fa:16:3e:4f:00:00")}))(t)
	_, err = s.UpdateFloatingIP(ctx, fip.ID, db.FloatingIPSpec{PortID: &vm.ID, FixedIPAddress: ptr("2001:db8::f816:3eff:fe4f:0")})
	wantErrType(t, err, "BadRequest")
	if up := ok(s.UpdateFloatingIP(ctx, fip.ID, db.FloatingIPSpec{PortID: &vm.ID}))(t); up.FixedIPAddress != "10.0.0.4" {
		t.Errorf("associated to %s", up.FixedIPAddress)
	}
}

// routerPortsOf returns the ports of router id with owner, in creation order.
func routerPortsOf(t *testing.T, s *db.Store, id, owner string) []topology.Port {
	t.Helper()
	var out []topology.Port
	for _, p := range ok(s.ListPorts(context.Background()))(t) {
		if p.DeviceID == id && p.DeviceOwner == owner {
			out = append(out, p)
		}
	}
	return out
}

func subnetsOf(p *topology.Port) []string {
	out := make([]string, len(p.FixedIPs))
	for i, f := range p.FixedIPs {
		out[i] = f.SubnetID
	}
	return out
}

// As in Neutron, a router has one interface port per network for its IPv6 subnets: adding
// an IPv6 subnet adds its gateway to the port that has an IPv6 address there, and removing
// it by subnet takes that address only, the port going with its last one; IPv4 subnets
// always get a port of their own. The SNAT ports follow (Neutron's DVR): one per IPv4
// subnet, one per network for the IPv6 subnets.
func TestRouterInterfaceIPv6Ports(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	ext := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p", External: ptr(true)}))(t).ID
	ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: ext, CIDR: ptr("172.24.4.0/24")}))(t)
	gw := &db.GatewaySpec{NetworkID: ext}
	r := ok(s.CreateRouter(ctx, db.RouterSpec{ProjectID: "p", Gateway: &gw}))(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID
	v4 := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n, CIDR: ptr("10.0.0.0/24")}))(t)
	v4b := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n, CIDR: ptr("10.0.1.0/24")}))(t)
	slaac := ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8::/64", ptr(topology.IPv6SLAAC), ptr(topology.IPv6SLAAC))))(t)
	stateful := ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8:1::/64", ptr(topology.IPv6DHCPStateful), ptr(topology.IPv6DHCPStateful))))(t)

	qr4 := ok(s.AddRouterInterface(ctx, r.ID, v4.ID, ""))(t)
	qr6 := ok(s.AddRouterInterface(ctx, r.ID, slaac.ID, ""))(t)
	if qr6.PortID == qr4.PortID {
		t.Fatal("the first IPv6 subnet joined the IPv4 interface's port")
	}
	again := ok(s.AddRouterInterface(ctx, r.ID, stateful.ID, ""))(t)
	if again.PortID != qr6.PortID || again.SubnetID != stateful.ID || !slices.Equal(again.SubnetIDs, []string{stateful.ID}) {
		t.Errorf("second IPv6 subnet: %+v, want port %s, subnet_ids [%s]", again, qr6.PortID, stateful.ID)
	}
	want6 := []topology.FixedIP{{SubnetID: slaac.ID, IPAddress: "2001:db8::1"}, {SubnetID: stateful.ID, IPAddress: "2001:db8:1::1"}}
	if p := ok(s.GetPort(ctx, qr6.PortID))(t); !slices.Equal(p.FixedIPs, want6) {
		t.Errorf("IPv6 interface port %v, want %v", p.FixedIPs, want6)
	}
	if qr4b := ok(s.AddRouterInterface(ctx, r.ID, v4b.ID, ""))(t); qr4b.PortID == qr4.PortID || qr4b.PortID == qr6.PortID {
		t.Errorf("a second IPv4 subnet shares port %s", qr4b.PortID)
	}
	if got := len(routerPortsOf(t, s, r.ID, topology.OwnerRouterInterfaceDistributed)); got != 3 {
		t.Errorf("%d interface ports, want 3", got)
	}
	snat := func() [][]string {
		t.Helper()
		var out [][]string
		for _, p := range routerPortsOf(t, s, r.ID, topology.OwnerRouterCentralizedSNAT) {
			ids := subnetsOf(&p)
			slices.Sort(ids)
			out = append(out, ids)
		}
		slices.SortFunc(out, func(a, b []string) int { return strings.Compare(strings.Join(a, ","), strings.Join(b, ",")) })
		return out
	}
	sorted := func(xs ...string) []string { slices.Sort(xs); return xs }
	wantSNAT := [][]string{{v4.ID}, {v4b.ID}, sorted(slaac.ID, stateful.ID)}
	slices.SortFunc(wantSNAT, func(a, b []string) int { return strings.Compare(strings.Join(a, ","), strings.Join(b, ",")) })
	if got := snat(); !slices.EqualFunc(got, wantSNAT, slices.Equal) {
		t.Errorf("SNAT ports on %v, want %v", got, wantSNAT)
	}

	// The same subnet again: refused, nothing changes.
	rev := revision(t, s)
	_, err := s.AddRouterInterface(ctx, r.ID, stateful.ID, "")
	wantErrType(t, err, "BadRequest")
	if e, _ := db.AsError(err); e.Message != "Bad router request: Router already has a port on subnet "+stateful.ID+"." {
		t.Errorf("message %q", e.Message)
	}
	// By port with a subnet the port is not on: Neutron's SubnetMismatchForPort.
	_, err = s.RemoveRouterInterface(ctx, r.ID, v4.ID, qr6.PortID)
	wantErrType(t, err, "SubnetMismatchForPort")
	if e, _ := db.AsError(err); e.Message != "Subnet on port "+qr6.PortID+" does not match the requested subnet "+v4.ID+"." {
		t.Errorf("message %q", e.Message)
	}
	if got := revision(t, s); got != rev {
		t.Errorf("refused requests: revision %d -> %d", rev, got)
	}

	// Removing the SLAAC subnet takes its address only; the SNAT port follows.
	out := ok(s.RemoveRouterInterface(ctx, r.ID, slaac.ID, ""))(t)
	if out.PortID != qr6.PortID || !slices.Equal(out.SubnetIDs, []string{slaac.ID}) {
		t.Errorf("removed %+v", out)
	}
	if p := ok(s.GetPort(ctx, qr6.PortID))(t); !slices.Equal(p.FixedIPs, want6[1:]) {
		t.Errorf("IPv6 interface port after the removal %v, want %v", p.FixedIPs, want6[1:])
	}
	wantSNAT = [][]string{{v4.ID}, {v4b.ID}, {stateful.ID}}
	slices.SortFunc(wantSNAT, func(a, b []string) int { return strings.Compare(strings.Join(a, ","), strings.Join(b, ",")) })
	if got := snat(); !slices.EqualFunc(got, wantSNAT, slices.Equal) {
		t.Errorf("SNAT ports on %v, want %v", got, wantSNAT)
	}
	// Back again, to the same port, with the same address.
	if back := ok(s.AddRouterInterface(ctx, r.ID, slaac.ID, ""))(t); back.PortID != qr6.PortID {
		t.Errorf("re-added to port %s, want %s", back.PortID, qr6.PortID)
	}
	// Its addresses may change within their subnets, but none may go.
	moved := []db.FixedIPSpec{{IPAddress: "2001:db8:1::1"}, {SubnetID: slaac.ID, IPAddress: "2001:db8::99"}}
	if p := ok(s.UpdatePort(ctx, qr6.PortID, db.PortSpec{FixedIPs: &moved}))(t); !slices.Contains(addrsOf(p), "2001:db8::99") {
		t.Errorf("readdressed: %v", p.FixedIPs)
	}
	_, err = s.UpdatePort(ctx, qr6.PortID, db.PortSpec{FixedIPs: &[]db.FixedIPSpec{{IPAddress: "2001:db8:1::1"}}})
	wantErrType(t, err, "BadRequest")
	// By port: the whole port goes, with every subnet it holds.
	out = ok(s.RemoveRouterInterface(ctx, r.ID, "", qr6.PortID))(t)
	if out.PortID != qr6.PortID || !slices.Equal(out.SubnetIDs, []string{stateful.ID, slaac.ID}) || out.SubnetID != stateful.ID {
		t.Errorf("removed by port %+v", out)
	}
	if _, err := s.GetPort(ctx, qr6.PortID); !db.IsNotFound(err) {
		t.Errorf("IPv6 interface port after its removal: %v", err)
	}
	wantSNAT = [][]string{{v4.ID}, {v4b.ID}}
	slices.SortFunc(wantSNAT, func(a, b []string) int { return strings.Compare(strings.Join(a, ","), strings.Join(b, ",")) })
	if got := snat(); !slices.EqualFunc(got, wantSNAT, slices.Equal) {
		t.Errorf("SNAT ports on %v, want %v", got, wantSNAT)
	}
	// The gateway addresses of the subnets are free for the next interface.
	ok(s.AddRouterInterface(ctx, r.ID, stateful.ID, ""))(t)
	_, err = s.RemoveRouterInterface(ctx, r.ID, slaac.ID, "")
	wantErrType(t, err, "RouterInterfaceNotFoundForSubnet")
	_, err = s.RemoveRouterInterface(ctx, r.ID, "00000000-0000-0000-0000-000000000000", "")
	wantErrType(t, err, "SubnetNotFound")
}

// A port given as an interface may carry several addresses, IPv4 and IPv6 or several
// IPv6, but one IPv4 at most, and one at least, with Neutron's messages; its subnets may
// overlap none of the router's, the external network's included, nor may a new gateway's.
func TestRouterInterfaceByPortIPv6(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	ext := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p", External: ptr(true)}))(t).ID
	extSub := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: ext, CIDR: ptr("172.24.4.0/24")}))(t)
	gw := &db.GatewaySpec{NetworkID: ext}
	r := ok(s.CreateRouter(ctx, db.RouterSpec{ProjectID: "p", Gateway: &gw}))(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID
	v4 := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n, CIDR: ptr("10.0.0.0/24")}))(t)
	v4b := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n, CIDR: ptr("10.0.1.0/24")}))(t)
	a := ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8::/64", nil, nil)))(t)
	b := ok(s.CreateSubnet(ctx, v6Subnet(n, "2001:db8:1::/64", nil, nil)))(t)
	port := func(ips ...db.FixedIPSpec) *topology.Port {
		t.Helper()
		return ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n, FixedIPs: &ips}))(t)
	}
	refused := func(p *topology.Port, typ, msg string) {
		t.Helper()
		rev := revision(t, s)
		_, err := s.AddRouterInterface(ctx, r.ID, "", p.ID)
		wantErrType(t, err, typ)
		if e, _ := db.AsError(err); e.Message != msg {
			t.Errorf("message %q, want %q", e.Message, msg)
		}
		if got := revision(t, s); got != rev {
			t.Errorf("refused port: revision %d -> %d", rev, got)
		}
	}
	two4 := port(db.FixedIPSpec{SubnetID: v4.ID}, db.FixedIPSpec{SubnetID: v4b.ID})
	refused(two4, "BadRequest", "Bad router request: Cannot have multiple IPv4 subnets on router port.")
	empty := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n, FixedIPs: &[]db.FixedIPSpec{}}))(t)
	refused(empty, "BadRequest", "Bad router request: Router port must have at least one fixed IP.")

	dual := port(db.FixedIPSpec{SubnetID: v4.ID}, db.FixedIPSpec{SubnetID: a.ID})
	ri := ok(s.AddRouterInterface(ctx, r.ID, "", dual.ID))(t)
	if ri.PortID != dual.ID || ri.SubnetID != a.ID || !slices.Equal(ri.SubnetIDs, []string{v4.ID, a.ID}) {
		t.Errorf("dual-stack port attached: %+v", ri)
	}
	// A second IPv6 port on the network: Neutron's rule of one IPv6 port per network does
	// not hold for distributed routers' ports.
	six := port(db.FixedIPSpec{SubnetID: b.ID})
	if ri := ok(s.AddRouterInterface(ctx, r.ID, "", six.ID))(t); !slices.Equal(ri.SubnetIDs, []string{b.ID}) {
		t.Errorf("IPv6 port attached: %+v", ri)
	}
	// A subnet the router is on already, or overlapping one of its own or of its
	// gateway's network.
	onA := port(db.FixedIPSpec{SubnetID: a.ID})
	refused(onA, "BadRequest", "Bad router request: Router already has a port on subnet "+a.ID+".")
	n2 := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID
	over := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n2, CIDR: ptr("10.0.0.0/25")}))(t)
	p2 := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n2}))(t)
	refused(p2, "BadRequest", "Bad router request: Cidr 10.0.0.0/25 of subnet "+over.ID+" overlaps with cidr 10.0.0.0/24 of subnet "+v4.ID+".")
	n3 := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID
	nearExt := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n3, CIDR: ptr("172.24.4.128/25")}))(t)
	rev := revision(t, s)
	_, err := s.AddRouterInterface(ctx, r.ID, nearExt.ID, "")
	wantErrType(t, err, "BadRequest")
	if e, _ := db.AsError(err); e.Message != "Bad router request: Cidr 172.24.4.128/25 of subnet "+nearExt.ID+" overlaps with cidr 172.24.4.0/24 of subnet "+extSub.ID+"." {
		t.Errorf("message %q", e.Message)
	}
	if got := revision(t, s); got != rev {
		t.Errorf("refused subnet: revision %d -> %d", rev, got)
	}
	// The same check the other way: a gateway on an external network with a subnet
	// overlapping an interface's.
	ext2 := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p", External: ptr(true)}))(t).ID
	wide := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: ext2, CIDR: ptr("10.0.0.0/16")}))(t)
	gw2 := &db.GatewaySpec{NetworkID: ext2}
	rev = revision(t, s)
	_, err = s.UpdateRouter(ctx, r.ID, db.RouterSpec{Gateway: &gw2})
	wantErrType(t, err, "BadRequest")
	if e, _ := db.AsError(err); e.Message != "Bad router request: Cidr 10.0.0.0/16 of subnet "+wide.ID+" overlaps with cidr 10.0.0.0/24 of subnet "+v4.ID+"." {
		t.Errorf("message %q", e.Message)
	}
	if got := revision(t, s); got != rev {
		t.Errorf("refused gateway: revision %d -> %d", rev, got)
	}
	// The dual-stack port's SNAT ports: one for its IPv4 subnet, one for the network's
	// IPv6 subnets.
	var got [][]string
	for _, p := range routerPortsOf(t, s, r.ID, topology.OwnerRouterCentralizedSNAT) {
		ids := subnetsOf(&p)
		slices.Sort(ids)
		got = append(got, ids)
	}
	v6 := []string{a.ID, b.ID}
	slices.Sort(v6)
	if len(got) != 2 || !slices.ContainsFunc(got, func(x []string) bool { return slices.Equal(x, []string{v4.ID}) }) ||
		!slices.ContainsFunc(got, func(x []string) bool { return slices.Equal(x, v6) }) {
		t.Errorf("SNAT ports on %v", got)
	}
	// Removed by subnet, the IPv4 subnet takes its address from the dual-stack port.
	ok(s.RemoveRouterInterface(ctx, r.ID, v4.ID, ""))(t)
	if p := ok(s.GetPort(ctx, dual.ID))(t); !slices.Equal(subnetsOf(p), []string{a.ID}) {
		t.Errorf("dual-stack port after its IPv4 subnet left: %v", p.FixedIPs)
	}
}

// An IPv6 subnet created on an external network gives the routers' gateways there an
// address, as Neutron's update_router_gw_ports: a pool address unless the gateway has a
// stateful IPv6 address (or two stateful addresses) already, its EUI-64 address on an
// auto-address subnet; an IPv4 subnet gives none. The router shows its port's addresses,
// and loses the EUI-64 one when its subnet goes.
func TestGatewayGainsIPv6Address(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	ext := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p", External: ptr(true)}))(t).ID
	ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: ext, CIDR: ptr("172.24.4.0/24")}))(t)
	gw := &db.GatewaySpec{NetworkID: ext}
	r := ok(s.CreateRouter(ctx, db.RouterSpec{ProjectID: "p", Gateway: &gw}))(t)
	gateway := func(id string) []string {
		t.Helper()
		r := ok(s.GetRouter(ctx, id))(t)
		var got []string
		for _, f := range r.Gateway.ExternalFixedIPs {
			got = append(got, f.IPAddress)
		}
		if p := ok(s.GetPort(ctx, r.Gateway.PortID))(t); !slices.Equal(addrsOf(p), got) {
			t.Errorf("router %s shows %v, its gateway port has %v", id, got, addrsOf(p))
		}
		return got
	}
	rev := ok(s.GetRouter(ctx, r.ID))(t).RevisionNumber
	ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: ext, CIDR: ptr("172.24.5.0/24")}))(t)
	if got := gateway(r.ID); !slices.Equal(got, []string{"172.24.4.3"}) {
		t.Errorf("after an IPv4 subnet: %v", got)
	}
	plain := ok(s.CreateSubnet(ctx, v6Subnet(ext, "2001:db8:ff::/64", nil, nil)))(t)
	if got := gateway(r.ID); !slices.Equal(got, []string{"172.24.4.3", "2001:db8:ff::2"}) {
		t.Errorf("after a stateful IPv6 subnet: %v", got)
	}
	if now := ok(s.GetRouter(ctx, r.ID))(t).RevisionNumber; now <= rev {
		t.Errorf("router revision %d -> %d", rev, now)
	}
	ok(s.CreateSubnet(ctx, v6Subnet(ext, "2001:db8:fe::/64", nil, ptr(topology.IPv6DHCPStateful))))(t)
	if got := gateway(r.ID); !slices.Equal(got, []string{"172.24.4.3", "2001:db8:ff::2"}) {
		t.Errorf("after a second stateful IPv6 subnet: %v", got)
	}
	p := ok(s.GetPort(ctx, ok(s.GetRouter(ctx, r.ID))(t).Gateway.PortID))(t)
	eui := ok(s.CreateSubnet(ctx, v6Subnet(ext, "2001:db8:fd::/64", ptr(topology.IPv6SLAAC), ptr(topology.IPv6SLAAC))))(t)
	if got := gateway(r.ID); !slices.Equal(got, []string{"172.24.4.3", "2001:db8:ff::2", eui64Of(t, "2001:db8:fd::", p.MACAddress)}) {
		t.Errorf("after a SLAAC subnet: %v (MAC %s)", got, p.MACAddress)
	}
	// In bulk, on a network whose router has only IPv4.
	ext2 := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p", External: ptr(true)}))(t).ID
	ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: ext2, CIDR: ptr("172.25.0.0/24")}))(t)
	gw2 := &db.GatewaySpec{NetworkID: ext2}
	r2 := ok(s.CreateRouter(ctx, db.RouterSpec{ProjectID: "p", Gateway: &gw2}))(t)
	ok(s.CreateSubnets(ctx, []db.SubnetSpec{v6Subnet(ext2, "2001:db8:2::/64", nil, ptr(topology.IPv6DHCPStateful))}))(t)
	if got := gateway(r2.ID); !slices.Equal(got, []string{"172.25.0.3", "2001:db8:2::2"}) {
		t.Errorf("after a bulk IPv6 subnet: %v", got)
	}
	// The SLAAC subnet goes, and its address with it; a stateful one is in use.
	if err := s.DeleteSubnet(ctx, eui.ID); err != nil {
		t.Fatal(err)
	}
	if got := gateway(r.ID); !slices.Equal(got, []string{"172.24.4.3", "2001:db8:ff::2"}) {
		t.Errorf("after the SLAAC subnet went: %v", got)
	}
	wantErrType(t, s.DeleteSubnet(ctx, plain.ID), "SubnetInUse")
}

// eui64Of is the modified EUI-64 address of mac in the /64 of prefix (RFC 4291).
func eui64Of(t *testing.T, prefix, mac string) string {
	t.Helper()
	m := ok(net.ParseMAC(mac))(t)
	b := netip.MustParseAddr(prefix).As16()
	copy(b[8:], []byte{m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]})
	return netip.AddrFrom16(b).String()
}
