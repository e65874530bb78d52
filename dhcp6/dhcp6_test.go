package dhcp6

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

var (
	clientMAC = net.HardwareAddr{0xfa, 0x16, 0x3e, 0x00, 0x00, 0x05}
	serverMAC = net.HardwareAddr{0xfa, 0x16, 0x3e, 0x00, 0x00, 0x02}
	clientLL  = netip.MustParseAddr("fe80::f816:3eff:fe00:5")
	serverLL  = netip.MustParseAddr("fe80::f816:3eff:fe00:2")
	clientIP  = netip.MustParseAddr("2001:db8:1::5")
)

// solicitFrame is a SOLICIT as ISC dhclient -6 sends it, built byte by byte (not with
// AppendRequest): a DUID-LLT client ID, an empty IA_NA, the option request for DNS
// servers, the domain search list and more, elapsed time; optionally 802.1Q-tagged.
func solicitFrame(t *testing.T, tagged bool) []byte {
	t.Helper()
	var msg []byte
	msg = append(msg, 1, 0xab, 0xcd, 0xef) // SOLICIT, xid
	duid := []byte{0, 1, 0, 1, 0x2c, 0x8a, 0x11, 0x22}
	duid = append(duid, clientMAC...)
	msg = append(msg, 0, 1, 0, byte(len(duid))) // client ID
	msg = append(msg, duid...)
	msg = append(msg, 0, 6, 0, 8, 0, 23, 0, 24, 0, 39, 0, 31) // ORO
	msg = append(msg, 0, 8, 0, 2, 0, 0)                       // elapsed time 0
	msg = append(msg, 0, 3, 0, 12, 0, 0, 0x3e, 0x05, 0, 0, 0, 0, 0, 0, 0, 0)
	udp := binary.BigEndian.AppendUint16(nil, 546)
	udp = binary.BigEndian.AppendUint16(udp, 547)
	udp = binary.BigEndian.AppendUint16(udp, uint16(8+len(msg)))
	udp = append(udp, 0x12, 0x34) // checksum: not checked (offloads)
	udp = append(udp, msg...)
	ip := []byte{0x60, 0, 0, 0, 0, 0, 17, 1}
	binary.BigEndian.PutUint16(ip[4:], uint16(len(udp)))
	s, d := clientLL.As16(), AllServers.As16()
	ip = append(append(append(ip, s[:]...), d[:]...), udp...)
	var f []byte
	f = append(f, MulticastMAC...)
	f = append(f, clientMAC...)
	if tagged {
		f = append(f, 0x81, 0x00, 0x00, 0x07)
	}
	f = append(f, 0x86, 0xdd)
	return append(f, ip...)
}

func TestParseSolicit(t *testing.T) {
	for _, tagged := range []bool{false, true} {
		m, err := Parse(solicitFrame(t, tagged))
		if err != nil {
			t.Fatal(err)
		}
		if tagged && m.VLAN != 7 || !tagged && m.VLAN != 0 {
			t.Errorf("VLAN %d (tagged %v)", m.VLAN, tagged)
		}
		if m.Type != Solicit || m.XID != 0xabcdef || m.SrcIP != clientLL || m.DstIP != AllServers || !bytes.Equal(m.SrcMAC, clientMAC) {
			t.Errorf("header: %+v", m)
		}
		if len(m.ClientID) != 14 || m.ServerID != nil || m.RapidCommit {
			t.Errorf("IDs: %x %x rapid %v", m.ClientID, m.ServerID, m.RapidCommit)
		}
		if len(m.IANA) != 1 || m.IANA[0].IAID != 0x3e05 || len(m.IANA[0].Addrs) != 0 {
			t.Errorf("IA_NA %+v", m.IANA)
		}
		if !m.Requested(OptDNSServers) || !m.Requested(OptDomainSearch) || m.Requested(OptIANA) {
			t.Errorf("option request %x", m.ORO)
		}
	}
}

