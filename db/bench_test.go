package db_test

import (
	"context"
	"testing"

	"github.com/dvrflow/dvrflow/db"
)

// BenchmarkCreatePort creates ports through the store (no HTTP) from parallel clients:
// one at a time with CreatePort, and as one-element CreatePorts calls.
func BenchmarkCreatePort(b *testing.B) {
	ctx := context.Background()
	s := openStore(b, pg.NewDatabase(b))
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(b)
	ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n.ID, CIDR: ptr("10.128.0.0/12")}))(b)
	for _, c := range []struct {
		name   string
		create func(db.PortSpec) error
	}{
		{"single", func(sp db.PortSpec) error { _, err := s.CreatePort(ctx, sp); return err }},
		{"bulk-of-one", func(sp db.PortSpec) error { _, err := s.CreatePorts(ctx, []db.PortSpec{sp}); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.create(db.PortSpec{ProjectID: "p", NetworkID: n.ID, HostID: ptr("h1")}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
