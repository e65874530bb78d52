//go:build integration

package integration

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/testbed/bed"
)

// TestIPv6SLAAC: Net1 of the seed gets an IPv6 SLAAC subnet (ipv6_ra_mode and
// ipv6_address_mode slaac) attached to the router. Two new VMs on Net1, on compute1 and
// compute2 (firewalled, in the project's default group, whose IPv6 rules let its members
// reach each other), and the seed's VM1 (firewalled) autoconfigure, with their own kernels, the address the API shows
// in their fixed_ips from the controller's router advertisements; the two ping each other
// over IPv6 across the tunnel; and no neighbour solicitation for a known address is ever
// encapsulated (every host's underlay is captured from before the VMs are plugged).
func TestIPv6SLAAC(t *testing.T) {
	d := newDVRBed(t)
	ctx := context.Background()
	c := seed.NewClient(d.api, dvrToken)

	sub, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: d.topo.Net1.ID, Name: "net1-v6", CIDR: "2001:db8:1::/64",
		IPVersion: gophercloud.IPv6, IPv6RAMode: "slaac", IPv6AddressMode: "slaac", ProjectID: "demo"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	rif, err := routers.AddInterface(ctx, c, d.topo.Router.ID, routers.AddInterfaceOpts{SubnetID: sub.ID}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	rport, err := ports.Get(ctx, c, rif.PortID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	routerMAC, _ := net.ParseMAC(rport.MACAddress)

	var wires []*bed.CaptureRun
	for _, h := range d.b.Hosts() {
		w, err := d.b.Capture(ctx, "", h.UnderlayLink, "udp port 4789")
		if err != nil {
			t.Fatal(err)
		}
		wires = append(wires, w)
	}

	// The two VMs' ports: an IPv4 address from Subnet1's pool and the EUI-64 address of
	// the SLAAC subnet, as the API computes it; port security on, the default group.
	type vm struct {
		name, host, ns string
		port           *ports.Port
		v4, v6         netip.Addr
		mac            net.HardwareAddr
	}
	vms := []*vm{{name: "v6a", host: "compute1"}, {name: "v6b", host: "compute2"}}
	for _, v := range vms {
		p, err := ports.Create(ctx, c, portsbinding.CreateOptsExt{
			CreateOptsBuilder: ports.CreateOpts{NetworkID: d.topo.Net1.ID, Name: v.name, ProjectID: "demo",
				DeviceOwner: "compute:nova", DeviceID: v.name},
			HostID: v.host,
		}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		if len(p.SecurityGroups) != 1 || p.SecurityGroups[0] != d.topo.DefaultGroup.ID {
			t.Fatalf("%s: groups %v, want the default group %s", v.name, p.SecurityGroups, d.topo.DefaultGroup.ID)
		}
		v.port = p
		v.mac, _ = net.ParseMAC(p.MACAddress)
		for _, ip := range p.FixedIPs {
			a := netip.MustParseAddr(ip.IPAddress)
			if a.Is4() {
				v.v4 = a
			} else if ip.SubnetID == sub.ID {
				v.v6 = a
			}
		}
		if want := ofproto.EUI64(netip.MustParsePrefix("2001:db8:1::/64"), v.mac); v.v6 != want {
			t.Fatalf("%s: API's IPv6 address %s, want the EUI-64 address %s: fixed_ips %v", v.name, v.v6, want, p.FixedIPs)
		}
	}
	// The known addresses: the VMs' and their link-local ones, the router's. Their
	// neighbour solicitations go to the controller on every host (waited for, so that the
	// VMs' own duplicate address detection, as they are plugged, is covered too).
	known := map[netip.Addr]string{netip.MustParseAddr("2001:db8:1::1"): "router", ofproto.LinkLocal(routerMAC): "router link-local"}
	for _, v := range vms {
		known[v.v6], known[ofproto.LinkLocal(v.mac)] = v.name, v.name+" link-local"
	}
	for _, h := range []string{"compute1", "compute2"} {
		waitFor(t, h+"'s br-int sending the VMs' solicitations to the controller", 30*time.Second, func() (bool, string) {
			out, _ := d.b.Host(h).OVS.Ofctl(ctx, "br-int", "--no-stats", "dump-flows")
			for a, who := range known {
				if !strings.Contains(out, "nd_target="+a.String()+" ") {
					return false, "no flow for " + who + " " + a.String()
				}
			}
			return true, ""
		})
	}

	for _, v := range vms {
		ns, err := d.b.AddVM(ctx, v.host, v.name, v.port.ID, v.port.MACAddress, "", "")
		if err != nil {
			t.Fatal(err)
		}
		v.ns = ns
		d.vms[v.name] = ns
		// A host: router advertisements accepted, not forwarding (the defaults, made sure).
		for _, kv := range []string{"net.ipv6.conf.all.forwarding=0", "net.ipv6.conf.eth0.accept_ra=1", "net.ipv6.conf.eth0.autoconf=1"} {
			if out, err := d.b.Exec(ctx, ns, "sysctl", "-w", kv); err != nil {
				t.Fatalf("%s: sysctl %s: %v\n%s", v.name, kv, err, out)
			}
		}
		if err := d.b.StartDHCP(v.name, bed.Udhcpc); err != nil {
			t.Fatal(err)
		}
		if err := d.b.WaitAddr(ctx, v.name, v.v4.String()+"/24", 45*time.Second); err != nil {
			t.Fatal(err)
		}
	}

	// Each kernel's SLAAC address is the API's.
	vm1, err := ports.Get(ctx, c, d.topo.VMs["VM1"].ID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	var vm1v6 string
	for _, ip := range vm1.FixedIPs {
		if ip.SubnetID == sub.ID {
			vm1v6 = ip.IPAddress
		}
	}
	if vm1v6 == "" {
		t.Fatalf("VM1's port has no address on the SLAAC subnet: %v", vm1.FixedIPs)
	}
	slaac := map[string]string{"VM1 (firewalled)": d.vms["VM1"]}
	want := map[string]netip.Prefix{"VM1 (firewalled)": netip.PrefixFrom(netip.MustParseAddr(vm1v6), 64)}
	for _, v := range vms {
		slaac[v.name], want[v.name] = v.ns, netip.PrefixFrom(v.v6, 64)
	}
	start := time.Now()
	for name, ns := range slaac {
		waitFor(t, name+"'s kernel autoconfiguring "+want[name].String(), 45*time.Second, func() (bool, string) {
			got := globalAddrs(ctx, d, ns)
			return len(got) == 1 && got[0] == want[name], fmt.Sprintf("eth0 holds %v", got)
		})
		t.Logf("%s: SLAAC address %s, as the API's fixed_ips, %v after the VMs were up", name, want[name], time.Since(start).Round(100*time.Millisecond))
	}
	// And learnt the router's link-local address as its default router.
	for _, v := range vms {
		out, _ := d.b.Exec(ctx, v.ns, "ip", "-6", "route", "show", "default")
		if !strings.Contains(out, "via "+ofproto.LinkLocal(routerMAC).String()) {
			t.Errorf("%s: default route %q, want via the router's link-local %s", v.name, strings.TrimSpace(out), ofproto.LinkLocal(routerMAC))
		}
	}

	// Every port of Net1 the API has now (the seed's VMs with their new SLAAC addresses,
	// the router's IPv4 interface) is known as well.
	all, err := ports.List(c, ports.ListOpts{NetworkID: d.topo.Net1.ID}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	net1Ports, err := ports.ExtractPorts(all)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range net1Ports {
		if !strings.HasPrefix(p.DeviceOwner, "compute:") && p.DeviceOwner != "network:router_interface_distributed" {
			continue
		}
		if mac, err := net.ParseMAC(p.MACAddress); err == nil {
			known[ofproto.LinkLocal(mac)] = p.Name + " link-local"
		}
		for _, ip := range p.FixedIPs {
			if a := netip.MustParseAddr(ip.IPAddress); a.Is6() {
				known[a] = p.Name
			}
		}
	}

	// ping6 both ways, across the tunnel.
	for _, pair := range [][2]*vm{{vms[0], vms[1]}, {vms[1], vms[0]}} {
		from, to := pair[0], pair[1]
		out, err := d.b.Exec(ctx, from.ns, "ping", "-6", "-n", "-c", "5", "-i", "0.2", "-W", "1", "-w", "20", to.v6.String())
		if err != nil || !strings.Contains(out, " 0% packet loss") {
			// ping -w counts until 5 replies came: the first may wait for neighbour
			// resolution, so accept 5 received whatever was sent.
			if !regexp.MustCompile(`\b5 received`).MatchString(out) {
				t.Fatalf("ping6 %s -> %s: %v\n%s", from.name, to.v6, err, out)
			}
		}
		t.Logf("ping6 %s -> %s: %s", from.name, to.v6, lastLines(out, 2))
	}

	// No neighbour solicitation for a known address crossed a tunnel; the pings did.
	var vxlan, echo int
	var leaked, other []string
	for _, w := range wires {
		lines, err := w.Stop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			vxlan++
			if strings.Contains(l, "ICMP6, echo request") || strings.Contains(l, "ICMP6, echo reply") {
				echo++
			}
			if !strings.Contains(l, "neighbor solicitation") {
				continue
			}
			who := ""
			if m := whoHasRE.FindStringSubmatch(l); m != nil {
				if a, err := netip.ParseAddr(m[1]); err == nil {
					who = known[a]
				}
			}
			if who == "" {
				other = append(other, l)
			} else {
				leaked = append(leaked, who+": "+l)
			}
		}
	}
	// Whose were the others (their source MAC's port)?
	if allPages, err := ports.List(c, ports.ListOpts{}).AllPages(ctx); err == nil {
		if ps, err := ports.ExtractPorts(allPages); err == nil {
			for i, l := range other {
				for _, p := range ps {
					if strings.Contains(l, p.MACAddress+" > ") {
						other[i] = fmt.Sprintf("%s port %s %s on %s: %s", p.DeviceOwner, p.Name, p.ID, p.NetworkID, l)
					}
				}
			}
		}
	}
	if echo == 0 {
		t.Fatalf("the capture saw no ICMPv6 echo in %d VXLAN packets: it watches the wrong place", vxlan)
	}
	if len(leaked) > 0 {
		t.Fatalf("%d neighbour solicitations for known addresses crossed a tunnel:\n%s", len(leaked), strings.Join(leaked, "\n"))
	}
	t.Logf("%d VXLAN packets on the underlay (%d ICMPv6 echoes), 0 neighbour solicitations (ICMPv6 type 135) for a known address, %d for others:\n%s",
		vxlan, echo, len(other), strings.Join(other, "\n"))
}

var (
	inet6RE  = regexp.MustCompile(`inet6 (\S+) scope global(.*)`)
	whoHasRE = regexp.MustCompile(`who has ([0-9a-fA-F:.]+)`)
)

// globalAddrs returns the global IPv6 addresses of eth0 in namespace ns that passed
// duplicate address detection (not tentative).
func globalAddrs(ctx context.Context, d *dvrBed, ns string) []netip.Prefix {
	out, err := d.b.Exec(ctx, ns, "ip", "-6", "addr", "show", "dev", "eth0", "scope", "global")
	if err != nil {
		return nil
	}
	var got []netip.Prefix
	for _, m := range inet6RE.FindAllStringSubmatch(out, -1) {
		if p, err := netip.ParsePrefix(m[1]); err == nil && !strings.Contains(m[2], "tentative") {
			got = append(got, p)
		}
	}
	return got
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " / ")
}
