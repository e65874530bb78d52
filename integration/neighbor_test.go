//go:build integration

package integration

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"github.com/dvrflow/dvrflow/host/vmport"
	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/testbed/bed"
)

// testReusedIP: VM2's port is deleted and a new port gets the same fixed IP with a new
// MAC, on the same host. compute1's qrouter, which routed to the old MAC a moment ago,
// must route to the new one as soon as the new VM is plugged: its neighbour entry for
// the address is the controller's (permanent, from the plan), never a stale learned one.
// Before: 0 of 60 replies in 12 s (the kernel kept the old MAC as REACHABLE).
func testReusedIP(t *testing.T, d *dvrBed, converge time.Duration) {
	ctx := context.Background()
	c := seed.NewClient(d.api, dvrToken)
	const ip = "10.0.2.5"
	d.pingUntil(t, "VM1", ip, converge) // compute1's qrouter routes to VM2's MAC
	old := d.topo.VMs["VM2"]
	if err := ports.Delete(ctx, c, old.ID).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	ovs, err := d.b.OVSDB(ctx, "compute2")
	if err != nil {
		t.Fatal(err)
	}
	if err := vmport.Unplug(ctx, ovs, old.ID, "br-int", d.b.Host("compute2").Netns); err != nil {
		t.Fatal(err)
	}
	if out, err := d.b.Exec(ctx, "", "ip", "netns", "del", d.vms["VM2"]); err != nil {
		t.Fatalf("delete VM2's namespace: %v\n%s", err, out)
	}
	p, err := ports.Create(ctx, c, portsbinding.CreateOptsExt{
		CreateOptsBuilder: ports.CreateOpts{NetworkID: d.topo.Net2.ID, Name: "VM2b", ProjectID: "demo",
			DeviceOwner: "compute:nova", DeviceID: "VM2b", FixedIPs: []ports.IP{{SubnetID: d.topo.Subnet2.ID, IPAddress: ip}}},
		HostID: "compute2",
	}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if p.MACAddress == old.MACAddress {
		t.Fatalf("the new port got the old MAC %s: the test would prove nothing", p.MACAddress)
	}
	qr := d.b.Host("compute1").Netns + "-qrouter-" + d.topo.Router.ID
	waitFor(t, "compute1's qrouter holding the new port's MAC for "+ip, 10*time.Second, func() (bool, string) {
		out, _ := d.b.Exec(ctx, qr, "ip", "neigh", "show", ip)
		return strings.Contains(out, "lladdr "+p.MACAddress+" PERMANENT"), out
	})
	ns := d.bootVM(ctx, t, "compute2", "vm2b", p, bed.Udhcpc)
	plugged := time.Now()                    // and booted: eth0 holds its address
	d.vms["VM2"], d.topo.VMs["VM2"] = ns, *p // later tests use VM2 as the seed's
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", d.vms["VM1"],
		"ping", "-n", "-q", "-i", "0.002", "-c", "1", "-w", "15", ip).CombinedOutput()
	first := time.Since(plugged)
	if err != nil {
		t.Fatalf("no reply from the new port at %s within 15 s of its plug: %v\n%s", ip, err, out)
	}
	t.Logf("VM1 -> %s (new port, MAC %s instead of %s): first reply %v after the plug", ip, p.MACAddress, old.MACAddress, first)
	if first > 100*time.Millisecond {
		t.Errorf("first reply %v after the plug: want within 100 ms", first)
	}
	d.pingUntil(t, "VM4", ip, converge) // routed on compute2 as well
}
