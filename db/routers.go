package db

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
)

// GatewaySpec is a router's requested external gateway.
type GatewaySpec struct {
	NetworkID        string
	EnableSNAT       *bool
	ExternalFixedIPs *[]FixedIPSpec
}

// RouterSpec holds the fields of a router create or update; nil means "not given".
// Gateway set to a non-nil pointer to nil clears the gateway.
type RouterSpec struct {
	ProjectID    string // create only
	Name         *string
	Description  *string
	AdminStateUp *bool
	Distributed  *bool
	Gateway      **GatewaySpec
}

// linkLocalBase is 169.254.64.0/18, split into 8192 /31s for rfp/fpr pairs.
const linkLocalBase = 169<<24 | 254<<16 | 64<<8

// CreateRouter creates a router (distributed unless told otherwise), with its gateway
// when given.
func (s *Store) CreateRouter(ctx context.Context, spec RouterSpec) (*topology.Router, error) {
	var r topology.Router
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		if err := w.checkQuotaOne(ctx, QuotaRouter, spec.ProjectID, 1); err != nil {
			return err
		}
		r = topology.Router{ID: newID(), ProjectID: spec.ProjectID, AdminStateUp: true, Status: "ACTIVE", Distributed: true}
		applyRouterSpec(&r, spec)
		r.CreatedAt, r.UpdatedAt = w.now, w.now
		w.exec(`INSERT INTO routers (id, project_id, obj) VALUES ($1, $2, '{}')`, r.ID, r.ProjectID)
		if spec.Gateway != nil && *spec.Gateway != nil {
			if err := w.setGateway(ctx, &r, *spec.Gateway); err != nil {
				return err
			}
		}
		w.exec(`UPDATE routers SET obj = $2 WHERE id = $1`, r.ID, mustJSON(r))
		w.record(topology.KindRouter, r.ID, topology.OpCreate, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func applyRouterSpec(r *topology.Router, spec RouterSpec) {
	if spec.Name != nil {
		r.Name = *spec.Name
	}
	if spec.Description != nil {
		r.Description = *spec.Description
	}
	if spec.AdminStateUp != nil {
		r.AdminStateUp = *spec.AdminStateUp
	}
	if spec.Distributed != nil {
		r.Distributed = *spec.Distributed
	}
}

func (w *wtx) router(ctx context.Context, id string, r *topology.Router) error {
	err := w.getObj(ctx, "routers", id, r)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("RouterNotFound", "Router %s could not be found", id)
	}
	if err != nil {
		return fmt.Errorf("load router %s: %w", id, err)
	}
	return w.constrain(topology.KindRouter, id, r.RevisionNumber)
}

func (w *wtx) saveRouter(r *topology.Router) {
	r.UpdatedAt = w.now
	r.RevisionNumber++
	w.exec(`UPDATE routers SET obj = $2 WHERE id = $1`, r.ID, mustJSON(r))
	w.record(topology.KindRouter, r.ID, topology.OpUpdate, *r)
}

// setGateway creates the router_gateway port, allocates the link-local /31 and the
// centralized SNAT ports.
func (w *wtx) setGateway(ctx context.Context, r *topology.Router, gs *GatewaySpec) error {
	n, subnets, err := w.networkWithSubnets(ctx, gs.NetworkID)
	if err != nil {
		return err
	}
	if !n.External {
		return badRequest("Bad router request: Network %s is not a valid external network.", n.ID)
	}
	p := topology.Port{ID: newID(), NetworkID: n.ID, DeviceOwner: topology.OwnerRouterGateway, DeviceID: r.ID,
		Status: topology.PortStatusDown, AdminStateUp: true}
	if err := w.insertPort(ctx, &p, n, subnets, nil, gs.ExternalFixedIPs, nil); err != nil {
		return err
	}
	if len(p.FixedIPs) == 0 {
		return badRequest("Bad router request: external network %s has no subnet to give the gateway an address.", n.ID)
	}
	gi := &topology.GatewayInfo{NetworkID: n.ID, EnableSNAT: true, ExternalFixedIPs: p.FixedIPs, PortID: p.ID}
	if gs.EnableSNAT != nil {
		gi.EnableSNAT = *gs.EnableSNAT
	}
	r.Gateway = gi
	var idx int
	err = w.queryRow(ctx, `
SELECT v FROM (SELECT 0 AS v UNION ALL SELECT idx + 1 FROM router_linklocal WHERE idx < 8191) c
WHERE NOT EXISTS (SELECT 1 FROM router_linklocal l WHERE l.idx = c.v) ORDER BY v LIMIT 1`).Scan(&idx)
	if errors.Is(err, pgx.ErrNoRows) {
		return newError(ClassUnavailable, "LinkLocalAllocationFailure", "No free link-local /31 left in 169.254.64.0/18")
	}
	if err != nil {
		return fmt.Errorf("allocate link-local /31: %w", err)
	}
	r.LinkLocal = fmt.Sprintf("%s/31", ipString(uint32(linkLocalBase+2*idx)))
	w.exec(`INSERT INTO router_linklocal (router_id, cidr, idx) VALUES ($1, $2, $3)`, r.ID, r.LinkLocal, idx)
	if err := w.scheduleSNAT(ctx, r); err != nil {
		return err
	}
	return w.reconcileSNAT(ctx, r)
}

// clearGateway removes the gateway port, the link-local /31 and the SNAT ports; it
// refuses while floating IPs go through the router.
func (w *wtx) clearGateway(ctx context.Context, r *topology.Router) error {
	if r.Gateway == nil {
		return nil
	}
	var fips int
	if err := w.queryRow(ctx, `SELECT count(*) FROM floatingips WHERE router_id = $1`, r.ID).Scan(&fips); err != nil {
		return fmt.Errorf("count floating IPs of router %s: %w", r.ID, err)
	}
	if fips > 0 {
		return conflict("RouterExternalGatewayInUseByFloatingIp",
			"Gateway cannot be updated for router %s, since a gateway to external network %s is required by one or more floating IPs.", r.ID, r.Gateway.NetworkID)
	}
	var gp topology.Port
	if err := w.port(ctx, r.Gateway.PortID, &gp); err != nil {
		return err
	}
	if err := w.deletePort(ctx, &gp); err != nil {
		return err
	}
	w.exec(`DELETE FROM router_linklocal WHERE router_id = $1`, r.ID)
	r.Gateway, r.LinkLocal, r.SNATHost = nil, "", ""
	return w.reconcileSNAT(ctx, r)
}

// routerPorts returns the ports a router owns, by owner.
func (w *wtx) routerPorts(ctx context.Context, routerID string) (map[string][]topology.Port, error) {
	ps, err := objs[topology.Port](ctx, w.query, `SELECT obj FROM ports WHERE device_id = $1 ORDER BY obj->>'created_at', id`, routerID)
	if err != nil {
		return nil, fmt.Errorf("load ports of router %s: %w", routerID, err)
	}
	out := map[string][]topology.Port{}
	for _, p := range ps {
		out[p.DeviceOwner] = append(out[p.DeviceOwner], p)
	}
	return out, nil
}

// reconcileSNAT keeps exactly one network:router_centralized_snat port per interface
// subnet while the router has a gateway, and none without.
func (w *wtx) reconcileSNAT(ctx context.Context, r *topology.Router) error {
	ports, err := w.routerPorts(ctx, r.ID)
	if err != nil {
		return err
	}
	want := map[string]topology.Port{} // subnet -> interface port
	if r.Gateway != nil {
		for _, p := range ports[topology.OwnerRouterInterfaceDistributed] {
			if len(p.FixedIPs) > 0 {
				want[p.FixedIPs[0].SubnetID] = p
			}
		}
	}
	for _, p := range ports[topology.OwnerRouterCentralizedSNAT] {
		sub := ""
		if len(p.FixedIPs) > 0 {
			sub = p.FixedIPs[0].SubnetID
		}
		if _, ok := want[sub]; ok {
			delete(want, sub)
			continue
		}
		if err := w.deletePort(ctx, &p); err != nil {
			return err
		}
	}
	for sub, ifp := range want {
		n, subnets, err := w.networkWithSubnets(ctx, ifp.NetworkID)
		if err != nil {
			return err
		}
		p := topology.Port{ID: newID(), NetworkID: n.ID, ProjectID: r.ProjectID, DeviceOwner: topology.OwnerRouterCentralizedSNAT,
			DeviceID: r.ID, Status: topology.PortStatusDown, AdminStateUp: true}
		if err := w.insertPort(ctx, &p, n, subnets, nil, &[]FixedIPSpec{{SubnetID: sub}}, nil); err != nil {
			return err
		}
	}
	return nil
}

// UpdateRouter changes a router's name, state or gateway. Setting a gateway to another
// network (or other fixed IPs) replaces it; enable_snat alone changes in place.
func (s *Store) UpdateRouter(ctx context.Context, id string, spec RouterSpec) (*topology.Router, error) {
	var r topology.Router
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		if err := w.router(ctx, id, &r); err != nil {
			return err
		}
		if spec.Distributed != nil && *spec.Distributed != r.Distributed {
			return badRequest("Migrating router %s between distributed and centralized is not supported.", id)
		}
		applyRouterSpec(&r, spec)
		if spec.Gateway != nil {
			gs := *spec.Gateway
			switch {
			case gs == nil:
				if err := w.clearGateway(ctx, &r); err != nil {
					return err
				}
			case r.Gateway != nil && r.Gateway.NetworkID == gs.NetworkID && gs.ExternalFixedIPs == nil:
				if gs.EnableSNAT != nil {
					r.Gateway.EnableSNAT = *gs.EnableSNAT
				}
			default:
				if r.Gateway != nil && r.Gateway.NetworkID == gs.NetworkID {
					// Same network, new addresses: the floating IPs stay valid.
					var gp topology.Port
					if err := w.port(ctx, r.Gateway.PortID, &gp); err != nil {
						return err
					}
					if err := w.deletePort(ctx, &gp); err != nil {
						return err
					}
					w.exec(`DELETE FROM router_linklocal WHERE router_id = $1`, r.ID)
					r.Gateway, r.LinkLocal = nil, ""
				} else if err := w.clearGateway(ctx, &r); err != nil {
					return err
				}
				if err := w.setGateway(ctx, &r, gs); err != nil {
					return err
				}
			}
		}
		w.saveRouter(&r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// DeleteRouter deletes a router without interfaces (RouterInUse otherwise), with its
// gateway.
func (s *Store) DeleteRouter(ctx context.Context, id string) error {
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var r topology.Router
		if err := w.router(ctx, id, &r); err != nil {
			return err
		}
		ports, err := w.routerPorts(ctx, id)
		if err != nil {
			return err
		}
		if len(ports[topology.OwnerRouterInterfaceDistributed]) > 0 {
			return conflict("RouterInUse", "Router %s still has ports", id)
		}
		if err := w.clearGateway(ctx, &r); err != nil {
			return err
		}
		w.exec(`DELETE FROM routers WHERE id = $1`, id)
		w.record(topology.KindRouter, id, topology.OpDelete, r)
		return nil
	})
	return err
}

// AddRouterInterface attaches a subnet (a new port with the subnet's gateway IP) or an
// existing unused port to a router. Exactly one of subnetID and portID is given.
func (s *Store) AddRouterInterface(ctx context.Context, routerID, subnetID, portID string) (*topology.RouterInterface, error) {
	if (subnetID == "") == (portID == "") {
		return nil, badRequest("Bad router request: Either subnet_id or port_id must be specified, not both.")
	}
	var ri topology.RouterInterface
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var r topology.Router
		if err := w.router(ctx, routerID, &r); err != nil {
			return err
		}
		ports, err := w.routerPorts(ctx, routerID)
		if err != nil {
			return err
		}
		var p topology.Port
		var sn topology.Subnet
		if portID != "" {
			if err := w.port(ctx, portID, &p); err != nil {
				return err
			}
			if p.DeviceOwner != "" || p.DeviceID != "" {
				return conflict("PortInUse", "Unable to complete operation on port %s for network %s. Port already has an attached device %s.", p.ID, p.NetworkID, p.DeviceID)
			}
			if len(p.FixedIPs) != 1 {
				return badRequest("Bad router request: Router port %s must have exactly one fixed IP.", p.ID)
			}
			subnetID = p.FixedIPs[0].SubnetID
		}
		if err := w.subnet(ctx, subnetID, &sn); err != nil {
			return err
		}
		if r.Gateway != nil {
			for _, ip := range r.Gateway.ExternalFixedIPs {
				if ip.SubnetID == sn.ID {
					// Neutron: the gateway port counts as one of the router's ports.
					return badRequest("Bad router request: Router already has a port on subnet %s.", sn.ID)
				}
			}
		}
		if sn.IPVersion == 6 && sn.IPv6RAMode == "" && sn.IPv6AddressMode != "" {
			return badRequest("Bad router request: IPv6 subnet %s configured to receive RAs from an external router cannot be added to Neutron Router.", sn.ID)
		}
		cidr, _ := netip.ParsePrefix(sn.CIDR)
		for _, ip := range ports[topology.OwnerRouterInterfaceDistributed] {
			if len(ip.FixedIPs) == 0 {
				continue
			}
			if ip.FixedIPs[0].SubnetID == sn.ID {
				return badRequest("Bad router request: Router already has a port on subnet %s.", sn.ID)
			}
			var other topology.Subnet
			if err := w.subnet(ctx, ip.FixedIPs[0].SubnetID, &other); err != nil {
				return err
			}
			oc, _ := netip.ParsePrefix(other.CIDR)
			if oc.Overlaps(cidr) {
				return badRequest("Bad router request: Cidr %s of subnet %s overlaps with cidr %s of subnet %s.", sn.CIDR, sn.ID, other.CIDR, other.ID)
			}
		}
		if portID != "" {
			p.DeviceOwner, p.DeviceID = topology.OwnerRouterInterfaceDistributed, r.ID
			w.savePort(&p)
		} else {
			if sn.GatewayIP == "" {
				return badRequest("Bad router request: Subnet for router interface must have a gateway IP.")
			}
			n, subnets, err := w.networkWithSubnets(ctx, sn.NetworkID)
			if err != nil {
				return err
			}
			p = topology.Port{ID: newID(), NetworkID: n.ID, ProjectID: r.ProjectID, DeviceOwner: topology.OwnerRouterInterfaceDistributed,
				DeviceID: r.ID, Status: topology.PortStatusDown, AdminStateUp: true}
			if err := w.insertPort(ctx, &p, n, subnets, nil, &[]FixedIPSpec{{SubnetID: sn.ID, IPAddress: sn.GatewayIP}}, nil); err != nil {
				return err
			}
		}
		ri = topology.RouterInterface{RouterID: r.ID, SubnetID: sn.ID, PortID: p.ID, NetworkID: p.NetworkID, ProjectID: r.ProjectID}
		w.saveRouter(&r) // its interfaces are part of it: revision_number advances, as in Neutron
		return w.reconcileSNAT(ctx, &r)
	})
	if err != nil {
		return nil, err
	}
	return &ri, nil
}

