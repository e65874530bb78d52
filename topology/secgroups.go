// Security groups in the view: the groups, their rules, the ports each group holds, the
// rules that name each group as their remote, and what a change of them affects.

package topology

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// IPProtocols are the protocol names a security group rule accepts, with their numbers
// (Neutron's IP_PROTOCOL_MAP).
var IPProtocols = map[string]int{
	"ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1, "icmpv6": 58,
	"igmp": 2, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "ipv6-nonxt": 59,
	"ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6,
	"udp": 17, "udplite": 136, "vrrp": 112,
}

// ProtocolNumber returns a rule protocol's IP protocol number (-1 for any).
func ProtocolNumber(protocol string) int {
	if protocol == "" {
		return -1
	}
	if n, ok := IPProtocols[protocol]; ok {
		return n
	}
	n, err := strconv.Atoi(protocol)
	if err != nil {
		return -1
	}
	return n
}

// Firewalled reports whether the firewall filters port p: port security is on and the port
// is not the network's own (router, DHCP and gateway ports are trusted, as in Neutron).
func Firewalled(p *Port) bool {
	return p.PortSecurityEnabled && !strings.HasPrefix(p.DeviceOwner, "network:")
}

// SecurityGroup returns the group with this ID, or nil.
func (v *View) SecurityGroup(id string) *SecurityGroup { return v.groups[id] }

// GroupRules returns the rules of group id, sorted by ID.
func (v *View) GroupRules(id string) []*SecurityGroupRule {
	return slices.SortedFunc(maps.Values(v.rulesOfGroup[id]), func(a, b *SecurityGroupRule) int { return cmp.Compare(a.ID, b.ID) })
}

// GroupMembers returns the firewalled ports naming group id, by port ID.
func (v *View) GroupMembers(id string) map[string]*PortInfo { return v.members[id] }

// Stateful reports whether the port's traffic is tracked: any of its groups is stateful,
// or it has none (nothing but its base flows passes). A port in both kinds of group is
// tracked (dvrflow's API does not refuse the mix), so its stateless rules act statefully.
func (v *View) Stateful(p *Port) bool {
	for _, id := range p.SecurityGroups {
		if g := v.groups[id]; g == nil || g.Stateful {
			return true
		}
	}
	return len(p.SecurityGroups) == 0
}

