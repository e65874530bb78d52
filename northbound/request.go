package northbound

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
)

// checkBody reads the request body once, answers 413 when it is over limit, 400 when it
// is not UTF-8 or a JSON string in it holds a NUL character (PostgreSQL cannot store
// one), and hands the handlers the bytes it read.
func checkBody(limit int64) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if r.Body == nil || r.Body == http.NoBody {
				return next(c)
			}
			if r.ContentLength > limit {
				return tooLarge("Request is too large: the body is limited to %d bytes.", limit)
			}
			raw, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
			if err != nil {
				return badBody("Unable to read request body: %v", err)
			}
			if int64(len(raw)) > limit {
				return tooLarge("Request is too large: the body is limited to %d bytes.", limit)
			}
			if !utf8.Valid(raw) {
				return badBody("Malformed request body: not UTF-8")
			}
			if bytes.Contains(raw, []byte(`\u0000`)) && hasNUL(raw) {
				return &apiError{http.StatusBadRequest, "InvalidInput", "Invalid input for operation: a string holds a NUL character."}
			}
			r.Body = io.NopCloser(bytes.NewReader(raw))
			return next(c)
		}
	}
}

// hasNUL reports whether a JSON document holds a string (key or value) with a NUL.
func hasNUL(raw []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false // malformed: the handler's decoding answers it
		}
		if s, ok := tok.(string); ok && strings.IndexByte(s, 0) >= 0 {
			return true
		}
	}
}

// methods maps the route templates of the API (":x" one path segment) to the methods
// they serve, so that a known path asked with another method is 405, not 404.
type methods map[string][]string

func routeMethods(e *echo.Echo) methods {
	m := methods{}
	for _, r := range e.Routes() {
		if strings.HasSuffix(r.Path, "*") || r.Method == echo.RouteNotFound {
			continue
		}
		if !slices.Contains(m[r.Path], r.Method) {
			m[r.Path] = append(m[r.Path], r.Method)
		}
	}
	return m
}

// allowed returns the methods path is served with (nil when no route has it).
func (m methods) allowed(path string) []string {
	segs := strings.Split(strings.TrimSuffix(path, "/"), "/")
	var out []string
	for tmpl, ms := range m {
		ts := strings.Split(strings.TrimSuffix(tmpl, "/"), "/")
		if len(ts) != len(segs) {
			continue
		}
		match := true
		for i := range ts {
			if !strings.HasPrefix(ts[i], ":") && ts[i] != segs[i] {
				match = false
				break
			}
		}
		if match {
			out = append(out, ms...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
