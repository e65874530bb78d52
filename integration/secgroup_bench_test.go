//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsecurity"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"github.com/dvrflow/dvrflow/host/hostnet"
	"github.com/dvrflow/dvrflow/northbound/seed"
)

// BenchmarkSecurityGroupDataPath measures what the firewall costs on the bed, side by side
// in one run: TCP throughput (iperf3, 5 s) and short TCP connections per second (connect
// and close, one at a time, for 3 s) from VM1 (compute1) to VM4 (compute2) on Net1, with
// both ports in their security groups and with port security off on both, alternating
// on, off, on, off. Run it alone: go test -tags integration -run XXX -bench
// SecurityGroupDataPath -benchtime 1x ./integration/ (as root).
func BenchmarkSecurityGroupDataPath(b *testing.B) {
	defer logLoad(b)()
	d := newDVRBed(b)
	ctx := context.Background()
	c := seed.NewClient(d.api, dvrToken)
	vm1, vm4 := d.topo.VMs["VM1"], d.topo.VMs["VM4"]
	const dst = "10.0.1.6"
	(&sgBed{dvrBed: d, t: b, c: c}).background("VM4", "iperf3", "-s", "-p", "5201")
	var ln net.Listener
	if err := hostnet.InNamespace(d.vms["VM4"], func() error {
		var err error
		ln, err = net.Listen("tcp", dst+":9000")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	setSecurity := func(on bool) {
		for _, p := range []ports.Port{vm1, vm4} {
			groups := p.SecurityGroups
			if !on {
				groups = []string{}
				if _, err := ports.Update(ctx, c, p.ID, ports.UpdateOpts{SecurityGroups: &groups}).Extract(); err != nil {
					b.Fatal(err)
				}
			}
			opts := portsecurity.PortUpdateOptsExt{UpdateOptsBuilder: ports.UpdateOpts{}, PortSecurityEnabled: &on}
			if on {
				opts.UpdateOptsBuilder = ports.UpdateOpts{SecurityGroups: &groups}
			}
			if _, err := ports.Update(ctx, c, p.ID, opts).Extract(); err != nil {
				b.Fatal(err)
			}
		}
		time.Sleep(2 * time.Second) // the flows land well within this
		d.pingUntil(b, "VM1", dst, 45*time.Second)
	}
	// The VMs take their VXLAN network's MTU, 1450, as DHCP's option 26 would give them:
	// full-size segments of a 1500-byte MTU do not fit the tunnel.
	for _, vm := range []string{"VM1", "VM4"} {
		if _, err := d.b.Exec(ctx, d.vms[vm], "ip", "link", "set", "eth0", "mtu", "1450"); err != nil {
			b.Fatal(err)
		}
	}
	results := map[bool][]float64{}
	conns := map[bool][]float64{}
	for range b.N {
		for _, on := range []bool{true, false, true, false} {
			setSecurity(on)
			out, err := d.b.Exec(ctx, d.vms["VM1"], "iperf3", "-c", dst, "-p", "5201", "-t", "5", "-J")
			if err != nil {
				b.Fatalf("iperf3: %v\n%s", err, out)
			}
			var r struct {
				End struct {
					SumReceived struct {
						BitsPerSecond float64 `json:"bits_per_second"`
					} `json:"sum_received"`
				} `json:"end"`
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				b.Fatalf("iperf3 -J: %v\n%s", err, out)
			}
			if r.End.SumReceived.BitsPerSecond == 0 {
				b.Fatalf("iperf3 moved nothing (security groups %v):\n%s", on, out)
			}
			results[on] = append(results[on], r.End.SumReceived.BitsPerSecond/1e6)
			n := 0
			err = hostnet.InNamespace(d.vms["VM1"], func() error {
				end := time.Now().Add(3 * time.Second)
				for time.Now().Before(end) {
					conn, err := net.DialTimeout("tcp", dst+":9000", 2*time.Second)
					if err != nil {
						return err
					}
					conn.Close()
					n++
				}
				return nil
			})
			if err != nil {
				b.Fatalf("short connections (security %v): %v after %d", on, err, n)
			}
			conns[on] = append(conns[on], float64(n)/3)
			b.Logf("security groups %v: %.0f Mbit/s, %.0f connections/s", on, results[on][len(results[on])-1], conns[on][len(conns[on])-1])
		}
	}
	mean := func(xs []float64) float64 {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	}
	b.ReportMetric(mean(results[true]), "Mbit/s-secgroups")
	b.ReportMetric(mean(results[false]), "Mbit/s-off")
	b.ReportMetric(mean(results[true])/mean(results[false]), "throughput-ratio")
	b.ReportMetric(mean(conns[true]), "conn/s-secgroups")
	b.ReportMetric(mean(conns[false]), "conn/s-off")
}
