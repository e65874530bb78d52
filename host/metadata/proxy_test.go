package metadata

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/testbed/novameta"
)

// The tests' cloud: two instances of project p1 and p2 that Nova (novameta, which
// stands in for Nova's metadata API here) knows, under secret.
const (
	secret = "metadata-s3cret"
	vm1    = "0c6a3c5e-1111-4a4a-8c8c-000000000001"
	vm2    = "0c6a3c5e-2222-4a4a-8c8c-000000000002"
)

var (
	inst1 = plan.Instance{IP: "10.0.1.5", DeviceID: vm1, ProjectID: "p1"}
	inst2 = plan.Instance{IP: "10.0.1.6", DeviceID: vm2, ProjectID: "p2"}
)

func newNova() *novameta.Nova {
	return novameta.New(secret, map[string]novameta.Instance{
		vm1: {ProjectID: "p1", Name: "vm1", Hostname: "vm1", ID: 1},
		vm2: {ProjectID: "p2", Name: "vm2", Hostname: "vm2", ID: 2},
	})
}

// recorder keeps the headers of every request that reached upstream.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	reqs []*http.Request
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Clone(req.Context()))
	r.mu.Unlock()
	r.next.ServeHTTP(w, req)
}

func (r *recorder) all() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

// newServer returns the handler of one namespace's proxy sending to upstream, without
// a listener (those are the namespace tests').
func newServer(t *testing.T, upstream, sec string, instances ...plan.Instance) *server {
	t.Helper()
	p, err := New(zaptest.NewLogger(t), Config{NovaURL: upstream, Secret: sec, NovaTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	table, err := instanceTable(&plan.Metadata{Network: "net1", Instances: instances})
	if err != nil {
		t.Fatal(err)
	}
	s := &server{p: p, log: p.log}
	s.table.Store(&table)
	return s
}

func ask(s http.Handler, from, target string, hdr http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	r.RemoteAddr = from
	for k, v := range hdr {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func TestKnownInstanceGetsItsMetadata(t *testing.T) {
	rec := &recorder{next: newNova()}
	nova := httptest.NewServer(rec)
	defer nova.Close()
	s := newServer(t, nova.URL, secret, inst1, inst2)

	w := ask(s, "10.0.1.5:40000", "/openstack/latest/meta_data.json?x=1&y=a%2Fb", http.Header{"Cookie": {"c=1"}})
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("answer %d %s: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var doc struct {
		UUID      string `json:"uuid"`
		ProjectID string `json:"project_id"`
		Name      string `json:"name"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.UUID != vm1 || doc.ProjectID != "p1" || doc.Name != "vm1" {
		t.Errorf("meta_data.json %+v, want vm1's", doc)
	}
	reqs := rec.all()
	if len(reqs) != 1 {
		t.Fatalf("%d requests reached Nova, want 1", len(reqs))
	}
	got := reqs[0]
	if got.URL.Path != "/openstack/latest/meta_data.json" || got.URL.RawQuery != "x=1&y=a%2Fb" {
		t.Errorf("Nova got %s?%s, want the path and query unchanged", got.URL.Path, got.URL.RawQuery)
	}
	// The signature as Neutron computes it, by Python:
	// hmac.new(b"metadata-s3cret", vm1.encode(), hashlib.sha256).hexdigest()
	want := map[string]string{"X-Instance-Id": vm1, "X-Tenant-Id": "p1", "X-Forwarded-For": "10.0.1.5",
		"X-Instance-Id-Signature": "20992b36762bec19e3cd509a28f0f5c9c91166629d215afdaa8e683c720157ee"}
	for k, v := range want {
		if got.Header.Get(k) != v {
			t.Errorf("Nova got %s %q, want %q", k, got.Header.Get(k), v)
		}
	}
	for k := range got.Header {
		if _, ok := want[k]; !ok && k != "Accept-Encoding" {
			t.Errorf("Nova got header %s from the VM: only Neutron's headers may pass", k)
		}
	}
}

// TestForgedHeadersReplaced: whatever a VM claims in Neutron's headers, even a valid
// signature of another instance, Nova hears the truth of its address.
func TestForgedHeadersReplaced(t *testing.T) {
	rec := &recorder{next: newNova()}
	nova := httptest.NewServer(rec)
	defer nova.Close()
	s := newServer(t, nova.URL, secret, inst1, inst2)
	forged := http.Header{
		"X-Instance-Id": {vm2}, "X-Tenant-Id": {"p2"}, "X-Instance-Id-Signature": {sign(secret, vm2)},
		"X-Forwarded-For": {"10.0.1.6"}, "Forwarded": {"for=10.0.1.6"}, "X-Neutron-Network-Id": {"net9"},
	}
	w := ask(s, "10.0.1.5:40000", "/latest/meta-data/instance-id", forged)
	if w.Code != http.StatusOK || w.Body.String() != "i-00000001" {
		t.Fatalf("forged request answered %d %q, want vm1's instance-id i-00000001", w.Code, w.Body)
	}
	w = ask(s, "10.0.1.5:40000", "/latest/meta-data/local-ipv4", forged)
	if w.Body.String() != "10.0.1.5" {
		t.Errorf("local-ipv4 %q: X-Forwarded-For not the VM's address", w.Body)
	}
	for _, r := range rec.all() {
		if v := r.Header.Values("X-Instance-Id"); !slices.Equal(v, []string{vm1}) {
			t.Errorf("Nova got X-Instance-ID %q", v)
		}
		if v := r.Header.Values("X-Forwarded-For"); !slices.Equal(v, []string{"10.0.1.5"}) {
			t.Errorf("Nova got X-Forwarded-For %q", v)
		}
		if r.Header.Get("Forwarded") != "" || r.Header.Get("X-Neutron-Network-Id") != "" {
			t.Errorf("forged headers reached Nova: %v", r.Header)
		}
	}
}

func TestUnknownAddressIs404(t *testing.T) {
	rec := &recorder{next: newNova()}
	nova := httptest.NewServer(rec)
	defer nova.Close()
	s := newServer(t, nova.URL, secret, inst1)
	for _, from := range []string{"10.0.1.6:40000", "10.0.1.7:40000", "[::ffff:10.0.1.8]:40000", "not-an-address"} {
		if w := ask(s, from, "/openstack/latest/meta_data.json", nil); w.Code != http.StatusNotFound {
			t.Errorf("from %s: %d, want 404", from, w.Code)
		}
	}
	// An IPv4-mapped address is the IPv4 instance's.
	if w := ask(s, "[::ffff:10.0.1.5]:40000", "/latest/meta-data/instance-id", nil); w.Code != http.StatusOK {
		t.Errorf("from vm1's IPv4-mapped address: %d, want 200", w.Code)
	}
	if n := len(rec.all()); n != 1 {
		t.Errorf("%d requests reached Nova, want only vm1's", n)
	}
}

func TestWrongSecretIs403(t *testing.T) {
	nova := httptest.NewServer(newNova())
	defer nova.Close()
	s := newServer(t, nova.URL, "not-"+secret, inst1)
	if w := ask(s, "10.0.1.5:40000", "/openstack/latest/meta_data.json", nil); w.Code != http.StatusForbidden {
		t.Errorf("wrong secret: %d %q, want 403", w.Code, w.Body)
	}
}

// TestNovaAnswersAsNeutronPassesThem: Neutron's agent passes 200 with its content type
// and body only, a few error statuses as they are (with its own body), and makes any
// other answer a 500.
func TestNovaAnswersAsNeutronPassesThem(t *testing.T) {
	status := make(chan int, 1)
	nova := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Set-Cookie", "session=1")
		w.Header().Set("Content-Type", "text/x-nova")
		w.WriteHeader(<-status)
		_, _ = w.Write([]byte("nova's body"))
	}))
	defer nova.Close()
	s := newServer(t, nova.URL, secret, inst1)
	for code, want := range map[int]int{200: 200, 400: 400, 403: 403, 404: 404, 409: 409, 500: 500,
		502: 502, 503: 503, 504: 504, 201: 500, 301: 500, 401: 500, 418: 500} {
		status <- code
		w := ask(s, "10.0.1.5:40000", "/openstack", nil)
		if w.Code != want {
			t.Errorf("Nova %d: answered %d, want %d", code, w.Code, want)
		}
		if w.Header().Get("Set-Cookie") != "" {
			t.Errorf("Nova %d: its Set-Cookie passed", code)
		}
		if code == 200 && (w.Body.String() != "nova's body" || w.Header().Get("Content-Type") != "text/x-nova") {
			t.Errorf("Nova 200: answered %q %q", w.Header().Get("Content-Type"), w.Body)
		}
		if code != 200 && w.Body.String() == "nova's body" {
			t.Errorf("Nova %d: its body passed", code)
		}
	}
}

func TestNovaUnreachableIs503(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	s := newServer(t, "http://"+addr, secret, inst1)
	if w := ask(s, "10.0.1.5:40000", "/openstack", nil); w.Code != http.StatusServiceUnavailable {
		t.Errorf("Nova down: %d %q, want 503", w.Code, w.Body)
	}
}

func TestNovaTimeoutIs500(t *testing.T) {
	release := make(chan struct{})
	nova := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer nova.Close()
	defer close(release)
	s := newServer(t, nova.URL, secret, inst1)
	s.p.cfg.NovaTimeout = 100 * time.Millisecond
	if w := ask(s, "10.0.1.5:40000", "/openstack", nil); w.Code != http.StatusInternalServerError {
		t.Errorf("Nova too slow: %d %q, want 500", w.Code, w.Body)
	}
}

func TestNewChecksURL(t *testing.T) {
	for _, u := range []string{"", "nova:8775", "ftp://nova", "http://", "http://user:pw@nova:8775", "http://nova:8775/#x"} {
		if _, err := New(zaptest.NewLogger(t), Config{NovaURL: u}); err == nil {
			t.Errorf("New accepted Nova URL %q", u)
		}
	}
	if _, err := New(zaptest.NewLogger(t), Config{NovaURL: "https://nova.example:8775"}); err != nil {
		t.Error(err)
	}
}

func TestInstanceTable(t *testing.T) {
	table, err := instanceTable(&plan.Metadata{Instances: []plan.Instance{inst1, inst2}})
	if err != nil {
		t.Fatal(err)
	}
	if table[netip.MustParseAddr("10.0.1.6")] != inst2 || len(table) != 2 {
		t.Errorf("table %v", table)
	}
	if _, err := instanceTable(&plan.Metadata{Instances: []plan.Instance{{IP: "10.0.1", DeviceID: "x"}}}); err == nil {
		t.Error("a bad address was accepted")
	}
}
