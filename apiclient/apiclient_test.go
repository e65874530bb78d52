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
