package northbound_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/db/pgtest"
	"github.com/dvrflow/dvrflow/northbound"
)

// TestDatabaseDown: while PostgreSQL is stopped (`pg_ctl stop -m fast`) every call is
// answered 503 with a NeutronError and Retry-After, not 500; once it is back the API
// recovers by itself and holds everything it acknowledged before.
func TestDatabaseDown(t *testing.T) {
	ctx := context.Background()
	srv, a := privateAPI(t)
	acked := a.create("networks", "network", map[string]any{"name": "before"})

	if err := srv.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, path string }{{"GET", "/v2.0/networks"}, {"POST", "/v2.0/networks"}, {"GET", "/v2.0/networks/" + acked["id"].(string)}} {
		var body any
		if c.method == "POST" {
			body = map[string]any{"network": map[string]any{"name": "during"}}
		}
		code, out := a.do(adminToken, c.method, c.path, body)
		wantError(t, code, out, http.StatusServiceUnavailable, "ServiceUnavailable")
	}
	req, _ := http.NewRequest("GET", a.url+"/v2.0/networks", nil)
	req.Header.Set("X-Auth-Token", adminToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After: %v %v", err, resp)
	} else {
		resp.Body.Close()
	}

	if err := srv.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, out := a.do(adminToken, "GET", "/v2.0/networks", nil)
		if code == http.StatusOK {
			nets := list(out, "networks")
			if len(nets) != 1 || nets[0]["name"] != "before" {
				t.Fatalf("after the database came back: %v (want the acknowledged network only)", nets)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API did not recover within 30 s: %d %v", code, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	a.create("networks", "network", map[string]any{"name": "after"})
}

// TestDatabaseReadOnly: while the server refuses writes as a standby does (SQLSTATE
// 25006, here default_transaction_read_only turned on under the open connections, as an
// HA manager fences an old primary) a create is answered 503 ServiceUnavailable, not
// 500, and writes nothing; reads still work; once writes are allowed again the API
// recovers by itself.
func TestDatabaseReadOnly(t *testing.T) {
	ctx := context.Background()
	srv, a := privateAPI(t)
	a.create("networks", "network", map[string]any{"name": "before"})
	rev := a.revision()

	readOnly := func(on bool) {
		t.Helper()
		conn, err := pgx.Connect(ctx, srv.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		sql := `ALTER SYSTEM RESET default_transaction_read_only`
		if on {
			sql = `ALTER SYSTEM SET default_transaction_read_only = on`
		}
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
			t.Fatal(err)
		}
	}
	readOnly(true)
	// The pooled connections take the setting at their next statement after the reload
	// signal reaches them: a create may still pass meanwhile.
	accepted := 0
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, out := a.do(adminToken, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "during"}})
		if code == http.StatusCreated {
			accepted++
			if time.Now().After(deadline) {
				t.Fatal("still writing 10 s after default_transaction_read_only = on")
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		wantError(t, code, out, http.StatusServiceUnavailable, "ServiceUnavailable")
		break
	}
	if got := a.revision(); got != rev+int64(accepted) {
		t.Fatalf("revision %d after %d accepted creates from %d: a refused write changed something", got, accepted, rev)
	}
	if nets := list(a.admin(http.StatusOK, "GET", "/v2.0/networks", nil), "networks"); len(nets) != 1+accepted {
		t.Fatalf("%d networks, want %d", len(nets), 1+accepted)
	}

	readOnly(false)
	deadline = time.Now().Add(10 * time.Second)
	for {
		code, out := a.do(adminToken, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "after"}})
		if code == http.StatusCreated {
			break
		}
		wantError(t, code, out, http.StatusServiceUnavailable, "ServiceUnavailable")
		if time.Now().After(deadline) {
			t.Fatal("the API did not recover within 10 s of writes being allowed again")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// privateAPI serves the API over a PostgreSQL of its own, which the test may stop or fence.
func privateAPI(t *testing.T) (*pgtest.Server, *api) {
	t.Helper()
	ctx := context.Background()
	srv, err := pgtest.Start(ctx, pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	log := zaptest.NewLogger(t)
	st, err := db.Open(ctx, srv.NewDatabase(t), db.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	cfg := northbound.DefaultConfig()
	cfg.AdminToken = adminToken
	s, err := northbound.New(st, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return srv, &api{t: t, store: st, srv: hs, url: hs.URL}
}
