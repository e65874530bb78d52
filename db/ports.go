package db

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
)

// FixedIPSpec asks for an address: a subnet, an address, or both.
type FixedIPSpec struct {
	SubnetID  string
	IPAddress string
}

// PortSpec holds the fields of a port create or update; nil means "not given".
// HostID is binding:host_id.
type PortSpec struct {
	ProjectID    string // create only
	NetworkID    string // create only
	Name         *string
	Description  *string
	MACAddress   *string
	FixedIPs     *[]FixedIPSpec
	DeviceOwner  *string
	DeviceID     *string
	HostID       *string
	AdminStateUp *bool
	// ExtraDHCPOpts are extra_dhcp_opts items: a create stores those with a value; an
	// update sets, replaces or (value nil) removes the options they name.
	ExtraDHCPOpts *[]ExtraDHCPOptSpec
	// Tags are a new port's tags (create only: Neutron's tag-ports-during-bulk-creation).
	Tags []string
	PortSecurity
}

// routerOwners are the port owners the store itself manages: they cannot be created,
// re-owned or deleted through the port API.
var routerOwners = map[string]bool{
	topology.OwnerRouterInterfaceDistributed: true,
	topology.OwnerRouterCentralizedSNAT:      true,
	topology.OwnerRouterGateway:              true,
	topology.OwnerFloatingIPAgentGateway:     true,
	topology.OwnerFloatingIP:                 true,
}

func normalizeMAC(s string) (string, error) {
	m, err := net.ParseMAC(s)
	if err != nil || len(m) != 6 {
		return "", invalid("'%s' is not a valid MAC address", s)
	}
	if m[0]&1 == 1 || bytes.Equal(m, make(net.HardwareAddr, 6)) {
		return "", invalid("'%s' is not a valid unicast MAC address", s)
	}
	return m.String(), nil
}

// CreatePort creates a port, allocating its MAC (unless given) and its fixed IPs (from
// the first subnet of the network with a free address, unless given).
func (s *Store) CreatePort(ctx context.Context, spec PortSpec) (*topology.Port, error) {
	if spec.DeviceOwner != nil && routerOwners[*spec.DeviceOwner] {
		return nil, invalid("device_owner %s is reserved for ports the router service manages", *spec.DeviceOwner)
	}
	if err := checkPortSpec(spec); err != nil {
		return nil, err
	}
	var p topology.Port
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		if err := w.checkQuotaOne(ctx, QuotaPort, spec.ProjectID, 1); err != nil {
			return err
		}
		p = topology.Port{ID: newID(), NetworkID: spec.NetworkID, ProjectID: spec.ProjectID, Status: topology.PortStatusDown,
			AdminStateUp: true, FixedIPs: []topology.FixedIP{}, ExtraDHCPOpts: newExtraDHCPOpts(spec.ExtraDHCPOpts)}
		applyPortSpec(&p, spec)
		if spec.MACAddress == nil && spec.FixedIPs == nil {
			return w.createPortAuto(ctx, &p, spec.PortSecurity)
		}
		n, subnets, err := w.networkWithSubnets(ctx, spec.NetworkID)
		if err != nil {
			return err
		}
		return w.insertPort(ctx, &p, n, subnets, spec.MACAddress, spec.FixedIPs, &spec.PortSecurity)
	})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// checkPortSpec checks what of a port create or update needs no look-up.
func checkPortSpec(spec PortSpec) error {
	if spec.ExtraDHCPOpts != nil {
		return checkExtraDHCPOpts(*spec.ExtraDHCPOpts)
	}
	return nil
}

func applyPortSpec(p *topology.Port, spec PortSpec) {
	if len(spec.Tags) > 0 {
		p.Tags = spec.Tags
	}
	if spec.Name != nil {
		p.Name = *spec.Name
	}
	if spec.Description != nil {
		p.Description = *spec.Description
	}
	if spec.DeviceOwner != nil {
		p.DeviceOwner = *spec.DeviceOwner
	}
	if spec.DeviceID != nil {
		p.DeviceID = *spec.DeviceID
	}
	if spec.HostID != nil {
		p.HostID = *spec.HostID
	}
	if spec.AdminStateUp != nil {
		p.AdminStateUp = *spec.AdminStateUp
	}
}

// insertPort allocates p's MAC and addresses, settles its port security (sec; nil for a
// port the store manages: its network's port security, no groups) and stores it.
func (w *wtx) insertPort(ctx context.Context, p *topology.Port, n *topology.Network, subnets []topology.Subnet, mac *string, ips *[]FixedIPSpec, sec *PortSecurity) error {
	m := randomMAC(w.cfg.BaseMAC)
	if mac != nil {
		var err error
		if m, err = normalizeMAC(*mac); err != nil {
			return err
		}
	}
	var used bool
	if err := w.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ports WHERE network_id = $1 AND mac_address = $2)`, n.ID, m).Scan(&used); err != nil {
		return fmt.Errorf("check MAC %s: %w", m, err)
	}
	if used && mac == nil {
		return errRetry
	}
	if used {
		return conflict("MacAddressInUse", "Unable to complete operation for network %s. The mac address %s is in use.", n.ID, m)
	}
	p.MACAddress = m
	fixed, err := allocateIPs(ctx, w, p, n, subnets, ips)
	if err != nil {
		return err
	}
	p.FixedIPs = fixed
	if sec == nil {
		sec = &PortSecurity{SecurityGroups: &[]string{}}
	}
	if err := w.secureNewPort(ctx, p, n.PortSecurityEnabled, *sec); err != nil {
		return err
	}
	w.queuePortInsert(p)
	return nil
}

// queuePortInsert queues the insert of a new port (its address rows may come before it:
// the foreign key is deferred) and records it.
func (w *wtx) queuePortInsert(p *topology.Port) {
	p.CreatedAt, p.UpdatedAt = w.now, w.now
	if p.ExtraDHCPOpts == nil {
		p.ExtraDHCPOpts = []topology.ExtraDHCPOpt{}
	}
	w.exec(`INSERT INTO ports (id, network_id, project_id, mac_address, device_owner, device_id, host, obj) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		p.ID, p.NetworkID, p.ProjectID, p.MACAddress, p.DeviceOwner, p.DeviceID, p.HostID, mustJSON(p))
	w.record(topology.KindPort, p.ID, topology.OpCreate, *p)
}

