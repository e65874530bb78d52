package northbound

import (
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestPolicyAction checks the rule names of a reader's refusals against Neutron's.
func TestPolicyAction(t *testing.T) {
	e := echo.New()
	for _, tc := range []struct{ method, route, want string }{
		{"POST", "/v2.0/networks", "create_network"},
		{"PUT", "/v2.0/ports/:id", "update_port"},
		{"DELETE", "/v2.0/floatingips/:id", "delete_floatingip"},
		{"POST", "/v2.0/security-group-rules", "create_security_group_rule"},
		{"PUT", "/v2.0/security-groups/:id", "update_security_group"},
		{"PUT", "/v2.0/routers/:id/add_router_interface", "add_router_interface"},
		{"GET", "/v2.0/subnets/:id", "get_subnet"},
	} {
		c := e.NewContext(httptest.NewRequest(tc.method, "/", nil), httptest.NewRecorder())
		c.SetPath(tc.route)
		if got := policyAction(c); got != tc.want {
			t.Errorf("%s %s: %q, want %q", tc.method, tc.route, got, tc.want)
		}
		if got, want := isWrite(tc.method), tc.method != "GET"; got != want {
			t.Errorf("isWrite(%s) = %v", tc.method, got)
		}
	}
}
