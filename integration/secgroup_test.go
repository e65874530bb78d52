//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsecurity"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/testbed/bed"
)

// sgBed is the seed bed with what the security group tests add to it.
type sgBed struct {
	*dvrBed
	t testing.TB
	c *gophercloud.ServiceClient
}

// vm creates a compute port in groups (nil: the API's default) on sn, bound to host, and
// plugs a VM namespace into it.
func (s *sgBed) vm(ctx context.Context, name, host string, sn subnets.Subnet, ip string, groups []string) ports.Port {
	s.t.Helper()
	opts := ports.CreateOpts{NetworkID: sn.NetworkID, Name: name, ProjectID: "demo", DeviceOwner: "compute:nova",
		DeviceID: name, FixedIPs: []ports.IP{{SubnetID: sn.ID, IPAddress: ip}}}
	if groups != nil {
		opts.SecurityGroups = &groups
	}
	p, err := ports.Create(ctx, s.c, portsbinding.CreateOptsExt{CreateOptsBuilder: opts, HostID: host}).Extract()
	if err != nil {
		s.t.Fatalf("create port of %s: %v", name, err)
	}
	s.vms[name] = s.bootVM(ctx, s.t, host, strings.ToLower(name), p, bed.Dhclient)
	return *p
}

// group creates a security group of the demo project with ingress rules (its two egress
// rules come with it).
func (s *sgBed) group(ctx context.Context, name string, ingress ...rules.CreateOpts) groups.SecGroup {
	s.t.Helper()
	g, err := groups.Create(ctx, s.c, groups.CreateOpts{Name: name, ProjectID: "demo"}).Extract()
	if err != nil {
		s.t.Fatalf("create group %s: %v", name, err)
	}
	for _, r := range ingress {
		s.rule(ctx, g.ID, r)
	}
	return *g
}

func (s *sgBed) rule(ctx context.Context, group string, r rules.CreateOpts) rules.SecGroupRule {
	s.t.Helper()
	r.Direction, r.EtherType, r.SecGroupID, r.ProjectID = rules.DirIngress, rules.EtherType4, group, "demo"
	rule, err := rules.Create(ctx, s.c, r).Extract()
	if err != nil {
		s.t.Fatalf("create rule %+v: %v", r, err)
	}
	return *rule
}

// in returns s reporting to t (a subtest).
func (s *sgBed) in(t *testing.T) *sgBed {
	c := *s
	c.t = t
	return &c
}

func (s *sgBed) setGroups(ctx context.Context, port string, groups ...string) {
	s.t.Helper()
	if _, err := ports.Update(ctx, s.c, port, ports.UpdateOpts{SecurityGroups: &groups}).Extract(); err != nil {
		s.t.Fatalf("port %s security groups %v: %v", port, groups, err)
	}
}

// exec runs a command in a VM's namespace.
func (s *sgBed) exec(ctx context.Context, vm string, args ...string) (string, error) {
	return s.b.Exec(ctx, s.vms[vm], args...)
}

// listen starts a TCP server on port in vm's namespace that appends what it receives to
// the returned file (or discards it), until the test ends.
func (s *sgBed) listen(vm string, port int) string {
	s.t.Helper()
	file := filepath.Join(s.t.TempDir(), fmt.Sprintf("%s-%d", vm, port))
	s.background(vm, "socat", "-u", fmt.Sprintf("TCP-LISTEN:%d,fork,reuseaddr", port), "OPEN:"+file+",creat,append")
	return file
}

// background starts argv in vm's namespace, in a process group of its own; the test's
// end kills the group.
func (s *sgBed) background(vm string, argv ...string) *exec.Cmd {
	s.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", s.vms[vm]}, argv...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	time.Sleep(200 * time.Millisecond)
	return cmd
}

// connects reports whether a TCP connection from vm to addr:port is accepted within 2 s.
func (s *sgBed) connects(ctx context.Context, vm, addr string, port int) bool {
	_, err := s.exec(ctx, vm, "socat", "-u", "OPEN:/dev/null", fmt.Sprintf("TCP:%s:%d,connect-timeout=2", addr, port))
	return err == nil
}

