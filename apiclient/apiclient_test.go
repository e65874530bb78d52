package apiclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Auth-Token") != "tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(b)
		case "/poll":
			w.WriteHeader(http.StatusNotModified)
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"NeutronError": {"type": "NetworkNotFound", "message": "Network x could not be found.", "detail": ""}}`))
		default:
			w.WriteHeader(http.StatusBadGateway)
			_, _ = w.Write([]byte("upstream down\n"))
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := New(srv.URL+"/", "tok", nil)
	var out struct{ A int }
	if code, err := c.Do(ctx, http.MethodPost, "/echo", map[string]int{"A": 7}, &out); err != nil || code != 200 || out.A != 7 {
		t.Fatalf("echo: %d %v %+v", code, err, out)
	}
	if code, err := c.Do(ctx, http.MethodGet, "/poll", nil, &out); err != nil || code != http.StatusNotModified {
		t.Fatalf("304: %d %v", code, err)
	}
	_, err := c.Do(ctx, http.MethodGet, "/missing", nil, nil)
	var e *Error
	if !IsNotFound(err) || !errors.As(err, &e) || e.Type != "NetworkNotFound" ||
		err.Error() != "GET /missing: NetworkNotFound (404): Network x could not be found." {
		t.Fatalf("404: %v", err)
	}
	if _, err := c.Do(ctx, http.MethodGet, "/other", nil, nil); err == nil || err.Error() != "GET /other: 502 Bad Gateway: upstream down" {
		t.Fatalf("502: %v", err)
	}
	if _, err := New(srv.URL, "", nil).Do(ctx, http.MethodGet, "/echo", nil, nil); !errors.As(err, &e) || e.Code != 401 {
		t.Fatalf("without a token: %v", err)
	}
}

func TestCreate(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v2.0/networks" && string(b) == `{"network":{"name":"n"}}`:
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"network": {"id": "net-1", "name": "n"}}`))
		case r.URL.Path == "/v2.0/routers":
			_, _ = w.Write([]byte(`{"router": {"id": "r-1"}}`)) // 200, not 201
		default:
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"NeutronError": {"type": "HTTPBadRequest", "message": "bad", "detail": ""}}`))
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := New(srv.URL, "tok", nil)
	if id, err := c.Create(ctx, "networks", "network", map[string]any{"name": "n"}); err != nil || id != "net-1" {
		t.Fatalf("create: %q %v", id, err)
	}
	if _, err := c.Create(ctx, "routers", "router", map[string]any{}); err == nil || err.Error() != "POST routers: status 200, want 201" {
		t.Fatalf("200: %v", err)
	}
	if _, err := c.Create(ctx, "networks", "network", map[string]any{"name": "x"}); err == nil {
		t.Fatal("400 accepted")
	}
}
