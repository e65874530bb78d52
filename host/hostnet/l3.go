package hostnet

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dvrflow/dvrflow/plan"
)

// routeProto marks the routes Apply installs ("proto static" in `ip route`); routes of
// other protocols (the kernel's connected routes) are left alone.
const routeProto = unix.RTPROT_STATIC

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// families are the address families Apply manages, each diffed on its own.
var families = []int{netlink.FAMILY_V4, netlink.FAMILY_V6}

// addrKey is an installed address as a plan writes it, and whether Apply owns it. IPv6
// link-local addresses and addresses the kernel configured for a limited time (from
// router advertisements: without IFA_F_PERMANENT) are the kernel's.
func addrKey(family int, a *netlink.Addr) (string, bool) {
	ones, _ := a.Mask.Size()
	if family == netlink.FAMILY_V4 {
		ip, _ := netip.AddrFromSlice(a.IP.To4())
		return netip.PrefixFrom(ip, ones).String(), true
	}
	ip, _ := netip.AddrFromSlice(a.IP.To16())
	owned := !ip.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_PERMANENT != 0
	return netip.PrefixFrom(ip, ones).String(), owned
}

// addrUsable reports whether an installed address serves as it is: an IPv6 one that
// failed duplicate address detection, or is still waiting for it, is made again without.
func addrUsable(a *netlink.Addr) bool {
	return a.Flags&(unix.IFA_F_DADFAILED|unix.IFA_F_TENTATIVE) == 0
}

// addresses makes each link's addresses match. IPv6 ones are added with IFA_F_NODAD: a
// router's gateway address (and MAC) is the same on every host, so duplicate address
// detection must never run on it, nor hold it tentative.
func (r *applyRun) addresses(ns *plan.Namespace) error {
	name := r.full(ns.Name)
	h := r.nl[name]
	for _, pl := range ns.Links {
		l, err := h.LinkByName(pl.Name)
		if err != nil {
			return fmt.Errorf("hostnet: %s: link %s: %w", name, pl.Name, err)
		}
		want := map[string]bool{}
		for _, a := range pl.Addresses {
			want[netip.MustParsePrefix(a).String()] = true
		}
		have := map[string]bool{}
		for _, fam := range families {
			cur, err := h.AddrList(l, fam)
			if err != nil {
				return fmt.Errorf("hostnet: %s: addresses of %s: %w", name, pl.Name, err)
			}
			for _, a := range cur {
				k, owned := addrKey(fam, &a)
				if !owned {
					continue
				}
				if want[k] && addrUsable(&a) {
					have[k] = true
					continue
				}
				if err := h.AddrDel(l, &a); err != nil {
					return fmt.Errorf("hostnet: %s: delete address %s from %s: %w", name, k, pl.Name, err)
				}
				r.changed("%s: delete address %s from %s", name, k, pl.Name)
			}
		}
		for _, a := range pl.Addresses {
			p := netip.MustParsePrefix(a)
			if have[p.String()] {
				continue
			}
			addr := &netlink.Addr{IPNet: ipNet(p)}
			if p.Addr().Is6() {
				addr.Flags = unix.IFA_F_NODAD
			}
			if err := h.AddrAdd(l, addr); err != nil {
				return fmt.Errorf("hostnet: %s: add address %s to %s: %w", name, a, pl.Name, err)
			}
			r.changed("%s: add address %s to %s", name, a, pl.Name)
		}
	}
	return nil
}

