package db

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
)

// FloatingIPSpec holds the fields of a floating IP create or update; nil means "not
// given". PortID set to "" disassociates.
type FloatingIPSpec struct {
	ProjectID         string // create only
	FloatingNetworkID string // create only
	FloatingIPAddress *string
	SubnetID          *string
	PortID            *string
	FixedIPAddress    *string
	Description       *string
}

// Floating IP statuses: ACTIVE while associated, DOWN otherwise.
const (
	FloatingIPActive = "ACTIVE"
	FloatingIPDown   = "DOWN"
)

// AgentID returns the stable ID of a host's agent of the given type ("Open vSwitch
// agent", "L3 agent"): the device_id of its floating IP agent gateway ports.
func AgentID(host, agentType string) string {
	h := sha1.Sum([]byte("dvrflow-agent\x00" + host + "\x00" + agentType))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}

// Agent types.
const (
	AgentTypeOVS = "Open vSwitch agent"
	AgentTypeL3  = "L3 agent"
)

// CreateFloatingIP allocates an address on an external network (a network:floatingip
// port) and associates it with a port when one is given.
func (s *Store) CreateFloatingIP(ctx context.Context, spec FloatingIPSpec) (*topology.FloatingIP, error) {
	var f topology.FloatingIP
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		if err := w.checkQuotaOne(ctx, QuotaFloatingIP, spec.ProjectID, 1); err != nil {
			return err
		}
		f = topology.FloatingIP{ID: newID(), ProjectID: spec.ProjectID, FloatingNetworkID: spec.FloatingNetworkID, Status: FloatingIPDown}
		if spec.Description != nil {
			f.Description = *spec.Description
		}
		n, subnets, err := w.networkWithSubnets(ctx, spec.FloatingNetworkID)
		if err != nil {
			return err
		}
		if !n.External {
			return badRequest("Bad floatingip request: Network %s is not a valid external network.", n.ID)
		}
		if len(subnets) > 0 && !slices.ContainsFunc(subnets, func(sn topology.Subnet) bool { return sn.IsIPv4() }) {
			return badRequest("Bad floatingip request: Network %s does not contain any IPv4 subnet", n.ID)
		}
		var ips *[]FixedIPSpec
		if spec.FloatingIPAddress != nil || spec.SubnetID != nil {
			fs := FixedIPSpec{}
			if spec.FloatingIPAddress != nil {
				fs.IPAddress = *spec.FloatingIPAddress
			}
			if spec.SubnetID != nil {
				fs.SubnetID = *spec.SubnetID
			}
			ips = &[]FixedIPSpec{fs}
		}
		p := topology.Port{ID: newID(), NetworkID: n.ID, DeviceOwner: topology.OwnerFloatingIP, DeviceID: f.ID,
			Status: topology.PortStatusNotApplicable, AdminStateUp: true}
		if err := w.insertPort(ctx, &p, n, subnets, nil, ips, nil); err != nil {
			return err
		}
		if len(p.FixedIPs) == 0 {
			return badRequest("Bad floatingip request: external network %s has no subnet.", n.ID)
		}
		f.FloatingIPAddress, f.FloatingPortID = p.FixedIPs[0].IPAddress, p.ID
		for _, fi := range p.FixedIPs { // the first IPv4 address, as Neutron's
			if !strings.Contains(fi.IPAddress, ":") {
				f.FloatingIPAddress = fi.IPAddress
				break
			}
		}
		f.CreatedAt, f.UpdatedAt = w.now, w.now
		if spec.PortID != nil && *spec.PortID != "" {
			if err := w.associate(ctx, &f, *spec.PortID, spec.FixedIPAddress); err != nil {
				return err
			}
		}
		w.exec(`INSERT INTO floatingips (id, project_id, floating_network_id, port_id, router_id, obj) VALUES ($1, $2, $3, $4, $5, $6)`,
			f.ID, f.ProjectID, f.FloatingNetworkID, f.PortID, f.RouterID, mustJSON(f))
		w.record(topology.KindFloatingIP, f.ID, topology.OpCreate, f)
		if f.PortID == "" {
			return nil // no host gained a floating IP
		}
		return w.ensureAgentGateway(ctx, f.FloatingNetworkID, f.PortID)
	})
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// associate points f at port's fixed IP through the router that connects the port's
// subnet to f's external network.
func (w *wtx) associate(ctx context.Context, f *topology.FloatingIP, portID string, fixedIP *string) error {
	var p topology.Port
	if err := w.port(ctx, portID, &p); err != nil {
		return err
	}
	if routerOwners[p.DeviceOwner] {
		return badRequest("Bad floatingip request: Port %s has owner %s and cannot have a floating IP.", p.ID, p.DeviceOwner)
	}
	if len(p.FixedIPs) == 0 {
		return badRequest("Bad floatingip request: Port %s does not have any fixed IP addresses.", p.ID)
	}
	fixed := p.FixedIPs[0]
	if fixedIP == nil || *fixedIP == "" {
		// The first IPv4 address: the data path floats IPv4 only, as Neutron.
		i := slices.IndexFunc(p.FixedIPs, func(fi topology.FixedIP) bool { return !strings.Contains(fi.IPAddress, ":") })
		if i < 0 {
			return badRequest("Bad floatingip request: Cannot add floating IP to port %s that has no fixed IPv4 addresses", p.ID)
		}
		fixed = p.FixedIPs[i]
	}
	if fixedIP != nil && *fixedIP != "" {
		if strings.Contains(*fixedIP, ":") {
			return badRequest("Bad floatingip request: Cannot process floating IP association with %s, since that is not an IPv4 address", *fixedIP)
		}
		found := false
		for _, fi := range p.FixedIPs {
			if fi.IPAddress == *fixedIP {
				fixed, found = fi, true
			}
		}
		if !found {
			return badRequest("Bad floatingip request: Port %s does not have fixed ip %s.", p.ID, *fixedIP)
		}
	}
	var other string
	err := w.queryRow(ctx, `SELECT id FROM floatingips WHERE port_id = $1 AND port_id <> '' AND obj->>'fixed_ip_address' = $2 AND floating_network_id = $3 AND id <> $4`,
		p.ID, fixed.IPAddress, f.FloatingNetworkID, f.ID).Scan(&other)
	if err == nil {
		return conflict("FloatingIPPortAlreadyAssociated",
			"Cannot associate floating IP %s (%s) with port %s using fixed IP %s, as that fixed IP already has a floating IP on external network %s.",
			f.FloatingIPAddress, f.ID, p.ID, fixed.IPAddress, f.FloatingNetworkID)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("check floating IPs of port %s: %w", p.ID, err)
	}
	// From the subnet's few interface ports to their routers: starting from the routers
	// would read every router per floating IP.
	var routerID string
	err = w.queryRow(ctx, `
WITH ifp AS MATERIALIZED (
  SELECT ip.device_id FROM ip_allocations a JOIN ports ip ON ip.id = a.port_id
  WHERE a.subnet_id = $2 AND ip.device_owner = $1)
SELECT r.id FROM routers r JOIN ifp ON r.id = ifp.device_id
WHERE r.obj->'gateway'->>'network_id' = $3
ORDER BY r.id LIMIT 1`, topology.OwnerRouterInterfaceDistributed, fixed.SubnetID, f.FloatingNetworkID).Scan(&routerID)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("ExternalGatewayForFloatingIPNotFound",
			"External network %s is not reachable from subnet %s.  Therefore, cannot associate Port %s with a Floating IP.",
			f.FloatingNetworkID, fixed.SubnetID, p.ID)
	}
	if err != nil {
		return fmt.Errorf("find router for floating IP %s: %w", f.ID, err)
	}
	f.PortID, f.FixedIPAddress, f.RouterID, f.Status = p.ID, fixed.IPAddress, routerID, FloatingIPActive
	return nil
}

