package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/host/hostnet"
	"github.com/dvrflow/dvrflow/plan"
)

// planServer serves a scripted sequence of plan answers and records what the agent
// reports.
type planServer struct {
	t       *testing.T
	mu      sync.Mutex
	answers []func(w http.ResponseWriter, after int64)
	afters  []int64
	applied []int64
	tokens  []string
	reg     hostBody
	done    chan struct{}
}

func (s *planServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens = append(s.tokens, r.Header.Get("X-Auth-Token"))
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/v2.0/dvr-hosts/compute1":
		if err := json.NewDecoder(r.Body).Decode(&s.reg); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{}`))
	case r.Method == http.MethodGet && r.URL.Path == "/v2.0/dvr-hosts/compute1/plan":
		after, err := strconv.ParseInt(r.URL.Query().Get("after_revision"), 10, 64)
		if err != nil {
			http.Error(w, "bad after_revision", http.StatusBadRequest)
			return
		}
		s.afters = append(s.afters, after)
		if len(s.answers) == 0 {
			select {
			case <-s.done:
			default:
				close(s.done)
			}
			w.WriteHeader(http.StatusNotModified)
			return
		}
		next := s.answers[0]
		s.answers = s.answers[1:]
		next(w, after)
	case r.Method == http.MethodPut && r.URL.Path == "/v2.0/dvr-hosts/compute1/applied":
		var body struct {
			Revision int64 `json:"revision"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.applied = append(s.applied, body.Revision)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
	}
}

func servePlan(p plan.Plan) func(http.ResponseWriter, int64) {
	return func(w http.ResponseWriter, _ int64) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"plan": p})
	}
}

