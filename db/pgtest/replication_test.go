package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestReplication: a commit on the primary is on the synchronous standby; Kill leaves
// none of the primary's processes running; the promoted standby takes writes; Stop
// removes both directories.
func TestReplication(t *testing.T) {
	if os.Getenv(EnvURL) != "" {
		t.Skip("needs private servers")
	}
	ctx := context.Background()
	primary, standby, err := StartReplicated(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = standby.Stop()
			_ = primary.Stop()
		}
	}()
	exec := func(s *Server, sql string) error {
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := exec(primary, `CREATE TABLE t (v int); INSERT INTO t VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if err := exec(standby, `INSERT INTO t VALUES (2)`); err == nil {
		t.Fatal("the standby took a write before its promotion")
	}
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	pids := primary.killed
	if len(pids) < 2 {
		t.Fatalf("killed %v: want the postmaster and its children", pids)
	}
	if err := primary.waitKilled(); err != nil {
		t.Fatal(err)
	}
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if err := exec(standby, `INSERT INTO t VALUES (2)`); err != nil {
		t.Fatalf("write on the promoted standby: %v", err)
	}
	var n int
	if err := queryRow(ctx, standby.URL("postgres"), &n, `SELECT count(*) FROM t`); err != nil || n != 2 {
		t.Fatalf("rows on the promoted standby: %d, %v (want 2)", n, err)
	}
	stopped = true
	for _, s := range []*Server{standby, primary} {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(s.dir); !os.IsNotExist(err) {
			t.Errorf("%s still there after Stop: %v", s.dir, err)
		}
	}
	for _, p := range pids {
		if alive(p) {
			t.Errorf("process %d of the killed primary still runs", p)
		}
	}
}
