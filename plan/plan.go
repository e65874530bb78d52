// Package plan is the namespace plan of one host: the qrouter-, fip-, snat- and qmeta-
// namespaces the host must have, with their links, addresses, routes, rules, permanent
// neighbours, sysctls, NAT and metadata proxies. The controller's l3 app computes it, the API serves it
// as JSON, and the host helper makes the kernel match it. It is pure data plus
// Validate; nothing here decides anything.
//
// Addresses, routes, rules and neighbours are IPv4 or IPv6, each entry of one family:
// a link address or a neighbour by its address, a route by Via when it has one and by Dst
// otherwise ("default" without Via is the IPv4 default route; "::/0" is the IPv6 one
// without a next hop), a rule by From (none, or "0.0.0.0/0", is IPv4; "::/0" is IPv6 from
// all). NAT and the metadata proxy are IPv4 only.
package plan

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Namespace name prefixes. A namespace with one of them is owned by dvrflow: the host
// helper deletes it when the plan no longer has it.
const (
	PrefixQRouter = "qrouter-" // + router ID: a distributed router on this host
	PrefixFIP     = "fip-"     // + external network ID: floating IP namespace
	PrefixSNAT    = "snat-"    // + router ID: central SNAT on the dvr_snat host
	PrefixMeta    = "qmeta-"   // + network ID: the metadata proxy of the network's VMs on this host
)

// Prefixes lists the namespace prefixes the plan may use.
var Prefixes = []string{PrefixQRouter, PrefixFIP, PrefixSNAT, PrefixMeta}

// BridgeLinkPrefixes are the name prefixes of OVS-plugged devices, as Neutron names them
// (prefix + 11 characters of the port ID): router interfaces, gateways, SNAT and floating
// IP agent gateway ports, and the DHCP port's tap in a qmeta- namespace.
var BridgeLinkPrefixes = []string{"qr-", "qg-", "sg-", "fg-", "tap"}

// MetadataAddr is the address instances ask for their metadata (Nova's, EC2's).
const MetadataAddr = "169.254.169.254"

// Plan is what one host must look like, at one topology revision.
type Plan struct {
	Host       string      `json:"host"`
	Revision   int64       `json:"revision"`
	Namespaces []Namespace `json:"namespaces"`
}

// Namespace is one network namespace and everything in it.
type Namespace struct {
	// Name is "qrouter-<router id>", "fip-<external network id>" or "snat-<router id>".
	Name string `json:"name"`
	// Sysctls are written under /proc/sys in the namespace: key "net.ipv4.ip_forward"
	// is /proc/sys/net/ipv4/ip_forward. Keys must start with "net.".
	Sysctls   map[string]string `json:"sysctls,omitempty"`
	Links     []Link            `json:"links,omitempty"`
	Routes    []Route           `json:"routes,omitempty"`
	Rules     []Rule            `json:"rules,omitempty"`
	Neighbors []Neighbor        `json:"neighbors,omitempty"`
	NAT       []NATRule         `json:"nat,omitempty"`
	// Metadata is the metadata proxy a qmeta- namespace runs (and only such a namespace).
	Metadata *Metadata `json:"metadata,omitempty"`
}

// Metadata is a network's metadata proxy on one host: HTTP on MetadataAddr port 80 inside
// the namespace (whose link holds MetadataAddr/32), each request from the address of one
// of Instances sent on to the Nova metadata API with Neutron's headers (X-Instance-ID,
// X-Tenant-ID, X-Forwarded-For, X-Instance-ID-Signature); from any other address it is
// refused.
type Metadata struct {
	Network   string     `json:"network"`
	Instances []Instance `json:"instances"`
}

// Instance is one port of the network bound to this host, as the metadata proxy names it.
type Instance struct {
	IP        string `json:"ip"`         // its fixed IP on the network
	DeviceID  string `json:"device_id"`  // the instance (X-Instance-ID)
	ProjectID string `json:"project_id"` // its project (X-Tenant-ID)
}