func (w *wtx) saveFloatingIP(f *topology.FloatingIP) {
	f.UpdatedAt = w.now
	f.RevisionNumber++
	w.exec(`UPDATE floatingips SET port_id = $2, router_id = $3, obj = $4 WHERE id = $1`, f.ID, f.PortID, f.RouterID, mustJSON(f))
	w.record(topology.KindFloatingIP, f.ID, topology.OpUpdate, *f)
}

// disassociate clears f's association and saves it.
func (w *wtx) disassociate(f *topology.FloatingIP) {
	f.PortID, f.FixedIPAddress, f.RouterID, f.Status = "", "", "", FloatingIPDown
	w.saveFloatingIP(f)
}

func (w *wtx) floatingIP(ctx context.Context, id string, f *topology.FloatingIP) error {
	err := w.getObj(ctx, "floatingips", id, f)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("FloatingIPNotFound", "Floating IP %s could not be found", id)
	}
	if err != nil {
		return fmt.Errorf("load floating IP %s: %w", id, err)
	}
	return w.constrain(topology.KindFloatingIP, id, f.RevisionNumber)
}

// UpdateFloatingIP associates (port_id set), re-associates or disassociates (port_id "")
// a floating IP.
func (s *Store) UpdateFloatingIP(ctx context.Context, id string, spec FloatingIPSpec) (*topology.FloatingIP, error) {
	if spec.FloatingIPAddress != nil || spec.SubnetID != nil {
		return nil, badRequest("Bad floatingip request: floating_ip_address and subnet_id cannot be updated.")
	}
	var f topology.FloatingIP
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		if err := w.floatingIP(ctx, id, &f); err != nil {
			return err
		}
		if spec.Description != nil {
			f.Description = *spec.Description
		}
		if spec.PortID != nil {
			if *spec.PortID == "" {
				f.PortID, f.FixedIPAddress, f.RouterID, f.Status = "", "", "", FloatingIPDown
			} else if err := w.associate(ctx, &f, *spec.PortID, spec.FixedIPAddress); err != nil {
				return err
			}
		}
		w.saveFloatingIP(&f)
		return w.reconcileAgentGateways(ctx, f.FloatingNetworkID)
	})
	if err != nil {
		return nil, err
	}
	return &f, nil
}

