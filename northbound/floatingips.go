package northbound

import (
	"net/http"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/labstack/echo/v4"
)

func (s *Server) ownedFloatingIP(c echo.Context, id string) (*topology.FloatingIP, error) {
	f, err := s.store.GetFloatingIP(c.Request().Context(), id)
	if err != nil {
		return nil, err
	}
	if !callerOf(c).owns(f.ProjectID) {
		return nil, notFound("FloatingIPNotFound", "Floating IP %s could not be found", id)
	}
	return f, nil
}

func (s *Server) listFloatingIPs(c echo.Context) error {
	fs, err := s.store.ListFloatingIPs(c.Request().Context())
	if err != nil {
		return err
	}
	cl := callerOf(c)
	items := make([]map[string]any, 0, len(fs))
	for i := range fs {
		if cl.owns(fs[i].ProjectID) {
			items = append(items, floatingIPShape(&fs[i]))
		}
	}
	return respondList(c, "floatingips", items)
}

func (s *Server) showFloatingIP(c echo.Context) error {
	f, err := s.ownedFloatingIP(c, c.Param("id"))
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "floatingip", floatingIPShape(f))
}

// association reads port_id (null: disassociate) and fixed_ip_address; the port must
// belong to the caller. An update with an empty body disassociates, as in Neutron (its
// first floating IPs had no other attribute, and an empty update meant "clear"); one
// that gives other attributes only keeps the association.
func (s *Server) association(c echo.Context, b *body, spec *db.FloatingIPSpec) error {
	var err error
	if spec.PortID, err = b.nullableID("port_id"); err != nil {
		return err
	}
	if spec.FixedIPAddress, err = b.nullableStr("fixed_ip_address"); err != nil {
		return err
	}
	if spec.FixedIPAddress != nil && *spec.FixedIPAddress != "" && (spec.PortID == nil || *spec.PortID == "") {
		return &db.Error{Class: db.ClassInvalid, Type: "BadRequest",
			Message: "Bad floatingip request: fixed_ip_address cannot be specified without a port_id."}
	}
	if c.Request().Method == http.MethodPut && len(b.fields) == 0 {
		none := ""
		spec.PortID = &none
	}
	if spec.PortID != nil && *spec.PortID != "" {
		if _, err := s.ownedPort(c, *spec.PortID); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) createFloatingIP(c echo.Context) error {
	b, err := readBody(c, "floatingip", []string{"floating_network_id", "floating_ip_address", "subnet_id", "port_id",
		"fixed_ip_address", "description", "tenant_id", "project_id"},
		with(standardReadOnly, "router_id", "floating_port_id", "port_details"))
	if err != nil {
		return err
	}
	cl := callerOf(c)
	var spec db.FloatingIPSpec
	if spec.ProjectID, err = b.project(cl); err != nil {
		return err
	}
	nid, err := b.id("floating_network_id")
	if err != nil {
		return err
	}
	if nid == nil {
		return badBody("Invalid input for floating_network_id. Reason: floating_network_id is required.")
	}
	spec.FloatingNetworkID = *nid
	if _, err := s.visibleNetwork(c, spec.FloatingNetworkID); err != nil {
		return err
	}
	if spec.FloatingIPAddress, err = b.str("floating_ip_address"); err != nil {
		return err
	}
	if spec.SubnetID, err = b.id("subnet_id"); err != nil {
		return err
	}
	if spec.Description, err = b.str("description"); err != nil {
		return err
	}
	if err := s.association(c, b, &spec); err != nil {
		return err
	}
	f, err := s.store.CreateFloatingIP(c.Request().Context(), spec)
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusCreated, "floatingip", floatingIPShape(f))
}

func (s *Server) updateFloatingIP(c echo.Context) error {
	id := c.Param("id")
	b, err := readBody(c, "floatingip", []string{"port_id", "fixed_ip_address", "description"},
		with(standardReadOnly, "floating_network_id", "floating_ip_address", "subnet_id", "tenant_id", "project_id",
			"router_id", "floating_port_id", "port_details"))
	if err != nil {
		return err
	}
	if _, err := s.ownedFloatingIP(c, id); err != nil {
		return err
	}
	var spec db.FloatingIPSpec
	if spec.Description, err = b.str("description"); err != nil {
		return err
	}
	if err := s.association(c, b, &spec); err != nil {
		return err
	}
	f, err := s.store.UpdateFloatingIP(c.Request().Context(), id, spec)
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "floatingip", floatingIPShape(f))
}

func (s *Server) deleteFloatingIP(c echo.Context) error {
	return deleteOwned(c, s.ownedFloatingIP, s.store.DeleteFloatingIP)
}
