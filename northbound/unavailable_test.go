package northbound_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

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
	defer st.Close()
	cfg := northbound.DefaultConfig()
	cfg.AdminToken = adminToken
	s, err := northbound.New(st, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	defer hs.Close()
	a := &api{t: t, store: st, srv: hs, url: hs.URL}
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
	req, _ := http.NewRequest("GET", hs.URL+"/v2.0/networks", nil)
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
