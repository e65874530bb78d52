package db

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

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
// centralized SNAT ports. The external network's subnets may not overlap the router's
// (Neutron's _check_for_dup_router_subnets, as for an interface).
func (w *wtx) setGateway(ctx context.Context, r *topology.Router, gs *GatewaySpec) error {
	n, subnets, err := w.networkWithSubnets(ctx, gs.NetworkID)
	if err != nil {
		return err
	}
	if !n.External {
		return badRequest("Bad router request: Network %s is not a valid external network.", n.ID)
	}
	ports, err := w.routerPorts(ctx, r.ID)
	if err != nil {
		return err
	}
	if err := w.checkRouterSubnets(ctx, ports, subnets); err != nil {
		return err
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

// addGatewayAddresses gives the routers' gateway ports on network n, when it is external,
// an address on its new IPv6 subnet sn, as Neutron's update_router_gw_ports: on an
// auto-address subnet the EUI-64 address addAutoAddresses gave them; on another, a pool
// address, unless the port has a stateful (pool) address of IPv6 already, or two
// stateful addresses. A new IPv4 subnet gives them none. Each router's gateway shows its
// port's addresses.
func (w *wtx) addGatewayAddresses(ctx context.Context, n *topology.Network, sn *topology.Subnet) error {
	if !n.External || sn.IsIPv4() {
		return nil
	}
	ports, err := objs[topology.Port](ctx, w.query, `SELECT obj FROM ports WHERE network_id = $1 AND device_owner = $2 ORDER BY id`,
		n.ID, topology.OwnerRouterGateway)
	if err != nil {
		return fmt.Errorf("load gateway ports of network %s: %w", n.ID, err)
	}
	if len(ports) == 0 {
		return nil
	}
	auto := map[string]bool{}
	if !sn.IsAutoAddress() {
		_, subnets, err := w.networkWithSubnets(ctx, n.ID)
		if err != nil {
			return err
		}
		for i := range subnets {
			auto[subnets[i].ID] = subnets[i].IsAutoAddress()
		}
	}
	for i := range ports {
		p := &ports[i]
		if !sn.IsAutoAddress() {
			var stateful []topology.FixedIP
			for _, f := range p.FixedIPs {
				if !auto[f.SubnetID] {
					stateful = append(stateful, f)
				}
			}
			if len(stateful) > 1 || len(stateful) == 1 && hasIPv6Address(stateful) {
				continue
			}
			f, ok, err := allocateFrom(ctx, w, sn, p.ID)
			if err != nil {
				return err
			}
			if !ok {
				return conflict("IpAddressGenerationFailure", "No more IP addresses available for subnet %s.", sn.ID)
			}
			p.FixedIPs = append(p.FixedIPs, f)
			w.savePort(p)
		}
		if err := w.showGatewayAddresses(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// showGatewayAddresses makes the gateway of the router of gateway port p show the port's
// addresses, when they changed.
func (w *wtx) showGatewayAddresses(ctx context.Context, p *topology.Port) error {
	var r topology.Router
	if err := w.router(ctx, p.DeviceID, &r); err != nil {
		return err
	}
	if r.Gateway == nil || r.Gateway.PortID != p.ID || slices.Equal(r.Gateway.ExternalFixedIPs, p.FixedIPs) {
		return nil
	}
	r.Gateway.ExternalFixedIPs = slices.Clone(p.FixedIPs)
	w.saveRouter(&r)
	return nil
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

// reconcileSNAT keeps, while the router has a gateway, the network:router_centralized_snat
// ports Neutron's DVR keeps: one for each IPv4 subnet of its interfaces, and one for each
// network with IPv6 subnets among its interfaces, with an address on each of them; none
// without a gateway.
func (w *wtx) reconcileSNAT(ctx context.Context, r *topology.Router) error {
	ports, err := w.routerPorts(ctx, r.ID)
	if err != nil {
		return err
	}
	type snatPort struct {
		network string
		subnets []string
	}
	want := map[string]*snatPort{} // by snatKey
	var keys []string
	if r.Gateway != nil {
		for _, p := range ports[topology.OwnerRouterInterfaceDistributed] {
			for _, f := range p.FixedIPs {
				k := snatKey(p.NetworkID, f)
				sp := want[k]
				if sp == nil {
					sp = &snatPort{network: p.NetworkID}
					want[k], keys = sp, append(keys, k)
				}
				if !slices.Contains(sp.subnets, f.SubnetID) {
					sp.subnets = append(sp.subnets, f.SubnetID)
				}
			}
		}
	}
	for i := range ports[topology.OwnerRouterCentralizedSNAT] {
		p := &ports[topology.OwnerRouterCentralizedSNAT][i]
		k := ""
		if len(p.FixedIPs) > 0 {
			k = snatKey(p.NetworkID, p.FixedIPs[0])
		}
		sp := want[k]
		if sp == nil { // not wanted, or a second port for the same subnets
			if err := w.deletePort(ctx, p); err != nil {
				return err
			}
			continue
		}
		delete(want, k)
		if err := w.readdressSNAT(ctx, p, sp.subnets); err != nil {
			return err
		}
	}
	for _, k := range keys {
		sp := want[k]
		if sp == nil {
			continue
		}
		n, subnets, err := w.networkWithSubnets(ctx, sp.network)
		if err != nil {
			return err
		}
		specs := make([]FixedIPSpec, len(sp.subnets))
		for i, id := range sp.subnets {
			specs[i] = FixedIPSpec{SubnetID: id}
		}
		p := topology.Port{ID: newID(), NetworkID: n.ID, ProjectID: r.ProjectID, DeviceOwner: topology.OwnerRouterCentralizedSNAT,
			DeviceID: r.ID, Status: topology.PortStatusDown, AdminStateUp: true}
		if err := w.insertPort(ctx, &p, n, subnets, nil, &specs, nil); err != nil {
			return err
		}
	}
	return nil
}

// snatKey names the SNAT port that serves interface address f on network: its IPv4
// subnet, or the network for an IPv6 address.
func snatKey(network string, f topology.FixedIP) string {
	if strings.Contains(f.IPAddress, ":") {
		return "ipv6 " + network
	}
	return f.SubnetID
}

// readdressSNAT gives SNAT port p one address on each of subnets and none elsewhere,
// keeping those it has.
func (w *wtx) readdressSNAT(ctx context.Context, p *topology.Port, subnets []string) error {
	var kept, gone []topology.FixedIP
	has := map[string]bool{}
	for _, f := range p.FixedIPs {
		if slices.Contains(subnets, f.SubnetID) && !has[f.SubnetID] {
			has[f.SubnetID] = true
			kept = append(kept, f)
		} else {
			gone = append(gone, f)
		}
	}
	var specs []FixedIPSpec
	for _, id := range subnets {
		if !has[id] {
			specs = append(specs, FixedIPSpec{SubnetID: id})
		}
	}
	if len(gone) == 0 && len(specs) == 0 {
		return nil
	}
	if err := w.releasePortIPs(ctx, &topology.Port{ID: p.ID, FixedIPs: gone}); err != nil {
		return err
	}
	p.FixedIPs = kept
	if len(specs) > 0 {
		n, all, err := w.networkWithSubnets(ctx, p.NetworkID)
		if err != nil {
			return err
		}
		added, err := allocateIPs(ctx, w, p, n, all, &specs)
		if err != nil {
			return err
		}
		p.FixedIPs = append(kept, added...)
	}
	w.savePort(p)
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

// RouterInterface is the answer to a router interface add or remove (Neutron's
// _make_router_interface_info): SubnetIDs are the subnets the call attached or detached,
// SubnetID the last of them on an add and the first on a remove.
type RouterInterface struct {
	topology.RouterInterface
	SubnetIDs []string
}

func newRouterInterface(r *topology.Router, p *topology.Port, subnetIDs []string, subnetID string) *RouterInterface {
	return &RouterInterface{RouterInterface: topology.RouterInterface{RouterID: r.ID, SubnetID: subnetID, PortID: p.ID,
		NetworkID: p.NetworkID, ProjectID: r.ProjectID}, SubnetIDs: subnetIDs}
}

// AddRouterInterface attaches a subnet or an existing unused port to a router, as
// Neutron's add_router_interface. A subnet gives the router its gateway IP: an IPv4
// subnet on a port of its own; an IPv6 subnet as one more fixed IP of the router's
// interface port on that network that has an IPv6 address already, when there is one
// (Neutron keeps one port per network for IPv6 subnets), else on a port of its own. A
// port may carry several addresses, at most one of them IPv4. Exactly one of subnetID and
// portID is given.
func (s *Store) AddRouterInterface(ctx context.Context, routerID, subnetID, portID string) (*RouterInterface, error) {
	if (subnetID == "") == (portID == "") {
		return nil, badRequest("Bad router request: Either subnet_id or port_id must be specified, not both.")
	}
	var ri *RouterInterface
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var r topology.Router
		if err := w.router(ctx, routerID, &r); err != nil {
			return err
		}
		ports, err := w.routerPorts(ctx, routerID)
		if err != nil {
			return err
		}
		if portID != "" {
			ri, err = w.addInterfacePort(ctx, &r, ports, portID)
		} else {
			ri, err = w.addInterfaceSubnet(ctx, &r, ports, subnetID)
		}
		if err != nil {
			return err
		}
		w.saveRouter(&r) // its interfaces are part of it: revision_number advances, as in Neutron
		return w.reconcileSNAT(ctx, &r)
	})
	if err != nil {
		return nil, err
	}
	return ri, nil
}

// addInterfacePort makes port portID an interface of router r, whose ports are ports, with
// Neutron's checks (_check_router_port, _validate_router_port_info). Neutron's rule of one
// IPv6 port per network does not hold for distributed interface ports, which dvrflow's
// all are.
func (w *wtx) addInterfacePort(ctx context.Context, r *topology.Router, ports map[string][]topology.Port, portID string) (*RouterInterface, error) {
	var p topology.Port
	if err := w.port(ctx, portID, &p); err != nil {
		return nil, err
	}
	if p.DeviceOwner != "" || p.DeviceID != "" {
		return nil, conflict("PortInUse", "Unable to complete operation on port %s for network %s. Port already has an attached device %s.", p.ID, p.NetworkID, p.DeviceID)
	}
	if len(p.FixedIPs) == 0 {
		return nil, badRequest("Bad router request: Router port must have at least one fixed IP.")
	}
	subnets := make([]topology.Subnet, len(p.FixedIPs))
	ids := make([]string, len(p.FixedIPs))
	v4 := 0
	for i, f := range p.FixedIPs {
		if err := w.subnet(ctx, f.SubnetID, &subnets[i]); err != nil {
			return nil, err
		}
		if err := checkRouterAddressMode(&subnets[i]); err != nil {
			return nil, err
		}
		ids[i] = f.SubnetID
		if subnets[i].IsIPv4() {
			v4++
		}
	}
	if err := w.checkRouterSubnets(ctx, ports, subnets); err != nil {
		return nil, err
	}
	if v4 > 1 {
		return nil, badRequest("Bad router request: Cannot have multiple IPv4 subnets on router port.")
	}
	p.DeviceOwner, p.DeviceID = topology.OwnerRouterInterfaceDistributed, r.ID
	w.savePort(&p)
	return newRouterInterface(r, &p, ids, ids[len(ids)-1]), nil
}

// addInterfaceSubnet gives router r, whose ports are ports, its address on subnet
// subnetID, with Neutron's checks (_add_interface_by_subnet).
func (w *wtx) addInterfaceSubnet(ctx context.Context, r *topology.Router, ports map[string][]topology.Port, subnetID string) (*RouterInterface, error) {
	var sn topology.Subnet
	if err := w.subnet(ctx, subnetID, &sn); err != nil {
		return nil, err
	}
	if sn.GatewayIP == "" {
		return nil, badRequest("Bad router request: Subnet for router interface must have a gateway IP.")
	}
	if err := checkRouterAddressMode(&sn); err != nil {
		return nil, err
	}
	if err := w.checkRouterSubnets(ctx, ports, []topology.Subnet{sn}); err != nil {
		return nil, err
	}
	n, subnets, err := w.networkWithSubnets(ctx, sn.NetworkID)
	if err != nil {
		return nil, err
	}
	spec := []FixedIPSpec{{SubnetID: sn.ID, IPAddress: sn.GatewayIP}}
	if !sn.IsIPv4() {
		ifaces := ports[topology.OwnerRouterInterfaceDistributed]
		if i := slices.IndexFunc(ifaces, func(p topology.Port) bool { return p.NetworkID == sn.NetworkID && hasIPv6Address(p.FixedIPs) }); i >= 0 {
			p := &ifaces[i]
			added, err := allocateIPs(ctx, w, p, n, subnets, &spec)
			if err != nil {
				return nil, err
			}
			p.FixedIPs = append(p.FixedIPs, added...)
			w.savePort(p)
			return newRouterInterface(r, p, []string{sn.ID}, sn.ID), nil
		}
	}
	p := topology.Port{ID: newID(), NetworkID: n.ID, ProjectID: r.ProjectID, DeviceOwner: topology.OwnerRouterInterfaceDistributed,
		DeviceID: r.ID, Status: topology.PortStatusDown, AdminStateUp: true}
	if err := w.insertPort(ctx, &p, n, subnets, nil, &spec, nil); err != nil {
		return nil, err
	}
	return newRouterInterface(r, &p, []string{sn.ID}, sn.ID), nil
}

// checkRouterAddressMode refuses an IPv6 subnet whose router advertisements come from a
// router outside Neutron (Neutron's _validate_subnet_address_mode).
func checkRouterAddressMode(sn *topology.Subnet) error {
	if sn.IPVersion == 6 && sn.IPv6RAMode == "" && sn.IPv6AddressMode != "" {
		return badRequest("Bad router request: IPv6 subnet %s configured to receive RAs from an external router cannot be added to Neutron Router.", sn.ID)
	}
	return nil
}

// checkRouterSubnets refuses subnets news for a router whose ports are ports when it has
// an address on one of them already, or one of its subnets overlaps one of them, as
// Neutron's _check_for_dup_router_subnets: every address of every port of the router
// counts, and its gateway port stands for every subnet of the external network.
func (w *wtx) checkRouterSubnets(ctx context.Context, ports map[string][]topology.Port, news []topology.Subnet) error {
	var ids, external []string
	for _, owner := range []string{topology.OwnerRouterInterfaceDistributed, topology.OwnerRouterCentralizedSNAT, topology.OwnerRouterGateway} {
		for _, p := range ports[owner] {
			for _, f := range p.FixedIPs {
				if slices.ContainsFunc(news, func(sn topology.Subnet) bool { return sn.ID == f.SubnetID }) {
					return badRequest("Bad router request: Router already has a port on subnet %s.", f.SubnetID)
				}
				ids = append(ids, f.SubnetID)
			}
			if owner == topology.OwnerRouterGateway {
				external = append(external, p.NetworkID)
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	theirs, err := objs[topology.Subnet](ctx, w.query, `SELECT obj FROM subnets WHERE id = ANY($1) OR network_id = ANY($2)
ORDER BY obj->>'created_at', id`, ids, external)
	if err != nil {
		return fmt.Errorf("load subnets of the router's ports: %w", err)
	}
	for _, o := range theirs {
		oc, _ := netip.ParsePrefix(o.CIDR)
		for _, sn := range news {
			if c, _ := netip.ParsePrefix(sn.CIDR); c.Overlaps(oc) {
				return badRequest("Bad router request: Cidr %s of subnet %s overlaps with cidr %s of subnet %s.", sn.CIDR, sn.ID, o.CIDR, o.ID)
			}
		}
	}
	return nil
}

// hasIPv6Address tells whether one of xs is an IPv6 address.
func hasIPv6Address(xs []topology.FixedIP) bool {
	return slices.ContainsFunc(xs, func(f topology.FixedIP) bool { return strings.Contains(f.IPAddress, ":") })
}

// RemoveRouterInterface detaches from a router, as Neutron's remove_router_interface,
// either an interface port, with all its subnets (subnetID, when given too, must be one of
// them: SubnetMismatchForPort), or a subnet: its address leaves the interface port that
// holds it, and the port goes with its last address. It refuses while a floating IP needs
// a subnet it detaches.
func (s *Store) RemoveRouterInterface(ctx context.Context, routerID, subnetID, portID string) (*RouterInterface, error) {
	if subnetID == "" && portID == "" {
		return nil, badRequest("Bad router request: Either subnet_id or port_id must be specified.")
	}
	var ri *RouterInterface
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var r topology.Router
		if err := w.router(ctx, routerID, &r); err != nil {
			return err
		}
		ports, err := w.routerPorts(ctx, routerID)
		if err != nil {
			return err
		}
		ifaces := ports[topology.OwnerRouterInterfaceDistributed]
		if portID != "" {
			i := slices.IndexFunc(ifaces, func(p topology.Port) bool { return p.ID == portID })
			if i < 0 {
				return notFound("RouterInterfaceNotFound", "Router %s does not have an interface with id %s", routerID, portID)
			}
			p := &ifaces[i]
			ids := make([]string, len(p.FixedIPs))
			for j, f := range p.FixedIPs {
				ids[j] = f.SubnetID
			}
			if subnetID != "" && !slices.Contains(ids, subnetID) {
				return newError(ClassInvalid, "SubnetMismatchForPort", "Subnet on port %s does not match the requested subnet %s.", portID, subnetID)
			}
			for _, id := range ids {
				if err := w.checkInterfaceNotInUse(ctx, routerID, id); err != nil {
					return err
				}
			}
			if err := w.deletePort(ctx, p); err != nil {
				return err
			}
			if len(ids) == 0 {
				ids = []string{""}
			}
			ri = newRouterInterface(&r, p, ids, ids[0])
		} else {
			var sn topology.Subnet
			if err := w.subnet(ctx, subnetID, &sn); err != nil {
				return err
			}
			on := func(f topology.FixedIP) bool { return f.SubnetID == sn.ID }
			i := slices.IndexFunc(ifaces, func(p topology.Port) bool { return slices.ContainsFunc(p.FixedIPs, on) })
			if i < 0 {
				return notFound("RouterInterfaceNotFoundForSubnet", "Router %s has no interface on subnet %s", routerID, subnetID)
			}
			p := &ifaces[i]
			if err := w.checkInterfaceNotInUse(ctx, routerID, sn.ID); err != nil {
				return err
			}
			if slices.ContainsFunc(p.FixedIPs, func(f topology.FixedIP) bool { return !on(f) }) {
				for _, f := range p.FixedIPs {
					if on(f) {
						w.releaseAddr(&sn, f.IPAddress)
					}
				}
				p.FixedIPs = slices.DeleteFunc(p.FixedIPs, on)
				w.savePort(p)
			} else if err := w.deletePort(ctx, p); err != nil {
				return err
			}
			ri = newRouterInterface(&r, p, []string{sn.ID}, sn.ID)
		}
		w.saveRouter(&r)
		return w.reconcileSNAT(ctx, &r)
	})
	if err != nil {
		return nil, err
	}
	return ri, nil
}

// checkInterfaceNotInUse refuses to detach subnet subnetID from router routerID while a
// floating IP through the router goes to a port with an address on it.
func (w *wtx) checkInterfaceNotInUse(ctx context.Context, routerID, subnetID string) error {
	var inUse int
	if err := w.queryRow(ctx, `
SELECT count(*) FROM floatingips f JOIN ip_allocations a ON a.port_id = f.port_id
WHERE f.router_id = $1 AND a.subnet_id = $2`, routerID, subnetID).Scan(&inUse); err != nil {
		return fmt.Errorf("check floating IPs on subnet %s: %w", subnetID, err)
	}
	if inUse > 0 {
		return conflict("RouterInterfaceInUseByFloatingIP",
			"Router interface for subnet %s on router %s cannot be deleted, as it is required by one or more floating IPs.", subnetID, routerID)
	}
	return nil
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
