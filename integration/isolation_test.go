//go:build integration

package integration

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/testbed/bed"
)

// isoNet creates a network with one IPv4 subnet in project.
func isoNet(ctx context.Context, t *testing.T, c *gophercloud.ServiceClient, project, name, cidr string) subnets.Subnet {
	t.Helper()
	yes := true
	nw, err := networks.Create(ctx, c, networks.CreateOpts{Name: name, ProjectID: project, AdminStateUp: &yes}).Extract()
	if err != nil {
		t.Fatalf("create network %s: %v", name, err)
	}
	sn, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: nw.ID, Name: name + "-subnet", CIDR: cidr,
		IPVersion: gophercloud.IPv4, ProjectID: project}).Extract()
	if err != nil {
		t.Fatalf("create subnet %s of %s: %v", cidr, name, err)
	}
	return *sn
}

// isoVM creates a compute port with fixed address ip on sn bound to host and plugs a VM
// namespace vmName into it, recorded in d.vms under name; it returns the port.
func isoVM(ctx context.Context, t *testing.T, d *dvrBed, c *gophercloud.ServiceClient, project string, sn subnets.Subnet,
	name, vmName, host, ip string) ports.Port {
	t.Helper()
	p, err := ports.Create(ctx, c, portsbinding.CreateOptsExt{
		CreateOptsBuilder: ports.CreateOpts{NetworkID: sn.NetworkID, Name: name, ProjectID: project,
			DeviceOwner: "compute:nova", DeviceID: name,
			FixedIPs: []ports.IP{{SubnetID: sn.ID, IPAddress: ip}}},
		HostID: host,
	}).Extract()
	if err != nil {
		t.Fatalf("create port of %s: %v", name, err)
	}
	d.vms[name] = d.bootVM(ctx, t, host, vmName, p, bed.Dhclient)
	return *p
}

// inEchos reads the ICMP echo requests a namespace's stack has received (Icmp InEchos
// of /proc/net/snmp, which is per network namespace).
func inEchos(ctx context.Context, t *testing.T, d *dvrBed, ns string) int {
	t.Helper()
	out, err := d.b.Exec(ctx, ns, "cat", "/proc/net/snmp")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Icmp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == "InEchos" && i < len(f) {
				v, err := strconv.Atoi(f[i])
				if err != nil {
					t.Fatalf("%s: InEchos %q: %v", ns, f[i], err)
				}
				return v
			}
		}
	}
	t.Fatalf("%s: no Icmp InEchos in /proc/net/snmp:\n%s", ns, out)
	return 0
}

// noReach checks that from (a VM name) gets no reply at all from dst: 3 pings, 3 s.
func (d *dvrBed) noReach(ctx context.Context, t *testing.T, from, dst string) {
	t.Helper()
	r, err := d.b.Ping(ctx, d.vms[from], dst, 3, 3*time.Second)
	if err != nil {
		t.Fatalf("%s -> %s: %v", from, dst, err)
	}
	if r.Received != 0 {
		t.Errorf("%s reaches %s (%d/%d replies) although it must not:\n%s", from, dst, r.Received, r.Sent, r.Output)
		return
	}
	t.Logf("%s -> %s: 0/%d replies:\n%s", from, dst, r.Sent, strings.TrimSpace(r.Output))
}

