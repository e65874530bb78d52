//go:build integration

package integration

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/ofproto"
)

// vm6 is a VM of TestIPv6SecurityGroupsOnBed: its port on Net1 and its SLAAC address.
type vm6 struct {
	name, host string
	port       *ports.Port
	v6         netip.Addr
}

// vm6 creates a compute port on Net1 in groups (nil: the default group), bound to host,
// with the EUI-64 address the API gives it on the SLAAC subnet sub, plugs a VM namespace
// into it and sets its kernel to accept router advertisements and autoconfigure.
func (s *sgBed) vm6(ctx context.Context, name, host string, sub *subnets.Subnet, groups []string) *vm6 {
	s.t.Helper()
	opts := ports.CreateOpts{NetworkID: sub.NetworkID, Name: name, ProjectID: "demo", DeviceOwner: "compute:nova", DeviceID: name}
	if groups != nil {
		opts.SecurityGroups = &groups
	}
	p, err := ports.Create(ctx, s.c, portsbinding.CreateOptsExt{CreateOptsBuilder: opts, HostID: host}).Extract()
	if err != nil {
		s.t.Fatalf("create port of %s: %v", name, err)
	}
	v := &vm6{name: name, host: host, port: p}
	for _, ip := range p.FixedIPs {
		if ip.SubnetID == sub.ID {
			v.v6 = netip.MustParseAddr(ip.IPAddress)
		}
	}
	mac, _ := net.ParseMAC(p.MACAddress)
	if want := ofproto.EUI64(netip.MustParsePrefix(sub.CIDR), mac); v.v6 != want {
		s.t.Fatalf("%s: API's IPv6 address %s, want the EUI-64 address %s", name, v.v6, want)
	}
	ns, err := s.b.AddVM(ctx, host, name, p.ID, p.MACAddress, "", "")
	if err != nil {
		s.t.Fatal(err)
	}
	s.vms[name] = ns
	for _, kv := range []string{"net.ipv6.conf.all.forwarding=0", "net.ipv6.conf.eth0.accept_ra=1", "net.ipv6.conf.eth0.autoconf=1"} {
		if out, err := s.exec(ctx, name, "sysctl", "-w", kv); err != nil {
			s.t.Fatalf("%s: sysctl %s: %v\n%s", name, kv, err, out)
		}
	}
	return v
}

// rule6 creates an ingress rule of ethertype IPv6 in group.
func (s *sgBed) rule6(ctx context.Context, group string, r rules.CreateOpts) rules.SecGroupRule {
	s.t.Helper()
	r.Direction, r.EtherType, r.SecGroupID, r.ProjectID = rules.DirIngress, rules.EtherType6, group, "demo"
	rule, err := rules.Create(ctx, s.c, r).Extract()
	if err != nil {
		s.t.Fatalf("create rule %+v: %v", r, err)
	}
	return *rule
}

// ping6 pings dst from vm (count echoes, 0.2 s apart, at most deadline) and returns the
// replies received.
func (s *sgBed) ping6(ctx context.Context, vm string, dst netip.Addr, count int, deadline time.Duration, args ...string) (int, string) {
	argv := append([]string{"ping", "-6", "-n", "-c", fmt.Sprint(count), "-i", "0.2", "-W", "1", "-w", fmt.Sprint(int(deadline.Seconds()))}, args...)
	out, _ := s.exec(ctx, vm, append(argv, dst.String())...)
	m := regexp.MustCompile(`(\d+) received`).FindStringSubmatch(out)
	if m == nil {
		return 0, out
	}
	n, _ := strconv.Atoi(m[1])
	return n, out
}

// ping6Until waits up to 45 s for 3 replies of dst to vm's ping6.
func (s *sgBed) ping6Until(ctx context.Context, vm string, dst netip.Addr) {
	s.t.Helper()
	var out string
	if !eventually45(func() bool {
		var n int
		n, out = s.ping6(ctx, vm, dst, 3, 3*time.Second)
		return n >= 3
	}) {
		s.t.Fatalf("ping6 %s -> %s: no replies:\n%s", vm, dst, out)
	}
}

// noPing6 checks that vm's ping6 of dst gets no reply.
func (s *sgBed) noPing6(ctx context.Context, vm string, dst netip.Addr) {
	s.t.Helper()
	if n, out := s.ping6(ctx, vm, dst, 3, 3*time.Second); n != 0 {
		s.t.Errorf("ping6 %s -> %s: %d replies although it must get none:\n%s", vm, dst, n, out)
	}
}

func eventually45(what func() bool) bool {
	for end := time.Now().Add(45 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if what() {
			return true
		}
	}
	return false
}

// listen6 starts a TCP server on IPv6 port in vm's namespace appending what it receives
// to the returned file, until the test ends.
func (s *sgBed) listen6(vm string, port int) string {
	s.t.Helper()
	file := filepath.Join(s.t.TempDir(), fmt.Sprintf("%s-%d", vm, port))
	s.background(vm, "socat", "-u", fmt.Sprintf("TCP6-LISTEN:%d,fork,reuseaddr", port), "OPEN:"+file+",creat,append")
	return file
}

