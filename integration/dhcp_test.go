//go:build integration

package integration

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/extradhcpopts"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/testbed/bed"
	"github.com/dvrflow/dvrflow/testbed/novameta"
)

// dhcpBed is the seed bed with VMs that boot as instances do: a port created through the
// API and plugged as Nova does, with no address, then a real DHCP client (the bed's:
// Debian's dhclient with its own dhclient-script and hooks, or busybox udhcpc as cirros)
// configures the VM from the controller's answers.
//
// Nova cannot run here: nova is testbed/novameta, which stands in for Nova's metadata API
// (it checks the proxy's headers and signature exactly as Nova's handler does), listening
// in the root namespace on the controller's address, and every host helper runs its
// metadata proxies with --metadata-url pointing at it and the shared secret.
type dhcpBed struct {
	*dvrBed
	t    *testing.T
	c    *gophercloud.ServiceClient
	nova *novameta.Nova
}

// metadataSecret is the shared secret of the bed's helpers and its Nova stand-in.
const metadataSecret = "dvrflow-bed-metadata-secret"

func newDHCPBed(t *testing.T) *dhcpBed {
	if _, err := exec.LookPath("dhclient"); err != nil {
		t.Skip("dhclient is not installed (make test installs isc-dhcp-client)")
	}
	// The stand-in for Nova's metadata API, on every address of the root namespace (the
	// bed's controller address comes with the bed).
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	nova := novameta.New(metadataSecret, map[string]novameta.Instance{})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- novameta.Serve(ctx, ln, nova) }()
	t.Cleanup(func() {
		cancel()
		<-served
	})
	novaURL := fmt.Sprintf("http://%s:%d", bed.ControllerIP, ln.Addr().(*net.TCPAddr).Port)
	d := newDVRBedOn(t, "", "--metadata-url", novaURL, "--metadata-secret", metadataSecret)
	return &dhcpBed{dvrBed: d, t: t, c: seed.NewClient(d.api, dvrToken), nova: nova}
}

// vm creates a compute port on sn bound to host (IPAM picks the address) with extra DHCP
// options, and plugs a VM namespace with no address into it.
func (b *dhcpBed) vm(ctx context.Context, name, host string, sn subnets.Subnet, opts ...extradhcpopts.CreateExtraDHCPOpt) ports.Port {
	b.t.Helper()
	var create ports.CreateOptsBuilder = ports.CreateOpts{NetworkID: sn.NetworkID, Name: name, ProjectID: "demo",
		DeviceOwner: "compute:nova", DeviceID: name, FixedIPs: []ports.IP{{SubnetID: sn.ID}}}
	create = portsbinding.CreateOptsExt{CreateOptsBuilder: create, HostID: host}
	if len(opts) > 0 {
		create = extradhcpopts.CreateOptsExt{CreateOptsBuilder: create, ExtraDHCPOpts: opts}
	}
	p, err := ports.Create(ctx, b.c, create).Extract()
	if err != nil {
		b.t.Fatalf("create port of %s: %v", name, err)
	}
	ns, err := b.b.AddVM(ctx, host, strings.ToLower(name), p.ID, p.MACAddress, "", "")
	if err != nil {
		b.t.Fatal(err)
	}
	b.vms[name] = ns
	return *p
}

// dhclient boots vm's dhclient in the background, with more arguments.
func (b *dhcpBed) dhclient(vm string, extra ...string) {
	b.t.Helper()
	if err := b.b.StartDHCP(strings.ToLower(vm), bed.Dhclient, extra...); err != nil {
		b.t.Fatal(err)
	}
}

// waitAddr waits until eth0 of vm holds exactly want (a CIDR).
func (b *dhcpBed) waitAddr(ctx context.Context, t *testing.T, vm, want string, within time.Duration) {
	t.Helper()
	if err := b.b.WaitAddr(ctx, strings.ToLower(vm), want, within); err != nil {
		t.Fatal(err)
	}
}

// addrs returns eth0's IPv4 addresses in vm.
func (b *dhcpBed) addrs(ctx context.Context, vm string) []string {
	got, _ := b.b.Addrs(ctx, strings.ToLower(vm))
	return got
}

