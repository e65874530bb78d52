package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/northbound/topogen"
	"github.com/dvrflow/dvrflow/topology"
)

func writeTopology(t *testing.T, res topogen.Result) string {
	t.Helper()
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "topo.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func twoHosts() topogen.Result {
	return topogen.Result{Hosts: []topogen.Host{
		{Name: "c1", DPIDs: map[string]uint64{"br-int": 1, "br-tun": 2, "br-ex": 3},
			Ports: []topogen.Port{{ID: "11111111-2222-3333-4444-555555555555", Network: "n1"}}},
		{Name: "c2", DPIDs: map[string]uint64{"br-int": 4, "br-tun": 5, "br-ex": 6}},
	}}
}

func TestParseFlags(t *testing.T) {
	env := func(k string) string {
		if k == "DVRFLOW_AUTH_TOKEN" {
			return "tok"
		}
		return ""
	}
	c, err := parseFlags([]string{"-topology", "x.json", "-rate", "5000"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.token != "tok" || c.rate != 5000 || c.bundleRate != 60000 || c.controller != "127.0.0.1:6653" {
		t.Fatalf("config %+v", c)
	}
	for _, bad := range [][]string{
		{},                                // no topology
		{"-topology", "x", "-rate", "-1"}, // negative rate
		{"-topology", "x", "-controller", "nohostport"},
		{"-topology", "x", "extra"},
		{"-topology", "x", "-log-level", "loud"},
	} {
		if _, err := parseFlags(bad, env); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReadTopologyRefusesBadHosts(t *testing.T) {
	if _, err := readTopology(writeTopology(t, twoHosts())); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*topogen.Result){
		"no hosts":           func(r *topogen.Result) { r.Hosts = nil },
		"repeated name":      func(r *topogen.Result) { r.Hosts[1].Name = "c1" },
		"missing bridge":     func(r *topogen.Result) { delete(r.Hosts[0].DPIDs, "br-ex") },
		"shared datapath ID": func(r *topogen.Result) { r.Hosts[1].DPIDs["br-int"] = 1 },
	} {
		res := twoHosts()
		mutate(&res)
		if _, err := readTopology(writeTopology(t, res)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	p := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(p, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readTopology(p); err == nil {
		t.Error("malformed JSON accepted")
	}
}

func TestBridgesAndAdminPlug(t *testing.T) {
	res := twoHosts()
	s := newSim(zaptest.NewLogger(t), &config{controller: "127.0.0.1:1"}, &res)
	names := func(host string, br topology.Bridge) string {
		var out []string
		for _, p := range s.hosts[host].bridges[br].Ports() {
			out = append(out, p.Name)
		}
		return strings.Join(out, ",")
	}
	if got := names("c1", topology.BrInt); got != "patch-tun,int-br-ex,tap11111111-22" {
		t.Fatalf("c1 br-int ports %s", got)
	}
	if got := names("c2", topology.BrTun); got != "patch-int,vxlan0" {
		t.Fatalf("c2 br-tun ports %s", got)
	}
	srv := httptest.NewServer(s.routes())
	defer srv.Close()
	post := func(path, body string) int {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/hosts/c2/ports", `{"port_id":"aaaaaaaa-bbbb"}`); code != http.StatusOK {
		t.Fatalf("plug: %d", code)
	}
	if got := names("c2", topology.BrInt); got != "patch-tun,int-br-ex,tapaaaaaaaa-bb" {
		t.Fatalf("after plug: %s", got)
	}
	for body, want := range map[string]int{
		`{"port_id":"aaaaaaaa-bbbb"}`:          http.StatusConflict, // already there
		`{"name":"this-name-is-far-too-long"}`: http.StatusBadRequest,
		`{"port_id":"x","name":"y"}`:           http.StatusBadRequest,
		`{`:                                    http.StatusBadRequest,
	} {
		if code := post("/hosts/c2/ports", body); code != want {
			t.Errorf("%s: %d, want %d", body, code, want)
		}
	}
	if code := post("/hosts/nope/ports", `{"name":"tapx"}`); code != http.StatusNotFound {
		t.Errorf("unknown host: %d", code)
	}
	req, _ := http.NewRequest(http.MethodDelete, srv.URL+"/hosts/c2/ports/tapaaaaaaaa-bb", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || names("c2", topology.BrInt) != "patch-tun,int-br-ex" {
		t.Fatalf("unplug: %d, ports %s", resp.StatusCode, names("c2", topology.BrInt))
	}
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("second unplug: %d", resp.StatusCode)
	}
	r2, err := http.Get(srv.URL + "/switches/zz/flows")
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad dpid: %d", r2.StatusCode)
	}
}
