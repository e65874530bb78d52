package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/db"
)

// A lease is renewed while every connection of the store's pool is busy (a controller
// under API, engine and heartbeat load): the leases have their own connections.
func TestLeaseRenewalDoesNotWaitForThePool(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	spec := db.ControllerSpec{ID: "ctl1", Instance: "i1"}
	if err := s.RegisterController(ctx, spec, time.Second); err != nil {
		t.Fatal(err)
	}
	release, err := s.HoldAllConns(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	for range 3 {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		l, err := s.RenewLease(rctx, spec.ID, spec.Instance, time.Second, 0)
		cancel()
		if err != nil || !l.Held || len(l.Live) != 1 {
			t.Fatalf("renewal with the pool busy: %+v, %v", l, err)
		}
	}
	// Nor does it wait for its commit to reach the disk, behind a bulk load's WAL.
	if v, err := s.LeaseSetting(ctx, "synchronous_commit"); err != nil || v != "off" {
		t.Fatalf("synchronous_commit of the lease connections: %q, %v; want off", v, err)
	}
	// The pool is busy indeed: a query on it waits.
	qctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := s.HostMasters(qctx); err == nil {
		t.Fatal("a host table read went through while the test held every pool connection")
	}
}
