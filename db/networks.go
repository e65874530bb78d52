package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
)

// NetworkSpec holds the fields of a network create or update; nil means "not given".
type NetworkSpec struct {
	ProjectID       string // create only
	Name            *string
	Description     *string
	AdminStateUp    *bool
	Shared          *bool
	External        *bool
	NetworkType     *string // create only
	PhysicalNetwork *string // create only
	SegmentationID  *int64  // create only
	// MTU 0 asks for the network type's maximum (Config.MaxMTU), as Neutron's default.
	MTU *int
	// PortSecurityEnabled is the default of the network's new ports (true when not given).
	PortSecurityEnabled *bool
}

// CreateNetwork creates a network and allocates its segment (a VNI from the configured
// range for vxlan networks without a segmentation ID).
func (s *Store) CreateNetwork(ctx context.Context, spec NetworkSpec) (*topology.Network, error) {
	n, err := buildNetwork(spec, s.cfg)
	if err != nil {
		return nil, err
	}
	_, err = s.write(ctx, func(ctx context.Context, w *wtx) error {
		if err := w.checkQuotaOne(ctx, QuotaNetwork, n.ProjectID, 1); err != nil {
			return err
		}
		if n.NetworkType == topology.NetworkTypeVXLAN && spec.SegmentationID == nil {
			vni, err := w.freeVNI(ctx, s.cfg.VNIMin, s.cfg.VNIMax)
			if err != nil {
				return err
			}
			n.SegmentationID = vni
		} else {
			var used bool
			if err := w.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM segments WHERE network_type = $1 AND physical_network = $2 AND segmentation_id = $3)`,
				n.NetworkType, n.PhysicalNetwork, n.SegmentationID).Scan(&used); err != nil {
				return fmt.Errorf("check segment: %w", err)
			}
			if used {
				return segmentInUse(&n)
			}
		}
		n.CreatedAt, n.UpdatedAt = w.now, w.now
		w.exec(`INSERT INTO networks (id, project_id, obj) VALUES ($1, $2, $3)`, n.ID, n.ProjectID, mustJSON(n))
		w.exec(`INSERT INTO segments (network_type, physical_network, segmentation_id, network_id) VALUES ($1, $2, $3, $4)`,
			n.NetworkType, n.PhysicalNetwork, n.SegmentationID, n.ID)
		w.record(topology.KindNetwork, n.ID, topology.OpCreate, n)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// segmentInUse is the conflict of a network whose segment another network has.
func segmentInUse(n *topology.Network) error {
	switch n.NetworkType {
	case topology.NetworkTypeVLAN:
		return conflict("VlanIdInUse", "Unable to create the network. The VLAN %d on physical network %s is in use.", n.SegmentationID, n.PhysicalNetwork)
	case topology.NetworkTypeFlat:
		return conflict("FlatNetworkInUse", "Unable to create the flat network. Physical network %s is in use.", n.PhysicalNetwork)
	default:
		return conflict("TunnelIdInUse", "Unable to create the network. The tunnel ID %d is in use.", n.SegmentationID)
	}
}

// buildNetwork validates a create spec and returns the network it describes, without
// its allocated segment.
func buildNetwork(spec NetworkSpec, cfg Config) (topology.Network, error) {
	n := topology.Network{
		ID: newID(), ProjectID: spec.ProjectID, AdminStateUp: true, Status: "ACTIVE", PortSecurityEnabled: true,
		NetworkType: topology.NetworkTypeVXLAN, Subnets: []string{},
	}
	if spec.NetworkType != nil {
		n.NetworkType = *spec.NetworkType
	}
	if spec.PhysicalNetwork != nil {
		n.PhysicalNetwork = *spec.PhysicalNetwork
	}
	switch n.NetworkType {
	case topology.NetworkTypeVXLAN:
		if n.PhysicalNetwork != "" {
			return n, invalid("provider:physical_network specified for %s network", n.NetworkType)
		}
		if spec.SegmentationID != nil && (*spec.SegmentationID < 1 || *spec.SegmentationID > 1<<24-1) {
			return n, invalid("%d is not a valid VXLAN VNI, must be 1-16777215", *spec.SegmentationID)
		}
	case topology.NetworkTypeVLAN:
		if n.PhysicalNetwork == "" {
			return n, invalid("provider:physical_network required for vlan provider network")
		}
		if spec.SegmentationID == nil || *spec.SegmentationID < 1 || *spec.SegmentationID > 4094 {
			return n, invalid("provider:segmentation_id must be a VLAN ID 1-4094 for vlan provider network")
		}
	case topology.NetworkTypeFlat:
		if n.PhysicalNetwork == "" {
			return n, invalid("provider:physical_network required for flat provider network")
		}
		if spec.SegmentationID != nil && *spec.SegmentationID != 0 {
			return n, invalid("provider:segmentation_id specified for flat provider network")
		}
	default:
		return n, invalid("provider:network_type %q is not supported, use vxlan, vlan or flat", n.NetworkType)
	}
	if spec.SegmentationID != nil {
		n.SegmentationID = *spec.SegmentationID
	}
	n.MTU = cfg.MaxMTU(n.NetworkType)
	if err := applyNetworkSpec(&n, spec, cfg); err != nil {
		return n, err
	}
	return n, nil
}

// applyNetworkSpec applies spec to n. A requested MTU must not exceed what the network
// type allows (Neutron's "Requested MTU is too big"); 0 asks for that maximum.
func applyNetworkSpec(n *topology.Network, spec NetworkSpec, cfg Config) error {
	if spec.Name != nil {
		n.Name = *spec.Name
	}
	if spec.Description != nil {
		n.Description = *spec.Description
	}
	if spec.PortSecurityEnabled != nil {
		n.PortSecurityEnabled = *spec.PortSecurityEnabled
	}
	if spec.AdminStateUp != nil {
		n.AdminStateUp = *spec.AdminStateUp
	}
	if spec.Shared != nil {
		n.Shared = *spec.Shared
	}
	if spec.External != nil {
		n.External = *spec.External
	}
	if spec.MTU != nil {
		limit := cfg.MaxMTU(n.NetworkType)
		switch mtu := *spec.MTU; {
		case mtu < 0:
			return invalid("mtu %d should be non-negative", mtu)
		case mtu > limit:
			return invalid("Requested MTU is too big, maximum is %d.", limit)
		case mtu == 0:
			n.MTU = limit
		default:
			n.MTU = mtu
		}
	}
	return nil
}

// mtuTooSmall is Neutron's refusal of an MTU below IPv4's minimum on a network with
// subnets (an IPv4 subnet needs 68).
func mtuTooSmall(n *topology.Network) error {
	return mtuBelow(n, minIPv4MTU)
}

// mtuBelow is Neutron's refusal of an MTU below min, the minimum of one of the network's
// subnets (IPv4: 68, IPv6: 1280).
func mtuBelow(n *topology.Network, min int) error {
	return conflict("NetworkMTUSubnetConflict", "MTU of %s is not valid, subnet requires a minimum of %d", n.ID, min)
}

// minIPv6MTU is IPv6's minimum link MTU (RFC 8200), which an IPv6 subnet needs.
const minIPv6MTU = 1280

// freeVNI returns the lowest VNI in [lo, hi] no network uses.
func (w *wtx) freeVNI(ctx context.Context, lo, hi int64) (int64, error) {
	var vni int64
	err := w.queryRow(ctx, `
SELECT v FROM (
  SELECT $1::bigint AS v
  UNION ALL
  SELECT segmentation_id + 1 FROM segments WHERE network_type = 'vxlan' AND segmentation_id >= $1 AND segmentation_id < $2
) c
WHERE NOT EXISTS (SELECT 1 FROM segments s WHERE s.network_type = 'vxlan' AND s.physical_network = '' AND s.segmentation_id = c.v)
ORDER BY v LIMIT 1`, lo, hi).Scan(&vni)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, newError(ClassUnavailable, "NoNetworkAvailable",
			"Unable to create the network. No tenant network is available for allocation.")
	}
	if err != nil {
		return 0, fmt.Errorf("allocate VNI: %w", err)
	}
	return vni, nil
}

// UpdateNetwork changes a network's mutable fields.
func (s *Store) UpdateNetwork(ctx context.Context, id string, spec NetworkSpec) (*topology.Network, error) {
	if spec.NetworkType != nil || spec.PhysicalNetwork != nil || spec.SegmentationID != nil {
		return nil, invalid("provider attributes of network %s cannot be updated", id)
	}
	var n topology.Network
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		if err := w.network(ctx, id, &n); err != nil {
			return err
		}
		wasExternal := n.External
		if err := applyNetworkSpec(&n, spec, s.cfg); err != nil {
			return err
		}
		if n.MTU < minIPv4MTU && len(n.Subnets) > 0 {
			return mtuTooSmall(&n)
		}
		if n.MTU < minIPv6MTU && len(n.Subnets) > 0 {
			var v6 bool
			if err := w.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM subnets WHERE network_id = $1 AND obj->>'ip_version' = '6')`, n.ID).Scan(&v6); err != nil {
				return fmt.Errorf("check IPv6 subnets of network %s: %w", n.ID, err)
			}
			if v6 {
				return mtuBelow(&n, minIPv6MTU)
			}
		}
		if wasExternal && !n.External {
			var used bool
			if err := w.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ports WHERE network_id = $1 AND device_owner IN ($2, $3))`,
				id, topology.OwnerRouterGateway, topology.OwnerFloatingIP).Scan(&used); err != nil {
				return fmt.Errorf("check external network use: %w", err)
			}
			if used {
				return conflict("ExternalNetworkInUse", "External network %s cannot be updated to be non-external, as it has existing gateway ports or floating IPs.", id)
			}
		}
		w.saveNetwork(&n, topology.OpUpdate)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &n, nil
}

func (w *wtx) saveNetwork(n *topology.Network, op topology.Op) {
	n.UpdatedAt = w.now
	n.RevisionNumber++
	w.exec(`UPDATE networks SET obj = $2 WHERE id = $1`, n.ID, mustJSON(n))
	w.record(topology.KindNetwork, n.ID, op, *n)
}

// network loads a network for update.
func (w *wtx) network(ctx context.Context, id string, n *topology.Network) error {
	err := w.getObj(ctx, "networks", id, n)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("NetworkNotFound", "Network %s could not be found.", id)
	}
	if err != nil {
		return fmt.Errorf("load network %s: %w", id, err)
	}
	return w.constrain(topology.KindNetwork, id, n.RevisionNumber)
}

// autoDeletedOwners are port owners a network delete removes by itself.
var autoDeletedOwners = map[string]bool{topology.OwnerDHCP: true, topology.OwnerFloatingIPAgentGateway: true}

// DeleteNetwork deletes a network with its subnets, and an external network with its
// unassociated floating IPs (recorded as deleted, as DeleteFloatingIP records them), as
// Neutron's delete_disassociated_floatingips does. It refuses (NetworkInUse) while the
// network has ports other than DHCP and floating IP agent gateway ports and the ports
// of those floating IPs, including router ports and the ports of associated floating
// IPs: remove router interfaces and gateways, and disassociate, first, as in Neutron.
func (s *Store) DeleteNetwork(ctx context.Context, id string) error {
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var n topology.Network
		if err := w.network(ctx, id, &n); err != nil {
			return err
		}
		ports, err := objs[topology.Port](ctx, w.query, `SELECT obj FROM ports WHERE network_id = $1`, id)
		if err != nil {
			return fmt.Errorf("load ports of network %s: %w", id, err)
		}
		fips, err := objs[topology.FloatingIP](ctx, w.query, `SELECT obj FROM floatingips WHERE floating_network_id = $1 AND port_id = ''`, id)
		if err != nil {
			return fmt.Errorf("load unassociated floating IPs of network %s: %w", id, err)
		}
		unassociated := make(map[string]bool, len(fips)) // their floating IP ports
		for _, f := range fips {
			unassociated[f.FloatingPortID] = true
		}
		var busy int
		for _, p := range ports {
			if !autoDeletedOwners[p.DeviceOwner] && !unassociated[p.ID] {
				busy++
			}
		}
		if busy > 0 {
			return conflict("NetworkInUse", "Unable to complete operation on network %s. There are one or more ports still in use on the network.", id)
		}
		for _, f := range fips {
			w.exec(`DELETE FROM floatingips WHERE id = $1`, f.ID)
			w.record(topology.KindFloatingIP, f.ID, topology.OpDelete, f)
		}
		for i := range ports {
			w.deletePortRow(&ports[i])
		}
		subnets, err := objs[topology.Subnet](ctx, w.query, `SELECT obj FROM subnets WHERE network_id = $1`, id)
		if err != nil {
			return fmt.Errorf("load subnets of network %s: %w", id, err)
		}
		for _, sn := range subnets {
			w.exec(`DELETE FROM ip_allocations WHERE subnet_id = $1`, sn.ID)
			w.exec(`DELETE FROM ip6_allocations WHERE subnet_id = $1`, sn.ID)
			w.exec(`DELETE FROM subnets WHERE id = $1`, sn.ID)
			w.record(topology.KindSubnet, sn.ID, topology.OpDelete, sn)
		}
		rows, err := w.query(ctx, `DELETE FROM local_vlans WHERE network_id = $1 RETURNING host, vlan`, id)
		if err != nil {
			return fmt.Errorf("release local VLANs of network %s: %w", id, err)
		}
		var host string
		var vlan int
		if _, err := pgx.ForEachRow(rows, []any{&host, &vlan}, func() error {
			lv := topology.LocalVLAN{Host: host, NetworkID: id, VLAN: uint16(vlan)}
			w.record(topology.KindLocalVLAN, lv.Key(), topology.OpDelete, lv)
			return nil
		}); err != nil {
			return fmt.Errorf("release local VLANs of network %s: %w", id, err)
		}
		w.exec(`DELETE FROM networks WHERE id = $1`, id)
		w.record(topology.KindNetwork, id, topology.OpDelete, n)
		return nil
	})
	return err
}

// GetNetwork returns one network.
func (s *Store) GetNetwork(ctx context.Context, id string) (*topology.Network, error) {
	ns, err := objs[topology.Network](ctx, s.pool.Query, `SELECT obj FROM networks WHERE id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("get network %s: %w", id, err)
	}
	if len(ns) == 0 {
		return nil, notFound("NetworkNotFound", "Network %s could not be found.", id)
	}
	return &ns[0], nil
}

