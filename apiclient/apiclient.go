// Package apiclient is the one client of dvrflow's REST API that the host helper, dvrctl
// and the bench tools share: JSON bodies, the X-Auth-Token, and NeutronError answers as
// *Error. OpenStack clients (gophercloud, the openstack CLI) need none of it.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxBody bounds the answers read (a topology dump of a large cloud fits).
const maxBody = 64 << 20

// Client sends requests to one API endpoint.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// New returns a client of the API at base (e.g. http://10.0.0.1:9696) sending token (if
// not empty); hc nil is a default http.Client.
func New(base, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: strings.TrimSuffix(base, "/"), token: token, http: hc}
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
// long poll with nothing newer): its body is nil. Other statuses are *Error.
func (c *Client) Raw(ctx context.Context, method, path string, in any) (int, json.RawMessage, error) {
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
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
		return 0, nil, fmt.Errorf("%s %s%s: %w", method, c.base, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotModified:
		return resp.StatusCode, nil, nil
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
		return resp.StatusCode, nil, fmt.Errorf("%s %s: %w", method, path, e)
	}
	return resp.StatusCode, body, nil
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