func (r *applyRun) neighbors(ns *plan.Namespace) error {
	name := r.full(ns.Name)
	h := r.nl[name]
	for _, pl := range ns.Links {
		l, err := h.LinkByName(pl.Name)
		if err != nil {
			return fmt.Errorf("hostnet: %s: link %s: %w", name, pl.Name, err)
		}
		want := map[string]string{} // ip -> mac
		for _, n := range ns.Neighbors {
			if n.Dev == pl.Name {
				m, _ := net.ParseMAC(n.MAC)
				want[netip.MustParseAddr(n.IP).String()] = m.String()
			}
		}
		var cur []netlink.Neigh
		for _, fam := range families {
			c, err := h.NeighList(l.Attrs().Index, fam)
			if err != nil {
				return fmt.Errorf("hostnet: %s: neighbours of %s: %w", name, pl.Name, err)
			}
			cur = append(cur, c...)
		}
		ok := map[string]bool{}
		for _, n := range cur {
			if n.State&netlink.NUD_PERMANENT == 0 {
				continue
			}
			ip := n.IP.String()
			if want[ip] == n.HardwareAddr.String() {
				ok[ip] = true
				continue
			}
			if err := h.NeighDel(&n); err != nil {
				return fmt.Errorf("hostnet: %s: delete neighbour %s on %s: %w", name, ip, pl.Name, err)
			}
			r.changed("%s: delete neighbour %s on %s", name, ip, pl.Name)
		}
		for ip, mac := range want {
			if ok[ip] {
				continue
			}
			hw, _ := net.ParseMAC(mac)
			fam := netlink.FAMILY_V4
			if netip.MustParseAddr(ip).Is6() {
				fam = netlink.FAMILY_V6
			}
			n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: fam, State: netlink.NUD_PERMANENT,
				IP: net.ParseIP(ip), HardwareAddr: hw}
			if err := h.NeighSet(n); err != nil {
				return fmt.Errorf("hostnet: %s: set neighbour %s on %s: %w", name, ip, pl.Name, err)
			}
			r.changed("%s: set neighbour %s lladdr %s on %s", name, ip, mac, pl.Name)
		}
	}
	return nil
}

func tableOf(t int) int {
	if t == 0 {
		return unix.RT_TABLE_MAIN
	}
	return t
}

// routes makes the routes of protocol static match the plan's, IPv4 and IPv6 apart (the
// kernel's connected, link-local, multicast and local routes are of protocol kernel).
func (r *applyRun) routes(ns *plan.Namespace) error {
	return perFamily(ns.Routes, func(family int, prs []plan.Route) error { return r.routesOf(ns, family, prs) })
}

// perFamily calls apply with the items of xs of each family in families, in turn.
func perFamily[T interface{ IPv6() bool }](xs []T, apply func(family int, of []T) error) error {
	for _, fam := range families {
		var of []T
		for _, x := range xs {
			if x.IPv6() == (fam == netlink.FAMILY_V6) {
				of = append(of, x)
			}
		}
		if err := apply(fam, of); err != nil {
			return err
		}
	}
	return nil
}

func (r *applyRun) routesOf(ns *plan.Namespace, family int, routes []plan.Route) error {
	name := r.full(ns.Name)
	h := r.nl[name]
	cur, err := h.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_UNSPEC, Protocol: routeProto},
		netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return fmt.Errorf("hostnet: %s: list routes: %w", name, err)
	}
	want := map[string]*netlink.Route{}
	for _, pr := range routes {
		rt, err := r.route(h, name, pr)
		if err != nil {
			return err
		}
		want[routeKey(rt)] = rt
	}
	for _, c := range cur {
		k := routeKey(&c)
		if w, ok := want[k]; ok && sameRoute(w, &c) {
			delete(want, k)
			continue
		}
		if _, ok := want[k]; ok {
			continue // replaced below
		}
		if err := h.RouteDel(&c); err != nil {
			return fmt.Errorf("hostnet: %s: delete route %s: %w", name, k, err)
		}
		r.changed("%s: delete route %s", name, k)
	}
	for _, pr := range routes { // in plan order, for a stable log
		rt, err := r.route(h, name, pr)
		if err != nil {
			return err
		}
		k := routeKey(rt)
		if _, ok := want[k]; !ok {
			continue
		}
		if err := h.RouteReplace(rt); err != nil {
			return fmt.Errorf("hostnet: %s: route %s via %q dev %s: %w", name, k, pr.Via, pr.Dev, err)
		}
		r.changed("%s: set route %s via %q dev %s", name, k, pr.Via, pr.Dev)
	}
	return nil
}

func (r *applyRun) route(h *netlink.Handle, ns string, pr plan.Route) (*netlink.Route, error) {
	l, err := h.LinkByName(pr.Dev)
	if err != nil {
		return nil, fmt.Errorf("hostnet: %s: route dev %s: %w", ns, pr.Dev, err)
	}
	dst, _ := pr.DstPrefix()
	rt := &netlink.Route{LinkIndex: l.Attrs().Index, Dst: ipNet(dst), Table: tableOf(pr.Table),
		Protocol: routeProto, Family: netlink.FAMILY_V4, Scope: netlink.SCOPE_UNIVERSE}
	if dst.Addr().Is6() {
		rt.Family = netlink.FAMILY_V6
	}
	if pr.Via != "" {
		rt.Gw = net.IP(netip.MustParseAddr(pr.Via).AsSlice())
	}
	return rt, nil
}

