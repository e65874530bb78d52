package novameta

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const (
	secret = "s3cret"
	vm1    = "5d6f2c1e-0b7a-4c1e-9f3a-000000000001"
	// sig1 is HMAC-SHA256(secret, vm1), computed with Python's hmac as Neutron does:
	// hmac.new(b"s3cret", b"5d6f2c1e-...-000000000001", hashlib.sha256).hexdigest()
	sig1 = "8a154745c77094c10b658a178b95e8a9f7db8582991af06dd691351409fe71f8"
)

func newNova() *Nova {
	return New(secret, map[string]Instance{vm1: {ProjectID: "p1", Name: "vm1", Hostname: "vm1.example", ID: 10}})
}

func get(t *testing.T, h http.Handler, path string, hdr map[string]string) (int, string, string) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Header().Get("Content-Type"), w.Body.String()
}

func TestSignatureIsNeutrons(t *testing.T) {
	n := newNova()
	code, _, body := get(t, n, "/latest/meta-data/instance-id",
		map[string]string{"X-Instance-ID": vm1, "X-Tenant-ID": "p1", "X-Instance-ID-Signature": sig1})
	if code != http.StatusOK || body != "i-0000000a" {
		t.Fatalf("signed request: %d %q", code, body)
	}
}

func TestChecksAsNova(t *testing.T) {
	n := newNova()
	good := map[string]string{"X-Instance-ID": vm1, "X-Tenant-ID": "p1", "X-Instance-ID-Signature": sig1,
		"X-Forwarded-For": "10.0.1.5"}
	without := func(k string) map[string]string {
		m := map[string]string{}
		for kk, v := range good {
			if kk != k {
				m[kk] = v
			}
		}
		return m
	}
	with := func(k, v string) map[string]string {
		m := without(k)
		m[k] = v
		return m
	}
	for _, c := range []struct {
		name string
		hdr  map[string]string
		path string
		want int
	}{
		{"versions need no headers", nil, "/", http.StatusOK},
		{"no instance", without("X-Instance-ID"), "/openstack/latest/meta_data.json", http.StatusBadRequest},
		{"no signature", without("X-Instance-ID-Signature"), "/openstack/latest/meta_data.json", http.StatusBadRequest},
		{"no tenant", without("X-Tenant-ID"), "/openstack/latest/meta_data.json", http.StatusBadRequest},
		{"bad signature", with("X-Instance-ID-Signature", strings.Repeat("0", 64)), "/openstack/latest/meta_data.json", http.StatusForbidden},
		{"empty signature", with("X-Instance-ID-Signature", ""), "/openstack/latest/meta_data.json", http.StatusForbidden},
		{"unknown instance", with("X-Instance-ID", "nope"), "/openstack/latest/meta_data.json", http.StatusForbidden},
		{"other tenant", with("X-Tenant-ID", "p2"), "/openstack/latest/meta_data.json", http.StatusNotFound},
		{"unknown path", good, "/openstack/latest/nothing", http.StatusNotFound},
		{"meta_data.json", good, "/openstack/latest/meta_data.json", http.StatusOK},
		{"cleaned path", good, "/openstack//latest/./meta_data.json", http.StatusOK},
		{"local-ipv4", good, "/latest/meta-data/local-ipv4", http.StatusOK},
	} {
		if code, _, body := get(t, n, c.path, c.hdr); code != c.want {
			t.Errorf("%s: %d %q, want %d", c.name, code, body, c.want)
		}
	}
	// Multiple values of a header: 400 as Nova.
	r := httptest.NewRequest(http.MethodGet, "/openstack/latest/meta_data.json", nil)
	for k, v := range good {
		r.Header.Set(k, v)
	}
	r.Header.Add("X-Instance-ID", vm1)
	w := httptest.NewRecorder()
	n.ServeHTTP(w, r)
	if w.Code != http.StatusBadRequest {
		t.Errorf("two X-Instance-ID: %d, want 400", w.Code)
	}
	_, _, body := get(t, n, "/latest/meta-data/local-ipv4", good)
	if body != "10.0.1.5" {
		t.Errorf("local-ipv4 %q, want X-Forwarded-For", body)
	}
	if got := len(n.Requests()); got != 14 {
		t.Errorf("%d requests recorded, want 14", got)
	}
}

func TestMetaDataJSON(t *testing.T) {
	code, ctype, body := get(t, newNova(), "/openstack/latest/meta_data.json",
		map[string]string{"X-Instance-ID": vm1, "X-Tenant-ID": "p1", "X-Instance-ID-Signature": sig1})
	if code != http.StatusOK || ctype != "application/json" {
		t.Fatalf("%d %s %s", code, ctype, body)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"uuid": vm1, "name": "vm1", "hostname": "vm1.example", "project_id": "p1",
		"availability_zone": "nova", "launch_index": 0.0} {
		if doc[k] != want {
			t.Errorf("%s = %v, want %v", k, doc[k], want)
		}
	}
	if s, _ := doc["random_seed"].(string); len(s) != 684 {
		t.Errorf("random_seed of %d characters, want 684 (512 bytes in base64)", len(s))
	}
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Serve(ctx, ln, newNova()) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasSuffix(string(b), "\nlatest") {
		t.Errorf("versions %q", b)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("still listening after Serve returned")
	}
}