// createPortAuto creates a port with a random MAC and one automatic address in a single
// round trip: it loads the network, takes the lowest free address of the first subnet
// that has one, and checks the MAC, all in one statement.
func (w *wtx) createPortAuto(ctx context.Context, p *topology.Port, sec PortSecurity) error {
	p.MACAddress = randomMAC(w.cfg.BaseMAC)
	var nraw []byte
	var netSecurity bool
	var subnetID *string
	var first *int64
	var macUsed, v6 bool
	var nsubnets int
	// A network with IPv6 subnets takes the general path (v6 is false there: nothing is
	// allocated here).
	err := w.queryRow(ctx, `
WITH n AS (SELECT obj FROM networks WHERE id = $1),
v6 AS (SELECT EXISTS (SELECT 1 FROM subnets WHERE network_id = $1 AND obj->>'ip_version' = '6') AS v6),
r AS (
  SELECT f.id, f.subnet_id, f.first, f.last
  FROM ip_free_ranges f JOIN subnets sn ON sn.id = f.subnet_id
  WHERE sn.network_id = $1 AND EXISTS (SELECT 1 FROM n) AND NOT (SELECT v6 FROM v6)
  ORDER BY sn.obj->>'created_at', sn.id, f.first LIMIT 1),
u AS (UPDATE ip_free_ranges f SET first = r.first + 1 FROM r WHERE f.id = r.id AND r.first < r.last RETURNING f.id),
d AS (DELETE FROM ip_free_ranges f USING r WHERE f.id = r.id AND r.first = r.last RETURNING f.id)
SELECT n.obj, coalesce((n.obj->>'port_security_enabled')::boolean, true), r.subnet_id, r.first,
       EXISTS (SELECT 1 FROM ports WHERE network_id = $1 AND mac_address = $2),
       (SELECT count(*) FROM subnets WHERE network_id = $1), (SELECT v6 FROM v6)
FROM n LEFT JOIN r ON true`, p.NetworkID, p.MACAddress).Scan(&nraw, &netSecurity, &subnetID, &first, &macUsed, &nsubnets, &v6)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("NetworkNotFound", "Network %s could not be found.", p.NetworkID)
	}
	if err != nil {
		return fmt.Errorf("create port on network %s: %w", p.NetworkID, err)
	}
	if v6 {
		n, subnets, err := w.networkWithSubnets(ctx, p.NetworkID)
		if err != nil {
			return err
		}
		return w.insertPort(ctx, p, n, subnets, nil, nil, &sec)
	}
	if macUsed {
		return errRetry
	}
	p.FixedIPs = []topology.FixedIP{}
	if subnetID == nil && nsubnets > 0 {
		return conflict("IpAddressGenerationFailure", "No more IP addresses available on network %s.", p.NetworkID)
	}
	if subnetID != nil {
		w.exec(`INSERT INTO ip_allocations (subnet_id, ip, port_id) VALUES ($1, $2, $3)`, *subnetID, *first, p.ID)
		p.FixedIPs = append(p.FixedIPs, topology.FixedIP{SubnetID: *subnetID, IPAddress: ipString(uint32(*first))})
	}
	if err := w.secureNewPort(ctx, p, netSecurity, sec); err != nil {
		return err
	}
	w.queuePortInsert(p)
	return nil
}

// addressPool hands out the free addresses of subnets: the store itself within a write
// (*wtx), or a batch's in-memory view of it (*bulkIPAM).
type addressPool interface {
	// allocateAny takes the lowest free address of an IPv4 subnet for port; ok is false
	// when the subnet is exhausted.
	allocateAny(ctx context.Context, subnetID, portID string) (ip uint32, ok bool, err error)
	// allocateSpecific takes a given address of an IPv4 subnet for port: 409 if it is taken.
	allocateSpecific(ctx context.Context, sn *topology.Subnet, ip uint32, portID string) error
	// allocateAny6 and allocateSpecific6 are the same for an IPv6 subnet.
	allocateAny6(ctx context.Context, subnetID, portID string) (ip netip.Addr, ok bool, err error)
	allocateSpecific6(ctx context.Context, sn *topology.Subnet, ip netip.Addr, portID string) error
}

