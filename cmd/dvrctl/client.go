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

	"github.com/dvrflow/dvrflow/apiclient"
)

// client speaks to the dvrflow API.
type client struct{ api *apiclient.Client }

// newClient returns a client of the API at apis[0], or of the first of several that
// answers (validate checked them).
func newClient(apis []string, token string) *client {
	if len(apis) > 1 {
		if c, err := apiclient.NewFailover(apis, token, nil, nil); err == nil {
			return &client{api: c}
		}
	}
	return &client{api: apiclient.New(apis[0], token, nil)}
}

func isNotFound(err error) bool { return apiclient.IsNotFound(err) }

// errNotModified is the plan long poll's "nothing newer".
var errNotModified = errors.New("not modified")

// get fetches path (with query q) and returns the raw JSON body.
func (c *client) get(ctx context.Context, path string, q url.Values) (json.RawMessage, error) {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	code, body, err := c.api.Raw(ctx, http.MethodGet, path, nil)
	switch {
	case err != nil:
		return nil, err
	case code == http.StatusNotModified:
		return nil, errNotModified
	case !json.Valid(body):
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
