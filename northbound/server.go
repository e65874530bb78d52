// Package northbound serves dvrflow's topology as the Neutron v2.0 REST API on Echo:
// networks, subnets, subnet pools, ports, routers (with interfaces and gateways),
// floating IPs and agents, plus the dvr-hosts extension where hosts register. It is a
// thin adapter over the db.Store service API: Neutron shapes and errors live here, the
// semantics live in the store.
package northbound

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/keystone"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap"
)

// Config holds the API's settings.
type Config struct {
	// NoAuth accepts every request as admin (development only).
	NoAuth bool
	// AdminToken is the static admin token expected in X-Auth-Token.
	AdminToken string
	// ProjectTokens maps a token to the project it acts for.
	ProjectTokens map[string]string
	// Keystone validates every other token (nil: only the static tokens are known). The
	// token's roles decide: admin, member of its project, or reader of its project.
	Keystone *keystone.Validator
	// AdminProject is the project of resources an admin creates without project_id.
	AdminProject string
	// AgentDownTime is how long after its last heartbeat a host's agents stay alive.
	AgentDownTime time.Duration
	// Plans serves the host helpers' namespace plans (nil: an API without a controller).
	Plans PlanSource
	// Middleware wraps every request (e.g. API latency metrics).
	Middleware []echo.MiddlewareFunc
	// Mount adds routes beside the API's: on e they are served without a token, on v2 (the
	// /v2.0 group) behind X-Auth-Token (e.g. the status page and the switch API).
	Mount func(e *echo.Echo, v2 *echo.Group)
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if !c.NoAuth && c.AdminToken == "" && c.Keystone == nil {
		return errors.New("an admin token or Keystone is required unless noauth is set")
	}
	for tok, p := range c.ProjectTokens {
		if tok == "" || p == "" {
			return errors.New("project tokens need a token and a project")
		}
		if tok == c.AdminToken {
			return errors.New("a project token must differ from the admin token")
		}
	}
	if c.AgentDownTime <= 0 {
		return errors.New("agent down time must be positive")
	}
	return nil
}

// DefaultConfig returns a configuration with Neutron's agent_down_time (75 s).
func DefaultConfig() Config {
	return Config{AdminProject: "admin", AgentDownTime: 75 * time.Second}
}

// Server is the REST API.
type Server struct {
	store *db.Store
	cfg   Config
	log   *zap.Logger
	echo  *echo.Echo
	beats beats // plan polls' heartbeats
}

// New builds the API over store.
func New(store *db.Store, cfg Config, log *zap.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("northbound config: %w", err)
	}
	s := &Server{store: store, cfg: cfg, log: log.Named("northbound"), echo: echo.New()}
	s.echo.HideBanner, s.echo.HidePort = true, true
	s.echo.HTTPErrorHandler = s.handleError
	s.routes()
	return s, nil
}

// Echo returns the underlying Echo instance, for adding routes (a status page) that
// are not part of the Neutron API.
func (s *Server) Echo() *echo.Echo { return s.echo }

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