// ListNetworks returns every network.
func (s *Store) ListNetworks(ctx context.Context) ([]topology.Network, error) {
	ns, err := objs[topology.Network](ctx, s.pool.Query, `SELECT obj FROM networks ORDER BY obj->>'created_at', id`)
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	return ns, nil
}

func removeString(xs []string, x string) []string {
	out := xs[:0]
	for _, v := range xs {
		if v != x {
			out = append(out, v)
		}
	}
	return out
}

// CreateNetworks creates networks in one write, allocating the VNIs of vxlan networks
// without a segmentation ID (lowest free first, in order).
func (s *Store) CreateNetworks(ctx context.Context, specs []NetworkSpec) ([]topology.Network, error) {
	if err := checkBulk("networks", len(specs)); err != nil {
		return nil, err
	}
	nets := make([]topology.Network, len(specs))
	for i, spec := range specs {
		n, err := buildNetwork(spec, s.cfg)
		if err != nil {
			return nil, itemError(i, err)
		}
		nets[i] = n
	}
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		adds := map[string]int{}
		for i := range nets {
			adds[nets[i].ProjectID]++
		}
		if err := w.checkQuota(ctx, QuotaNetwork, adds); err != nil {
			return err
		}
		type segKey struct {
			typ, phys string
			id        int64
		}
		inBatch := map[segKey]int{}
		var types, physs []string
		var segIDs []int64
		for i := range nets {
			n := &nets[i]
			if n.NetworkType == topology.NetworkTypeVXLAN && specs[i].SegmentationID == nil {
				continue
			}
			k := segKey{n.NetworkType, n.PhysicalNetwork, n.SegmentationID}
			if _, dup := inBatch[k]; dup {
				return itemError(i, segmentInUse(n))
			}
			inBatch[k] = i
			types, physs, segIDs = append(types, k.typ), append(physs, k.phys), append(segIDs, k.id)
		}
		if len(types) > 0 {
			rows, err := w.query(ctx, `SELECT network_type, physical_network, segmentation_id FROM segments
WHERE (network_type, physical_network, segmentation_id) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]))`, types, physs, segIDs)
			if err != nil {
				return fmt.Errorf("check segments: %w", err)
			}
			var k segKey
			first := len(nets)
			if _, err := pgx.ForEachRow(rows, []any{&k.typ, &k.phys, &k.id}, func() error {
				first = min(first, inBatch[k])
				return nil
			}); err != nil {
				return fmt.Errorf("check segments: %w", err)
			}
			if first < len(nets) {
				return itemError(first, segmentInUse(&nets[first]))
			}
		}
		if err := w.allocateVNIs(ctx, nets, specs, explicitVNIs(nets, specs)); err != nil {
			return err
		}
		ids, projects, objs := make([]string, len(nets)), make([]string, len(nets)), make([]string, len(nets))
		types, physs, segIDs = make([]string, len(nets)), make([]string, len(nets)), make([]int64, len(nets))
		for i := range nets {
			n := &nets[i]
			n.CreatedAt, n.UpdatedAt = w.now, w.now
			ids[i], projects[i], objs[i] = n.ID, n.ProjectID, string(mustJSON(n))
			types[i], physs[i], segIDs[i] = n.NetworkType, n.PhysicalNetwork, n.SegmentationID
			w.record(topology.KindNetwork, n.ID, topology.OpCreate, *n)
		}
		w.exec(`INSERT INTO networks (id, project_id, obj) SELECT i, p, o::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) AS x(i, p, o)`,
			ids, projects, objs)
		w.exec(`INSERT INTO segments (network_type, physical_network, segmentation_id, network_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])`, types, physs, segIDs, ids)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return nets, nil
}

