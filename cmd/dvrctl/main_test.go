package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/db/pgtest"
	"github.com/dvrflow/dvrflow/engine"
	"github.com/dvrflow/dvrflow/engine/enginetest"
	"github.com/dvrflow/dvrflow/mastership"
	"github.com/dvrflow/dvrflow/northbound"
	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/status"
	"github.com/dvrflow/dvrflow/switchapi"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap/zaptest"
)

var pg *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &pg)) }

const token = "admin-secret"

// bed is a real dvrflow API (with a real engine computing plans and flows) on a private
// database holding the seed topology. With real switches, the status package serves the
// switch API over ofsim switches connected to a real controller, as dvrflowd does;
// without, switchAPI serves it in the documented shape from the engine's desired flows.
type bed struct {
	url  string
	opts seed.Options
	topo *seed.Topology
	eng  *engine.Engine
	// store is the bed's database (with real switches, the mastership source reads it).
	store *db.Store
	// dpids of the seed hosts' bridges, as registered.
	dpids map[string]map[string]string
}

func newBed(t *testing.T, realSwitches bool) *bed {
	t.Helper()
	log := zaptest.NewLogger(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	store, err := db.Open(ctx, pg.NewDatabase(t), db.DefaultConfig(), log)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	ofs := controller.NewServer(log, enginetest.ControllerConfig())
	eng := engine.New(log, engine.Config{}, store, ofs)
	cfg := northbound.DefaultConfig()
	cfg.AdminToken, cfg.Plans = token, eng
	b := &bed{eng: eng, store: store, dpids: map[string]map[string]string{}}
	var handler http.Handler
	if realSwitches {
		st, err := status.New(log, status.Config{Switches: ofs, Engine: eng, Store: store, Mastership: dbMasters{store}})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Mount = st.Mount
		api, err := northbound.New(store, cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		handler = api
	} else {
		api, err := northbound.New(store, cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		sw := b.switchAPI()
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/v2.0/dvr-switches") {
				sw.ServeHTTP(w, r)
				return
			}
			api.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(handler)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(2)
	go func() { defer wg.Done(); _ = ofs.Serve(ctx, ln) }()
	go func() { defer wg.Done(); _ = eng.Run(ctx) }()
	t.Cleanup(func() {
		srv.Close()
		cancel()
		wg.Wait()
		store.Close()
	})
	b.url = srv.URL

	b.opts = enginetest.SeedOptions()
	for _, h := range b.opts.Hosts {
		b.dpids[h.Name] = h.Bridges
	}
	if b.topo, err = seed.Create(ctx, seed.NewClient(b.url, token), b.opts); err != nil {
		t.Fatalf("seed: %v", err)
	}
	if realSwitches {
		for _, sw := range enginetest.Switches(log, b.opts, b.topo) {
			wg.Add(1)
			go func() { defer wg.Done(); _ = sw.Run(ctx, ln.Addr().String()) }()
		}
	}
	// Wait until the engine has planned the seed: compute1 routes with R1.
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	for after := int64(-1); ; {
		p, err := eng.WaitPlan(wctx, "compute1", after)
		if err != nil {
			t.Fatalf("no plan with qrouter-%s for compute1: %v", b.topo.Router.ID, err)
		}
		if slices.ContainsFunc(p.Namespaces, func(ns plan.Namespace) bool { return ns.Name == "qrouter-"+b.topo.Router.ID }) &&
			slices.ContainsFunc(p.Namespaces, func(ns plan.Namespace) bool { return strings.HasPrefix(ns.Name, "fip-") }) {
			break
		}
		after = p.Revision
	}
	return b
}

// ports are the OpenFlow ports of host's bridge br: the fixed ones and, on br-int, the
// host's VM taps.
func (b *bed) ports(h string, br topology.Bridge) map[string]uint32 {
	return enginetest.Ports(b.opts, b.topo, h, br)
}

// switchAPI serves the switch API of the shared contract (GET /v2.0/dvr-switches[/{dpid}
// [/flows]]) from the engine's view: every registered bridge is "connected", its flows
// are apps.Flows. On compute1's br-int one desired flow is reported missing and one
// foreign flow extra, so drift shows.
func (b *bed) switchAPI() http.Handler {
	e := echo.New()
	auth := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if c.Request().Header.Get("X-Auth-Token") != token {
				return c.JSON(http.StatusUnauthorized, neutronError("NotAuthenticated", "Authentication required"))
			}
			return next(c)
		}
	}
	g := e.Group("/v2.0/dvr-switches", auth)
	g.GET("", func(c echo.Context) error {
		var out []map[string]any
		for _, h := range []string{"compute1", "compute2", "network"} {
			for _, br := range topology.Bridges() {
				out = append(out, b.switchShape(h, string(br)))
			}
		}
		return c.JSON(http.StatusOK, map[string]any{"dvr_switches": out})
	})
	find := func(c echo.Context) (string, string, bool) {
		for h, brs := range b.dpids {
			for br, d := range brs {
				if d == c.Param("dpid") {
					return h, br, true
				}
			}
		}
		return "", "", false
	}
	g.GET("/:dpid", func(c echo.Context) error {
		h, br, ok := find(c)
		if !ok {
			return c.JSON(http.StatusNotFound, neutronError("SwitchNotFound", "Switch "+c.Param("dpid")+" is not connected."))
		}
		return c.JSON(http.StatusOK, map[string]any{"dvr_switch": b.switchShape(h, br)})
	})
	g.GET("/:dpid/flows", func(c echo.Context) error {
		h, br, ok := find(c)
		if !ok {
			return c.JSON(http.StatusNotFound, neutronError("SwitchNotFound", "Switch "+c.Param("dpid")+" is not connected."))
		}
		return c.JSON(http.StatusOK, map[string]any{"dpid": c.Param("dpid"), "host": h, "bridge": br, "flows": b.flows(h, br)})
	})
	return e
}

// dbMasters is the bed's mastership source: controller "ctl-a", with the masterships as
// the database holds them.
type dbMasters struct{ store *db.Store }

func (m dbMasters) Status() mastership.Status {
	hms, _ := m.store.HostMasters(context.Background()) // on error no master is shown, and the test fails
	return mastership.Status{ID: "ctl-a", Hosts: hms}
}

func neutronError(typ, msg string) map[string]any {
	return map[string]any{"NeutronError": map[string]any{"type": typ, "message": msg, "detail": ""}}
}

func (b *bed) switchShape(h, br string) map[string]any {
	missing, extra := 0, 0
	if h == "compute1" && br == "br-int" {
		missing, extra = 1, 1
	}
	n := len(b.flows(h, br)) - extra
	master := map[string]string{"compute1": "ctl-a", "compute2": "ctl-b"}[h] // network: none yet
	return map[string]any{"dpid": b.dpids[h][br], "host": h, "bridge": br, "address": "10.0.0.1:45678", "role": "equal",
		"master": master, "master_term": len(master),
		"connected_at": "2026-11-23T12:00:00Z", "uptime_seconds": 12.5, "flows_installed": n - missing + extra,
		"flows_desired": n, "flows_missing": missing, "flows_extra": extra, "last_reconcile_at": "2026-11-23T12:00:01Z",
		"last_reconcile_ms": 3.2, "packet_ins_per_second": 0.4, "errors": 0}
}

// flows renders the desired flows of host's bridge br as the switch API does.
func (b *bed) flows(h, br string) []map[string]any {
	var out []map[string]any
	b.eng.ReadView(func(v *topology.View) {
		st := &apps.BridgeState{Host: h, Bridge: topology.Bridge(br), Ports: b.ports(h, topology.Bridge(br))}
		names := apps.TableNames(topology.Bridge(br))
		for i, f := range apps.Flows(v, st) {
			state := "ok"
			if h == "compute1" && br == "br-int" && i == 0 {
				state = "missing"
			}
			out = append(out, map[string]any{"table": f.Table, "table_name": names[f.Table], "priority": f.Priority,
				"cookie": fmt.Sprintf("%#x", f.Cookie), "text": f.Format(names), "state": state})
		}
	})
	if h == "compute1" && br == "br-int" {
		out = append(out, map[string]any{"table": 0, "table_name": "LOCAL_SWITCHING", "priority": 99, "cookie": "0x0",
			"text": "cookie=0x0, table=LOCAL_SWITCHING, priority=99,in_port=99 actions=drop", "state": "extra"})
	}
	return out
}

// dvrctl runs the command with args against the bed (--api and --token from the
// environment) and returns its output.
func (b *bed) dvrctl(args ...string) (string, error) {
	return b.dvrctlEnv(map[string]string{"DVRFLOW_API": b.url, "DVRFLOW_TOKEN": token}, args...)
}

func (b *bed) dvrctlEnv(env map[string]string, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), err
}

