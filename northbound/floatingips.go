package northbound

import (
	"fmt"
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

// association reads port_id (null: disassociate) and fixed_ip_address of a floating IP of
// project; the port must be one the caller finds (fipPort). An update with an empty body
// disassociates, as in Neutron (its first floating IPs had no other attribute, and an
// empty update meant "clear"); one that gives other attributes only keeps the association.
func (s *Server) association(c echo.Context, b *body, spec *db.FloatingIPSpec, project string) error {
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
		return s.fipPort(c, *spec.PortID, project)
	}
	return nil
}

// fipPort checks the port a floating IP of project is to be associated with, as Neutron's
// _internal_fip_assoc_data does with the caller's context: the port is found if the caller
// owns it or its network (Neutron's port query hook shows a network's owner the ports of
// other projects on it), PortNotFound otherwise; a port of another project than the
// floating IP's is 400 BadRequest unless the caller is admin.
func (s *Server) fipPort(c echo.Context, id, project string) error {
	ctx := c.Request().Context()
	p, err := s.store.GetPort(ctx, id)
	if err != nil {
		return err
	}
	cl := callerOf(c)
	if !cl.owns(p.ProjectID) {
		n, err := s.store.GetNetwork(ctx, p.NetworkID)
		if err != nil {
			return fmt.Errorf("network of port %s: %w", id, err)
		}
		if !cl.owns(n.ProjectID) {
			return notFound("PortNotFound", "Port %s could not be found.", id)
		}
	}
	if p.ProjectID != project && !cl.admin {
		return &db.Error{Class: db.ClassInvalid, Type: "BadRequest",
			Message: fmt.Sprintf("Bad floatingip request: Cannot process floating IP association with Port %s, since that port is owned by a different tenant.", id)}
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
	if err := s.association(c, b, &spec, spec.ProjectID); err != nil {
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
	f, err := s.ownedFloatingIP(c, id)
	if err != nil {
		return err
	}
	var spec db.FloatingIPSpec
	if spec.Description, err = b.str("description"); err != nil {
		return err
	}
	if err := s.association(c, b, &spec, f.ProjectID); err != nil {
		return err
	}
	f, err = s.store.UpdateFloatingIP(c.Request().Context(), id, spec)
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "floatingip", floatingIPShape(f))
}

func (s *Server) deleteFloatingIP(c echo.Context) error {
	return deleteOwned(c, s.ownedFloatingIP, s.store.DeleteFloatingIP)
}
