package northbound

import (
	"net/http"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/labstack/echo/v4"
)

// subnetVisible: own subnets, and those of shared networks. Neutron's get_subnet policy
// (ADMIN_OR_PROJECT_READER or rule:shared) does not open an external network's subnets
// to every project, though it opens the network itself.
func (s *Server) subnetVisible(cl caller, sn *topology.Subnet, nets map[string]*topology.Network) bool {
	n := nets[sn.NetworkID]
	return cl.sees(sn.ProjectID, n != nil && n.Shared)
}

func (s *Server) visibleSubnet(c echo.Context, id string) (*topology.Subnet, error) {
	ctx := c.Request().Context()
	sn, err := s.store.GetSubnet(ctx, id)
	if err != nil {
		return nil, err
	}
	cl := callerOf(c)
	if cl.admin || sn.ProjectID == cl.project {
		return sn, nil
	}
	n, err := s.store.GetNetwork(ctx, sn.NetworkID)
	if err != nil {
		return nil, err
	}
	if !s.subnetVisible(cl, sn, map[string]*topology.Network{n.ID: n}) {
		return nil, notFound("SubnetNotFound", "Subnet %s could not be found.", id)
	}
	return sn, nil
}

func (s *Server) ownedSubnet(c echo.Context, id string) (*topology.Subnet, error) {
	sn, err := s.visibleSubnet(c, id)
	if err != nil {
		return nil, err
	}
	if !callerOf(c).owns(sn.ProjectID) {
		return nil, forbidden("Subnet %s belongs to another project", id)
	}
	return sn, nil
}

func (s *Server) listSubnets(c echo.Context) error {
	ctx := c.Request().Context()
	xs, err := s.store.ListSubnets(ctx)
	if err != nil {
		return err
	}
	cl := callerOf(c)
	nets := map[string]*topology.Network{}
	filterShared := c.QueryParams().Has("shared")
	if !cl.admin || filterShared {
		ns, err := s.store.ListNetworks(ctx)
		if err != nil {
			return err
		}
		for i := range ns {
			nets[ns[i].ID] = &ns[i]
		}
	}
	items := make([]map[string]any, 0, len(xs))
	for i := range xs {
		if s.subnetVisible(cl, &xs[i], nets) {
			item := subnetShape(&xs[i])
			if filterShared { // hidden: a subnet is shared when its network is
				n := nets[xs[i].NetworkID]
				item["shared"] = n != nil && n.Shared
			}
			items = append(items, item)
		}
	}
	return respondList(c, "subnets", items)
}

func (s *Server) showSubnet(c echo.Context) error {
	sn, err := s.visibleSubnet(c, c.Param("id"))
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "subnet", subnetShape(sn))
}

func subnetSpec(b *body) (db.SubnetSpec, error) {
	var spec db.SubnetSpec
	var err error
	if spec.Name, err = b.str("name"); err != nil {
		return spec, err
	}
	if spec.Description, err = b.str("description"); err != nil {
		return spec, err
	}
	if spec.GatewayIP, err = b.nullableStr("gateway_ip"); err != nil {
		return spec, err
	}
	if spec.EnableDHCP, err = b.boolean("enable_dhcp"); err != nil {
		return spec, err
	}
	var pools []topology.AllocationPool
	if ok, err := b.decode("allocation_pools", &pools); err != nil {
		return spec, err
	} else if ok {
		if pools == nil {
			pools = []topology.AllocationPool{}
		}
		spec.AllocationPools = &pools
	}
	var routes []topology.HostRoute
	if ok, err := b.decode("host_routes", &routes); err != nil {
		return spec, err
	} else if ok {
		if routes == nil {
			routes = []topology.HostRoute{}
		}
		spec.HostRoutes = &routes
	}
	var dns []string
	if ok, err := b.decode("dns_nameservers", &dns); err != nil {
		return spec, err
	} else if ok {
		if dns == nil {
			dns = []string{}
		}
		spec.DNSNameservers = &dns
	}
	return spec, nil
}

func (s *Server) createSubnet(c echo.Context) error {
	cl := callerOf(c)
	network := networkCheck(c, s.ownedNetwork)
	return create(c, creation[db.SubnetSpec, topology.Subnet]{
		kind: "subnet", plural: "subnets",
		allowed: []string{"name", "description", "network_id", "ip_version", "cidr", "gateway_ip",
			"allocation_pools", "host_routes", "dns_nameservers", "enable_dhcp", "tenant_id", "project_id",
			"subnetpool_id", "prefixlen", "use_default_subnetpool", "ipv6_ra_mode", "ipv6_address_mode"},
		readOnly: standardReadOnly,
		spec: func(b *body) (db.SubnetSpec, error) {
			spec, err := subnetCreateSpec(b, cl)
			if err == nil {
				err = s.subnetPoolOf(c, b, &spec)
			}
			if err == nil {
				_, err = network(spec.NetworkID)
			}
			return spec, err
		},
		one:   s.store.CreateSubnet,
		many:  s.store.CreateSubnets,
		shape: subnetShape,
	})
}

// subnetCreateSpec reads a subnet create body.
func subnetCreateSpec(b *body, cl caller) (db.SubnetSpec, error) {
	spec, err := subnetSpec(b)
	if err != nil {
		return spec, err
	}
	if spec.ProjectID, err = b.project(cl); err != nil {
		return spec, err
	}
	nid, err := b.id("network_id")
	if err != nil {
		return spec, err
	}
	if nid == nil {
		return spec, badBody("Invalid input for network_id. Reason: network_id is required.")
	}
	spec.NetworkID = *nid
	if spec.CIDR, err = b.str("cidr"); err != nil {
		return spec, err
	}
	if v, err := b.integer("ip_version", false); err != nil {
		return spec, err
	} else if v != nil {
		iv := int(*v)
		spec.IPVersion = &iv
	}
	// null is "not set", as Neutron takes it.
	for _, m := range []struct {
		name string
		dst  **string
	}{{"ipv6_ra_mode", &spec.IPv6RAMode}, {"ipv6_address_mode", &spec.IPv6AddressMode}} {
		v, err := b.nullableStr(m.name)
		if err != nil {
			return spec, err
		}
		if v != nil && *v != "" {
			*m.dst = v
		}
	}
	return spec, nil
}

func (s *Server) updateSubnet(c echo.Context) error {
	id := c.Param("id")
	b, err := readBody(c, "subnet", []string{"name", "description", "gateway_ip", "allocation_pools", "host_routes",
		"dns_nameservers", "enable_dhcp"},
		with(standardReadOnly, "network_id", "ip_version", "cidr", "tenant_id", "project_id", "subnetpool_id", "ipv6_ra_mode", "ipv6_address_mode"))
	if err != nil {
		return err
	}
	spec, err := subnetSpec(b)
	if err != nil {
		return err
	}
	if _, err := s.ownedSubnet(c, id); err != nil {
		return err
	}
	sn, err := s.store.UpdateSubnet(c.Request().Context(), id, spec)
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "subnet", subnetShape(sn))
}

func (s *Server) deleteSubnet(c echo.Context) error {
	return deleteOwned(c, s.ownedSubnet, s.store.DeleteSubnet)
}
