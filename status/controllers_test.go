package status_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/engine/enginetest"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/switchapi"
	"github.com/dvrflow/dvrflow/topology"
)

func (f *fixture) controllerList() []switchapi.Controller {
	f.t.Helper()
	code, body := f.get("/v2.0/dvr-controllers", true)
	var out switchapi.ControllerList
	if code != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil || out.Controllers == nil {
		f.t.Fatalf("GET /v2.0/dvr-controllers: %d %s", code, body)
	}
	return out.Controllers
}

func (f *fixture) mastershipList() map[string]switchapi.Mastership {
	f.t.Helper()
	code, body := f.get("/v2.0/dvr-controllers/masterships", true)
	var out switchapi.MastershipList
	if code != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil {
		f.t.Fatalf("GET /v2.0/dvr-controllers/masterships: %d %s", code, body)
	}
	byHost := map[string]switchapi.Mastership{}
	for _, m := range out.Masterships {
		byHost[m.Host] = m
	}
	return byHost
}

// TestControllers: three controllers registered in the database, each the master of one
// host, one of them dead: the controller API lists them with their leases and hosts,
// every host with its master and term, the switch API and the page name each switch's
// master, and the metrics count them.
func TestControllers(t *testing.T) {
	f := newFixture(t)
	enginetest.Eventually(t, "9 converged switches", f.converged)
	ctx := context.Background()

	// No controller registered yet: none listed, every host without a master.
	if cs := f.controllerList(); len(cs) != 0 {
		t.Fatalf("controllers before any registered: %+v", cs)
	}
	ms := f.mastershipList()
	if len(ms) != 3 {
		t.Fatalf("masterships of %d hosts, want 3: %+v", len(ms), ms)
	}
	for _, h := range hosts {
		m := ms[h]
		var want []string
		for _, b := range topology.Bridges() {
			want = append(want, ofproto.DPID(enginetest.DPID(h, b)).String())
		}
		slices.Sort(want)
		if m.Controller != "" || m.Term != 0 || m.Live || m.ClaimedAt != "" || !slices.Equal(m.DPIDs, want) {
			t.Errorf("%s before any claim: %+v, want no master and DPIDs %v", h, m, want)
		}
	}
	for _, w := range f.switchList() {
		if w.Master != "" || w.MasterTerm != 0 {
			t.Errorf("switch %s has master %q term %d before any claim", w.DPID, w.Master, w.MasterTerm)
		}
	}

	// ctl-a (this one) masters compute1, ctl-b compute2, ctl-c network; then ctl-c stops
	// and its lease ends: network has no live master.
	terms := map[string]int64{}
	for i, c := range []struct{ id, host string }{{"ctl-a", "compute1"}, {"ctl-b", "compute2"}, {"ctl-c", "network"}} {
		spec := db.ControllerSpec{ID: c.id, Instance: c.id + "-1", OFAddr: fmt.Sprintf("10.0.0.%d:6653", i+1),
			APIURL: fmt.Sprintf("http://10.0.0.%d:9696", i+1)}
		if err := f.store.RegisterController(ctx, spec, time.Hour); err != nil {
			t.Fatal(err)
		}
		got, err := f.store.ClaimMasterships(ctx, c.id, spec.Instance, []string{c.host})
		if err != nil || got[c.host] == 0 {
			t.Fatalf("%s claims %s: %v %v", c.id, c.host, got, err)
		}
		terms[c.host] = got[c.host]
	}
	if err := f.store.ReleaseLease(ctx, "ctl-c", "ctl-c-1"); err != nil {
		t.Fatal(err)
	}

	cs := f.controllerList()
	if len(cs) != 3 {
		t.Fatalf("%d controllers, want 3: %+v", len(cs), cs)
	}
	for i, want := range []struct {
		id    string
		live  bool
		self  bool
		hosts []string
	}{{"ctl-a", true, true, []string{"compute1"}}, {"ctl-b", true, false, []string{"compute2"}}, {"ctl-c", false, false, []string{"network"}}} {
		c := cs[i]
		if c.ID != want.id || c.Live != want.live || c.Self != want.self || !slices.Equal(c.Hosts, want.hosts) ||
			c.OFAddr != fmt.Sprintf("10.0.0.%d:6653", i+1) || c.APIURL != fmt.Sprintf("http://10.0.0.%d:9696", i+1) {
			t.Errorf("controller %d: %+v, want %+v", i, c, want)
		}
		started, err1 := time.Parse(time.RFC3339, c.StartedAt)
		expires, err2 := time.Parse(time.RFC3339, c.ExpiresAt)
		if err1 != nil || err2 != nil || want.live && !expires.After(started) {
			t.Errorf("controller %s: started %q expires %q: %v %v", c.ID, c.StartedAt, c.ExpiresAt, err1, err2)
		}
		wantRenewals := (*switchapi.Renewals)(nil)
		if want.self {
			wantRenewals = &switchapi.Renewals{Count: 40, Slow: 3, SlowestMS: 1500, LeaseSeconds: 2, LongestLeaseSeconds: 6, Lapses: 2}
		}
		if !reflect.DeepEqual(c.Renewals, wantRenewals) {
			t.Errorf("controller %s: renewals %+v, want %+v", c.ID, c.Renewals, wantRenewals)
		}
		if want.live && (c.LeaseRemainingSeconds < 3500 || c.LeaseRemainingSeconds > 3600) ||
			!want.live && c.LeaseRemainingSeconds != 0 {
			t.Errorf("controller %s: lease remaining %v", c.ID, c.LeaseRemainingSeconds)
		}
	}
	ms = f.mastershipList()
	for h, want := range map[string]struct {
		controller string
		live       bool
	}{"compute1": {"ctl-a", true}, "compute2": {"ctl-b", true}, "network": {"ctl-c", false}} {
		m := ms[h]
		if m.Controller != want.controller || m.Term != terms[h] || m.Live != want.live || len(m.DPIDs) != 3 {
			t.Errorf("mastership of %s: %+v, want %s in term %d, live %v", h, m, want.controller, terms[h], want.live)
		}
		if _, err := time.Parse(time.RFC3339, m.ClaimedAt); err != nil {
			t.Errorf("mastership of %s: claimed_at %q: %v", h, m.ClaimedAt, err)
		}
	}
	if !(terms["compute1"] < terms["compute2"] && terms["compute2"] < terms["network"]) {
		t.Errorf("terms %v do not grow with each claim", terms)
	}

	// Admin only, as the switches' routes: a project's token is refused as Neutron refuses
	// admin_only rules, no token is 401.
	for _, path := range []string{"/v2.0/dvr-controllers", "/v2.0/dvr-controllers/masterships", "/v2.0/dvr-switches",
		"/v2.0/dvr-switches/0000000000000001", "/v2.0/dvr-switches/0000000000000001/flows"} {
		if code, body := f.getAs(path, projectToken); code != http.StatusForbidden || !strings.Contains(body, `"PolicyNotAuthorized"`) {
			t.Errorf("%s with a project token: %d %s, want 403 PolicyNotAuthorized", path, code, body)
		}
		if code, _ := f.getAs(path, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", path, code)
		}
	}

	// Every switch names its host's master and term, in the list and shown alone.
	for _, w := range f.switchList() {
		want := map[string]string{"compute1": "ctl-a", "compute2": "ctl-b", "network": "ctl-c"}[w.Host]
		if w.Master != want || w.MasterTerm != terms[w.Host] {
			t.Errorf("switch %s of %s: master %q term %d, want %q term %d", w.DPID, w.Host, w.Master, w.MasterTerm, want, terms[w.Host])
		}
	}
	dpid := ofproto.DPID(enginetest.DPID("compute2", topology.BrInt)).String()
	code, body := f.get("/v2.0/dvr-switches/"+dpid, true)
	if code != http.StatusOK || !strings.Contains(body, fmt.Sprintf(`"master":"ctl-b","master_term":%d`, terms["compute2"])) {
		t.Errorf("GET switch %s: %d %s", dpid, code, body)
	}

	// The page: a Controllers section, each switch row with its master.
	code, html := f.get("/status?refresh=0", false)
	if code != http.StatusOK || !strings.Contains(html, `id="controllers"`) || !strings.Contains(html, `href="#controllers"`) {
		t.Fatalf("/status without a controllers section: %d", code)
	}
	row := func(id string) string {
		i := strings.Index(html, `id="`+id+`"`)
		if i < 0 {
			t.Fatalf("no row %s", id)
		}
		return html[i : i+strings.Index(html[i:], "</tr>")]
	}
	for id, wants := range map[string][]string{
		"controller-ctl-a": {`<span class="good">live</span>`, "<td>in 3", `<td class="num">1 <details>`, `href="/status/hosts/compute1?refresh=0">compute1</a>`, `<span class="good">this one</span>`, "<td>10.0.0.1:6653</td>", "<td>http://10.0.0.1:9696</td>"},
		"controller-ctl-b": {`<span class="good">live</span>`, `>compute2</a>`},
		"controller-ctl-c": {`<span class="bad">dead</span>`, "<td>expired ", `>network</a>`},
	} {
		r := row(id)
		for _, want := range wants {
			if !strings.Contains(r, want) {
				t.Errorf("row %s lacks %s:\n%s", id, want, r)
			}
		}
		if id != "controller-ctl-a" && strings.Contains(r, "this one") {
			t.Errorf("row %s is marked this one:\n%s", id, r)
		}
	}
	if !strings.Contains(html, "1 host(s) have no live master") {
		t.Error("the page does not warn of network's dead master")
	}
	if r := row("switch-" + dpid); !strings.Contains(r, fmt.Sprintf(`<td class="master">ctl-b <span class="dim">term %d</span></td>`, terms["compute2"])) {
		t.Errorf("switch row without its master:\n%s", r)
	}
	code, sp := f.get("/status/switches/"+dpid+"?refresh=0", false)
	if code != http.StatusOK || !strings.Contains(sp, fmt.Sprintf(`<td id="master">ctl-b (term %d)</td>`, terms["compute2"])) {
		t.Errorf("switch page without its master: %d", code)
	}

	// The metrics: two live controllers, one host this one's, one series per controller.
	_, m := f.get("/metrics", false)
	for _, c := range []struct {
		name, labels string
		want         float64
	}{
		{"dvrflow_controllers_live", "", 2},
		{"dvrflow_mastership_hosts", "", 1},
		{"dvrflow_controller_masterships", `controller="ctl-a"`, 1},
		{"dvrflow_controller_masterships", `controller="ctl-b"`, 1},
		{"dvrflow_controller_masterships", `controller="ctl-c"`, 1},
		{"dvrflow_mastership_claimed_total", "", 3},
		{"dvrflow_mastership_handed_off_total", "", 1},
		{"dvrflow_mastership_lapses_total", "", 2},
		{"dvrflow_mastership_stale_refusals_total", "", 5},
	} {
		if got := metric(m, c.name, c.labels); got != c.want {
			t.Errorf("%s{%s} = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if v := metric(m, "dvrflow_mastership_lease_remaining_seconds", ""); v <= 50 || v > 60 {
		t.Errorf("lease remaining %v, want about a minute", v)
	}
}
