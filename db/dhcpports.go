package db

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
)

// The DHCP port of a network. In Neutron the DHCP agent serving a network creates a
// network:dhcp port on it, with an address on each DHCP-enabled subnet, IPv4 or IPv6 (the
// lowest free one of the pools, as any automatic address, or its EUI-64 address on a
// SLAAC or DHCPv6-stateless subnet), adds and removes those addresses as
// subnets come, go or change enable_dhcp, deletes it when the network has no DHCP-enabled
// subnet left, and creates a new one when it is deleted. dvrflow's DHCP server is the
// controller, answering on every host, so the store keeps that port itself, in the same
// write as the subnet or port change that calls for it (a refused request leaves it as it
// was): device_id topology.DHCPDeviceID(network), bound to no host, ACTIVE. Its addresses
// are the server's on each subnet. A subnet whose pools have no free address for it gets
// none, as the agent's port would not; the network's next sync (a subnet created, deleted
// or toggled, or the store opened) tries again.
// Users may still create, change and delete network:dhcp ports as in Neutron; only the
// port with that device_id is the managed one.

// newDHCPPort returns the managed DHCP port of network n, without MAC and addresses. It
// takes the network's port security, as Neutron gives it to the agent's port, and no
// security group (a network:* port gets no default group): the port is bound to no host,
// so no firewall flow is built for it either way.
func newDHCPPort(n *topology.Network) topology.Port {
	return topology.Port{ID: newID(), NetworkID: n.ID, ProjectID: n.ProjectID, DeviceOwner: topology.OwnerDHCP,
		DeviceID: topology.DHCPDeviceID(n.ID), Status: topology.PortStatusActive, AdminStateUp: true,
		FixedIPs: []topology.FixedIP{}, PortSecurityEnabled: n.PortSecurityEnabled,
		SecurityGroups: []string{}, AllowedAddressPairs: []topology.AddressPair{}, ExtraDHCPOpts: []topology.ExtraDHCPOpt{}}
}

// managedDHCPPorts returns the managed DHCP port of each of the networks that has one
// (the oldest, should a user have made another with the same device).
func (w *wtx) managedDHCPPorts(ctx context.Context, netIDs []string) (map[string]*topology.Port, error) {
	devs := make([]string, len(netIDs))
	for i, id := range netIDs {
		devs[i] = topology.DHCPDeviceID(id)
	}
	ps, err := objs[topology.Port](ctx, w.query, `SELECT obj FROM ports WHERE device_id = ANY($1) AND device_owner = $2
ORDER BY obj->>'created_at', id`, devs, topology.OwnerDHCP)
	if err != nil {
		return nil, fmt.Errorf("load DHCP ports: %w", err)
	}
	out := make(map[string]*topology.Port, len(ps))
	for i := range ps {
		if p := &ps[i]; topology.IsManagedDHCPPort(p) && out[p.NetworkID] == nil {
			out[p.NetworkID] = p
		}
	}
	return out, nil
}

