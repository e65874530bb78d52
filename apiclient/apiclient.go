// Package apiclient is the one client of dvrflow's REST API that the host helper, dvrctl
// and the bench tools share: JSON bodies, the X-Auth-Token, and NeutronError answers as
// *Error. OpenStack clients (gophercloud, the openstack CLI) need none of it.
//
// # Several controllers
//
// Several dvrflowd may serve one database, each the whole API. A Client made by NewFailover
// knows all their URLs and sends each request to the URL that last worked (it sticks to
// it: no round robin). When that URL fails, the request is sent again to the next URL, and
// so on once around the list, if and only if sending it again is safe:
//
//   - GET, HEAD, PUT, DELETE and OPTIONS (idempotent) are sent again after any failure to
//     connect, a timeout of the http.Client, a connection broken before the whole answer
//     was read, or an answer 502, 503 or 504;
//   - POST, PATCH and other methods are sent again only when no connection was made at
//     all (connection refused, no route, a dial timeout, a connection reset during the
//     TLS handshake): the request cannot have reached that server. A POST that reached a
//     server that then failed or answered 502, 503 or 504 is not sent again, since it
//     may have been applied; its error is returned.
//
// The caller's context ending stops the request at once and is never retried; a deadline
// of the caller's context that expires while a URL is silent (a long poll to a server
// that died without closing its connections) makes the next request start at the next
// URL. Each failed URL is logged with the error; when every URL failed, the error names
// each URL with its failure. A Client of a single URL (New) sends each request once.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"

	"go.uber.org/zap"
)

// maxBody bounds the answers read (a topology dump of a large cloud fits).
const maxBody = 64 << 20

// Client sends requests to one API endpoint, or to the first that works of several
// (NewFailover). It is safe for concurrent use.
type Client struct {
	bases []string
	cur   atomic.Int64 // index in bases of the URL that last worked
	token string
	http  *http.Client
	log   *zap.Logger
}

// New returns a client of the API at base (e.g. http://10.0.0.1:9696) sending token (if
// not empty); hc nil is a default http.Client.
func New(base, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{bases: []string{strings.TrimSuffix(base, "/")}, token: token, http: hc, log: zap.NewNop()}
}

// Error is an answer outside 2xx and 304: a NeutronError (Type and Message set), or a bare
// status with its body.
type Error struct {
	Code    int
	Type    string
	Message string
	Body    string // when the answer is not a NeutronError
}

func (e *Error) Error() string {
	switch {
	case e.Type != "":
		return fmt.Sprintf("%s (%d): %s", e.Type, e.Code, e.Message)
	case e.Body != "":
		return fmt.Sprintf("%d %s: %s", e.Code, http.StatusText(e.Code), e.Body)
	}
	return fmt.Sprintf("%d %s", e.Code, http.StatusText(e.Code))
}

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == http.StatusNotFound
}