// allocateFrom takes the lowest free pool address of subnet sn, of either version, for
// port. ok is false when the subnet is exhausted.
func allocateFrom(ctx context.Context, pool addressPool, sn *topology.Subnet, portID string) (topology.FixedIP, bool, error) {
	if sn.IsIPv4() {
		ip, ok, err := pool.allocateAny(ctx, sn.ID, portID)
		return topology.FixedIP{SubnetID: sn.ID, IPAddress: ipString(ip)}, ok, err
	}
	ip, ok, err := pool.allocateAny6(ctx, sn.ID, portID)
	return topology.FixedIP{SubnetID: sn.ID, IPAddress: ip.String()}, ok, err
}

// routerAddressOwners are the owners of router ports, which take pool addresses (or the
// gateway) on auto-address subnets rather than EUI-64 ones (Neutron's
// ROUTER_INTERFACE_OWNERS_SNAT).
var routerAddressOwners = map[string]bool{
	topology.OwnerRouterInterfaceDistributed: true,
	topology.OwnerRouterCentralizedSNAT:      true,
}

// allocateIPs allocates from pool the addresses asked for for port p on network n. With
// none asked for (specs nil) it takes, as Neutron does, one address of the first IPv4
// subnet with a free one, and one of the first such IPv6 subnet whose addresses come from
// pools (DHCPv6-stateful or no mode). Either way, a port other than a router's gets its
// EUI-64 address on each auto-address (SLAAC, DHCPv6-stateless) subnet it has no address
// on in p.FixedIPs yet; such a subnet refuses any other address for it.
func allocateIPs(ctx context.Context, pool addressPool, p *topology.Port, n *topology.Network, subnets []topology.Subnet, specs *[]FixedIPSpec) ([]topology.FixedIP, error) {
	out := []topology.FixedIP{}
	router := routerAddressOwners[p.DeviceOwner]
	if specs == nil {
		for _, v4 := range []bool{true, false} {
			has, done := false, false
			for i := range subnets {
				sn := &subnets[i]
				if sn.IsIPv4() != v4 || sn.IsAutoAddress() {
					continue
				}
				has = true
				f, ok, err := allocateFrom(ctx, pool, sn, p.ID)
				if err != nil {
					return nil, err
				}
				if ok {
					out, done = append(out, f), true
					break
				}
			}
			if has && !done {
				return nil, conflict("IpAddressGenerationFailure", "No more IP addresses available on network %s.", n.ID)
			}
		}
		return allocateAutoAddresses(ctx, pool, p, subnets, out)
	}
	byID := map[string]*topology.Subnet{}
	for i := range subnets {
		byID[subnets[i].ID] = &subnets[i]
	}
	seen := map[netip.Addr]bool{}
	for _, f := range *specs {
		var sn *topology.Subnet
		if f.SubnetID != "" {
			if sn = byID[f.SubnetID]; sn == nil {
				return nil, invalid("Failed to create port on network %s, because fixed_ips included invalid subnet %s", n.ID, f.SubnetID)
			}
		}
		if f.IPAddress == "" {
			if sn == nil {
				return nil, invalid("fixed_ips entry needs subnet_id or ip_address")
			}
			if sn.IsAutoAddress() && !router {
				continue // its EUI-64 address comes below
			}
			ip, ok, err := allocateFrom(ctx, pool, sn, p.ID)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, conflict("IpAddressGenerationFailure", "No more IP addresses available for subnet %s.", sn.ID)
			}
			out = append(out, ip)
			continue
		}
		ip, ok := parseAddr(f.IPAddress)
		if !ok {
			return nil, invalid("'%s' is not a valid IP address", f.IPAddress)
		}
		if sn == nil {
			for i := range subnets {
				if validForSubnet(&subnets[i], ip, p.DeviceOwner) {
					sn = &subnets[i]
					break
				}
			}
			if sn == nil {
				return nil, newError(ClassInvalid, "InvalidIpForNetwork", "IP address %s is not a valid IP for any of the subnets on the specified network.", f.IPAddress)
			}
		}
		if !validForSubnet(sn, ip, p.DeviceOwner) {
			return nil, newError(ClassInvalid, "InvalidIpForSubnet", "IP address %s is not a valid IP for the specified subnet.", f.IPAddress)
		}
		if seen[ip] {
			return nil, invalid("duplicate fixed IP %s", f.IPAddress)
		}
		seen[ip] = true
		if sn.IsAutoAddress() && p.DeviceOwner != topology.OwnerRouterInterfaceDistributed {
			// Neutron's AllocationOnAutoAddressSubnet, unless it is the port's own EUI-64.
			if a, err := subnetEUI64(sn, p.MACAddress); err != nil || a != ip {
				return nil, invalid("IPv6 address %s cannot be directly assigned to a port on subnet %s as the subnet is configured for automatic addresses",
					f.IPAddress, sn.ID)
			}
		}
		if gw, ok := parseAddr(sn.GatewayIP); ok && gw == ip && p.DeviceOwner != topology.OwnerRouterInterfaceDistributed {
			return nil, conflict("IpAddressAlreadyAllocated", "IP address %s already allocated in subnet %s: it is the subnet's gateway.", ip, sn.ID)
		}
		var err error
		if sn.IsIPv4() {
			b := ip.As4()
			err = pool.allocateSpecific(ctx, sn, uint32(b[0])<<24|uint32(b[1])<<16|uint32(b[2])<<8|uint32(b[3]), p.ID)
		} else {
			err = pool.allocateSpecific6(ctx, sn, ip, p.ID)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, topology.FixedIP{SubnetID: sn.ID, IPAddress: ip.String()})
	}
	return allocateAutoAddresses(ctx, pool, p, subnets, out)
}