// RemoveRouterInterface detaches a subnet or interface port from a router and deletes
// the interface port. It refuses while a floating IP needs the interface.
func (s *Store) RemoveRouterInterface(ctx context.Context, routerID, subnetID, portID string) (*topology.RouterInterface, error) {
	if subnetID == "" && portID == "" {
		return nil, badRequest("Bad router request: Either subnet_id or port_id must be specified.")
	}
	var ri topology.RouterInterface
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var r topology.Router
		if err := w.router(ctx, routerID, &r); err != nil {
			return err
		}
		ports, err := w.routerPorts(ctx, routerID)
		if err != nil {
			return err
		}
		var found *topology.Port
		for i, p := range ports[topology.OwnerRouterInterfaceDistributed] {
			if len(p.FixedIPs) == 0 {
				continue
			}
			if (portID == "" || p.ID == portID) && (subnetID == "" || p.FixedIPs[0].SubnetID == subnetID) {
				found = &ports[topology.OwnerRouterInterfaceDistributed][i]
				break
			}
		}
		if found == nil {
			if portID != "" {
				return notFound("RouterInterfaceNotFound", "Router %s does not have an interface with id %s", routerID, portID)
			}
			return notFound("RouterInterfaceNotFoundForSubnet", "Router %s has no interface on subnet %s", routerID, subnetID)
		}
		sub := found.FixedIPs[0].SubnetID
		var inUse int
		if err := w.queryRow(ctx, `
SELECT count(*) FROM floatingips f JOIN ip_allocations a ON a.port_id = f.port_id
WHERE f.router_id = $1 AND a.subnet_id = $2`, routerID, sub).Scan(&inUse); err != nil {
			return fmt.Errorf("check floating IPs on subnet %s: %w", sub, err)
		}
		if inUse > 0 {
			return conflict("RouterInterfaceInUseByFloatingIP",
				"Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more floating IPs.", sub, routerID)
		}
		if err := w.deletePort(ctx, found); err != nil {
			return err
		}
		ri = topology.RouterInterface{RouterID: r.ID, SubnetID: sub, PortID: found.ID, NetworkID: found.NetworkID, ProjectID: r.ProjectID}
		w.saveRouter(&r)
		return w.reconcileSNAT(ctx, &r)
	})
	if err != nil {
		return nil, err
	}
	return &ri, nil
}

// GetRouter returns one router.
func (s *Store) GetRouter(ctx context.Context, id string) (*topology.Router, error) {
	xs, err := objs[topology.Router](ctx, s.pool.Query, `SELECT obj FROM routers WHERE id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("get router %s: %w", id, err)
	}
	if len(xs) == 0 {
		return nil, notFound("RouterNotFound", "Router %s could not be found", id)
	}
	return &xs[0], nil
}

// ListRouters returns every router.
func (s *Store) ListRouters(ctx context.Context) ([]topology.Router, error) {
	xs, err := objs[topology.Router](ctx, s.pool.Query, `SELECT obj FROM routers ORDER BY obj->>'created_at', id`)
	if err != nil {
		return nil, fmt.Errorf("list routers: %w", err)
	}
	return xs, nil
}