// Link is one network device in a namespace. It is one end of a veth pair, either
//   - plugged into an OVS bridge: Bridge is set; the other end, named OVSPeerName(Name),
//     stays in the host namespace and is added to Bridge with external_ids iface-id
//     = IfaceID and attached-mac = MAC (as Neutron's qr-/qg-/sg-/fg- ports), or
//   - joined to a link of another namespace of the plan: PeerNamespace and PeerName
//     name the other end, which must be described there pointing back (rfp-/fpr-).
//
// Its addresses are IPv4 or global IPv6 ones: IPv6 link-local addresses (fe80::/10) are
// the kernel's, never a plan's.
type Link struct {
	Name          string `json:"name"`
	Bridge        string `json:"bridge,omitempty"`
	IfaceID       string `json:"iface_id,omitempty"`
	PeerNamespace string `json:"peer_namespace,omitempty"`
	PeerName      string `json:"peer_name,omitempty"`
	MAC           string `json:"mac"`
	MTU           int    `json:"mtu,omitempty"` // 0: kernel default
	// SoftwareChecksum turns transmit checksum offload off: the kernel computes the
	// checksums of what the namespace itself sends. A userspace datapath (netdev) reads a
	// veth without completing a partial checksum, and its conntrack drops such TCP; the
	// metadata proxy's namespace originates TCP, a router's only forwards it.
	SoftwareChecksum bool     `json:"software_checksum,omitempty"`
	Addresses        []string `json:"addresses,omitempty"` // CIDR, e.g. "10.0.1.1/24", "2001:db8:1::1/64"
}

// Route is one route. Table 0 is the main table. Its family is Via's when Via is set,
// else Dst's: {Dst: "default", Via: "2001:db8:ff::1"} is the IPv6 default route, a bare
// "default" the IPv4 one, and "::/0" the IPv6 default route without a next hop.
type Route struct {
	Dst   string `json:"dst"`           // CIDR (network address) or "default"
	Via   string `json:"via,omitempty"` // IPv4 or IPv6 address, the family of Dst
	Dev   string `json:"dev"`
	Table int    `json:"table,omitempty"`
}

// Rule is one policy routing rule: from From (or all) arriving on IIF (or any) lookup
// Table, at Priority. Its family is From's; a rule without From is IPv4 (an IPv6 rule
// from all has From "::/0").
type Rule struct {
	Priority int64  `json:"priority"`
	From     string `json:"from,omitempty"` // CIDR; "" is all (IPv4)
	IIF      string `json:"iif,omitempty"`
	Table    int    `json:"table"`
}

// Neighbor is a permanent neighbour entry: ARP for an IPv4 address, NDP for an IPv6 one.
type Neighbor struct {
	IP  string `json:"ip"`
	MAC string `json:"mac"`
	Dev string `json:"dev"`
}

// NAT rule kinds.
const (
	NATDNAT = "dnat" // in prerouting: rewrite the destination to To
	NATSNAT = "snat" // in postrouting: rewrite the source to To
)

// NATRule is one nftables NAT rule of the namespace's "dvrflow" table.
// Floating IP F for fixed IP P in qrouter-R with X = rfp-R[:10]:
//
//	{Kind: "dnat", Match: {Daddr: F, IIF: X}, To: P}
//	{Kind: "snat", Match: {Saddr: P, OIF: X}, To: F}
//
// Default SNAT in snat-R with Q = qg-<gateway port> and gateway address GW:
//
//	{Kind: "snat", Match: {OIF: Q}, To: GW}
type NATRule struct {
	Kind  string   `json:"kind"`
	Match NATMatch `json:"match"`
	To    string   `json:"to"`
}

// NATMatch is what a NAT rule matches; empty fields match anything, at least one must
// be set.
type NATMatch struct {
	Daddr string `json:"daddr,omitempty"` // IP or CIDR
	Saddr string `json:"saddr,omitempty"` // IP or CIDR
	IIF   string `json:"iif,omitempty"`   // dnat only
	OIF   string `json:"oif,omitempty"`   // snat only
}

// OVSPeerName is the name of the host-side end of a bridge-plugged link: "t" + the
// namespace-side name (e.g. qr-1a2b3c4d5e6 -> tqr-1a2b3c4d5e6). Link names of
// bridge-plugged links start with qr-, qg-, sg- or fg- and are at most 14 characters,
// so peer names are valid device names, never collide with each other (the link names
// are unique on the host) nor with Nova's tap<port> devices ("tqr-" is not "tap").
func OVSPeerName(linkName string) string { return "t" + linkName }