// Raw sends method path (which may carry a query) with in encoded as JSON (nil: no body)
// and returns the status and the body of a 2xx answer. 304 Not Modified is no error (a
// long poll with nothing newer): its body is nil. Other statuses are *Error. With several
// URLs, a failed request is sent to the next URL when that is safe (see the package doc).
func (c *Client) Raw(ctx context.Context, method, path string, in any) (int, json.RawMessage, error) {
	var b []byte
	if in != nil {
		var err error
		if b, err = json.Marshal(in); err != nil {
			return 0, nil, fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
	}
	if len(c.bases) == 1 {
		a := c.send(ctx, c.bases[0], method, path, b, in != nil)
		return a.code, a.body, a.err
	}
	start := c.cur.Load()
	var failed []error
	var urls []string
	for i := range int64(len(c.bases)) {
		n := (start + i) % int64(len(c.bases))
		base := c.bases[n]
		a := c.send(ctx, base, method, path, b, in != nil)
		if !a.failed() {
			if n != start && c.cur.CompareAndSwap(start, n) {
				c.log.Info("API URL now in use", zap.String("url", base), zap.Strings("failed", urls))
			}
			return a.code, a.body, a.err
		}
		if errors.Is(ctx.Err(), context.Canceled) {
			return a.code, nil, a.err // the caller gave up: no URL is to blame
		}
		failed, urls = append(failed, fmt.Errorf("%s: %w", base, a.cause)), append(urls, base)
		if ctx.Err() != nil || !a.retryable(method) {
			// The request ends on a failed URL: the next request starts at the next URL.
			c.cur.CompareAndSwap(start, (n+1)%int64(len(c.bases)))
			c.log.Warn("API request failed, not sent again", zap.String("url", base), zap.String("method", method),
				zap.String("path", path), zap.Error(a.cause))
			return a.code, nil, a.err
		}
		c.log.Warn("API URL failed, trying the next", zap.String("url", base), zap.String("method", method),
			zap.String("path", path), zap.Error(a.cause))
	}
	return 0, nil, fmt.Errorf("%s %s: every API URL failed: %w", method, path, failures(failed))
}

// attempt is the outcome of sending a request to one URL.
type attempt struct {
	code      int
	body      json.RawMessage
	err       error // as Raw returns it
	cause     error // err without the method and path: nil on success
	transport bool  // no whole answer came (failed to connect or to send, broken, timed out)
	connected bool  // a connection was made: the request may have reached the server
}

// send sends one request to base.
func (c *Client) send(ctx context.Context, base, method, path string, b []byte, hasBody bool) attempt {
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(b)
	}
	var connected atomic.Bool
	tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { connected.Store(true) }})
	req, err := http.NewRequestWithContext(tctx, method, base+path, rd)
	if err != nil {
		return attempt{err: fmt.Errorf("%s %s: %w", method, path, err), cause: err}
	}
	req.Header.Set("Accept", "application/json")
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("X-Auth-Token", c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return attempt{err: fmt.Errorf("%s %s%s: %w", method, base, path, err), cause: err, transport: true, connected: connected.Load()}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		err = fmt.Errorf("read body: %w", err)
		return attempt{code: resp.StatusCode, err: fmt.Errorf("%s %s: %w", method, path, err), cause: err, transport: true, connected: true}
	}
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return attempt{code: resp.StatusCode}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		e := &Error{Code: resp.StatusCode}
		var ne struct {
			NeutronError struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"NeutronError"`
		}
		if json.Unmarshal(body, &ne) == nil && ne.NeutronError.Type != "" {
			e.Type, e.Message = ne.NeutronError.Type, ne.NeutronError.Message
		} else {
			e.Body = string(bytes.TrimSpace(body))
		}
		return attempt{code: resp.StatusCode, err: fmt.Errorf("%s %s: %w", method, path, e), cause: e, connected: true}
	}
	return attempt{code: resp.StatusCode, body: body}
}

// Do is Raw decoding a 2xx answer with a body into out (nil: not decoded).
func (c *Client) Do(ctx context.Context, method, path string, in, out any) (int, error) {
	code, body, err := c.Raw(ctx, method, path, in)
	if err != nil || out == nil || len(body) == 0 || code == http.StatusNoContent {
		return code, err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return code, fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return code, nil
}

// Create posts {kind: body} to /v2.0/{collection} and returns the new resource's id; any
// answer but 201 Created is an error.
func (c *Client) Create(ctx context.Context, collection, kind string, body any) (string, error) {
	var res map[string]struct {
		ID string `json:"id"`
	}
	code, err := c.Do(ctx, http.MethodPost, "/v2.0/"+collection, map[string]any{kind: body}, &res)
	if err != nil {
		return "", err
	}
	if code != http.StatusCreated {
		return "", fmt.Errorf("POST %s: status %d, want 201", collection, code)
	}
	return res[kind].ID, nil
}
