package plan

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

const (
	router  = "5a1d4c3e-0b7f-4e21-9a55-1c2d3e4f5a6b"
	extNet  = "9e8d7c6b-5a49-4837-2615-0f1e2d3c4b5a"
	network = "0d1c2b3a-4958-6776-8594-a3b2c1d0e9f8"
)

// sample is the plan of compute1 in the seed scenario: qrouter-R1 with two qr- ports,
// VM1's floating IP, the fip namespace, snat-R1 (as if compute1 were the SNAT host) and
// Net1's metadata proxy.
func sample() Plan {
	rfp, fpr := "rfp-5a1d4c3e-0", "fpr-5a1d4c3e-0"
	qr := "qrouter-" + router
	fip := "fip-" + extNet
	return Plan{Host: "compute1", Revision: 42, Namespaces: []Namespace{
		{
			Name:    qr,
			Sysctls: map[string]string{"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.send_redirects": "0"},
			Links: []Link{
				{Name: "qr-11111111-aa", Bridge: "br-int", IfaceID: "11111111-aaaa", MAC: "fa:16:3e:00:01:01", Addresses: []string{"10.0.1.1/24"}},
				{Name: "qr-22222222-bb", Bridge: "br-int", IfaceID: "22222222-bbbb", MAC: "fa:16:3e:00:02:01", Addresses: []string{"10.0.2.1/24"}},
				{Name: rfp, PeerNamespace: fip, PeerName: fpr, MAC: "fa:16:3f:aa:00:01", Addresses: []string{"169.254.64.0/31"}},
			},
			Routes:    []Route{{Dst: "default", Via: "169.254.64.1", Dev: rfp, Table: 16}},
			Rules:     []Rule{{Priority: 32768, From: "10.0.1.5/32", Table: 16}},
			Neighbors: []Neighbor{{IP: "169.254.64.1", MAC: "fa:16:3f:aa:00:02", Dev: rfp}},
			NAT: []NATRule{
				{Kind: NATDNAT, Match: NATMatch{Daddr: "172.24.4.5", IIF: rfp}, To: "10.0.1.5"},
				{Kind: NATSNAT, Match: NATMatch{Saddr: "10.0.1.5", OIF: rfp}, To: "172.24.4.5"},
			},
		},
		{
			Name:    fip,
			Sysctls: map[string]string{"net.ipv4.conf.fg-33333333-cc.proxy_arp": "1"},
			Links: []Link{
				{Name: "fg-33333333-cc", Bridge: "br-int", IfaceID: "33333333-cccc", MAC: "fa:16:3e:00:03:01", Addresses: []string{"172.24.4.20/24"}},
				{Name: fpr, PeerNamespace: qr, PeerName: rfp, MAC: "fa:16:3f:aa:00:02", Addresses: []string{"169.254.64.1/31"}},
			},
			Routes: []Route{
				{Dst: "172.24.4.5/32", Via: "169.254.64.0", Dev: fpr},
				{Dst: "default", Via: "172.24.4.1", Dev: "fg-33333333-cc", Table: 2852012033},
			},
			Rules: []Rule{{Priority: 2852012033, IIF: fpr, Table: 2852012033}},
		},
		{
			Name: "snat-" + router,
			Links: []Link{
				{Name: "qg-44444444-dd", Bridge: "br-int", IfaceID: "44444444-dddd", MAC: "fa:16:3e:00:04:01", Addresses: []string{"172.24.4.10/24"}},
				{Name: "sg-55555555-ee", Bridge: "br-int", IfaceID: "55555555-eeee", MAC: "fa:16:3e:00:05:01", Addresses: []string{"10.0.1.3/24"}},
			},
			Routes: []Route{{Dst: "default", Via: "172.24.4.1", Dev: "qg-44444444-dd"}},
			NAT:    []NATRule{{Kind: NATSNAT, Match: NATMatch{OIF: "qg-44444444-dd"}, To: "172.24.4.10"}},
		},
		{
			Name: "qmeta-" + network,
			Links: []Link{{Name: "tap66666666-ff", Bridge: "br-int", IfaceID: "66666666-ffff", MAC: "fa:16:3e:00:01:02", MTU: 1450,
				Addresses: []string{"10.0.1.2/24", "169.254.169.254/32"}}},
			Metadata: &Metadata{Network: network, Instances: []Instance{{IP: "10.0.1.5", DeviceID: "vm1", ProjectID: "demo"}}},
		},
	}}
}