// validForSubnet tells whether ip may be a fixed IP of a port of owner on sn (Neutron's
// check_subnet_ip): in the subnet, and for IPv4 neither its network nor its broadcast
// address; for IPv6 not its first address (the routers' anycast one), unless the port is
// a router's or has no owner.
func validForSubnet(sn *topology.Subnet, ip netip.Addr, owner string) bool {
	c, err := netip.ParsePrefix(sn.CIDR)
	if err != nil || !c.Contains(ip) {
		return false
	}
	if sn.IsIPv4() {
		return ip != c.Addr() && ip != lastAddr(c)
	}
	return ip != c.Addr() || owner == "" || routerAddressOwners[owner] || owner == topology.OwnerRouterGateway
}

// allocateAutoAddresses appends to out p's EUI-64 address on each auto-address subnet
// on which neither p.FixedIPs nor out has an address, unless p is a router port.
func allocateAutoAddresses(ctx context.Context, pool addressPool, p *topology.Port, subnets []topology.Subnet, out []topology.FixedIP) ([]topology.FixedIP, error) {
	if routerAddressOwners[p.DeviceOwner] {
		return out, nil
	}
	for i := range subnets {
		sn := &subnets[i]
		on := func(f topology.FixedIP) bool { return f.SubnetID == sn.ID }
		if !sn.IsAutoAddress() || slices.ContainsFunc(p.FixedIPs, on) || slices.ContainsFunc(out, on) {
			continue
		}
		ip, err := subnetEUI64(sn, p.MACAddress)
		if err != nil {
			return nil, err
		}
		if err := pool.allocateSpecific6(ctx, sn, ip, p.ID); err != nil {
			return nil, err
		}
		out = append(out, topology.FixedIP{SubnetID: sn.ID, IPAddress: ip.String()})
	}
	return out, nil
}

// networkWithSubnets loads a network and its subnets (in creation order) in one query.
func (w *wtx) networkWithSubnets(ctx context.Context, id string) (*topology.Network, []topology.Subnet, error) {
	var nraw, sraw []byte
	err := w.queryRow(ctx, `
SELECT n.obj, coalesce((SELECT json_agg(s.obj ORDER BY s.obj->>'created_at', s.id) FROM subnets s WHERE s.network_id = n.id), '[]')
FROM networks n WHERE n.id = $1`, id).Scan(&nraw, &sraw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, notFound("NetworkNotFound", "Network %s could not be found.", id)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load network %s: %w", id, err)
	}
	var n topology.Network
	var subnets []topology.Subnet
	if err := json.Unmarshal(nraw, &n); err != nil {
		return nil, nil, fmt.Errorf("decode network %s: %w", id, err)
	}
	if err := json.Unmarshal(sraw, &subnets); err != nil {
		return nil, nil, fmt.Errorf("decode subnets of network %s: %w", id, err)
	}
	return &n, subnets, nil
}

func (w *wtx) port(ctx context.Context, id string, p *topology.Port) error {
	err := w.getObj(ctx, "ports", id, p)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("PortNotFound", "Port %s could not be found.", id)
	}
	if err != nil {
		return fmt.Errorf("load port %s: %w", id, err)
	}
	return w.constrain(topology.KindPort, id, p.RevisionNumber)
}

func (w *wtx) savePort(p *topology.Port) {
	p.UpdatedAt = w.now
	p.RevisionNumber++
	w.exec(`UPDATE ports SET device_owner = $2, device_id = $3, host = $4, mac_address = $5, obj = $6 WHERE id = $1`,
		p.ID, p.DeviceOwner, p.DeviceID, p.HostID, p.MACAddress, mustJSON(p))
	w.record(topology.KindPort, p.ID, topology.OpUpdate, *p)
}

// releasePortIPs frees every address of p.
func (w *wtx) releasePortIPs(ctx context.Context, p *topology.Port) error {
	if len(p.FixedIPs) == 0 {
		return nil
	}
	ids := make([]string, 0, len(p.FixedIPs))
	for _, f := range p.FixedIPs {
		ids = append(ids, f.SubnetID)
	}
	subnets, err := objs[topology.Subnet](ctx, w.query, `SELECT obj FROM subnets WHERE id = ANY($1)`, ids)
	if err != nil {
		return fmt.Errorf("load subnets of port %s: %w", p.ID, err)
	}
	byID := map[string]*topology.Subnet{}
	for i := range subnets {
		byID[subnets[i].ID] = &subnets[i]
	}
	for _, f := range p.FixedIPs {
		if sn := byID[f.SubnetID]; sn != nil {
			w.releaseAddr(sn, f.IPAddress)
		}
	}
	return nil
}

// deletePort removes a port and frees its addresses.
func (w *wtx) deletePort(ctx context.Context, p *topology.Port) error {
	if err := w.releasePortIPs(ctx, p); err != nil {
		return err
	}
	w.deletePortRow(p)
	return nil
}

// deletePortRow removes a port's row (its allocations go with it) and records it.
func (w *wtx) deletePortRow(p *topology.Port) {
	w.exec(`DELETE FROM ports WHERE id = $1`, p.ID)
	w.record(topology.KindPort, p.ID, topology.OpDelete, *p)
}

