//go:build integration

package integration

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsecurity"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/testbed/bed"
)

// TestDHCPv6OnBed: two networks, one with a dhcpv6-stateful subnet and one with a
// dhcpv6-stateless subnet, both on the seed's router (which advertises them: M, and O with
// the A flag). VMs without port security (IPv6 security groups are not built yet) run
// Debian's dhclient -6: the two on the stateful network, on compute1 and compute2, get
// exactly their port's fixed IP from the controller, with the subnet's DNS servers and the
// domain in resolv.conf, and ping each other across the tunnel; the one on the stateless
// network configures the port's address by SLAAC from the advertisement and gets DNS with
// dhclient -6 -S (an INFORMATION-REQUEST). A stateful client restarted confirms its
// address (CONFIRM) and keeps it. No DHCPv6 packet crosses a tunnel.
func TestDHCPv6OnBed(t *testing.T) {
	if _, err := exec.LookPath("dhclient"); err != nil {
		t.Skip("dhclient is not installed (make test installs isc-dhcp-client)")
	}
	d := newDVRBed(t)
	ctx := context.Background()
	c := seed.NewClient(d.api, dvrToken)

	var vxlan []*bed.CaptureRun
	for _, h := range d.b.Hosts() {
		w, err := d.b.Capture(ctx, "", h.UnderlayLink, "udp port 4789")
		if err != nil {
			t.Fatal(err)
		}
		vxlan = append(vxlan, w)
	}

	type v6net struct {
		mode, cidr string
		dns        []string
		net        *networks.Network
		sub        *subnets.Subnet
		srvMAC     net.HardwareAddr // its DHCP port's
	}
	stateful := &v6net{mode: "dhcpv6-stateful", cidr: "2001:db8:a::/64", dns: []string{"2001:db8::53", "2001:db8::54"}}
	stateless := &v6net{mode: "dhcpv6-stateless", cidr: "2001:db8:b::/64", dns: []string{"2001:db8::153"}}
	for _, n := range []*v6net{stateful, stateless} {
		nw, err := networks.Create(ctx, c, networks.CreateOpts{Name: n.mode, ProjectID: "demo"}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		n.net = nw
		n.sub, err = subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: nw.ID, Name: n.mode, CIDR: n.cidr, IPVersion: gophercloud.IPv6,
			IPv6RAMode: n.mode, IPv6AddressMode: n.mode, DNSNameservers: n.dns, ProjectID: "demo"}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := routers.AddInterface(ctx, c, d.topo.Router.ID, routers.AddInterfaceOpts{SubnetID: n.sub.ID}).Extract(); err != nil {
			t.Fatal(err)
		}
		srvs, err := listDHCPPorts(ctx, c, nw.ID)
		if err != nil || len(srvs) != 1 || len(srvs[0].FixedIPs) != 1 {
			t.Fatalf("%s network's DHCP ports: %+v, %v", n.mode, srvs, err)
		}
		n.srvMAC, _ = net.ParseMAC(srvs[0].MACAddress)
	}

	type vm struct {
		name, host, ns string
		n              *v6net
		port           *ports.Port
		mac            net.HardwareAddr
		addr           netip.Addr
		started        time.Time // its dhclient
	}
	vms := []*vm{{name: "d6a", host: "compute1", n: stateful}, {name: "d6b", host: "compute2", n: stateful},
		{name: "d6c", host: "compute1", n: stateless}}
	off := false
	for _, v := range vms {
		p, err := ports.Create(ctx, c, portsbinding.CreateOptsExt{
			CreateOptsBuilder: portsecurity.PortCreateOptsExt{
				CreateOptsBuilder: ports.CreateOpts{NetworkID: v.n.net.ID, Name: v.name, ProjectID: "demo",
					DeviceOwner: "compute:nova", DeviceID: v.name, SecurityGroups: &[]string{}},
				PortSecurityEnabled: &off},
			HostID: v.host,
		}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		v.port = p
		v.mac, _ = net.ParseMAC(p.MACAddress)
		if len(p.FixedIPs) != 1 {
			t.Fatalf("%s: fixed IPs %v", v.name, p.FixedIPs)
		}
		v.addr = netip.MustParseAddr(p.FixedIPs[0].IPAddress)
		if v.n == stateless {
			if want := ofproto.EUI64(netip.MustParsePrefix(stateless.cidr), v.mac); v.addr != want {
				t.Fatalf("%s: API's address %s on the stateless subnet, want the EUI-64 address %s", v.name, v.addr, want)
			}
		}
	}

	var wire *bed.CaptureRun
	for _, v := range vms {
		ns, err := d.b.AddVM(ctx, v.host, v.name, v.port.ID, v.port.MACAddress, "", "")
		if err != nil {
			t.Fatal(err)
		}
		v.ns = ns
		d.vms[v.name] = ns
		for _, kv := range []string{"net.ipv6.conf.all.forwarding=0", "net.ipv6.conf.eth0.accept_ra=1", "net.ipv6.conf.eth0.autoconf=1"} {
			if out, err := d.b.Exec(ctx, ns, "sysctl", "-w", kv); err != nil {
				t.Fatalf("%s: sysctl %s: %v\n%s", v.name, kv, err, out)
			}
		}
		// dhclient -6 binds to the link-local address: once it passed duplicate address
		// detection.
		waitFor(t, v.name+"'s link-local address usable", 10*time.Second, func() (bool, string) {
			out, err := d.b.Exec(ctx, ns, "ip", "-6", "addr", "show", "dev", "eth0", "scope", "link")
			return err == nil && strings.Contains(out, "inet6 fe80:") && !strings.Contains(out, "tentative"), out
		})
		if v.name == "d6a" {
			if wire, err = d.b.Capture(ctx, ns, "eth0", "udp port 546 or udp port 547"); err != nil {
				t.Fatal(err)
			}
		}
		var extra []string
		if v.n == stateless {
			extra = []string{"-S"}
		}
		v.started = time.Now()
		if err := d.b.StartDHCP(v.name, bed.Dhclient6, extra...); err != nil {
			t.Fatal(err)
		}
	}

	for _, v := range vms {
		bits := 128 // dhclient-script adds a DHCPv6 address alone; the prefix is on link by the advertisement
		if v.n == stateless {
			bits = 64
		}
		want := netip.PrefixFrom(v.addr, bits)
		waitFor(t, v.name+" configuring exactly "+want.String(), 45*time.Second, func() (bool, string) {
			got := globalAddrs(ctx, d, v.ns)
			return len(got) == 1 && got[0] == want, fmt.Sprintf("eth0 holds %v; dhclient said:\n%s", got, d.b.DHCPOutput(v.name))
		})
		resolv := d.b.ResolvConf(v.name)
		lines := []string{"search openstacklocal."} // dhclient writes the list's names fully qualified
		for _, ns := range v.n.dns {
			lines = append(lines, "nameserver "+ns)
		}
		waitFor(t, v.name+"'s resolv.conf", 30*time.Second, func() (bool, string) {
			conf, _ := os.ReadFile(resolv)
			for _, l := range lines {
				if !strings.Contains(string(conf), l+"\n") {
					return false, fmt.Sprintf("lacks %q:\n%s\ndhclient said:\n%s", l, conf, d.b.DHCPOutput(v.name))
				}
			}
			return true, ""
		})
		t.Logf("%s (%s): %s and DNS %v, at most %v after its dhclient started", v.name, v.n.mode, want, v.n.dns,
			time.Since(v.started).Round(100*time.Millisecond))
	}

	// ping6 both ways between the stateful VMs, across the tunnel.
	for _, pair := range [][2]*vm{{vms[0], vms[1]}, {vms[1], vms[0]}} {
		from, to := pair[0], pair[1]
		out, err := d.b.Exec(ctx, from.ns, "ping", "-6", "-n", "-c", "5", "-i", "0.2", "-W", "1", "-w", "20", to.addr.String())
		if err != nil && !regexp.MustCompile(`\b5 received`).MatchString(out) {
			t.Fatalf("ping6 %s -> %s: %v\n%s", from.name, to.addr, err, out)
		}
		t.Logf("ping6 %s -> %s: %s", from.name, to.addr, lastLines(out, 2))
	}

	// What d6a's dhclient heard: the DHCP port's answers, from its link-local address, with
	// its DUID-LL, the lease times of --dhcp-lease-duration, right checksums.
	if _, err := wire.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	text, _ := d.b.Exec(ctx, "", "tcpdump", "-r", wire.File(), "-n", "-vv")
	srvLL := ofproto.LinkLocal(stateful.srvMAC).String()
	for _, want := range []string{srvLL + ".547 > " + ofproto.LinkLocal(vms[0].mac).String() + ".546: [udp sum ok] dhcp6 advertise",
		"dhcp6 reply", "server-ID hwaddr type 1 " + strings.ReplaceAll(stateful.srvMAC.String(), ":", ""),
		"T1:43200 T2:75600 (IA_ADDR " + vms[0].addr.String() + " pltime:86400 vltime:86400)", "(status-code Success)",
		"(DNS-server 2001:db8::53 2001:db8::54)", "(DNS-search-list openstacklocal.)"} {
		if !strings.Contains(text, want) {
			t.Errorf("d6a's wire lacks %q:\n%s", want, text)
		}
	}

	// d6a's client restarted (a VM rebooting): it confirms the address of its lease
	// (CONFIRM), which is the port's, still on link; it keeps it.
	if out, err := d.b.StopDHCP("d6a"); err != nil {
		t.Fatalf("stop d6a's dhclient: %v\n%s", err, out)
	}
	again, err := d.b.Capture(ctx, vms[0].ns, "eth0", "udp port 546 or udp port 547")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.b.StartDHCP("d6a", bed.Dhclient6); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "d6a's restarted dhclient bound again", 30*time.Second, func() (bool, string) {
		out := d.b.DHCPOutput("d6a")
		return strings.Contains(out, "RCV: Reply message"), out
	})
	if _, err := again.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	text, _ = d.b.Exec(ctx, "", "tcpdump", "-r", again.File(), "-n", "-vv")
	for _, want := range []string{"dhcp6 confirm", "(status-code Success)"} {
		if !strings.Contains(text, want) {
			t.Errorf("d6a's restart: the wire lacks %q:\n%s\ndhclient said:\n%s", want, text, d.b.DHCPOutput("d6a"))
		}
	}
	if got := globalAddrs(ctx, d, vms[0].ns); len(got) != 1 || got[0] != netip.PrefixFrom(vms[0].addr, 128) {
		t.Errorf("d6a holds %v after its client's restart, want %s/128", got, vms[0].addr)
	}

	// No DHCPv6 in VXLAN; the pings are.
	echo, total := 0, 0
	for i, w := range vxlan {
		pkts, err := w.Stop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		total += len(pkts)
		for _, p := range pkts {
			if strings.Contains(p, "ICMP6, echo request") {
				echo++
			}
			if strings.Contains(p, ".546 ") || strings.Contains(p, ".547:") || strings.Contains(p, "dhcp6") {
				if n++; n <= 3 {
					t.Errorf("DHCPv6 in VXLAN on %s: %s", d.b.Hosts()[i].Name, p)
				}
			}
		}
		if n > 0 {
			t.Errorf("%d DHCPv6 packets in VXLAN on %s (of %d VXLAN packets)", n, d.b.Hosts()[i].Name, len(pkts))
		}
	}
	if echo == 0 {
		t.Fatal("the underlay captures saw no ICMPv6 echo request: they watch the wrong place")
	}
	t.Logf("%d VXLAN packets on the underlay (%d ICMPv6 echo requests), no DHCPv6", total, echo)
}