// scriptedAgent returns an Agent polling srv, with proxies and a real Applier: empty
// plans under a prefix no namespace has touch nothing and need no privileges.
func scriptedAgent(t *testing.T, srv *planServer, proxies Proxies) *Agent {
	t.Helper()
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	log := zaptest.NewLogger(t)
	ap := hostnet.New(log, nil, hostnet.Config{NamePrefix: fmt.Sprintf("agenttest%d-", time.Now().UnixNano())})
	a, err := New(log, testConfig(ts.URL), nil, ap, proxies)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// runScript runs a.Loop until srv has given every scripted answer, calls whileRunning,
// then ends the loop, which must return context.Canceled.
func runScript(ctx context.Context, t *testing.T, a *Agent, srv *planServer, whileRunning func()) {
	t.Helper()
	errc := make(chan error, 1)
	lctx, lcancel := context.WithCancel(ctx)
	defer lcancel()
	go func() { errc <- a.Loop(lctx, -1) }()
	select {
	case <-srv.done:
	case <-ctx.Done():
		t.Fatal("loop never consumed the scripted answers")
	}
	whileRunning()
	lcancel()
	if err := <-errc; err != context.Canceled {
		t.Errorf("Loop returned %v, want context.Canceled", err)
	}
}

func testConfig(api string) Config {
	return Config{Host: "compute1", API: api, Token: "s3cret", TunnelIP: "192.168.248.1", Mode: "dvr",
		Controllers: []string{"tcp:192.168.248.254:6653"}, DatapathType: "netdev", ExtBridge: "br-ex",
		PollTimeout: time.Second, RetryDelay: 10 * time.Millisecond}
}

func TestLoopAppliesAndReports(t *testing.T) {
	srv := &planServer{t: t, done: make(chan struct{})}
	srv.answers = []func(http.ResponseWriter, int64){
		servePlan(plan.Plan{Host: "compute1", Revision: 1}),
		func(w http.ResponseWriter, _ int64) { w.WriteHeader(http.StatusNotModified) },
		func(w http.ResponseWriter, _ int64) { http.Error(w, "db down", http.StatusServiceUnavailable) },
		servePlan(plan.Plan{Host: "compute2", Revision: 2}),                                              // not ours: rejected
		servePlan(plan.Plan{Host: "compute1", Revision: 1}),                                              // not newer: rejected
		servePlan(plan.Plan{Host: "compute1", Revision: 3, Namespaces: []plan.Namespace{{Name: "bad"}}}), // invalid: not applied
		servePlan(plan.Plan{Host: "compute1", Revision: 4}),
	}
	a := scriptedAgent(t, srv, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Register(ctx, map[string]string{"br-int": DatapathID("compute1", "br-int")}); err != nil {
		t.Fatal(err)
	}
	runScript(ctx, t, a, srv, func() {})
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if fmt.Sprint(srv.applied) != "[1 4]" {
		t.Errorf("reported revisions %v, want [1 4]", srv.applied)
	}
	// after_revision: -1 first, then 1 until revision 4 was applied, then 4.
	want := "[-1 1 1 1 1 1 1 4]"
	if fmt.Sprint(srv.afters) != want {
		t.Errorf("after_revision sequence %v, want %s", srv.afters, want)
	}
	for _, tok := range srv.tokens {
		if tok != "s3cret" {
			t.Errorf("request without the token: %q", tok)
		}
	}
	if srv.reg.DVRHost.TunnelIP != "192.168.248.1" || srv.reg.DVRHost.Mode != "dvr" || len(srv.reg.DVRHost.Bridges["br-int"]) != 16 {
		t.Errorf("registration = %+v", srv.reg)
	}
}

// fakeProxies records what the agent asks of its proxies; the first Sync of a revision
// in failOnce fails.
type fakeProxies struct {
	mu        sync.Mutex
	synced    []int64
	shutdowns int
	failOnce  map[int64]bool
}

func (f *fakeProxies) Sync(_ context.Context, p plan.Plan) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.synced = append(f.synced, p.Revision)
	if f.failOnce[p.Revision] {
		delete(f.failOnce, p.Revision)
		return errors.New("listen: address in use")
	}
	return nil
}

func (f *fakeProxies) Shutdown(context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shutdowns++
}

// TestLoopSyncsProxies: the proxies follow each applied plan, a plan whose proxies fail
// is not reported but applied again, and the proxies stop when the loop ends.
func TestLoopSyncsProxies(t *testing.T) {
	srv := &planServer{t: t, done: make(chan struct{})}
	srv.answers = []func(http.ResponseWriter, int64){
		servePlan(plan.Plan{Host: "compute1", Revision: 1}),
		servePlan(plan.Plan{Host: "compute1", Revision: 2}), // proxies fail: not reported
		servePlan(plan.Plan{Host: "compute1", Revision: 2}),
		servePlan(plan.Plan{Host: "compute1", Revision: 3, Namespaces: []plan.Namespace{{Name: "bad"}}}), // not applied: no Sync
	}
	px := &fakeProxies{failOnce: map[int64]bool{2: true}}
	a := scriptedAgent(t, srv, px)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runScript(ctx, t, a, srv, func() {
		px.mu.Lock()
		defer px.mu.Unlock()
		if px.shutdowns != 0 {
			t.Errorf("proxies shut down %d times while the loop runs", px.shutdowns)
		}
	})
	srv.mu.Lock()
	defer srv.mu.Unlock()
	px.mu.Lock()
	defer px.mu.Unlock()
	if fmt.Sprint(srv.applied) != "[1 2]" || fmt.Sprint(px.synced) != "[1 2 2]" || px.shutdowns != 1 {
		t.Errorf("reported %v, proxies synced to %v and shut down %d times; want [1 2], [1 2 2], once",
			srv.applied, px.synced, px.shutdowns)
	}
}

func TestConfigValidate(t *testing.T) {
	good := testConfig("http://192.168.248.254:9696")
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	several := testConfig("")
	several.APIs = []string{"http://192.168.248.254:9696", "https://192.168.248.253:9696"}
	if err := several.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(*Config){
		"host":       func(c *Config) { c.Host = "" },
		"api":        func(c *Config) { c.API = "192.168.248.254:9696" },
		"no api":     func(c *Config) { c.API = "" },
		"api port":   func(c *Config) { c.API = "http://192.168.248.254" },
		"api twice":  func(c *Config) { c.API, c.APIs = "", []string{"http://10.0.0.1:9696", "http://10.0.0.1:9696/"} },
		"apis bad":   func(c *Config) { c.API, c.APIs = "", []string{"http://10.0.0.1:9696", "10.0.0.2:9696"} },
		"both":       func(c *Config) { c.APIs = []string{"http://10.0.0.1:9696"} },
		"tunnel":     func(c *Config) { c.TunnelIP = "192.168.248" },
		"mode":       func(c *Config) { c.Mode = "legacy" },
		"ctrl":       func(c *Config) { c.Controllers = nil },
		"ctrl form":  func(c *Config) { c.Controllers = []string{"192.168.248.254:6653"} },
		"dp type":    func(c *Config) { c.DatapathType = "dpdk" },
		"uplink":     func(c *Config) { c.ExtBridge, c.ExtUplink = "", "eth1" },
		"ext bridge": func(c *Config) { c.ExtBridge = "br-external-much" },
	}
	for name, mod := range bad {
		c := good
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDatapathIDStableAndDistinct(t *testing.T) {
	seen := map[string]string{}
	for _, h := range []string{"compute1", "compute2", "network"} {
		for _, b := range []string{"br-int", "br-tun", "br-ex"} {
			id := DatapathID(h, b)
			if len(id) != 16 || id != DatapathID(h, b) {
				t.Fatalf("DatapathID(%s,%s) = %q", h, b, id)
			}
			if other, dup := seen[id]; dup {
				t.Fatalf("DatapathID collision: %s/%s and %s", h, b, other)
			}
			seen[id] = h + "/" + b
		}
	}
}

// TestLoopFollowsTheNextAPI: the API server the agent long-polls dies in the middle of a
// poll; the agent goes on at the next URL at once (the poll timeout is far longer than
// the test), asking for the plans after the revision it applied, so it applies nothing
// twice and does not register again.
func TestLoopFollowsTheNextAPI(t *testing.T) {
	polled, release := make(chan struct{}), make(chan struct{})
	first := &planServer{t: t, done: make(chan struct{})}
	first.answers = []func(http.ResponseWriter, int64){
		servePlan(plan.Plan{Host: "compute1", Revision: 1}),
		func(http.ResponseWriter, int64) { close(polled); <-release }, // dies before it answers
	}
	second := &planServer{t: t, done: make(chan struct{})}
	second.answers = []func(http.ResponseWriter, int64){servePlan(plan.Plan{Host: "compute1", Revision: 2})}
	ts1, ts2 := httptest.NewServer(first), httptest.NewServer(second)
	t.Cleanup(ts2.Close)
	t.Cleanup(ts1.Close)
	killed := make(chan struct{})
	go func() { // first dies: no new connection, the poll's connection closed unanswered
		defer close(killed)
		<-polled
		_ = ts1.Listener.Close()
		ts1.CloseClientConnections()
		close(release)
	}()
	log := zaptest.NewLogger(t)
	cfg := testConfig("")
	cfg.APIs, cfg.PollTimeout = []string{ts1.URL, ts2.URL}, time.Minute
	px := &fakeProxies{}
	a, err := New(log, cfg, nil, hostnet.New(log, nil, hostnet.Config{NamePrefix: fmt.Sprintf("agenttest%d-", time.Now().UnixNano())}), px)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	runScript(ctx, t, a, second, func() {})
	select { // second served its script, so first died before (its goroutine may still be finishing)
	case <-killed:
	case <-time.After(5 * time.Second):
		t.Fatal("the agent never polled the first server again")
	}
	first.mu.Lock()
	defer first.mu.Unlock()
	second.mu.Lock()
	defer second.mu.Unlock()
	px.mu.Lock()
	defer px.mu.Unlock()
	if fmt.Sprint(first.afters) != "[-1 1]" || fmt.Sprint(first.applied) != "[1]" {
		t.Errorf("first server: polls after %v, reports %v; want [-1 1], [1]", first.afters, first.applied)
	}
	if len(second.afters) < 2 || fmt.Sprint(second.afters[:2]) != "[1 2]" || fmt.Sprint(second.applied) != "[2]" {
		t.Errorf("second server: polls after %v, reports %v; want [1 2 ...], [2]", second.afters, second.applied)
	}
	if fmt.Sprint(px.synced) != "[1 2]" {
		t.Errorf("plans applied %v, want [1 2]: nothing twice", px.synced)
	}
	if second.reg.DVRHost.TunnelIP != "" {
		t.Errorf("registered again at the second server: %+v", second.reg)
	}
}
