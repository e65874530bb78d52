package northbound

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/dvrflow/dvrflow/keystone"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap"
)

// caller is who a request acts for.
type caller struct {
	admin   bool
	project string
	// user and roles are the Keystone token's (empty for the static tokens).
	user  string
	roles []string
	// readOnly is set for a token whose only role in its project is reader: Neutron's
	// default policies let it read what its project sees and change nothing.
	readOnly bool
}

const callerKey = "dvrflow.caller"

func callerOf(c echo.Context) caller {
	cl, _ := c.Get(callerKey).(caller)
	return cl
}

func tokenEqual(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// authenticate maps X-Auth-Token to a caller: the admin token, a project token, a token
// Keystone validates (with Keystone configured), or (with NoAuth) admin for everyone.
// It then refuses every write of a read-only caller, as Neutron's policies do: 404 for a
// resource it cannot see, 403 otherwise (refuseReader).
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		cl, err := s.callerFor(c)
		if err != nil {
			return err
		}
		c.Set(callerKey, cl)
		if cl.readOnly && isWrite(c.Request().Method) {
			return s.refuseReader(c)
		}
		return next(c)
	}
}

func (s *Server) callerFor(c echo.Context) (caller, error) {
	if s.cfg.NoAuth {
		return caller{admin: true, project: s.cfg.AdminProject}, nil
	}
	tok := c.Request().Header.Get("X-Auth-Token")
	if tok != "" && s.cfg.AdminToken != "" && tokenEqual(tok, s.cfg.AdminToken) {
		return caller{admin: true, project: s.cfg.AdminProject}, nil
	}
	for t, p := range s.cfg.ProjectTokens {
		if tok != "" && tokenEqual(tok, t) {
			return caller{project: p}, nil
		}
	}
	uri := "none"
	if s.cfg.Keystone != nil {
		uri = s.cfg.Keystone.AuthURL()
		if tok != "" {
			return s.keystoneCaller(c, tok)
		}
	}
	c.Response().Header().Set("WWW-Authenticate", `Keystone uri="`+uri+`"`)
	return caller{}, errNotAuthenticated
}

var errNotAuthenticated = &apiError{http.StatusUnauthorized, "NotAuthenticated", "Authentication required: a valid X-Auth-Token is needed."}

// keystoneCaller validates tok with Keystone: the token's roles decide, as Neutron's
// default policies (neutron/conf/policies/base.py) read them: admin is admin; member (or
// the older _member_) acts in its project; reader alone reads in its project. A token
// with none of them, or a non-admin token without a project, may do nothing.
func (s *Server) keystoneCaller(c echo.Context, tok string) (caller, error) {
	id, err := s.cfg.Keystone.Validate(c.Request().Context(), tok)
	switch {
	case errors.Is(err, keystone.ErrInvalidToken):
		c.Response().Header().Set("WWW-Authenticate", `Keystone uri="`+s.cfg.Keystone.AuthURL()+`"`)
		return caller{}, errNotAuthenticated
	case err != nil:
		s.log.Warn("keystone unavailable", zap.Error(err))
		return caller{}, &apiError{http.StatusServiceUnavailable, "ServiceUnavailable",
			"The authentication service is unavailable; retry the request."}
	}
	cl := caller{project: id.ProjectID, user: id.UserID, roles: id.Roles}
	switch {
	case id.HasRole("admin"):
		cl.admin = true
		if !id.ProjectScoped {
			cl.project = s.cfg.AdminProject
		}
		return cl, nil
	case !id.ProjectScoped:
		return caller{}, forbidden("a project-scoped token is required")
	case id.HasRole("member") || id.HasRole("_member_"):
		return cl, nil
	case id.HasRole("reader"):
		cl.readOnly = true
		return cl, nil
	}
	return caller{}, forbidden("rule:%s is disallowed by policy", policyAction(c))
}

func isWrite(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// policyAction names the Neutron policy rule of a request as it appears in Neutron's
// refusals: create_network, update_port, delete_router, add_router_interface, get_subnet.
func policyAction(c echo.Context) string {
	if isTagRoute(c) {
		return tagPolicyAction(c) // update_networks_tags
	}
	parts := routeParts(c)
	if len(parts) == 3 && strings.HasPrefix(parts[1], ":") {
		return parts[2] // add_router_interface, remove_router_interface
	}
	resource := strings.ReplaceAll(strings.TrimSuffix(parts[0], "s"), "-", "_")
	verb := map[string]string{http.MethodPost: "create", http.MethodPut: "update", http.MethodDelete: "delete"}[c.Request().Method]
	if verb == "" {
		verb = "get"
	}
	return verb + "_" + resource
}

// collection is the collection of the request's route: networks, security-group-rules.
func collection(c echo.Context) string { return routeParts(c)[0] }

// routeParts splits the request's route template below /v2.0.
func routeParts(c echo.Context) []string {
	return strings.Split(strings.Trim(strings.TrimPrefix(c.Path(), "/v2.0"), "/"), "/")
}

// requireAdmin rejects project callers.
func requireAdmin(c echo.Context) error {
	if !callerOf(c).admin {
		return forbidden("rule:admin_only is disallowed by policy")
	}
	return nil
}

// AdminOnly refuses a caller who is not admin (403 PolicyNotAuthorized, as Neutron's
// rule:admin_only), for routes mounted on the /v2.0 group (Config.Mount).
func AdminOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := requireAdmin(c); err != nil {
			return err
		}
		return next(c)
	}
}

// sees reports whether the caller may see a resource of project (visibleToAll for shared
// and external networks).
func (cl caller) sees(project string, visibleToAll bool) bool {
	return cl.admin || visibleToAll || project == cl.project
}

// owns reports whether the caller may change a resource of project.
func (cl caller) owns(project string) bool { return cl.admin || project == cl.project }