// eventually waits up to 20 s (the flows landing) for what() to hold.
func eventually(what func() bool) bool {
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if what() {
			return true
		}
	}
	return false
}

func (s *sgBed) wantTCP(ctx context.Context, vm, addr string, port int, allowed bool, why string) {
	s.t.Helper()
	if allowed {
		if !eventually(func() bool { return s.connects(ctx, vm, addr, port) }) {
			s.t.Errorf("%s: %s cannot connect to %s:%d", why, vm, addr, port)
		}
		return
	}
	if s.connects(ctx, vm, addr, port) {
		s.t.Errorf("%s: %s connects to %s:%d although it must not", why, vm, addr, port)
	}
}

func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// TestSecurityGroupsOnBed is issue 12's bed: real TCP and ICMP between VM namespaces on
// three hosts, filtered by the flows the controller computes from the security groups.
// The seed's VMs are in the demo project's default group, VM1 and VM3 also in "public";
// the test adds VM5 (default, compute1, Net1), VM6 ("other": egress only, compute1, Net1)
// and VM7 ("other", compute2, Net2).
func TestSecurityGroupsOnBed(t *testing.T) {
	d := newDVRBed(t)
	ctx := context.Background()
	s := &sgBed{dvrBed: d, t: t, c: seed.NewClient(d.api, dvrToken)}
	converge := 45 * time.Second
	def := d.topo.DefaultGroup.ID
	other := s.group(ctx, "other")
	vm5 := s.vm(ctx, "VM5", "compute1", d.topo.Subnet1, "10.0.1.7", nil)
	vm6 := s.vm(ctx, "VM6", "compute1", d.topo.Subnet1, "10.0.1.9", []string{other.ID})
	s.vm(ctx, "VM7", "compute2", d.topo.Subnet2, "10.0.2.9", []string{other.ID})
	if len(vm5.SecurityGroups) != 1 || vm5.SecurityGroups[0] != def {
		t.Fatalf("VM5's groups %v, want the project's default %s", vm5.SecurityGroups, def)
	}

	t.Run("default group: members reach each other, same host, other host, routed", func(t *testing.T) {
		d.pingUntil(t, "VM5", "10.0.1.5", converge) // same host, same network
		d.pingUntil(t, "VM5", "10.0.1.6", converge) // VM4 on compute2
		d.pingUntil(t, "VM5", "10.0.2.5", converge) // VM2, routed by R1
	})
	t.Run("another group's VM and the internet are refused", func(t *testing.T) {
		s := s.in(t)
		d.pingUntil(t, "VM6", "10.0.1.5", converge) // VM1's "public" lets ICMP in from anywhere
		d.noReach(ctx, t, "VM6", "10.0.1.6")        // VM4: default only
		d.noReach(ctx, t, "VM6", "10.0.1.7")        // VM5: default only, same host
		d.noReach(ctx, t, "VM4", "10.0.1.9")        // VM6's group lets nothing in
		fip, err := floatingips.Create(ctx, s.c, floatingips.CreateOpts{FloatingNetworkID: d.topo.External.ID,
			FloatingIP: "172.24.4.9", PortID: d.topo.VMs["VM4"].ID, ProjectID: "demo"}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		d.pingUntil(t, "VM4", bed.TargetIP, converge) // stateful: the replies come back
		r, err := d.b.Ping(ctx, d.b.InternetNetns(), fip.FloatingIP, 3, 3*time.Second)
		if err != nil || r.Received != 0 {
			t.Errorf("internet -> VM4's floating IP %s (default group only): %d/%d replies, %v", fip.FloatingIP, r.Received, r.Sent, err)
		}
		s.setGroups(ctx, d.topo.VMs["VM4"].ID, def, d.topo.PublicGroup.ID)
		d.pingUntil(t, d.b.InternetNetns(), fip.FloatingIP, converge)
	})
	t.Run("tcp/22 from a CIDR", func(t *testing.T) {
		s := s.in(t)
		ssh := s.group(ctx, "ssh-from-net1", rules.CreateOpts{Protocol: rules.ProtocolTCP, PortRangeMin: 22, PortRangeMax: 22,
			RemoteIPPrefix: "10.0.1.0/24"})
		s.setGroups(ctx, d.topo.VMs["VM2"].ID, def, ssh.ID)
		s.listen("VM2", 22)
		s.listen("VM2", 23)
		s.wantTCP(ctx, "VM6", "10.0.2.5", 22, true, "10.0.1.9 is inside 10.0.1.0/24 (routed to VM2)")
		s.wantTCP(ctx, "VM6", "10.0.2.5", 23, false, "no rule for tcp/23")
		s.wantTCP(ctx, "VM7", "10.0.2.5", 22, false, "10.0.2.9 is outside 10.0.1.0/24")
	})

	var web, clients groups.SecGroup
	recv := s.listen("VM4", 8080) // for the test's whole life: the stream below outlives its subtest
	t.Run("remote group: members only, and a port joining gains access", func(t *testing.T) {
		s := s.in(t)
		clients = s.group(ctx, "clients")
		web = s.group(ctx, "web", rules.CreateOpts{Protocol: rules.ProtocolTCP, PortRangeMin: 8080, PortRangeMax: 8080,
			RemoteGroupID: clients.ID})
		s.setGroups(ctx, d.topo.VMs["VM4"].ID, def, d.topo.PublicGroup.ID, web.ID)
		s.wantTCP(ctx, "VM7", "10.0.1.6", 8080, false, "VM7 is not in clients")
		s.wantTCP(ctx, "VM6", "10.0.1.6", 8080, false, "VM6 is not in clients")
		s.setGroups(ctx, vm6.ID, other.ID, clients.ID)
		s.wantTCP(ctx, "VM6", "10.0.1.6", 8080, true, "VM6 joined clients")
	})
	t.Run("an established connection is cut when the port leaves the group", func(t *testing.T) {
		s := s.in(t)
		if clients.ID == "" {
			t.Skip("needs the remote group case")
		}
		s.background("VM6", "sh", "-c", "while :; do echo 0123456789; sleep 0.05; done | socat -u - TCP:10.0.1.6:8080")
		start := fileSize(recv)
		if !eventually(func() bool { return fileSize(recv) > start+200 }) {
			t.Fatalf("the stream VM6 -> VM4:8080 does not flow (%d bytes)", fileSize(recv))
		}
		cut, size := time.Now(), fileSize(recv)
		s.setGroups(ctx, vm6.ID, other.ID)
		last := cut
		stopped := eventually(func() bool {
			if n := fileSize(recv); n != size {
				size, last = n, time.Now()
			}
			return time.Since(last) > 2*time.Second
		})
		if !stopped {
			t.Fatalf("the established stream still flows %s after VM6 left clients", time.Since(cut))
		}
		t.Logf("established TCP stream cut: last bytes seen %s after the API call (files polled every 250 ms)", last.Sub(cut).Round(time.Millisecond))
		s.wantTCP(ctx, "VM6", "10.0.1.6", 8080, false, "VM6 left clients")
	})
	t.Run("anti-spoofing: another IP or MAC is dropped", func(t *testing.T) {
		s := s.in(t)
		if _, err := s.exec(ctx, "VM6", "ip", "addr", "add", "10.0.1.99/24", "dev", "eth0"); err != nil {
			t.Fatal(err)
		}
		r, err := d.b.Ping(ctx, d.vms["VM6"], "10.0.1.5", 3, 3*time.Second)
		if err != nil || r.Received == 0 {
			t.Fatalf("VM6 -> VM1 from its own address: %d/%d, %v", r.Received, r.Sent, err)
		}
		if out, err := s.exec(ctx, "VM6", "ping", "-c", "3", "-W", "1", "-I", "10.0.1.99", "10.0.1.5"); err == nil {
			t.Errorf("VM6 -> VM1 from 10.0.1.99 (not its address) is answered:\n%s", out)
		}
		mac := vm6.MACAddress
		if _, err := s.exec(ctx, "VM6", "ip", "link", "set", "eth0", "address", "fa:16:3e:99:99:99"); err != nil {
			t.Fatal(err)
		}
		d.noReach(ctx, t, "VM6", "10.0.1.5")
		if _, err := s.exec(ctx, "VM6", "ip", "link", "set", "eth0", "address", mac); err != nil {
			t.Fatal(err)
		}
		d.pingUntil(t, "VM6", "10.0.1.5", converge)
	})
	t.Run("allowed address pair: a VRRP-style address moved between two VMs", func(t *testing.T) {
		s := s.in(t)
		const vip = "10.0.1.100"
		if _, err := s.exec(ctx, "VM4", "ip", "addr", "add", vip+"/24", "dev", "eth0"); err != nil {
			t.Fatal(err)
		}
		d.noReach(ctx, t, "VM1", vip) // VM4 may not answer from an address that is not its own
		pairs := []ports.AddressPair{{IPAddress: vip}}
		for _, p := range []string{d.topo.VMs["VM4"].ID, vm5.ID} {
			if _, err := ports.Update(ctx, s.c, p, ports.UpdateOpts{AllowedAddressPairs: &pairs}).Extract(); err != nil {
				t.Fatal(err)
			}
		}
		d.pingUntil(t, "VM1", vip, converge)
		if _, err := s.exec(ctx, "VM4", "ip", "addr", "del", vip+"/24", "dev", "eth0"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.exec(ctx, "VM5", "ip", "addr", "add", vip+"/24", "dev", "eth0"); err != nil {
			t.Fatal(err)
		}
		// Debian's arping (Habets): -U sends unsolicited ARP from -S; it exits 1 when nobody
		// answers, which unsolicited ARP never gets.
		if out, err := s.exec(ctx, "VM5", "arping", "-U", "-c", "2", "-i", "eth0", "-S", vip, vip); !strings.Contains(out, "2 packets transmitted") {
			t.Fatalf("gratuitous ARP from VM5: %v\n%s", err, out)
		}
		d.pingUntil(t, "VM1", vip, converge)
		out, _ := s.exec(ctx, "VM1", "ip", "neigh", "show", vip)
		if !strings.Contains(out, vm5.MACAddress) {
			t.Errorf("VM1's neighbour for %s is %q, want VM5's MAC %s", vip, strings.TrimSpace(out), vm5.MACAddress)
		}
	})
	t.Run("port security off passes everything", func(t *testing.T) {
		s := s.in(t)
		no := false
		var none []string
		if _, err := ports.Update(ctx, s.c, vm6.ID, ports.UpdateOpts{SecurityGroups: &none}).Extract(); err != nil {
			t.Fatal(err)
		}
		if _, err := ports.Update(ctx, s.c, vm6.ID, portsecurity.PortUpdateOptsExt{UpdateOptsBuilder: ports.UpdateOpts{}, PortSecurityEnabled: &no}).Extract(); err != nil {
			t.Fatal(err)
		}
		d.pingUntil(t, "VM7", "10.0.1.9", converge) // VM6 had no ingress rule
		if !eventually(func() bool {
			_, err := s.exec(ctx, "VM6", "ping", "-c", "1", "-W", "1", "-I", "10.0.1.99", "10.0.1.5")
			return err == nil
		}) {
			t.Errorf("VM6 with port security off cannot send from 10.0.1.99")
		}
	})
	// The connections were tracked by the userspace datapath's conntrack.
	out, err := d.b.Host("compute2").OVS.Appctl(ctx, "ovs-vswitchd", "dpctl/dump-conntrack")
	if err != nil || strings.TrimSpace(out) == "" {
		t.Errorf("dpctl/dump-conntrack on compute2: %v\n%s", err, out)
	}
	t.Logf("compute2's conntrack holds %d connections", len(strings.Split(strings.TrimSpace(out), "\n")))
}
