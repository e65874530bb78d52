package northbound_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/db/pgtest"
	"github.com/dvrflow/dvrflow/keystone"
	"github.com/dvrflow/dvrflow/northbound"
	"go.uber.org/zap/zaptest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

const (
	adminToken = "admin-secret"
	tokenA     = "token-a" // project "proj-a"
	tokenB     = "token-b" // project "proj-b"
)

// api is a dvrflow API on a fresh database, served over real HTTP.
type api struct {
	t     *testing.T
	dsn   string
	store *db.Store
	srv   *httptest.Server
	url   string
	// keystone validates the tokens that are not static (nil: static tokens only).
	keystone *keystone.Validator
}

func newAPI(t *testing.T) *api {
	t.Helper()
	a := &api{t: t, dsn: pg.NewDatabase(t)}
	a.start()
	return a
}

// newKeystoneAPI is newAPI with Keystone: tokens are the tokens a fake Keystone knows.
func newKeystoneAPI(t *testing.T, tokens map[string]fakeToken) *api {
	t.Helper()
	a := &api{t: t, dsn: pg.NewDatabase(t), keystone: fakeKeystone(t, tokens)}
	a.start()
	return a
}

// start opens the store and serves the API; stop closes both (a restart is stop+start).
func (a *api) start() {
	a.t.Helper()
	log := zaptest.NewLogger(a.t)
	st, err := db.Open(context.Background(), a.dsn, db.DefaultConfig(), log)
	if err != nil {
		a.t.Fatalf("open store: %v", err)
	}
	cfg := northbound.DefaultConfig()
	cfg.AdminToken = adminToken
	cfg.ProjectTokens = map[string]string{tokenA: "proj-a", tokenB: "proj-b"}
	cfg.Keystone = a.keystone
	s, err := northbound.New(st, cfg, log)
	if err != nil {
		a.t.Fatalf("new API: %v", err)
	}
	a.store, a.srv = st, httptest.NewServer(s)
	a.url = a.srv.URL
	a.t.Cleanup(a.stop)
}

func (a *api) stop() {
	if a.srv != nil {
		a.srv.Close()
		a.store.Close()
		a.srv, a.store = nil, nil
	}
}

// do sends a request with token ("" for none) and returns the status and decoded body.
func (a *api) do(token, method, path string, body any) (int, map[string]any) {
	a.t.Helper()
	h := http.Header{}
	if token != "" {
		h.Set("X-Auth-Token", token)
	}
	return a.send(method, path, body, h)
}

// send sends a request with header (a string body as it is, another one as JSON) and
// returns the status and decoded body.
func (a *api) send(method, path string, body any, header http.Header) (int, map[string]any) {
	a.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			a.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, a.url+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			a.t.Fatalf("%s %s: %d, body not JSON: %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, out
}

// admin sends as admin and requires status want.
func (a *api) admin(want int, method, path string, body any) map[string]any {
	a.t.Helper()
	code, out := a.do(adminToken, method, path, body)
	if code != want {
		a.t.Fatalf("%s %s: status %d, want %d: %v", method, path, code, want, out)
	}
	return out
}

// create POSTs {"kind": fields} as admin and returns the created object.
func (a *api) create(coll, kind string, fields map[string]any) map[string]any {
	a.t.Helper()
	return a.admin(http.StatusCreated, "POST", "/v2.0/"+coll, map[string]any{kind: fields})[kind].(map[string]any)
}

// wantError checks a NeutronError response.
func wantError(t *testing.T, code int, out map[string]any, wantCode int, wantType string) {
	t.Helper()
	if code != wantCode {
		t.Fatalf("status %d, want %d: %v", code, wantCode, out)
	}
	ne, ok := out["NeutronError"].(map[string]any)
	if !ok {
		t.Fatalf("no NeutronError in %v", out)
	}
	if ne["type"] != wantType {
		t.Fatalf("NeutronError type %v, want %s (message %v)", ne["type"], wantType, ne["message"])
	}
	if _, ok := ne["detail"]; !ok {
		t.Fatalf("NeutronError without detail: %v", ne)
	}
	if m, _ := ne["message"].(string); m == "" {
		t.Fatalf("NeutronError without message: %v", ne)
	}
}

func (a *api) revision() int64 {
	a.t.Helper()
	rev, err := a.store.Revision(context.Background())
	if err != nil {
		a.t.Fatal(err)
	}
	return rev
}

func list(out map[string]any, coll string) []map[string]any {
	var items []map[string]any
	for _, it := range out[coll].([]any) {
		items = append(items, it.(map[string]any))
	}
	return items
}