// UpdatePort changes a port's mutable fields. Changing fixed_ips frees the addresses no
// longer listed and allocates the new ones. Router-managed ports accept only name,
// description, admin_state_up, binding and extra DHCP option changes, and a router
// interface port also a change of its address within its subnet (as Neutron takes it:
// tempest's test_router_interface_port_update_with_fixed_ip); its router then routes
// the subnet through the new address.
func (s *Store) UpdatePort(ctx context.Context, id string, spec PortSpec) (*topology.Port, error) {
	if err := checkPortSpec(spec); err != nil {
		return nil, err
	}
	var p topology.Port
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		if err := w.port(ctx, id, &p); err != nil {
			return err
		}
		managed := routerOwners[p.DeviceOwner]
		iface := p.DeviceOwner == topology.OwnerRouterInterfaceDistributed
		if managed && ((spec.FixedIPs != nil && !iface) || spec.DeviceOwner != nil || spec.DeviceID != nil || spec.MACAddress != nil) {
			return conflict("L3PortInUse", "Port %s has owner %s and therefore cannot be changed through the port API.", id, p.DeviceOwner)
		}
		if spec.DeviceOwner != nil && routerOwners[*spec.DeviceOwner] {
			return invalid("device_owner %s is reserved for ports the router service manages", *spec.DeviceOwner)
		}
		oldHost := p.HostID
		applyPortSpec(&p, spec)
		if spec.ExtraDHCPOpts != nil {
			p.ExtraDHCPOpts = updateExtraDHCPOpts(p.ExtraDHCPOpts, *spec.ExtraDHCPOpts)
		}
		if spec.MACAddress != nil {
			m, err := normalizeMAC(*spec.MACAddress)
			if err != nil {
				return err
			}
			if m != p.MACAddress {
				if oldHost != "" {
					return conflict("PortBound", "Unable to complete operation on port %s, port is already bound to host %s.", id, oldHost)
				}
				var used bool
				if err := w.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ports WHERE network_id = $1 AND mac_address = $2)`, p.NetworkID, m).Scan(&used); err != nil {
					return fmt.Errorf("check MAC %s: %w", m, err)
				}
				if used {
					return conflict("MacAddressInUse", "Unable to complete operation for network %s. The mac address %s is in use.", p.NetworkID, m)
				}
				old := p.MACAddress
				p.MACAddress = m
				if err := w.renewEUI64(ctx, &p, old); err != nil {
					return err
				}
			}
		}
		if spec.FixedIPs != nil {
			before := p.FixedIPs
			if err := w.reallocateIPs(ctx, &p, *spec.FixedIPs); err != nil {
				return err
			}
			if iface {
				if err := w.readdressInterface(ctx, &p, before); err != nil {
					return err
				}
			}
		}
		if err := w.secureUpdatedPort(ctx, &p, spec.PortSecurity); err != nil {
			return err
		}
		w.savePort(&p)
		if oldHost != p.HostID || spec.FixedIPs != nil {
			return w.portMoved(ctx, &p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// readdressInterface checks a router interface port's new addresses: dvrflow's router
// routes each subnet through the address its interface port has on it, so the port must
// keep as many addresses on each subnet as it had, and have none elsewhere. Its router's revision
// advances, as its interfaces are part of it.
func (w *wtx) readdressInterface(ctx context.Context, p *topology.Port, before []topology.FixedIP) error {
	subnetsOf := func(xs []topology.FixedIP) []string {
		ids := make([]string, len(xs))
		for i, f := range xs {
			ids[i] = f.SubnetID
		}
		slices.Sort(ids)
		return ids
	}
	if was := subnetsOf(before); !slices.Equal(subnetsOf(p.FixedIPs), was) {
		return badRequest("Bad router request: Router interface port %s must keep as many fixed IPs on each of its subnets (%s) as it has.",
			p.ID, strings.Join(slices.Compact(was), ", "))
	}
	var r topology.Router
	if err := w.router(ctx, p.DeviceID, &r); err != nil {
		return err
	}
	w.saveRouter(&r)
	return nil
}

// reallocateIPs replaces p's addresses by specs, keeping the ones listed again: by
// address, or, for an entry that names only a subnet, an address p has on that subnet and
// no other entry names (Neutron's _get_changed_ips_for_port).
func (w *wtx) reallocateIPs(ctx context.Context, p *topology.Port, specs []FixedIPSpec) error {
	var fips int
	if err := w.queryRow(ctx, `SELECT count(*) FROM floatingips WHERE port_id = $1 AND port_id <> ''`, p.ID).Scan(&fips); err != nil {
		return fmt.Errorf("check floating IPs of port %s: %w", p.ID, err)
	}
	if fips > 0 {
		return conflict("PortInUse", "Port %s has floating IPs associated: disassociate them before changing its fixed IPs.", p.ID)
	}
	n, subnets, err := w.networkWithSubnets(ctx, p.NetworkID)
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	var fresh, bySubnet []FixedIPSpec
	for _, f := range specs {
		switch {
		case f.IPAddress != "" && hasIP(p.FixedIPs, f.IPAddress):
			keep[f.IPAddress] = true
		case f.IPAddress == "" && f.SubnetID != "":
			bySubnet = append(bySubnet, f)
		default:
			fresh = append(fresh, f)
		}
	}
	for _, f := range bySubnet {
		reused := false
		for _, old := range p.FixedIPs {
			if old.SubnetID == f.SubnetID && !keep[old.IPAddress] {
				keep[old.IPAddress], reused = true, true
				break
			}
		}
		if !reused {
			fresh = append(fresh, f)
		}
	}
	auto := map[string]bool{} // Neutron keeps a port's EUI-64 addresses unless it is a router's
	if !routerAddressOwners[p.DeviceOwner] {
		for i := range subnets {
			auto[subnets[i].ID] = subnets[i].IsAutoAddress()
		}
	}
	var gone []topology.FixedIP
	var kept []topology.FixedIP
	for _, f := range p.FixedIPs {
		if keep[f.IPAddress] || auto[f.SubnetID] {
			kept = append(kept, f)
		} else {
			gone = append(gone, f)
		}
	}
	if err := w.releasePortIPs(ctx, &topology.Port{ID: p.ID, FixedIPs: gone}); err != nil {
		return err
	}
	if fresh == nil {
		fresh = []FixedIPSpec{}
	}
	p.FixedIPs = kept
	added, err := allocateIPs(ctx, w, p, n, subnets, &fresh)
	if err != nil {
		return err
	}
	p.FixedIPs = append(append([]topology.FixedIP{}, kept...), added...)
	return nil
}

// renewEUI64 replaces p's EUI-64 addresses of its former MAC old by those of its MAC, as
// Neutron does when a port's MAC changes.
func (w *wtx) renewEUI64(ctx context.Context, p *topology.Port, old string) error {
	v6 := false
	for _, f := range p.FixedIPs {
		v6 = v6 || strings.Contains(f.IPAddress, ":")
	}
	if !v6 {
		return nil
	}
	_, subnets, err := w.networkWithSubnets(ctx, p.NetworkID)
	if err != nil {
		return err
	}
	byID := map[string]*topology.Subnet{}
	for i := range subnets {
		byID[subnets[i].ID] = &subnets[i]
	}
	for i, f := range p.FixedIPs {
		sn := byID[f.SubnetID]
		if sn == nil || !sn.IsAutoAddress() {
			continue
		}
		was, err := subnetEUI64(sn, old)
		if err != nil {
			return err
		}
		if was.String() != f.IPAddress {
			continue
		}
		now, err := subnetEUI64(sn, p.MACAddress)
		if err != nil {
			return err
		}
		w.releaseIP6(sn, was)
		if err := w.allocateSpecific6(ctx, sn, now, p.ID); err != nil {
			return err
		}
		p.FixedIPs[i].IPAddress = now.String()
	}
	return nil
}

func hasIP(xs []topology.FixedIP, ip string) bool {
	for _, f := range xs {
		if f.IPAddress == ip {
			return true
		}
	}
	return false
}

// portMoved keeps floating IP agent gateway ports right after p's binding changed.
func (w *wtx) portMoved(ctx context.Context, p *topology.Port) error {
	rows, err := w.query(ctx, `SELECT DISTINCT floating_network_id FROM floatingips WHERE port_id = $1 AND port_id <> ''`, p.ID)
	if err != nil {
		return fmt.Errorf("floating IPs of port %s: %w", p.ID, err)
	}
	nets, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("floating IPs of port %s: %w", p.ID, err)
	}
	for _, n := range nets {
		if err := w.reconcileAgentGateways(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// DeletePort deletes a port; its floating IPs are disassociated. Router-managed ports
// are refused (L3PortInUse). A network's managed DHCP port is replaced by a new one while
// the network has DHCP-enabled subnets.
func (s *Store) DeletePort(ctx context.Context, id string) error {
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var p topology.Port
		if err := w.port(ctx, id, &p); err != nil {
			return err
		}
		if routerOwners[p.DeviceOwner] {
			return conflict("L3PortInUse", "Port %s has owner %s and therefore cannot be deleted directly via the port API.", id, p.DeviceOwner)
		}
		fips, err := objs[topology.FloatingIP](ctx, w.query, `SELECT obj FROM floatingips WHERE port_id = $1 AND port_id <> ''`, id)
		if err != nil {
			return fmt.Errorf("floating IPs of port %s: %w", id, err)
		}
		for i := range fips {
			w.disassociate(&fips[i])
		}
		if err := w.deletePort(ctx, &p); err != nil {
			return err
		}
		for _, f := range fips {
			if err := w.reconcileAgentGateways(ctx, f.FloatingNetworkID); err != nil {
				return err
			}
		}
		if topology.IsManagedDHCPPort(&p) {
			// Neutron's DHCP agent creates a new port when its port is deleted.
			return w.syncNetworkDHCPPort(ctx, p.NetworkID)
		}
		return nil
	})
	return err
}

// GetPort returns one port.
func (s *Store) GetPort(ctx context.Context, id string) (*topology.Port, error) {
	xs, err := objs[topology.Port](ctx, s.pool.Query, `SELECT obj FROM ports WHERE id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("get port %s: %w", id, err)
	}
	if len(xs) == 0 {
		return nil, notFound("PortNotFound", "Port %s could not be found.", id)
	}
	return &xs[0], nil
}