// connects6 reports whether a TCP connection from vm to [addr]:port is accepted within 2 s.
func (s *sgBed) connects6(ctx context.Context, vm string, addr netip.Addr, port int) bool {
	_, err := s.exec(ctx, vm, "socat", "-u", "OPEN:/dev/null", fmt.Sprintf("TCP6:[%s]:%d,connect-timeout=2", addr, port))
	return err == nil
}

func (s *sgBed) wantTCP6(ctx context.Context, vm string, addr netip.Addr, port int, allowed bool, why string) {
	s.t.Helper()
	if allowed {
		if !eventually(func() bool { return s.connects6(ctx, vm, addr, port) }) {
			s.t.Errorf("%s: %s cannot connect to [%s]:%d", why, vm, addr, port)
		}
		return
	}
	if s.connects6(ctx, vm, addr, port) {
		s.t.Errorf("%s: %s connects to [%s]:%d although it must not", why, vm, addr, port)
	}
}

// TestIPv6SecurityGroupsOnBed: security groups filter IPv6 between VM namespaces with
// SLAAC addresses (Net1's SLAAC subnet, as in TestIPv6SLAAC) as they filter IPv4: v6a
// (compute1) and v6b (compute2) in the project's default group, v6c (compute1) in
// "other" (egress only). Default group members reach each other by ping6 and TCP; v6c is
// refused; a rule allowing tcp/22 from an IPv6 prefix lets in what comes from inside it
// only; replies of a connection come back with no rule letting them in; an established
// IPv6 TCP stream is cut when the rule that allowed it goes; a VM sending from an IPv6
// address that is not its own is dropped at its port.
func TestIPv6SecurityGroupsOnBed(t *testing.T) {
	d := newDVRBed(t)
	ctx := context.Background()
	c := seed.NewClient(d.api, dvrToken)
	s := &sgBed{dvrBed: d, t: t, c: c}

	sub, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: d.topo.Net1.ID, Name: "net1-v6", CIDR: "2001:db8:1::/64",
		IPVersion: gophercloud.IPv6, IPv6RAMode: "slaac", IPv6AddressMode: "slaac", ProjectID: "demo"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := routers.AddInterface(ctx, c, d.topo.Router.ID, routers.AddInterfaceOpts{SubnetID: sub.ID}).Extract(); err != nil {
		t.Fatal(err)
	}
	other := s.group(ctx, "other")
	a := s.vm6(ctx, "v6a", "compute1", sub, nil)
	b := s.vm6(ctx, "v6b", "compute2", sub, nil)
	cv := s.vm6(ctx, "v6c", "compute1", sub, []string{other.ID})
	if len(a.port.SecurityGroups) != 1 || a.port.SecurityGroups[0] != d.topo.DefaultGroup.ID {
		t.Fatalf("v6a's groups %v, want the project's default %s", a.port.SecurityGroups, d.topo.DefaultGroup.ID)
	}
	start := time.Now()
	for _, v := range []*vm6{a, b, cv} {
		want := netip.PrefixFrom(v.v6, 64)
		waitFor(t, v.name+"'s kernel autoconfiguring "+want.String(), 45*time.Second, func() (bool, string) {
			got := globalAddrs(ctx, d, d.vms[v.name])
			return len(got) == 1 && got[0] == want, fmt.Sprintf("eth0 holds %v", got)
		})
	}
	t.Logf("SLAAC addresses (firewalled ports): v6a %s, v6b %s, v6c %s, %v after plugging", a.v6, b.v6, cv.v6, time.Since(start).Round(100*time.Millisecond))

	t.Run("default group: members reach each other by ping6 and TCP", func(t *testing.T) {
		s := s.in(t)
		s.ping6Until(ctx, "v6a", b.v6) // across the tunnel
		s.ping6Until(ctx, "v6b", a.v6)
		s.listen6("v6a", 8080)
		s.wantTCP6(ctx, "v6b", a.v6, 8080, true, "v6b is in v6a's default group")
	})
	t.Run("another group's VM is refused", func(t *testing.T) {
		s := s.in(t)
		s.noPing6(ctx, "v6c", a.v6) // v6a lets in the default group only
		s.wantTCP6(ctx, "v6c", a.v6, 8080, false, "v6c is not in the default group")
		s.noPing6(ctx, "v6a", cv.v6) // "other" lets nothing in
	})
	t.Run("tcp/22 from an IPv6 prefix: allowed from inside, refused from outside", func(t *testing.T) {
		s := s.in(t)
		if netip.PrefixFrom(b.v6, 124).Masked().Contains(a.v6) {
			t.Fatalf("v6a's %s is inside v6b's /124: the case needs it outside", a.v6)
		}
		ssh := s.group(ctx, "ssh-from-v6b")
		s.rule6(ctx, ssh.ID, rules.CreateOpts{Protocol: rules.ProtocolTCP, PortRangeMin: 22, PortRangeMax: 22,
			RemoteIPPrefix: netip.PrefixFrom(b.v6, 124).Masked().String()})
		s.setGroups(ctx, cv.port.ID, other.ID, ssh.ID)
		s.listen6("v6c", 22)
		s.listen6("v6c", 23)
		// v6b's own ingress rules let in the default group only: v6c's answers come back
		// because the connection is tracked.
		s.wantTCP6(ctx, "v6b", cv.v6, 22, true, b.v6.String()+" is inside the rule's /124")
		s.wantTCP6(ctx, "v6b", cv.v6, 23, false, "no rule for tcp/23")
		s.wantTCP6(ctx, "v6a", cv.v6, 22, false, a.v6.String()+" is outside the rule's /124")
	})
	t.Run("stateful: replies pass with no ingress rule; an established stream is cut when its rule goes", func(t *testing.T) {
		s := s.in(t)
		web := s.group(ctx, "web-from-v6c")
		r := s.rule6(ctx, web.ID, rules.CreateOpts{Protocol: rules.ProtocolTCP, PortRangeMin: 8080, PortRangeMax: 8080,
			RemoteIPPrefix: netip.PrefixFrom(cv.v6, 128).String()})
		s.setGroups(ctx, b.port.ID, d.topo.DefaultGroup.ID, web.ID)
		recv := s.listen6("v6b", 8080)
		// v6c's groups let in tcp/22 from v6b's /124 only: what v6b answers from port
		// 8080 comes in as the tracked connection's replies.
		s.wantTCP6(ctx, "v6c", b.v6, 8080, true, "web-from-v6c lets v6c in")
		s.background("v6c", "sh", "-c", fmt.Sprintf("while :; do echo 0123456789; sleep 0.05; done | socat -u - TCP6:[%s]:8080", b.v6))
		size0 := fileSize(recv)
		if !eventually(func() bool { return fileSize(recv) > size0+200 }) {
			t.Fatalf("the stream v6c -> [%s]:8080 does not flow (%d bytes)", b.v6, fileSize(recv))
		}
		cut, size := time.Now(), fileSize(recv)
		if err := rules.Delete(ctx, s.c, r.ID).ExtractErr(); err != nil {
			t.Fatal(err)
		}
		last := cut
		stopped := eventually(func() bool {
			if n := fileSize(recv); n != size {
				size, last = n, time.Now()
			}
			return time.Since(last) > 2*time.Second
		})
		if !stopped {
			t.Fatalf("the established IPv6 stream still flows %s after its rule was deleted", time.Since(cut))
		}
		t.Logf("established IPv6 TCP stream cut: last bytes seen %s after the API call (files polled every 250 ms)", last.Sub(cut).Round(time.Millisecond))
		s.wantTCP6(ctx, "v6c", b.v6, 8080, false, "the rule is gone")
	})
	t.Run("anti-spoofing: another IPv6 source is dropped", func(t *testing.T) {
		s := s.in(t)
		// v6b lets in ICMPv6 from anywhere, so only v6a's own port can stop a spoofed echo.
		icmp6 := s.group(ctx, "icmp6-from-anywhere")
		s.rule6(ctx, icmp6.ID, rules.CreateOpts{Protocol: rules.ProtocolIPv6ICMP})
		s.setGroups(ctx, b.port.ID, d.topo.DefaultGroup.ID, icmp6.ID)
		const spoofed = "2001:db8:1::99"
		if out, err := s.exec(ctx, "v6a", "ip", "-6", "addr", "add", spoofed+"/64", "dev", "eth0", "nodad"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		capture, err := d.b.Capture(ctx, d.vms["v6b"], "eth0", "icmp6 and ip6[40] == 128")
		if err != nil {
			t.Fatal(err)
		}
		// Its own address first (v6b's neighbour entry for it stays fresh), then the other.
		if n, out := s.ping6(ctx, "v6a", b.v6, 3, 3*time.Second, "-I", a.v6.String()); n == 0 {
			t.Fatalf("ping6 v6a -> v6b from its own address: no reply\n%s", out)
		}
		if n, out := s.ping6(ctx, "v6a", b.v6, 5, 3*time.Second, "-I", spoofed); n != 0 {
			t.Errorf("ping6 v6a -> v6b from %s (not its address): %d replies\n%s", spoofed, n, out)
		}
		lines, err := capture.Stop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var own, spoof int
		for _, l := range lines {
			switch {
			case strings.Contains(l, a.v6.String()+" > "):
				own++
			case strings.Contains(l, spoofed+" > "):
				spoof++
			}
		}
		if own == 0 || spoof != 0 {
			t.Errorf("v6b received %d echo requests from v6a's address (want some) and %d from %s (want none):\n%s",
				own, spoof, spoofed, strings.Join(lines, "\n"))
		}
		t.Logf("v6b's eth0: %d echo requests from v6a's own address, %d from the spoofed %s", own, spoof, spoofed)
	})
	out, err := d.b.Host("compute2").OVS.Appctl(ctx, "ovs-vswitchd", "dpctl/dump-conntrack")
	if err != nil || !strings.Contains(out, b.v6.String()) {
		t.Errorf("compute2's conntrack holds no connection of %s: %v\n%s", b.v6, err, out)
	}
}
