//go:build integration

package integration

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/testbed/bed"
)

// BenchmarkPortBoundToLease measures, on the real three-host bed, the time from the API
// request that creates a port bound to compute2 until the VM's DHCP client (Debian's
// dhclient) has its lease: the moment it reports DHCPACK. Nova cannot run here; the
// benchmark does what Nova does: it plugs the VM right after the API answers, waits for the
// port to be ACTIVE (Nova starts the instance on Neutron's network-vif-plugged event, which
// Neutron sends when the port goes ACTIVE), then starts the VM's client at once, as an
// instance that boots in no time would. The client's own timers: dhclient sends its first
// DISCOVER when it starts (initial-delay 0, its default) and would retransmit after 1 s
// (initial-interval 1, set in the test's dhclient.conf; its default is 10 s); the benchmark
// reports how many leases needed a retransmission. p50/p99 over 50 ports.
//
//	go test -tags integration -run XXX -bench PortBoundToLease -benchtime 1x ./integration/
func BenchmarkPortBoundToLease(b *testing.B) {
	defer logLoad(b)()
	if _, err := exec.LookPath("dhclient"); err != nil {
		b.Skip("dhclient is not installed (make test installs isc-dhcp-client)")
	}
	d := newDVRBedOn(b, "192.168.243.0/24")
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dhclient.conf"), []byte(bed.DhclientConf), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	c := seed.NewClient(d.api, dvrToken)
	d.pingUntil(b, "VM1", "10.0.2.5", 60*time.Second) // the bed works
	const n = 50
	var lat []time.Duration
	retried := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		lat, retried = lat[:0], 0
		for k := range n {
			start := time.Now()
			p, err := ports.Create(ctx, c, portsbinding.CreateOptsExt{
				CreateOptsBuilder: ports.CreateOpts{NetworkID: d.topo.Net2.ID, Name: fmt.Sprintf("lease%d", k),
					ProjectID: "demo", DeviceOwner: "compute:nova", DeviceID: fmt.Sprintf("lease%d", k),
					FixedIPs: []ports.IP{{SubnetID: d.topo.Subnet2.ID}}},
				HostID: "compute2",
			}).Extract()
			if err != nil {
				b.Fatalf("port %d: %v", k, err)
			}
			ns, err := d.b.AddVM(ctx, "compute2", fmt.Sprintf("lease%d-%d", i, k), p.ID, p.MACAddress, "", "")
			if err != nil {
				b.Fatal(err)
			}
			for {
				got, err := ports.Get(ctx, c, p.ID).Extract()
				if err != nil {
					b.Fatal(err)
				}
				if got.Status == "ACTIVE" {
					break
				}
				if time.Since(start) > 30*time.Second {
					b.Fatalf("port %d not ACTIVE after 30 s", k)
				}
				time.Sleep(2 * time.Millisecond)
			}
			discovers, err := leaseOnce(ctx, ns, filepath.Join(dir, "dhclient.conf"), filepath.Join(dir, fmt.Sprintf("%d-%d", i, k)))
			if err != nil {
				b.Fatalf("port %d (%s): %v", k, p.FixedIPs[0].IPAddress, err)
			}
			lat = append(lat, time.Since(start))
			if discovers > 1 {
				retried++
			}
			if err := ports.Delete(ctx, c, p.ID).ExtractErr(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(retried), "retransmitted")
	b.Logf("port bound via the API -> DHCPACK in the VM's dhclient, %s; %d needed a retransmitted DISCOVER",
		reportLatencies(b, lat, "ports"), retried)
}

// leaseOnce runs dhclient once (-1) in namespace ns and returns when it reports DHCPACK,
// with the number of DISCOVERs it sent; the client is then stopped without releasing.
func leaseOnce(ctx context.Context, ns, conf, dir string) (int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	// -sf /bin/true: the lease is what is measured, not the configuration of the device.
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "dhclient", "-4", "-d", "-v", "-1", "-cf", conf,
		"-lf", filepath.Join(dir, "leases"), "-pf", filepath.Join(dir, "pid"), "-sf", "/bin/true", "eth0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}()
	discovers := 0
	var lines []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		l := sc.Text()
		lines = append(lines, l)
		switch {
		case strings.HasPrefix(l, "DHCPDISCOVER"):
			discovers++
		case strings.HasPrefix(l, "DHCPACK"):
			return discovers, nil
		}
	}
	return discovers, fmt.Errorf("dhclient ended without a lease:\n%s", strings.Join(lines, "\n"))
}
