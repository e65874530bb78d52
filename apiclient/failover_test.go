package apiclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// server is an API server whose answers a test switches: "ok" (200 {"at": name}), "503",
// "hang" (no answer until the client gives up), "die" (reads the request, then closes
// the connection without an answer).
type server struct {
	*httptest.Server
	name string
	mode atomic.Value // string
	mu   sync.Mutex
	got  []string // "METHOD path" of each request received
	in   chan struct{}
}

func newServer(t *testing.T, name, mode string) *server {
	t.Helper()
	s := &server{name: name, in: make(chan struct{}, 16)}
	s.mode.Store(mode)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		s.mu.Lock()
		s.got = append(s.got, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		s.in <- struct{}{}
		switch s.mode.Load().(string) {
		case "503":
			http.Error(w, "database unavailable", http.StatusServiceUnavailable)
		case "hang":
			<-r.Context().Done()
		case "die":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			_ = conn.Close()
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"at": "` + name + `"}`))
		}
	}))
	t.Cleanup(s.Close)
	return s
}

// received returns the requests s received, as "METHOD path" joined by commas.
func (s *server) received() string {
	for len(s.in) > 0 {
		<-s.in
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.got, ",")
}

// closedURL returns the URL of a server that is gone: connecting to it is refused.
func closedURL(t *testing.T) string {
	s := httptest.NewServer(http.NotFoundHandler())
	s.Close()
	return s.URL
}

func failover(t *testing.T, hc *http.Client, urls ...string) *Client {
	t.Helper()
	c, err := NewFailover(urls, "tok", hc, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// get sends GET path and returns which server answered.
func get(ctx context.Context, c *Client, path string) (string, error) {
	var out struct{ At string }
	_, err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out.At, err
}

// TestFailoverSticks: a GET goes past a closed server and one answering 503 to a good
// one, and the next requests go straight to it; when it fails in turn, the list is
// gone round from there.
func TestFailoverSticks(t *testing.T) {
	ctx := context.Background()
	down := closedURL(t)
	busy, good := newServer(t, "busy", "503"), newServer(t, "good", "ok")
	c := failover(t, nil, down, busy.URL, good.URL)
	if c.URL() != down {
		t.Fatalf("starts at %s, want the first URL", c.URL())
	}
	for i := range 3 {
		if at, err := get(ctx, c, "/a"); err != nil || at != "good" {
			t.Fatalf("GET %d: answered by %q, %v", i, at, err)
		}
	}
	if busy.received() != "GET /a" || good.received() != "GET /a,GET /a,GET /a" || c.URL() != good.URL {
		t.Fatalf("busy got %q, good got %q, now at %s: want one GET at busy, then all at good",
			busy.received(), good.received(), c.URL())
	}
	good.mode.Store("503")
	busy.mode.Store("ok")
	if at, err := get(ctx, c, "/b"); err != nil || at != "busy" {
		t.Fatalf("after good failed: answered by %q, %v", at, err)
	}
	if c.URL() != busy.URL || good.received() != "GET /a,GET /a,GET /a,GET /b" {
		t.Fatalf("now at %s, good got %q", c.URL(), good.received())
	}
}

func TestFailoverEveryURLFailed(t *testing.T) {
	down := closedURL(t)
	busy := newServer(t, "busy", "503")
	c := failover(t, nil, down, busy.URL)
	_, err := get(context.Background(), c, "/a")
	var e *Error
	if err == nil || !errors.As(err, &e) || e.Code != http.StatusServiceUnavailable ||
		!strings.HasPrefix(err.Error(), "GET /a: every API URL failed: "+down+": dial tcp") ||
		!strings.Contains(err.Error(), "connection refused; "+busy.URL+": 503 Service Unavailable: database unavailable") {
		t.Fatalf("err %v: want both URLs with their failures", err)
	}
	if c.URL() != down {
		t.Errorf("moved to %s though no URL worked", c.URL())
	}
}

// TestFailoverPOST: a POST is sent to the next URL only when it cannot have reached the
// first; a PUT is sent again in any case.
func TestFailoverPOST(t *testing.T) {
	ctx := context.Background()
	good := newServer(t, "good", "ok")
	if _, err := failover(t, nil, closedURL(t), good.URL).Do(ctx, http.MethodPost, "/refused", map[string]int{"a": 1}, nil); err != nil {
		t.Fatalf("POST after connection refused: %v", err)
	}
	if good.received() != "POST /refused" {
		t.Fatalf("good got %q", good.received())
	}

	dies := newServer(t, "dies", "die")
	c := failover(t, nil, dies.URL, good.URL)
	if _, err := c.Do(ctx, http.MethodPost, "/reached", map[string]int{"a": 1}, nil); err == nil {
		t.Fatal("POST to a server that died after reading it: no error")
	}
	if dies.received() != "POST /reached" || good.received() != "POST /refused" {
		t.Fatalf("dies got %q, good got %q: the POST was sent again", dies.received(), good.received())
	}
	if c.URL() != good.URL {
		t.Errorf("after a failed POST the next request starts at %s, want the next URL", c.URL())
	}

	busy := newServer(t, "busy", "503")
	_, err := failover(t, nil, busy.URL, good.URL).Do(ctx, http.MethodPost, "/busy", map[string]int{"a": 1}, nil)
	var e *Error
	if !errors.As(err, &e) || e.Code != http.StatusServiceUnavailable || good.received() != "POST /refused" {
		t.Fatalf("POST answered 503: err %v, good got %q; want the 503 and no second POST", err, good.received())
	}

	c = failover(t, nil, dies.URL, good.URL)
	if _, err := c.Do(ctx, http.MethodPut, "/put", map[string]int{"a": 1}, nil); err != nil {
		t.Fatalf("PUT: %v", err)
	}
	if dies.received() != "POST /reached,PUT /put" || good.received() != "POST /refused,PUT /put" {
		t.Fatalf("dies got %q, good got %q: want the PUT at both", dies.received(), good.received())
	}
}

// TestFailoverTimeout: a GET that times out (the http.Client's timeout) is sent to the
// next URL.
func TestFailoverTimeout(t *testing.T) {
	hang, good := newServer(t, "hang", "hang"), newServer(t, "good", "ok")
	c := failover(t, &http.Client{Timeout: 200 * time.Millisecond}, hang.URL, good.URL)
	if at, err := get(context.Background(), c, "/a"); err != nil || at != "good" {
		t.Fatalf("answered by %q, %v", at, err)
	}
	if hang.received() != "GET /a" || c.URL() != good.URL {
		t.Fatalf("hang got %q, now at %s", hang.received(), c.URL())
	}
}

// TestFailoverLongPollServerDies: a long poll waiting at a server that dies goes on at
// the next URL at once.
func TestFailoverLongPollServerDies(t *testing.T) {
	first, second := newServer(t, "first", "hang"), newServer(t, "second", "ok")
	c := failover(t, nil, first.URL, second.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type result struct {
		at  string
		err error
	}
	done := make(chan result, 1)
	go func() {
		at, err := get(ctx, c, "/plan")
		done <- result{at, err}
	}()
	<-first.in // the poll waits at first
	start := time.Now()
	_ = first.Listener.Close()
	first.CloseClientConnections()
	r := <-done
	if r.err != nil || r.at != "second" || time.Since(start) > 5*time.Second {
		t.Fatalf("poll answered by %q after %v, %v; want second at once", r.at, time.Since(start), r.err)
	}
	if c.URL() != second.URL {
		t.Errorf("now at %s", c.URL())
	}
}

// TestFailoverCallerContext: the caller's deadline expiring at a silent URL ends the
// request (it is not sent again) and the next request starts at the next URL; the
// caller cancelling moves nothing.
func TestFailoverCallerContext(t *testing.T) {
	hang, good := newServer(t, "hang", "hang"), newServer(t, "good", "ok")
	c := failover(t, nil, hang.URL, good.URL)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-hang.in; cancel() }()
	if _, err := get(ctx, c, "/cancelled"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if c.URL() != hang.URL || good.received() != "" {
		t.Fatalf("after a cancel: at %s, good got %q", c.URL(), good.received())
	}
	hang.mu.Lock()
	hang.got = nil
	hang.mu.Unlock()
	dctx, dcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer dcancel()
	if _, err := get(dctx, c, "/deadline"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: %v", err)
	}
	if good.received() != "" || c.URL() != good.URL {
		t.Fatalf("after the deadline: good got %q, at %s; want nothing sent again and the next URL", good.received(), c.URL())
	}
	if at, err := get(context.Background(), c, "/next"); err != nil || at != "good" || hang.received() != "GET /deadline" {
		t.Fatalf("next request: answered by %q, %v, hang got %q", at, err, hang.received())
	}
}

func TestCheckURLs(t *testing.T) {
	for _, ok := range [][]string{{"http://10.0.0.1:9696"}, {"https://api.example:443/", "http://10.0.0.2:9696"}} {
		if err := CheckURLs(ok); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	for _, c := range []struct {
		urls []string
		want string
	}{
		{nil, "no API URL"},
		{[]string{"10.0.0.1:9696"}, `API URL "10.0.0.1:9696": want http(s)://host:port`},
		{[]string{"http://10.0.0.1"}, "want http(s)://host:port"},
		{[]string{"ftp://10.0.0.1:21"}, "want http(s)://host:port"},
		{[]string{"http://10.0.0.1:9696/v2.0"}, "want http(s)://host:port"},
		{[]string{"http://:9696"}, "want http(s)://host:port"},
		{[]string{"http://a:9696", "http://b:9696", "http://A:9696/"}, `API URL "http://A:9696/" given twice`},
	} {
		if err := CheckURLs(c.urls); err == nil || err.Error() != c.want && !strings.HasSuffix(err.Error(), c.want) {
			t.Errorf("%q: err %v, want %q", c.urls, err, c.want)
		}
	}
	if _, err := NewFailover([]string{"http://a:1", "http://a:1"}, "", nil, nil); err == nil {
		t.Error("NewFailover took a URL twice")
	}
}
