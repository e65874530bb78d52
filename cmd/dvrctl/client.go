package main

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

// client speaks to the dvrflow API.
type client struct {
	base  string
	token string
	http  *http.Client
}

func newClient(api, token string) *client {
	return &client{base: strings.TrimSuffix(api, "/"), token: token, http: &http.Client{}}
}

// apiError is an error answer of the API (a NeutronError, or a bare status).
type apiError struct {
	Code    int
	Type    string
	Message string
}

func (e *apiError) Error() string {
	if e.Type == "" {
		return fmt.Sprintf("%d %s", e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("%s (%d): %s", e.Type, e.Code, e.Message)
}

func isNotFound(err error) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Code == http.StatusNotFound
}

// errNotModified is the plan long poll's "nothing newer".
var errNotModified = errors.New("not modified")

// get fetches path (with query q) and returns the raw JSON body.
func (c *client) get(ctx context.Context, path string, q url.Values) (json.RawMessage, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("X-Auth-Token", c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("GET %s%s: %w", c.base, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", path, err)
	}
	if resp.StatusCode == http.StatusNotModified {
		return nil, errNotModified
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := &apiError{Code: resp.StatusCode}
		var ne struct {
			NeutronError struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"NeutronError"`
		}
		if json.Unmarshal(body, &ne) == nil && ne.NeutronError.Type != "" {
			ae.Type, ae.Message = ne.NeutronError.Type, ne.NeutronError.Message
		}
		return nil, fmt.Errorf("GET %s: %w", path, ae)
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("GET %s: answer is not JSON (%d bytes)", path, len(body))
	}
	return body, nil
}

// getInto fetches path and decodes the answer into out; it returns the raw answer too.
func (c *client) getInto(ctx context.Context, path string, q url.Values, out any) (json.RawMessage, error) {
	raw, err := c.get(ctx, path, q)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("GET %s: decode answer: %w", path, err)
	}
	return raw, nil
}

// writeJSON prints v (raw JSON or any value) indented.
func writeJSON(w io.Writer, v any) error {
	var raw []byte
	switch x := v.(type) {
	case json.RawMessage:
		var buf bytes.Buffer
		if err := json.Indent(&buf, x, "", "  "); err != nil {
			return fmt.Errorf("indent JSON: %w", err)
		}
		raw = buf.Bytes()
	default:
		var err error
		if raw, err = json.MarshalIndent(v, "", "  "); err != nil {
			return fmt.Errorf("encode JSON: %w", err)
		}
	}
	if _, err := w.Write(append(raw, '\n')); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