func TestSampleIsValidAndRoundTrips(t *testing.T) {
	p := sample()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q Plan
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Errorf("JSON round trip changed the plan:\n%+v\n%+v", p, q)
	}
	if !strings.Contains(string(b), `"peer_namespace":"fip-`) {
		t.Errorf("unexpected JSON: %s", b)
	}
	if err := (&Plan{Host: "h"}).Validate(); err != nil {
		t.Errorf("empty plan: %v", err)
	}
}

func TestValidateRejects(t *testing.T) {
	cases := map[string]func(p *Plan){
		"no host":            func(p *Plan) { p.Host = "" },
		"negative revision":  func(p *Plan) { p.Revision = -1 },
		"unknown prefix":     func(p *Plan) { p.Namespaces[2].Name = "router-x" },
		"empty id":           func(p *Plan) { p.Namespaces[2].Name = "snat-" },
		"bad ns char":        func(p *Plan) { p.Namespaces[2].Name = "snat-a/b" },
		"dup namespace":      func(p *Plan) { p.Namespaces[2].Name = p.Namespaces[0].Name },
		"long link":          func(p *Plan) { p.Namespaces[2].Links[0].Name = "qg-444444444-dddd" },
		"15-char plugged":    func(p *Plan) { p.Namespaces[2].Links[0].Name = "qg-44444444-ddd" },
		"plugged prefix":     func(p *Plan) { p.Namespaces[2].Links[0].Name = "xx-44444444-dd" },
		"no iface id":        func(p *Plan) { p.Namespaces[2].Links[0].IfaceID = "" },
		"bad mac":            func(p *Plan) { p.Namespaces[2].Links[0].MAC = "fa:16:3e:00:04" },
		"multicast mac":      func(p *Plan) { p.Namespaces[2].Links[0].MAC = "01:00:5e:00:00:01" },
		"bad cidr":           func(p *Plan) { p.Namespaces[2].Links[0].Addresses = []string{"172.24.4.10/33"} },
		"bare address":       func(p *Plan) { p.Namespaces[2].Links[0].Addresses = []string{"172.24.4.10"} },
		"mtu":                func(p *Plan) { p.Namespaces[2].Links[0].MTU = 20 },
		"dup link":           func(p *Plan) { p.Namespaces[2].Links[1].Name = p.Namespaces[2].Links[0].Name },
		"both kinds":         func(p *Plan) { p.Namespaces[0].Links[2].Bridge = "br-int" },
		"neither kind":       func(p *Plan) { p.Namespaces[0].Links[2].PeerNamespace = "" },
		"peer missing ns":    func(p *Plan) { p.Namespaces[0].Links[2].PeerNamespace = "fip-other" },
		"peer not back":      func(p *Plan) { p.Namespaces[1].Links[1].PeerName = "rfp-other" },
		"same link two ns":   func(p *Plan) { p.Namespaces[2].Links[1].Name = "qr-11111111-aa" },
		"route dst":          func(p *Plan) { p.Namespaces[0].Routes[0].Dst = "10.0.1.1/24" },
		"route via":          func(p *Plan) { p.Namespaces[0].Routes[0].Via = "169.254.64" },
		"route dev":          func(p *Plan) { p.Namespaces[0].Routes[0].Dev = "eth9" },
		"route table main":   func(p *Plan) { p.Namespaces[0].Routes[0].Table = 254 },
		"dup route":          func(p *Plan) { p.Namespaces[0].Routes = append(p.Namespaces[0].Routes, p.Namespaces[0].Routes[0]) },
		"rule prio":          func(p *Plan) { p.Namespaces[0].Rules[0].Priority = 32766 },
		"rule nothing":       func(p *Plan) { p.Namespaces[0].Rules[0].From = "" },
		"rule from":          func(p *Plan) { p.Namespaces[0].Rules[0].From = "10.0.1.5/24" },
		"rule iif":           func(p *Plan) { p.Namespaces[1].Rules[0].IIF = "eth0" },
		"rule table 0":       func(p *Plan) { p.Namespaces[0].Rules[0].Table = 0 },
		"neighbor ip":        func(p *Plan) { p.Namespaces[0].Neighbors[0].IP = "x" },
		"neighbor dev":       func(p *Plan) { p.Namespaces[0].Neighbors[0].Dev = "eth0" },
		"sysctl path":        func(p *Plan) { p.Namespaces[0].Sysctls["net/../../etc"] = "1" },
		"sysctl not net":     func(p *Plan) { p.Namespaces[0].Sysctls["kernel.panic"] = "1" },
		"nat kind":           func(p *Plan) { p.Namespaces[0].NAT[0].Kind = "masquerade" },
		"nat to":             func(p *Plan) { p.Namespaces[0].NAT[0].To = "fip" },
		"nat empty match":    func(p *Plan) { p.Namespaces[0].NAT[0].Match = NATMatch{} },
		"nat dnat oif":       func(p *Plan) { p.Namespaces[0].NAT[0].Match.OIF = "qr-11111111-aa" },
		"nat snat iif":       func(p *Plan) { p.Namespaces[0].NAT[1].Match.IIF = "qr-11111111-aa" },
		"nat unknown dev":    func(p *Plan) { p.Namespaces[2].NAT[0].Match.OIF = "qg-nope" },
		"nat bad addr":       func(p *Plan) { p.Namespaces[0].NAT[0].Match.Daddr = "172.24.4.5/33" },
		"iface id on a pair": func(p *Plan) { p.Namespaces[0].Links[2].IfaceID = "x" },
		"metadata elsewhere": func(p *Plan) { p.Namespaces[2].Metadata = p.Namespaces[3].Metadata },
		"metadata network":   func(p *Plan) { p.Namespaces[3].Metadata.Network = extNet },
		"metadata address":   func(p *Plan) { p.Namespaces[3].Links[0].Addresses = []string{"10.0.1.2/24"} },
		"instance address":   func(p *Plan) { p.Namespaces[3].Metadata.Instances[0].IP = "10.0.1.5/32" },
		"instance twice": func(p *Plan) {
			m := p.Namespaces[3].Metadata
			m.Instances = append(m.Instances, m.Instances[0])
		},
		"instance device": func(p *Plan) { p.Namespaces[3].Metadata.Instances[0].DeviceID = "" },
	}
	for name, mod := range cases {
		p := sample()
		mod(&p)
		if err := p.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestOVSPeerName(t *testing.T) {
	if got := OVSPeerName("qr-11111111-aa"); got != "tqr-11111111-aa" || ValidIfName(got) != nil {
		t.Errorf("OVSPeerName = %q", got)
	}
}

// sample6 is sample made dual-stack, as the l3 app plans IPv6 routed by the distributed
// router: the qr- ports hold their subnets' IPv6 gateway addresses beside the IPv4 ones,
// qrouter's table 16 sends the subnet's IPv6 traffic to the SNAT port (sg-) by a rule from
// the IPv6 prefix, snat's main table has the IPv6 default route through the external
// gateway, IPv6 neighbours are permanent, and forwarding is on.
func sample6() Plan {
	p := sample()
	qr, fip, snat := &p.Namespaces[0], &p.Namespaces[1], &p.Namespaces[2]
	qr.Sysctls["net.ipv6.conf.all.forwarding"] = "1"
	qr.Sysctls["net.ipv6.conf.qr-11111111-aa.accept_ra"] = "0"
	qr.Sysctls["net.ipv6.conf.qr-11111111-aa.accept_dad"] = "0"
	qr.Links[0].Addresses = append(qr.Links[0].Addresses, "2001:db8:1::1/64")
	qr.Links[1].Addresses = append(qr.Links[1].Addresses, "2001:db8:2::1/64", "2001:db8:22::1/64")
	qr.Routes = append(qr.Routes,
		Route{Dst: "default", Via: "2001:db8:1::3", Dev: "qr-11111111-aa", Table: 16},
		Route{Dst: "2001:db8:ff::/64", Via: "2001:db8:1::3", Dev: "qr-11111111-aa", Table: 17},
		Route{Dst: "::/0", Dev: "qr-22222222-bb", Table: 17})
	qr.Rules = append(qr.Rules,
		Rule{Priority: 32768, From: "2001:db8:1::/64", Table: 16},
		Rule{Priority: 32769, From: "::/0", IIF: "qr-22222222-bb", Table: 17})
	qr.Neighbors = append(qr.Neighbors,
		Neighbor{IP: "2001:db8:1::3", MAC: "fa:16:3e:00:05:01", Dev: "qr-11111111-aa"},
		Neighbor{IP: "fe80::f816:3eff:fe00:501", MAC: "fa:16:3e:00:05:01", Dev: "qr-11111111-aa"})
	fip.Rules = append(fip.Rules, Rule{Priority: 2852012033, From: "::/0", IIF: "fpr-5a1d4c3e-0", Table: 2852012033})
	snat.Sysctls = map[string]string{"net.ipv6.conf.all.forwarding": "1", "net.ipv6.conf.qg-44444444-dd.accept_ra": "0"}
	snat.Links[0].Addresses = append(snat.Links[0].Addresses, "2001:db8:ff::10/64")
	snat.Links[1].Addresses = append(snat.Links[1].Addresses, "2001:db8:1::3/64")
	snat.Routes = append(snat.Routes,
		Route{Dst: "default", Via: "2001:db8:ff::1", Dev: "qg-44444444-dd"},
		Route{Dst: "2001:db8:2::/64", Via: "2001:db8:1::1", Dev: "sg-55555555-ee"})
	return p
}

func TestIPv6IsValidAndRoundTrips(t *testing.T) {
	p := sample6()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var q Plan
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Errorf("JSON round trip changed the plan:\n%+v\n%+v", p, q)
	}
}

func TestFamilies(t *testing.T) {
	routes := []struct {
		r    Route
		v6   bool
		want string
	}{
		{Route{Dst: "default", Dev: "x"}, false, "0.0.0.0/0"},
		{Route{Dst: "default", Via: "172.24.4.1", Dev: "x"}, false, "0.0.0.0/0"},
		{Route{Dst: "default", Via: "2001:db8:ff::1", Dev: "x"}, true, "::/0"},
		{Route{Dst: "::/0", Dev: "x"}, true, "::/0"},
		{Route{Dst: "2001:db8:1::/64", Dev: "x"}, true, "2001:db8:1::/64"},
		{Route{Dst: "10.0.1.0/24", Dev: "x"}, false, "10.0.1.0/24"},
	}
	for _, c := range routes {
		dst, err := c.r.DstPrefix()
		if c.r.IPv6() != c.v6 || err != nil || dst.String() != c.want {
			t.Errorf("%+v: IPv6 %v, DstPrefix %s, %v; want %v, %s", c.r, c.r.IPv6(), dst, err, c.v6, c.want)
		}
	}
	rules := map[string]bool{"": false, "10.0.1.0/24": false, "0.0.0.0/0": false, "::/0": true, "2001:db8:1::/64": true}
	for from, v6 := range rules {
		if got := (Rule{From: from}).IPv6(); got != v6 {
			t.Errorf("rule from %q: IPv6 %v, want %v", from, got, v6)
		}
	}
}

func TestValidateRejectsIPv6(t *testing.T) {
	const qr0 = "qr-11111111-aa"
	cases := map[string]func(p *Plan){
		"v6 dst via v4": func(p *Plan) { p.Namespaces[0].Routes[2].Via = "10.0.1.3" },
		"v4 dst via v6": func(p *Plan) {
			p.Namespaces[0].Routes[0].Dst = "10.0.9.0/24"
			p.Namespaces[0].Routes[0].Via = "2001:db8:1::3"
		},
		"v6 dst host bits":    func(p *Plan) { p.Namespaces[0].Routes[2].Dst = "2001:db8:ff::1/64" },
		"v6 dst zone":         func(p *Plan) { p.Namespaces[0].Routes[2].Dst = "fe80::%qr/64" },
		"v6 via zone":         func(p *Plan) { p.Namespaces[0].Routes[1].Via = "fe80::1%" + qr0 },
		"v6 via multicast":    func(p *Plan) { p.Namespaces[0].Routes[1].Via = "ff02::1" },
		"v6 via unspecified":  func(p *Plan) { p.Namespaces[0].Routes[1].Via = "::" },
		"v6 via mapped":       func(p *Plan) { p.Namespaces[0].Routes[1].Via = "::ffff:10.0.1.3" },
		"v6 default twice":    func(p *Plan) { p.Namespaces[0].Routes[3].Table = 16 },
		"v4 default twice":    func(p *Plan) { p.Namespaces[0].Routes[3] = Route{Dst: "0.0.0.0/0", Dev: qr0, Table: 16} },
		"v6 route dev":        func(p *Plan) { p.Namespaces[2].Routes[1].Dev = "qr-11111111-aa" },
		"v6 address ll":       func(p *Plan) { p.Namespaces[0].Links[0].Addresses[1] = "fe80::1/64" },
		"v6 address mcast":    func(p *Plan) { p.Namespaces[0].Links[0].Addresses[1] = "ff02::1/128" },
		"v6 address zone":     func(p *Plan) { p.Namespaces[0].Links[0].Addresses[1] = "2001:db8:1::1%x/64" },
		"v6 address mapped":   func(p *Plan) { p.Namespaces[0].Links[0].Addresses[1] = "::ffff:10.0.1.1/120" },
		"v6 address bits":     func(p *Plan) { p.Namespaces[0].Links[0].Addresses[1] = "2001:db8:1::1/129" },
		"v6 address bare":     func(p *Plan) { p.Namespaces[0].Links[0].Addresses[1] = "2001:db8:1::1" },
		"v6 rule host bits":   func(p *Plan) { p.Namespaces[0].Rules[1].From = "2001:db8:1::1/64" },
		"v6 rule mapped":      func(p *Plan) { p.Namespaces[0].Rules[1].From = "::ffff:10.0.1.0/120" },
		"v6 rule twice":       func(p *Plan) { p.Namespaces[0].Rules = append(p.Namespaces[0].Rules, p.Namespaces[0].Rules[1]) },
		"v6 neighbor mcast":   func(p *Plan) { p.Namespaces[0].Neighbors[1].IP = "ff02::1" },
		"v6 neighbor unspec":  func(p *Plan) { p.Namespaces[0].Neighbors[1].IP = "::" },
		"v6 neighbor zone":    func(p *Plan) { p.Namespaces[0].Neighbors[2].IP = "fe80::f816:3eff:fe00:501%" + qr0 },
		"v6 neighbor prefix":  func(p *Plan) { p.Namespaces[0].Neighbors[1].IP = "2001:db8:1::3/128" },
		"v6 neighbor twice":   func(p *Plan) { p.Namespaces[0].Neighbors[2].IP = "2001:db8:1:0::3" },
		"nat66 to":            func(p *Plan) { p.Namespaces[0].NAT[0].To = "2001:db8:1::5" },
		"nat66 daddr":         func(p *Plan) { p.Namespaces[0].NAT[0].Match.Daddr = "2001:db8:ff::5" },
		"nat66 saddr":         func(p *Plan) { p.Namespaces[0].NAT[1].Match.Saddr = "2001:db8:1::/64" },
		"metadata v6":         func(p *Plan) { p.Namespaces[3].Metadata.Instances[0].IP = "2001:db8:1::5" },
		"v6 route table main": func(p *Plan) { p.Namespaces[0].Routes[1].Table = 254 },
	}
	for name, mod := range cases {
		p := sample6()
		mod(&p)
		if err := p.Validate(); err == nil {
			t.Errorf("%s: Validate accepted it", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// ValidateChanged validates the named namespaces, those joined to them by a link, and the
// plan as a whole; a namespace neither named nor joined is taken as it validated before.
func TestValidateChanged(t *testing.T) {
	qr, fip, snat := "qrouter-"+router, "fip-"+extNet, "snat-"+router
	for name, c := range map[string]struct {
		change func(p *Plan)
		named  []string
		fails  bool
	}{
		"valid, nothing named":     {func(p *Plan) {}, nil, false},
		"named namespace broken":   {func(p *Plan) { p.Namespaces[2].Routes[0].Dev = "nope" }, []string{snat}, true},
		"unnamed namespace broken": {func(p *Plan) { p.Namespaces[2].Routes[0].Dev = "nope" }, []string{qr}, false},
		"named end of a pair gone": {func(p *Plan) { p.Namespaces[0].Links = p.Namespaces[0].Links[:2] }, []string{qr}, true},
		"its peer checked too": {func(p *Plan) {
			p.Namespaces[0].Links[2].PeerName = "fpr-other" // the fip end no longer points back
		}, []string{fip}, true},
		"plugged twice across namespaces": {func(p *Plan) { p.Namespaces[2].Links[1].Name = "qr-11111111-aa" }, []string{snat}, true},
		"namespace twice":                 {func(p *Plan) { p.Namespaces[3].Name = snat }, []string{snat}, true},
	} {
		p := sample()
		c.change(&p)
		named := map[string]bool{}
		for _, n := range c.named {
			named[n] = true
		}
		if err := p.ValidateChanged(named); (err != nil) != c.fails {
			t.Errorf("%s: ValidateChanged(%v) = %v, want failure %v", name, c.named, err, c.fails)
		}
		if c.fails && p.Validate() == nil {
			t.Errorf("%s: Validate passes what ValidateChanged refuses", name)
		}
	}
}