// routeKey names a route by destination and table: "default table 16" for IPv4,
// "::/0 table 16" for IPv6.
func routeKey(rt *netlink.Route) string {
	dst := "default"
	if rt.Family == netlink.FAMILY_V6 {
		dst = "::/0"
	}
	if rt.Dst != nil {
		if ones, _ := rt.Dst.Mask.Size(); ones != 0 || !rt.Dst.IP.IsUnspecified() {
			dst = rt.Dst.String()
		}
	}
	return fmt.Sprintf("%s table %d", dst, rt.Table)
}

func sameRoute(a, b *netlink.Route) bool {
	return a.LinkIndex == b.LinkIndex && a.Gw.Equal(b.Gw) && a.Scope == b.Scope
}

// kernelRule reports whether a rule is one of the kernel's defaults (local, main,
// default), which Apply never touches.
func kernelRule(ru *netlink.Rule) bool {
	switch ru.Priority {
	case 0:
		return ru.Table == unix.RT_TABLE_LOCAL
	case 32766:
		return ru.Table == unix.RT_TABLE_MAIN
	case 32767:
		return ru.Table == unix.RT_TABLE_DEFAULT
	}
	return false
}

// ruleKey names a rule as `ip rule` prints it; an IPv6 rule from all is "from ::/0".
func ruleKey(family, prio int, src *net.IPNet, iif string, table int) string {
	from := "all"
	if family == netlink.FAMILY_V6 {
		from = "::/0"
	}
	if src != nil {
		if ones, _ := src.Mask.Size(); ones != 0 {
			from = src.String()
		}
	}
	return fmt.Sprintf("pref %d from %s iif %q lookup %d", prio, from, iif, table)
}

// rules makes the policy rules match the plan's, IPv4 and IPv6 apart, leaving the
// kernel's own (kernelRule) alone.
func (r *applyRun) rules(ns *plan.Namespace) error {
	return perFamily(ns.Rules, func(family int, prs []plan.Rule) error { return r.rulesOf(ns, family, prs) })
}

func (r *applyRun) rulesOf(ns *plan.Namespace, family int, rules []plan.Rule) error {
	name := r.full(ns.Name)
	h := r.nl[name]
	cur, err := h.RuleList(family)
	if err != nil {
		return fmt.Errorf("hostnet: %s: list rules: %w", name, err)
	}
	want := map[string]plan.Rule{}
	for _, pr := range rules {
		var src *net.IPNet
		if pr.From != "" {
			src = ipNet(netip.MustParsePrefix(pr.From))
		}
		want[ruleKey(family, int(pr.Priority), src, pr.IIF, pr.Table)] = pr
	}
	for _, c := range cur {
		if kernelRule(&c) {
			continue
		}
		k := ruleKey(family, c.Priority, c.Src, c.IifName, c.Table)
		if _, ok := want[k]; ok && c.Mark == 0 && c.Dst == nil && c.OifName == "" && !c.Invert {
			delete(want, k)
			continue
		}
		if err := h.RuleDel(&c); err != nil {
			return fmt.Errorf("hostnet: %s: delete rule %s: %w", name, k, err)
		}
		r.changed("%s: delete rule %s", name, k)
	}
	for _, pr := range rules {
		var src *net.IPNet
		if pr.From != "" {
			src = ipNet(netip.MustParsePrefix(pr.From))
		}
		k := ruleKey(family, int(pr.Priority), src, pr.IIF, pr.Table)
		if _, ok := want[k]; !ok {
			continue
		}
		ru := netlink.NewRule()
		ru.Family = family
		ru.Priority = int(pr.Priority)
		ru.Table = pr.Table
		ru.Src = src
		ru.IifName = pr.IIF
		if err := h.RuleAdd(ru); err != nil {
			return fmt.Errorf("hostnet: %s: add rule %s: %w", name, k, err)
		}
		r.changed("%s: add rule %s", name, k)
	}
	return nil
}
