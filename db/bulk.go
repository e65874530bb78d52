package db

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
)

// Bulk creates (Neutron's POST with a list body) create every object of a batch in one
// write: all or nothing, one revision, one change-log row per object. They check every
// item as the single create does, against the store and against the items before it in
// the batch, and make a fixed number of queries per batch whatever its size: the
// allocation state a batch needs (used VNIs, free address ranges, taken MACs and
// addresses) is loaded once and allocated from in memory, and rows are written with one
// statement per table (arrays through unnest).

// MaxBulk bounds the objects of one bulk create.
const MaxBulk = 10000

func checkBulk(kind string, n int) error {
	if n == 0 {
		return badRequest("Bulk create of %s needs at least one item.", kind)
	}
	if n > MaxBulk {
		return newError(ClassInvalid, "BulkTooLarge", "Bulk create of %d %s exceeds the limit of %d per request.", n, kind, MaxBulk)
	}
	return nil
}

// itemError says which item of a batch err is about.
func itemError(i int, err error) error {
	if e, ok := AsError(err); ok {
		return &Error{Class: e.Class, Type: e.Type, Message: fmt.Sprintf("Item %d: %s", i, e.Message)}
	}
	return fmt.Errorf("item %d: %w", i, err)
}

// CreateNetworks creates networks in one write, allocating the VNIs of vxlan networks
// without a segmentation ID (lowest free first, in order).
func (s *Store) CreateNetworks(ctx context.Context, specs []NetworkSpec) ([]Network, error) {
	if err := checkBulk("networks", len(specs)); err != nil {
		return nil, err
	}
	nets := make([]Network, len(specs))
	for i, spec := range specs {
		n, err := buildNetwork(spec)
		if err != nil {
			return nil, itemError(i, err)
		}
		nets[i] = n
	}
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		type segKey struct {
			typ, phys string
			id        int64
		}
		inBatch := map[segKey]int{}
		var types, physs []string
		var segIDs []int64
		for i := range nets {
			n := &nets[i]
			if n.NetworkType == NetworkTypeVXLAN && specs[i].SegmentationID == nil {
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
			w.record(KindNetwork, n.ID, OpCreate, *n)
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
func explicitVNIs(nets []Network, specs []NetworkSpec) map[int64]bool {
	out := map[int64]bool{}
	for i := range nets {
		if nets[i].NetworkType == NetworkTypeVXLAN && specs[i].SegmentationID != nil {
			out[nets[i].SegmentationID] = true
		}
	}
	return out
}

// allocateVNIs gives the vxlan networks without a segmentation ID the lowest VNIs of the
// configured range that neither the store nor the batch uses.
func (w *wtx) allocateVNIs(ctx context.Context, nets []Network, specs []NetworkSpec, taken map[int64]bool) error {
	need := 0
	for i := range nets {
		if nets[i].NetworkType == NetworkTypeVXLAN && specs[i].SegmentationID == nil {
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
		if nets[i].NetworkType != NetworkTypeVXLAN || specs[i].SegmentationID != nil {
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

// CreateSubnets creates subnets in one write; each network's subnet list is updated
// once for the batch.
func (s *Store) CreateSubnets(ctx context.Context, specs []SubnetSpec) ([]Subnet, error) {
	if err := checkBulk("subnets", len(specs)); err != nil {
		return nil, err
	}
	subs := make([]Subnet, len(specs))
	cidrs := make([]cidr4, len(specs))
	netIDs := make([]string, 0, len(specs))
	seenNet := map[string]bool{}
	for i, spec := range specs {
		sn, c, err := buildSubnet(spec)
		if err != nil {
			return nil, itemError(i, err)
		}
		subs[i], cidrs[i] = sn, c
		if !seenNet[sn.NetworkID] {
			seenNet[sn.NetworkID] = true
			netIDs = append(netIDs, sn.NetworkID)
		}
	}
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		nets, err := objs[Network](ctx, w.query, `SELECT obj FROM networks WHERE id = ANY($1)`, netIDs)
		if err != nil {
			return fmt.Errorf("load networks: %w", err)
		}
		byID := make(map[string]*Network, len(nets))
		for i := range nets {
			byID[nets[i].ID] = &nets[i]
		}
		for i := range subs {
			if byID[subs[i].NetworkID] == nil {
				return itemError(i, notFound("NetworkNotFound", "Network %s could not be found.", subs[i].NetworkID))
			}
		}
		existing, err := objs[Subnet](ctx, w.query, `SELECT obj FROM subnets WHERE network_id = ANY($1)`, netIDs)
		if err != nil {
			return fmt.Errorf("load subnets: %w", err)
		}
		onNet := map[string][]cidr4{}
		for _, o := range existing {
			oc, _ := parseCIDR4(o.CIDR)
			onNet[o.NetworkID] = append(onNet[o.NetworkID], oc)
		}
		n := len(subs)
		ids, nids, projects, sobjs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		var rSub []string
		var rFirst, rLast []int64
		for i := range subs {
			sn := &subs[i]
			for _, oc := range onNet[sn.NetworkID] {
				if oc.overlaps(cidrs[i]) {
					return itemError(i, invalid("Requested subnet with cidr: %s for network: %s overlaps with another subnet", sn.CIDR, sn.NetworkID))
				}
			}
			onNet[sn.NetworkID] = append(onNet[sn.NetworkID], cidrs[i])
			sn.CreatedAt, sn.UpdatedAt = w.now, w.now
			ids[i], nids[i], projects[i], sobjs[i] = sn.ID, sn.NetworkID, sn.ProjectID, string(mustJSON(sn))
			var holes []uint32
			if gw, ok := parseIPv4(sn.GatewayIP); ok {
				holes = append(holes, gw)
			}
			for _, r := range subtract(poolRanges(sn.AllocationPools), holes) {
				rSub, rFirst, rLast = append(rSub, sn.ID), append(rFirst, int64(r.first)), append(rLast, int64(r.last))
			}
			w.record(KindSubnet, sn.ID, OpCreate, *sn)
			byID[sn.NetworkID].Subnets = append(byID[sn.NetworkID].Subnets, sn.ID)
		}
		w.exec(`INSERT INTO subnets (id, network_id, project_id, obj)
SELECT i, n, p, o::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS x(i, n, p, o)`, ids, nids, projects, sobjs)
		if len(rSub) > 0 {
			w.exec(`INSERT INTO ip_free_ranges (subnet_id, first, last) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])`, rSub, rFirst, rLast)
		}
		changed := make([]*Network, 0, len(netIDs))
		for _, id := range netIDs {
			changed = append(changed, byID[id])
		}
		w.saveNetworks(changed, OpUpdate)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return subs, nil
}

// saveNetworks is saveNetwork for many networks, in one statement.
func (w *wtx) saveNetworks(ns []*Network, op string) {
	ids, nobjs := make([]string, len(ns)), make([]string, len(ns))
	for i, n := range ns {
		n.UpdatedAt = w.now
		n.RevisionNumber++
		ids[i], nobjs[i] = n.ID, string(mustJSON(n))
		w.record(KindNetwork, n.ID, op, *n)
	}
	w.exec(`UPDATE networks n SET obj = x.o::jsonb FROM unnest($1::text[], $2::text[]) AS x(i, o) WHERE n.id = x.i`, ids, nobjs)
}

// savePorts is savePort for many ports, in one statement.
func (w *wtx) savePorts(ps []*Port) {
	n := len(ps)
	ids, owners, devs, hosts, macs, pobjs := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, p := range ps {
		p.UpdatedAt = w.now
		p.RevisionNumber++
		ids[i], owners[i], devs[i], hosts[i], macs[i], pobjs[i] = p.ID, p.DeviceOwner, p.DeviceID, p.HostID, p.MACAddress, string(mustJSON(p))
		w.record(KindPort, p.ID, OpUpdate, *p)
	}
	w.exec(`UPDATE ports p SET device_owner = x.d, device_id = x.v, host = x.h, mac_address = x.m, obj = x.o::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS x(i, d, v, h, m, o) WHERE p.id = x.i`,
		ids, owners, devs, hosts, macs, pobjs)
}

// CreatePorts creates ports in one write. Each port gets its MAC (random unless given)
// and its addresses exactly as CreatePort would if the ports were created one after the
// other in order.
func (s *Store) CreatePorts(ctx context.Context, specs []PortSpec) ([]Port, error) {
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
	var ports []Port
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		ports = make([]Port, len(specs))
		for i, spec := range specs {
			p := Port{ID: newID(), NetworkID: spec.NetworkID, ProjectID: spec.ProjectID, Status: PortStatusDown,
				AdminStateUp: true, FixedIPs: []FixedIP{}, MACAddress: macs[i]}
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
		}
		ipam.queue(w)
		n := len(ports)
		ids, nids, projects, pmacs, owners, devs, hosts, pobjs := make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		for i := range ports {
			p := &ports[i]
			p.CreatedAt, p.UpdatedAt = w.now, w.now
			ids[i], nids[i], projects[i], pmacs[i] = p.ID, p.NetworkID, p.ProjectID, p.MACAddress
			owners[i], devs[i], hosts[i], pobjs[i] = p.DeviceOwner, p.DeviceID, p.HostID, string(mustJSON(p))
			w.record(KindPort, p.ID, OpCreate, *p)
		}
		w.exec(`INSERT INTO ports (id, network_id, project_id, mac_address, device_owner, device_id, host, obj)
SELECT i, n, p, m, d, v, h, o::jsonb FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
AS x(i, n, p, m, d, v, h, o)`, ids, nids, projects, pmacs, owners, devs, hosts, pobjs)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ports, nil
}

type netWithSubnets struct {
	net     *Network
	subnets []Subnet // in creation order
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
		x := &netWithSubnets{net: &Network{}}
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
func (w *wtx) assignMACs(ctx context.Context, ports []Port, specs []PortSpec) error {
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

// bulkIPAM allocates a batch's addresses in memory from the free ranges and the taken
// addresses loaded once, then writes the subnets' free lists back.
type bulkIPAM struct {
	free    map[string][]ipRange       // subnet -> sorted free ranges
	taken   map[string]map[uint32]bool // subnet -> addresses taken in the store (of those asked for) or by the batch
	touched map[string]bool            // subnets whose free list changed
	rows    struct {
		sub, port []string
		ip        []int64
	}
}

// loadBulkIPAM loads the free ranges of every subnet of the batch's networks, and which
// of the explicitly asked addresses are taken.
func (w *wtx) loadBulkIPAM(ctx context.Context, ports []Port, specs []PortSpec, nets map[string]*netWithSubnets) (*bulkIPAM, error) {
	b := &bulkIPAM{free: map[string][]ipRange{}, taken: map[string]map[uint32]bool{}, touched: map[string]bool{}}
	var subIDs []string
	for _, ns := range nets {
		for _, sn := range ns.subnets {
			subIDs = append(subIDs, sn.ID)
		}
	}
	if len(subIDs) == 0 {
		return b, nil
	}
	rows, err := w.query(ctx, `SELECT subnet_id, first, last FROM ip_free_ranges WHERE subnet_id = ANY($1) ORDER BY subnet_id, first`, subIDs)
	if err != nil {
		return nil, fmt.Errorf("read free addresses: %w", err)
	}
	var sub string
	var first, last int64
	if _, err := pgx.ForEachRow(rows, []any{&sub, &first, &last}, func() error {
		b.free[sub] = append(b.free[sub], ipRange{uint32(first), uint32(last)})
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read free addresses: %w", err)
	}
	// Explicit addresses: resolve their subnet as allocateIPs will, ask which are taken.
	var qSub []string
	var qIP []int64
	for i := range ports {
		if specs[i].FixedIPs == nil {
			continue
		}
		subnets := nets[ports[i].NetworkID].subnets
		for _, f := range *specs[i].FixedIPs {
			ip, ok := parseIPv4(f.IPAddress)
			if !ok {
				continue
			}
			for _, sn := range subnets {
				c, _ := parseCIDR4(sn.CIDR)
				if (f.SubnetID == "" || f.SubnetID == sn.ID) && c.contains(ip) {
					qSub, qIP = append(qSub, sn.ID), append(qIP, int64(ip))
					break
				}
			}
		}
	}
	if len(qSub) > 0 {
		rows, err := w.query(ctx, `SELECT subnet_id, ip FROM ip_allocations
WHERE (subnet_id, ip) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))`, qSub, qIP)
		if err != nil {
			return nil, fmt.Errorf("check addresses: %w", err)
		}
		var ip int64
		if _, err := pgx.ForEachRow(rows, []any{&sub, &ip}, func() error {
			b.take(sub, uint32(ip))
			return nil
		}); err != nil {
			return nil, fmt.Errorf("check addresses: %w", err)
		}
	}
	return b, nil
}

func (b *bulkIPAM) take(sub string, ip uint32) {
	m := b.taken[sub]
	if m == nil {
		m = map[uint32]bool{}
		b.taken[sub] = m
	}
	m[ip] = true
}

func (b *bulkIPAM) record(sub string, ip uint32, port string) {
	b.take(sub, ip)
	b.rows.sub, b.rows.ip, b.rows.port = append(b.rows.sub, sub), append(b.rows.ip, int64(ip)), append(b.rows.port, port)
}

// allocateAny takes the lowest free address of a subnet (addressPool).
func (b *bulkIPAM) allocateAny(_ context.Context, sub, port string) (uint32, bool, error) {
	rs := b.free[sub]
	if len(rs) == 0 {
		return 0, false, nil
	}
	ip := rs[0].first
	if rs[0].first == rs[0].last {
		b.free[sub] = rs[1:]
	} else {
		rs[0].first++
	}
	b.touched[sub] = true
	b.record(sub, ip, port)
	return ip, true, nil
}

// allocateSpecific takes a given address of a subnet, 409 if taken (addressPool).
func (b *bulkIPAM) allocateSpecific(_ context.Context, sn *Subnet, ip uint32, port string) error {
	if b.taken[sn.ID][ip] {
		return conflict("IpAddressAlreadyAllocated", "IP address %s already allocated in subnet %s", ipString(ip), sn.ID)
	}
	rs := b.free[sn.ID]
	for j, r := range rs {
		if ip < r.first || ip > r.last {
			continue
		}
		var repl []ipRange
		if r.first < ip {
			repl = append(repl, ipRange{r.first, ip - 1})
		}
		if ip < r.last {
			repl = append(repl, ipRange{ip + 1, r.last})
		}
		out := append(append(append(make([]ipRange, 0, len(rs)+1), rs[:j]...), repl...), rs[j+1:]...)
		b.free[sn.ID] = out
		b.touched[sn.ID] = true
		break
	}
	b.record(sn.ID, ip, port)
	return nil
}

// queue writes the allocations and the changed free lists.
func (b *bulkIPAM) queue(w *wtx) {
	if len(b.rows.sub) > 0 {
		w.exec(`INSERT INTO ip_allocations (subnet_id, ip, port_id) SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])`,
			b.rows.sub, b.rows.ip, b.rows.port)
	}
	if len(b.touched) == 0 {
		return
	}
	subs := make([]string, 0, len(b.touched))
	var rSub []string
	var rFirst, rLast []int64
	for sub := range b.touched {
		subs = append(subs, sub)
		for _, r := range b.free[sub] {
			rSub, rFirst, rLast = append(rSub, sub), append(rFirst, int64(r.first)), append(rLast, int64(r.last))
		}
	}
	w.exec(`DELETE FROM ip_free_ranges WHERE subnet_id = ANY($1)`, subs)
	if len(rSub) > 0 {
		w.exec(`INSERT INTO ip_free_ranges (subnet_id, first, last) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])`, rSub, rFirst, rLast)
	}
}

// SetPortStatuses sets the status of many ports (port ID -> ACTIVE, DOWN, BUILD or
// ERROR) in one write. Ports that no longer exist are skipped; ports already at their
// status are left alone, so a call that changes nothing makes no revision.
func (s *Store) SetPortStatuses(ctx context.Context, st map[string]string) error {
	ids := make([]string, 0, len(st))
	for id, status := range st {
		switch status {
		case PortStatusActive, PortStatusDown, PortStatusBuild, PortStatusError:
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
		ps, err := objs[Port](ctx, w.query, `SELECT p.obj FROM ports p JOIN unnest($1::text[], $2::text[]) AS x(i, s) ON p.id = x.i
WHERE p.obj->>'status' IS DISTINCT FROM x.s ORDER BY p.id`, ids, statusesOf(ids, st))
		if err != nil {
			return fmt.Errorf("load ports: %w", err)
		}
		changed := make([]*Port, 0, len(ps))
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

func statusesOf(ids []string, st map[string]string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = st[id]
	}
	return out
}

// EnsureLocalVLANsBulk is EnsureLocalVLANs for many hosts (host -> network IDs) in one
// write: it returns host -> network -> VLAN for everything asked, allocating the lowest
// free VLANs where missing. A call that allocates nothing writes nothing.
func (s *Store) EnsureLocalVLANsBulk(ctx context.Context, want map[string][]string) (map[string]map[string]uint16, error) {
	hosts := make([]string, 0, len(want))
	for h := range want {
		if h == "" {
			return nil, invalid("host must not be empty")
		}
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	have, err := localVLANsOf(ctx, s.pool.Query, hosts)
	if err != nil {
		return nil, err
	}
	if out, ok := pickAll(have, want); ok {
		return out, nil
	}
	_, err = s.write(ctx, func(ctx context.Context, w *wtx) error {
		have, err = localVLANsOf(ctx, w.query, hosts)
		if err != nil {
			return err
		}
		var missing []string
		seen := map[string]bool{}
		for _, h := range hosts {
			for _, id := range want[h] {
				if _, ok := have[h][id]; !ok && !seen[id] {
					seen[id] = true
					missing = append(missing, id)
				}
			}
		}
		rows, err := w.query(ctx, `SELECT id FROM networks WHERE id = ANY($1)`, missing)
		if err != nil {
			return fmt.Errorf("check networks: %w", err)
		}
		found, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("check networks: %w", err)
		}
		exists := make(map[string]bool, len(found))
		for _, id := range found {
			exists[id] = true
		}
		sort.Strings(missing)
		for _, id := range missing {
			if !exists[id] {
				return notFound("NetworkNotFound", "Network %s could not be found.", id)
			}
		}
		var hs, ns []string
		var vs []int32
		for _, h := range hosts {
			hv := have[h]
			if hv == nil {
				hv = map[string]uint16{}
				have[h] = hv
			}
			used := make(map[uint16]bool, len(hv))
			for _, v := range hv {
				used[v] = true
			}
			ids := append([]string(nil), want[h]...)
			sort.Strings(ids)
			next := uint16(1)
			for _, id := range ids {
				if _, ok := hv[id]; ok {
					continue
				}
				for next <= 4094 && used[next] {
					next++
				}
				if next > 4094 {
					return newError(ClassUnavailable, "LocalVLANExhausted", "No free local VLAN left on host %s.", h)
				}
				used[next] = true
				hv[id] = next
				hs, ns, vs = append(hs, h), append(ns, id), append(vs, int32(next))
				lv := LocalVLAN{Host: h, NetworkID: id, VLAN: next}
				w.record(KindLocalVLAN, lv.key(), OpCreate, lv)
			}
		}
		if len(hs) > 0 {
			w.exec(`INSERT INTO local_vlans (host, network_id, vlan) SELECT * FROM unnest($1::text[], $2::text[], $3::int[])`, hs, ns, vs)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out, _ := pickAll(have, want)
	return out, nil
}

func pickAll(have map[string]map[string]uint16, want map[string][]string) (map[string]map[string]uint16, bool) {
	out := make(map[string]map[string]uint16, len(want))
	for h, ids := range want {
		m, ok := pick(have[h], ids)
		if !ok {
			return nil, false
		}
		out[h] = m
	}
	return out, true
}

func localVLANsOf(ctx context.Context, q func(context.Context, string, ...any) (pgx.Rows, error), hosts []string) (map[string]map[string]uint16, error) {
	rows, err := q(ctx, `SELECT host, network_id, vlan FROM local_vlans WHERE host = ANY($1)`, hosts)
	if err != nil {
		return nil, fmt.Errorf("local VLANs: %w", err)
	}
	out := map[string]map[string]uint16{}
	var h, id string
	var v int
	if _, err := pgx.ForEachRow(rows, []any{&h, &id, &v}, func() error {
		if out[h] == nil {
			out[h] = map[string]uint16{}
		}
		out[h][id] = uint16(v)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("local VLANs: %w", err)
	}
	return out, nil
}

// ReleaseLocalVLANsBulk is ReleaseLocalVLANs for many hosts in one write: host ->
// networks whose VLANs to free (a nil list frees all of the host's).
func (s *Store) ReleaseLocalVLANsBulk(ctx context.Context, release map[string][]string) error {
	var all, hs, ns []string
	for h, ids := range release {
		if ids == nil {
			all = append(all, h)
			continue
		}
		for _, id := range ids {
			hs, ns = append(hs, h), append(ns, id)
		}
	}
	if len(all) == 0 && len(hs) == 0 {
		return nil
	}
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		rows, err := w.query(ctx, `DELETE FROM local_vlans l WHERE l.host = ANY($1)
OR (l.host, l.network_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))
RETURNING host, network_id, vlan`, all, hs, ns)
		if err != nil {
			return fmt.Errorf("release local VLANs: %w", err)
		}
		lvs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LocalVLAN, error) {
			var lv LocalVLAN
			var v int
			err := r.Scan(&lv.Host, &lv.NetworkID, &v)
			lv.VLAN = uint16(v)
			return lv, err
		})
		if err != nil {
			return fmt.Errorf("release local VLANs: %w", err)
		}
		sort.Slice(lvs, func(i, j int) bool { return lvs[i].key() < lvs[j].key() })
		for _, lv := range lvs {
			w.record(KindLocalVLAN, lv.key(), OpDelete, lv)
		}
		return nil
	})
	return err
}
