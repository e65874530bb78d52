package db

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
)

// SubnetSpec holds the fields of a subnet create or update; nil means "not given".
// GatewayIP given as "" means "no gateway".
type SubnetSpec struct {
	ProjectID       string // create only
	NetworkID       string // create only
	IPVersion       *int   // create only
	CIDR            *string
	Name            *string
	Description     *string
	GatewayIP       *string
	AllocationPools *[]topology.AllocationPool
	HostRoutes      *[]topology.HostRoute
	DNSNameservers  *[]string
	EnableDHCP      *bool
	// SubnetPoolID (create only) allocates the subnet's CIDR from a pool: CIDR if given
	// (it must be free in the pool), otherwise the first free prefix of PrefixLen, by
	// default the pool's default_prefixlen (subnetpools.go).
	SubnetPoolID string
	PrefixLen    *int
	// IPv6RAMode and IPv6AddressMode (create only) are ipv6_ra_mode and ipv6_address_mode.
	IPv6RAMode      *string
	IPv6AddressMode *string
}

// CreateSubnet creates an IPv4 subnet on a network. A network whose MTU is below IPv4's
// minimum (68) can have none (NetworkMTUSubnetConflict). A DHCP-enabled subnet gives the
// network's DHCP port (created if need be) an address on it (dhcpports.go). A
// subnet of a pool gets its CIDR from the pool in the same write; the subnets of a
// network all come from the same pool, or none (NetworkSubnetPoolAffinityError).
func (s *Store) CreateSubnet(ctx context.Context, spec SubnetSpec) (*topology.Subnet, error) {
	if err := checkPoolRequest(spec); err != nil {
		return nil, err
	}
	var sn topology.Subnet
	var cidr netip.Prefix
	if spec.SubnetPoolID == "" {
		var err error
		if sn, cidr, err = buildSubnet(spec); err != nil {
			return nil, err
		}
	}
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		if err := w.checkQuotaOne(ctx, QuotaSubnet, spec.ProjectID, 1); err != nil {
			return err
		}
		var n topology.Network
		if err := w.network(ctx, spec.NetworkID, &n); err != nil {
			return err
		}
		if n.MTU < minIPv4MTU {
			return mtuTooSmall(&n)
		}
		others, err := objs[topology.Subnet](ctx, w.query, `SELECT obj FROM subnets WHERE network_id = $1`, n.ID)
		if err != nil {
			return fmt.Errorf("load subnets of network %s: %w", n.ID, err)
		}
		version := sn.IPVersion
		if spec.SubnetPoolID != "" {
			if version, err = w.poolVersion(ctx, spec.SubnetPoolID); err != nil {
				return err
			}
		}
		// Neutron's affinity holds among the subnets of one IP version.
		var pools []string
		for _, o := range others {
			if o.IPVersion == version {
				pools = append(pools, o.SubnetPoolID)
			}
		}
		if err := checkPoolAffinity(spec.SubnetPoolID, pools); err != nil {
			return err
		}
		if spec.SubnetPoolID != "" {
			c, err := w.poolCIDR(ctx, spec, nil)
			if err != nil {
				return err
			}
			ps := spec
			ps.CIDR = &c
			if sn, cidr, err = buildSubnet(ps); err != nil {
				return err
			}
		}
		if !sn.IsIPv4() && n.MTU < minIPv6MTU {
			return mtuBelow(&n, minIPv6MTU)
		}
		for _, o := range others {
			oc, _ := netip.ParsePrefix(o.CIDR)
			if oc.Overlaps(cidr) {
				return invalid("Requested subnet with cidr: %s for network: %s overlaps with another subnet", sn.CIDR, n.ID)
			}
		}
		sn.CreatedAt, sn.UpdatedAt = w.now, w.now
		w.exec(`INSERT INTO subnets (id, network_id, project_id, subnetpool_id, obj) VALUES ($1, $2, $3, $4, $5)`,
			sn.ID, sn.NetworkID, sn.ProjectID, nullString(sn.SubnetPoolID), mustJSON(sn))
		if err := w.resetFreeRanges(ctx, &sn); err != nil {
			return err
		}
		w.record(topology.KindSubnet, sn.ID, topology.OpCreate, sn)
		if err := w.addAutoAddresses(ctx, &sn); err != nil {
			return err
		}
		if err := w.addGatewayAddresses(ctx, &n, &sn); err != nil {
			return err
		}
		n.Subnets = append(n.Subnets, sn.ID)
		w.saveNetwork(&n, topology.OpUpdate)
		if sn.EnableDHCP {
			return w.syncDHCPPort(ctx, &n, append(others, sn))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &sn, nil
}

// buildSubnet validates a create spec and returns the subnet it describes.
func buildSubnet(spec SubnetSpec) (topology.Subnet, netip.Prefix, error) {
	sn := topology.Subnet{ID: newID(), NetworkID: spec.NetworkID, ProjectID: spec.ProjectID, IPVersion: 4, EnableDHCP: true,
		AllocationPools: []topology.AllocationPool{}, HostRoutes: []topology.HostRoute{}, DNSNameservers: []string{},
		SubnetPoolID: spec.SubnetPoolID}
	if spec.IPVersion != nil && *spec.IPVersion != 4 && *spec.IPVersion != 6 {
		return sn, netip.Prefix{}, invalidAttr("ip_version", "%d is not in [4, 6]", *spec.IPVersion)
	}
	if spec.CIDR == nil {
		return sn, netip.Prefix{}, badRequest("Failed to create subnet: cidr is required")
	}
	cidr, err := parseCIDR(*spec.CIDR)
	if err != nil {
		return sn, netip.Prefix{}, err
	}
	sn.IPVersion = addrVersion(cidr.Addr())
	if spec.IPVersion != nil && *spec.IPVersion != sn.IPVersion {
		return sn, netip.Prefix{}, versionMismatch("cidr", *spec.CIDR, *spec.IPVersion)
	}
	sn.CIDR = cidr.String()
	sn.GatewayIP = cidr.Addr().Next().String()
	if err := applySubnetSpec(&sn, cidr, spec, spec.AllocationPools == nil); err != nil {
		return sn, netip.Prefix{}, err
	}
	if err := applyIPv6Modes(&sn, cidr, spec); err != nil {
		return sn, netip.Prefix{}, err
	}
	return sn, cidr, nil
}

// parseCIDR parses a subnet CIDR of either version in canonical form (no host bits set).
// Its prefix must leave at least 2 usable addresses (IPv4: /30; IPv6: /126, Neutron's
// limit for a subnet served by DHCP).
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Zone() != "" {
		return netip.Prefix{}, invalid("'%s' is not a valid IP subnet", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, invalid("'%s' isn't a recognized IP subnet cidr, '%s' is recommended", s, p.Masked())
	}
	if p.Addr().Is6() && p.Addr().IsUnspecified() {
		return netip.Prefix{}, invalid("IPv6 subnet '::' is not supported")
	}
	if p.Bits() > p.Addr().BitLen()-2 {
		return netip.Prefix{}, invalid("'%s' is too small: a subnet needs at least 2 usable addresses", s)
	}
	return p, nil
}

func addrVersion(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

// versionMismatch is Neutron's _validate_ip_version error.
func versionMismatch(name, addr string, version int) error {
	return invalid("%s '%s' does not match the ip_version '%d'", name, addr, version)
}

// invalidAttr is Neutron's error for an attribute its API validators refuse.
func invalidAttr(attr, format string, args ...any) error {
	return newError(ClassInvalid, "InvalidInput", "Invalid input for "+attr+". Reason: "+format+".", args...)
}

// poolBounds are the first and last addresses a subnet's pools may hold: IPv4 leaves out
// the network and broadcast addresses, IPv6 only the first address (Neutron's
// validate_allocation_pools and generate_pools).
func poolBounds(cidr netip.Prefix) (netip.Addr, netip.Addr) {
	last := lastAddr(cidr)
	if cidr.Addr().Is4() {
		last = last.Prev()
	}
	return cidr.Addr().Next(), last
}

// applySubnetSpec applies and validates spec on sn. defaultPools recomputes the pools
// from the CIDR and gateway.
func applySubnetSpec(sn *topology.Subnet, cidr netip.Prefix, spec SubnetSpec, defaultPools bool) error {
	if spec.Name != nil {
		sn.Name = *spec.Name
	}
	if spec.Description != nil {
		sn.Description = *spec.Description
	}
	if spec.EnableDHCP != nil {
		sn.EnableDHCP = *spec.EnableDHCP
	}
	if spec.GatewayIP != nil {
		sn.GatewayIP = *spec.GatewayIP
	}
	var gw netip.Addr
	hasGW := sn.GatewayIP != ""
	if hasGW {
		var ok bool
		if gw, ok = parseAddr(sn.GatewayIP); !ok {
			return invalid("'%s' is not a valid IP address", sn.GatewayIP)
		}
		if addrVersion(gw) != sn.IPVersion {
			return versionMismatch("gateway_ip", sn.GatewayIP, sn.IPVersion)
		}
		// IPv6 has no broadcast address, and its first one is the routers' anycast
		// address, which Neutron takes for a gateway.
		if !cidr.Contains(gw) || (sn.IPVersion == 4 && (gw == cidr.Addr() || gw == lastAddr(cidr))) {
			return invalid("Gateway IP %s is not a usable address of subnet %s", sn.GatewayIP, sn.CIDR)
		}
		sn.GatewayIP = gw.String()
	}
	lo, hi := poolBounds(cidr)
	if spec.AllocationPools != nil {
		sn.AllocationPools = *spec.AllocationPools
	} else if defaultPools {
		var holes []netip.Addr
		if hasGW {
			holes = append(holes, gw)
		}
		sn.AllocationPools = []topology.AllocationPool{}
		for _, r := range subtract(order6, []addrRange{{lo, hi}}, holes) {
			sn.AllocationPools = append(sn.AllocationPools, topology.AllocationPool{Start: r.first.String(), End: r.last.String()})
		}
	}
	var rs []addrRange
	for i, p := range sn.AllocationPools {
		a, ok1 := parseAddr(p.Start)
		b, ok2 := parseAddr(p.End)
		if !ok1 || !ok2 || b.Less(a) || addrVersion(a) != sn.IPVersion || addrVersion(b) != sn.IPVersion {
			return newError(ClassInvalid, "InvalidAllocationPool", "The allocation pool %s-%s is not valid.", p.Start, p.End)
		}
		if a.Less(lo) || hi.Less(b) {
			return newError(ClassInvalid, "OutOfBoundsAllocationPool", "The allocation pool %s-%s spans beyond the subnet cidr %s.", p.Start, p.End, sn.CIDR)
		}
		sn.AllocationPools[i] = topology.AllocationPool{Start: a.String(), End: b.String()}
		for _, r := range rs {
			if !r.last.Less(a) && !b.Less(r.first) {
				return conflict("OverlappingAllocationPools", "Found overlapping allocation pools: %s-%s and %s-%s for subnet %s.",
					p.Start, p.End, r.first, r.last, sn.CIDR)
			}
		}
		rs = append(rs, addrRange{a, b})
		if hasGW && !gw.Less(a) && !b.Less(gw) {
			return conflict("GatewayConflictWithAllocationPools", "Gateway ip %s conflicts with allocation pool %s-%s.", sn.GatewayIP, p.Start, p.End)
		}
	}
	if spec.HostRoutes != nil {
		sn.HostRoutes = *spec.HostRoutes
		for i, r := range sn.HostRoutes {
			d, err := netip.ParsePrefix(r.Destination)
			if err != nil || d.Masked() != d {
				return invalid("'%s' is not a valid route destination", r.Destination)
			}
			nh, ok := parseAddr(r.NextHop)
			if !ok {
				return invalid("'%s' is not a valid IP address", r.NextHop)
			}
			if addrVersion(nh) != sn.IPVersion {
				return versionMismatch("nexthop", r.NextHop, sn.IPVersion)
			}
			if addrVersion(d.Addr()) != sn.IPVersion {
				return versionMismatch("destination", r.Destination, sn.IPVersion)
			}
			sn.HostRoutes[i].NextHop = nh.String()
		}
	}
	if spec.DNSNameservers != nil {
		sn.DNSNameservers = *spec.DNSNameservers
		seen := map[netip.Addr]bool{}
		for i, d := range sn.DNSNameservers {
			v, ok := parseAddr(d)
			if !ok {
				return invalid("'%s' is not a valid nameserver", d)
			}
			if addrVersion(v) != sn.IPVersion {
				return versionMismatch("dns_nameserver", d, sn.IPVersion)
			}
			if seen[v] {
				return invalid("Duplicate nameserver '%s'", d)
			}
			seen[v] = true
			sn.DNSNameservers[i] = v.String()
		}
	}
	return nil
}

// ipv6Modes are the values of ipv6_ra_mode and ipv6_address_mode.
var ipv6Modes = []string{topology.IPv6DHCPStateful, topology.IPv6DHCPStateless, topology.IPv6SLAAC}

// applyIPv6Modes sets a new subnet's ipv6_ra_mode and ipv6_address_mode, with Neutron's
// checks (_validate_subnet, _validate_ipv6_attributes): IPv6 only, DHCP enabled, equal
// when both are given, and a /64 when its ports take EUI-64 addresses.
func applyIPv6Modes(sn *topology.Subnet, cidr netip.Prefix, spec SubnetSpec) error {
	for _, m := range []struct {
		attr string
		v    *string
		dst  *string
	}{{"ipv6_ra_mode", spec.IPv6RAMode, &sn.IPv6RAMode}, {"ipv6_address_mode", spec.IPv6AddressMode, &sn.IPv6AddressMode}} {
		if m.v == nil {
			continue
		}
		if !slices.Contains(ipv6Modes, *m.v) {
			return invalidAttr(m.attr, "'%s' is not in ['%s', '%s', '%s', None]", *m.v, ipv6Modes[0], ipv6Modes[1], ipv6Modes[2])
		}
		if sn.IPVersion == 4 {
			return invalid("%s is not valid when ip_version is 4", m.attr)
		}
		*m.dst = *m.v
	}
	ra, addr := sn.IPv6RAMode, sn.IPv6AddressMode
	if (ra != "" || addr != "") && !sn.EnableDHCP {
		return invalid("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set to False")
	}
	if ra != "" && addr != "" && ra != addr {
		return invalid("ipv6_ra_mode set to '%s' with ipv6_address_mode set to '%s' is not valid. "+
			"If both attributes are set, they must be the same value", ra, addr)
	}
	if sn.IsAutoAddress() && cidr.Bits() != 64 {
		return invalid("Invalid CIDR %s for IPv6 address mode. OpenStack uses the EUI-64 address format, "+
			"which requires the prefix to be /64", sn.CIDR)
	}
	return nil
}

// UpdateSubnet changes a subnet's mutable fields (name, gateway, pools, routes, DNS,
// DHCP). The gateway cannot change while it is allocated (a router interface). Turning
// DHCP on gives the network's DHCP port an address on the subnet, turning it off takes
// that address back (dhcpports.go).
func (s *Store) UpdateSubnet(ctx context.Context, id string, spec SubnetSpec) (*topology.Subnet, error) {
	if spec.CIDR != nil || spec.IPVersion != nil || spec.NetworkID != "" {
		return nil, invalid("cidr, ip_version and network_id of subnet %s cannot be updated", id)
	}
	var sn topology.Subnet
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		if err := w.subnet(ctx, id, &sn); err != nil {
			return err
		}
		oldGW, oldDHCP := sn.GatewayIP, sn.EnableDHCP
		cidr, _ := netip.ParsePrefix(sn.CIDR)
		if spec.EnableDHCP != nil && !*spec.EnableDHCP && (sn.IPv6RAMode != "" || sn.IPv6AddressMode != "") {
			return invalid("Cannot disable enable_dhcp with ipv6 attributes set")
		}
		if err := applySubnetSpec(&sn, cidr, spec, false); err != nil {
			return err
		}
		if sn.GatewayIP != oldGW {
			for _, g := range []string{oldGW, sn.GatewayIP} {
				v, ok := parseAddr(g)
				if !ok {
					continue
				}
				var port string
				q := `SELECT port_id FROM ip_allocations WHERE subnet_id = $1 AND ip = $2`
				var arg any = int64(0)
				if v4, ok := parseIPv4(g); ok {
					arg = int64(v4)
				} else {
					q, arg = `SELECT port_id FROM ip6_allocations WHERE subnet_id = $1 AND ip = $2::inet`, v.String()
				}
				err := w.queryRow(ctx, q, id, arg).Scan(&port)
				if err == nil {
					return conflict("GatewayIpInUse", "Gateway ip %s in use by port %s. Unable to update.", g, port)
				}
				if !errors.Is(err, pgx.ErrNoRows) {
					return fmt.Errorf("check gateway of subnet %s: %w", id, err)
				}
			}
		}
		if err := w.resetFreeRanges(ctx, &sn); err != nil {
			return err
		}
		sn.UpdatedAt = w.now
		sn.RevisionNumber++
		w.exec(`UPDATE subnets SET obj = $2 WHERE id = $1`, sn.ID, mustJSON(sn))
		w.record(topology.KindSubnet, sn.ID, topology.OpUpdate, sn)
		if sn.EnableDHCP != oldDHCP {
			return w.syncNetworkDHCPPort(ctx, sn.NetworkID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &sn, nil
}

func (w *wtx) subnet(ctx context.Context, id string, sn *topology.Subnet) error {
	err := w.getObj(ctx, "subnets", id, sn)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("SubnetNotFound", "Subnet %s could not be found.", id)
	}
	if err != nil {
		return fmt.Errorf("load subnet %s: %w", id, err)
	}
	return w.constrain(topology.KindSubnet, id, sn.RevisionNumber)
}

// DeleteSubnet deletes a subnet on which no port other than a network:dhcp port has an
// address (SubnetInUse otherwise). As in Neutron, DHCP ports lose their address on it;
// the network's managed DHCP port goes when it has no address left.
func (s *Store) DeleteSubnet(ctx context.Context, id string) error {
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var sn topology.Subnet
		if err := w.subnet(ctx, id, &sn); err != nil {
			return err
		}
		// On an auto-address subnet only a router interface holds it: the others' EUI-64
		// addresses go with it, as in Neutron.
		var used int
		q := `SELECT count(*) FROM ip_allocations_all a WHERE a.subnet_id = $1
AND NOT EXISTS (SELECT 1 FROM ports p WHERE p.id = a.port_id AND p.device_owner = $2)`
		arg := topology.OwnerDHCP
		if sn.IsAutoAddress() {
			q = `SELECT count(*) FROM ip_allocations_all a WHERE a.subnet_id = $1
AND EXISTS (SELECT 1 FROM ports p WHERE p.id = a.port_id AND p.device_owner = $2)`
			arg = topology.OwnerRouterInterfaceDistributed
		}
		if err := w.queryRow(ctx, q, id, arg).Scan(&used); err != nil {
			return fmt.Errorf("count allocations of subnet %s: %w", id, err)
		}
		if used > 0 {
			return conflict("SubnetInUse", "Unable to complete operation on subnet %s: One or more ports have an IP allocation from this subnet.", id)
		}
		n, subnets, err := w.networkWithSubnets(ctx, sn.NetworkID)
		if err != nil {
			return err
		}
		// DHCP ports users made (and any port of an auto-address subnet) keep their other
		// addresses; the managed one is synced below.
		others, err := objs[topology.Port](ctx, w.query, `SELECT obj FROM ports
WHERE id IN (SELECT port_id FROM ip_allocations_all WHERE subnet_id = $1) AND device_id <> $2 ORDER BY id`,
			id, topology.DHCPDeviceID(sn.NetworkID))
		if err != nil {
			return fmt.Errorf("load DHCP ports of subnet %s: %w", id, err)
		}
		for i := range others {
			p := &others[i]
			p.FixedIPs = slices.DeleteFunc(p.FixedIPs, func(f topology.FixedIP) bool { return f.SubnetID == id })
			w.savePort(p)
			if p.DeviceOwner == topology.OwnerRouterGateway {
				if err := w.showGatewayAddresses(ctx, p); err != nil {
					return err
				}
			}
		}
		w.exec(`DELETE FROM ip_allocations WHERE subnet_id = $1`, id)
		w.exec(`DELETE FROM ip6_allocations WHERE subnet_id = $1`, id)
		w.exec(`DELETE FROM subnets WHERE id = $1`, id)
		w.record(topology.KindSubnet, id, topology.OpDelete, sn)
		n.Subnets = removeString(n.Subnets, id)
		w.saveNetwork(n, topology.OpUpdate)
		return w.syncDHCPPort(ctx, n, slices.DeleteFunc(subnets, func(x topology.Subnet) bool { return x.ID == id }))
	})
	return err
}

// GetSubnet returns one subnet.
func (s *Store) GetSubnet(ctx context.Context, id string) (*topology.Subnet, error) {
	xs, err := objs[topology.Subnet](ctx, s.pool.Query, `SELECT obj FROM subnets WHERE id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("get subnet %s: %w", id, err)
	}
	if len(xs) == 0 {
		return nil, notFound("SubnetNotFound", "Subnet %s could not be found.", id)
	}
	return &xs[0], nil
}

// ListSubnets returns every subnet.
func (s *Store) ListSubnets(ctx context.Context) ([]topology.Subnet, error) {
	xs, err := objs[topology.Subnet](ctx, s.pool.Query, `SELECT obj FROM subnets ORDER BY obj->>'created_at', id`)
	if err != nil {
		return nil, fmt.Errorf("list subnets: %w", err)
	}
	return xs, nil
}

// CreateSubnets creates subnets in one write; each network's subnet list is updated
// once for the batch, and its DHCP port gains an address on each DHCP-enabled subnet.
func (s *Store) CreateSubnets(ctx context.Context, specs []SubnetSpec) ([]topology.Subnet, error) {
	if err := checkBulk("subnets", len(specs)); err != nil {
		return nil, err
	}
	subs := make([]topology.Subnet, len(specs))
	cidrs := make([]netip.Prefix, len(specs))
	netIDs := make([]string, 0, len(specs))
	seenNet := map[string]bool{}
	for i, spec := range specs {
		if err := checkPoolRequest(spec); err != nil {
			return nil, itemError(i, err)
		}
		if spec.SubnetPoolID == "" { // a pool's subnets are built in the write
			sn, c, err := buildSubnet(spec)
			if err != nil {
				return nil, itemError(i, err)
			}
			subs[i], cidrs[i] = sn, c
		}
		if !seenNet[spec.NetworkID] {
			seenNet[spec.NetworkID] = true
			netIDs = append(netIDs, spec.NetworkID)
		}
	}
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		adds := map[string]int{}
		for _, spec := range specs {
			adds[spec.ProjectID]++
		}
		if err := w.checkQuota(ctx, QuotaSubnet, adds); err != nil {
			return err
		}
		nets, err := objs[topology.Network](ctx, w.query, `SELECT obj FROM networks WHERE id = ANY($1)`, netIDs)
		if err != nil {
			return fmt.Errorf("load networks: %w", err)
		}
		byID := make(map[string]*topology.Network, len(nets))
		for i := range nets {
			byID[nets[i].ID] = &nets[i]
		}
		for i := range subs {
			n := byID[specs[i].NetworkID]
			if n == nil {
				return itemError(i, notFound("NetworkNotFound", "Network %s could not be found.", specs[i].NetworkID))
			}
			if n.MTU < minIPv4MTU {
				return itemError(i, mtuTooSmall(n))
			}
		}
		existing, err := objs[topology.Subnet](ctx, w.query, `SELECT obj FROM subnets WHERE network_id = ANY($1)`, netIDs)
		if err != nil {
			return fmt.Errorf("load subnets: %w", err)
		}
		onNet := map[string][]netip.Prefix{}
		poolsOn := map[string][]string{} // network and IP version -> pools of its subnets
		affinity := func(netID string, version int) string { return fmt.Sprintf("%s/%d", netID, version) }
		for _, o := range existing {
			oc, _ := netip.ParsePrefix(o.CIDR)
			onNet[o.NetworkID] = append(onNet[o.NetworkID], oc)
			poolsOn[affinity(o.NetworkID, o.IPVersion)] = append(poolsOn[affinity(o.NetworkID, o.IPVersion)], o.SubnetPoolID)
		}
		taken := map[string][]string{} // pool -> CIDRs this write gave out
		for i, spec := range specs {
			version := subs[i].IPVersion
			if spec.SubnetPoolID != "" {
				if version, err = w.poolVersion(ctx, spec.SubnetPoolID); err != nil {
					return itemError(i, err)
				}
			}
			key := affinity(spec.NetworkID, version)
			if err := checkPoolAffinity(spec.SubnetPoolID, poolsOn[key]); err != nil {
				return itemError(i, err)
			}
			poolsOn[key] = append(poolsOn[key], spec.SubnetPoolID)
			if spec.SubnetPoolID == "" {
				continue
			}
			c, err := w.poolCIDR(ctx, spec, taken[spec.SubnetPoolID])
			if err != nil {
				return itemError(i, err)
			}
			taken[spec.SubnetPoolID] = append(taken[spec.SubnetPoolID], c)
			spec.CIDR = &c
			if subs[i], cidrs[i], err = buildSubnet(spec); err != nil {
				return itemError(i, err)
			}
		}
		n := len(subs)
		ids, nids, projects, sobjs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		pools := make([]*string, n)
		dhcp := &bulkDHCP{added: map[string][]topology.FixedIP{}}
		var rSub []string
		var rFirst, rLast []int64
		var v6 []*topology.Subnet
		for i := range subs {
			sn := &subs[i]
			if !sn.IsIPv4() && byID[sn.NetworkID].MTU < minIPv6MTU {
				return itemError(i, mtuBelow(byID[sn.NetworkID], minIPv6MTU))
			}
			for _, oc := range onNet[sn.NetworkID] {
				if oc.Overlaps(cidrs[i]) {
					return itemError(i, invalid("Requested subnet with cidr: %s for network: %s overlaps with another subnet", sn.CIDR, sn.NetworkID))
				}
			}
			onNet[sn.NetworkID] = append(onNet[sn.NetworkID], cidrs[i])
			sn.CreatedAt, sn.UpdatedAt = w.now, w.now
			ids[i], nids[i], projects[i], sobjs[i] = sn.ID, sn.NetworkID, sn.ProjectID, string(mustJSON(sn))
			if sn.SubnetPoolID != "" {
				pools[i] = &sn.SubnetPoolID
			}
			w.record(topology.KindSubnet, sn.ID, topology.OpCreate, *sn)
			byID[sn.NetworkID].Subnets = append(byID[sn.NetworkID].Subnets, sn.ID)
			if !sn.IsIPv4() {
				v6 = append(v6, sn)
				continue
			}
			var holes []uint32
			if gw, ok := parseIPv4(sn.GatewayIP); ok {
				holes = append(holes, gw)
			}
			free := subtract(order4, poolRanges(order4, sn.AllocationPools), holes)
			if sn.EnableDHCP {
				free = dhcp.take(byID[sn.NetworkID], sn, free)
			}
			for _, r := range free {
				rSub, rFirst, rLast = append(rSub, sn.ID), append(rFirst, int64(r.first)), append(rLast, int64(r.last))
			}
		}
		w.exec(`INSERT INTO subnets (id, network_id, project_id, subnetpool_id, obj)
SELECT i, n, p, sp, o::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS x(i, n, p, o, sp)`,
			ids, nids, projects, sobjs, pools)
		if len(rSub) > 0 {
			w.exec(`INSERT INTO ip_free_ranges (subnet_id, first, last) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])`, rSub, rFirst, rLast)
		}
		for _, sn := range v6 {
			if err := w.resetFreeRanges6(ctx, sn); err != nil {
				return err
			}
			if err := w.addAutoAddresses(ctx, sn); err != nil {
				return err
			}
			if err := w.addGatewayAddresses(ctx, byID[sn.NetworkID], sn); err != nil {
				return err
			}
		}
		if err := dhcp.queue(ctx, w); err != nil {
			return err
		}
		// The DHCP ports' IPv6 addresses, network by network (IPv6 subnets come in bulk
		// seldom, and in few).
		v6DHCP := map[string]bool{}
		for _, sn := range v6 {
			v6DHCP[sn.NetworkID] = v6DHCP[sn.NetworkID] || sn.EnableDHCP
		}
		for _, id := range netIDs {
			if v6DHCP[id] {
				if err := w.syncNetworkDHCPPort(ctx, id); err != nil {
					return err
				}
			}
		}
		changed := make([]*topology.Network, 0, len(netIDs))
		for _, id := range netIDs {
			changed = append(changed, byID[id])
		}
		w.saveNetworks(changed, topology.OpUpdate)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return subs, nil
}
