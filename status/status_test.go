package status_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/db/pgtest"
	"github.com/dvrflow/dvrflow/engine"
	"github.com/dvrflow/dvrflow/engine/enginetest"
	"github.com/dvrflow/dvrflow/mastership"
	"github.com/dvrflow/dvrflow/metrics"
	"github.com/dvrflow/dvrflow/northbound"
	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
	"github.com/dvrflow/dvrflow/status"
	"github.com/dvrflow/dvrflow/switchapi"
	"github.com/dvrflow/dvrflow/topology"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

const (
	token        = "status-test-token"
	projectToken = "status-test-project-token"
)

var hosts = []string{"compute1", "compute2", "network"}

// fixture is a whole control plane (store, API with the status page and metrics mounted,
// OpenFlow server, engine) with ofsim switches for every bridge of the seed's hosts.
type fixture struct {
	t        *testing.T
	store    *db.Store
	ofs      *controller.Server
	eng      *engine.Engine
	api      *httptest.Server
	topo     *seed.Topology
	switches map[string]*ofsim.Switch // "host/bridge"
	dsn      string
	masters  *dbMasters
}

// dbMasters is the mastership source of the fixture: controller selfID, with the
// masterships as the database holds them (as the mastership loop reads them).
type dbMasters struct {
	store *db.Store
	stats mastership.Stats
}

const selfID = "ctl-a"

