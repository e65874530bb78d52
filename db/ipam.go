package db

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
)

// addrSpan is an inclusive range of addresses of one version: IPv4 as integers (ipRange, the
// path tuned for scale), IPv6 as netip.Addr (addrRange, ipam6.go).
type addrSpan[A any] struct{ first, last A }

// ipRange is an inclusive range of IPv4 addresses as integers.
type ipRange = addrSpan[uint32]

// order is how addrSpan functions compare and step addresses of type A.
type order[A any] struct {
	cmp        func(a, b A) int
	next, prev func(A) A
	parse      func(string) (A, bool)
}

var order4 = order[uint32]{cmp: cmp.Compare[uint32], next: func(a uint32) uint32 { return a + 1 },
	prev: func(a uint32) uint32 { return a - 1 }, parse: parseIPv4}

func parseIPv4(s string) (uint32, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return 0, false
	}
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), true
}

func ipString(v uint32) string {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}).String()
}

// cidr4 is a parsed IPv4 network.
type cidr4 struct {
	base uint32
	bits int
}

func (c cidr4) first() uint32 { return c.base }
func (c cidr4) last() uint32  { return c.base | (1<<(32-c.bits) - 1) }
func (c cidr4) contains(ip uint32) bool {
	return ip >= c.first() && ip <= c.last()
}
func (c cidr4) String() string { return fmt.Sprintf("%s/%d", ipString(c.base), c.bits) }

// parseCIDR4 parses an IPv4 CIDR in canonical form (no host bits set).
func parseCIDR4(s string) (cidr4, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return cidr4{}, invalid("'%s' is not a valid IPv4 subnet", s)
	}
	if p.Masked() != p {
		return cidr4{}, invalid("'%s' isn't a recognized IP subnet cidr, '%s' is recommended", s, p.Masked())
	}
	if p.Bits() > 30 {
		return cidr4{}, invalid("'%s' is too small: a subnet needs at least 2 usable addresses", s)
	}
	base, _ := parseIPv4(p.Addr().String())
	return cidr4{base: base, bits: p.Bits()}, nil
}

// subtract returns rs (sorted, disjoint) minus the addresses in holes, as sorted ranges.
func subtract[A any](o order[A], rs []addrSpan[A], holes []A) []addrSpan[A] {
	slices.SortFunc(holes, o.cmp)
	var out []addrSpan[A]
	for _, r := range rs {
		cur, done := r.first, false
		for _, h := range holes {
			if o.cmp(h, cur) < 0 || o.cmp(h, r.last) > 0 {
				continue
			}
			if o.cmp(h, cur) > 0 {
				out = append(out, addrSpan[A]{cur, o.prev(h)})
			}
			if o.cmp(h, r.last) == 0 {
				done = true
				break
			}
			cur = o.next(h)
		}
		if !done && o.cmp(cur, r.last) <= 0 {
			out = append(out, addrSpan[A]{cur, r.last})
		}
	}
	return out
}

// poolRanges converts validated pools to sorted ranges.
func poolRanges[A any](o order[A], pools []topology.AllocationPool) []addrSpan[A] {
	out := make([]addrSpan[A], 0, len(pools))
	for _, p := range pools {
		a, _ := o.parse(p.Start)
		b, _ := o.parse(p.End)
		out = append(out, addrSpan[A]{a, b})
	}
	slices.SortFunc(out, func(x, y addrSpan[A]) int { return o.cmp(x.first, y.first) })
	return out
}

func inRanges(rs []ipRange, ip uint32) bool {
	for _, r := range rs {
		if ip >= r.first && ip <= r.last {
			return true
		}
	}
	return false
}

// resetFreeRanges rewrites a subnet's free list: its pools minus the gateway and every
// allocated address.
func (w *wtx) resetFreeRanges(ctx context.Context, sn *topology.Subnet) error {
	if !sn.IsIPv4() {
		return w.resetFreeRanges6(ctx, sn)
	}
	rows, err := w.query(ctx, `SELECT ip FROM ip_allocations WHERE subnet_id = $1`, sn.ID)
	if err != nil {
		return fmt.Errorf("read allocations of subnet %s: %w", sn.ID, err)
	}
	ips, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("read allocations of subnet %s: %w", sn.ID, err)
	}
	holes := make([]uint32, 0, len(ips)+1)
	for _, ip := range ips {
		holes = append(holes, uint32(ip))
	}
	if gw, ok := parseIPv4(sn.GatewayIP); ok {
		holes = append(holes, gw)
	}
	w.exec(`DELETE FROM ip_free_ranges WHERE subnet_id = $1`, sn.ID)
	for _, r := range subtract(order4, poolRanges(order4, sn.AllocationPools), holes) {
		w.exec(`INSERT INTO ip_free_ranges (subnet_id, first, last) VALUES ($1, $2, $3)`, sn.ID, int64(r.first), int64(r.last))
	}
	return nil
}

