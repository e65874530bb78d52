package db_test

import (
	"context"
	"testing"

	"github.com/dvrflow/dvrflow/db"
)

// BenchmarkCreatePort creates ports through the store (no HTTP) from parallel clients.
func BenchmarkCreatePort(b *testing.B) {
	ctx := context.Background()
	s := openStore(b, pg.NewDatabase(b))
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(b)
	ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n.ID, CIDR: ptr("10.128.0.0/12")}))(b)
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID, HostID: ptr("h1")}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