// RemoteGroupsOn returns the groups named as remote in direction dir by a rule of a group
// of a firewalled port bound to host, sorted.
func (v *View) RemoteGroupsOn(host, dir string) []string {
	var out []string
	for part := range v.remoteUses[host] {
		if d, g, _ := PartRemoteGroup(part); d == dir {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return out
}

// UsesRemoteGroup reports whether group is one of RemoteGroupsOn(host, dir).
func (v *View) UsesRemoteGroup(host, dir, group string) bool {
	return v.remoteUses[host][RemoteGroupPart(dir, group)] > 0
}

// useRemote counts n uses by firewalled port p of rule r's remote group (r a rule of one of
// p's groups) and touches that group's part on p's host, which may gain or lose it:
// remoteUses holds, per host, how many (port, rule) pairs need each remote group's part.
func (v *View) useRemote(d *pending, p *PortInfo, r *SecurityGroupRule, n int) {
	if p.HostID == "" || r.RemoteGroupID == "" {
		return
	}
	part := RemoteGroupPart(r.Direction, r.RemoteGroupID)
	d.touchPart(p.HostID, part)
	uses := v.remoteUses[p.HostID]
	if uses == nil {
		uses = map[string]int{}
		v.remoteUses[p.HostID] = uses
	}
	if uses[part] += n; uses[part] <= 0 {
		delete(uses, part)
		if len(uses) == 0 {
			delete(v.remoteUses, p.HostID)
		}
	}
}

// GroupPrefixes returns the addresses of group id's members (their fixed IPs and allowed
// address pairs, IPv4 and IPv6, not the link-local addresses of their MACs, as Neutron's
// members) as the fewest prefixes that hold exactly them, sorted (IPv4 first). It is
// computed once per change of the group's members (deriveGroups), for every host to share.
func (v *View) GroupPrefixes(id string) []netip.Prefix { return v.groupPrefixes[id] }

// Prefix returns the pair's address or prefix as a prefix (an address is a /32 or /128).
func (a AddressPair) Prefix() (netip.Prefix, bool) {
	if pfx, err := netip.ParsePrefix(a.IPAddress); err == nil {
		return pfx.Masked(), true
	}
	addr, err := netip.ParseAddr(a.IPAddress)
	if err != nil {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(addr, addr.BitLen()), true
}

// memberPrefixes computes GroupPrefixes of group id.
func (v *View) memberPrefixes(id string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range v.members[id] {
		for _, ip := range p.IPs {
			out = append(out, netip.PrefixFrom(ip.Addr, ip.Addr.BitLen()))
		}
		for _, pair := range p.AllowedAddressPairs {
			if pfx, ok := pair.Prefix(); ok {
				out = append(out, pfx)
			}
		}
	}
	slices.SortFunc(out, comparePrefixes)
	return CoverPrefixes(slices.Compact(out))
}

func comparePrefixes(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

// CoverPrefixes returns the fewest prefixes that hold exactly the addresses of ps (sorted
// by address, then length, without duplicates): sibling prefixes merge into their parent, a
// prefix inside another goes. Addresses given out in sequence, as IPAM does, collapse into
// a handful of prefixes; the set of addresses is the same.
func CoverPrefixes(ps []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].Overlaps(p) && out[n-1].Bits() <= p.Bits() {
			continue // inside the last one
		}
		out = append(out, p)
		for n := len(out); n >= 2; n = len(out) {
			a, b := out[n-2], out[n-1]
			if a.Bits() != b.Bits() || a.Bits() == 0 {
				break
			}
			parent, _ := a.Addr().Prefix(a.Bits() - 1)
			if a == b || !parent.Contains(b.Addr()) || parent.Addr() != a.Addr() {
				break
			}
			out = append(out[:n-2], parent)
		}
	}
	return out
}

// setGroup records group g (nil: deleted). A change of stateful changes its members' flows.
func (v *View) setGroup(d *pending, id string, g *SecurityGroup) {
	old := v.groups[id]
	if g == nil {
		delete(v.groups, id)
	} else {
		v.groups[id] = g
	}
	if old == nil || g == nil || old.Stateful != g.Stateful {
		v.touchMembers(d, id)
	}
}

// setRule records rule r (nil: deleted): the flows of its group's members change, and with
// a remote group, which hosts need that group's members.
func (v *View) setRule(d *pending, id string, r *SecurityGroupRule) {
	if old := v.rules[id]; old != nil {
		delSet(v.rulesOfGroup, old.SecurityGroupID, id)
		if old.RemoteGroupID != "" {
			delSet(v.remoteOf, old.RemoteGroupID, id)
			for _, p := range v.members[old.SecurityGroupID] {
				v.useRemote(d, p, old, -1)
			}
		}
		v.touchMembers(d, old.SecurityGroupID)
		delete(v.rules, id)
	}
	if r == nil {
		return
	}
	v.rules[id] = r
	putSet(v.rulesOfGroup, r.SecurityGroupID, id, r)
	if r.RemoteGroupID != "" {
		putSet(v.remoteOf, r.RemoteGroupID, id, r)
		for _, p := range v.members[r.SecurityGroupID] {
			v.useRemote(d, p, r, 1)
		}
	}
	v.touchMembers(d, r.SecurityGroupID)
}

// touchMembers notes that the flows of group id's members changed: their network's part on
// their host.
func (v *View) touchMembers(d *pending, id string) {
	for _, p := range v.members[id] {
		if p.HostID != "" {
			d.touchPart(p.HostID, p.NetworkID)
		}
	}
}

// unindexMember takes port p out of its groups' members. The groups' members changed, and
// p's host may no longer need the remote groups of p's groups.
func (v *View) unindexMember(d *pending, p *PortInfo) {
	if !Firewalled(p.Port) {
		return
	}
	for _, g := range p.SecurityGroups {
		delSet(v.members, g, p.ID)
		d.groups[g] = true
		for _, r := range v.rulesOfGroup[g] {
			v.useRemote(d, p, r, -1)
		}
	}
}

// indexMember adds port p to its groups' members (derive then touches what depends on
// them); p's host may need the remote groups of p's groups.
func (v *View) indexMember(d *pending, p *PortInfo) {
	if !Firewalled(p.Port) {
		return
	}
	for _, g := range p.SecurityGroups {
		putSet(v.members, g, p.ID, p)
		d.groups[g] = true
		for _, r := range v.rulesOfGroup[g] {
			v.useRemote(d, p, r, 1)
		}
	}
}

// deriveGroups recomputes the member prefixes of the groups whose members changed and, where
// they differ, touches the group's parts on every host that uses it as a remote group.
func (v *View) deriveGroups(d *pending) {
	for g := range d.groups {
		old := v.groupPrefixes[g]
		if len(v.members[g]) == 0 {
			delete(v.groupPrefixes, g)
		} else {
			v.groupPrefixes[g] = v.memberPrefixes(g)
		}
		if slices.Equal(old, v.groupPrefixes[g]) {
			continue
		}
		for _, r := range v.remoteOf[g] {
			part := RemoteGroupPart(r.Direction, g)
			for _, p := range v.members[r.SecurityGroupID] {
				if p.HostID != "" {
					d.touchPart(p.HostID, part)
				}
			}
		}
	}
}

// NamedAsRemote reports whether a rule names group id as its remote group.
func (v *View) NamedAsRemote(id string) bool { return len(v.remoteOf[id]) > 0 }
