package northbound_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/db/pgtest"
	"github.com/dvrflow/dvrflow/engine"
	"github.com/dvrflow/dvrflow/engine/enginetest"
	"github.com/dvrflow/dvrflow/host/agent"
	"github.com/dvrflow/dvrflow/northbound"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
	"github.com/dvrflow/dvrflow/topology"
)

// failoverWriter creates networks, and a port on each, through the API until stopped,
// recording what was acknowledged (201) and every status it got.
type failoverWriter struct {
	url    string
	client *http.Client

	mu       sync.Mutex
	networks []string // IDs acknowledged with 201
	ports    []string
	codes    map[int]int
	bad      []string // answers other than 201 and a 503 ServiceUnavailable NeutronError
	last201  time.Time
	first503 time.Time
}

func (w *failoverWriter) post(coll, kind string, fields map[string]any) (string, bool) {
	raw, _ := json.Marshal(map[string]any{kind: fields})
	req, err := http.NewRequest("POST", w.url+"/v2.0/"+coll, bytes.NewReader(raw))
	if err != nil {
		panic(err) // a constant URL
	}
	req.Header.Set("X-Auth-Token", adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.bad = append(w.bad, fmt.Sprintf("POST %s: %v", coll, err))
		return "", false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	w.codes[resp.StatusCode]++
	var out map[string]map[string]any
	_ = json.Unmarshal(body, &out)
	switch {
	case resp.StatusCode == http.StatusCreated:
		w.last201 = time.Now()
		id, _ := out[kind]["id"].(string)
		return id, true
	case resp.StatusCode == http.StatusServiceUnavailable && out["NeutronError"]["type"] == "ServiceUnavailable" &&
		resp.Header.Get("Retry-After") != "":
		if w.first503.IsZero() {
			w.first503 = time.Now()
		}
	default:
		w.bad = append(w.bad, fmt.Sprintf("POST %s: %d %s", coll, resp.StatusCode, body))
	}
	return "", false
}

func (w *failoverWriter) run(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		net, ok := w.post("networks", "network", map[string]any{"name": fmt.Sprintf("n%d", i)})
		if !ok {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		port, ok := w.post("ports", "port", map[string]any{"network_id": net})
		w.mu.Lock()
		w.networks = append(w.networks, net)
		if ok {
			w.ports = append(w.ports, port)
		}
		w.mu.Unlock()
	}
}

// waitFor polls cond (under w.mu) until it holds or d passes.
func (w *failoverWriter) waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		w.mu.Lock()
		ok := cond()
		w.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Fatalf("%s: not within %v (statuses %v, unexpected %v)", what, d, w.codes, w.bad)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPostgresFailover: the API runs over a multi-host URL listing a synchronous standby
// first and the primary second (target_session_attrs=read-write: db.Open migrates on the
// primary). A writer keeps creating networks and ports. The primary is killed (SIGKILL):
// the API answers 503 ServiceUnavailable, never 500, until the standby is promoted; then
// writes succeed again within a few seconds without restarting anything, every network
// and port acknowledged with 201 is on the new primary, and Listen, reconnected to the
// new primary, delivers the notification of a write made after the promotion. The
// control loop runs over the same store with one switch connected: the switch keeps its
// OpenFlow session and its flows throughout, and the engine reaches the revision written
// after the promotion.
func TestPostgresFailover(t *testing.T) {
	ctx := context.Background()
	primary, standby, err := pgtest.StartReplicated(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := standby.Stop(); err != nil {
			t.Errorf("stop standby: %v", err)
		}
		if err := primary.Stop(); err != nil {
			t.Errorf("stop primary: %v", err)
		}
	})
	name, _, err := primary.CreateDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := standby.WaitReplayed(ctx, primary); err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))
	// Without target_session_attrs too, the store skips the read-only standby: Open's
	// migrations would fail on it.
	plain := strings.Replace(pgtest.MultiHostURL(name, standby, primary), "&target_session_attrs=read-write", "", 1)
	if !strings.Contains(plain, standby.Addr()+","+primary.Addr()) || strings.Contains(plain, "target_session_attrs") {
		t.Fatalf("URL %s", plain)
	}
	st0, err := db.Open(ctx, plain, db.DefaultConfig(), log)
	if err != nil {
		t.Fatalf("open over standby,primary without target_session_attrs: %v", err)
	}
	st0.Close()
	cfg := db.DefaultConfig()
	cfg.PollInterval = time.Hour // Listen's fn sees a write only through NOTIFY (or a reconnection)
	st, err := db.Open(ctx, pgtest.MultiHostURL(name, standby, primary), cfg, log)
	if err != nil {
		t.Fatalf("open over standby,primary: %v", err)
	}
	defer st.Close()
	acfg := northbound.DefaultConfig()
	acfg.AdminToken = adminToken
	s, err := northbound.New(st, acfg, log)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	defer hs.Close()
	a := &api{t: t, store: st, srv: hs, url: hs.URL}

	// The control loop over the same store, and one switch: compute1's br-int.
	a.admin(http.StatusCreated, "PUT", "/v2.0/dvr-hosts/compute1", map[string]any{"dvr_host": map[string]any{
		"tunnel_ip": "192.168.248.1", "mode": "dvr", "bridges": map[string]string{"br-int": agent.DatapathID("compute1", "br-int")}}})
	ofs := controller.NewServer(log, enginetest.ControllerConfig())
	eng := engine.New(log, engine.Config{}, st, ofs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cctx, stopControl := context.WithCancel(ctx)
	engineErr := make(chan error, 1)
	var control sync.WaitGroup
	control.Go(func() { _ = ofs.Serve(cctx, ln) })
	control.Go(func() { engineErr <- eng.Run(cctx) })
	defer func() { stopControl(); control.Wait() }()
	sw := ofsim.New(log, ofsim.Config{DPID: enginetest.DPID("compute1", topology.BrInt),
		Ports: []ofsim.Port{{No: 1, Name: apps.PortPatchTun}, {No: 2, Name: apps.PortIntBrEx}}})
	control.Go(func() { _ = sw.Run(cctx, ln.Addr().String()) })
	enginetest.Eventually(t, "the switch holding its desired flows", func() (bool, string) {
		want := ofs.Reconciler(sw.DPID()).Desired()
		got, err := sw.DumpFlows()
		if err != nil {
			return false, err.Error()
		}
		if len(want) == 0 || !enginetest.SameFlows(got, want) {
			return false, fmt.Sprintf("switch has\n%s\nwants %d flows", got, len(want))
		}
		return true, ""
	})
	flowsBefore, err := sw.DumpFlows()
	if err != nil {
		t.Fatal(err)
	}
	session, _ := ofs.Session(sw.DPID())
	sameSession := func(when string) {
		t.Helper()
		if now, ok := ofs.Session(sw.DPID()); !ok || now != session {
			t.Errorf("the switch's OpenFlow session did not last %s", when)
		}
	}

	var seen atomic.Int64 // the highest revision Listen reported
	lctx, stopListen := context.WithCancel(ctx)
	listenDone := make(chan struct{})
	go func() {
		defer close(listenDone)
		_ = st.Listen(lctx, func(rev int64) {
			for {
				cur := seen.Load()
				if rev <= cur || seen.CompareAndSwap(cur, rev) {
					return
				}
			}
		})
	}()
	defer func() { stopListen(); <-listenDone }()

	w := &failoverWriter{url: hs.URL, client: &http.Client{Timeout: 10 * time.Second}, codes: map[int]int{}}
	wctx, stopWriter := context.WithCancel(ctx)
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); w.run(wctx) }()
	defer func() { stopWriter(); <-writerDone }()

	w.waitFor(t, 10*time.Second, "5 networks written before the kill", func() bool { return len(w.networks) >= 5 })
	if err := primary.Kill(); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, 10*time.Second, "a 503 once the primary is dead", func() bool { return !w.first503.IsZero() })
	time.Sleep(300 * time.Millisecond) // a while without any primary
	// The data path is untouched: the switch keeps its flows and the engine runs on.
	if flows, err := sw.DumpFlows(); err != nil || flows != flowsBefore {
		t.Errorf("the switch's flows changed while no primary was up (%v):\n%s\nwas\n%s", err, flows, flowsBefore)
	}
	select {
	case err := <-engineErr:
		t.Fatalf("the engine stopped while no primary was up: %v", err)
	default:
	}
	sameSession("while no primary was up")
	w.mu.Lock()
	before := len(w.networks)
	w.mu.Unlock()
	promoting := time.Now()
	if err := standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	w.waitFor(t, 5*time.Second, "writes succeeding after the promotion", func() bool { return len(w.networks) > before })
	w.mu.Lock()
	t.Logf("writes succeed again %v after pg_ctl promote started", w.last201.Sub(promoting).Round(time.Millisecond))
	w.mu.Unlock()
	w.waitFor(t, 10*time.Second, "more writes after the promotion", func() bool { return len(w.networks) >= before+5 })
	stopWriter()
	<-writerDone

	w.mu.Lock()
	if len(w.bad) > 0 || w.codes[http.StatusInternalServerError] > 0 {
		t.Errorf("answers other than 201 and 503 ServiceUnavailable: %v (statuses %v)", w.bad, w.codes)
	}
	if w.codes[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no 503 while no primary was up (statuses %v)", w.codes)
	}
	t.Logf("statuses %v; %d networks, %d ports acknowledged", w.codes, len(w.networks), len(w.ports))
	w.mu.Unlock()

	// Every acknowledged write is on the new primary (the old one is dead: the API can
	// only be reading the promoted standby).
	have := map[string]bool{}
	for _, coll := range []string{"networks", "ports"} {
		for _, it := range list(a.admin(http.StatusOK, "GET", "/v2.0/"+coll, nil), coll) {
			have[it["id"].(string)] = true
		}
	}
	for _, id := range append(w.networks, w.ports...) {
		if !have[id] {
			t.Errorf("acknowledged %s missing on the new primary", id)
		}
	}

	// Listen follows: it reconnects to the new primary, and a write made now is notified.
	rev := a.revision()
	waitRev(t, &seen, rev, 10*time.Second, "Listen reconnected to the new primary")
	a.create("networks", "network", map[string]any{"name": "after-promotion"})
	rev = a.revision()
	waitRev(t, &seen, rev, 3*time.Second, "Listen notified of a write after the promotion")
	enginetest.Eventually(t, "the engine following the new primary", func() (bool, string) {
		var at int64 = -1
		eng.ReadView(func(v *topology.View) {
			if v != nil {
				at = v.Revision
			}
		})
		return at >= rev, fmt.Sprintf("engine at revision %d, want %d", at, rev)
	})
	if flows, err := sw.DumpFlows(); err != nil || flows != flowsBefore {
		t.Errorf("the switch's flows changed across the failover (%v):\n%s\nwas\n%s", err, flows, flowsBefore)
	}
	sameSession("across the failover")
}

func waitRev(t *testing.T, seen *atomic.Int64, rev int64, d time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for seen.Load() < rev {
		if time.Now().After(deadline) {
			t.Fatalf("%s: Listen reported revision %d, want %d within %v", what, seen.Load(), rev, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