// allocateAny takes the lowest free pool address of a subnet for port. ok is false when
// the subnet is exhausted.
func (w *wtx) allocateAny(ctx context.Context, subnetID, portID string) (ip uint32, ok bool, err error) {
	var first int64
	err = w.queryRow(ctx, `
WITH r AS (SELECT id, first, last FROM ip_free_ranges WHERE subnet_id = $1 ORDER BY first LIMIT 1),
u AS (UPDATE ip_free_ranges f SET first = r.first + 1 FROM r WHERE f.id = r.id AND r.first < r.last RETURNING f.id),
d AS (DELETE FROM ip_free_ranges f USING r WHERE f.id = r.id AND r.first = r.last RETURNING f.id)
SELECT first FROM r`, subnetID).Scan(&first)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("allocate address on subnet %s: %w", subnetID, err)
	}
	w.exec(`INSERT INTO ip_allocations (subnet_id, ip, port_id) VALUES ($1, $2, $3)`, subnetID, first, portID)
	return uint32(first), true, nil
}

// allocateSpecific takes a given address of a subnet for port: 409 if it is taken.
func (w *wtx) allocateSpecific(ctx context.Context, sn *topology.Subnet, ip uint32, portID string) error {
	var taken bool
	var rid, rfirst, rlast *int64
	err := w.queryRow(ctx, `
SELECT EXISTS (SELECT 1 FROM ip_allocations WHERE subnet_id = $1 AND ip = $2),
       r.id, r.first, r.last
FROM (SELECT 1) one
LEFT JOIN ip_free_ranges r ON r.subnet_id = $1 AND r.first <= $2 AND r.last >= $2`, sn.ID, int64(ip)).Scan(&taken, &rid, &rfirst, &rlast)
	if err != nil {
		return fmt.Errorf("check address %s on subnet %s: %w", ipString(ip), sn.ID, err)
	}
	if taken {
		return conflict("IpAddressAlreadyAllocated",
			"IP address %s already allocated in subnet %s", ipString(ip), sn.ID)
	}
	if rid != nil {
		w.exec(`DELETE FROM ip_free_ranges WHERE id = $1`, *rid)
		if *rfirst < int64(ip) {
			w.exec(`INSERT INTO ip_free_ranges (subnet_id, first, last) VALUES ($1, $2, $3)`, sn.ID, *rfirst, int64(ip)-1)
		}
		if int64(ip) < *rlast {
			w.exec(`INSERT INTO ip_free_ranges (subnet_id, first, last) VALUES ($1, $2, $3)`, sn.ID, int64(ip)+1, *rlast)
		}
	}
	w.exec(`INSERT INTO ip_allocations (subnet_id, ip, port_id) VALUES ($1, $2, $3)`, sn.ID, int64(ip), portID)
	return nil
}

// releaseIP frees an address of a subnet (back to the free list when in a pool).
func (w *wtx) releaseIP(sn *topology.Subnet, ip uint32) {
	w.exec(`DELETE FROM ip_allocations WHERE subnet_id = $1 AND ip = $2`, sn.ID, int64(ip))
	gw, hasGW := parseIPv4(sn.GatewayIP)
	if inRanges(poolRanges(order4, sn.AllocationPools), ip) && !(hasGW && gw == ip) {
		w.exec(`INSERT INTO ip_free_ranges (subnet_id, first, last) VALUES ($1, $2, $2)`, sn.ID, int64(ip))
	}
}

// bulkIPAM allocates a batch's IPv4 addresses in memory from the free ranges and the taken
// addresses loaded once, then writes the subnets' free lists back. IPv6 addresses, off the
// tuned path, are allocated by the write itself, one at a time.
type bulkIPAM struct {
	w       *wtx
	free    map[string][]ipRange       // subnet -> sorted free ranges
	taken   map[string]map[uint32]bool // subnet -> addresses taken in the store (of those asked for) or by the batch
	touched map[string]bool            // subnets whose free list changed
	rows    struct {
		sub, port []string
		ip        []int64
	}
}

