package db

import (
	"context"
	"errors"
	"fmt"

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
	MTU             *int
}

func mtuFor(networkType string) int {
	if networkType == NetworkTypeVXLAN {
		return 1450
	}
	return 1500
}

// CreateNetwork creates a network and allocates its segment (a VNI from the configured
// range for vxlan networks without a segmentation ID).
func (s *Store) CreateNetwork(ctx context.Context, spec NetworkSpec) (*Network, error) {
	n, err := buildNetwork(spec)
	if err != nil {
		return nil, err
	}
	_, err = s.write(ctx, func(ctx context.Context, w *wtx) error {
		if n.NetworkType == NetworkTypeVXLAN && spec.SegmentationID == nil {
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
		w.record(KindNetwork, n.ID, OpCreate, n)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// segmentInUse is the conflict of a network whose segment another network has.
func segmentInUse(n *Network) error {
	switch n.NetworkType {
	case NetworkTypeVLAN:
		return conflict("VlanIdInUse", "Unable to create the network. The VLAN %d on physical network %s is in use.", n.SegmentationID, n.PhysicalNetwork)
	case NetworkTypeFlat:
		return conflict("FlatNetworkInUse", "Unable to create the flat network. Physical network %s is in use.", n.PhysicalNetwork)
	default:
		return conflict("TunnelIdInUse", "Unable to create the network. The tunnel ID %d is in use.", n.SegmentationID)
	}
}

// buildNetwork validates a create spec and returns the network it describes, without
// its allocated segment.
func buildNetwork(spec NetworkSpec) (Network, error) {
	n := Network{
		ID: newID(), ProjectID: spec.ProjectID, AdminStateUp: true, Status: "ACTIVE",
		NetworkType: NetworkTypeVXLAN, Subnets: []string{},
	}
	if spec.NetworkType != nil {
		n.NetworkType = *spec.NetworkType
	}
	if spec.PhysicalNetwork != nil {
		n.PhysicalNetwork = *spec.PhysicalNetwork
	}
	switch n.NetworkType {
	case NetworkTypeVXLAN:
		if n.PhysicalNetwork != "" {
			return n, invalid("provider:physical_network specified for %s network", n.NetworkType)
		}
		if spec.SegmentationID != nil && (*spec.SegmentationID < 1 || *spec.SegmentationID > 1<<24-1) {
			return n, invalid("%d is not a valid VXLAN VNI, must be 1-16777215", *spec.SegmentationID)
		}
	case NetworkTypeVLAN:
		if n.PhysicalNetwork == "" {
			return n, invalid("provider:physical_network required for vlan provider network")
		}
		if spec.SegmentationID == nil || *spec.SegmentationID < 1 || *spec.SegmentationID > 4094 {
			return n, invalid("provider:segmentation_id must be a VLAN ID 1-4094 for vlan provider network")
		}
	case NetworkTypeFlat:
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
	n.MTU = mtuFor(n.NetworkType)
	if err := applyNetworkSpec(&n, spec); err != nil {
		return n, err
	}
	return n, nil
}

func applyNetworkSpec(n *Network, spec NetworkSpec) error {
	if spec.Name != nil {
		n.Name = *spec.Name
	}
	if spec.Description != nil {
		n.Description = *spec.Description
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
		if *spec.MTU < 68 || *spec.MTU > 9000 {
			return invalid("mtu %d out of range 68-9000", *spec.MTU)
		}
		n.MTU = *spec.MTU
	}
	return nil
}

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
func (s *Store) UpdateNetwork(ctx context.Context, id string, spec NetworkSpec) (*Network, error) {
	if spec.NetworkType != nil || spec.PhysicalNetwork != nil || spec.SegmentationID != nil {
		return nil, invalid("provider attributes of network %s cannot be updated", id)
	}
	var n Network
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		if err := w.network(ctx, id, &n); err != nil {
			return err
		}
		wasExternal := n.External
		if err := applyNetworkSpec(&n, spec); err != nil {
			return err
		}
		if wasExternal && !n.External {
			var used bool
			if err := w.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ports WHERE network_id = $1 AND device_owner IN ($2, $3))`,
				id, OwnerRouterGateway, OwnerFloatingIP).Scan(&used); err != nil {
				return fmt.Errorf("check external network use: %w", err)
			}
			if used {
				return conflict("ExternalNetworkInUse", "External network %s cannot be updated to be non-external, as it has existing gateway ports or floating IPs.", id)
			}
		}
		w.saveNetwork(&n, OpUpdate)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &n, nil
}

func (w *wtx) saveNetwork(n *Network, op string) {
	n.UpdatedAt = w.now
	n.RevisionNumber++
	w.exec(`UPDATE networks SET obj = $2 WHERE id = $1`, n.ID, mustJSON(n))
	w.record(KindNetwork, n.ID, op, *n)
}

// network loads a network for update.
func (w *wtx) network(ctx context.Context, id string, n *Network) error {
	err := w.getObj(ctx, "networks", id, n)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("NetworkNotFound", "Network %s could not be found.", id)
	}
	if err != nil {
		return fmt.Errorf("load network %s: %w", id, err)
	}
	return nil
}

// autoDeletedOwners are port owners a network delete removes by itself.
var autoDeletedOwners = map[string]bool{OwnerDHCP: true, OwnerFloatingIPAgentGateway: true}

// DeleteNetwork deletes a network with its subnets. It refuses (NetworkInUse) while the
// network has ports other than DHCP and floating IP agent gateway ports, including router
// ports: remove router interfaces and gateways first, as in Neutron.
func (s *Store) DeleteNetwork(ctx context.Context, id string) error {
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var n Network
		if err := w.network(ctx, id, &n); err != nil {
			return err
		}
		ports, err := objs[Port](ctx, w.query, `SELECT obj FROM ports WHERE network_id = $1`, id)
		if err != nil {
			return fmt.Errorf("load ports of network %s: %w", id, err)
		}
		var busy int
		for _, p := range ports {
			if !autoDeletedOwners[p.DeviceOwner] {
				busy++
			}
		}
		if busy > 0 {
			return conflict("NetworkInUse", "Unable to complete operation on network %s. There are one or more ports still in use on the network.", id)
		}
		var fips int
		if err := w.queryRow(ctx, `SELECT count(*) FROM floatingips WHERE floating_network_id = $1`, id).Scan(&fips); err != nil {
			return fmt.Errorf("count floating IPs of network %s: %w", id, err)
		}
		if fips > 0 {
			return conflict("NetworkInUse", "Unable to complete operation on network %s. There are one or more floating IPs on the network.", id)
		}
		for i := range ports {
			w.deletePortRow(&ports[i])
		}
		subnets, err := objs[Subnet](ctx, w.query, `SELECT obj FROM subnets WHERE network_id = $1`, id)
		if err != nil {
			return fmt.Errorf("load subnets of network %s: %w", id, err)
		}
		for _, sn := range subnets {
			w.exec(`DELETE FROM ip_allocations WHERE subnet_id = $1`, sn.ID)
			w.exec(`DELETE FROM subnets WHERE id = $1`, sn.ID)
			w.record(KindSubnet, sn.ID, OpDelete, sn)
		}
		rows, err := w.query(ctx, `DELETE FROM local_vlans WHERE network_id = $1 RETURNING host, vlan`, id)
		if err != nil {
			return fmt.Errorf("release local VLANs of network %s: %w", id, err)
		}
		var host string
		var vlan int
		if _, err := pgx.ForEachRow(rows, []any{&host, &vlan}, func() error {
			lv := LocalVLAN{Host: host, NetworkID: id, VLAN: uint16(vlan)}
			w.record(KindLocalVLAN, lv.key(), OpDelete, lv)
			return nil
		}); err != nil {
			return fmt.Errorf("release local VLANs of network %s: %w", id, err)
		}
		w.exec(`DELETE FROM networks WHERE id = $1`, id)
		w.record(KindNetwork, id, OpDelete, n)
		return nil
	})
	return err
}

// GetNetwork returns one network.
func (s *Store) GetNetwork(ctx context.Context, id string) (*Network, error) {
	ns, err := objs[Network](ctx, s.pool.Query, `SELECT obj FROM networks WHERE id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("get network %s: %w", id, err)
	}
	if len(ns) == 0 {
		return nil, notFound("NetworkNotFound", "Network %s could not be found.", id)
	}
	return &ns[0], nil
}

// ListNetworks returns every network.
func (s *Store) ListNetworks(ctx context.Context) ([]Network, error) {
	ns, err := objs[Network](ctx, s.pool.Query, `SELECT obj FROM networks ORDER BY obj->>'created_at', id`)
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

func (lv LocalVLAN) key() string { return lv.Host + "/" + lv.NetworkID }