// DeleteFloatingIP releases a floating IP and its address.
func (s *Store) DeleteFloatingIP(ctx context.Context, id string) error {
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var f topology.FloatingIP
		if err := w.floatingIP(ctx, id, &f); err != nil {
			return err
		}
		var p topology.Port
		if err := w.port(ctx, f.FloatingPortID, &p); err != nil {
			return err
		}
		w.exec(`DELETE FROM floatingips WHERE id = $1`, id)
		w.record(topology.KindFloatingIP, id, topology.OpDelete, f)
		if err := w.deletePort(ctx, &p); err != nil {
			return err
		}
		return w.reconcileAgentGateways(ctx, f.FloatingNetworkID)
	})
	return err
}

// reconcileAgentGateways keeps one network:floatingip_agent_gateway port on external
// network extNet for each host that has a port with a floating IP on it, and none
// for other hosts.
func (w *wtx) reconcileAgentGateways(ctx context.Context, extNet string) error {
	rows, err := w.query(ctx, `
SELECT DISTINCT p.host FROM floatingips f JOIN ports p ON p.id = f.port_id
WHERE f.floating_network_id = $1 AND p.host <> ''`, extNet)
	if err != nil {
		return fmt.Errorf("hosts with floating IPs on %s: %w", extNet, err)
	}
	hosts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("hosts with floating IPs on %s: %w", extNet, err)
	}
	want := map[string]bool{}
	for _, h := range hosts {
		want[h] = true
	}
	have, err := objs[topology.Port](ctx, w.query, `SELECT obj FROM ports WHERE network_id = $1 AND device_owner = $2`, extNet, topology.OwnerFloatingIPAgentGateway)
	if err != nil {
		return fmt.Errorf("agent gateway ports on %s: %w", extNet, err)
	}
	for i := range have {
		if want[have[i].HostID] {
			delete(want, have[i].HostID)
			continue
		}
		if err := w.deletePort(ctx, &have[i]); err != nil {
			return err
		}
	}
	if len(want) == 0 {
		return nil
	}
	n, subnets, err := w.networkWithSubnets(ctx, extNet)
	if err != nil {
		return err
	}
	for _, h := range hosts {
		if !want[h] {
			continue
		}
		p := topology.Port{ID: newID(), NetworkID: extNet, DeviceOwner: topology.OwnerFloatingIPAgentGateway, DeviceID: AgentID(h, AgentTypeL3),
			HostID: h, Status: topology.PortStatusDown, AdminStateUp: true}
		if err := w.insertPort(ctx, &p, n, subnets, nil, nil, nil); err != nil {
			return err
		}
	}
	return nil
}

// ensureAgentGateway is reconcileAgentGateways after a floating IP on extNet was
// associated with port and nothing else changed: only the port's host may need an agent
// gateway port, and none can become unneeded. It reads the host's ports, not the
// network's.
func (w *wtx) ensureAgentGateway(ctx context.Context, extNet, portID string) error {
	// The host's own ports (a few dozen) are read, not the external network's (one per
	// floating IP and gateway): an index on both would be read for the latter.
	var host string
	var gwNets []string
	err := w.queryRow(ctx, `
SELECT p.host, coalesce(array_agg(g.network_id) FILTER (WHERE g.device_owner = $2), '{}')
FROM ports p LEFT JOIN ports g ON g.host = p.host AND g.host <> ''
WHERE p.id = $1 GROUP BY p.host`, portID, topology.OwnerFloatingIPAgentGateway).Scan(&host, &gwNets)
	if err != nil {
		return fmt.Errorf("agent gateway for port %s: %w", portID, err)
	}
	have := slices.Contains(gwNets, extNet)
	if host == "" || have {
		return nil
	}
	n, subnets, err := w.networkWithSubnets(ctx, extNet)
	if err != nil {
		return err
	}
	p := topology.Port{ID: newID(), NetworkID: extNet, DeviceOwner: topology.OwnerFloatingIPAgentGateway, DeviceID: AgentID(host, AgentTypeL3),
		HostID: host, Status: topology.PortStatusDown, AdminStateUp: true}
	return w.insertPort(ctx, &p, n, subnets, nil, nil, nil)
}

// GetFloatingIP returns one floating IP.
func (s *Store) GetFloatingIP(ctx context.Context, id string) (*topology.FloatingIP, error) {
	xs, err := objs[topology.FloatingIP](ctx, s.pool.Query, `SELECT obj FROM floatingips WHERE id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("get floating IP %s: %w", id, err)
	}
	if len(xs) == 0 {
		return nil, notFound("FloatingIPNotFound", "Floating IP %s could not be found", id)
	}
	return &xs[0], nil
}

// ListFloatingIPs returns every floating IP.
func (s *Store) ListFloatingIPs(ctx context.Context) ([]topology.FloatingIP, error) {
	xs, err := objs[topology.FloatingIP](ctx, s.pool.Query, `SELECT obj FROM floatingips ORDER BY obj->>'created_at', id`)
	if err != nil {
		return nil, fmt.Errorf("list floating IPs: %w", err)
	}
	return xs, nil
}
