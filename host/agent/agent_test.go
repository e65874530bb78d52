package agent

import (
	"context"
	"encoding/json"
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
	ts := httptest.NewServer(srv)
	defer ts.Close()
	log := zaptest.NewLogger(t)
	// A real Applier: empty plans under a prefix no namespace has touch nothing and
	// need no privileges.
	ap := hostnet.New(log, nil, hostnet.Config{NamePrefix: fmt.Sprintf("agenttest%d-", time.Now().UnixNano())})
	a, err := New(log, testConfig(ts.URL), nil, ap)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Register(ctx, map[string]string{"br-int": DatapathID("compute1", "br-int")}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	lctx, lcancel := context.WithCancel(ctx)
	go func() { errc <- a.Loop(lctx, -1) }()
	select {
	case <-srv.done:
	case <-ctx.Done():
		t.Fatal("loop never consumed the scripted answers")
	}
	lcancel()
	if err := <-errc; err != context.Canceled {
		t.Errorf("Loop returned %v, want context.Canceled", err)
	}
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

func TestConfigValidate(t *testing.T) {
	good := testConfig("http://192.168.248.254:9696")
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(*Config){
		"host":       func(c *Config) { c.Host = "" },
		"api":        func(c *Config) { c.API = "192.168.248.254:9696" },
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