// syncDHCPPort brings the managed DHCP port of network n in line with subnets, every
// subnet the network has now: an address on each DHCP-enabled one, of either version,
// that has a free address (dhcpAddress), none on the others. It creates the port when the network needs one, and
// deletes it when it is left without an address. Addresses on subnets that are gone are
// dropped without a release (their allocations go with the subnet).
func (w *wtx) syncDHCPPort(ctx context.Context, n *topology.Network, subnets []topology.Subnet) error {
	subnets = slices.Clone(subnets)
	slices.SortFunc(subnets, func(a, b topology.Subnet) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	byID := make(map[string]*topology.Subnet, len(subnets))
	for i := range subnets {
		byID[subnets[i].ID] = &subnets[i]
	}
	ports, err := w.managedDHCPPorts(ctx, []string{n.ID})
	if err != nil {
		return err
	}
	p, exists := ports[n.ID], ports[n.ID] != nil
	if !exists {
		np := newDHCPPort(n)
		p = &np
	}
	if !exists {
		if !slices.ContainsFunc(subnets, func(sn topology.Subnet) bool { return sn.EnableDHCP }) {
			return nil
		}
		// Its MAC first: its EUI-64 addresses come from it.
		p.MACAddress = randomMAC(w.cfg.BaseMAC)
		var used bool
		if err := w.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ports WHERE network_id = $1 AND mac_address = $2)`, n.ID, p.MACAddress).Scan(&used); err != nil {
			return fmt.Errorf("check MAC %s: %w", p.MACAddress, err)
		}
		if used {
			return errRetry // the whole write is run again, with another MAC
		}
	}
	has := map[string]bool{}
	changed := false
	kept := []topology.FixedIP{}
	for _, f := range p.FixedIPs {
		sn := byID[f.SubnetID]
		if sn != nil && sn.EnableDHCP && !has[sn.ID] {
			has[sn.ID] = true
			kept = append(kept, f)
			continue
		}
		changed = true
		if sn != nil {
			w.releaseAddr(sn, f.IPAddress)
		}
	}
	for i := range subnets {
		sn := &subnets[i]
		if !sn.EnableDHCP || has[sn.ID] {
			continue
		}
		f, ok, err := w.dhcpAddress(ctx, sn, p)
		if err != nil {
			return err
		}
		if ok {
			kept = append(kept, f)
			changed = true
		}
	}
	p.FixedIPs = kept
	switch {
	case !changed:
		return nil
	case exists && len(p.FixedIPs) == 0:
		w.deletePortRow(p)
		return nil
	case exists:
		w.savePort(p)
		return nil
	}
	w.queuePortInsert(p)
	return nil
}

// dhcpAddress allocates the address of DHCP port p on subnet sn, as Neutron allocates the
// one its DHCP agent asks for: its EUI-64 address on an auto-address subnet, else the
// lowest free pool address. ok is false when the pools have no free address.
func (w *wtx) dhcpAddress(ctx context.Context, sn *topology.Subnet, p *topology.Port) (topology.FixedIP, bool, error) {
	if !sn.IsAutoAddress() {
		return allocateFrom(ctx, w, sn, p.ID)
	}
	ip, err := subnetEUI64(sn, p.MACAddress)
	if err != nil {
		return topology.FixedIP{}, false, err
	}
	if err := w.allocateSpecific6(ctx, sn, ip, p.ID); err != nil {
		return topology.FixedIP{}, false, err
	}
	return topology.FixedIP{SubnetID: sn.ID, IPAddress: ip.String()}, true, nil
}

// syncNetworkDHCPPort is syncDHCPPort for a network given by ID, loading it and its
// subnets.
func (w *wtx) syncNetworkDHCPPort(ctx context.Context, netID string) error {
	n, subnets, err := w.networkWithSubnets(ctx, netID)
	if err != nil {
		return err
	}
	return w.syncDHCPPort(ctx, n, subnets)
}

// bulkDHCP gives the DHCP-enabled subnets of a bulk create their DHCP port's address:
// allocated in memory from the subnet's new free ranges, so the batch costs a fixed
// number of queries whatever its size.
type bulkDHCP struct {
	nets  []*topology.Network           // networks gaining DHCP addresses, in batch order
	added map[string][]topology.FixedIP // network -> the addresses, in subnet order
}

// take allocates the lowest address of free (the subnet's free ranges, which it updates)
// for the DHCP port of sn's network n. It does nothing when free is empty.
func (b *bulkDHCP) take(n *topology.Network, sn *topology.Subnet, free []ipRange) []ipRange {
	if len(free) == 0 {
		return free
	}
	ip := free[0].first
	if free[0].first == free[0].last {
		free = free[1:]
	} else {
		free[0].first++
	}
	if _, ok := b.added[n.ID]; !ok {
		b.nets = append(b.nets, n)
	}
	b.added[n.ID] = append(b.added[n.ID], topology.FixedIP{SubnetID: sn.ID, IPAddress: ipString(ip)})
	return free
}

// queue adds the addresses to the networks' DHCP ports, creating those that do not exist
// yet (their MACs drawn as a bulk port create draws them), and writes the allocations. It
// runs after the subnets' rows are queued.
func (b *bulkDHCP) queue(ctx context.Context, w *wtx) error {
	if len(b.nets) == 0 {
		return nil
	}
	ids := make([]string, len(b.nets))
	for i, n := range b.nets {
		ids[i] = n.ID
	}
	have, err := w.managedDHCPPorts(ctx, ids)
	if err != nil {
		return err
	}
	var updated []*topology.Port
	var created []topology.Port
	for _, n := range b.nets {
		if p := have[n.ID]; p != nil {
			p.FixedIPs = append(p.FixedIPs, b.added[n.ID]...)
			updated = append(updated, p)
			continue
		}
		p := newDHCPPort(n)
		p.FixedIPs = b.added[n.ID]
		created = append(created, p)
	}
	if err := w.assignMACs(ctx, created, make([]PortSpec, len(created))); err != nil {
		return err
	}
	portOf := make(map[string]string, len(b.nets))
	for _, p := range updated {
		portOf[p.NetworkID] = p.ID
	}
	for i := range created {
		portOf[created[i].NetworkID] = created[i].ID
	}
	var sub, port []string
	var ip []int64
	for _, n := range b.nets {
		for _, f := range b.added[n.ID] {
			v, _ := parseIPv4(f.IPAddress)
			sub, port, ip = append(sub, f.SubnetID), append(port, portOf[n.ID]), append(ip, int64(v))
		}
	}
	w.exec(`INSERT INTO ip_allocations (subnet_id, ip, port_id) SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])`, sub, ip, port)
	if len(updated) > 0 {
		w.savePorts(updated)
	}
	if len(created) > 0 {
		w.queuePortInserts(created)
	}
	return nil
}

// SyncDHCPPorts gives every network with a DHCP-enabled subnet on which its managed DHCP
// port has no address (a store written before dvrflow kept DHCP ports, or a subnet whose
// pools were full) its DHCP port's address, in one write, as Neutron's DHCP agent does
// when it starts. Open calls it; it writes nothing when there is nothing to do.
func (s *Store) SyncDHCPPorts(ctx context.Context) error {
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		rows, err := w.query(ctx, `
SELECT DISTINCT s.network_id FROM subnets s
WHERE (s.obj->>'enable_dhcp')::boolean AND NOT EXISTS (
  SELECT 1 FROM ip_allocations_all a JOIN ports p ON p.id = a.port_id
  WHERE a.subnet_id = s.id AND p.device_owner = $1 AND p.device_id = $2::text || s.network_id)
ORDER BY 1`, topology.OwnerDHCP, topology.DHCPDeviceID(""))
		if err != nil {
			return fmt.Errorf("find networks without their DHCP port: %w", err)
		}
		nets, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("find networks without their DHCP port: %w", err)
		}
		for _, id := range nets {
			if err := w.syncNetworkDHCPPort(ctx, id); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}
