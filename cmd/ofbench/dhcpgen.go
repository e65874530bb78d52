// The DHCP benchmark's load: each simulated host's VM ports run DHCP clients through
// complete DISCOVER -> OFFER -> REQUEST -> ACK exchanges, and every answer is checked.

package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/dhcp4"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
)

// dhcpLease is the lease both servers hand out: Neutron's dhcp_lease_duration default.
const dhcpLease = 24 * time.Hour

// dhcpDomain is the domain both servers give: Neutron's dns_domain default.
const dhcpDomain = "openstacklocal"

// bootpBroadcast is the BOOTP broadcast flag the clients set, as clients that cannot take
// unicast before they are configured do (RFC 2131 4.1): the answers come to the broadcast
// address. Without it dnsmasq would put every client in the kernel's neighbour table, which
// is one for all namespaces and overflows at 1,024 entries by default (gc_thresh3): the
// benchmark's 2,000 clients would lose answers, and other users of the machine neighbours.
const bootpBroadcast = 0x8000

// dhcpParams is the parameter request list of Debian's dhclient (its dhclient.conf):
// mask, broadcast, time offset, router, domain, DNS, search, host name, NetBIOS name
// servers and scope, MTU, classless routes, NTP.
var dhcpParams = []byte{1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42}

// dhcpClient is the DHCP client of one VM port.
type dhcpClient struct {
	mac    net.HardwareAddr
	ip     netip.Addr // the port's fixed IP: the address every answer must give
	server netip.Addr // the network's DHCP port address: the server identifier answers carry
	inPort uint32     // the port's OpenFlow port (dvrflow); 0 where answers come by no port
}

// dhcpExchange is one exchange in flight.
type dhcpExchange struct {
	client int
	xid    uint32
	want   dhcp4.MessageType // OFFER, then ACK
	start  time.Time         // DISCOVER sent
	sent   time.Time         // last message sent
}

// dhcpMsg is a client message to send.
type dhcpMsg struct {
	inPort uint32
	frame  []byte
}

// dhcpWire carries a host's client messages to the server under test.
type dhcpWire interface {
	send(msgs []dhcpMsg) error
}

// dhcpHost is the load of one simulated host: its VM ports' clients keep window exchanges
// in flight, taking turns, several at a time each (told apart by xid).
type dhcpHost struct {
	counted
	gen     *loadGen
	clients []dhcpClient
	wire    dhcpWire
	sw      *ofsim.Switch // the host's br-int, on the dvrflow side

	pending []dhcpExchange
	expired map[uint32]bool // xids of exchanges counted lost: a late answer is stray, not wrong
	out     []dhcpMsg       // REQUESTs due, sent with the next fill
	window  int
	next    int    // the client whose turn it is
	xid     uint32 // the last xid given
}

// newDHCPHosts returns the loads of t's hosts: each VM port a client of its network's
// DHCP port, with its OpenFlow port number when ofPorts.
func newDHCPHosts(g *loadGen, t *simTopology, ofPorts bool) []*dhcpHost {
	hosts := make([]*dhcpHost, t.Hosts)
	for h := range t.Hosts {
		d := &dhcpHost{gen: g, expired: map[uint32]bool{}, xid: uint32(h) << 20}
		for _, vm := range t.vmsOf(h) {
			c := dhcpClient{mac: vm.MAC, ip: vm.IP, server: t.DHCPPorts[vm.Net].IP}
			if ofPorts {
				c.inPort = vm.PortNo
			}
			d.clients = append(d.clients, c)
		}
		hosts[h] = d
	}
	return hosts
}

func (h *dhcpHost) sim() *ofsim.Switch { return h.sw }

func (h *dhcpHost) setWindow(n int, reset bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.window = n
	if reset {
		h.pending, h.out, h.res = nil, nil, loadCounts{}
		clear(h.expired)
	}
}

// message builds client c's message of type typ with xid; a REQUEST selects offer.
func (h *dhcpHost) message(c int, typ dhcp4.MessageType, xid uint32, offer *dhcp4.Reply) dhcpMsg {
	cl := &h.clients[c]
	m := &dhcp4.Message{Type: typ, XID: xid, Flags: bootpBroadcast, CHAddr: cl.mac, ParamRequest: dhcpParams}
	if offer != nil {
		m.RequestedIP, m.ServerID = offer.YIAddr, offer.ServerID
	}
	return dhcpMsg{inPort: cl.inPort, frame: dhcp4.AppendRequest(nil, m, nil)}
}

// fill sends the REQUESTs due and DISCOVERs until the window is full, in one send.
func (h *dhcpHost) fill() {
	if !h.gen.running.Load() {
		return
	}
	now := time.Now()
	h.mu.Lock()
	msgs := h.out
	h.out = nil
	for len(h.pending) < h.window {
		c := h.next % len(h.clients)
		h.next++
		h.xid++
		h.pending = append(h.pending, dhcpExchange{client: c, xid: h.xid, want: dhcp4.Offer, start: now, sent: now})
		msgs = append(msgs, h.message(c, dhcp4.Discover, h.xid, nil))
	}
	h.mu.Unlock()
	if len(msgs) == 0 {
		return
	}
	if err := h.wire.send(msgs); err != nil {
		// The exchanges time out as lost; a dropped switch connection is dialled again.
		h.gen.log.Debug("sending DHCP requests", zap.Error(err))
	}
}

