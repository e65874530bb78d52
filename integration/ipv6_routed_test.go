//go:build integration

package integration

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
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

// TestIPv6Routed: the seed made dual stack. Net1 and Net2 get SLAAC subnets attached to
// the router (each by an interface port of its own, as `router add subnet` makes them),
// the external network an IPv6 subnet whose gateway is the bed's internet router, which
// routes Net1's prefix back to the router's gateway address (no NAT for IPv6). A VM on
// Net1 on compute1 and one on Net2 on compute2, both in the project's default security
// group (members reach each other, anything may leave, replies come back):
//   - ping each other over IPv6, routed by the distributed router on each sender's own host:
//     on the underlay, each echo leaves its host with that host's DVR MAC as source;
//   - the Net1 VM pings the internet router's IPv6 target, through the snat namespace on
//     the network node, and is seen there by its own address;
//   - no neighbour solicitation for a known address crosses a tunnel;
//   - the seed scenario's IPv4 checks pass unchanged on the dual-stack topology.
func TestIPv6Routed(t *testing.T) {
	d := newDVRBed(t)
	ctx := context.Background()
	c := seed.NewClient(d.api, dvrToken)
	converge := 45 * time.Second

	var wires []*bed.CaptureRun
	for _, h := range d.b.Hosts() {
		w, err := d.b.Capture(ctx, "", h.UnderlayLink, "udp port 4789")
		if err != nil {
			t.Fatal(err)
		}
		wires = append(wires, w)
	}

	prefixes := map[string]netip.Prefix{d.topo.Net1.ID: netip.MustParsePrefix("2001:db8:1::/64"), d.topo.Net2.ID: netip.MustParsePrefix("2001:db8:2::/64")}
	routerMACs := map[string]net.HardwareAddr{}
	for _, netID := range []string{d.topo.Net1.ID, d.topo.Net2.ID} {
		sub, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: netID, CIDR: prefixes[netID].String(),
			IPVersion: gophercloud.IPv6, IPv6RAMode: "slaac", IPv6AddressMode: "slaac", ProjectID: "demo"}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		rif, err := routers.AddInterface(ctx, c, d.topo.Router.ID, routers.AddInterfaceOpts{SubnetID: sub.ID}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		p, err := ports.Get(ctx, c, rif.PortID).Extract()
		if err != nil {
			t.Fatal(err)
		}
		routerMACs[netID], _ = net.ParseMAC(p.MACAddress)
	}
	ext6, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: d.topo.External.ID, CIDR: bed.ExternalCIDR6,
		GatewayIP: ptr(bed.ExternalGateway6), IPVersion: gophercloud.IPv6, EnableDHCP: ptr(false)}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	r, err := routers.Get(ctx, c, d.topo.Router.ID).Extract()
	if err != nil {
		t.Fatal(err)
	}
	var gw6 netip.Addr
	for _, ip := range r.GatewayInfo.ExternalFixedIPs {
		if ip.SubnetID == ext6.ID {
			gw6 = netip.MustParseAddr(ip.IPAddress)
		}
	}
	if !gw6.IsValid() {
		t.Fatalf("the router's gateway got no address on the external IPv6 subnet: %+v", r.GatewayInfo)
	}
	if err := d.b.RouteBack(ctx, prefixes[d.topo.Net1.ID], gw6); err != nil {
		t.Fatal(err)
	}

	type vm struct {
		name, host, net, ns string
		mac                 net.HardwareAddr
		v6                  netip.Addr
	}
	vms := []*vm{{name: "r6a", host: "compute1", net: d.topo.Net1.ID}, {name: "r6b", host: "compute2", net: d.topo.Net2.ID}}
	known := map[netip.Addr]string{}
	for netID, mac := range routerMACs {
		known[ofproto.LinkLocal(mac)] = "router link-local on " + netID
		known[prefixes[netID].Addr().Next()] = "router on " + netID
	}
	for _, v := range vms {
		p, err := ports.Create(ctx, c, portsbinding.CreateOptsExt{
			CreateOptsBuilder: ports.CreateOpts{NetworkID: v.net, Name: v.name, ProjectID: "demo",
				DeviceOwner: "compute:nova", DeviceID: v.name},
			HostID: v.host,
		}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		v.mac, _ = net.ParseMAC(p.MACAddress)
		v.v6 = ofproto.EUI64(prefixes[v.net], v.mac)
		if !slices.ContainsFunc(p.FixedIPs, func(ip ports.IP) bool { return ip.IPAddress == v.v6.String() }) {
			t.Fatalf("%s: fixed_ips %v lack the EUI-64 address %s", v.name, p.FixedIPs, v.v6)
		}
		known[v.v6], known[ofproto.LinkLocal(v.mac)] = v.name, v.name+" link-local"
		if v.ns, err = d.b.AddVM(ctx, v.host, v.name, p.ID, p.MACAddress, "", ""); err != nil {
			t.Fatal(err)
		}
		d.vms[v.name] = v.ns
		// A host: router advertisements accepted, not forwarding (the defaults, made sure).
		for _, kv := range []string{"net.ipv6.conf.all.forwarding=0", "net.ipv6.conf.eth0.accept_ra=1", "net.ipv6.conf.eth0.autoconf=1"} {
			if out, err := d.b.Exec(ctx, v.ns, "sysctl", "-w", kv); err != nil {
				t.Fatalf("%s: sysctl %s: %v\n%s", v.name, kv, err, out)
			}
		}
		if err := d.b.StartDHCP(v.name, bed.Udhcpc); err != nil {
			t.Fatal(err)
		}
		if err := d.b.WaitAddr(ctx, v.name, p.FixedIPs[0].IPAddress+"/24", converge); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range vms {
		want := netip.PrefixFrom(v.v6, 64)
		waitFor(t, v.name+"'s kernel autoconfiguring "+want.String(), converge, func() (bool, string) {
			got := globalAddrs(ctx, d, v.ns)
			return slices.Contains(got, want), fmt.Sprintf("eth0 holds %v", got)
		})
	}

	ping6 := func(t *testing.T, from *vm, to netip.Addr) {
		t.Helper()
		waitFor(t, fmt.Sprintf("a ping6 %s -> %s answered", from.name, to), converge, func() (bool, string) {
			out, err := d.b.Exec(ctx, from.ns, "ping", "-6", "-n", "-c", "1", "-W", "1", to.String())
			return err == nil, lastLines(out, 2)
		})
		out, err := d.b.Exec(ctx, from.ns, "ping", "-6", "-n", "-c", "5", "-i", "0.2", "-W", "1", to.String())
		if err != nil || !regexp.MustCompile(`\b5 received`).MatchString(out) {
			t.Fatalf("ping6 %s -> %s: %v\n%s", from.name, to, err, out)
		}
		t.Logf("ping6 %s -> %s: %s", from.name, to, lastLines(out, 2))
	}

	t.Run("east-west, routed on each sender's host with its DVR MAC on the wire", func(t *testing.T) {
		ping6(t, vms[0], vms[1].v6)
		ping6(t, vms[1], vms[0].v6)
	})
	t.Run("north-south through the snat namespace, routed without NAT", func(t *testing.T) {
		seen, err := d.b.Capture(ctx, d.b.InternetNetns(), bed.ExternalIface, "icmp6 and ip6 src "+vms[0].v6.String())
		if err != nil {
			t.Fatal(err)
		}
		ping6(t, vms[0], netip.MustParseAddr(bed.TargetIP6))
		lines, err := seen.Stop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "echo request") }) {
			t.Fatalf("the internet router saw no echo from %s itself:\n%s", vms[0].v6, strings.Join(lines, "\n"))
		}
	})
	t.Run("IPv4 checks of the seed scenario on the dual-stack topology", func(t *testing.T) {
		for _, ck := range d.s.Checks() {
			res, err := d.s.Run(ctx, ck, 5, converge)
			if err != nil {
				t.Fatalf("%s: %v", ck.Name, err)
			}
			t.Logf("%s: %d/%d replies", ck.What, res.Ping.Received, res.Ping.Sent)
		}
	})

	var hosts struct {
		Hosts []struct {
			Host string `json:"host"`
			MAC  string `json:"mac_address"`
		} `json:"dvr_host_macs"`
	}
	if err := apiGet(ctx, d.api, "/v2.0/dvr-host-macs", &hosts); err != nil {
		t.Fatal(err)
	}
	dvrMAC := map[string]string{}
	for _, h := range hosts.Hosts {
		dvrMAC[h.Host] = h.MAC
	}
	var vxlan int
	var leaked []string
	routedBy := map[string]int{}
	for _, w := range wires {
		lines, err := w.Stop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			vxlan++
			for _, pair := range [][2]*vm{{vms[0], vms[1]}, {vms[1], vms[0]}} {
				from, to := pair[0], pair[1]
				if strings.Contains(l, dvrMAC[from.host]+" > "+to.mac.String()) && strings.Contains(l, from.v6.String()+" > "+to.v6.String()) &&
					strings.Contains(l, "echo request") {
					routedBy[from.host]++
				}
			}
			if m := whoHasRE.FindStringSubmatch(l); m != nil && strings.Contains(l, "neighbor solicitation") {
				if a, err := netip.ParseAddr(m[1]); err == nil && known[a] != "" {
					leaked = append(leaked, known[a]+": "+l)
				}
			}
		}
	}
	for _, v := range vms {
		if routedBy[v.host] == 0 {
			t.Errorf("no echo request from %s left %s with its DVR MAC %s as source (%d VXLAN packets captured)", v.name, v.host, dvrMAC[v.host], vxlan)
		}
	}
	if len(leaked) > 0 {
		t.Errorf("%d neighbour solicitations for known addresses crossed a tunnel:\n%s", len(leaked), strings.Join(leaked, "\n"))
	}
	t.Logf("%d VXLAN packets; echo requests routed with the sender host's DVR MAC: %v; 0 solicitations for known addresses", vxlan, routedBy)
}

func ptr[T any](v T) *T { return &v }
