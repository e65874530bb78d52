package failover_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/db/pgtest"
	"github.com/dvrflow/dvrflow/failover"
	"github.com/dvrflow/dvrflow/topology"
)

func ptr[T any](v T) *T { return &v }

// Run moves a router off a dead dvr_snat host, but only once the database has answered
// for a whole agent down time: after it starts, and after PostgreSQL was down (while the
// helpers' heartbeats could not be written).
func TestRunWaitsOneAgentDownTime(t *testing.T) {
	ctx := context.Background()
	srv, err := pgtest.Start(ctx, pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	dsn := srv.NewDatabase(t)
	const downTime = time.Second
	cfg := db.DefaultConfig()
	cfg.AgentDownTime = downTime
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	st, err := db.Open(ctx, dsn, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i, h := range []string{"n1", "n2"} {
		if _, _, err := st.RegisterHost(ctx, db.HostSpec{Name: h, TunnelIP: "192.168.248." + string(rune('1'+i)), Mode: topology.HostModeDVRSNAT}); err != nil {
			t.Fatal(err)
		}
	}
	ext, err := st.CreateNetwork(ctx, db.NetworkSpec{Name: ptr("ext"), External: ptr(true), NetworkType: ptr("flat"), PhysicalNetwork: ptr("public")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateSubnet(ctx, db.SubnetSpec{NetworkID: ext.ID, CIDR: ptr("172.24.4.0/24")}); err != nil {
		t.Fatal(err)
	}
	gs := &db.GatewaySpec{NetworkID: ext.ID}
	r, err := st.CreateRouter(ctx, db.RouterSpec{ProjectID: "p", Gateway: &gs})
	if err != nil {
		t.Fatal(err)
	}
	if r.SNATHost != "n1" {
		t.Fatalf("scheduled on %q, want n1", r.SNATHost)
	}
	where := func() string {
		got, err := st.GetRouter(ctx, r.ID)
		if err != nil {
			return "error: " + err.Error()
		}
		return got.SNATHost
	}

	// Helpers heartbeat every 100 ms while their flag is set (as plan polls do).
	var beating [2]atomic.Bool
	hctx, stopBeats := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopBeats(); wg.Wait() }()
	for i, h := range []string{"n1", "n2"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for hctx.Err() == nil {
				if beating[i].Load() {
					_ = st.Heartbeat(hctx, h) // fails while the database is down
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	beating[1].Store(true)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE hosts SET heartbeat = now() - interval '1 hour' WHERE host = 'n1'`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	// n1 is dead from the start, but nothing moves during the first agent down time.
	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan error, 1)
	started := time.Now()
	go func() { done <- failover.Run(runCtx, log, st, failover.Config{AgentDownTime: downTime}) }()
	defer func() {
		stopRun()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(downTime * 7 / 10)
	if h := where(); h != "n1" {
		t.Fatalf("moved to %q %v after start, within the agent down time", h, time.Since(started))
	}
	waitFor(t, "the router on n2", 5*time.Second, func() bool { return where() == "n2" })
	t.Logf("moved off dead n1 %v after start (agent down time %v)", time.Since(started).Round(10*time.Millisecond), downTime)

	// PostgreSQL down for longer than the agent down time: n2's heartbeats are stale when
	// it is back. n1 heartbeats at once, n2 600 ms later: the router must stay on n2.
	beating[1].Store(false)
	if err := srv.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * downTime / 2)
	if err := srv.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	beating[0].Store(true)
	time.Sleep(600 * time.Millisecond)
	beating[1].Store(true)
	time.Sleep(time.Until(resumed.Add(5 * downTime / 2)))
	if h := where(); h != "n2" {
		t.Fatalf("moved to %q after the database came back: stale heartbeats taken for dead hosts", h)
	}
	// n2 stops: then it moves back.
	beating[1].Store(false)
	waitFor(t, "the router back on n1", 5*time.Second, func() bool { return where() == "n1" })
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
