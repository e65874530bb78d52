// The client's side, for the simulated clients of tests and benchmarks: a request frame
// built, a server's reply read back.

package dhcp4

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
)

// AppendRequest appends the untagged broadcast frame of a client message m (from m.CHAddr,
// 0.0.0.0 -> 255.255.255.255 unless m.CIAddr is set, then unicast to m.DstIP with dstMAC).
// Only the fields Parse reads are encoded.
func AppendRequest(b []byte, m *Message, dstMAC net.HardwareAddr) []byte {
	if dstMAC == nil {
		dstMAC = BroadcastMAC
	}
	src, dst := netip.IPv4Unspecified(), BroadcastIP
	if m.CIAddr.Is4() && !m.CIAddr.IsUnspecified() {
		src = m.CIAddr
		if m.DstIP.Is4() {
			dst = m.DstIP
		}
	}
	r := &Reply{Type: m.Type, XID: m.XID, Flags: m.Flags, CIAddr: m.CIAddr, CHAddr: m.CHAddr, MaxSize: 1500}
	if m.RequestedIP.Is4() {
		r.Options.Set(OptRequestedIP, IPs(m.RequestedIP))
	}
	r.ServerID = m.ServerID
	if len(m.ParamRequest) > 0 {
		r.Options.Set(OptParamRequest, m.ParamRequest)
	}
	if len(m.ClientID) > 0 {
		r.Options.Set(OptClientID, m.ClientID)
	}
	if m.Hostname != "" {
		r.Options.Set(OptHostname, []byte(m.Hostname))
	}
	f := Frame{SrcMAC: m.CHAddr, DstMAC: dstMAC, SrcIP: src, DstIP: dst, Reply: r}
	start := len(b)
	b = f.AppendFrame(b)
	// A request, not a reply: op 1, ports 68 -> 67, checksum again.
	eth := b[start:]
	ip := eth[14:]
	udp := ip[20:]
	udp[8] = opBootRequest
	binary.BigEndian.PutUint16(udp[0:], ClientPort)
	binary.BigEndian.PutUint16(udp[2:], ServerPort)
	setUDPChecksum(ip)
	return b
}

// ParseReply reads a server's reply frame back: its addresses, fields and options (the
// message type and server identifier in their fields, every other option in Options).
func ParseReply(frame []byte) (*Frame, error) {
	h, b, err := udpPayload(frame, ServerPort, ClientPort)
	if err != nil {
		return nil, err
	}
	if len(b) < bootpLen+4 || b[0] != opBootReply || [4]byte(b[bootpLen:bootpLen+4]) != magicCookie {
		return nil, fmt.Errorf("not a BOOTREPLY with the magic cookie: %w", ErrNotDHCP)
	}
	r := &Reply{XID: binary.BigEndian.Uint32(b[4:]), Flags: binary.BigEndian.Uint16(b[10:]),
		CIAddr: netip.AddrFrom4([4]byte(b[12:16])), YIAddr: netip.AddrFrom4([4]byte(b[16:20])),
		SIAddr: netip.AddrFrom4([4]byte(b[20:24])), GIAddr: netip.AddrFrom4([4]byte(b[24:28])),
		CHAddr: net.HardwareAddr(append([]byte(nil), b[28:34]...)), MaxSize: len(b)}
	opts := b[bootpLen+4:]
	for i := 0; i < len(opts) && opts[i] != OptEnd; {
		if opts[i] == OptPad {
			i++
			continue
		}
		if i+1 >= len(opts) || i+2+int(opts[i+1]) > len(opts) {
			return nil, fmt.Errorf("option %d overruns the message: %w", opts[i], ErrNotDHCP)
		}
		code, v := opts[i], opts[i+2:i+2+int(opts[i+1])]
		i += 2 + len(v)
		switch code {
		case OptMessageType:
			if len(v) == 1 {
				r.Type = MessageType(v[0])
			}
		case OptServerID:
			if len(v) == 4 {
				r.ServerID = netip.AddrFrom4([4]byte(v))
			}
		default:
			if old, ok := r.Options.Get(code); ok {
				v = append(append([]byte(nil), old...), v...) // split (RFC 3396)
			}
			r.Options.Set(code, append([]byte(nil), v...))
		}
	}
	if r.Type == 0 {
		return nil, fmt.Errorf("no message type: %w", ErrNotDHCP)
	}
	return &Frame{SrcMAC: h.srcMAC, DstMAC: h.dstMAC, SrcIP: h.srcIP, DstIP: h.dstIP, Reply: r}, nil
}
