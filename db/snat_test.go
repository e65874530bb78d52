package db_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
)

// SNAT scheduling picks the least loaded live dvr_snat host and keeps it; routers move
// only off a host that is dead, deleted or no longer dvr_snat, and only to a live one.
func TestSNATScheduling(t *testing.T) {
	ctx := context.Background()
	s, dsn := newStore(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	stale := func(host string) {
		t.Helper()
		if _, err := conn.Exec(ctx, `UPDATE hosts SET heartbeat = now() - interval '1 hour' WHERE host = $1`, host); err != nil {
			t.Fatal(err)
		}
	}
	register := func(name, ip string, mode topology.HostMode) {
		t.Helper()
		ok2(s.RegisterHost(ctx, db.HostSpec{Name: name, TunnelIP: ip, Mode: mode}))(t)
	}
	f := build(t, s)
	router := func(id string) *topology.Router { t.Helper(); return ok(s.GetRouter(ctx, id))(t) }
	where := func(ids ...string) string {
		t.Helper()
		var out []string
		for _, id := range ids {
			out = append(out, router(id).SNATHost)
		}
		return fmt.Sprint(out)
	}
	reschedule := func() string {
		t.Helper()
		var out []string
		for _, m := range ok(s.RescheduleSNAT(ctx))(t) {
			out = append(out, m.From+">"+m.To)
		}
		return fmt.Sprint(out)
	}

	// No dvr_snat host when the gateway was set: the first one to register gets it, with
	// a new revision of the router; a dvr host does not.
	r1 := f.router.ID
	if h := router(r1).SNATHost; h != "" {
		t.Fatalf("snat host %q with no host registered", h)
	}
	register("c1", "192.168.248.1", topology.HostModeDVR)
	if h := router(r1).SNATHost; h != "" {
		t.Fatalf("snat host %q on a dvr host", h)
	}
	rev := router(r1).RevisionNumber
	register("n1", "192.168.248.11", topology.HostModeDVRSNAT)
	if got := router(r1); got.SNATHost != "n1" || got.RevisionNumber != rev+1 {
		t.Fatalf("after n1 registered: snat host %q revision %d, want n1 %d", got.SNATHost, got.RevisionNumber, rev+1)
	}
	// A second host takes nothing away (sticky) but gets the next router.
	register("n2", "192.168.248.12", topology.HostModeDVRSNAT)
	gs := &db.GatewaySpec{NetworkID: f.ext.ID}
	r2 := ok(s.CreateRouter(ctx, db.RouterSpec{ProjectID: "p", Gateway: &gs}))(t).ID
	r3 := ok(s.CreateRouter(ctx, db.RouterSpec{ProjectID: "p", Gateway: &gs}))(t).ID
	if got := where(r1, r2, r3); got != "[n1 n2 n1]" {
		t.Fatalf("snat hosts %s, want [n1 n2 n1]", got)
	}
	if got := reschedule(); got != "[]" {
		t.Fatalf("moves with every host live: %s", got)
	}
	// A router never lands on a dead host, and leaves one for a live host.
	stale("n1")
	r4 := ok(s.CreateRouter(ctx, db.RouterSpec{ProjectID: "p", Gateway: &gs}))(t).ID
	if got := where(r4); got != "[n2]" {
		t.Fatalf("new router on %s with n1 dead, want n2", got)
	}
	if got := reschedule(); got != "[n1>n2 n1>n2]" {
		t.Fatalf("moves off dead n1: %s", got)
	}
	if got := where(r1, r2, r3, r4); got != "[n2 n2 n2 n2]" {
		t.Fatalf("snat hosts %s after n1 died", got)
	}
	// With no live host nothing moves; a host coming back takes the routers of dead ones.
	stale("n2")
	if got := reschedule(); got != "[]" {
		t.Fatalf("moves with no live host: %s", got)
	}
	if err := s.Heartbeat(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	if got := reschedule(); got != "[n2>n1 n2>n1 n2>n1 n2>n1]" {
		t.Fatalf("moves to n1 back alive: %s", got)
	}
	// A host deleted or turned dvr moves its routers in the same write.
	if err := s.Heartbeat(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	register("n1", "192.168.248.11", topology.HostModeDVR)
	if got := where(r1, r2, r3, r4); got != "[n2 n2 n2 n2]" {
		t.Fatalf("snat hosts %s after n1 turned dvr", got)
	}
	register("n1", "192.168.248.11", topology.HostModeDVRSNAT)
	if err := s.DeleteHost(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if got := where(r1, r2, r3, r4); got != "[n1 n1 n1 n1]" {
		t.Fatalf("snat hosts %s after n2 was deleted", got)
	}
	// Clearing the gateway clears the host.
	ok(s.UpdateRouter(ctx, r4, db.RouterSpec{Gateway: ptr[*db.GatewaySpec](nil)}))(t)
	if got := where(r4); got != "[]" {
		t.Fatalf("snat host %s without a gateway", got)
	}
}