// ValidIfName checks a Linux network device name.
func ValidIfName(n string) error {
	if n == "" || len(n) > 15 {
		return fmt.Errorf("device name %q: want 1 to 15 characters", n)
	}
	if n == "." || n == ".." || strings.ContainsAny(n, "/:% \t\n.") {
		return fmt.Errorf("device name %q: invalid characters", n)
	}
	return nil
}

// Validate rejects a malformed plan, naming the first problem found.
func (p *Plan) Validate() error { return p.validate(nil) }

// ValidateChanged is Validate for a plan whose namespaces, but those named in changed, are
// those of a plan that validated: it checks the plan as a whole (namespace names, every
// link plugged once) and validates the named namespaces and those with a link joined to
// one of them, the only ones a change of the named can make invalid.
func (p *Plan) ValidateChanged(changed map[string]bool) error {
	check := maps.Clone(changed)
	for _, ns := range p.Namespaces {
		for _, l := range ns.Links {
			if l.PeerNamespace != "" && (changed[ns.Name] || changed[l.PeerNamespace]) {
				check[ns.Name], check[l.PeerNamespace] = true, true
			}
		}
	}
	return p.validate(check)
}

// validate validates p, each namespace only when check is nil or names it.
func (p *Plan) validate(check map[string]bool) error {
	if p.Host == "" {
		return errors.New("plan: empty host")
	}
	if p.Revision < 0 {
		return fmt.Errorf("plan %s: negative revision %d", p.Host, p.Revision)
	}
	byName := map[string]*Namespace{}
	for i := range p.Namespaces {
		ns := &p.Namespaces[i]
		if err := validNamespaceName(ns.Name); err != nil {
			return fmt.Errorf("plan %s: %w", p.Host, err)
		}
		if byName[ns.Name] != nil {
			return fmt.Errorf("plan %s: namespace %s twice", p.Host, ns.Name)
		}
		byName[ns.Name] = ns
	}
	peers := map[string]string{} // OVS-side name -> namespace
	for _, ns := range p.Namespaces {
		if check == nil || check[ns.Name] {
			if err := ns.validate(byName); err != nil {
				return fmt.Errorf("plan %s: namespace %s: %w", p.Host, ns.Name, err)
			}
		}
		for _, l := range ns.Links {
			if l.Bridge == "" {
				continue
			}
			peer := OVSPeerName(l.Name)
			if other, ok := peers[peer]; ok {
				return fmt.Errorf("plan %s: link %s in both %s and %s", p.Host, l.Name, other, ns.Name)
			}
			peers[peer] = ns.Name
		}
	}
	return nil
}

func validNamespaceName(n string) error {
	for _, pre := range Prefixes {
		if id, ok := strings.CutPrefix(n, pre); ok {
			if id == "" || len(n) > 200 {
				return fmt.Errorf("namespace %q: want %s<id>", n, pre)
			}
			for _, r := range id {
				if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
					return fmt.Errorf("namespace %q: bad character %q in id", n, r)
				}
			}
			return nil
		}
	}
	return fmt.Errorf("namespace %q: unknown prefix (want one of %s)", n, strings.Join(Prefixes, ", "))
}

func (ns *Namespace) link(name string) *Link {
	for i := range ns.Links {
		if ns.Links[i].Name == name {
			return &ns.Links[i]
		}
	}
	return nil
}

func (ns *Namespace) hasDev(name string) bool { return name == "lo" || ns.link(name) != nil }

