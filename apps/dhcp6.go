package apps

import (
	"bytes"
	"encoding/binary"
	"iter"
	"net/netip"
	"slices"
	"time"

	"github.com/dvrflow/dvrflow/dhcp6"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// DHCPv6, answered by the controller on the VM's own host as DHCPv4 is (dhcp.go): on br-int,
// LOCAL_SWITCHING sends a local port's DHCPv6 client messages (UDP 546 -> 547; with port
// security, only from the port's own MAC) to DHCP_IPV6, which sends them to the controller
// through MeterController. The answer (AnswerDHCPv6) comes back as a packet-out on the
// port, from the network's network:dhcp port: its MAC, the link-local address EUI-64
// derives from it, and its DUID-LL as server identifier, as the DHCP agent's dnsmasq on
// that port would answer.
//
// What is answered follows Neutron's dnsmasq configuration (neutron/agent/linux/dhcp.py):
// dnsmasq gets a "static" --dhcp-range for each DHCP-enabled IPv6 subnet whose
// ipv6_address_mode is dhcpv6-stateful or dhcpv6-stateless, or which has neither mode set,
// and whose prefix is at least /64; a slaac subnet, or one with only ipv6_ra_mode set, gets
// none, so dnsmasq answers nothing there. Its hosts file gives a port its fixed IP on a
// stateful (or mode-less) subnet, and no address on a stateless one. So:
//   - a port with an address on a stateful subnet is handed exactly that address: ADVERTISE
//     for a SOLICIT (REPLY at once with rapid commit), REPLY for a REQUEST, RENEW or REBIND
//     (an address the client holds that is not the port's gets lifetimes 0, RFC 8415
//     18.3.4); a CONFIRM of the port's addresses is on link, of any other NotOnLink;
//   - a port without one (a stateless subnet) is told NoAddrsAvail to a SOLICIT, as dnsmasq
//     in static mode tells it (the client ignores that ADVERTISE: RFC 8415 18.2.9), and
//     NoBinding to a RENEW or REBIND;
//   - INFORMATION-REQUEST gets the DNS servers (the IPv6 dns_nameservers of the served
//     subnets the port has an address on, of all of them when it has none) and the domain
//     search list (DHCPConfig.Domain, --dns-domain), as the answers with addresses do;
//   - RELEASE and DECLINE get a REPLY with status Success and change nothing (the address is
//     the port's fixed IP, reserved in the API, not leased).
// Times are the DHCPv4 lease's: preferred and valid lifetimes the lease time, T1 at half and
// T2 at seven eighths of it, as dnsmasq sets them. A firewalled port's DHCPv6 from another
// MAC, or on a network the controller does not serve DHCPv6 on, never reaches DHCP_IPV6:
// the firewall's base egress flows decide it.

// dhcp6Mode reports whether the controller answers DHCPv6 on subnet s (dnsmasq has a
// --dhcp-range for it) and whether it hands out addresses there (a stateful or mode-less
// subnet, as opposed to a stateless one).
func dhcp6Mode(s *topology.SubnetInfo) (served, stateful bool) {
	if s == nil || s.IsIPv4() || !s.EnableDHCP || !s.Prefix.IsValid() || s.Prefix.Bits() < 64 {
		return false, false
	}
	switch s.IPv6AddressMode {
	case topology.IPv6DHCPStateful:
		return true, true
	case topology.IPv6DHCPStateless:
		return true, false
	case "":
		return s.IPv6RAMode == "", s.IPv6RAMode == ""
	}
	return false, false
}

// dhcp6Served yields the DHCP server port srv's IPv6 addresses on the subnets DHCPv6 is
// answered on, each with its subnet (none when srv is nil).
func dhcp6Served(v *topology.View, srv *topology.PortInfo) iter.Seq2[netip.Addr, *topology.SubnetInfo] {
	return func(yield func(netip.Addr, *topology.SubnetInfo) bool) {
		if srv == nil || srv.MAC == nil {
			return
		}
		for _, ip := range srv.IPs {
			s := v.Subnet(ip.SubnetID)
			if served, _ := dhcp6Mode(s); served && ip.Addr.Is6() && !yield(ip.Addr, s) {
				return
			}
		}
	}
}

// servesDHCPv6 reports whether the controller answers DHCPv6 on network netID.
func servesDHCPv6(v *topology.View, netID string) bool {
	for range dhcp6Served(v, v.DHCPServer(netID)) {
		return true
	}
	return false
}

// dhcp6Net computes the LOCAL_SWITCHING flows that send the DHCPv6 client messages of
// network netID's local ports to DHCP_IPV6, on a network the controller answers DHCPv6 on.
func dhcp6Net(v *topology.View, st *BridgeState, netID string) []ofproto.Flow {
	if st.Bridge != topology.BrInt || !servesDHCPv6(v, netID) {
		return nil
	}
	if n := v.Network(netID); n == nil || n.External {
		return nil
	}
	return dhcpv6.portFlows(v, st, netID)
}

// DHCPv6 outcomes, for counters and logs: what the server did with a client's message.
const (
	DHCPv6Advertised = "advertise"   // ADVERTISE with the port's addresses
	DHCPv6Replied    = "reply"       // REPLY with the port's addresses (REQUEST, RENEW, REBIND, rapid commit)
	DHCPv6NoAddrs    = "no-addrs"    // the port has no address to hand out (NoAddrsAvail, NoBinding)
	DHCPv6Confirmed  = "confirm"     // CONFIRM of the port's own addresses
	DHCPv6NotOnLink  = "not-on-link" // CONFIRM or REQUEST of addresses that are not the port's
	DHCPv6Informed   = "inform"      // INFORMATION-REQUEST answered
	DHCPv6Released   = "release"
	DHCPv6Declined   = "decline"
	DHCPv6OtherSrv   = "other-server" // a message for another server's DUID
	DHCPv6NoServer   = "no-server"    // DHCPv6 is not answered on the port's network
	DHCPv6NotPort    = "not-port"     // the Ethernet source is not the port's MAC
	DHCPv6Invalid    = "invalid"      // discarded as RFC 8415 16 says: no client ID, a server ID where none may be, ...
)

// DHCPv6Outcomes are the outcomes, in the order counters list them.
var DHCPv6Outcomes = [...]string{DHCPv6Advertised, DHCPv6Replied, DHCPv6NoAddrs, DHCPv6Confirmed, DHCPv6NotOnLink,
	DHCPv6Informed, DHCPv6Released, DHCPv6Declined, DHCPv6OtherSrv, DHCPv6NoServer, DHCPv6NotPort, DHCPv6Invalid}

// dhcp6Preference is the Preference option of an ADVERTISE: the highest, so that the client
// takes it at once instead of waiting for other servers' (RFC 8415 18.2.1); the controller
// is the network's only DHCPv6 server.
const dhcp6Preference = 255

// AnswerDHCPv6 decides the answer to client message m received from port p, at View v: the
// reply frame to send out on the port (nil when none is due) and the outcome.
func AnswerDHCPv6(v *topology.View, cfg DHCPConfig, p *topology.PortInfo, m *dhcp6.Message) (*dhcp6.Frame, string) {
	if !bytes.Equal(m.SrcMAC, p.MAC) {
		return nil, DHCPv6NotPort
	}
	srv := v.DHCPServer(p.NetworkID)
	var subnetsBuf [4]*topology.SubnetInfo
	served := subnetsBuf[:0]
	for _, s := range dhcp6Served(v, srv) {
		if !slices.Contains(served, s) {
			served = append(served, s)
		}
	}
	if len(served) == 0 {
		return nil, DHCPv6NoServer
	}
	// The port's addresses to hand out, and the subnets it has an address on, whose DNS
	// servers it is told (every served subnet's when it has none: a port that took no
	// address on a stateful subnet still hears the link's servers, as any client of
	// dnsmasq's ranges does).
	var addrsBuf [4]netip.Addr
	addrs := addrsBuf[:0]
	var mineBuf [4]*topology.SubnetInfo
	mine := mineBuf[:0]
	for _, ip := range p.IPs {
		i := slices.IndexFunc(served, func(s *topology.SubnetInfo) bool { return s.ID == ip.SubnetID })
		if i < 0 || !ip.Addr.Is6() {
			continue
		}
		if _, stateful := dhcp6Mode(served[i]); stateful {
			addrs = append(addrs, ip.Addr)
		}
		if !slices.Contains(mine, served[i]) {
			mine = append(mine, served[i])
		}
	}
	if len(mine) == 0 {
		mine = served
	}

	// Discard what RFC 8415 16 says a server discards.
	ours := m.ServerID != nil && isDUIDLL(m.ServerID, srv.MAC)
	switch m.Type {
	case dhcp6.Solicit, dhcp6.Confirm, dhcp6.Rebind:
		if m.ServerID != nil {
			return nil, DHCPv6Invalid
		}
	case dhcp6.Request, dhcp6.Renew, dhcp6.Release, dhcp6.Decline:
		if m.ServerID == nil {
			return nil, DHCPv6Invalid
		}
		if !ours {
			return nil, DHCPv6OtherSrv
		}
	case dhcp6.InformationRequest:
		if m.ServerID != nil && !ours {
			return nil, DHCPv6OtherSrv
		}
		if len(m.IANA) > 0 {
			return nil, DHCPv6Invalid
		}
	}
	if m.ClientID == nil && m.Type != dhcp6.InformationRequest {
		return nil, DHCPv6Invalid
	}

	w := newDHCP6Writer(m, srv)
	lease := uint32(cfg.LeaseTime / time.Second)
	t1, t2 := lease/2, uint32(uint64(lease)*7/8)
	typ, outcome, options := dhcp6.Reply, "", true
	switch m.Type {
	case dhcp6.Solicit:
		typ = dhcp6.Advertise
		if m.RapidCommit {
			typ = dhcp6.Reply
		}
		if len(addrs) == 0 || len(m.IANA) == 0 {
			// dnsmasq's answer with no address for the client: the status alone.
			if m.RapidCommit {
				w.empty(dhcp6.OptRapidCommit)
			}
			w.status(dhcp6.StatusNoAddrsAvail, "no addresses available")
			return w.frame(typ), DHCPv6NoAddrs
		}
		outcome = DHCPv6Advertised
		if m.RapidCommit {
			outcome = DHCPv6Replied
		}
		for i, ia := range m.IANA {
			if i == 0 {
				w.ia(ia.IAID, t1, t2, addrs, nil, lease, nil)
			} else { // the port's addresses go to one IA only
				w.ia(ia.IAID, 0, 0, nil, nil, 0, &dhcp6.Status{Code: dhcp6.StatusNoAddrsAvail, Message: "no addresses available"})
			}
		}
		w.status(dhcp6.StatusSuccess, "success")
		if m.RapidCommit {
			w.empty(dhcp6.OptRapidCommit)
		} else {
			w.u8(dhcp6.OptPreference, dhcp6Preference)
		}
	case dhcp6.Request:
		outcome = DHCPv6Replied
		for i, ia := range m.IANA {
			switch {
			case len(addrs) == 0 || i > 0:
				w.ia(ia.IAID, 0, 0, nil, nil, 0, &dhcp6.Status{Code: dhcp6.StatusNoAddrsAvail, Message: "no addresses available"})
				if i == 0 {
					outcome = DHCPv6NoAddrs
				}
			case !onLink(v, p.NetworkID, ia.Addrs):
				w.ia(ia.IAID, 0, 0, nil, nil, 0, &dhcp6.Status{Code: dhcp6.StatusNotOnLink, Message: "not on link"})
				outcome = DHCPv6NotOnLink
			default:
				w.ia(ia.IAID, t1, t2, addrs, nil, lease, nil)
			}
		}
		if len(m.IANA) == 0 {
			w.status(dhcp6.StatusNoAddrsAvail, "no addresses available")
			outcome = DHCPv6NoAddrs
		}
	case dhcp6.Renew, dhcp6.Rebind:
		outcome = DHCPv6Replied
		if len(addrs) == 0 {
			outcome = DHCPv6NoAddrs
		}
		for i, ia := range m.IANA {
			if len(addrs) == 0 || i > 0 {
				w.ia(ia.IAID, 0, 0, nil, nil, 0, &dhcp6.Status{Code: dhcp6.StatusNoBinding, Message: "no binding"})
			} else {
				w.ia(ia.IAID, t1, t2, addrs, ia.Addrs, lease, nil)
			}
		}
	case dhcp6.Confirm:
		asked := 0
		outcome = DHCPv6Confirmed
		for _, ia := range m.IANA {
			for _, a := range ia.Addrs {
				asked++
				if !slices.Contains(addrs, a.Addr) {
					outcome = DHCPv6NotOnLink
				}
			}
		}
		if asked == 0 {
			return nil, DHCPv6Invalid // nothing to confirm: no reply (RFC 8415 18.3.3)
		}
		if outcome == DHCPv6Confirmed {
			w.status(dhcp6.StatusSuccess, "all addresses still on link")
		} else {
			w.status(dhcp6.StatusNotOnLink, "not on link")
		}
		options = false
	case dhcp6.Release, dhcp6.Decline:
		outcome = DHCPv6Released
		if m.Type == dhcp6.Decline {
			outcome = DHCPv6Declined
		}
		w.status(dhcp6.StatusSuccess, "release received")
		options = false
	case dhcp6.InformationRequest:
		outcome = DHCPv6Informed
	default:
		return nil, DHCPv6Invalid
	}
	if options {
		w.dnsOptions(m, mine, cfg.Domain)
	}
	return w.frame(typ), outcome
}

// isDUIDLL reports whether duid is the DUID-LL of mac.
func isDUIDLL(duid []byte, mac []byte) bool {
	return len(duid) == 4+len(mac) && duid[0] == 0 && duid[1] == 3 && duid[2] == 0 && duid[3] == 1 && bytes.Equal(duid[4:], mac)
}

// onLink reports whether every address is in a prefix of one of network netID's IPv6
// subnets (RFC 8415 18.3.2: "appropriate for the link").
func onLink(v *topology.View, netID string, addrs []dhcp6.IAAddr) bool {
	n := v.Network(netID)
	if n == nil {
		return false
	}
	for _, a := range addrs {
		if !slices.ContainsFunc(n.SubnetIDs, func(id string) bool {
			s := v.Subnet(id)
			return s != nil && !s.IsIPv4() && s.Prefix.Contains(a.Addr)
		}) {
			return false
		}
	}
	return true
}

// dhcp6Writer builds a reply's options into one buffer, each value its own full slice of
// it (earlier values stay valid when the buffer grows).
type dhcp6Writer struct {
	m    *dhcp6.Message
	srv  *topology.PortInfo
	opts []dhcp6.Option
	a    []byte
}

// newDHCP6Writer starts the reply to m from server srv: the client's identifier echoed, the
// server's.
func newDHCP6Writer(m *dhcp6.Message, srv *topology.PortInfo) *dhcp6Writer {
	w := &dhcp6Writer{m: m, srv: srv, opts: make([]dhcp6.Option, 0, 8), a: make([]byte, 0, 256)}
	if m.ClientID != nil {
		w.opts = append(w.opts, dhcp6.Option{Code: dhcp6.OptClientID, Data: m.ClientID})
	}
	start := len(w.a)
	w.a = dhcp6.AppendDUIDLL(w.a, srv.MAC)
	w.set(dhcp6.OptServerID, start)
	return w
}

// set adds option code with what was appended since start.
func (w *dhcp6Writer) set(code uint16, start int) {
	w.opts = append(w.opts, dhcp6.Option{Code: code, Data: w.a[start:len(w.a):len(w.a)]})
}

func (w *dhcp6Writer) empty(code uint16) { w.set(code, len(w.a)) }

func (w *dhcp6Writer) u8(code uint16, v uint8) {
	start := len(w.a)
	w.a = append(w.a, v)
	w.set(code, start)
}

func (w *dhcp6Writer) status(code dhcp6.StatusCode, msg string) {
	start := len(w.a)
	w.a = dhcp6.AppendStatus(w.a, code, msg)
	w.set(dhcp6.OptStatusCode, start)
}

// ia adds an IA_NA: addrs with lifetime life, then the client's addresses that are not
// among them with lifetimes 0 (stale), then status if not nil.
func (w *dhcp6Writer) ia(iaid, t1, t2 uint32, addrs []netip.Addr, stale []dhcp6.IAAddr, life uint32, status *dhcp6.Status) {
	start := len(w.a)
	w.a = binary.BigEndian.AppendUint32(w.a, iaid)
	w.a = binary.BigEndian.AppendUint32(w.a, t1)
	w.a = binary.BigEndian.AppendUint32(w.a, t2)
	iaAddr := func(a netip.Addr, life uint32) {
		w.a = append(w.a, 0, byte(dhcp6.OptIAAddr), 0, 24)
		v := a.As16()
		w.a = append(w.a, v[:]...)
		w.a = binary.BigEndian.AppendUint32(w.a, life)
		w.a = binary.BigEndian.AppendUint32(w.a, life)
	}
	for _, a := range addrs {
		iaAddr(a, life)
	}
	for _, a := range stale {
		if !slices.Contains(addrs, a.Addr) {
			iaAddr(a.Addr, 0)
		}
	}
	if status != nil {
		w.a = binary.BigEndian.AppendUint16(w.a, dhcp6.OptStatusCode)
		w.a = binary.BigEndian.AppendUint16(w.a, uint16(2+len(status.Message)))
		w.a = dhcp6.AppendStatus(w.a, status.Code, status.Message)
	}
	w.set(dhcp6.OptIANA, start)
}

// dnsOptions adds the DNS Recursive Name Server option (the IPv6 dns_nameservers of the
// subnets, in order, once each) and the Domain Search List option (domain), each if it has
// a value and the client asked for it or sent no Option Request option (as dnsmasq does).
func (w *dhcp6Writer) dnsOptions(m *dhcp6.Message, subnets []*topology.SubnetInfo, domain string) {
	if m.ORO == nil || m.Requested(dhcp6.OptDNSServers) {
		start := len(w.a)
		for _, s := range subnets {
			for _, ns := range s.DNSNameservers {
				a, err := netip.ParseAddr(ns)
				if err != nil || !a.Is6() || a.Is4In6() || a.IsUnspecified() || seenAddr(w.a[start:], a) {
					continue
				}
				w.a = dhcp6.AppendAddrs(w.a, a)
			}
		}
		if len(w.a) > start {
			w.set(dhcp6.OptDNSServers, start)
		}
	}
	if domain != "" && (m.ORO == nil || m.Requested(dhcp6.OptDomainSearch)) {
		start := len(w.a)
		if w.a = dhcp6.AppendDomains(w.a, domain); len(w.a) > start {
			w.set(dhcp6.OptDomainSearch, start)
		}
	}
}

// seenAddr reports whether a is among the addresses encoded in b.
func seenAddr(b []byte, a netip.Addr) bool {
	v := a.As16()
	for ; len(b) >= 16; b = b[16:] {
		if [16]byte(b[:16]) == v {
			return true
		}
	}
	return false
}

// frame is the reply of type typ, from the server's MAC and link-local address to the
// client's.
func (w *dhcp6Writer) frame(typ dhcp6.MessageType) *dhcp6.Frame {
	return &dhcp6.Frame{SrcMAC: w.srv.MAC, SrcIP: ofproto.LinkLocal(w.srv.MAC), DstMAC: w.m.SrcMAC, DstIP: w.m.SrcIP,
		Answer: &dhcp6.Answer{Type: typ, XID: w.m.XID, Options: w.opts}}
}
