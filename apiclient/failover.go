package apiclient

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"
)

// NewFailover returns a client of the API served at every one of bases (checked by
// CheckURLs), starting with the first and failing over as the package doc says. It logs
// each failed URL to log (nil: no logs).
func NewFailover(bases []string, token string, hc *http.Client, log *zap.Logger) (*Client, error) {
	if err := CheckURLs(bases); err != nil {
		return nil, err
	}
	c := New(bases[0], token, hc)
	c.bases = make([]string, len(bases))
	for i, b := range bases {
		c.bases[i] = strings.TrimSuffix(b, "/")
	}
	if log != nil {
		c.log = log.Named("apiclient")
	}
	return c, nil
}

// CheckURLs reports what is wrong with a list of API base URLs: none, one that is not
// http(s)://host:port (a trailing slash is allowed, nothing else after the port), or the
// same URL twice.
func CheckURLs(bases []string) error {
	if len(bases) == 0 {
		return errors.New("no API URL")
	}
	seen := map[string]bool{}
	for _, b := range bases {
		u, err := url.Parse(b)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Port() == "" ||
			(u.Path != "" && u.Path != "/") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("API URL %q: want http(s)://host:port", b)
		}
		key := u.Scheme + "://" + strings.ToLower(u.Host)
		if seen[key] {
			return fmt.Errorf("API URL %q given twice", b)
		}
		seen[key] = true
	}
	return nil
}

// URL returns the base URL the next request goes to first: the one that last worked.
func (c *Client) URL() string { return c.bases[c.cur.Load()] }

// failures are the failures of one request at each URL it was sent to.
type failures []error

func (f failures) Error() string {
	s := make([]string, len(f))
	for i, e := range f {
		s[i] = e.Error()
	}
	return strings.Join(s, "; ")
}

func (f failures) Unwrap() []error { return f }

// failed reports whether the URL failed: no answer, or 502, 503 or 504.
func (a attempt) failed() bool {
	switch a.code {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return a.transport
}

// retryable reports whether a request of method that failed so may be sent again.
func (a attempt) retryable(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return true
	}
	return a.transport && (!a.connected || isDial(a.cause))
}

// isDial reports whether err is a failure to connect. The transport sends a POST again
// on a new connection only when nothing of it was written on the old one, so a POST
// ending on a dial error was never sent.
func isDial(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}
