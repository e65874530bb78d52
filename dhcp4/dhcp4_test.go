package dhcp4

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
	serverIP  = netip.MustParseAddr("10.0.1.2")
	clientIP  = netip.MustParseAddr("10.0.1.5")
)

// discoverFrame is a DISCOVER as dhclient sends it, built byte by byte (not with
// AppendRequest), with options split and padded.
func discoverFrame(t *testing.T, tagged bool) []byte {
	t.Helper()
	var msg []byte
	msg = append(msg, 1, 1, 6, 0)                   // op, htype, hlen, hops
	msg = append(msg, 0xde, 0xad, 0xbe, 0xef)       // xid
	msg = append(msg, 0, 3, 0x80, 0)                // secs, flags (broadcast)
	msg = append(msg, make([]byte, 16)...)          // ciaddr yiaddr siaddr giaddr
	msg = append(msg, clientMAC...)                 // chaddr
	msg = append(msg, make([]byte, 10+64+128)...)   // chaddr padding, sname, file
	msg = append(msg, 99, 130, 83, 99)              // cookie
	msg = append(msg, 53, 1, 1)                     // DISCOVER
	msg = append(msg, 0, 0)                         // pads
	msg = append(msg, 55, 3, 1, 3, 6)               // parameter request, split ...
	msg = append(msg, 55, 2, 26, 121)               // ... over two instances
	msg = append(msg, 57, 2, 0x05, 0xdc)            // max size 1500
	msg = append(msg, 50, 4, 10, 0, 1, 5)           // requested address
	msg = append(msg, 12, 3, 'v', 'm', '1', 255, 0) // hostname, end, pad
	udp := binary.BigEndian.AppendUint16(nil, 68)
	udp = binary.BigEndian.AppendUint16(udp, 67)
	udp = binary.BigEndian.AppendUint16(udp, uint16(8+len(msg)))
	udp = append(udp, 0, 0) // no checksum: allowed for IPv4
	udp = append(udp, msg...)
	ip := []byte{0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255}
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
	ip = append(ip, udp...)
	var f []byte
	f = append(f, BroadcastMAC...)
	f = append(f, clientMAC...)
	if tagged {
		f = append(f, 0x81, 0x00, 0x00, 0x07)
	}
	f = append(f, 0x08, 0x00)
	return append(f, ip...)
}