func (s *Server) routes() {
	e := s.echo
	e.Use(s.cfg.Middleware...)
	e.Use(checkBody(maxBulkBody)) // 413 beyond it, before anything is parsed
	e.GET("/", s.versions)
	e.GET("/openapi.json", s.openAPI)
	e.GET("/v2.0/openapi.json", s.openAPI)
	v := e.Group("/v2.0", s.authenticate, s.ifMatch)
	v.GET("", s.resources)
	v.GET("/", s.resources)
	v.GET("/extensions", s.extensions)
	v.GET("/extensions/:alias", s.showExtension)

	v.GET("/networks", s.listNetworks)
	v.POST("/networks", s.createNetwork)
	v.GET("/networks/:id", s.showNetwork)
	v.PUT("/networks/:id", s.updateNetwork)
	v.DELETE("/networks/:id", s.deleteNetwork)

	v.GET("/subnets", s.listSubnets)
	v.POST("/subnets", s.createSubnet)
	v.GET("/subnets/:id", s.showSubnet)
	v.PUT("/subnets/:id", s.updateSubnet)
	v.DELETE("/subnets/:id", s.deleteSubnet)

	v.GET("/subnetpools", s.listSubnetPools)
	v.POST("/subnetpools", s.createSubnetPool)
	v.GET("/subnetpools/:id", s.showSubnetPool)
	v.PUT("/subnetpools/:id", s.updateSubnetPool)
	v.DELETE("/subnetpools/:id", s.deleteSubnetPool)

	v.GET("/ports", s.listPorts)
	v.POST("/ports", s.createPort)
	v.GET("/ports/:id", s.showPort)
	v.PUT("/ports/:id", s.updatePort)
	v.DELETE("/ports/:id", s.deletePort)

	v.GET("/routers", s.listRouters)
	v.POST("/routers", s.createRouter)
	v.GET("/routers/:id", s.showRouter)
	v.PUT("/routers/:id", s.updateRouter)
	v.DELETE("/routers/:id", s.deleteRouter)
	v.PUT("/routers/:id/add_router_interface", s.addRouterInterface)
	v.PUT("/routers/:id/remove_router_interface", s.removeRouterInterface)

	v.GET("/floatingips", s.listFloatingIPs)
	v.POST("/floatingips", s.createFloatingIP)
	v.GET("/floatingips/:id", s.showFloatingIP)
	v.PUT("/floatingips/:id", s.updateFloatingIP)
	v.DELETE("/floatingips/:id", s.deleteFloatingIP)

	v.GET("/security-groups", s.listSecurityGroups)
	v.POST("/security-groups", s.createSecurityGroup)
	v.GET("/security-groups/:id", s.showSecurityGroup)
	v.PUT("/security-groups/:id", s.updateSecurityGroup)
	v.DELETE("/security-groups/:id", s.deleteSecurityGroup)

	v.GET("/security-group-rules", s.listSecurityGroupRules)
	v.POST("/security-group-rules", s.createSecurityGroupRule)
	v.GET("/security-group-rules/:id", s.showSecurityGroupRule)
	v.DELETE("/security-group-rules/:id", s.deleteSecurityGroupRule)

	s.tagRoutes(v)

	v.GET("/agents", s.listAgents)
	v.GET("/agents/:id", s.showAgent)
	v.PUT("/agents/:id", s.updateAgent)
	v.DELETE("/agents/:id", s.deleteAgent)

	v.GET("/quotas", s.listQuotas)
	v.GET("/quotas/project", s.quotaProject)
	v.GET("/quotas/tenant", s.quotaProject)
	v.GET("/quotas/:id", s.showQuotas)
	v.PUT("/quotas/:id", s.updateQuotas)
	v.DELETE("/quotas/:id", s.deleteQuotas)
	v.GET("/quotas/:id/default", s.showDefaultQuotas)
	v.GET("/quotas/:id/details", s.showQuotaDetails)
	v.GET("/quotas/:id/details.json", s.showQuotaDetails)

	v.GET("/dvr-hosts", s.listHosts)
	v.GET("/dvr-hosts/:host", s.showHost)
	v.PUT("/dvr-hosts/:host", s.registerHost)
	v.DELETE("/dvr-hosts/:host", s.deleteHost)
	v.PUT("/dvr-hosts/:host/applied", s.setHostApplied)
	v.GET("/dvr-hosts/:host/plan", s.showPlan)
	v.GET("/dvr-host-macs", s.listHostMACs)
	if s.cfg.Mount != nil {
		s.cfg.Mount(e, v)
	}
}

// deleteOwned answers DELETE /v2.0/{collection}/{id}: the caller must own the resource
// (owned answers its NotFound or Forbidden otherwise), then del removes it: 204.
func deleteOwned[T any](c echo.Context, owned func(echo.Context, string) (T, error), del func(context.Context, string) error) error {
	id := c.Param("id")
	if _, err := owned(c, id); err != nil {
		return err
	}
	if err := del(c.Request().Context(), id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func baseURL(c echo.Context) string {
	return c.Scheme() + "://" + c.Request().Host
}

func (s *Server) versions(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"versions": []any{map[string]any{
		"id": "v2.0", "status": "CURRENT",
		"links": []any{map[string]any{"href": baseURL(c) + "/v2.0/", "rel": "self"}},
	}}})
}

func (s *Server) resources(c echo.Context) error {
	var rs []any
	for _, r := range []struct{ name, coll string }{
		{"network", "networks"}, {"subnet", "subnets"}, {"subnetpool", "subnetpools"}, {"port", "ports"}, {"router", "routers"},
		{"floatingip", "floatingips"}, {"agent", "agents"},
	} {
		rs = append(rs, map[string]any{"name": r.name, "collection": r.coll,
			"links": []any{map[string]any{"href": baseURL(c) + "/v2.0/" + r.coll, "rel": "self"}}})
	}
	return c.JSON(http.StatusOK, map[string]any{"resources": rs})
}