// ListPorts returns every port.
func (s *Store) ListPorts(ctx context.Context) ([]topology.Port, error) {
	xs, err := objs[topology.Port](ctx, s.pool.Query, `SELECT obj FROM ports ORDER BY obj->>'created_at', id`)
	if err != nil {
		return nil, fmt.Errorf("list ports: %w", err)
	}
	return xs, nil
}

// savePorts is savePort for many ports, in one statement.
func (w *wtx) savePorts(ps []*topology.Port) {
	n := len(ps)
	ids, owners, devs, hosts, macs, pobjs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, p := range ps {
		p.UpdatedAt = w.now
		p.RevisionNumber++
		ids[i], owners[i], devs[i], hosts[i], macs[i], pobjs[i] = p.ID, p.DeviceOwner, p.DeviceID, p.HostID, p.MACAddress, string(mustJSON(p))
		w.record(topology.KindPort, p.ID, topology.OpUpdate, *p)
	}
	w.exec(`UPDATE ports p SET device_owner = x.d, device_id = x.v, host = x.h, mac_address = x.m, obj = x.o::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS x(i, d, v, h, m, o) WHERE p.id = x.i`,
		ids, owners, devs, hosts, macs, pobjs)
}

// CreatePorts creates ports in one write. Each port gets its MAC (random unless given)
// and its addresses exactly as CreatePort would if the ports were created one after the
// other in order.
func (s *Store) CreatePorts(ctx context.Context, specs []PortSpec) ([]topology.Port, error) {
	if err := checkBulk("ports", len(specs)); err != nil {
		return nil, err
	}
	macs := make([]string, len(specs))
	netIDs := make([]string, 0)
	seenNet := map[string]bool{}
	for i, spec := range specs {
		if spec.DeviceOwner != nil && routerOwners[*spec.DeviceOwner] {
			return nil, itemError(i, invalid("device_owner %s is reserved for ports the router service manages", *spec.DeviceOwner))
		}
		if err := checkPortSpec(spec); err != nil {
			return nil, itemError(i, err)
		}
		if spec.MACAddress != nil {
			m, err := normalizeMAC(*spec.MACAddress)
			if err != nil {
				return nil, itemError(i, err)
			}
			macs[i] = m
		}
		if !seenNet[spec.NetworkID] {
			seenNet[spec.NetworkID] = true
			netIDs = append(netIDs, spec.NetworkID)
		}
	}
	var ports []topology.Port
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		adds := map[string]int{}
		for _, spec := range specs {
			adds[spec.ProjectID]++
		}
		if err := w.checkQuota(ctx, QuotaPort, adds); err != nil {
			return err
		}
		ports = make([]topology.Port, len(specs))
		for i, spec := range specs {
			p := topology.Port{ID: newID(), NetworkID: spec.NetworkID, ProjectID: spec.ProjectID, Status: topology.PortStatusDown,
				AdminStateUp: true, FixedIPs: []topology.FixedIP{}, MACAddress: macs[i], ExtraDHCPOpts: newExtraDHCPOpts(spec.ExtraDHCPOpts)}
			applyPortSpec(&p, spec)
			ports[i] = p
		}
		nets, err := w.networksWithSubnets(ctx, netIDs)
		if err != nil {
			return err
		}
		for i := range ports {
			if nets[ports[i].NetworkID] == nil {
				return itemError(i, notFound("NetworkNotFound", "Network %s could not be found.", ports[i].NetworkID))
			}
		}
		if err := w.assignMACs(ctx, ports, specs); err != nil {
			return err
		}
		ipam, err := w.loadBulkIPAM(ctx, ports, specs, nets)
		if err != nil {
			return err
		}
		for i := range ports {
			ns := nets[ports[i].NetworkID]
			fixed, err := allocateIPs(ctx, ipam, &ports[i], ns.net, ns.subnets, specs[i].FixedIPs)
			if err != nil {
				return itemError(i, err)
			}
			ports[i].FixedIPs = fixed
			if err := w.secureNewPort(ctx, &ports[i], ns.net.PortSecurityEnabled, specs[i].PortSecurity); err != nil {
				return itemError(i, err)
			}
		}
		ipam.queue(w)
		w.queuePortInserts(ports)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ports, nil
}

