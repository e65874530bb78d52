// The server's reply: options, the BOOTP message, and the whole frame around it.

package dhcp4

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
)

// Option is one option of a reply: its code and its value, already encoded.
type Option struct {
	Code uint8
	Data []byte
}

// Options are a reply's options in the order they go on the wire. Set replaces an option of
// the same code in place, so an operator's option (extra_dhcp_opts) overrides the server's.
type Options []Option

// Set sets option code to data, replacing a previous value of the same code.
func (o *Options) Set(code uint8, data []byte) {
	for i := range *o {
		if (*o)[i].Code == code {
			(*o)[i].Data = data
			return
		}
	}
	*o = append(*o, Option{code, data})
}

// Get returns the value of option code.
func (o Options) Get(code uint8) ([]byte, bool) {
	for _, x := range o {
		if x.Code == code {
			return x.Data, true
		}
	}
	return nil, false
}

// Delete removes option code.
func (o *Options) Delete(code uint8) {
	*o = slices.DeleteFunc(*o, func(x Option) bool { return x.Code == code })
}

// IPs encodes a list of IPv4 addresses (invalid and IPv6 ones are left out).
func IPs(addrs ...netip.Addr) []byte { return AppendIPs(make([]byte, 0, 4*len(addrs)), addrs...) }

// AppendIPs appends the encoding of IPs(addrs...) to b.
func AppendIPs(b []byte, addrs ...netip.Addr) []byte {
	for _, a := range addrs {
		if a.Is4() {
			v := a.As4()
			b = append(b, v[:]...)
		}
	}
	return b
}

// U32 encodes a 32-bit number (times, in seconds).
func U32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// U16 encodes a 16-bit number (the MTU).
func U16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// Route is a classless static route (RFC 3442); an invalid Router means on-link (0.0.0.0).
type Route struct {
	Dest   netip.Prefix
	Router netip.Addr
}

// ClasslessRoutes encodes option 121: each route as its prefix length, the significant
// octets of its destination, and its router.
func ClasslessRoutes(routes []Route) []byte { return AppendClasslessRoutes(nil, routes) }

// AppendClasslessRoutes appends the encoding of ClasslessRoutes(routes) to b.
func AppendClasslessRoutes(b []byte, routes []Route) []byte {
	for _, r := range routes {
		bits := r.Dest.Bits()
		d := r.Dest.Masked().Addr().As4()
		b = append(b, byte(bits))
		b = append(b, d[:(bits+7)/8]...)
		gw := [4]byte{}
		if r.Router.Is4() {
			gw = r.Router.As4()
		}
		b = append(b, gw[:]...)
	}
	return b
}

// Reply is the server's answer to a client's message.
type Reply struct {
	Type   MessageType
	XID    uint32
	Flags  uint16     // echoed from the request (the broadcast flag)
	CIAddr netip.Addr // echoed for INFORM and renewals
	YIAddr netip.Addr // the client's address (invalid for NAK and INFORM)
	SIAddr netip.Addr // next server (extra_dhcp_opts server-ip-address)
	GIAddr netip.Addr
	CHAddr net.HardwareAddr
	// Options after message type and server identifier, which come first.
	ServerID netip.Addr
	Options  Options
	// MaxSize is the largest DHCP message the client takes (its option 57, at least 548);
	// an option that does not fit is left out.
	MaxSize int
}

// Frame is a reply with the addresses it travels with.
type Frame struct {
	SrcMAC, DstMAC net.HardwareAddr
	SrcIP, DstIP   netip.Addr
	Reply          *Reply
}

var (
	// BroadcastMAC is where replies go that the client cannot yet receive by unicast.
	BroadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	// BroadcastIP is the limited broadcast.
	BroadcastIP = netip.AddrFrom4([4]byte{255, 255, 255, 255})
)

