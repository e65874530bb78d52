package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/switchapi"
)

func TestSplitOfCountsEveryControllerAndTheUnmastered(t *testing.T) {
	ms := []switchapi.Mastership{
		{Host: "h1", Controller: "ctl2", Live: true}, {Host: "h2", Controller: "ctl2", Live: true},
		{Host: "h3", Controller: "ctl1", Live: true}, {Host: "h4", Controller: "ctl1", Live: false},
		{Host: "h5"},
	}
	s := splitOf(ms, []string{"ctl1", "ctl2", "ctl3"})
	if got := s.String(); got != "ctl1 1, ctl2 2, ctl3 0" {
		t.Fatalf("split %q", got)
	}
	if strings.Join(s.Unmastered, ",") != "h4,h5" {
		t.Fatalf("unmastered %v, want h4 (its master's lease ended) and h5 (never claimed)", s.Unmastered)
	}
	if b := s.busiest(); b != "ctl2" {
		t.Fatalf("busiest %s", b)
	}
	if b := (split{Hosts: map[string]int{"ctl10": 2, "ctl2": 2}}).busiest(); b != "ctl2" {
		t.Fatalf("tie: %s, want ctl2 (ctl2 before ctl10)", b)
	}
}

func TestRetargetMovesRequestsToASurvivor(t *testing.T) {
	hits := map[string]int{}
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits[name]++ })
	}
	a, b := httptest.NewServer(handler("a")), httptest.NewServer(handler("b"))
	defer a.Close()
	defer b.Close()
	rt := &retarget{next: http.DefaultTransport}
	hc := &http.Client{Transport: rt}
	get := func() {
		resp, err := hc.Get(a.URL + "/v2.0/ports")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get()
	rt.set(strings.TrimPrefix(b.URL, "http://"))
	get()
	if hits["a"] != 1 || hits["b"] != 1 {
		t.Fatalf("hits %v: want one request before set (to a) and one after (to b)", hits)
	}
}

// A single controller's table has no controller rows; several add the split, the failover
// and each controller's memory.
func TestReportRowsOfSeveralControllers(t *testing.T) {
	cfg, err := parseFlags([]string{"-hosts", "20", "-shared-members", "10"})
	if err != nil {
		t.Fatal(err)
	}
	r := &report{cold: &coldResult{}, restart: &restartResult{}}
	var one bytes.Buffer
	r.print(&one, cfg)
	for _, s := range []string{"failover", "controller", "masterships", "dvrflowd against one database"} {
		if strings.Contains(one.String(), s) {
			t.Errorf("single controller's table mentions %q:\n%s", s, one.String())
		}
	}
	if !strings.Contains(one.String(), "2. restart") {
		t.Errorf("single controller's table lost its restart rows:\n%s", one.String())
	}

	cfg.controllers = 3
	r = &report{cold: &coldResult{},
		split: &coldSplit{split: split{Hosts: map[string]int{"ctl1": 7, "ctl2": 7, "ctl3": 6}},
			Listed: map[string]int{"ctl1": 7, "ctl2": 7, "ctl3": 6},
			Usage:  map[string]usage{"ctl1": {HWM: 1 << 30}, "ctl2": {HWM: 1 << 29}, "ctl3": {HWM: 1 << 29}},
			Renewals: map[string]switchapi.Renewals{"ctl1": {Count: 900, Slow: 12, SlowestMS: 1900, LongestLeaseSeconds: 7.6},
				"ctl2": {Count: 890, Lapses: 1}, "ctl3": {Count: 880}}},
		failover: &failoverResult{Victim: "ctl1", Hosts: 7, P50: 1300 * time.Millisecond, P99: 1500 * time.Millisecond,
			Max: 1600 * time.Millisecond, NewMasters: map[string]int{"ctl2": 4, "ctl3": 3},
			Split: split{Hosts: map[string]int{"ctl2": 11, "ctl3": 9}}, FlowMods: 2,
			Usage:   map[string]usage{"ctl2": {HWM: 1 << 30}, "ctl3": {HWM: 1 << 30}},
			perHost: map[string]time.Duration{"h1": 0, "h2": 0, "h3": 0, "h4": 0, "h5": 0, "h6": 0, "h7": 0}},
		renewEnd: map[string]switchapi.Renewals{"ctl2": {Count: 2000, Lapses: 1}, "ctl3": {Count: 1990}},
	}
	var many bytes.Buffer
	r.print(&many, cfg)
	for _, want := range []string{
		"3 dvrflowd against one database",
		"hosts mastered at convergence (masterships)  ctl1 7, ctl2 7, ctl3 6; without a master: 0",
		"hosts per controller (dvr-controllers)",
		"ctl1 peak RSS 1.00 GiB",
		"2. failover: SIGKILL the busiest controller",
		"ctl1, master of 7 hosts",
		"p50 1300.0 ms, p99 1500.0 ms, max 1600.0 ms over 7 hosts",
		"its hosts taken over by",
		"ctl2 4, ctl3 3",
		"ctl2 11, ctl3 9; without a master: 0",
		"flow-mods sent",
		"0: MISS",
		"lease renewals to convergence",
		"ctl1 0 lapses, 12 of 900 slow, slowest 1900.0 ms, longest lease asked 7.6 s; ctl2 1 lapses",
		"0 lapses: MISS",
		"survivors' lease renewals, whole run",
		"ctl2 1 lapses, 0 of 2000 slow",
	} {
		if !strings.Contains(many.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, many.String())
		}
	}
	if strings.Contains(many.String(), "2. restart") {
		t.Errorf("several controllers' table has restart rows:\n%s", many.String())
	}
}
