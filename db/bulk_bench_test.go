package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/db"
)

// BenchmarkCreatePortsBulk creates ports through the store (no HTTP) in bulk writes of
// 1000, on 50 networks, from 4 parallel clients; it reports ports per second.
func BenchmarkCreatePortsBulk(b *testing.B) {
	ctx := context.Background()
	s := openStore(b, pg.NewDatabase(b))
	const nets, batch = 50, 1000
	// Unlimited ports: the default quota (Neutron's 500) ends a run after its first batch.
	ok(s.SetQuotas(ctx, "p", map[string]int64{db.QuotaPort: -1, db.QuotaSubnet: -1, db.QuotaNetwork: -1}, false))(b)
	var specs []db.NetworkSpec
	for range nets {
		specs = append(specs, db.NetworkSpec{ProjectID: "p"})
	}
	ns := ok(s.CreateNetworks(ctx, specs))(b)
	var subs []db.SubnetSpec
	for i, n := range ns {
		subs = append(subs, db.SubnetSpec{ProjectID: "p", NetworkID: n.ID, CIDR: ptr(fmt.Sprintf("10.%d.0.0/16", i))})
	}
	ok(s.CreateSubnets(ctx, subs))(b)
	b.SetParallelism(2) // 2 x GOMAXPROCS clients
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			ps := make([]db.PortSpec, batch)
			for j := range ps {
				ps[j] = db.PortSpec{ProjectID: "p", NetworkID: ns[(i*batch+j)/20%nets].ID, HostID: ptr(fmt.Sprintf("h%d", j%50))}
			}
			i++
			if _, err := s.CreatePorts(ctx, ps); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "ports/s")
}
