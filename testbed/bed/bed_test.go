package bed

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	good := Config{Prefix: "bt1", Hosts: []HostConfig{
		{Name: "compute1", TunnelIP: "192.168.248.1", Mode: "dvr"},
		{Name: "network", TunnelIP: "192.168.248.3", Mode: "dvr_snat"},
	}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	other := good
	other.Underlay = "10.9.8.0/24"
	other.Hosts = []HostConfig{{Name: "h", TunnelIP: "10.9.8.7", Mode: "dvr"}}
	if err := other.Validate(); err != nil {
		t.Fatalf("other underlay: %v", err)
	}
	if _, ctrl, _ := other.underlay(); ctrl.String() != "10.9.8.254" {
		t.Errorf("controller IP of 10.9.8.0/24 = %s", ctrl)
	}
	bad := map[string]func(c *Config){
		"empty prefix":         func(c *Config) { c.Prefix = "" },
		"prefix too long":      func(c *Config) { c.Prefix = "abcdefghi" },
		"prefix with dash":     func(c *Config) { c.Prefix = "a-b" },
		"prefix digit first":   func(c *Config) { c.Prefix = "1a" },
		"no hosts":             func(c *Config) { c.Hosts = nil },
		"duplicate host":       func(c *Config) { c.Hosts[1].Name = c.Hosts[0].Name },
		"reserved host name":   func(c *Config) { c.Hosts[0].Name = "inet" },
		"host name with slash": func(c *Config) { c.Hosts[0].Name = "a/b" },
		"duplicate tunnel IP":  func(c *Config) { c.Hosts[1].TunnelIP = c.Hosts[0].TunnelIP },
		"tunnel IP outside":    func(c *Config) { c.Hosts[0].TunnelIP = "192.168.249.1" },
		"tunnel IP controller": func(c *Config) { c.Hosts[0].TunnelIP = ControllerIP },
		"tunnel IP network":    func(c *Config) { c.Hosts[0].TunnelIP = "192.168.248.0" },
		"tunnel IP broadcast":  func(c *Config) { c.Hosts[0].TunnelIP = "192.168.248.255" },
		"tunnel IP garbage":    func(c *Config) { c.Hosts[0].TunnelIP = "x" },
		"bad mode":             func(c *Config) { c.Hosts[0].Mode = "legacy" },
		"underlay not /24":     func(c *Config) { c.Underlay = "192.168.0.0/16" },
		"underlay not masked":  func(c *Config) { c.Underlay = "192.168.248.1/24" },
	}
	for name, mutate := range bad {
		c := good
		c.Hosts = append([]HostConfig(nil), good.Hosts...)
		mutate(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
}

func TestParsePing(t *testing.T) {
	out := "PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.\n64 bytes from 10.0.0.2: icmp_seq=1 ttl=64 time=0.5 ms\n\n" +
		"--- 10.0.0.2 ping statistics ---\n7 packets transmitted, 5 received, 28.5714% packet loss, time 1203ms\n"
	r, err := parsePing(out)
	if err != nil || r.Sent != 7 || r.Received != 5 || r.Lost() != 2 || r.Output != out {
		t.Errorf("parsePing = %+v, %v", r, err)
	}
	if _, err := parsePing("ping: connect: Network is unreachable\n"); err == nil {
		t.Error("parsePing accepted output without a summary")
	}
}

func TestSplitPackets(t *testing.T) {
	out := "10:00:00.000001 aa:aa:aa:aa:aa:01 > aa:aa:aa:aa:aa:02, ethertype IPv4 (0x0800), length 148: 192.168.248.1.5000 > 192.168.248.2.4789: VXLAN, flags [I] (0x08), vni 100\n" +
		"fa:16:3e:00:00:01 > fa:16:3e:00:00:02, ethertype IPv4 (0x0800), length 98: 10.0.0.1 > 10.0.0.2: ICMP echo request, id 1, seq 1, length 64\n" +
		"10:00:00.000002 aa:aa:aa:aa:aa:02 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Request who-has 192.168.248.1 tell 192.168.248.2, length 28\n"
	p := splitPackets(out)
	if len(p) != 2 {
		t.Fatalf("splitPackets: %d packets, want 2: %q", len(p), p)
	}
	if !strings.Contains(p[0], "vni 100") || !strings.Contains(p[0], "ICMP echo request") {
		t.Errorf("first packet lost its inner frame: %q", p[0])
	}
	if !strings.Contains(p[1], "ARP") || strings.Contains(p[1], "ICMP") {
		t.Errorf("second packet: %q", p[1])
	}
	if len(splitPackets("")) != 0 {
		t.Error("packets from empty output")
	}
}

func TestCheckDst(t *testing.T) {
	for _, ok := range []string{"203.0.113.10", TargetIP6, "fe80::1"} {
		if err := checkDst(ok); err != nil {
			t.Errorf("checkDst(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "x", "10.0.0.0/24", "fe80::1%eth0", "::ffff:10.0.0.1", "-c 1000"} {
		if err := checkDst(bad); err == nil {
			t.Errorf("checkDst(%q) accepted it", bad)
		}
	}
}

// TestRouteBackRefuses checks RouteBack's arguments, refused before anything runs.
func TestRouteBackRefuses(t *testing.T) {
	ctx := context.Background()
	ext := &Bed{cfg: Config{Prefix: "rb", External: true}}
	noExt := &Bed{cfg: Config{Prefix: "rb"}}
	p6, p4 := netip.MustParsePrefix("2001:db8:1::/64"), netip.MustParsePrefix("10.0.1.0/24")
	gw6, gw4 := netip.MustParseAddr("2001:db8:ff::10"), netip.MustParseAddr("172.24.4.10")
	cases := map[string]error{
		"no external network": noExt.RouteBack(ctx, p6, gw6),
		"not masked":          ext.RouteBack(ctx, netip.MustParsePrefix("2001:db8:1::1/64"), gw6),
		"default":             ext.RouteBack(ctx, netip.MustParsePrefix("::/0"), gw6),
		"invalid prefix":      ext.RouteBack(ctx, netip.Prefix{}, gw6),
		"via off the network": ext.RouteBack(ctx, p6, netip.MustParseAddr("2001:db8:fe::10")),
		"via the router":      ext.RouteBack(ctx, p6, netip.MustParseAddr(ExternalGateway6)),
		"via the router (4)":  ext.RouteBack(ctx, p4, netip.MustParseAddr(ExternalGateway)),
		"via subnet anycast":  ext.RouteBack(ctx, p6, netip.MustParseAddr("2001:db8:ff::")),
		"v6 via v4":           ext.RouteBack(ctx, p6, gw4),
		"v4 via v6":           ext.RouteBack(ctx, p4, gw6),
		"delete no external":  noExt.DeleteRouteBack(ctx, p6),
		"delete not masked":   ext.DeleteRouteBack(ctx, netip.MustParsePrefix("10.0.1.1/24")),
	}
	for name, err := range cases {
		if err == nil || !strings.HasPrefix(err.Error(), "bed: route back") {
			t.Errorf("%s: %v, want a route back error", name, err)
		}
	}
}