// TestRequestRoundTrip: what AppendRequest writes, Parse reads back, field for field, for
// each message type a client sends.
func TestRequestRoundTrip(t *testing.T) {
	srv := DUIDLL(serverMAC)
	for _, typ := range []MessageType{Solicit, Request, Confirm, Renew, Rebind, Release, Decline, InformationRequest} {
		in := &Message{Type: typ, XID: 0x010203, SrcMAC: clientMAC, SrcIP: clientLL, ClientID: DUIDLL(clientMAC),
			ServerID: srv, ORO: []byte{0, 23, 0, 24}, RapidCommit: typ == Solicit, ElapsedTime: 300,
			IANA: []IA{{IAID: 7, T1: 10, T2: 20, Addrs: []IAAddr{{Addr: clientIP, Preferred: 30, Valid: 40}}}, {IAID: 8}}}
		frame := AppendRequest(nil, in, nil)
		if c := udpChecksum(frame[14:]); c != 0 {
			t.Errorf("%s: UDP checksum wrong (%#x over the datagram)", typ, c)
		}
		m, err := Parse(frame)
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if m.Type != typ || m.XID != in.XID || !bytes.Equal(m.ClientID, in.ClientID) || !bytes.Equal(m.ServerID, srv) ||
			!bytes.Equal(m.ORO, in.ORO) || m.RapidCommit != in.RapidCommit || m.ElapsedTime != 300 || m.DstIP != AllServers {
			t.Errorf("%s: read back %+v", typ, m)
		}
		if len(m.IANA) != 2 || m.IANA[0].IAID != 7 || m.IANA[0].T1 != 10 || m.IANA[0].T2 != 20 ||
			len(m.IANA[0].Addrs) != 1 || m.IANA[0].Addrs[0] != in.IANA[0].Addrs[0] || m.IANA[1].IAID != 8 {
			t.Errorf("%s: IA_NA read back %+v", typ, m.IANA)
		}
		if got := m.Addrs(); len(got) != 1 || got[0] != clientIP {
			t.Errorf("%s: addresses %v", typ, got)
		}
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	good := solicitFrame(t, false)
	const ip, udp, msg = 14, 14 + 40, 14 + 48
	cases := map[string]func([]byte) []byte{
		"short":              func(b []byte) []byte { return b[:10] },
		"truncated":          func(b []byte) []byte { return b[:60] },
		"ipv4":               func(b []byte) []byte { b[12], b[13] = 0x08, 0x00; return b },
		"ip version":         func(b []byte) []byte { b[ip] = 0x40; return b },
		"extension header":   func(b []byte) []byte { b[ip+6] = 0; return b },
		"payload length":     func(b []byte) []byte { b[ip+4] = 0xff; return b },
		"server port":        func(b []byte) []byte { b[udp+1] = 0x23; return b },
		"udp length":         func(b []byte) []byte { b[udp+4] = 0xff; return b },
		"udp length short":   func(b []byte) []byte { b[udp+4], b[udp+5] = 0, 4; return b },
		"no message":         func(b []byte) []byte { b[ip+4], b[ip+5] = 0, 10; b[udp+4], b[udp+5] = 0, 10; return b[:msg+2] },
		"advertise":          func(b []byte) []byte { b[msg] = byte(Advertise); return b },
		"reply":              func(b []byte) []byte { b[msg] = byte(Reply); return b },
		"relay-forw":         func(b []byte) []byte { b[msg] = byte(RelayForw); return b },
		"option overruns":    func(b []byte) []byte { b[msg+6] = 0xff; return b },
		"trailing bytes":     func(b []byte) []byte { return withTail(b, 0, 3) },
		"client ID of 1":     func(b []byte) []byte { return withTail(b, 0, 1, 0, 1, 9) },
		"server ID too long": func(b []byte) []byte { return withTail(b, append([]byte{0, 2, 0, 131}, make([]byte, 131)...)...) },
		"odd option request": func(b []byte) []byte { return withTail(b, 0, 6, 0, 3, 0, 23, 0) },
		"elapsed time of 3":  func(b []byte) []byte { return withTail(b, 0, 8, 0, 3, 0, 0, 0) },
		"short IA_NA":        func(b []byte) []byte { return withTail(b, 0, 3, 0, 4, 0, 0, 0, 1) },
		"short IA address": func(b []byte) []byte {
			return withTail(b, 0, 3, 0, 18, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 2, 0, 0)
		},
		"IA option overruns": func(b []byte) []byte {
			return withTail(b, 0, 3, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 30)
		},
		"short status": func(b []byte) []byte {
			return withTail(b, 0, 3, 0, 17, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 13, 0, 1, 0)
		},
	}
	for name, mutate := range cases {
		f := mutate(bytes.Clone(good))
		if _, err := Parse(f); !errors.Is(err, ErrNotDHCP) {
			t.Errorf("%s: err %v, want ErrNotDHCP", name, err)
		}
	}
}

// withTail returns frame with bytes appended to its message, the lengths fixed.
func withTail(frame []byte, tail ...byte) []byte {
	b := append(frame, tail...)
	n := uint16(len(b) - 14 - 40)
	binary.BigEndian.PutUint16(b[14+4:], n)
	binary.BigEndian.PutUint16(b[14+40+4:], n)
	return b
}

// TestAnswerFrame: a reply is exactly the bytes RFC 8415 lays out, in a frame with a right
// UDP checksum (computed here independently), and reads back.
func TestAnswerFrame(t *testing.T) {
	ia := IA{IAID: 0x3e05, T1: 1800, T2: 2880, Addrs: []IAAddr{{Addr: clientIP, Preferred: 3600, Valid: 3600}}}
	r := &Answer{Type: Reply, XID: 0xabcdef, Options: []Option{
		{OptClientID, DUIDLL(clientMAC)},
		{OptServerID, DUIDLL(serverMAC)},
		{OptIANA, AppendIA(nil, &ia)},
		{OptStatusCode, AppendStatus(nil, StatusSuccess, "ok")},
		{OptDNSServers, AppendAddrs(nil, netip.MustParseAddr("2001:db8::53"), netip.MustParseAddr("192.0.2.53"))},
		{OptDomainSearch, AppendDomains(nil, "example.org.", "bad..name", "a.b")},
	}}
	want := []byte{7, 0xab, 0xcd, 0xef,
		0, 1, 0, 10, 0, 3, 0, 1, 0xfa, 0x16, 0x3e, 0, 0, 5,
		0, 2, 0, 10, 0, 3, 0, 1, 0xfa, 0x16, 0x3e, 0, 0, 2,
		0, 3, 0, 40, 0, 0, 0x3e, 0x05, 0, 0, 0x07, 0x08, 0, 0, 0x0b, 0x40,
		0, 5, 0, 24, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0x0e, 0x10, 0, 0, 0x0e, 0x10,
		0, 13, 0, 4, 0, 0, 'o', 'k',
		0, 23, 0, 16, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
		0, 24, 0, 18, 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'o', 'r', 'g', 0, 1, 'a', 1, 'b', 0}
	if got := r.AppendMessage(nil); !bytes.Equal(got, want) {
		t.Errorf("message\n got %x\nwant %x", got, want)
	}
	f := &Frame{SrcMAC: serverMAC, DstMAC: clientMAC, SrcIP: serverLL, DstIP: clientLL, Answer: r}
	b := f.AppendFrame(nil)
	if len(b) != 14+40+8+len(want) || !bytes.Equal(b[14+48:], want) {
		t.Fatalf("frame %x", b)
	}
	if !bytes.Equal(b[0:6], clientMAC) || !bytes.Equal(b[6:12], serverMAC) || b[12] != 0x86 || b[13] != 0xdd {
		t.Errorf("Ethernet header %x", b[:14])
	}
	ip := b[14:]
	if ip[0] != 0x60 || ip[6] != 17 || ip[7] != 64 || int(binary.BigEndian.Uint16(ip[4:])) != 8+len(want) {
		t.Errorf("IPv6 header %x", ip[:8])
	}
	udp := ip[40:]
	if binary.BigEndian.Uint16(udp) != 547 || binary.BigEndian.Uint16(udp[2:]) != 546 || int(binary.BigEndian.Uint16(udp[4:])) != 8+len(want) {
		t.Errorf("UDP header %x", udp[:8])
	}
	if got, want := binary.BigEndian.Uint16(udp[6:]), refChecksum(ip); got != want {
		t.Errorf("UDP checksum %#04x, want %#04x", got, want)
	}
	back, err := ParseReply(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Answer.Type != Reply || back.Answer.XID != 0xabcdef || len(back.Answer.Options) != 6 || back.SrcIP != serverLL || back.DstIP != clientLL {
		t.Fatalf("read back %+v", back.Answer)
	}
	v, _ := back.Answer.Get(OptIANA)
	gotIA, err := ParseIA(v)
	if err != nil || gotIA.IAID != ia.IAID || gotIA.T1 != 1800 || len(gotIA.Addrs) != 1 || gotIA.Addrs[0] != ia.Addrs[0] || gotIA.Status != nil {
		t.Errorf("IA_NA read back %+v %v", gotIA, err)
	}
	ia.Addrs, ia.Status = nil, &Status{Code: StatusNoBinding, Message: "no binding"}
	if gotIA, err = ParseIA(AppendIA(nil, &ia)); err != nil || gotIA.Status == nil || *gotIA.Status != *ia.Status {
		t.Errorf("IA_NA with a status read back %+v %v", gotIA, err)
	}
}

// refChecksum is the UDP checksum of IPv6 packet ip as RFC 8200 8.1 defines it, computed
// byte by byte over the pseudo header and the datagram with its checksum zeroed.
func refChecksum(ip []byte) uint16 {
	udp := bytes.Clone(ip[40:])
	udp[6], udp[7] = 0, 0
	pseudo := append(bytes.Clone(ip[8:40]), 0, 0, byte(len(udp)>>8), byte(len(udp)), 0, 0, 0, 17)
	data := append(pseudo, udp...)
	if len(data)%2 == 1 {
		data = append(data, 0)
	}
	var sum uint64
	for i := 0; i < len(data); i += 2 {
		sum += uint64(data[i])<<8 | uint64(data[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff
	}
	return c
}

func TestParseReplyRefusesMalformed(t *testing.T) {
	r := &Answer{Type: Advertise, XID: 1, Options: []Option{{OptServerID, DUIDLL(serverMAC)}}}
	good := (&Frame{SrcMAC: serverMAC, DstMAC: clientMAC, SrcIP: serverLL, DstIP: clientLL, Answer: r}).AppendFrame(nil)
	if _, err := ParseReply(good); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func([]byte) []byte{
		"a client's":      func(b []byte) []byte { b[14+48] = byte(Solicit); return b },
		"client ports":    func(b []byte) []byte { b[14+41] = 0x22; return b },
		"option overruns": func(b []byte) []byte { b[14+48+7] = 0xff; return b },
	} {
		if _, err := ParseReply(mutate(bytes.Clone(good))); !errors.Is(err, ErrNotDHCP) {
			t.Errorf("%s: err %v, want ErrNotDHCP", name, err)
		}
	}
	if _, err := ParseStatus([]byte{0}); !errors.Is(err, ErrNotDHCP) {
		t.Errorf("status of 1 byte: %v", err)
	}
	if _, err := ParseIA([]byte{0, 0, 0}); !errors.Is(err, ErrNotDHCP) {
		t.Errorf("IA_NA of 3 bytes: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(AppendRequest(nil, &Message{Type: Solicit, XID: 1, SrcMAC: clientMAC, SrcIP: clientLL, ClientID: DUIDLL(clientMAC),
		IANA: []IA{{IAID: 1}}, ORO: []byte{0, 23}, RapidCommit: true}, nil))
	f.Add(AppendRequest(nil, &Message{Type: Renew, XID: 2, SrcMAC: clientMAC, SrcIP: clientLL, ClientID: DUIDLL(clientMAC),
		ServerID: DUIDLL(serverMAC), IANA: []IA{{IAID: 1, Addrs: []IAAddr{{Addr: clientIP}}}}}, nil))
	f.Add(AppendRequest(nil, &Message{Type: InformationRequest, XID: 3, SrcMAC: clientMAC, SrcIP: clientLL}, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrNotDHCP) || !strings.Contains(err.Error(), "DHCPv6") {
				t.Fatalf("error not wrapping ErrNotDHCP: %v", err)
			}
			return
		}
		if m.Type == 0 || m.Type == Advertise || m.Type == Reply || m.Type >= Reconfigure && m.Type != InformationRequest {
			t.Fatalf("accepted a message type no client sends: %+v", m)
		}
		if m.ClientID != nil && (len(m.ClientID) < 2 || len(m.ClientID) > maxDUID) {
			t.Fatalf("accepted a client ID of %d bytes", len(m.ClientID))
		}
		_, _ = ParseReply(b)
	})
}
