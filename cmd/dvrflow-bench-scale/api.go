package main

import (
	"net/http"
	"sync/atomic"
)

// countingTransport counts the requests made through it.
type countingTransport struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.next.RoundTrip(r)
}

// retarget sends every request to the API it was last set to (unset: where the request
// goes), so that the harness moves to a surviving controller before it kills one.
type retarget struct {
	next http.RoundTripper
	host atomic.Pointer[string]
}

// set makes requests go to host (host:port).
func (t *retarget) set(host string) { t.host.Store(&host) }

func (t *retarget) RoundTrip(r *http.Request) (*http.Response, error) {
	if h := t.host.Load(); h != nil && *h != r.URL.Host {
		r = r.Clone(r.Context())
		r.URL.Host, r.Host = *h, *h
	}
	return t.next.RoundTrip(r)
}