func (ns *Namespace) validate(all map[string]*Namespace) error {
	if err := ns.validateMetadata(); err != nil {
		return err
	}
	for k, v := range ns.Sysctls {
		if err := validSysctl(k, v); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, l := range ns.Links {
		if err := l.validate(ns.Name, all); err != nil {
			return err
		}
		if seen[l.Name] {
			return fmt.Errorf("link %s twice", l.Name)
		}
		seen[l.Name] = true
	}
	routes := map[string]bool{}
	for _, r := range ns.Routes {
		if err := r.validate(ns); err != nil {
			return err
		}
		dst, _ := r.DstPrefix()
		k := fmt.Sprintf("%d %s", r.Table, dst)
		if routes[k] {
			return fmt.Errorf("route %s in table %d twice", r.Dst, r.Table)
		}
		routes[k] = true
	}
	rules := map[string]bool{}
	for _, r := range ns.Rules {
		if err := r.validate(ns); err != nil {
			return err
		}
		k := fmt.Sprintf("%d %s %s %d", r.Priority, r.From, r.IIF, r.Table)
		if rules[k] {
			return fmt.Errorf("rule %+v twice", r)
		}
		rules[k] = true
	}
	neigh := map[string]bool{}
	for _, n := range ns.Neighbors {
		ip, err := parseAddr(n.IP)
		if err != nil || (ip.Is6() && !unicast6(ip)) {
			return fmt.Errorf("neighbor %q: want an IPv4 or unicast IPv6 address", n.IP)
		}
		if err := validMAC(n.MAC); err != nil {
			return fmt.Errorf("neighbor %s: %w", n.IP, err)
		}
		if !ns.hasDev(n.Dev) {
			return fmt.Errorf("neighbor %s: dev %q is not a link of the namespace", n.IP, n.Dev)
		}
		if k := n.Dev + " " + ip.String(); neigh[k] {
			return fmt.Errorf("neighbor %s on %s twice", n.IP, n.Dev)
		} else {
			neigh[k] = true
		}
	}
	for i, r := range ns.NAT {
		if err := r.validate(ns); err != nil {
			return fmt.Errorf("nat rule %d: %w", i, err)
		}
	}
	return nil
}

func validSysctl(k, v string) error {
	if !strings.HasPrefix(k, "net.") || strings.Contains(k, "..") || strings.HasSuffix(k, ".") ||
		strings.ContainsAny(k, "/ \t\n") {
		return fmt.Errorf("sysctl %q: want net.<path> in dotted form", k)
	}
	if v == "" || strings.ContainsAny(v, "\n") {
		return fmt.Errorf("sysctl %s: bad value %q", k, v)
	}
	return nil
}

func validMAC(s string) error {
	m, err := net.ParseMAC(s)
	if err != nil || len(m) != 6 {
		return fmt.Errorf("MAC %q: want an Ethernet MAC", s)
	}
	if m[0]&1 != 0 {
		return fmt.Errorf("MAC %q: multicast", s)
	}
	return nil
}

func (l *Link) validate(nsName string, all map[string]*Namespace) error {
	if err := ValidIfName(l.Name); err != nil {
		return fmt.Errorf("link: %w", err)
	}
	if l.Name == "lo" {
		return errors.New(`link "lo": always there, not a plan link`)
	}
	if err := validMAC(l.MAC); err != nil {
		return fmt.Errorf("link %s: %w", l.Name, err)
	}
	if l.MTU != 0 && (l.MTU < 68 || l.MTU > 65535) {
		return fmt.Errorf("link %s: MTU %d out of range", l.Name, l.MTU)
	}
	for _, a := range l.Addresses {
		pfx, err := netip.ParsePrefix(a)
		if err != nil || pfx.Addr().Zone() != "" || pfx.Addr().Is4In6() {
			return fmt.Errorf("link %s: address %q: want IPv4 or IPv6 CIDR", l.Name, a)
		}
		if ip := pfx.Addr(); ip.Is6() && (ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() || ip.IsLoopback()) {
			return fmt.Errorf("link %s: address %q: want a global IPv6 address (link-local ones are the kernel's)", l.Name, a)
		}
	}
	switch {
	case l.Bridge != "" && l.PeerNamespace == "" && l.PeerName == "":
		if err := ValidIfName(l.Bridge); err != nil {
			return fmt.Errorf("link %s: bridge: %w", l.Name, err)
		}
		if len(l.Name) > 14 {
			return fmt.Errorf("link %s: a bridge-plugged link name has at most 14 characters", l.Name)
		}
		ok := false
		for _, pre := range BridgeLinkPrefixes {
			ok = ok || strings.HasPrefix(l.Name, pre)
		}
		if !ok {
			return fmt.Errorf("link %s: a bridge-plugged link name starts with %s", l.Name, strings.Join(BridgeLinkPrefixes, ", "))
		}
		if l.IfaceID == "" {
			return fmt.Errorf("link %s: bridge-plugged link without iface_id", l.Name)
		}
	case l.Bridge == "" && l.PeerNamespace != "":
		if l.IfaceID != "" {
			return fmt.Errorf("link %s: iface_id on a namespace-to-namespace link", l.Name)
		}
		if l.PeerNamespace == nsName {
			return fmt.Errorf("link %s: peer in the same namespace", l.Name)
		}
		if err := ValidIfName(l.PeerName); err != nil {
			return fmt.Errorf("link %s: peer: %w", l.Name, err)
		}
		other := all[l.PeerNamespace]
		if other == nil {
			return fmt.Errorf("link %s: peer namespace %s is not in the plan", l.Name, l.PeerNamespace)
		}
		back := other.link(l.PeerName)
		if back == nil || back.PeerNamespace != nsName || back.PeerName != l.Name {
			return fmt.Errorf("link %s: peer %s/%s does not point back", l.Name, l.PeerNamespace, l.PeerName)
		}
	default:
		return fmt.Errorf("link %s: want either bridge (+iface_id) or peer_namespace+peer_name", l.Name)
	}
	return nil
}

// parseAddr parses an IPv4 or IPv6 address without a zone (an IPv4-mapped IPv6 address
// is neither).
func parseAddr(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" || ip.Is4In6() {
		return netip.Addr{}, fmt.Errorf("%q: want an IPv4 or IPv6 address", s)
	}
	return ip, nil
}

