package db

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
)

// IPv6 address management. IPv6 addresses live in ip6_allocations and ip6_free_ranges
// (migration 010), as inet; the range logic (subtract, poolRanges) is the IPv4 one's, over
// netip.Addr where IPv4 keeps its uint32 arithmetic.

// addrRange is an inclusive range of IPv6 addresses.
type addrRange = addrSpan[netip.Addr]

var order6 = order[netip.Addr]{cmp: netip.Addr.Compare, next: netip.Addr.Next, prev: netip.Addr.Prev, parse: parseAddr}

// parseAddr parses an address of either version (an IPv4-mapped IPv6 address stays
// IPv6, as in Neutron).
func parseAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a, true
}

// lastAddr is the last address of prefix p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// eui64 is the address on IPv6 prefix p of the interface with MAC mac, by modified EUI-64
// (ofproto.EUI64, Neutron's get_ipv6_addr_by_EUI64).
func eui64(p netip.Prefix, mac string) (netip.Addr, error) {
	m, err := net.ParseMAC(mac)
	if err != nil || len(m) != 6 {
		return netip.Addr{}, invalid("'%s' is not a valid MAC address", mac)
	}
	return ofproto.EUI64(p, m), nil
}

// subnetEUI64 is the EUI-64 address of the port with MAC mac on auto-address subnet sn.
func subnetEUI64(sn *topology.Subnet, mac string) (netip.Addr, error) {
	p, err := netip.ParsePrefix(sn.CIDR)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("subnet %s: bad cidr %q: %w", sn.ID, sn.CIDR, err)
	}
	return eui64(p, mac)
}

// resetFreeRanges6 is resetFreeRanges for an IPv6 subnet.
func (w *wtx) resetFreeRanges6(ctx context.Context, sn *topology.Subnet) error {
	rows, err := w.query(ctx, `SELECT host(ip) FROM ip6_allocations WHERE subnet_id = $1`, sn.ID)
	if err != nil {
		return fmt.Errorf("read allocations of subnet %s: %w", sn.ID, err)
	}
	ips, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read allocations of subnet %s: %w", sn.ID, err)
	}
	holes := make([]netip.Addr, 0, len(ips)+1)
	for _, s := range ips {
		if a, ok := parseAddr(s); ok {
			holes = append(holes, a)
		}
	}
	if gw, ok := parseAddr(sn.GatewayIP); ok {
		holes = append(holes, gw)
	}
	w.exec(`DELETE FROM ip6_free_ranges WHERE subnet_id = $1`, sn.ID)
	var first, last []string
	for _, r := range subtract(order6, poolRanges(order6, sn.AllocationPools), holes) {
		first, last = append(first, r.first.String()), append(last, r.last.String())
	}
	if len(first) > 0 {
		w.exec(`INSERT INTO ip6_free_ranges (subnet_id, first, last) SELECT $1, f, l FROM unnest($2::inet[], $3::inet[]) AS x(f, l)`,
			sn.ID, first, last)
	}
	return nil
}

// allocateAny6 takes the lowest free pool address of an IPv6 subnet for port. ok is false
// when the subnet is exhausted.
func (w *wtx) allocateAny6(ctx context.Context, subnetID, portID string) (ip netip.Addr, ok bool, err error) {
	var first string
	err = w.queryRow(ctx, `
WITH r AS (SELECT id, first, last FROM ip6_free_ranges WHERE subnet_id = $1 ORDER BY first LIMIT 1),
u AS (UPDATE ip6_free_ranges f SET first = r.first + 1 FROM r WHERE f.id = r.id AND r.first < r.last RETURNING f.id),
d AS (DELETE FROM ip6_free_ranges f USING r WHERE f.id = r.id AND r.first = r.last RETURNING f.id)
SELECT host(first) FROM r`, subnetID).Scan(&first)
	if errors.Is(err, pgx.ErrNoRows) {
		return netip.Addr{}, false, nil
	}
	if err != nil {
		return netip.Addr{}, false, fmt.Errorf("allocate address on subnet %s: %w", subnetID, err)
	}
	ip, ok = parseAddr(first)
	if !ok {
		return netip.Addr{}, false, fmt.Errorf("allocate address on subnet %s: bad address %q", subnetID, first)
	}
	w.exec(`INSERT INTO ip6_allocations (subnet_id, ip, port_id) VALUES ($1, $2::inet, $3)`, subnetID, ip.String(), portID)
	return ip, true, nil
}

