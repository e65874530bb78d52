package northbound

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/dvrflow/dvrflow/db"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap"
)

// apiError is a rejection decided by the REST layer itself (auth, malformed bodies).
type apiError struct {
	code    int
	typ     string
	message string
}

func (e *apiError) Error() string { return e.typ + ": " + e.message }

func badBody(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, "HTTPBadRequest", fmt.Sprintf(format, args...)}
}

// invalidInput is Neutron's InvalidInput (400), as its attribute validators raise it.
func invalidInput(format string, args ...any) error {
	return &db.Error{Class: db.ClassInvalid, Type: "InvalidInput", Message: "Invalid input for operation: " + fmt.Sprintf(format, args...)}
}

func forbidden(format string, args ...any) error {
	return &apiError{http.StatusForbidden, "PolicyNotAuthorized", fmt.Sprintf(format, args...)}
}

func classCode(c db.Class) int {
	switch c {
	case db.ClassInvalid:
		return http.StatusBadRequest
	case db.ClassNotFound:
		return http.StatusNotFound
	case db.ClassConflict:
		return http.StatusConflict
	case db.ClassForbidden:
		return http.StatusForbidden
	case db.ClassUnavailable:
		return http.StatusServiceUnavailable
	case db.ClassPreconditionFailed:
		return http.StatusPreconditionFailed
	}
	return http.StatusInternalServerError
}

// handleError writes every error as {"NeutronError": {"type", "message", "detail"}}.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, typ, msg := http.StatusInternalServerError, "InternalServerError", "Request Failed: internal server error while processing your request."
	var ae *apiError
	var he *echo.HTTPError
	if de, ok := db.AsError(err); ok {
		code, typ, msg = classCode(de.Class), de.Type, de.Message
	} else if errors.As(err, &ae) {
		code, typ, msg = ae.code, ae.typ, ae.message
	} else if errors.As(err, &he) {
		code = he.Code
		typ = "HTTP" + http.StatusText(code)
		msg = fmt.Sprint(he.Message)
		switch code {
		case http.StatusNotFound:
			typ, msg = "HTTPNotFound", "The resource could not be found."
			if allow := routeMethods(s.echo).allowed(c.Request().URL.Path); len(allow) > 0 && !slices.Contains(allow, c.Request().Method) {
				code, typ, msg = http.StatusMethodNotAllowed, "HTTPMethodNotAllowed", "The method is not allowed for the requested URL."
				c.Response().Header().Set("Allow", strings.Join(allow, ", "))
			}
		case http.StatusMethodNotAllowed:
			typ = "HTTPMethodNotAllowed"
		}
	} else if db.IsUnavailable(err) {
		// PostgreSQL is down or restarting: the pool reconnects by itself; tell the client
		// to retry rather than that it failed.
		code, typ, msg = http.StatusServiceUnavailable, "ServiceUnavailable",
			"The database is unavailable; retry the request."
		c.Response().Header().Set("Retry-After", "1")
		s.log.Warn("request failed: database unavailable", zap.String("method", c.Request().Method),
			zap.String("path", c.Request().URL.Path), zap.Error(err))
	} else {
		s.log.Error("request failed", zap.String("method", c.Request().Method),
			zap.String("path", c.Request().URL.Path), zap.Error(err))
	}
	if code >= 400 && code < 500 {
		cl := callerOf(c)
		s.log.Debug("request rejected", zap.String("method", c.Request().Method),
			zap.String("path", c.Request().URL.Path), zap.Int("code", code), zap.String("type", typ),
			zap.String("project", cl.project), zap.String("user", cl.user), zap.Strings("roles", cl.roles))
	}
	body := map[string]any{"NeutronError": map[string]any{"type": typ, "message": msg, "detail": ""}}
	var werr error
	if c.Request().Method == http.MethodHead {
		werr = c.NoContent(code)
	} else {
		werr = c.JSON(code, body)
	}
	if werr != nil {
		s.log.Warn("write error response", zap.Error(werr))
	}
}