func TestParseDiscover(t *testing.T) {
	for _, tagged := range []bool{false, true} {
		m, err := Parse(discoverFrame(t, tagged))
		if err != nil {
			t.Fatal(err)
		}
		if tagged && m.VLAN != 7 || !tagged && m.VLAN != 0 {
			t.Errorf("VLAN %d (tagged %v)", m.VLAN, tagged)
		}
		if m.Type != Discover || m.XID != 0xdeadbeef || m.Secs != 3 || !m.Broadcast() {
			t.Errorf("fields: %+v", m)
		}
		if !bytes.Equal(m.CHAddr, clientMAC) || !bytes.Equal(m.SrcMAC, clientMAC) {
			t.Errorf("chaddr %s src %s", m.CHAddr, m.SrcMAC)
		}
		if !bytes.Equal(m.ParamRequest, []byte{1, 3, 6, 26, 121}) {
			t.Errorf("parameter request %v", m.ParamRequest)
		}
		if m.MaxSize != 1500 || m.RequestedIP != clientIP || m.Hostname != "vm1" || m.ServerID.IsValid() {
			t.Errorf("options: %+v", m)
		}
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	good := discoverFrame(t, false)
	cases := map[string]func([]byte) []byte{
		"short":           func(b []byte) []byte { return b[:10] },
		"truncated":       func(b []byte) []byte { return b[:100] },
		"not ipv4":        func(b []byte) []byte { b[12] = 0x86; b[13] = 0xdd; return b },
		"tcp":             func(b []byte) []byte { b[14+9] = 6; return b },
		"fragment":        func(b []byte) []byte { b[14+6] = 0x20; return b },
		"server port":     func(b []byte) []byte { b[14+20+1] = 67; return b },
		"udp length":      func(b []byte) []byte { b[14+20+4] = 0xff; return b },
		"ip total":        func(b []byte) []byte { b[14+2] = 0xff; return b },
		"ihl":             func(b []byte) []byte { b[14] = 0x44; return b },
		"bootreply":       func(b []byte) []byte { b[14+28] = 2; return b },
		"no cookie":       func(b []byte) []byte { b[14+28+236] = 0; return b },
		"option overruns": func(b []byte) []byte { b[len(b)-3] = 12; b[len(b)-2] = 0xf0; return b[:len(b)-1] },
		"no type":         func(b []byte) []byte { b[14+28+240] = 0; b[14+28+241] = 0; b[14+28+242] = 0; return b },
	}
	for name, mutate := range cases {
		f := mutate(bytes.Clone(good))
		if _, err := Parse(f); !errors.Is(err, ErrNotDHCP) {
			t.Errorf("%s: err %v, want ErrNotDHCP", name, err)
		}
	}
}

func TestReplyFrame(t *testing.T) {
	r := &Reply{Type: Ack, XID: 0xdeadbeef, Flags: 0x8000, YIAddr: clientIP, CHAddr: clientMAC, ServerID: serverIP,
		MaxSize: 1500}
	r.Options.Set(OptLeaseTime, U32(86400))
	r.Options.Set(OptSubnetMask, IPs(netip.MustParseAddr("255.255.255.0")))
	r.Options.Set(OptMTU, U16(1450))
	long := make([]byte, 300) // split over two instances (RFC 3396)
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	r.Options.Set(119, long)
	r.Options.Set(OptMTU, U16(1400)) // Set replaces
	f := Frame{SrcMAC: serverMAC, DstMAC: BroadcastMAC, SrcIP: serverIP, DstIP: BroadcastIP, Reply: r}
	b := f.AppendFrame(nil)
	// The IPv4 header and the UDP datagram (pseudo header included) sum to 0xffff.
	ip := b[14:]
	if c := checksum(0, ip[:20]); c != 0xffff {
		t.Errorf("IPv4 header checksum does not verify: %#x", c)
	}
	if c := udpSum(ip); c != 0xffff {
		t.Errorf("UDP checksum does not verify: %#x", c)
	}
	if udp := ip[20:]; len(udp)-8 < MinMessage {
		t.Errorf("message of %d bytes, BOOTP needs %d", len(udp)-8, MinMessage)
	}
	got, err := ParseReply(b)
	if err != nil {
		t.Fatal(err)
	}
	g := got.Reply
	if g.Type != Ack || g.XID != r.XID || g.YIAddr != clientIP || g.ServerID != serverIP || g.Flags != 0x8000 ||
		!bytes.Equal(g.CHAddr, clientMAC) || got.SrcIP != serverIP || got.DstIP != BroadcastIP {
		t.Errorf("reply read back: %+v", g)
	}
	for _, want := range []Option{{OptLeaseTime, U32(86400)}, {OptMTU, U16(1400)}, {119, long}} {
		if v, ok := g.Options.Get(want.Code); !ok || !bytes.Equal(v, want.Data) {
			t.Errorf("option %d = %v, want %v", want.Code, v, want.Data)
		}
	}
	// An option that does not fit the client's maximum is left out; the next ones that
	// fit still go.
	r.MaxSize = 548
	r.Options.Set(200, make([]byte, 250))
	b = f.AppendFrame(nil)
	if len(b)-14-28 > 548 {
		t.Errorf("message of %d bytes over the client's maximum 548", len(b)-14-28)
	}
	got, _ = ParseReply(b)
	if _, ok := got.Reply.Options.Get(119); ok {
		t.Error("option 119 sent past the client's maximum size")
	}
	if _, ok := got.Reply.Options.Get(200); !ok {
		t.Error("option 200, which fits, left out")
	}
}

func TestRequestRoundTrip(t *testing.T) {
	m := &Message{Type: Request, XID: 7, CHAddr: clientMAC, CIAddr: clientIP, DstIP: serverIP,
		ParamRequest: []byte{1, 3}, ClientID: []byte{1, 2, 3}}
	b := AppendRequest(nil, m, serverMAC)
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != Request || got.XID != 7 || got.CIAddr != clientIP || got.DstIP != serverIP ||
		!bytes.Equal(got.ClientID, []byte{1, 2, 3}) || !bytes.Equal(got.ParamRequest, []byte{1, 3}) {
		t.Errorf("read back %+v", got)
	}
	// Its UDP checksum verifies as well.
	if c := udpSum(b[14:]); c != 0xffff {
		t.Errorf("UDP checksum does not verify: %#x", c)
	}
}

func TestClasslessRoutes(t *testing.T) {
	got := ClasslessRoutes([]Route{
		{Dest: netip.MustParsePrefix("0.0.0.0/0"), Router: netip.MustParseAddr("10.0.1.1")},
		{Dest: netip.MustParsePrefix("10.0.2.0/24")},
		{Dest: netip.MustParsePrefix("169.254.169.254/32"), Router: netip.MustParseAddr("10.0.1.2")},
		{Dest: netip.MustParsePrefix("172.16.0.0/12"), Router: netip.MustParseAddr("10.0.1.9")},
	})
	want := []byte{0, 10, 0, 1, 1, 24, 10, 0, 2, 0, 0, 0, 0, 32, 169, 254, 169, 254, 10, 0, 1, 2, 12, 172, 16, 10, 0, 1, 9}
	if !bytes.Equal(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func TestParseOption(t *testing.T) {
	cases := []struct {
		name, value string
		code        uint8
		data        []byte
	}{
		{"dns-server", "8.8.8.8, 8.8.4.4", 6, []byte{8, 8, 8, 8, 8, 8, 4, 4}},
		{"DNS-Server", "1.1.1.1", 6, []byte{1, 1, 1, 1}},
		{"6", "1.1.1.1", 6, []byte{1, 1, 1, 1}},
		{"option:mtu", "1400", 26, []byte{0x05, 0x78}},
		{"26", "1400", 26, []byte{0x05, 0x78}},
		{"domain-name", "example.org", 15, []byte("example.org")},
		{"bootfile-name", "pxelinux.0", 67, []byte("pxelinux.0")},
		{"tftp-server", "tftp.example.org", 66, []byte("tftp.example.org")},
		{"server-ip-address", "10.0.0.9", ServerIPAddress, []byte{10, 0, 0, 9}},
		{"domain-search", "a.example,b", 119, []byte{1, 'a', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 1, 'b', 0}},
		{"classless-static-route", "192.168.0.0/16,10.0.1.1", 121, []byte{16, 192, 168, 10, 0, 1, 1}},
		{"lease-time", "600", 51, []byte{0, 0, 2, 0x58}},
		{"210", "path/x", 210, []byte("path/x")},
		{"211", "300", 211, []byte{0x01, 0x2c}},
		{"212", "10.1.1.1,10.1.1.2", 212, []byte{10, 1, 1, 1, 10, 1, 1, 2}},
	}
	for _, c := range cases {
		code, data, err := ParseOption(c.name, c.value)
		if err != nil || code != c.code || !bytes.Equal(data, c.data) {
			t.Errorf("ParseOption(%q, %q) = %d %v %v, want %d %v", c.name, c.value, code, data, err, c.code, c.data)
		}
	}
	for _, bad := range [][2]string{{"no-such-option", "1"}, {"dns-server", "not-an-ip"}, {"mtu", "70000"},
		{"message-type", "5"}, {"53", "5"}, {"54", "10.0.0.1"}, {"300", "1"}, {"domain-search", "a..b"},
		{"classless-static-route", "10.0.0.0/8"}, {"domain-name", ""}} {
		if _, _, err := ParseOption(bad[0], bad[1]); err == nil {
			t.Errorf("ParseOption(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(AppendRequest(nil, &Message{Type: Discover, XID: 1, CHAddr: clientMAC}, nil))
	f.Add(AppendRequest(nil, &Message{Type: Request, XID: 2, CHAddr: clientMAC, CIAddr: clientIP, DstIP: serverIP}, serverMAC))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrNotDHCP) || !strings.Contains(err.Error(), "DHCP") {
				t.Fatalf("error not wrapping ErrNotDHCP: %v", err)
			}
			return
		}
		if m.Type == 0 || len(m.CHAddr) != 6 {
			t.Fatalf("accepted without type or chaddr: %+v", m)
		}
		_, _ = ParseReply(b)
	})
}