// queuePortInserts is queuePortInsert for many ports, in one statement.
func (w *wtx) queuePortInserts(ports []topology.Port) {
	n := len(ports)
	ids, nids, projects, pmacs, owners, devs, hosts, pobjs := make([]string, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i := range ports {
		p := &ports[i]
		p.CreatedAt, p.UpdatedAt = w.now, w.now
		if p.ExtraDHCPOpts == nil {
			p.ExtraDHCPOpts = []topology.ExtraDHCPOpt{}
		}
		ids[i], nids[i], projects[i], pmacs[i] = p.ID, p.NetworkID, p.ProjectID, p.MACAddress
		owners[i], devs[i], hosts[i], pobjs[i] = p.DeviceOwner, p.DeviceID, p.HostID, string(mustJSON(p))
		w.record(topology.KindPort, p.ID, topology.OpCreate, *p)
	}
	w.exec(`INSERT INTO ports (id, network_id, project_id, mac_address, device_owner, device_id, host, obj)
SELECT i, n, p, m, d, v, h, o::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
AS x(i, n, p, m, d, v, h, o)`, ids, nids, projects, pmacs, owners, devs, hosts, pobjs)
}

type netWithSubnets struct {
	net     *topology.Network
	subnets []topology.Subnet // in creation order
}

// networksWithSubnets is networkWithSubnets for many networks (absent ones are missing
// from the map).
func (w *wtx) networksWithSubnets(ctx context.Context, ids []string) (map[string]*netWithSubnets, error) {
	rows, err := w.query(ctx, `
SELECT n.obj, coalesce((SELECT json_agg(s.obj ORDER BY s.obj->>'created_at', s.id) FROM subnets s WHERE s.network_id = n.id), '[]')
FROM networks n WHERE n.id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("load networks: %w", err)
	}
	out := make(map[string]*netWithSubnets, len(ids))
	var nraw, sraw []byte
	_, err = pgx.ForEachRow(rows, []any{&nraw, &sraw}, func() error {
		x := &netWithSubnets{net: &topology.Network{}}
		if err := json.Unmarshal(nraw, x.net); err != nil {
			return fmt.Errorf("decode network: %w", err)
		}
		if err := json.Unmarshal(sraw, &x.subnets); err != nil {
			return fmt.Errorf("decode subnets of network %s: %w", x.net.ID, err)
		}
		out[x.net.ID] = x
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load networks: %w", err)
	}
	return out, nil
}

// assignMACs checks the given MACs and draws the others, unique per network against the
// store and the batch, with one query per round of draws.
func (w *wtx) assignMACs(ctx context.Context, ports []topology.Port, specs []PortSpec) error {
	type key struct{ net, mac string }
	batch := make(map[key]int, len(ports))
	for i := range ports {
		if specs[i].MACAddress == nil {
			continue
		}
		k := key{ports[i].NetworkID, ports[i].MACAddress}
		if _, dup := batch[k]; dup {
			return itemError(i, conflict("MacAddressInUse", "Unable to complete operation for network %s. The mac address %s is in use.", k.net, k.mac))
		}
		batch[k] = i
	}
	pending := make([]int, 0, len(ports)) // ports whose MAC is still to check against the store
	for i := range ports {
		if specs[i].MACAddress != nil {
			pending = append(pending, i)
		}
	}
	draw := func(i int) {
		for {
			m := randomMAC(w.cfg.BaseMAC)
			k := key{ports[i].NetworkID, m}
			if _, dup := batch[k]; !dup {
				batch[k] = i
				ports[i].MACAddress = m
				return
			}
		}
	}
	for i := range ports {
		if specs[i].MACAddress == nil {
			draw(i)
			pending = append(pending, i)
		}
	}
	for attempt := 1; len(pending) > 0; attempt++ {
		nets, ms := make([]string, len(pending)), make([]string, len(pending))
		for j, i := range pending {
			nets[j], ms[j] = ports[i].NetworkID, ports[i].MACAddress
		}
		rows, err := w.query(ctx, `SELECT network_id, mac_address FROM ports
WHERE (network_id, mac_address) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, nets, ms)
		if err != nil {
			return fmt.Errorf("check MACs: %w", err)
		}
		var k key
		var used []int
		if _, err := pgx.ForEachRow(rows, []any{&k.net, &k.mac}, func() error {
			used = append(used, batch[k])
			return nil
		}); err != nil {
			return fmt.Errorf("check MACs: %w", err)
		}
		sort.Ints(used)
		pending = pending[:0]
		for _, i := range used {
			if specs[i].MACAddress != nil {
				return itemError(i, conflict("MacAddressInUse", "Unable to complete operation for network %s. The mac address %s is in use.",
					ports[i].NetworkID, ports[i].MACAddress))
			}
			if attempt >= maxWriteAttempts {
				return itemError(i, newError(ClassUnavailable, "MacAddressGenerationFailure", "Unable to generate a unique MAC address"))
			}
			draw(i) // the old draw stays in batch: it is taken in the store anyway
			pending = append(pending, i)
		}
	}
	return nil
}

