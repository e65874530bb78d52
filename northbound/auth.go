package northbound

import (
	"crypto/subtle"
	"net/http"

	"github.com/labstack/echo/v4"
)

// caller is who a request acts for.
type caller struct {
	admin   bool
	project string
}

const callerKey = "dvrflow.caller"

func callerOf(c echo.Context) caller {
	cl, _ := c.Get(callerKey).(caller)
	return cl
}

func tokenEqual(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// authenticate maps X-Auth-Token to a caller: the admin token, a project token, or
// (with NoAuth) admin for everyone.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.NoAuth {
			c.Set(callerKey, caller{admin: true, project: s.cfg.AdminProject})
			return next(c)
		}
		tok := c.Request().Header.Get("X-Auth-Token")
		if tok != "" && tokenEqual(tok, s.cfg.AdminToken) {
			c.Set(callerKey, caller{admin: true, project: s.cfg.AdminProject})
			return next(c)
		}
		for t, p := range s.cfg.ProjectTokens {
			if tok != "" && tokenEqual(tok, t) {
				c.Set(callerKey, caller{project: p})
				return next(c)
			}
		}
		c.Response().Header().Set("WWW-Authenticate", `Keystone uri="none"`)
		return &apiError{http.StatusUnauthorized, "NotAuthenticated", "Authentication required: a valid X-Auth-Token is needed."}
	}
}

// requireAdmin rejects project callers.
func requireAdmin(c echo.Context) error {
	if !callerOf(c).admin {
		return forbidden("rule:admin_only is disallowed by policy")
	}
	return nil
}

// sees reports whether the caller may see a resource of project (visibleToAll for shared
// and external networks).
func (cl caller) sees(project string, visibleToAll bool) bool {
	return cl.admin || visibleToAll || project == cl.project
}

// owns reports whether the caller may change a resource of project.
func (cl caller) owns(project string) bool { return cl.admin || project == cl.project }