// unicast6 reports whether an IPv6 address can be a next hop or a neighbour.
func unicast6(ip netip.Addr) bool {
	return !ip.IsUnspecified() && !ip.IsMulticast() && !ip.IsLoopback()
}

// parseNet parses a network CIDR (host bits zero) of either family.
func parseNet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Zone() != "" || p.Addr().Is4In6() || p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("%q: want an IPv4 or IPv6 network CIDR", s)
	}
	return p, nil
}

// IPv6 reports whether the route is an IPv6 one: by Via when set, else by Dst.
func (r Route) IPv6() bool {
	if r.Via != "" {
		ip, err := netip.ParseAddr(r.Via)
		return err == nil && ip.Is6()
	}
	p, err := netip.ParsePrefix(r.Dst)
	return err == nil && p.Addr().Is6()
}

// DstPrefix parses Dst ("default" is 0.0.0.0/0, or ::/0 for an IPv6 route).
func (r Route) DstPrefix() (netip.Prefix, error) {
	if r.Dst == "default" {
		if r.IPv6() {
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0), nil
		}
		return netip.PrefixFrom(netip.IPv4Unspecified(), 0), nil
	}
	p, err := parseNet(r.Dst)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("route dst %q: want \"default\" or an IPv4 or IPv6 network CIDR", r.Dst)
	}
	return p, nil
}

func (r Route) validate(ns *Namespace) error {
	dst, err := r.DstPrefix()
	if err != nil {
		return err
	}
	if r.Via != "" {
		ip, err := parseAddr(r.Via)
		if err != nil || (ip.Is6() && !unicast6(ip)) {
			return fmt.Errorf("route %s: via %q: want an IPv4 or unicast IPv6 address", r.Dst, r.Via)
		}
		if ip.Is6() != dst.Addr().Is6() {
			return fmt.Errorf("route %s: via %s: not the family of the destination", r.Dst, r.Via)
		}
	}
	if !ns.hasDev(r.Dev) {
		return fmt.Errorf("route %s: dev %q is not a link of the namespace", r.Dst, r.Dev)
	}
	if err := validTable(r.Table, true); err != nil {
		return fmt.Errorf("route %s: %w", r.Dst, err)
	}
	return nil
}

// validTable accepts user tables; 0 (main) only for routes.
func validTable(t int, zeroOK bool) error {
	switch {
	case t == 0 && zeroOK:
		return nil
	case t <= 0 || int64(t) > 0xffffffff:
		return fmt.Errorf("table %d out of range", t)
	case t == 253 || t == 254 || t == 255:
		return fmt.Errorf("table %d is reserved (default/main/local)", t)
	}
	return nil
}

