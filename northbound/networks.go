package northbound

import (
	"fmt"
	"maps"
	"net/http"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/labstack/echo/v4"
)

func notFound(typ, format string, args ...any) error {
	return &db.Error{Class: db.ClassNotFound, Type: typ, Message: fmt.Sprintf(format, args...)}
}

// respondOne writes {"<kind>": shape}, honouring ?fields=.
func respondOne(c echo.Context, code int, kind string, shape map[string]any) error {
	if attrs := unreadable(c, kind); len(attrs) > 0 {
		shape = maps.Clone(shape)
		for _, a := range attrs {
			delete(shape, a)
		}
	}
	if fields := c.QueryParams()["fields"]; len(fields) > 0 {
		sel := make(map[string]any, len(fields))
		for _, f := range fields {
			if v, ok := shape[f]; ok {
				sel[f] = v
			}
		}
		shape = sel
	}
	return c.JSON(code, map[string]any{kind: shape})
}

var standardReadOnly = []string{"id", "status", "created_at", "updated_at", "revision_number", "tags"}

func with(xs []string, more ...string) []string { return append(append([]string{}, xs...), more...) }

// visibleNetwork returns a network the caller may see (NetworkNotFound otherwise).
func (s *Server) visibleNetwork(c echo.Context, id string) (*topology.Network, error) {
	n, err := s.store.GetNetwork(c.Request().Context(), id)
	if err != nil {
		return nil, err
	}
	if !callerOf(c).sees(n.ProjectID, n.Shared || n.External) {
		return nil, notFound("NetworkNotFound", "Network %s could not be found.", id)
	}
	return n, nil
}

// ownedNetwork returns a network the caller may change.
func (s *Server) ownedNetwork(c echo.Context, id string) (*topology.Network, error) {
	n, err := s.visibleNetwork(c, id)
	if err != nil {
		return nil, err
	}
	if !callerOf(c).owns(n.ProjectID) {
		return nil, forbidden("Network %s belongs to another project", id)
	}
	return n, nil
}

func (s *Server) listNetworks(c echo.Context) error {
	ns, err := s.store.ListNetworks(c.Request().Context())
	if err != nil {
		return err
	}
	cl := callerOf(c)
	items := make([]map[string]any, 0, len(ns))
	for i := range ns {
		if cl.sees(ns[i].ProjectID, ns[i].Shared || ns[i].External) {
			items = append(items, networkShape(&ns[i]))
		}
	}
	return respondList(c, "networks", items)
}

func (s *Server) showNetwork(c echo.Context) error {
	n, err := s.visibleNetwork(c, c.Param("id"))
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "network", networkShape(n))
}

// networkSpec reads the attributes shared by create and update.
func networkSpec(b *body) (db.NetworkSpec, error) {
	var spec db.NetworkSpec
	var err error
	if spec.Name, err = b.str("name"); err != nil {
		return spec, err
	}
	if spec.Description, err = b.str("description"); err != nil {
		return spec, err
	}
	if spec.AdminStateUp, err = b.boolean("admin_state_up"); err != nil {
		return spec, err
	}
	if spec.Shared, err = b.boolean("shared"); err != nil {
		return spec, err
	}
	if spec.External, err = b.boolean("router:external"); err != nil {
		return spec, err
	}
	if spec.PortSecurityEnabled, err = b.boolean("port_security_enabled"); err != nil {
		return spec, err
	}
	if mtu, err := b.integer("mtu", true); err != nil {
		return spec, err
	} else if mtu != nil {
		if *mtu < 0 {
			return spec, invalidField("mtu", b.fields["mtu"], "should be non-negative")
		}
		v := int(*mtu)
		spec.MTU = &v
	}
	return spec, nil
}

func (s *Server) createNetwork(c echo.Context) error {
	cl := callerOf(c)
	return create(c, creation[db.NetworkSpec, topology.Network]{
		kind: "network", plural: "networks",
		allowed: []string{"name", "description", "admin_state_up", "shared", "router:external",
			"provider:network_type", "provider:physical_network", "provider:segmentation_id", "segments", "mtu",
			"port_security_enabled", "tenant_id", "project_id"},
		readOnly: with(standardReadOnly, "subnets"),
		spec:     func(b *body) (db.NetworkSpec, error) { return networkCreateSpec(b, cl) },
		one:      s.store.CreateNetwork,
		many:     s.store.CreateNetworks,
		shape:    networkShape,
	})
}

// networkCreateSpec reads a network create body.
func networkCreateSpec(b *body, cl caller) (db.NetworkSpec, error) {
	spec, err := networkSpec(b)
	if err != nil {
		return spec, err
	}
	if spec.ProjectID, err = b.project(cl); err != nil {
		return spec, err
	}
	if spec.NetworkType, err = b.str("provider:network_type"); err != nil {
		return spec, err
	}
	if spec.PhysicalNetwork, err = b.nullableStr("provider:physical_network"); err != nil {
		return spec, err
	}
	if spec.SegmentationID, err = b.integer("provider:segmentation_id", true); err != nil {
		return spec, err
	}
	var segs []struct {
		NetworkType     string  `json:"provider:network_type"`
		PhysicalNetwork *string `json:"provider:physical_network"`
		SegmentationID  *int64  `json:"provider:segmentation_id"`
	}
	if ok, err := b.decode("segments", &segs); err != nil {
		return spec, err
	} else if ok {
		if len(segs) != 1 || spec.NetworkType != nil || spec.PhysicalNetwork != nil || spec.SegmentationID != nil {
			return spec, badBody("Invalid input for segments. Reason: exactly one segment, and no provider attributes beside it.")
		}
		spec.NetworkType, spec.PhysicalNetwork, spec.SegmentationID = &segs[0].NetworkType, segs[0].PhysicalNetwork, segs[0].SegmentationID
	}
	if spec.SegmentationID != nil && *spec.SegmentationID == 0 && (spec.NetworkType == nil || *spec.NetworkType != topology.NetworkTypeVLAN) {
		spec.SegmentationID = nil // 0: let the store allocate (vxlan) or none (flat)
	}
	return spec, nil
}

func (s *Server) updateNetwork(c echo.Context) error {
	id := c.Param("id")
	b, err := readBody(c, "network", []string{"name", "description", "admin_state_up", "shared", "router:external", "mtu",
		"port_security_enabled"},
		with(standardReadOnly, "subnets", "tenant_id", "project_id", "provider:network_type", "provider:physical_network", "provider:segmentation_id"))
	if err != nil {
		return err
	}
	spec, err := networkSpec(b)
	if err != nil {
		return err
	}
	if _, err := s.ownedNetwork(c, id); err != nil {
		return err
	}
	n, err := s.store.UpdateNetwork(c.Request().Context(), id, spec)
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "network", networkShape(n))
}

func (s *Server) deleteNetwork(c echo.Context) error {
	return deleteOwned(c, s.ownedNetwork, s.store.DeleteNetwork)
}