// SetPortStatuses sets the status of many ports (port ID -> ACTIVE, DOWN, BUILD or
// ERROR) in one write. Ports that no longer exist are skipped; ports already at their
// status are left alone, so a call that changes nothing makes no revision.
func (s *Store) SetPortStatuses(ctx context.Context, st map[string]topology.PortStatus) error {
	ids := make([]string, 0, len(st))
	for id, status := range st {
		switch status {
		case topology.PortStatusActive, topology.PortStatusDown, topology.PortStatusBuild, topology.PortStatusError:
		default:
			return invalid("port status %q of port %s is not one of ACTIVE, DOWN, BUILD, ERROR", status, id)
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil
	}
	sort.Strings(ids)
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		ps, err := objs[topology.Port](ctx, w.query, `SELECT p.obj FROM ports p JOIN unnest($1::text[], $2::text[]) AS x(i, s) ON p.id = x.i
WHERE p.obj->>'status' IS DISTINCT FROM x.s ORDER BY p.id`, ids, statusesOf(ids, st))
		if err != nil {
			return fmt.Errorf("load ports: %w", err)
		}
		changed := make([]*topology.Port, 0, len(ps))
		for i := range ps {
			if ps[i].Status != st[ps[i].ID] {
				ps[i].Status = st[ps[i].ID]
				changed = append(changed, &ps[i])
			}
		}
		if len(changed) > 0 {
			w.savePorts(changed)
		}
		return nil
	})
	return err
}

func statusesOf(ids []string, st map[string]topology.PortStatus) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = string(st[id])
	}
	return out
}