// TestDVRIsolation is issue 4's test 5: a second project with its own router and an
// overlapping 10.0.1.0/24 works independently of the seed's; no VM reaches another
// network without a router.
func TestDVRIsolation(t *testing.T) {
	d := newDVRBed(t)
	ctx := context.Background()
	c := seed.NewClient(d.api, dvrToken)
	converge := 45 * time.Second
	const tenantB = "tenant-b"
	seedProject := seed.DefaultOptions().ProjectID

	// Project tenant-b: NetB overlaps Net1, NetB2 is its own; router RB joins them and has
	// no gateway.
	snB := isoNet(ctx, t, c, tenantB, "netb", "10.0.1.0/24")
	snB2 := isoNet(ctx, t, c, tenantB, "netb2", "10.0.5.0/24")
	yes := true
	rb, err := routers.Create(ctx, c, routers.CreateOpts{Name: "RB", ProjectID: tenantB, Distributed: &yes,
		AdminStateUp: &yes}).Extract()
	if err != nil {
		t.Fatalf("create router RB: %v", err)
	}
	for _, sn := range []subnets.Subnet{snB, snB2} {
		if _, err := routers.AddInterface(ctx, c, rb.ID, routers.AddInterfaceOpts{SubnetID: sn.ID}).Extract(); err != nil {
			t.Fatalf("add interface %s to RB: %v", sn.CIDR, err)
		}
	}
	if snB.GatewayIP != "10.0.1.1" || snB2.GatewayIP != "10.0.5.1" {
		t.Fatalf("gateways %q and %q, want 10.0.1.1 and 10.0.5.1", snB.GatewayIP, snB2.GatewayIP)
	}
	isoVM(ctx, t, d, c, tenantB, snB, "VMB1", "vmb1", "compute1", "10.0.1.5") // VM1's address
	vmb1 := d.vms["VMB1"]
	isoVM(ctx, t, d, c, tenantB, snB2, "VMB2", "vmb2", "compute2", "10.0.5.7")

	// The seed's project: NetC with no router at all (its VM still has 10.0.3.1 as gateway).
	snC := isoNet(ctx, t, c, seedProject, "netc", "10.0.3.0/24")
	vmc := isoVM(ctx, t, d, c, seedProject, snC, "VMC", "vmc", "compute2", "10.0.3.9")

	t.Run("tenant-b routes across hosts, the seed still does", func(t *testing.T) {
		d.pingUntil(t, "VMB1", "10.0.5.7", converge)
		d.pingUntil(t, "VMB2", "10.0.1.5", converge)
		d.pingUntil(t, "VM1", "10.0.2.5", converge)
		d.pingUntil(t, "VM2", "10.0.1.5", converge)
	})

	t.Run("10.0.1.5 from tenant-b is VMB1, never VM1", func(t *testing.T) {
		vm1Before, vmb1Before := inEchos(ctx, t, d, d.vms["VM1"]), inEchos(ctx, t, d, vmb1)
		r, err := d.b.Ping(ctx, d.vms["VMB2"], "10.0.1.5", 10, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if r.Lost() != 0 {
			t.Fatalf("VMB2 -> 10.0.1.5: %+v", r)
		}
		vm1After, vmb1After := inEchos(ctx, t, d, d.vms["VM1"]), inEchos(ctx, t, d, vmb1)
		if vm1After != vm1Before {
			t.Errorf("VM1 received %d echo requests while VMB2 pinged 10.0.1.5", vm1After-vm1Before)
		}
		if vmb1After-vmb1Before < r.Received {
			t.Errorf("VMB1 received %d echo requests for %d replies to VMB2", vmb1After-vmb1Before, r.Received)
		}
		// And the other way round: the seed's VM2 reaching 10.0.1.5 reaches VM1.
		vm1Before, vmb1Before = vm1After, vmb1After
		if r, err = d.b.Ping(ctx, d.vms["VM2"], "10.0.1.5", 10, 10*time.Second); err != nil || r.Lost() != 0 {
			t.Fatalf("VM2 -> 10.0.1.5: %+v %v", r, err)
		}
		vm1After, vmb1After = inEchos(ctx, t, d, d.vms["VM1"]), inEchos(ctx, t, d, vmb1)
		if vmb1After != vmb1Before || vm1After-vm1Before < r.Received {
			t.Errorf("VM2 pinging 10.0.1.5: VM1 got %d echo requests, VMB1 %d (want %d and 0)",
				vm1After-vm1Before, vmb1After-vmb1Before, r.Received)
		}
	})

	t.Run("no reach across projects", func(t *testing.T) {
		d.noReach(ctx, t, "VMB1", "10.0.2.5") // VM2, behind the seed's R1
		d.noReach(ctx, t, "VMB2", "10.0.2.5")
		d.noReach(ctx, t, "VM2", "10.0.5.7") // VMB2, behind RB
		d.noReach(ctx, t, "VM4", "10.0.5.7")
	})

	t.Run("no reach into or out of a network without a router", func(t *testing.T) {
		// VMC's silence means something only once it is wired: its MAC in compute2's flows.
		waitFor(t, "flows for VMC's MAC on compute2", converge, func() (bool, string) {
			out, err := d.b.Host("compute2").OVS.Ofctl(ctx, "br-int", "--no-stats", "dump-flows")
			if err != nil {
				return false, err.Error()
			}
			return strings.Contains(out, vmc.MACAddress), "none yet"
		})
		d.noReach(ctx, t, "VM1", "10.0.3.9")
		d.noReach(ctx, t, "VM4", "10.0.3.9")
		d.noReach(ctx, t, "VMB1", "10.0.3.9")
		d.noReach(ctx, t, "VMC", "10.0.3.1")
		d.noReach(ctx, t, "VMC", "10.0.1.5")
		d.noReach(ctx, t, "VMC", "10.0.1.6")
		d.noReach(ctx, t, "VMC", "10.0.1.1")
	})
}
