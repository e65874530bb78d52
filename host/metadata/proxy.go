package metadata

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"go.uber.org/zap"
)

// Explanations Neutron's metadata agent gives with its own error answers.
const (
	msgUnknown     = "An unknown error has occurred. Please try your request again."
	msgUnavailable = "The remote metadata server is temporarily unavailable. Please try again later."
	msgNova500     = "Remote metadata server experienced an internal server error."
)

// sign is the X-Instance-ID-Signature of instanceID: hex HMAC-SHA256 of it under the
// shared secret, as Neutron signs and Nova checks.
func sign(secret, instanceID string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(instanceID))
	return hex.EncodeToString(m.Sum(nil))
}

// ServeHTTP answers one request of a VM: 404 unless the client's address is an
// instance's, else Nova's answer to the request signed for that instance.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		s.log.Warn("metadata request from an unparsable address", zap.String("remote", r.RemoteAddr), zap.Error(err))
		writeError(w, http.StatusNotFound, "")
		return
	}
	ip := ap.Addr().Unmap()
	in, ok := s.instance(ip)
	if !ok {
		s.log.Debug("metadata request from an address of no instance", zap.Stringer("ip", ip), zap.String("path", r.URL.Path))
		writeError(w, http.StatusNotFound, "")
		return
	}
	log := s.log.With(zap.String("instance", in.DeviceID), zap.Stringer("ip", ip))
	ctx, cancel := context.WithTimeout(r.Context(), s.p.cfg.NovaTimeout)
	defer cancel()
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(s.p.nova)
			// Neutron's headers and no others: a VM cannot forge any of them.
			pr.Out.Header = http.Header{}
			pr.Out.Header.Set("X-Forwarded-For", ip.String())
			pr.Out.Header.Set("X-Instance-ID", in.DeviceID)
			pr.Out.Header.Set("X-Tenant-ID", in.ProjectID)
			pr.Out.Header.Set("X-Instance-ID-Signature", sign(s.p.cfg.Secret, in.DeviceID))
		},
		Transport:      s.p.cfg.Transport,
		ModifyResponse: func(resp *http.Response) error { return asNeutron(resp, log) },
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			switch {
			case r.Context().Err() != nil && errors.Is(err, context.Canceled):
				log.Debug("metadata request abandoned by the client", zap.String("path", r.URL.Path))
				writeError(w, http.StatusInternalServerError, msgUnknown)
			case unavailable(err):
				log.Warn("Nova's metadata API unreachable", zap.String("path", r.URL.Path), zap.Error(err))
				writeError(w, http.StatusServiceUnavailable, msgUnavailable)
			default:
				log.Warn("metadata request failed", zap.String("path", r.URL.Path), zap.Error(err))
				writeError(w, http.StatusInternalServerError, msgUnknown)
			}
		},
	}
	rp.ServeHTTP(w, r.WithContext(ctx))
	log.Debug("metadata request proxied", zap.String("method", r.Method), zap.String("path", r.URL.Path))
}

// asNeutron makes Nova's response what Neutron's agent answers: a 200 passes with its
// body and content type only; 400, 403, 404, 409, 500, 502, 503 and 504 pass as that
// status with the agent's own body; any other status is an error (500).
func asNeutron(resp *http.Response, log *zap.Logger) error {
	code := resp.StatusCode
	switch code {
	case http.StatusOK:
		h := http.Header{}
		for _, k := range []string{"Content-Type", "Content-Length"} {
			if v := resp.Header.Get(k); v != "" {
				h.Set(k, v)
			}
		}
		resp.Header = h
		return nil
	case http.StatusForbidden:
		log.Warn("Nova's metadata API answered 403 Forbidden: the shared secrets probably differ")
	case http.StatusInternalServerError:
		log.Warn(msgNova500)
	case http.StatusBadRequest, http.StatusNotFound, http.StatusConflict,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
	default:
		return fmt.Errorf("unexpected response code: %d", code)
	}
	// Drain a little so the connection to Nova can be reused, then answer our own body.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	explanation := ""
	if code == http.StatusInternalServerError {
		explanation = msgNova500
	}
	body := errorBody(code, explanation)
	resp.Body = io.NopCloser(strings.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header = http.Header{"Content-Type": {"text/plain; charset=UTF-8"},
		"Content-Length": {strconv.Itoa(len(body))}}
	return nil
}

// unavailable reports whether err means Nova could not be reached or dropped the
// connection: Neutron's ConnectionError, answered 503.
func unavailable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func errorBody(code int, explanation string) string {
	b := strconv.Itoa(code) + " " + http.StatusText(code) + "\n"
	if explanation != "" {
		b += "\n" + explanation + "\n"
	}
	return b
}

func writeError(w http.ResponseWriter, code int, explanation string) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, errorBody(code, explanation))
}
