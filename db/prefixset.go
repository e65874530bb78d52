package db

import (
	"math/bits"
	"net/netip"
	"sort"
)

// Sets of IPv4 or IPv6 addresses as subnet pools need them: merged, compared, subtracted
// and cut back into CIDRs the way Neutron does it with netaddr's IPSet (compact, then
// iter_cidrs: the fewest CIDRs, in address order).

// u128 is an address as an integer: an IPv6 address, or an IPv4 one in the low 32 bits.
type u128 struct{ hi, lo uint64 }

func (a u128) cmp(b u128) int {
	switch {
	case a.hi != b.hi:
		if a.hi < b.hi {
			return -1
		}
		return 1
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

func (a u128) or(b u128) u128  { return u128{a.hi | b.hi, a.lo | b.lo} }
func (a u128) and(b u128) u128 { return u128{a.hi & b.hi, a.lo & b.lo} }
func (a u128) isZero() bool    { return a.hi == 0 && a.lo == 0 }

// inc returns a+1 and whether it did not wrap around.
func (a u128) inc() (u128, bool) {
	lo, carry := bits.Add64(a.lo, 1, 0)
	hi, over := bits.Add64(a.hi, 0, carry)
	return u128{hi, lo}, over == 0
}

// lowOnes returns the integer whose n low bits are set (0 <= n <= 128).
func lowOnes(n int) u128 {
	switch {
	case n <= 0:
		return u128{}
	case n < 64:
		return u128{0, 1<<n - 1}
	case n < 128:
		return u128{1<<(n-64) - 1, ^uint64(0)}
	}
	return u128{^uint64(0), ^uint64(0)}
}

func addrInt(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{0, uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := a.As16()
	var v u128
	for i := 0; i < 8; i++ {
		v.hi = v.hi<<8 | uint64(b[i])
		v.lo = v.lo<<8 | uint64(b[i+8])
	}
	return v
}

func intAddr(v u128, width int) netip.Addr {
	if width == 32 {
		return netip.AddrFrom4([4]byte{byte(v.lo >> 24), byte(v.lo >> 16), byte(v.lo >> 8), byte(v.lo)})
	}
	var b [16]byte
	for i := 0; i < 8; i++ {
		b[7-i] = byte(v.hi >> (8 * i))
		b[15-i] = byte(v.lo >> (8 * i))
	}
	return netip.AddrFrom16(b)
}

// span is an inclusive range of addresses.
type span struct{ first, last u128 }

// prefixSet is a set of addresses of one IP version (width 32 or 128) as sorted spans
// that neither overlap nor touch.
type prefixSet struct {
	width int
	spans []span
}

func prefixWidth(p netip.Prefix) int { return p.Addr().BitLen() }

func prefixSpan(p netip.Prefix) span {
	p = p.Masked()
	first := addrInt(p.Addr())
	return span{first, first.or(lowOnes(prefixWidth(p) - p.Bits()))}
}

// newPrefixSet returns the set of the addresses of ps, all of one IP version of width bits.
func newPrefixSet(width int, ps []netip.Prefix) prefixSet {
	spans := make([]span, 0, len(ps))
	for _, p := range ps {
		spans = append(spans, prefixSpan(p))
	}
	return prefixSet{width: width, spans: merge(spans)}
}

// merge sorts spans and joins those that overlap or touch.
func merge(spans []span) []span {
	sort.Slice(spans, func(i, j int) bool { return spans[i].first.cmp(spans[j].first) < 0 })
	out := spans[:0]
	for _, s := range spans {
		if n := len(out); n > 0 {
			next, ok := out[n-1].last.inc()
			if !ok || s.first.cmp(next) <= 0 {
				if s.last.cmp(out[n-1].last) > 0 {
					out[n-1].last = s.last
				}
				continue
			}
		}
		out = append(out, s)
	}
	return out
}

// covers reports whether every address of o is in s.
func (s prefixSet) covers(o prefixSet) bool {
	for _, x := range o.spans {
		i := sort.Search(len(s.spans), func(i int) bool { return s.spans[i].last.cmp(x.first) >= 0 })
		if i == len(s.spans) || s.spans[i].first.cmp(x.first) > 0 || s.spans[i].last.cmp(x.last) < 0 {
			return false
		}
	}
	return true
}

// minus returns the addresses of s that are not in o.
func (s prefixSet) minus(o prefixSet) prefixSet {
	out := prefixSet{width: s.width}
	for _, x := range s.spans {
		cur, open := x.first, true
		for _, h := range o.spans {
			if !open || h.last.cmp(cur) < 0 || h.first.cmp(x.last) > 0 {
				continue
			}
			if h.first.cmp(cur) > 0 {
				last := h.first
				// h.first > cur >= 0: h.first-1 does not wrap.
				if last.lo == 0 {
					last.hi--
				}
				last.lo--
				out.spans = append(out.spans, span{cur, last})
			}
			next, ok := h.last.inc()
			if !ok || h.last.cmp(x.last) >= 0 {
				open = false
				continue
			}
			cur = next
		}
		if open {
			out.spans = append(out.spans, span{cur, x.last})
		}
	}
	return out
}

// cidrs returns the fewest CIDRs that make up s, in address order.
func (s prefixSet) cidrs() []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s.spans {
		first := x.first
		for {
			// The largest block aligned on first that ends within x.
			host := 0
			for host < s.width && first.and(lowOnes(host+1)).isZero() && first.or(lowOnes(host+1)).cmp(x.last) <= 0 {
				host++
			}
			out = append(out, netip.PrefixFrom(intAddr(first, s.width), s.width-host))
			end := first.or(lowOnes(host))
			next, ok := end.inc()
			if !ok || end.cmp(x.last) >= 0 {
				break
			}
			first = next
		}
	}
	return out
}

// firstFit returns the first prefix of length bits in s as Neutron's subnet allocator
// chooses it: among s's CIDRs, smallest first (then lowest address), the first that can
// hold it, and in it the lowest block.
func (s prefixSet) firstFit(bits int) (netip.Prefix, bool) {
	free := s.cidrs()
	sort.SliceStable(free, func(i, j int) bool { return free[i].Bits() > free[j].Bits() })
	for _, c := range free {
		if c.Bits() <= bits {
			return netip.PrefixFrom(c.Addr(), bits), true
		}
	}
	return netip.Prefix{}, false
}