// loadBulkIPAM loads the free ranges of every subnet of the batch's networks, and which
// of the explicitly asked addresses are taken.
func (w *wtx) loadBulkIPAM(ctx context.Context, ports []topology.Port, specs []PortSpec, nets map[string]*netWithSubnets) (*bulkIPAM, error) {
	b := &bulkIPAM{w: w, free: map[string][]ipRange{}, taken: map[string]map[uint32]bool{}, touched: map[string]bool{}}
	var subIDs []string
	for _, ns := range nets {
		for _, sn := range ns.subnets {
			subIDs = append(subIDs, sn.ID)
		}
	}
	if len(subIDs) == 0 {
		return b, nil
	}
	rows, err := w.query(ctx, `SELECT subnet_id, first, last FROM ip_free_ranges WHERE subnet_id = ANY($1) ORDER BY subnet_id, first`, subIDs)
	if err != nil {
		return nil, fmt.Errorf("read free addresses: %w", err)
	}
	var sub string
	var first, last int64
	if _, err := pgx.ForEachRow(rows, []any{&sub, &first, &last}, func() error {
		b.free[sub] = append(b.free[sub], ipRange{uint32(first), uint32(last)})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read free addresses: %w", err)
	}
	// Explicit addresses: resolve their subnet as allocateIPs will, ask which are taken.
	var qSub []string
	var qIP []int64
	for i := range ports {
		if specs[i].FixedIPs == nil {
			continue
		}
		subnets := nets[ports[i].NetworkID].subnets
		for _, f := range *specs[i].FixedIPs {
			ip, ok := parseIPv4(f.IPAddress)
			if !ok {
				continue
			}
			for _, sn := range subnets {
				if !sn.IsIPv4() {
					continue
				}
				c, _ := parseCIDR4(sn.CIDR)
				if (f.SubnetID == "" || f.SubnetID == sn.ID) && c.contains(ip) {
					qSub, qIP = append(qSub, sn.ID), append(qIP, int64(ip))
					break
				}
			}
		}
	}
	if len(qSub) > 0 {
		rows, err := w.query(ctx, `SELECT subnet_id, ip FROM ip_allocations
WHERE (subnet_id, ip) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))`, qSub, qIP)
		if err != nil {
			return nil, fmt.Errorf("check addresses: %w", err)
		}
		var ip int64
		if _, err := pgx.ForEachRow(rows, []any{&sub, &ip}, func() error {
			b.take(sub, uint32(ip))
			return nil
		}); err != nil {
			return nil, fmt.Errorf("check addresses: %w", err)
		}
	}
	return b, nil
}

func (b *bulkIPAM) take(sub string, ip uint32) {
	m := b.taken[sub]
	if m == nil {
		m = map[uint32]bool{}
		b.taken[sub] = m
	}
	m[ip] = true
}

func (b *bulkIPAM) record(sub string, ip uint32, port string) {
	b.take(sub, ip)
	b.rows.sub, b.rows.ip, b.rows.port = append(b.rows.sub, sub), append(b.rows.ip, int64(ip)), append(b.rows.port, port)
}

// allocateAny takes the lowest free address of a subnet (addressPool).
func (b *bulkIPAM) allocateAny(_ context.Context, sub, port string) (uint32, bool, error) {
	rs := b.free[sub]
	if len(rs) == 0 {
		return 0, false, nil
	}
	ip := rs[0].first
	if rs[0].first == rs[0].last {
		b.free[sub] = rs[1:]
	} else {
		rs[0].first++
	}
	b.touched[sub] = true
	b.record(sub, ip, port)
	return ip, true, nil
}

// allocateSpecific takes a given address of a subnet, 409 if taken (addressPool).
func (b *bulkIPAM) allocateSpecific(_ context.Context, sn *topology.Subnet, ip uint32, port string) error {
	if b.taken[sn.ID][ip] {
		return conflict("IpAddressAlreadyAllocated", "IP address %s already allocated in subnet %s", ipString(ip), sn.ID)
	}
	rs := b.free[sn.ID]
	for j, r := range rs {
		if ip < r.first || ip > r.last {
			continue
		}
		var repl []ipRange
		if r.first < ip {
			repl = append(repl, ipRange{r.first, ip - 1})
		}
		if ip < r.last {
			repl = append(repl, ipRange{ip + 1, r.last})
		}
		out := append(append(append(make([]ipRange, 0, len(rs)+1), rs[:j]...), repl...), rs[j+1:]...)
		b.free[sn.ID] = out
		b.touched[sn.ID] = true
		break
	}
	b.record(sn.ID, ip, port)
	return nil
}

// allocateAny6 takes the lowest free address of an IPv6 subnet (addressPool).
func (b *bulkIPAM) allocateAny6(ctx context.Context, sub, port string) (netip.Addr, bool, error) {
	return b.w.allocateAny6(ctx, sub, port)
}

// allocateSpecific6 takes a given address of an IPv6 subnet (addressPool).
func (b *bulkIPAM) allocateSpecific6(ctx context.Context, sn *topology.Subnet, ip netip.Addr, port string) error {
	return b.w.allocateSpecific6(ctx, sn, ip, port)
}

// queue writes the allocations and the changed free lists.
func (b *bulkIPAM) queue(w *wtx) {
	if len(b.rows.sub) > 0 {
		w.exec(`INSERT INTO ip_allocations (subnet_id, ip, port_id) SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])`,
			b.rows.sub, b.rows.ip, b.rows.port)
	}
	if len(b.touched) == 0 {
		return
	}
	subs := make([]string, 0, len(b.touched))
	var rSub []string
	var rFirst, rLast []int64
	for sub := range b.touched {
		subs = append(subs, sub)
		for _, r := range b.free[sub] {
			rSub, rFirst, rLast = append(rSub, sub), append(rFirst, int64(r.first)), append(rLast, int64(r.last))
		}
	}
	w.exec(`DELETE FROM ip_free_ranges WHERE subnet_id = ANY($1)`, subs)
	if len(rSub) > 0 {
		w.exec(`INSERT INTO ip_free_ranges (subnet_id, first, last) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])`, rSub, rFirst, rLast)
	}
}