// allocateSpecific6 takes a given address of an IPv6 subnet for port: 409 if it is taken.
func (w *wtx) allocateSpecific6(ctx context.Context, sn *topology.Subnet, ip netip.Addr, portID string) error {
	var taken bool
	var rid *int64
	var rfirst, rlast *string
	err := w.queryRow(ctx, `
SELECT EXISTS (SELECT 1 FROM ip6_allocations WHERE subnet_id = $1 AND ip = $2::inet),
       r.id, host(r.first), host(r.last)
FROM (SELECT 1) one
LEFT JOIN ip6_free_ranges r ON r.subnet_id = $1 AND r.first <= $2::inet AND r.last >= $2::inet`, sn.ID, ip.String()).Scan(&taken, &rid, &rfirst, &rlast)
	if err != nil {
		return fmt.Errorf("check address %s on subnet %s: %w", ip, sn.ID, err)
	}
	if taken {
		return conflict("IpAddressAlreadyAllocated", "IP address %s already allocated in subnet %s", ip, sn.ID)
	}
	if rid != nil {
		w.exec(`DELETE FROM ip6_free_ranges WHERE id = $1`, *rid)
		if *rfirst != ip.String() {
			w.exec(`INSERT INTO ip6_free_ranges (subnet_id, first, last) VALUES ($1, $2::inet, $3::inet)`, sn.ID, *rfirst, ip.Prev().String())
		}
		if *rlast != ip.String() {
			w.exec(`INSERT INTO ip6_free_ranges (subnet_id, first, last) VALUES ($1, $2::inet, $3::inet)`, sn.ID, ip.Next().String(), *rlast)
		}
	}
	w.exec(`INSERT INTO ip6_allocations (subnet_id, ip, port_id) VALUES ($1, $2::inet, $3)`, sn.ID, ip.String(), portID)
	return nil
}

// releaseIP6 frees an address of an IPv6 subnet (back to the free list when in a pool).
func (w *wtx) releaseIP6(sn *topology.Subnet, ip netip.Addr) {
	w.exec(`DELETE FROM ip6_allocations WHERE subnet_id = $1 AND ip = $2::inet`, sn.ID, ip.String())
	if gw, ok := parseAddr(sn.GatewayIP); ok && gw == ip {
		return
	}
	for _, r := range poolRanges(order6, sn.AllocationPools) {
		if !ip.Less(r.first) && !r.last.Less(ip) {
			w.exec(`INSERT INTO ip6_free_ranges (subnet_id, first, last) VALUES ($1, $2::inet, $2::inet)`, sn.ID, ip.String())
			return
		}
	}
}

// releaseAddr frees address ip (text) of subnet sn, of either version.
func (w *wtx) releaseAddr(sn *topology.Subnet, ip string) {
	if sn.IsIPv4() {
		v, _ := parseIPv4(ip)
		w.releaseIP(sn, v)
		return
	}
	if a, ok := parseAddr(ip); ok {
		w.releaseIP6(sn, a)
	}
}

// addAutoAddresses gives the ports of the network of sn, a new subnet, their EUI-64
// address on it when it is an auto-address subnet, as Neutron's
// add_auto_addrs_on_network_ports: all but router ports and the managed DHCP port, whose
// addresses syncDHCPPort keeps.
func (w *wtx) addAutoAddresses(ctx context.Context, sn *topology.Subnet) error {
	if !sn.IsAutoAddress() {
		return nil
	}
	owners := make([]string, 0, len(routerAddressOwners))
	for o := range routerAddressOwners {
		owners = append(owners, o)
	}
	ports, err := objs[topology.Port](ctx, w.query, `SELECT obj FROM ports WHERE network_id = $1 AND device_owner <> ALL($2) AND device_id <> $3
ORDER BY id`, sn.NetworkID, owners, topology.DHCPDeviceID(sn.NetworkID))
	if err != nil {
		return fmt.Errorf("load ports of network %s: %w", sn.NetworkID, err)
	}
	for i := range ports {
		p := &ports[i]
		ip, err := subnetEUI64(sn, p.MACAddress)
		if err != nil {
			return err
		}
		if err := w.allocateSpecific6(ctx, sn, ip, p.ID); err != nil {
			return err
		}
		p.FixedIPs = append(p.FixedIPs, topology.FixedIP{SubnetID: sn.ID, IPAddress: ip.String()})
		w.savePort(p)
	}
	return nil
}
