//go:build integration

package integration

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

// BenchmarkPortBoundToFirstPing measures, on the real three-host bed, the time from the API
// request that creates a port bound to compute2 until VM1 on compute1 gets its first ping
// reply from the new VM across the tunnel (Nova's part, plugging the VM, happens right after
// the API answers, as it would). It reports p50/p99 over -ports ports (50 by default).
//
//	go test -tags integration -run XXX -bench PortBoundToFirstPing -benchtime 1x ./integration/
func BenchmarkPortBoundToFirstPing(b *testing.B) {
	defer logLoad(b)()
	d := newDVRBedOn(b, "192.168.244.0/24")
	ctx := context.Background()
	c := seed.NewClient(d.api, dvrToken)
	d.pingUntil(b, "VM1", "10.0.2.5", 60*time.Second) // the bed works
	const n = 50
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat = lat[:0]
		for k := range n {
			ip := fmt.Sprintf("10.0.2.%d", 100+k)
			start := time.Now()
			p, err := ports.Create(ctx, c, portsbinding.CreateOptsExt{
				CreateOptsBuilder: ports.CreateOpts{NetworkID: d.topo.Net2.ID, Name: "lat" + strconv.Itoa(k),
					ProjectID: "demo", DeviceOwner: "compute:nova", DeviceID: "lat" + strconv.Itoa(k),
					FixedIPs: []ports.IP{{SubnetID: d.topo.Subnet2.ID, IPAddress: ip}}},
				HostID: "compute2",
			}).Extract()
			if err != nil {
				b.Fatalf("port %d: %v", k, err)
			}
			if _, err := d.b.AddVM(ctx, "compute2", fmt.Sprintf("lat%d-%d", i, k), p.ID, p.MACAddress, ip+"/24", "10.0.2.1"); err != nil {
				b.Fatal(err)
			}
			// Ping every 2 ms until the first reply (or 30 s).
			out, err := exec.CommandContext(ctx, "ip", "netns", "exec", d.vms["VM1"],
				"ping", "-n", "-q", "-i", "0.002", "-c", "1", "-w", "30", ip).CombinedOutput()
			if err != nil {
				b.Fatalf("no reply from %s within 30 s: %v\n%s", ip, err, out)
			}
			lat = append(lat, time.Since(start))
			if err := ports.Delete(ctx, c, p.ID).ExtractErr(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.Logf("port bound via the API -> first ping reply across hosts, %s", reportLatencies(b, lat, "ports"))
}

// reportLatencies sorts lat, reports its p50, p99 and minimum as metrics (ms-p50, ms-p99,
// ms-min) and returns them with the maximum as text, "n <what>: p50 ..., max ...".
func reportLatencies(b *testing.B, lat []time.Duration, what string) string {
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[(len(lat)*99+99)/100-1]
	b.ReportMetric(float64(p50.Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(p99.Microseconds())/1000, "ms-p99")
	b.ReportMetric(float64(lat[0].Microseconds())/1000, "ms-min")
	return fmt.Sprintf("%d %s: p50 %v, p99 %v, min %v, max %v", len(lat), what, p50, p99, lat[0], lat[len(lat)-1])
}
