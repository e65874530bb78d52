package northbound

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/labstack/echo/v4"
)

func (s *Server) ownedRouter(c echo.Context, id string) (*topology.Router, error) {
	r, err := s.store.GetRouter(c.Request().Context(), id)
	if err != nil {
		return nil, err
	}
	if !callerOf(c).owns(r.ProjectID) {
		return nil, notFound("RouterNotFound", "Router %s could not be found", id)
	}
	return r, nil
}

func (s *Server) listRouters(c echo.Context) error {
	rs, err := s.store.ListRouters(c.Request().Context())
	if err != nil {
		return err
	}
	cl := callerOf(c)
	items := make([]map[string]any, 0, len(rs))
	for i := range rs {
		if cl.owns(rs[i].ProjectID) {
			items = append(items, routerShape(&rs[i]))
		}
	}
	return respondList(c, "routers", items)
}

func (s *Server) showRouter(c echo.Context) error {
	r, err := s.ownedRouter(c, c.Param("id"))
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "router", routerShape(r))
}

type gatewayBody struct {
	NetworkID        string        `json:"network_id"`
	EnableSNAT       *bool         `json:"enable_snat"`
	ExternalFixedIPs []fixedIPBody `json:"external_fixed_ips"`
}

func (s *Server) routerSpec(c echo.Context, b *body) (db.RouterSpec, error) {
	var spec db.RouterSpec
	var err error
	cl := callerOf(c)
	if spec.Name, err = b.str("name"); err != nil {
		return spec, err
	}
	if spec.Description, err = b.str("description"); err != nil {
		return spec, err
	}
	if spec.AdminStateUp, err = b.boolean("admin_state_up"); err != nil {
		return spec, err
	}
	if spec.Distributed, err = b.boolean("distributed"); err != nil {
		return spec, err
	}
	if r, ok := b.fields["routes"]; ok {
		var routes []any
		if json.Unmarshal(r, &routes) != nil || len(routes) > 0 {
			return spec, badBody("Invalid input for routes. Reason: extra routes are not supported by dvrflow.")
		}
	}
	if r, ok := b.fields["external_gateway_info"]; ok {
		var gs *db.GatewaySpec
		if !isNull(r) && !bytes.Equal(bytes.TrimSpace(r), []byte("{}")) {
			var gb gatewayBody
			if _, err := b.decode("external_gateway_info", &gb); err != nil {
				return spec, err
			}
			if gb.NetworkID == "" {
				return spec, badBody("Invalid input for external_gateway_info. Reason: network_id is required.")
			}
			if !isUUID(gb.NetworkID) {
				return spec, notUUID("external_gateway_info", gb.NetworkID)
			}
			if _, err := s.visibleNetwork(c, gb.NetworkID); err != nil {
				return spec, err
			}
			gs = &db.GatewaySpec{NetworkID: gb.NetworkID, EnableSNAT: gb.EnableSNAT}
			// Neutron's default policies: only an admin chooses SNAT or the gateway's addresses.
			if gb.EnableSNAT != nil && !cl.admin {
				return spec, forbidden("(rule:%[1]s_router and rule:%[1]s_router:external_gateway_info:enable_snat) is disallowed by policy", verb(c))
			}
			if gb.ExternalFixedIPs != nil {
				if !cl.admin {
					return spec, forbidden("(rule:%[1]s_router and rule:%[1]s_router:external_gateway_info:external_fixed_ips) is disallowed by policy", verb(c))
				}
				if gs.ExternalFixedIPs, err = fixedIPs("external_gateway_info", gb.ExternalFixedIPs); err != nil {
					return spec, err
				}
			}
		}
		spec.Gateway = &gs
	}
	return spec, nil
}

func (s *Server) createRouter(c echo.Context) error {
	b, err := readBody(c, "router", []string{"name", "description", "admin_state_up", "distributed",
		"external_gateway_info", "tenant_id", "project_id"}, with(standardReadOnly, "routes", "ha"))
	if err != nil {
		return err
	}
	spec, err := s.routerSpec(c, b)
	if err != nil {
		return err
	}
	if spec.ProjectID, err = b.project(callerOf(c)); err != nil {
		return err
	}
	r, err := s.store.CreateRouter(c.Request().Context(), spec)
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusCreated, "router", routerShape(r))
}

func (s *Server) updateRouter(c echo.Context) error {
	id := c.Param("id")
	b, err := readBody(c, "router", []string{"name", "description", "admin_state_up", "distributed",
		"external_gateway_info", "routes"}, with(standardReadOnly, "tenant_id", "project_id", "ha"))
	if err != nil {
		return err
	}
	if _, err := s.ownedRouter(c, id); err != nil {
		return err
	}
	spec, err := s.routerSpec(c, b)
	if err != nil {
		return err
	}
	r, err := s.store.UpdateRouter(c.Request().Context(), id, spec)
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "router", routerShape(r))
}

func (s *Server) deleteRouter(c echo.Context) error {
	return deleteOwned(c, s.ownedRouter, s.store.DeleteRouter)
}

type interfaceBody struct {
	SubnetID string `json:"subnet_id"`
	PortID   string `json:"port_id"`
}

// readInterfaceBody decodes the un-enveloped {"subnet_id"} / {"port_id"} body.
func readInterfaceBody(c echo.Context) (interfaceBody, error) {
	var ib interfaceBody
	raw, err := io.ReadAll(io.LimitReader(c.Request().Body, maxBody))
	if err != nil {
		return ib, badBody("Unable to read request body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ib); err != nil {
		return ib, badBody("Malformed request body: %v", err)
	}
	// Neutron's _validate_interface_info: each ID given must be a UUID.
	for _, id := range []string{ib.PortID, ib.SubnetID} {
		if id != "" && !isUUID(id) {
			return ib, &db.Error{Class: db.ClassInvalid, Type: "BadRequest", Message: fmt.Sprintf("Bad router request: '%s' is not a valid UUID.", id)}
		}
	}
	return ib, nil
}

func interfaceShape(ri *db.RouterInterface) map[string]any {
	return map[string]any{"id": ri.RouterID, "tenant_id": ri.ProjectID, "project_id": ri.ProjectID,
		"subnet_id": ri.SubnetID, "subnet_ids": ri.SubnetIDs, "port_id": ri.PortID, "network_id": ri.NetworkID}
}

func (s *Server) addRouterInterface(c echo.Context) error {
	id := c.Param("id")
	ib, err := readInterfaceBody(c)
	if err != nil {
		return err
	}
	if _, err := s.ownedRouter(c, id); err != nil {
		return err
	}
	if ib.SubnetID != "" {
		if _, err := s.ownedSubnet(c, ib.SubnetID); err != nil {
			return err
		}
	}
	if ib.PortID != "" {
		if _, err := s.ownedPort(c, ib.PortID); err != nil {
			return err
		}
	}
	ri, err := s.store.AddRouterInterface(c.Request().Context(), id, ib.SubnetID, ib.PortID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, interfaceShape(ri))
}

func (s *Server) removeRouterInterface(c echo.Context) error {
	id := c.Param("id")
	ib, err := readInterfaceBody(c)
	if err != nil {
		return err
	}
	if _, err := s.ownedRouter(c, id); err != nil {
		return err
	}
	ri, err := s.store.RemoveRouterInterface(c.Request().Context(), id, ib.SubnetID, ib.PortID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, interfaceShape(ri))
}