func (b *bed) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, err := b.dvrctl(args...)
	if err != nil {
		t.Fatalf("dvrctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// rows splits table output into lines of fields, checking the columns are aligned: every
// header's column starts where the row's field does.
func rows(t *testing.T, out string) [][]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	var res [][]string
	header := lines[0]
	var starts []int
	for i := range header {
		if header[i] != ' ' && (i == 0 || header[i-1] == ' ') {
			starts = append(starts, i)
		}
	}
	for _, l := range lines {
		fs := strings.Fields(l)
		if len(fs) != len(starts) {
			t.Fatalf("line %q has %d fields, header %d:\n%s", l, len(fs), len(starts), out)
		}
		for i, s := range starts {
			if !strings.HasPrefix(l[s:], fs[i]) {
				t.Fatalf("column %d of %q does not start at %d:\n%s", i, l, s, out)
			}
		}
		res = append(res, fs)
	}
	return res
}

func column(rs [][]string, name string) []string {
	i := slices.Index(rs[0], name)
	var out []string
	for _, r := range rs[1:] {
		out = append(out, r[i])
	}
	return out
}

func (b *bed) vm(name string) (id, mac, ip string) {
	p := b.topo.VMs[name]
	return p.ID, p.MACAddress, p.FixedIPs[0].IPAddress
}

func TestDvrctl(t *testing.T) {
	b := newBed(t, false)
	vm1, vm1MAC, _ := b.vm("VM1")
	vm3, _, _ := b.vm("VM3")

	t.Run("hosts", func(t *testing.T) {
		rs := rows(t, b.ok(t, "hosts"))
		if got := column(rs, "HOST"); !slices.Equal(got, []string{"compute1", "compute2", "network"}) {
			t.Fatalf("hosts %v", got)
		}
		if got := column(rs, "MODE"); !slices.Equal(got, []string{"dvr", "dvr", "dvr_snat"}) {
			t.Fatalf("modes %v", got)
		}
		if got := column(rs, "BRIDGES")[0]; !strings.Contains(got, "br-int="+b.dpids["compute1"]["br-int"]) {
			t.Fatalf("bridges %v", got)
		}
	})
	t.Run("networks and alias", func(t *testing.T) {
		out := b.ok(t, "networks")
		if alias := b.ok(t, "nets"); alias != out {
			t.Fatalf("nets differs from networks:\n%s\n%s", alias, out)
		}
		rs := rows(t, out)
		names := column(rs, "NAME")
		slices.Sort(names)
		if !slices.Equal(names, []string{"net1", "net2", "public"}) {
			t.Fatalf("networks %v", names)
		}
	})
	t.Run("subnets routers fips", func(t *testing.T) {
		cidrs := column(rows(t, b.ok(t, "subnets")), "CIDR")
		slices.Sort(cidrs)
		if !slices.Equal(cidrs, []string{"10.0.1.0/24", "10.0.2.0/24", "172.24.4.0/24"}) {
			t.Fatalf("subnets %v", cidrs)
		}
		rs := rows(t, b.ok(t, "routers"))
		if got := column(rs, "NAME"); !slices.Equal(got, []string{"R1"}) || column(rs, "DISTRIBUTED")[0] != "yes" ||
			column(rs, "EXT_NETWORK")[0] != b.topo.External.ID || column(rs, "SNAT")[0] != "yes" {
			t.Fatalf("routers %v", rs)
		}
		rs = rows(t, b.ok(t, "fips"))
		fips := column(rs, "FLOATING_IP")
		slices.Sort(fips)
		if !slices.Equal(fips, []string{"172.24.4.5", "172.24.4.7"}) || !slices.Contains(column(rs, "PORT"), vm1) {
			t.Fatalf("fips %v", rs)
		}
	})
	t.Run("ports with filters", func(t *testing.T) {
		all := rows(t, b.ok(t, "ports"))
		if len(all) < 9 {
			t.Fatalf("ports: %d rows", len(all)-1)
		}
		rs := rows(t, b.ok(t, "ports", "--host", "compute1", "--device-owner", "compute:nova"))
		names := column(rs, "NAME")
		slices.Sort(names)
		if !slices.Equal(names, []string{"VM1", "VM3"}) {
			t.Fatalf("compute1 VMs %v", names)
		}
		i := slices.Index(column(rs, "ID"), vm1)
		if column(rs, "MAC")[i] != vm1MAC || column(rs, "FIXED_IPS")[i] != "10.0.1.5" || column(rs, "HOST")[i] != "compute1" {
			t.Fatalf("VM1 row %v", rs[i+1])
		}
		rs = rows(t, b.ok(t, "ports", "--network", "net1", "--device-owner", "compute:nova"))
		names = column(rs, "NAME")
		slices.Sort(names)
		if !slices.Equal(names, []string{"VM1", "VM4"}) {
			t.Fatalf("net1 VMs %v", names)
		}
		byID := rows(t, b.ok(t, "ports", "--network", b.topo.Net1.ID, "--device-owner", "compute:nova"))
		if !slices.Equal(column(byID, "ID"), column(rs, "ID")) {
			t.Fatalf("--network by ID %v, by name %v", byID, rs)
		}
	})
	t.Run("json", func(t *testing.T) {
		for _, args := range [][]string{{"-o", "json", "ports", "--host", "compute1", "--device-owner", "compute:nova"},
			{"ports", "--host", "compute1", "-o", "json", "--device-owner=compute:nova"},
			{"--output=json", "ports", "--host=compute1", "--device-owner", "compute:nova"}} {
			var got struct {
				Ports []map[string]any `json:"ports"`
			}
			if err := json.Unmarshal([]byte(b.ok(t, args...)), &got); err != nil {
				t.Fatalf("%v: %v", args, err)
			}
			var ids []string
			for _, p := range got.Ports {
				ids = append(ids, p["id"].(string))
				if p["binding:host_id"] != "compute1" || p["mac_address"] == nil || p["revision_number"] == nil {
					t.Fatalf("%v: port %v", args, p)
				}
			}
			slices.Sort(ids)
			want := []string{vm1, vm3}
			slices.Sort(want)
			if !slices.Equal(ids, want) {
				t.Fatalf("%v: ids %v, want %v", args, ids, want)
			}
		}
		out, err := b.dvrctlEnv(map[string]string{"DVRFLOW_API": b.url, "DVRFLOW_TOKEN": token, "DVRFLOW_OUTPUT": "json"}, "hosts")
		if err != nil || !json.Valid([]byte(out)) || !strings.Contains(out, `"dvr_hosts"`) {
			t.Fatalf("DVRFLOW_OUTPUT=json hosts: %v\n%s", err, out)
		}
	})
	t.Run("switches", func(t *testing.T) {
		rs := rows(t, b.ok(t, "switches"))
		if len(rs) != 10 {
			t.Fatalf("%d switches, want 9", len(rs)-1)
		}
		i := slices.Index(column(rs, "DPID"), b.dpids["compute1"]["br-int"])
		if column(rs, "HOST")[i] != "compute1" || column(rs, "BRIDGE")[i] != "br-int" || column(rs, "MISSING")[i] != "1" ||
			column(rs, "EXTRA")[i] != "1" || column(rs, "ROLE")[i] != "equal" || column(rs, "MASTER")[i] != "ctl-a" {
			t.Fatalf("compute1 br-int row %v", rs[i+1])
		}
		masters := map[string]bool{}
		for _, m := range column(rs, "MASTER") {
			masters[m] = true
		}
		if len(masters) != 3 || !masters["ctl-b"] || !masters["-"] {
			t.Fatalf("masters %v, want ctl-a, ctl-b and - (none)", masters)
		}
		var got struct {
			Switches []map[string]any `json:"dvr_switches"`
		}
		if err := json.Unmarshal([]byte(b.ok(t, "switches", "-o", "json")), &got); err != nil || len(got.Switches) != 9 ||
			got.Switches[0]["packet_ins_per_second"] != 0.4 {
			t.Fatalf("switches json: %v %v", err, got)
		}
	})
	t.Run("flows", func(t *testing.T) {
		out := b.ok(t, "flows", "compute1", "br-int")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if !strings.HasPrefix(lines[0], "# compute1 br-int dpid "+b.dpids["compute1"]["br-int"]+": ") ||
			!strings.Contains(lines[0], "1 missing, 1 extra") {
			t.Fatalf("header %q", lines[0])
		}
		if !strings.HasPrefix(lines[1], "MISSING cookie=0xd7") || lines[len(lines)-1] != "EXTRA cookie=0x0, table=LOCAL_SWITCHING, priority=99,in_port=99 actions=drop" {
			t.Fatalf("drift markers missing:\n%s", out)
		}
		if !strings.Contains(out, "table=TRANSIENT") || !strings.Contains(out, "dl_dst="+vm1MAC) {
			t.Fatalf("flows lack TRANSIENT for VM1:\n%s", out)
		}
		for _, d := range []string{"0x" + strings.TrimLeft(b.dpids["compute1"]["br-int"], "0"), strings.TrimLeft(b.dpids["compute1"]["br-int"], "0")} {
			if byDPID := b.ok(t, "flows", d); byDPID != out {
				t.Fatalf("flows %s differs from flows compute1 br-int:\n%s", d, byDPID)
			}
		}
		var got switchapi.Flows
		if err := json.Unmarshal([]byte(b.ok(t, "flows", "compute2", "br-tun", "-o", "json")), &got); err != nil ||
			got.Host != "compute2" || got.Bridge != "br-tun" || len(got.Flows) == 0 || got.Flows[0].TableName != "CLASSIFIER" {
			t.Fatalf("flows json: %v %+v", err, got)
		}
	})
	t.Run("plan", func(t *testing.T) {
		out := b.ok(t, "plan", "compute1")
		for _, want := range []string{"# host compute1, plan revision ", "qrouter-" + b.topo.Router.ID, "fip-" + b.topo.External.ID,
			"nat   dnat daddr 172.24.4.5", "link  qr-"} {
			if !strings.Contains(out, want) {
				t.Fatalf("plan lacks %q:\n%s", want, out)
			}
		}
		var got struct {
			Plan struct {
				Host       string           `json:"host"`
				Namespaces []map[string]any `json:"namespaces"`
			} `json:"plan"`
		}
		if err := json.Unmarshal([]byte(b.ok(t, "-o", "json", "plan", "network")), &got); err != nil || got.Plan.Host != "network" ||
			!slices.ContainsFunc(got.Plan.Namespaces, func(ns map[string]any) bool { return ns["name"] == "snat-"+b.topo.Router.ID }) {
			t.Fatalf("plan json: %v %+v", err, got)
		}
	})
	t.Run("explain", func(t *testing.T) {
		for _, arg := range []string{"VM1", vm1} {
			out := b.ok(t, "explain", arg)
			for _, want := range []string{
				"PORT", vm1, "VM1", vm1MAC, "10.0.1.5", "tap" + vm1[:11],
				"HOST", "compute1", "mode dvr",
				"NETWORK", b.topo.Net1.ID, "SUBNET", b.topo.Subnet1.ID, "10.0.1.0/24",
				"ROUTER", b.topo.Router.ID, "R1",
				"FLOATING IP", "172.24.4.5 -> 10.0.1.5",
				"# compute1 br-int dpid " + b.dpids["compute1"]["br-int"],
				"# compute2 br-tun dpid " + b.dpids["compute2"]["br-tun"], // l2pop to VM1 from VM4's host
				"compute1: qrouter-" + b.topo.Router.ID, "compute1: fip-" + b.topo.External.ID,
				"network: snat-" + b.topo.Router.ID, "compute2: qrouter-" + b.topo.Router.ID,
			} {
				if !strings.Contains(out, want) {
					t.Fatalf("explain %s lacks %q:\n%s", arg, want, out)
				}
			}
			// Only flows mentioning VM1: VM3's MAC appears in none of the kept lines
			// unless VM1's address is on it too.
			_, vm3MAC, _ := b.vm("VM3")
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, "cookie=") && strings.Contains(l, vm3MAC) && !strings.Contains(l, vm1MAC) &&
					!strings.Contains(l, "10.0.1.5") && !strings.Contains(l, "172.24.4.5") {
					t.Fatalf("explain VM1 kept a flow of VM3: %s", l)
				}
			}
		}
		var ex struct {
			Port       map[string]any    `json:"port"`
			Network    map[string]any    `json:"network"`
			Subnets    []map[string]any  `json:"subnets"`
			Routers    []map[string]any  `json:"routers"`
			Host       map[string]any    `json:"host"`
			DeviceName string            `json:"device_name"`
			Flows      []switchapi.Flows `json:"flows"`
			Namespaces []struct {
				Host      string         `json:"host"`
				Namespace map[string]any `json:"namespace"`
			} `json:"namespaces"`
			Notes []string `json:"notes"`
		}
		if err := json.Unmarshal([]byte(b.ok(t, "-o", "json", "explain", "VM1")), &ex); err != nil {
			t.Fatal(err)
		}
		if ex.Port["id"] != vm1 || ex.Network["id"] != b.topo.Net1.ID || len(ex.Subnets) != 1 || len(ex.Routers) != 1 ||
			ex.Host["host"] != "compute1" || ex.DeviceName != "tap"+vm1[:11] || len(ex.Flows) < 2 || len(ex.Namespaces) < 4 || len(ex.Notes) != 0 {
			t.Fatalf("explain json: %+v", ex)
		}
		for _, sf := range ex.Flows {
			for _, f := range sf.Flows {
				if !strings.Contains(strings.ToLower(f.Text), vm1MAC) && !strings.Contains(f.Text, "10.0.1.5") &&
					!strings.Contains(f.Text, "172.24.4.5") && !strings.Contains(f.Text, "0x"+strings.ReplaceAll(vm1MAC, ":", "")) {
					t.Fatalf("explain kept a flow not mentioning VM1: %s", f.Text)
				}
			}
		}
	})
	t.Run("version", func(t *testing.T) {
		out := b.ok(t, "version")
		if !strings.HasPrefix(out, "dvrctl ") || !strings.Contains(out, "v2.0 CURRENT") {
			t.Fatalf("version:\n%s", out)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for _, c := range []struct {
			args []string
			env  map[string]string
			want string
		}{
			{[]string{"explain", "no-such-port"}, nil, "Port no-such-port could not be found"},
			{[]string{"ports", "--network", "no-such-net"}, nil, `network "no-such-net": no network has this ID or name`},
			{[]string{"hosts"}, map[string]string{"DVRFLOW_TOKEN": "wrong"}, "NotAuthenticated (401): Authentication required"},
			{[]string{"switches"}, map[string]string{"DVRFLOW_TOKEN": "wrong"}, "NotAuthenticated (401)"},
			{[]string{"flows", "compute1", "br-foo"}, nil, "host compute1 registered no bridge br-foo (it has: br-ex, br-int, br-tun)"},
			{[]string{"flows", "nohost", "br-int"}, nil, "HostNotFound (404)"},
			{[]string{"flows", "xyz"}, nil, `datapath ID "xyz": want 1 to 16 hex digits`},
			{[]string{"flows", "ff"}, nil, "SwitchNotFound (404): Switch 00000000000000ff is not connected."},
			{[]string{"plan", "nohost"}, nil, "HostNotFound (404)"},
			{[]string{"plan"}, nil, "usage: dvrctl plan <host>"},
			{[]string{"hosts", "extra"}, nil, "usage: dvrctl hosts"},
			{[]string{"-o", "yaml", "hosts"}, nil, `--output "yaml": want table or json`},
			{[]string{"frobnicate"}, nil, `unknown command "frobnicate"`},
			{nil, nil, "no command given"},
			{[]string{"hosts"}, map[string]string{"DVRFLOW_TIMEOUT": "soon"}, `environment variable DVRFLOW_TIMEOUT="soon"`},
		} {
			env := map[string]string{"DVRFLOW_API": b.url, "DVRFLOW_TOKEN": token}
			for k, v := range c.env {
				env[k] = v
			}
			out, err := b.dvrctlEnv(env, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("dvrctl %v: err %v, want %q", c.args, err, c.want)
			}
			if out != "" {
				t.Errorf("dvrctl %v: wrote output on failure: %q", c.args, out)
			}
		}
	})
	t.Run("flag beats environment", func(t *testing.T) {
		out, err := b.dvrctlEnv(map[string]string{"DVRFLOW_API": "http://127.0.0.1:1", "DVRFLOW_TOKEN": "wrong"},
			"--api", b.url, "hosts", "--token", token)
		if err != nil || !strings.Contains(out, "compute1") {
			t.Fatalf("flags did not win over the environment: %v\n%s", err, out)
		}
	})
	t.Run("name shared by two networks", func(t *testing.T) {
		var ids []string
		for range 2 {
			req, err := http.NewRequest(http.MethodPost, b.url+"/v2.0/networks", strings.NewReader(`{"network": {"name": "twin"}}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Auth-Token", token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var out struct {
				Network struct {
					ID string `json:"id"`
				} `json:"network"`
			}
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusCreated {
				t.Fatalf("create network twin: %d %v", resp.StatusCode, err)
			}
			ids = append(ids, out.Network.ID)
		}
		out, err := b.dvrctl("ports", "--network", "twin")
		if err == nil || !strings.Contains(err.Error(), `network "twin": 2 networks have this name (`) ||
			!strings.Contains(err.Error(), ids[0]) || !strings.Contains(err.Error(), ids[1]) || out != "" {
			t.Fatalf("ports --network twin: err %v, output %q: want the two IDs %v named", err, out, ids)
		}
		// By ID, either is found.
		if _, err := b.dvrctl("ports", "--network", ids[1]); err != nil {
			t.Fatalf("ports --network %s: %v", ids[1], err)
		}
	})
}

func TestAPIDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"--api", url, "--timeout", "5s", "hosts"}, func(string) string { return "" }, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "connection refused") || out.Len() != 0 {
		t.Fatalf("API down: err %v, output %q", err, out.String())
	}
}

func TestHelpListsEveryFlagWithItsVariable(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"--help"}, func(string) string { return "" }, &out, &errOut)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, want := range []string{"--api URL", "env DVRFLOW_API", `default "http://127.0.0.1:9696"`, "--token token", "env DVRFLOW_TOKEN",
		"--output format", "env DVRFLOW_OUTPUT", `default "table"`, "--timeout duration", "env DVRFLOW_TIMEOUT",
		"explain", "flows", "nets", "plan <host>", "controllers"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, errOut.String())
		}
	}
	errOut.Reset()
	err = run(context.Background(), []string{"ports", "-h"}, func(string) string { return "" }, &out, &errOut)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(errOut.String(), "--device-owner OWNER") && !strings.Contains(errOut.String(), "--device-owner string") {
		t.Fatalf("ports -h: %v\n%s", err, errOut.String())
	}
}

// TestAgainstRealSwitchAPI runs the switch commands against the status package's switch
// API over a real controller with a fake switch per bridge, as dvrflowd serves them.
func TestAgainstRealSwitchAPI(t *testing.T) {
	b := newBed(t, true)
	vm1, vm1MAC, _ := b.vm("VM1")
	// Wait until the nine switches are connected and hold their flows.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got struct {
			Switches []switchapi.Switch `json:"dvr_switches"`
		}
		out, err := b.dvrctl("-o", "json", "switches")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatal(err)
		}
		done := len(got.Switches) == 9
		for _, s := range got.Switches {
			done = done && s.Host != "" && s.FlowsDesired > 0 && s.FlowsInstalled == s.FlowsDesired && s.FlowsMissing == 0 && s.FlowsExtra == 0
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("switches did not converge:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rs := rows(t, b.ok(t, "switches"))
	if hosts := column(rs, "HOST"); len(hosts) != 9 || hosts[0] != "compute1" || hosts[8] != "network" {
		t.Fatalf("switch hosts %v", hosts)
	}
	out := b.ok(t, "flows", "compute1", "br-int")
	if !strings.HasPrefix(out, "# compute1 br-int dpid "+b.dpids["compute1"]["br-int"]+": ") || !strings.Contains(out, "0 missing, 0 extra") ||
		strings.Contains(out, "MISSING ") || strings.Contains(out, "EXTRA ") || !strings.Contains(out, "dl_dst="+vm1MAC) {
		t.Fatalf("flows compute1 br-int:\n%s", out)
	}
	if byDPID := b.ok(t, "flows", "0x"+strings.TrimLeft(b.dpids["compute1"]["br-int"], "0")); byDPID != out {
		t.Fatalf("flows by dpid differ:\n%s\n%s", byDPID, out)
	}
	if _, err := b.dvrctl("flows", "ffffffffffffff"); err == nil || !strings.Contains(err.Error(), "(404)") {
		t.Fatalf("flows of an unknown switch: %v", err)
	}
	out = b.ok(t, "explain", vm1)
	for _, want := range []string{"# compute1 br-int dpid " + b.dpids["compute1"]["br-int"], "# compute2 br-tun dpid " + b.dpids["compute2"]["br-tun"],
		"TRANSIENT", "dl_dst=" + vm1MAC, "compute1: qrouter-" + b.topo.Router.ID} {
		if !strings.Contains(out, want) {
			t.Fatalf("explain lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "note:") {
		t.Fatalf("explain has notes:\n%s", out)
	}

	// Controllers: ctl-a (the one answering) masters compute1, ctl-b compute2; ctl-c
	// stopped, its lease ended, and mastered nothing.
	ctx := context.Background()
	if rs := rows(t, b.ok(t, "controllers")); len(rs) != 1 {
		t.Fatalf("controllers before any registered: %v", rs)
	}
	for i, c := range []struct{ id, host string }{{"ctl-a", "compute1"}, {"ctl-b", "compute2"}, {"ctl-c", ""}} {
		spec := db.ControllerSpec{ID: c.id, Instance: "i-" + c.id, OFAddr: fmt.Sprintf("10.0.0.%d:6653", i+1),
			APIURL: fmt.Sprintf("http://10.0.0.%d:9696", i+1)}
		if err := b.store.RegisterController(ctx, spec, time.Hour); err != nil {
			t.Fatal(err)
		}
		if c.host != "" {
			if got, err := b.store.ClaimMasterships(ctx, c.id, spec.Instance, []string{c.host}); err != nil || len(got) != 1 {
				t.Fatalf("%s claims %s: %v %v", c.id, c.host, got, err)
			}
		}
	}
	if err := b.store.ReleaseLease(ctx, "ctl-c", "i-ctl-c"); err != nil {
		t.Fatal(err)
	}
	rs = rows(t, b.ok(t, "controllers"))
	if !slices.Equal(rs[0], []string{"ID", "LIVE", "LEASE", "HOSTS", "OF_ADDRESS", "API"}) ||
		!slices.Equal(column(rs, "ID"), []string{"ctl-a*", "ctl-b", "ctl-c"}) ||
		!slices.Equal(column(rs, "LIVE"), []string{"yes", "yes", "no"}) ||
		!slices.Equal(column(rs, "HOSTS"), []string{"1", "1", "0"}) ||
		!strings.HasPrefix(column(rs, "LEASE")[0], "3") || column(rs, "LEASE")[2] != "expired" ||
		column(rs, "OF_ADDRESS")[1] != "10.0.0.2:6653" || column(rs, "API")[1] != "http://10.0.0.2:9696" {
		t.Fatalf("controllers:\n%s", b.ok(t, "controllers"))
	}
	var got switchapi.ControllerList
	if err := json.Unmarshal([]byte(b.ok(t, "-o", "json", "controllers")), &got); err != nil || len(got.Controllers) != 3 ||
		!got.Controllers[0].Self || !slices.Equal(got.Controllers[1].Hosts, []string{"compute2"}) {
		t.Fatalf("controllers json: %v %+v", err, got)
	}
	rs = rows(t, b.ok(t, "switches"))
	for i, h := range column(rs, "HOST") {
		want := map[string]string{"compute1": "ctl-a", "compute2": "ctl-b", "network": "-"}[h]
		if column(rs, "MASTER")[i] != want {
			t.Fatalf("switch of %s: master %s, want %s\n%v", h, column(rs, "MASTER")[i], want, rs)
		}
	}
}

// Several dvrflowd: dvrctl answers from the first that does, and refuses a malformed list.
func TestSeveralAPIs(t *testing.T) {
	b := newBed(t, false)
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	out, err := b.dvrctlEnv(map[string]string{"DVRFLOW_API": downURL + "," + b.url, "DVRFLOW_TOKEN": token}, "hosts")
	if err != nil || !strings.Contains(out, "compute1") {
		t.Fatalf("hosts with the first API down: %v\n%s", err, out)
	}
	for _, bad := range []string{b.url + "," + b.url, b.url + ",localhost:9696"} {
		if _, err := b.dvrctlEnv(map[string]string{"DVRFLOW_API": bad, "DVRFLOW_TOKEN": token}, "hosts"); err == nil {
			t.Errorf("--api %q accepted", bad)
		}
	}
}
