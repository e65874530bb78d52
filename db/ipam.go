package db

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/jackc/pgx/v5"
)

// ipRange is an inclusive range of IPv4 addresses as integers.
type ipRange struct{ first, last uint32 }

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
func (c cidr4) overlaps(o cidr4) bool { return c.first() <= o.last() && o.first() <= c.last() }
func (c cidr4) String() string        { return fmt.Sprintf("%s/%d", ipString(c.base), c.bits) }

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

// subtract returns rs minus the addresses in holes (sorted), as sorted ranges.
func subtract(rs []ipRange, holes []uint32) []ipRange {
	sort.Slice(holes, func(i, j int) bool { return holes[i] < holes[j] })
	var out []ipRange
	for _, r := range rs {
		cur := r.first
		done := false
		for _, h := range holes {
			if h < cur || h > r.last {
				continue
			}
			if h > cur {
				out = append(out, ipRange{cur, h - 1})
			}
			if h == r.last {
				done = true
				break
			}
			cur = h + 1
		}
		if !done && cur <= r.last {
			out = append(out, ipRange{cur, r.last})
		}
	}
	return out
}

// poolRanges converts validated pools to ranges.
func poolRanges(pools []AllocationPool) []ipRange {
	out := make([]ipRange, 0, len(pools))
	for _, p := range pools {
		a, _ := parseIPv4(p.Start)
		b, _ := parseIPv4(p.End)
		out = append(out, ipRange{a, b})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].first < out[j].first })
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
func (w *wtx) resetFreeRanges(ctx context.Context, sn *Subnet) error {
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
	for _, r := range subtract(poolRanges(sn.AllocationPools), holes) {
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
func (w *wtx) allocateSpecific(ctx context.Context, sn *Subnet, ip uint32, portID string) error {
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
func (w *wtx) releaseIP(sn *Subnet, ip uint32) {
	w.exec(`DELETE FROM ip_allocations WHERE subnet_id = $1 AND ip = $2`, sn.ID, int64(ip))
	gw, hasGW := parseIPv4(sn.GatewayIP)
	if inRanges(poolRanges(sn.AllocationPools), ip) && !(hasGW && gw == ip) {
		w.exec(`INSERT INTO ip_free_ranges (subnet_id, first, last) VALUES ($1, $2, $2)`, sn.ID, int64(ip))
	}
}