func (r Rule) validate(ns *Namespace) error {
	if r.Priority <= 0 || r.Priority > 0xffffffff || r.Priority == 32766 || r.Priority == 32767 {
		return fmt.Errorf("rule priority %d: want 1..4294967295 except 32766/32767", r.Priority)
	}
	if r.From == "" && r.IIF == "" {
		return fmt.Errorf("rule %d: neither from nor iif", r.Priority)
	}
	if r.From != "" {
		if _, err := parseNet(r.From); err != nil {
			return fmt.Errorf("rule %d: from %q: want an IPv4 or IPv6 network CIDR", r.Priority, r.From)
		}
	}
	if r.IIF != "" && !ns.hasDev(r.IIF) {
		return fmt.Errorf("rule %d: iif %q is not a link of the namespace", r.Priority, r.IIF)
	}
	if err := validTable(r.Table, false); err != nil {
		return fmt.Errorf("rule %d: %w", r.Priority, err)
	}
	return nil
}

// IPv6 reports whether the rule is an IPv6 one (its From is an IPv6 prefix).
func (r Rule) IPv6() bool {
	p, err := netip.ParsePrefix(r.From)
	return err == nil && p.Addr().Is6()
}

// ParseAddrOrPrefix parses an IPv4 address or CIDR (an address is a /32). NAT is IPv4
// only: there is no NAT66.
func ParseAddrOrPrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil || !p.Addr().Is4() || p.Masked() != p {
			return netip.Prefix{}, fmt.Errorf("%q: want an IPv4 address or network CIDR", s)
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Prefix{}, fmt.Errorf("%q: want an IPv4 address or network CIDR", s)
	}
	return netip.PrefixFrom(a, 32), nil
}

func (r NATRule) validate(ns *Namespace) error {
	m := r.Match
	if m == (NATMatch{}) {
		return errors.New("matches everything: give at least one field")
	}
	for _, a := range []string{m.Daddr, m.Saddr} {
		if a == "" {
			continue
		}
		if _, err := ParseAddrOrPrefix(a); err != nil {
			return err
		}
	}
	for _, d := range []string{m.IIF, m.OIF} {
		if d != "" && !ns.hasDev(d) {
			return fmt.Errorf("dev %q is not a link of the namespace", d)
		}
	}
	switch r.Kind {
	case NATDNAT:
		if m.OIF != "" {
			return errors.New("dnat happens before routing: no oif")
		}
	case NATSNAT:
		if m.IIF != "" {
			return errors.New("snat: match iif is not supported, use saddr")
		}
	default:
		return fmt.Errorf("kind %q: want dnat or snat", r.Kind)
	}
	if ip, err := netip.ParseAddr(r.To); err != nil || !ip.Is4() {
		return fmt.Errorf("to %q: want an IPv4 address", r.To)
	}
	return nil
}

// Link returns the namespace's link called name, or nil.
func (ns *Namespace) Link(name string) *Link { return ns.link(name) }

// validateMetadata checks that a metadata proxy is in a qmeta- namespace of its network,
// with MetadataAddr/32 on a link, and names each instance address once.
func (ns *Namespace) validateMetadata() error {
	m := ns.Metadata
	if m == nil {
		return nil
	}
	if ns.Name != PrefixMeta+m.Network {
		return fmt.Errorf("metadata proxy of network %q in namespace %s: want %s%s", m.Network, ns.Name, PrefixMeta, m.Network)
	}
	holds := false
	for _, l := range ns.Links {
		holds = holds || slices.Contains(l.Addresses, MetadataAddr+"/32")
	}
	if !holds {
		return fmt.Errorf("metadata proxy without a link holding %s/32", MetadataAddr)
	}
	seen := map[netip.Addr]bool{}
	for _, in := range m.Instances {
		a, err := netip.ParseAddr(in.IP)
		if err != nil || !a.Is4() {
			return fmt.Errorf("metadata instance address %q: want IPv4", in.IP)
		}
		if seen[a] {
			return fmt.Errorf("metadata instance address %s twice", a)
		}
		seen[a] = true
		if in.DeviceID == "" {
			return fmt.Errorf("metadata instance %s without device_id", a)
		}
	}
	return nil
}