func (h *dhcpHost) expire(now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	measuring := h.gen.measuring.Load()
	if len(h.expired) > 1<<16 {
		clear(h.expired)
	}
	h.pending = slices.DeleteFunc(h.pending, func(e dhcpExchange) bool {
		if now.Sub(e.sent) <= lostAfter {
			return false
		}
		h.expired[e.xid] = true
		if measuring {
			h.res.lost++
		}
		return true
	})
}

// take sees every message the controller sends the switch; it keeps the PACKET_OUTs.
func (h *dhcpHost) take(msg []byte) bool {
	if ofproto.MsgType(msg[1]) != ofproto.TypePacketOut {
		return false
	}
	now := time.Now()
	port, data, ok := packetOutData(msg)
	var f *dhcp4.Frame
	if ok {
		var err error
		if f, err = dhcp4.ParseReply(data); err != nil {
			ok = false
		}
	}
	if !ok {
		h.stray()
		return true
	}
	h.reply(f, port, now)
	return true // the Tap's After sends the REQUESTs due once the whole read is taken
}

// stray counts a message that answers no exchange.
func (h *dhcpHost) stray() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen.measuring.Load() {
		h.res.unmatched++
	}
}

// reply takes server answer f, sent out on port outPort (0 where there is no port): it
// checks it against the exchange it answers, queues the REQUEST an OFFER calls for and
// counts an ACK's exchange answered. An answer to no exchange of this host is wrong, but
// for a late one to an exchange counted lost, which is stray.
func (h *dhcpHost) reply(f *dhcp4.Frame, outPort uint32, now time.Time) {
	r := f.Reply
	h.mu.Lock()
	defer h.mu.Unlock()
	measuring := h.gen.measuring.Load()
	c := slices.IndexFunc(h.clients, func(c dhcpClient) bool { return bytes.Equal(c.mac, r.CHAddr) })
	i := -1
	if c >= 0 {
		i = slices.IndexFunc(h.pending, func(e dhcpExchange) bool { return e.client == c && e.xid == r.XID })
	}
	if i < 0 {
		switch {
		case c >= 0 && h.expired[r.XID]:
			delete(h.expired, r.XID)
			if measuring {
				h.res.unmatched++
			}
		case measuring:
			h.wrongLocked(func() string {
				return fmt.Sprintf("%s to %s xid %#x: no exchange of this host has that client and xid", r.Type, r.CHAddr, r.XID)
			})
		}
		return
	}
	e := &h.pending[i]
	if err := checkDHCPReply(f, e.want, e.xid, &h.clients[c], outPort); err != nil {
		h.pending = slices.Delete(h.pending, i, i+1)
		if measuring {
			h.wrongLocked(err.Error)
		}
		return
	}
	if e.want == dhcp4.Offer {
		e.want, e.sent = dhcp4.Ack, now
		h.out = append(h.out, h.message(c, dhcp4.Request, e.xid, r))
		return
	}
	if measuring {
		h.res.answered++
		h.res.lat = append(h.res.lat, uint32(now.Sub(e.start)/time.Microsecond))
	}
	h.pending = slices.Delete(h.pending, i, i+1)
}

// checkDHCPReply says what is wrong with answer f to client c's exchange xid that waits
// for a message of type want, nil when nothing is: it must be of that type, carry the xid
// and the client's MAC, give the client its port's fixed IP for dhcpLease, come from its
// network's DHCP port, go to the broadcast address as the client asked, and, from
// dvrflow, go out on the client's port.
func checkDHCPReply(f *dhcp4.Frame, want dhcp4.MessageType, xid uint32, c *dhcpClient, outPort uint32) error {
	r := f.Reply
	lease, _ := r.Options.Get(dhcp4.OptLeaseTime)
	switch {
	case r.Type != want:
		return fmt.Errorf("%s for %s where %s was due", r.Type, c.ip, want)
	case r.XID != xid:
		return fmt.Errorf("%s for %s: xid %#x, want %#x", r.Type, c.ip, r.XID, xid)
	case !bytes.Equal(r.CHAddr, c.mac):
		return fmt.Errorf("%s for %s: chaddr %s, want %s", r.Type, c.ip, r.CHAddr, c.mac)
	case r.YIAddr != c.ip:
		return fmt.Errorf("%s for %s (%s): yiaddr %s", r.Type, c.ip, c.mac, r.YIAddr)
	case r.ServerID != c.server:
		return fmt.Errorf("%s for %s: server identifier %s, want %s", r.Type, c.ip, r.ServerID, c.server)
	case len(lease) != 4 || time.Duration(binary.BigEndian.Uint32(lease))*time.Second != dhcpLease:
		return fmt.Errorf("%s for %s: lease time option %x, want %v", r.Type, c.ip, lease, dhcpLease)
	case !bytes.Equal(f.DstMAC, dhcp4.BroadcastMAC) || f.DstIP != dhcp4.BroadcastIP:
		return fmt.Errorf("%s for %s: to %s at %s, want the broadcast address", r.Type, c.ip, f.DstIP, f.DstMAC)
	case outPort != c.inPort:
		return fmt.Errorf("%s for %s: sent out on port %d, want %d", r.Type, c.ip, outPort, c.inPort)
	}
	return nil
}

// ofDHCPWire sends a host's client messages as its br-int does: PACKET_INs from table
// DHCP_IPV4 with the dhcp app's cookie and the VM's port as in_port.
type ofDHCPWire struct{ sw *ofsim.Switch }

func (w ofDHCPWire) send(msgs []dhcpMsg) error {
	var b []byte
	for _, m := range msgs {
		b = ofsim.AppendPacketIn(b, apps.IntDHCPv4, apps.Cookie(apps.AppDHCP), m.inPort, m.frame)
	}
	return w.sw.SendRaw(b)
}