// AppendMessage appends the BOOTP/DHCP message of r to b.
func (r *Reply) AppendMessage(b []byte) []byte {
	start := len(b)
	b = append(b, opBootReply, htypeEthernet, 6, 0)
	b = binary.BigEndian.AppendUint32(b, r.XID)
	b = binary.BigEndian.AppendUint16(b, 0) // secs
	b = binary.BigEndian.AppendUint16(b, r.Flags&flagBroadcast)
	for _, a := range []netip.Addr{r.CIAddr, r.YIAddr, r.SIAddr, r.GIAddr} {
		v := [4]byte{}
		if a.Is4() {
			v = a.As4()
		}
		b = append(b, v[:]...)
	}
	ch := [16]byte{}
	copy(ch[:], r.CHAddr)
	b = append(b, ch[:]...)
	b = append(b, make([]byte, 64+128)...) // sname, file
	b = append(b, magicCookie[:]...)
	limit := max(r.MaxSize, minMaxSize-28) - 1 // room for the end option
	b = appendOption(b, OptMessageType, []byte{byte(r.Type)}, -1)
	if r.ServerID.Is4() {
		b = appendOption(b, OptServerID, IPs(r.ServerID), -1)
	}
	for _, o := range r.Options {
		if o.Code == OptMessageType || o.Code == OptServerID || o.Code == OptPad || o.Code == OptEnd {
			continue
		}
		b = appendOption(b, o.Code, o.Data, start+limit)
	}
	b = append(b, OptEnd)
	for len(b)-start < MinMessage {
		b = append(b, OptPad)
	}
	return b
}

// appendOption appends option code, split into several instances when longer than 255
// bytes (RFC 3396); it leaves the option out when b would grow past limit (-1: no limit).
func appendOption(b []byte, code uint8, data []byte, limit int) []byte {
	n := len(data) + 2*max(1, (len(data)+254)/255)
	if limit >= 0 && len(b)+n > limit {
		return b
	}
	for first := true; first || len(data) > 0; first = false {
		chunk := data[:min(len(data), 255)]
		data = data[len(chunk):]
		b = append(b, code, byte(len(chunk)))
		b = append(b, chunk...)
	}
	return b
}

// AppendFrame appends the Ethernet frame of f (untagged IPv4, UDP 67 -> 68) to b.
func (f *Frame) AppendFrame(b []byte) []byte {
	b = append(b, f.DstMAC...)
	b = append(b, f.SrcMAC...)
	b = binary.BigEndian.AppendUint16(b, 0x0800)
	ipStart := len(b)
	b = append(b, make([]byte, 20+8)...) // IPv4 and UDP headers, filled below
	b = f.Reply.AppendMessage(b)
	ip := b[ipStart:]
	total := len(ip)
	src, dst := f.SrcIP.As4(), f.DstIP.As4()
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(total))
	ip[8] = 64 // TTL
	ip[9] = 17 // UDP
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	binary.BigEndian.PutUint16(ip[10:], ^checksum(0, ip[:20]))
	udp := ip[20:]
	binary.BigEndian.PutUint16(udp[0:], ServerPort)
	binary.BigEndian.PutUint16(udp[2:], ClientPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(udp)))
	setUDPChecksum(ip)
	return b
}

// udpSum is the one's complement sum of the UDP datagram in IPv4 packet ip (20-byte
// header) with its pseudo header (addresses, protocol, UDP length): 0xffff when the
// checksum in it is right.
func udpSum(ip []byte) uint16 {
	udp := ip[20:]
	sum := checksum(0, ip[12:20])
	sum = checksum(sum, []byte{0, 17})
	sum = checksum(sum, udp[4:6])
	return checksum(sum, udp)
}

// setUDPChecksum fills in the checksum of the UDP datagram in IPv4 packet ip.
func setUDPChecksum(ip []byte) {
	binary.BigEndian.PutUint16(ip[26:], 0)
	c := ^udpSum(ip)
	if c == 0 {
		c = 0xffff // 0 means none
	}
	binary.BigEndian.PutUint16(ip[26:], c)
}

// checksum adds b to the one's complement sum s (RFC 1071), folded to 16 bits.
func checksum(s uint16, b []byte) uint16 {
	sum := uint32(s)
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