// explicitVNIs returns the VXLAN VNIs the batch asks for explicitly.
func explicitVNIs(nets []topology.Network, specs []NetworkSpec) map[int64]bool {
	out := map[int64]bool{}
	for i := range nets {
		if nets[i].NetworkType == topology.NetworkTypeVXLAN && specs[i].SegmentationID != nil {
			out[nets[i].SegmentationID] = true
		}
	}
	return out
}

// allocateVNIs gives the vxlan networks without a segmentation ID the lowest VNIs of the
// configured range that neither the store nor the batch uses.
func (w *wtx) allocateVNIs(ctx context.Context, nets []topology.Network, specs []NetworkSpec, taken map[int64]bool) error {
	need := 0
	for i := range nets {
		if nets[i].NetworkType == topology.NetworkTypeVXLAN && specs[i].SegmentationID == nil {
			need++
		}
	}
	if need == 0 {
		return nil
	}
	lo, hi := w.cfg.VNIMin, w.cfg.VNIMax
	rows, err := w.query(ctx, `SELECT segmentation_id FROM segments
WHERE network_type = 'vxlan' AND physical_network = '' AND segmentation_id BETWEEN $1 AND $2`, lo, hi)
	if err != nil {
		return fmt.Errorf("read used VNIs: %w", err)
	}
	used, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("read used VNIs: %w", err)
	}
	for _, v := range used {
		taken[v] = true
	}
	next := lo
	for i := range nets {
		if nets[i].NetworkType != topology.NetworkTypeVXLAN || specs[i].SegmentationID != nil {
			continue
		}
		for next <= hi && taken[next] {
			next++
		}
		if next > hi {
			return itemError(i, newError(ClassUnavailable, "NoNetworkAvailable",
				"Unable to create the network. No tenant network is available for allocation."))
		}
		nets[i].SegmentationID = next
		taken[next] = true
	}
	return nil
}

// saveNetworks is saveNetwork for many networks, in one statement.
func (w *wtx) saveNetworks(ns []*topology.Network, op topology.Op) {
	ids, nobjs := make([]string, len(ns)), make([]string, len(ns))
	for i, n := range ns {
		n.UpdatedAt = w.now
		n.RevisionNumber++
		ids[i], nobjs[i] = n.ID, string(mustJSON(n))
		w.record(topology.KindNetwork, n.ID, op, *n)
	}
	w.exec(`UPDATE networks n SET obj = x.o::jsonb FROM unnest($1::text[], $2::text[]) AS x(i, o) WHERE n.id = x.i`, ids, nobjs)
}