func (m *dbMasters) Status() mastership.Status {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st := mastership.Status{ID: selfID, Deadline: time.Now().Add(time.Minute), Stats: m.stats}
	hms, err := m.store.HostMasters(ctx)
	if err != nil {
		return st // the checks of what is shown fail
	}
	cs, err := m.store.Controllers(ctx)
	if err != nil {
		return st
	}
	st.Hosts = hms
	for _, c := range cs {
		if c.Live {
			st.Live = append(st.Live, c.ID)
		}
	}
	for _, hm := range hms {
		if hm.Controller == selfID {
			st.Acting++
		}
	}
	return st
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	f := &fixture{t: t}
	f.dsn = pg.NewDatabase(t)
	st, err := db.Open(context.Background(), f.dsn, db.DefaultConfig(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	f.store = st

	// Wired as dvrflowd wires it, in one direction: controller, engine, status server over
	// them, metrics over the status server, then the controller reports to the metrics.
	ccfg := enginetest.ControllerConfig()
	ccfg.PacketInRate, ccfg.PacketInBurst = 0.001, 2
	f.ofs = controller.NewServer(log, ccfg)
	f.eng = engine.New(log, engine.Config{}, st, f.ofs)
	f.masters = &dbMasters{store: st, stats: mastership.Stats{Claimed: 3, HandedOff: 1, Lapses: 2, Stale: 5,
		Renewals: 40, Slow: 3, Slowest: 1500 * time.Millisecond, Lease: 2 * time.Second, LongestLease: 6 * time.Second,
		RenewLatency: [len(mastership.RenewBuckets) + 1]uint64{30, 5, 1, 1, 0, 0, 3}}}
	stat, err := status.New(log, status.Config{Switches: f.ofs, Engine: f.eng, Store: st, AuditAge: time.Minute,
		Mastership: f.masters})
	if err != nil {
		t.Fatal(err)
	}
	mx := metrics.New(log, metrics.Sources{BridgeOf: stat.BridgeOf, Sessions: stat.Sessions, Revision: stat.Revision,
		HostLag: stat.HostLag, Mastership: f.masters.Status})
	f.ofs.SetObserver(mx)

	cfg := northbound.DefaultConfig()
	cfg.AdminToken = token
	cfg.ProjectTokens = map[string]string{projectToken: "project-1"}
	cfg.Plans = f.eng
	cfg.Middleware = append(cfg.Middleware, mx.Middleware())
	cfg.Mount = func(e *echo.Echo, v2 *echo.Group) {
		stat.Mount(e, v2)
		e.GET("/metrics", echo.WrapHandler(mx.Handler()))
	}
	api, err := northbound.New(st, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	f.api = httptest.NewServer(api)
	t.Cleanup(f.api.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = f.ofs.Serve(ctx, ln) }()
	go func() { defer wg.Done(); _ = f.eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); wg.Wait() })

	// The seed topology, each host's bridges under the IDs its helper would use.
	opts := enginetest.SeedOptions()
	if f.topo, err = seed.Create(ctx, seed.NewClient(f.api.URL, token), opts); err != nil {
		t.Fatalf("seed: %v", err)
	}
	f.switches = enginetest.Switches(log, opts, f.topo)
	for _, sw := range f.switches {
		go func() { _ = sw.Run(ctx, ln.Addr().String()) }()
	}
	return f
}

// get fetches path with the admin token and returns the status code and body.
func (f *fixture) get(path string, withToken bool) (int, string) {
	f.t.Helper()
	tok := ""
	if withToken {
		tok = token
	}
	return f.getAs(path, tok)
}

// getAs fetches path with token tok ("": none) and returns the status code and body.
func (f *fixture) getAs(path, tok string) (int, string) {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.api.URL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("X-Auth-Token", tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (f *fixture) switchList() []switchapi.Switch {
	f.t.Helper()
	code, body := f.get("/v2.0/dvr-switches", true)
	if code != http.StatusOK {
		f.t.Fatalf("GET /v2.0/dvr-switches: %d %s", code, body)
	}
	var out struct {
		Switches []switchapi.Switch `json:"dvr_switches"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		f.t.Fatalf("decoding %s: %v", body, err)
	}
	return out.Switches
}

// converged: all 9 switches listed with their host and bridge, holding their desired flows.
func (f *fixture) converged() (bool, string) {
	sw := f.switchList()
	if len(sw) != 9 {
		return false, fmt.Sprintf("%d switches listed", len(sw))
	}
	for _, w := range sw {
		if w.Host == "" || w.FlowsDesired <= len(apps.Tables(topology.Bridge(w.Bridge))) ||
			w.FlowsInstalled != w.FlowsDesired || w.Drift() || w.LastReconcileAt == "" ||
			w.DesiredRevision == 0 || w.RealizedRevision != w.DesiredRevision {
			return false, fmt.Sprintf("%+v", w)
		}
	}
	return true, ""
}

func TestSwitchAPI(t *testing.T) {
	f := newFixture(t)
	enginetest.Eventually(t, "9 converged switches", f.converged)

	sw := f.switchList()
	var order []string
	for _, w := range sw {
		order = append(order, w.Host+"/"+w.Bridge)
	}
	want := "compute1/br-ex compute1/br-int compute1/br-tun compute2/br-ex compute2/br-int compute2/br-tun network/br-ex network/br-int network/br-tun"
	if got := strings.Join(order, " "); got != want {
		t.Errorf("switch order %s, want %s", got, want)
	}
	w := sw[2]
	if w.DPID != fmt.Sprintf("%016x", enginetest.DPID("compute1", topology.BrTun)) || w.Role != "equal" ||
		!strings.HasPrefix(w.Address, "127.0.0.1:") || w.UptimeSeconds < 0 {
		t.Errorf("compute1 br-tun: %+v", w)
	}
	if _, err := time.Parse(time.RFC3339, w.ConnectedAt); err != nil {
		t.Errorf("connected_at %q: %v", w.ConnectedAt, err)
	}

	// One switch, by every accepted spelling of its DPID.
	short := strings.TrimLeft(w.DPID, "0")
	for _, id := range []string{w.DPID, short, "0x" + short, "0X" + strings.ToUpper(w.DPID)} {
		code, body := f.get("/v2.0/dvr-switches/"+id, true)
		if code != http.StatusOK || !strings.Contains(body, `"dvr_switch":{"dpid":"`+w.DPID+`","host":"compute1","bridge":"br-tun"`) {
			t.Errorf("GET switch %s: %d %s", id, code, body)
		}
	}
	for id, wantCode := range map[string]int{"00000000000000ff": 404, "xyz": 400, "0x": 400, "12345678901234567": 400} {
		code, body := f.get("/v2.0/dvr-switches/"+id, true)
		if code != wantCode || !strings.Contains(body, `"NeutronError"`) {
			t.Errorf("GET switch %s: %d %s, want %d with a NeutronError", id, code, body, wantCode)
		}
	}
	if code, _ := f.get("/v2.0/dvr-switches", false); code != http.StatusUnauthorized {
		t.Errorf("switch list without a token: %d, want 401", code)
	}

	// Flows with table names, all ok.
	code, body := f.get("/v2.0/dvr-switches/"+w.DPID+"/flows", true)
	if code != http.StatusOK {
		t.Fatalf("flows: %d %s", code, body)
	}
	var fl switchapi.Flows
	if err := json.Unmarshal([]byte(body), &fl); err != nil {
		t.Fatal(err)
	}
	if fl.Host != "compute1" || fl.Bridge != "br-tun" || len(fl.Flows) != w.FlowsDesired || fl.Missing+fl.Extra != 0 {
		t.Fatalf("flows: %+v", fl)
	}
	seen := map[string]bool{}
	for _, x := range fl.Flows {
		seen[x.TableName] = true
		if x.State != "ok" || !strings.Contains(x.Text, "table="+x.TableName) && x.Table != 0 || !regexp.MustCompile(`^0x[0-9a-f]{16}$`).MatchString(x.Cookie) {
			t.Errorf("flow %+v", x)
		}
	}
	for _, name := range []string{"CLASSIFIER", "DVR_PROCESS", "PATCH_LV_TO_TUN", "VXLAN_TUN_TO_LV", "UCAST_TO_TUN", "FLOOD_TO_TUN"} {
		if !seen[name] {
			t.Errorf("no flow of table %s: %v", name, seen)
		}
	}
	code, text := f.get("/v2.0/dvr-switches/"+w.DPID+"/flows?format=text", true)
	if code != http.StatusOK || strings.Count(text, "\n") != len(fl.Flows) || strings.Contains(text, "MISSING") ||
		!strings.Contains(text, "table=DVR_PROCESS") {
		t.Errorf("text flows: %d\n%s", code, text)
	}
	if code, _ := f.get("/v2.0/dvr-switches/"+w.DPID+"/flows?format=xml", true); code != http.StatusBadRequest {
		t.Errorf("format=xml: %d, want 400", code)
	}
}

func TestDriftShownAndRepaired(t *testing.T) {
	f := newFixture(t)
	enginetest.Eventually(t, "9 converged switches", f.converged)
	dpid := enginetest.DPID("compute1", topology.BrTun)
	sim := f.switches["compute1/br-tun"]
	rec, ok := f.ofs.ReconcilerOf(dpid)
	sess, ok2 := f.ofs.Session(dpid)
	if !ok || !ok2 {
		t.Fatal("no reconciler or session for compute1 br-tun")
	}

	// Someone adds a flow with our cookie and deletes a desired one behind our back.
	stray := ofproto.Flow{Table: apps.TunUcastToTun, Priority: 77, Cookie: apps.Cookie(apps.AppL2),
		Match: ofproto.Match{ofproto.EthDst(net.HardwareAddr{0xfa, 0x16, 0x3e, 0xde, 0xad, 0x01})}}
	if err := sim.AddFlow(stray); err != nil {
		t.Fatal(err)
	}
	var victim ofproto.Flow
	for _, d := range rec.Desired() {
		if d.Table == apps.TunDVRProcess && d.Priority > 0 {
			victim = d
			break
		}
	}
	if victim.Cookie == 0 {
		t.Fatal("no DVR_PROCESS flow desired on compute1 br-tun")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	del := ofproto.AppendFlowDelete(nil, sess.NextXID(), victim.Table, victim.Priority, victim.Match, victim.Cookie, ^uint64(0), true)
	if err := sess.Send(ctx, del); err != nil {
		t.Fatal(err)
	}
	if err := sess.Barrier(ctx); err != nil {
		t.Fatal(err)
	}

	names := apps.TableNames(topology.BrTun)
	strayText, victimText := stray.Format(names), victim.Format(names)
	code, body := f.get("/v2.0/dvr-switches/"+ofproto.DPID(dpid).String()+"/flows", true)
	if code != http.StatusOK {
		t.Fatalf("flows: %d %s", code, body)
	}
	var fl switchapi.Flows
	if err := json.Unmarshal([]byte(body), &fl); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, x := range fl.Flows {
		states[x.Text] = x.State
	}
	if fl.Missing != 1 || fl.Extra != 1 || states[strayText] != "extra" || states[victimText] != "missing" {
		t.Fatalf("drift not seen: missing %d extra %d, stray %q, victim %q\n%s", fl.Missing, fl.Extra,
			states[strayText], states[victimText], body)
	}
	_, text := f.get("/v2.0/dvr-switches/"+ofproto.DPID(dpid).String()+"/flows?format=text", true)
	if !strings.Contains(text, "EXTRA "+strayText+"\n") || !strings.Contains(text, "MISSING "+victimText+"\n") {
		t.Errorf("text flows lack the drift:\n%s", text)
	}

	// The page shows the same audit (it is younger than AuditAge), in red.
	code, html := f.get("/status/switches/"+ofproto.DPID(dpid).String()+"?refresh=0", false)
	if code != http.StatusOK {
		t.Fatalf("switch page: %d %s", code, html)
	}
	for _, want := range []string{
		`<tr class="flow extra"><td class="state">extra</td><td class="num packets">0</td><td class="num">0</td><td><code>` + template(strayText) + `</code>`,
		`<tr class="flow missing"><td class="state">missing</td><td class="num packets">0</td><td class="num">0</td><td><code>` + template(victimText) + `</code>`,
		`id="table-DVR_PROCESS"`, "1 missing, 1 extra",
	} {
		if !strings.Contains(html, want) {
			t.Errorf("switch page lacks %s", want)
		}
	}
	if strings.Contains(html, `http-equiv="refresh"`) {
		t.Error("refresh=0 page still refreshes")
	}

	// The audit started a repair: the switch holds its desired flows again.
	enginetest.Eventually(t, "drift repaired", func() (bool, string) {
		dump, err := sim.DumpFlows()
		if err != nil {
			return false, err.Error()
		}
		if strings.Contains(dump, "priority=77") || !strings.Contains(dump, victim.String()) {
			return false, dump
		}
		st := rec.Stats()
		return st.Missing == 0 && st.Extra == 0, fmt.Sprintf("%+v", st)
	})
}

// template escapes s as html/template does in element content.
func template(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;", "+", "&#43;").Replace(s)
}

func TestStatusPage(t *testing.T) {
	f := newFixture(t)
	enginetest.Eventually(t, "9 converged switches", f.converged)
	ctx := context.Background()
	// compute1's helper applied its plan; the others applied nothing yet.
	enginetest.Eventually(t, "plans", func() (bool, string) {
		return len(f.eng.Plans()) == 3, fmt.Sprint(f.eng.Plans())
	})
	p1 := f.eng.Plans()["compute1"]
	if err := f.store.SetHostApplied(ctx, "compute1", p1.Revision); err != nil {
		t.Fatal(err)
	}

	code, html := f.get("/status", false)
	if code != http.StatusOK {
		t.Fatalf("/status: %d %s", code, html)
	}
	if !strings.Contains(html, `<meta http-equiv="refresh" content="10">`) {
		t.Error("page does not refresh itself")
	}
	for _, anchor := range []string{"switches", "hosts", "networks", "subnets", "routers", "ports", "floatingips", "plans"} {
		if !strings.Contains(html, `id="`+anchor+`"`) || !strings.Contains(html, `href="#`+anchor+`"`) {
			t.Errorf("no section #%s", anchor)
		}
	}
	for _, h := range hosts {
		for _, b := range topology.Bridges() {
			id := ofproto.DPID(enginetest.DPID(h, b)).String()
			if !strings.Contains(html, `href="/status/switches/`+id+`"`) {
				t.Errorf("no link to the flows of %s %s", h, b)
			}
		}
		info := f.topo.Hosts[h]
		if !regexp.MustCompile(`<td class="num rev">r([1-9][0-9]*) / r([1-9][0-9]*)</td>`).MatchString(html) {
			t.Errorf("no realized / desired revision in the switch rows")
		}
		if !strings.Contains(html, `<td class="mac">`+info.MACAddress+`</td>`) {
			t.Errorf("no DVR MAC %s for %s", info.MACAddress, h)
		}
		if !strings.Contains(html, `href="/status/hosts/`+h+`#plan"`) {
			t.Errorf("no link to the plan of %s", h)
		}
	}
	row := func(id string) string {
		i := strings.Index(html, `id="`+id+`"`)
		if i < 0 {
			t.Fatalf("no row %s", id)
		}
		j := strings.Index(html[i:], "</tr>")
		return html[i : i+j]
	}
	if r := row("host-compute1"); !strings.Contains(r, `<span class="good">in sync</span>`) {
		t.Errorf("compute1 not in sync: %s", r)
	}
	if r := row("host-compute2"); !strings.Contains(r, `class="bad">plan behind by`) {
		t.Errorf("compute2 not behind: %s", r)
	}
	// A router is realized on the three hosts: green where applied, red where not.
	r := row("routers-" + f.topo.Router.ID)
	if !strings.Contains(r, `class="badge good" title="applied revision`) || !strings.Contains(r, `>compute1</a>`) ||
		!strings.Contains(r, `class="badge bad" title="plan revision`) || !strings.Contains(r, `>network</a>`) {
		t.Errorf("router row: %s", r)
	}
	vm1 := f.topo.VMs["VM1"]
	if r := row("ports-" + vm1.ID); !strings.Contains(r, "ACTIVE") && !strings.Contains(r, "DOWN") {
		t.Errorf("VM1 row without status: %s", r)
	}
	if code, page := f.get("/status?refresh=0", false); code != 200 || strings.Contains(page, `http-equiv="refresh"`) {
		t.Errorf("refresh=0: %d, still refreshing", code)
	}

	// The host page shows the plan; unknown hosts and switches are 404 pages.
	code, hp := f.get("/status/hosts/compute1", false)
	if code != 200 || !strings.Contains(hp, `id="plan"`) || !strings.Contains(hp, "qrouter-") || !strings.Contains(hp, "fip-") {
		t.Errorf("host page: %d\n%s", code, hp)
	}
	for path, want := range map[string]int{"/status/hosts/nohost": 404, "/status/switches/00000000000000ff": 404,
		"/status/switches/zz": 400} {
		if code, _ := f.get(path, false); code != want {
			t.Errorf("%s: %d, want %d", path, code, want)
		}
	}
	if code, css := f.get("/status/static/status.css", false); code != 200 || !strings.Contains(css, "--bad") {
		t.Errorf("css: %d", code)
	}

	// A host whose helper stopped beating 10 minutes ago is dead, in red, with the time
	// since its last heartbeat.
	conn, err := pgx.Connect(ctx, f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE hosts SET heartbeat = now() - interval '10 minutes' WHERE host = 'compute1'`); err != nil {
		t.Fatal(err)
	}
	_, html = f.get("/status?refresh=0", false)
	if r := row("host-compute1"); !strings.Contains(r, `<span class="bad">dead: last heartbeat 10m0s ago`) ||
		strings.Contains(r, `class="good">in sync`) {
		t.Errorf("compute1 with a 10-minute-old heartbeat is not shown dead: %s", r)
	}
}

// metric returns the value of the series with exactly these labels, or -1.
func metric(body, name, labels string) float64 {
	prefix := name
	if labels != "" {
		prefix += "{" + labels + "}"
	}
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				return -1
			}
			return v
		}
	}
	return -1
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	enginetest.Eventually(t, "9 converged switches", f.converged)
	_, before := f.get("/metrics", false)
	for _, c := range []struct{ name, labels string }{
		{"dvrflow_switch_sessions", ""},
		{"dvrflow_flow_mods_total", `app="l2",bridge="br-tun"`},
		{"dvrflow_flow_mods_total", `app="miss",bridge="br-int"`},
		{"dvrflow_reconcile_duration_seconds_count", `bridge="br-ex"`},
		{"dvrflow_packet_in_drops_total", ""},
		{"dvrflow_api_request_duration_seconds_count", `code="200",method="GET",route="/v2.0/dvr-switches"`},
		{"dvrflow_topology_revision", ""},
		{"dvrflow_host_revision_lag", `host="compute1"`},
	} {
		if metric(before, c.name, c.labels) < 0 {
			t.Errorf("no series %s{%s}", c.name, c.labels)
		}
	}
	if v := metric(before, "dvrflow_switch_sessions", ""); v != 9 {
		t.Errorf("sessions %v, want 9", v)
	}
	if strings.Contains(before, "dpid=") {
		t.Error("a series is labelled by datapath ID")
	}
	if v := metric(before, "dvrflow_host_revision_lag", `host="compute2"`); v <= 0 {
		t.Errorf("compute2 applied nothing, lag %v", v)
	}

	// Packet-ins: 2 within the budget (burst 2, nearly no refill), 3 dropped.
	sim := f.switches["compute2/br-int"]
	for range 5 {
		if err := sim.SendPacketIn(apps.IntTransient, apps.Cookie(apps.AppMiss), 1, make([]byte, 60)); err != nil {
			t.Fatal(err)
		}
	}
	// Drift repaired: flow-mods to br-tun move.
	sess, _ := f.ofs.Session(enginetest.DPID("compute2", topology.BrTun))
	rec, _ := f.ofs.ReconcilerOf(enginetest.DPID("compute2", topology.BrTun))
	var victim ofproto.Flow
	for _, d := range rec.Desired() {
		if d.Table == apps.TunFloodToTun && d.Priority > 0 {
			victim = d
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := sess.Send(ctx, ofproto.AppendFlowDelete(nil, sess.NextXID(), victim.Table, victim.Priority, victim.Match, victim.Cookie, ^uint64(0), true)); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Audit(ctx, 0); err != nil {
		t.Fatal(err)
	}
	ctx2 := context.Background()
	p2 := f.eng.Plans()["compute2"]
	if err := f.store.SetHostApplied(ctx2, "compute2", p2.Revision); err != nil {
		t.Fatal(err)
	}
	enginetest.Eventually(t, "metrics moving", func() (bool, string) {
		_, after := f.get("/metrics", false)
		for _, c := range []struct {
			name, labels string
			want         float64
		}{
			{"dvrflow_packet_ins_total", `table="TRANSIENT"`, 2},
			{"dvrflow_packet_in_drops_total", "", metric(before, "dvrflow_packet_in_drops_total", "") + 3},
			{"dvrflow_flow_mods_total", `app="l2",bridge="br-tun"`, metric(before, "dvrflow_flow_mods_total", `app="l2",bridge="br-tun"`) + 1},
			{"dvrflow_host_revision_lag", `host="compute2"`, 0},
		} {
			if got := metric(after, c.name, c.labels); got != c.want {
				return false, fmt.Sprintf("%s{%s} = %v, want %v", c.name, c.labels, got, c.want)
			}
		}
		return true, ""
	})
	// A failed request is observed with its code and route template.
	f.get("/v2.0/dvr-switches/00000000000000ff", true)
	_, after := f.get("/metrics", false)
	if metric(after, "dvrflow_api_request_duration_seconds_count", `code="404",method="GET",route="/v2.0/dvr-switches/:dpid"`) != 1 {
		t.Errorf("404 not observed:\n%s", grep(after, "dvrflow_api_request_duration_seconds_count"))
	}
}

func grep(body, prefix string) string {
	var out []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The switch page shows each flow's packet counters and, for every table whose miss drops,
// how many packets its miss flow dropped: where an operator looks first.
func TestSwitchPageCounters(t *testing.T) {
	f := newFixture(t)
	enginetest.Eventually(t, "9 converged switches", f.converged)
	sw := f.switches["compute1/br-tun"]
	frame := make([]byte, 60)
	copy(frame, []byte{0xfa, 0x16, 0x3e, 0, 0, 1, 0xfa, 0x16, 0x3e, 0, 0, 2, 0x88, 0xb5})
	for range 3 {
		// An unknown in_port: br-tun CLASSIFIER has no flow for it, its miss drops.
		if _, err := sw.Execute(99, frame); err != nil {
			t.Fatal(err)
		}
	}
	dpid := ofproto.DPID(sw.DPID()).String()
	code, body := f.get("/v2.0/dvr-switches/"+dpid+"/flows", true)
	if code != http.StatusOK {
		t.Fatalf("flows: %d %s", code, body)
	}
	var fl switchapi.Flows
	if err := json.Unmarshal([]byte(body), &fl); err != nil {
		t.Fatal(err)
	}
	var miss *switchapi.Flow
	for i := range fl.Flows {
		if x := &fl.Flows[i]; x.TableName == "CLASSIFIER" && x.Priority == 0 {
			miss = x
		}
	}
	if miss == nil || miss.Packets != 3 || miss.Bytes != 180 {
		t.Fatalf("CLASSIFIER miss flow %+v, want 3 packets, 180 bytes", miss)
	}
	code, html := f.get("/status/switches/"+dpid+"?refresh=0", false)
	if code != http.StatusOK || !strings.Contains(html, `<td id="drops">3 packets</td>`) ||
		!strings.Contains(html, `CLASSIFIER</a> <span class="meta drops">3 packets dropped by the table miss</span>`) ||
		!strings.Contains(html, `<td class="num packets">3</td>`) {
		t.Fatalf("switch page without the drop counters: %d\n%s", code, html)
	}
}