func (b *dhcpBed) exec(ctx context.Context, vm string, args ...string) string {
	b.t.Helper()
	out, err := b.b.Exec(ctx, b.vms[vm], args...)
	if err != nil {
		b.t.Fatalf("%s: %v: %v\n%s", vm, args, err, out)
	}
	return out
}

func TestDHCPOnBed(t *testing.T) {
	b := newDHCPBed(t)
	ctx := context.Background()
	converge := 45 * time.Second

	// Every VXLAN packet on every host's underlay, the whole test: no DHCP in any.
	var vxlan []interface {
		Stop(context.Context) ([]string, error)
	}
	for _, h := range b.b.Hosts() {
		c, err := b.b.Capture(ctx, "", h.UnderlayLink, "udp port 4789")
		if err != nil {
			t.Fatal(err)
		}
		vxlan = append(vxlan, c)
	}

	// The server side, as Neutron's agent would have made it: Net1's DHCP port.
	srvs, err := listDHCPPorts(ctx, b.c, b.topo.Net1.ID)
	if err != nil || len(srvs) != 1 || len(srvs[0].FixedIPs) != 1 {
		t.Fatalf("Net1's network:dhcp ports: %+v, %v", srvs, err)
	}
	server := srvs[0].FixedIPs[0].IPAddress
	sub1 := b.topo.Subnet1
	dns := []string{"192.0.2.53", "192.0.2.54"}
	routes := []subnets.HostRoute{{DestinationCIDR: "198.51.100.0/24", NextHop: "10.0.1.1"}}
	if _, err := subnets.Update(ctx, b.c, sub1.ID, subnets.UpdateOpts{DNSNameservers: &dns, HostRoutes: &routes}).Extract(); err != nil {
		t.Fatal(err)
	}

	t.Run("a booting VM gets its port's address, routes, MTU, DNS and name", func(t *testing.T) {
		p := b.vm(ctx, "VM8", "compute2", sub1)
		ip := p.FixedIPs[0].IPAddress
		wire, err := b.b.Capture(ctx, b.vms["VM8"], "eth0", "udp port 67 or udp port 68")
		if err != nil {
			t.Fatal(err)
		}
		b.dhclient("VM8")
		resolv := b.b.ResolvConf("vm8")
		b.waitAddr(ctx, t, "VM8", ip+"/24", converge)
		if mtu := b.exec(ctx, "VM8", "cat", "/sys/class/net/eth0/mtu"); strings.TrimSpace(mtu) != "1450" {
			t.Errorf("VM8 eth0 MTU %s, want the VXLAN network's 1450", mtu)
		}
		rt := b.exec(ctx, "VM8", "ip", "-4", "route")
		for _, want := range []string{"default via 10.0.1.1", "198.51.100.0/24 via 10.0.1.1"} {
			if !strings.Contains(rt, want) {
				t.Errorf("VM8 routes lack %q:\n%s", want, rt)
			}
		}
		conf, _ := os.ReadFile(resolv)
		for _, want := range []string{"search openstacklocal", "nameserver 192.0.2.53", "nameserver 192.0.2.54"} {
			if !strings.Contains(string(conf), want) {
				t.Errorf("VM8 resolv.conf lacks %q:\n%s", want, conf)
			}
		}
		pkts, err := wire.Stop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		text, _ := b.b.Exec(ctx, "", "tcpdump", "-r", wire.File(), "-n", "-vv")
		for _, want := range []string{"DHCP-Message (53), length 1: Offer", "DHCP-Message (53), length 1: ACK",
			"Server-ID (54), length 4: " + server, "Lease-Time (51), length 4: 86400", "RN (58), length 4: 43200",
			"RB (59), length 4: 75600", "Subnet-Mask (1), length 4: 255.255.255.0", "Default-Gateway (3), length 4: 10.0.1.1",
			"Domain-Name-Server (6), length 8: 192.0.2.53,192.0.2.54", "MTU (26), length 2: 1450",
			"Hostname (12), length " + fmt.Sprint(len("host-"+ip)) + ": \"host-" + strings.ReplaceAll(ip, ".", "-") + "\"",
			"Domain-Name (15), length 14: \"openstacklocal\"", "Classless-Static-Route (121)",
			"(198.51.100.0/24:10.0.1.1),(169.254.169.254/32:" + server + "),(default:10.0.1.1)", "Your-IP " + ip} {
			if !strings.Contains(text, want) {
				t.Errorf("the wire lacks %q (%d packets):\n%s", want, len(pkts), text)
			}
		}
		// The stack DHCP configured carries traffic: VM2 on Net2, routed by DVR.
		b.pingUntil(t, "VM8", "10.0.2.5", converge)

		// Its metadata, through the qmeta- proxy on compute2 and the signed path to
		// "Nova"; a header the VM sends itself changes nothing.
		b.nova.Add("VM8", novameta.Instance{ProjectID: "demo", Name: "VM8", Hostname: "vm8", ID: 8})
		b.metadata(ctx, t, "VM8", "/latest/meta-data/instance-id", "i-00000008", "-H", "X-Instance-ID: VM1")
		b.metadata(ctx, t, "VM8", "/openstack/latest/meta_data.json", `"uuid":"VM8"`)
		reqs := b.nova.Requests()
		last := reqs[len(reqs)-1]
		if last.InstanceID != "VM8" || last.TenantID != "demo" || last.ForwardedFor != ip || last.Status != 200 {
			t.Errorf("Nova saw %+v, want VM8 of demo from %s answered 200", last, ip)
		}
	})

	t.Run("busybox udhcpc, as cirros boots: the seed's VM2 has its MTU, routes and DNS", func(t *testing.T) {
		srv2, err := listDHCPPorts(ctx, b.c, b.topo.Net2.ID)
		if err != nil || len(srv2) != 1 {
			t.Fatalf("Net2's network:dhcp ports: %+v, %v", srv2, err)
		}
		if c := b.s.VMClient("VM2"); c != bed.Udhcpc {
			t.Fatalf("the seed's VM2 boots with %s, want udhcpc", c)
		}
		if mtu := b.exec(ctx, "VM2", "cat", "/sys/class/net/eth0/mtu"); strings.TrimSpace(mtu) != "1450" {
			t.Errorf("VM2 eth0 MTU %s, want 1450", mtu)
		}
		rt := b.exec(ctx, "VM2", "ip", "-4", "route")
		for _, want := range []string{"default via 10.0.2.1", "169.254.169.254 via " + srv2[0].FixedIPs[0].IPAddress} {
			if !strings.Contains(rt, want) {
				t.Errorf("VM2 routes lack %q:\n%s", want, rt)
			}
		}
		if conf, _ := os.ReadFile(b.b.ResolvConf("vm2")); !strings.Contains(string(conf), "search openstacklocal") {
			t.Errorf("VM2 resolv.conf lacks the domain:\n%s", conf)
		}
	})

	t.Run("metadata on a network with no router", func(t *testing.T) {
		n, err := networks.Create(ctx, b.c, networks.CreateOpts{Name: "isolated", ProjectID: "demo"}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		sn, err := subnets.Create(ctx, b.c, subnets.CreateOpts{NetworkID: n.ID, CIDR: "10.50.0.0/24", IPVersion: gophercloud.IPv4,
			ProjectID: "demo"}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		p := b.vm(ctx, "VM13", "compute1", *sn)
		b.dhclient("VM13")
		b.waitAddr(ctx, t, "VM13", p.FixedIPs[0].IPAddress+"/24", converge)
		b.nova.Add("VM13", novameta.Instance{ProjectID: "demo", Name: "VM13", Hostname: "vm13", ID: 13})
		b.metadata(ctx, t, "VM13", "/openstack/latest/meta_data.json", `"uuid":"VM13"`)
	})

	t.Run("renewal by unicast, then the port's new address through a NAK", func(t *testing.T) {
		p := b.vm(ctx, "VM9", "compute1", sub1, leaseTimes("120", "3", "100")...)
		ip := p.FixedIPs[0].IPAddress
		wire, err := b.b.Capture(ctx, b.vms["VM9"], "eth0", "udp port 67 or udp port 68")
		if err != nil {
			t.Fatal(err)
		}
		b.dhclient("VM9")
		b.waitAddr(ctx, t, "VM9", ip+"/24", converge)
		time.Sleep(5 * time.Second) // past T1
		newIP := "10.0.1.77"
		if _, err := ports.Update(ctx, b.c, p.ID, ports.UpdateOpts{FixedIPs: []ports.IP{{SubnetID: sub1.ID, IPAddress: newIP}}}).Extract(); err != nil {
			t.Fatal(err)
		}
		b.waitAddr(ctx, t, "VM9", newIP+"/24", converge)
		b.pingUntil(t, "VM9", "10.0.1.5", converge)
		if _, err := wire.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		text, _ := b.b.Exec(ctx, "", "tcpdump", "-r", wire.File(), "-n", "-v")
		renew := regexp.MustCompile(regexp.QuoteMeta(ip) + `\.68 > ` + regexp.QuoteMeta(server) + `\.67: [^\n]*Request[^\n]*\n\s*Client-IP ` + regexp.QuoteMeta(ip))
		if !renew.MatchString(text) {
			t.Errorf("no renewal unicast from %s to the server %s:\n%s", ip, server, text)
		}
		if !strings.Contains(text, "DHCP-Message (53), length 1: NACK") {
			t.Errorf("no NAK of the old address:\n%s", text)
		}
	})

	t.Run("release keeps the port's address; another port's address is NAKed", func(t *testing.T) {
		p := b.vm(ctx, "VM10", "compute2", sub1)
		ip := p.FixedIPs[0].IPAddress
		b.dhclient("VM10")
		b.waitAddr(ctx, t, "VM10", ip+"/24", converge)
		if _, err := b.b.StopDHCP("vm10"); err != nil {
			t.Fatal(err)
		}
		if out, err := b.b.RunDHCP(ctx, "vm10", bed.Dhclient, "-r"); err != nil {
			t.Fatalf("dhclient -r: %v\n%s", err, out)
		}
		got, err := ports.Get(ctx, b.c, p.ID).Extract()
		if err != nil || len(got.FixedIPs) != 1 || got.FixedIPs[0].IPAddress != ip {
			t.Fatalf("after the release the port holds %+v (%v), want %s", got.FixedIPs, err, ip)
		}
		// A lease for VM1's address in the client's lease file: it asks for it first.
		lease := fmt.Sprintf(`lease {
  interface "eth0";
  fixed-address 10.0.1.5;
  option subnet-mask 255.255.255.0;
  option dhcp-server-identifier %s;
  renew 4 2037/01/01 00:00:00;
  rebind 4 2037/01/01 00:00:00;
  expire 4 2037/01/01 00:00:00;
}
`, server)
		if err := os.WriteFile(filepath.Join(b.b.VMDir("vm10"), "leases"), []byte(lease), 0o644); err != nil {
			t.Fatal(err)
		}
		wire, err := b.b.Capture(ctx, b.vms["VM10"], "eth0", "udp port 67 or udp port 68")
		if err != nil {
			t.Fatal(err)
		}
		b.exec(ctx, "VM10", "ip", "addr", "flush", "dev", "eth0")
		b.dhclient("VM10")
		b.waitAddr(ctx, t, "VM10", ip+"/24", converge)
		if _, err := wire.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		text, _ := b.b.Exec(ctx, "", "tcpdump", "-r", wire.File(), "-n", "-v")
		if !strings.Contains(text, "Requested-IP (50), length 4: 10.0.1.5") || !strings.Contains(text, "NACK") {
			t.Errorf("the request for VM1's address was not NAKed:\n%s", text)
		}
	})

	t.Run("enable_dhcp=false gets no answer, and an answer once enabled", func(t *testing.T) {
		off := false
		sub2 := b.topo.Subnet2
		if _, err := subnets.Update(ctx, b.c, sub2.ID, subnets.UpdateOpts{EnableDHCP: &off}).Extract(); err != nil {
			t.Fatal(err)
		}
		p := b.vm(ctx, "VM11", "compute1", sub2)
		ip := p.FixedIPs[0].IPAddress
		out, err := b.b.RunDHCP(ctx, "vm11", bed.Dhclient, "-1")
		if got := b.addrs(ctx, "VM11"); err == nil || len(got) != 0 {
			t.Fatalf("dhclient -1 on a subnet with DHCP off: %v, eth0 holds %v\n%s", err, got, out)
		}
		on := true
		if _, err := subnets.Update(ctx, b.c, sub2.ID, subnets.UpdateOpts{EnableDHCP: &on}).Extract(); err != nil {
			t.Fatal(err)
		}
		b.dhclient("VM11")
		b.waitAddr(ctx, t, "VM11", ip+"/24", converge)
	})

	t.Run("controller down: the lease holds; back: the renewal keeps the address", func(t *testing.T) {
		p := b.vm(ctx, "VM12", "compute2", sub1, leaseTimes("40", "2", "35")...)
		ip := p.FixedIPs[0].IPAddress
		b.dhclient("VM12")
		b.waitAddr(ctx, t, "VM12", ip+"/24", converge)
		b.pingUntil(t, "VM12", "10.0.1.5", converge)
		b.ctrl.kill()
		time.Sleep(5 * time.Second) // renewals go unanswered
		if got := b.addrs(ctx, "VM12"); len(got) != 1 || got[0] != ip+"/24" {
			t.Fatalf("with the controller down VM12 holds %v, want its lease %s", got, ip)
		}
		b.pingUntil(t, "VM12", "10.0.1.5", 5*time.Second)
		wire, err := b.b.Capture(ctx, b.vms["VM12"], "eth0", "udp port 67 or udp port 68")
		if err != nil {
			t.Fatal(err)
		}
		b.ctrl.start()
		deadline := time.Now().Add(30 * time.Second)
		for {
			text, _ := b.b.Exec(ctx, "", "tcpdump", "-r", wire.File(), "-n", "-v")
			if strings.Contains(text, "DHCP-Message (53), length 1: ACK") {
				if !strings.Contains(text, "Your-IP "+ip) {
					t.Errorf("the ACK after the restart is not for %s:\n%s", ip, text)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no ACK within 30 s of the controller's return:\n%s", text)
			}
			time.Sleep(500 * time.Millisecond)
		}
		if _, err := wire.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if got := b.addrs(ctx, "VM12"); len(got) != 1 || got[0] != ip+"/24" {
			t.Fatalf("after the controller's return VM12 holds %v, want %s", got, ip)
		}
	})

	t.Run("no DHCP packet crossed a tunnel", func(t *testing.T) {
		for i, c := range vxlan {
			pkts, err := c.Stop(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, p := range pkts {
				if strings.Contains(p, ".67:") || strings.Contains(p, ".68:") || strings.Contains(p, "BOOTP") {
					n++
					if n <= 3 {
						t.Errorf("DHCP in VXLAN on %s: %s", b.b.Hosts()[i].Name, p)
					}
				}
			}
			if n > 0 {
				t.Errorf("%d DHCP packets in VXLAN on %s (of %d VXLAN packets)", n, b.b.Hosts()[i].Name, len(pkts))
			}
			if len(pkts) == 0 {
				t.Errorf("no VXLAN packet at all on %s: the capture saw nothing", b.b.Hosts()[i].Name)
			}
		}
	})
}

// metadata GETs path from http://169.254.169.254 in vm (with more curl arguments) until the
// answer holds want, or fails the test after 30 s.
func (b *dhcpBed) metadata(ctx context.Context, t *testing.T, vm, path, want string, curl ...string) {
	t.Helper()
	args := append([]string{"curl", "-sS", "-m", "5"}, curl...)
	args = append(args, "http://169.254.169.254"+path)
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := b.b.Exec(ctx, b.vms[vm], args...)
		if err == nil && strings.Contains(out, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: GET %s: %v\n%s\nwant %q", vm, path, err, out, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// leaseTimes are the extra DHCP options of a port whose client renews soon: lease, renewal
// (T1) and rebinding (T2) times in seconds.
func leaseTimes(lease, t1, t2 string) []extradhcpopts.CreateExtraDHCPOpt {
	return []extradhcpopts.CreateExtraDHCPOpt{{OptName: "lease-time", OptValue: lease}, {OptName: "T1", OptValue: t1},
		{OptName: "T2", OptValue: t2}}
}

// listDHCPPorts returns network netID's network:dhcp ports.
func listDHCPPorts(ctx context.Context, c *gophercloud.ServiceClient, netID string) ([]ports.Port, error) {
	pages, err := ports.List(c, ports.ListOpts{NetworkID: netID, DeviceOwner: "network:dhcp"}).AllPages(ctx)
	if err != nil {
		return nil, err
	}
	return ports.ExtractPorts(pages)
}
