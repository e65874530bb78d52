package db

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"

	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
)

// Subnet pools (Neutron's subnet_allocation and default-subnetpools): a pool holds
// prefixes, and a subnet created from it gets the first free prefix of the requested
// length (or the CIDR it asks for, if free) in the same write as its insert. Writes are
// serialized on the topology revision row, so two creates never get the same prefix.
// The pool's checks are those of Neutron's SubnetPoolReader and SubnetAllocator
// (neutron/ipam/subnet_alloc.py).

// SubnetPoolSpec holds the fields of a subnet pool create or update; nil means "not
// given". Prefixes are CIDRs of one IP version (host bits allowed: they are masked).
type SubnetPoolSpec struct {
	ProjectID        string // create only
	Name             *string
	Description      *string
	Prefixes         *[]string
	DefaultPrefixLen *int
	MinPrefixLen     *int
	MaxPrefixLen     *int
	DefaultQuota     *int64
	Shared           *bool // create only
	IsDefault        *bool
}

// Neutron's per-version defaults (SubnetPoolHelper): the smallest min_prefixlen a pool
// gets when it names none, and quota units (a quota counts /32s of IPv4, /64s of IPv6).
var poolVersions = map[int]struct{ width, defaultMin, quotaUnit int }{
	4: {32, 8, 32},
	6: {128, 64, 64},
}

// SubnetAllocationClass is the class of SubnetAllocationError (no free prefix of the
// requested length, or the requested CIDR not free in the pool). Neutron's exception is
// a bare NeutronException, which its API answers with 500; dvrflow answers 409.
const SubnetAllocationClass = ClassConflict

func subnetAllocationError(format string, args ...any) *Error {
	return newError(SubnetAllocationClass, "SubnetAllocationError", "Failed to allocate subnet: "+format+".", args...)
}

func poolNotFound(id string) *Error {
	return notFound("SubnetPoolNotFound", "Subnet pool %s could not be found.", id)
}

func illegalBounds(typ string, n int, baseTyp string, base int) *Error {
	return newError(ClassInvalid, "IllegalSubnetPoolPrefixBounds", "Illegal prefix bounds: %s=%d, %s=%d.", typ, n, baseTyp, base)
}

// parsePoolPrefixes parses a pool's prefix list: every item a CIDR (Neutron's
// validate_subnet), all of one IP version.
func parsePoolPrefixes(prefixes []string) ([]netip.Prefix, int, error) {
	if len(prefixes) == 0 {
		return nil, 0, newError(ClassInvalid, "EmptySubnetPoolPrefixList", "Empty subnet pool prefix list.")
	}
	out := make([]netip.Prefix, 0, len(prefixes))
	version := 0
	for _, s := range prefixes {
		p, err := netip.ParsePrefix(s)
		if err != nil || p.Addr().Zone() != "" {
			return nil, 0, invalid("'%s' is not a valid IP subnet", s)
		}
		v := 4
		if p.Addr().Is6() {
			v = 6
		}
		if version != 0 && v != version {
			return nil, 0, newError(ClassInvalid, "PrefixVersionMismatch", "Cannot mix IPv4 and IPv6 prefixes in a subnet pool.")
		}
		version = v
		out = append(out, p.Masked())
	}
	return out, version, nil
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// checkPrefixBounds fills in the prefix lengths a pool does not name (min: 8 for IPv4, 64
// for IPv6; max: the address width; default: min) and checks min <= default <= max <=
// width, in Neutron's order.
func checkPrefixBounds(p *topology.SubnetPool, spec SubnetPoolSpec, create bool) error {
	ver := poolVersions[p.IPVersion]
	if spec.MinPrefixLen != nil {
		p.MinPrefixLen = *spec.MinPrefixLen
	} else if create {
		p.MinPrefixLen = ver.defaultMin
	}
	if spec.MaxPrefixLen != nil {
		p.MaxPrefixLen = *spec.MaxPrefixLen
	} else if create {
		p.MaxPrefixLen = ver.width
	}
	if spec.DefaultPrefixLen != nil {
		p.DefaultPrefixLen = *spec.DefaultPrefixLen
	} else if create {
		p.DefaultPrefixLen = p.MinPrefixLen
	}
	if p.MinPrefixLen < 0 {
		return newError(ClassInvalid, "UnsupportedMinSubnetPoolPrefix", "Prefix '%d' not supported in IPv%d pool.", p.MinPrefixLen, 4)
	}
	if p.MinPrefixLen > p.MaxPrefixLen {
		return illegalBounds("min_prefixlen", p.MinPrefixLen, "max_prefixlen", p.MaxPrefixLen)
	}
	if p.MaxPrefixLen > ver.width {
		return illegalBounds("max_prefixlen", p.MaxPrefixLen, "ip_version_max", ver.width)
	}
	if p.DefaultPrefixLen < p.MinPrefixLen {
		return illegalBounds("default_prefixlen", p.DefaultPrefixLen, "min_prefixlen", p.MinPrefixLen)
	}
	if p.DefaultPrefixLen > p.MaxPrefixLen {
		return illegalBounds("default_prefixlen", p.DefaultPrefixLen, "max_prefixlen", p.MaxPrefixLen)
	}
	return nil
}

func applyPoolNames(p *topology.SubnetPool, spec SubnetPoolSpec) {
	if spec.Name != nil {
		p.Name = *spec.Name
	}
	if spec.Description != nil {
		p.Description = *spec.Description
	}
	if spec.DefaultQuota != nil {
		q := *spec.DefaultQuota
		p.DefaultQuota = &q
	}
	if spec.IsDefault != nil {
		p.IsDefault = *spec.IsDefault
	}
}

// checkNoDefault refuses a second default pool of an IP version.
func (w *wtx) checkNoDefault(ctx context.Context, version int, except string) error {
	var n int
	if err := w.queryRow(ctx, `SELECT count(*) FROM subnetpools WHERE is_default AND ip_version = $1 AND id <> $2`,
		version, except).Scan(&n); err != nil {
		return fmt.Errorf("look for the default IPv%d subnet pool: %w", version, err)
	}
	if n > 0 {
		return secondDefault()
	}
	return nil
}

func secondDefault() *Error {
	return invalid("A default subnetpool for this IP family has already been set. Only one default may exist per IP family")
}

// CreateSubnetPool creates a subnet pool: its prefixes merged as netaddr's IPSet does
// (overlapping and adjacent ones joined), its IP version theirs, its prefix lengths
// checked (checkPrefixBounds), at most one default pool per IP version.
func (s *Store) CreateSubnetPool(ctx context.Context, spec SubnetPoolSpec) (*topology.SubnetPool, error) {
	return createOne(ctx, spec, s.CreateSubnetPools)
}

// CreateSubnetPools creates subnet pools in one write, each as CreateSubnetPool does.
func (s *Store) CreateSubnetPools(ctx context.Context, specs []SubnetPoolSpec) ([]topology.SubnetPool, error) {
	if err := checkBulk("subnetpools", len(specs)); err != nil {
		return nil, err
	}
	pools := make([]topology.SubnetPool, len(specs))
	for i, spec := range specs {
		p, err := buildSubnetPool(spec)
		if err != nil {
			return nil, itemError(i, err)
		}
		pools[i] = p
	}
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		adds := map[string]int{}
		for i := range pools {
			adds[pools[i].ProjectID]++
		}
		if err := w.checkQuota(ctx, QuotaSubnetPool, adds); err != nil {
			return err
		}
		defaults := map[int]bool{}
		for i := range pools {
			p := &pools[i]
			if p.IsDefault {
				if defaults[p.IPVersion] {
					return itemError(i, secondDefault())
				}
				defaults[p.IPVersion] = true
				if err := w.checkNoDefault(ctx, p.IPVersion, p.ID); err != nil {
					return itemError(i, err)
				}
			}
			p.CreatedAt, p.UpdatedAt = w.now, w.now
			w.exec(`INSERT INTO subnetpools (id, project_id, ip_version, is_default, obj) VALUES ($1, $2, $3, $4, $5)`,
				p.ID, p.ProjectID, p.IPVersion, p.IsDefault, mustJSON(p))
			w.record(topology.KindSubnetPool, p.ID, topology.OpCreate, *p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return pools, nil
}

// buildSubnetPool validates a create spec and returns the pool it describes.
func buildSubnetPool(spec SubnetPoolSpec) (topology.SubnetPool, error) {
	p := topology.SubnetPool{ID: newID(), ProjectID: spec.ProjectID}
	if spec.Prefixes == nil {
		return p, badRequest("Failed to parse request. Required attribute 'prefixes' not specified")
	}
	prefixes, version, err := parsePoolPrefixes(*spec.Prefixes)
	if err != nil {
		return p, err
	}
	p.IPVersion = version
	p.Prefixes = prefixStrings(newPrefixSet(poolVersions[version].width, prefixes).cidrs())
	if err := checkPrefixBounds(&p, spec, true); err != nil {
		return p, err
	}
	applyPoolNames(&p, spec)
	if spec.Shared != nil {
		p.Shared = *spec.Shared
	}
	return p, nil
}

func (w *wtx) subnetPool(ctx context.Context, id string, p *topology.SubnetPool) error {
	err := w.getObj(ctx, "subnetpools", id, p)
	if errors.Is(err, pgx.ErrNoRows) {
		return poolNotFound(id)
	}
	if err != nil {
		return fmt.Errorf("load subnet pool %s: %w", id, err)
	}
	return w.constrain(topology.KindSubnetPool, id, p.RevisionNumber)
}

// UpdateSubnetPool changes a pool's name, description, prefix lengths, quota, default
// flag and prefixes. Prefixes may only grow: the new list must hold every address of the
// old one (IllegalSubnetPoolPrefixUpdate), and is merged as on create.
func (s *Store) UpdateSubnetPool(ctx context.Context, id string, spec SubnetPoolSpec) (*topology.SubnetPool, error) {
	if spec.ProjectID != "" || spec.Shared != nil {
		return nil, invalid("project_id and shared of subnet pool %s cannot be updated", id)
	}
	var p topology.SubnetPool
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		if err := w.subnetPool(ctx, id, &p); err != nil {
			return err
		}
		wasDefault := p.IsDefault
		if spec.Prefixes != nil {
			merged, err := grownPrefixes(&p, *spec.Prefixes)
			if err != nil {
				return err
			}
			p.Prefixes = merged
		}
		if err := checkPrefixBounds(&p, spec, false); err != nil {
			return err
		}
		applyPoolNames(&p, spec)
		if p.IsDefault && !wasDefault {
			if err := w.checkNoDefault(ctx, p.IPVersion, p.ID); err != nil {
				return err
			}
		}
		p.UpdatedAt = w.now
		p.RevisionNumber++
		w.exec(`UPDATE subnetpools SET is_default = $2, obj = $3 WHERE id = $1`, p.ID, p.IsDefault, mustJSON(p))
		w.record(topology.KindSubnetPool, p.ID, topology.OpUpdate, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &p, nil
}

// grownPrefixes returns the merged prefixes of an update of p's, which must cover them.
func grownPrefixes(p *topology.SubnetPool, prefixes []string) ([]string, error) {
	width := poolVersions[p.IPVersion].width
	old, _, err := parsePoolPrefixes(p.Prefixes)
	if err != nil {
		return nil, fmt.Errorf("stored prefixes of subnet pool %s: %w", p.ID, err)
	}
	// Neutron compares the address sets before it checks the list (netaddr's IPSet takes
	// both versions): addresses of the other version do not cover the old ones.
	var same []netip.Prefix
	for _, s := range prefixes {
		if q, err := netip.ParsePrefix(s); err == nil && q.Addr().BitLen() == width {
			same = append(same, q)
		}
	}
	if !newPrefixSet(width, same).covers(newPrefixSet(width, old)) {
		return nil, newError(ClassInvalid, "IllegalSubnetPoolPrefixUpdate",
			"Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes.")
	}
	parsed, _, err := parsePoolPrefixes(prefixes)
	if err != nil {
		return nil, err
	}
	return prefixStrings(newPrefixSet(width, parsed).cidrs()), nil
}

// DeleteSubnetPool deletes a pool no subnet was allocated from (SubnetPoolDeleteError,
// 400 as in Neutron, otherwise).
func (s *Store) DeleteSubnetPool(ctx context.Context, id string) error {
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var p topology.SubnetPool
		if err := w.subnetPool(ctx, id, &p); err != nil {
			return err
		}
		var used bool
		if err := w.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM subnets WHERE subnetpool_id = $1)`, id).Scan(&used); err != nil {
			return fmt.Errorf("look for subnets of subnet pool %s: %w", id, err)
		}
		if used {
			return newError(ClassInvalid, "SubnetPoolDeleteError", "Unable to delete subnet pool: Subnet pool has existing allocations.")
		}
		w.exec(`DELETE FROM subnetpools WHERE id = $1`, id)
		w.record(topology.KindSubnetPool, id, topology.OpDelete, p)
		return nil
	})
	return err
}

// GetSubnetPool returns one subnet pool.
func (s *Store) GetSubnetPool(ctx context.Context, id string) (*topology.SubnetPool, error) {
	xs, err := objs[topology.SubnetPool](ctx, s.pool.Query, `SELECT obj FROM subnetpools WHERE id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("get subnet pool %s: %w", id, err)
	}
	if len(xs) == 0 {
		return nil, poolNotFound(id)
	}
	return &xs[0], nil
}

// ListSubnetPools returns every subnet pool.
func (s *Store) ListSubnetPools(ctx context.Context) ([]topology.SubnetPool, error) {
	xs, err := objs[topology.SubnetPool](ctx, s.pool.Query, `SELECT obj FROM subnetpools ORDER BY obj->>'created_at', id`)
	if err != nil {
		return nil, fmt.Errorf("list subnet pools: %w", err)
	}
	return xs, nil
}

// checkPoolRequest makes the checks of a subnet create from a pool that need no store
// (Neutron's _create_subnet_precommit and validate_pools_with_subnetpool).
func checkPoolRequest(spec SubnetSpec) error {
	if spec.PrefixLen != nil && spec.CIDR != nil {
		return badRequest("Bad subnets request: cidr and prefixlen must not be supplied together.")
	}
	if spec.SubnetPoolID == "" {
		if spec.PrefixLen != nil {
			return badRequest("Bad subnets request: a subnetpool must be specified in the absence of a cidr.")
		}
		return nil
	}
	if spec.CIDR == nil && spec.AllocationPools != nil {
		return badRequest("Bad subnets request: allocation_pools allowed only for specific subnet requests.")
	}
	return nil
}

// poolVersion returns the IP version of subnet pool id.
func (w *wtx) poolVersion(ctx context.Context, id string) (int, error) {
	var p topology.SubnetPool
	if err := w.subnetPool(ctx, id, &p); err != nil {
		return 0, err
	}
	return p.IPVersion, nil
}

// poolCIDR returns the CIDR a subnet of spec gets from its pool: the CIDR it asks for if
// the pool holds it free, otherwise the first free prefix of its prefixlen (by default the
// pool's default_prefixlen). taken are CIDRs of the pool this write already gave out.
func (w *wtx) poolCIDR(ctx context.Context, spec SubnetSpec, taken []string) (string, error) {
	var p topology.SubnetPool
	if err := w.subnetPool(ctx, spec.SubnetPoolID, &p); err != nil {
		return "", err
	}
	if spec.IPVersion != nil && *spec.IPVersion != p.IPVersion {
		return "", badRequest("Bad subnets request: Cannot allocate IPv%d subnet from IPv%d subnet pool.", *spec.IPVersion, p.IPVersion)
	}
	var want netip.Prefix
	bits := p.DefaultPrefixLen
	if spec.CIDR != nil {
		c, err := parseCIDR(*spec.CIDR)
		if err != nil {
			return "", err
		}
		if addrVersion(c.Addr()) != p.IPVersion {
			return "", versionMismatch("cidr", *spec.CIDR, p.IPVersion)
		}
		want, bits = c, c.Bits()
	} else if spec.PrefixLen != nil {
		bits = *spec.PrefixLen
	}
	if bits > p.MaxPrefixLen {
		return "", newError(ClassInvalid, "MaxPrefixSubnetAllocationError",
			"Unable to allocate subnet with prefix length %d, maximum allowed prefix is %d.", bits, p.MaxPrefixLen)
	}
	if bits < p.MinPrefixLen {
		return "", newError(ClassInvalid, "MinPrefixSubnetAllocationError",
			"Unable to allocate subnet with prefix length %d, minimum allowed prefix is %d.", bits, p.MinPrefixLen)
	}
	allocs, err := w.poolAllocs(ctx, p.ID)
	if err != nil {
		return "", err
	}
	for _, t := range taken {
		allocs = append(allocs, poolAlloc{t, spec.ProjectID})
	}
	if err := checkPoolQuota(&p, spec.ProjectID, bits, allocs); err != nil {
		return "", err
	}
	used := make([]netip.Prefix, 0, len(allocs))
	for _, a := range allocs {
		if q, err := netip.ParsePrefix(a.cidr); err == nil {
			used = append(used, q)
		}
	}
	prefixes, _, err := parsePoolPrefixes(p.Prefixes)
	if err != nil {
		return "", fmt.Errorf("stored prefixes of subnet pool %s: %w", p.ID, err)
	}
	width := poolVersions[p.IPVersion].width
	free := newPrefixSet(width, prefixes).minus(newPrefixSet(width, used))
	if want.IsValid() {
		if !free.covers(newPrefixSet(width, []netip.Prefix{want})) {
			return "", subnetAllocationError("Cannot allocate requested subnet from the available set of prefixes")
		}
		return want.String(), nil
	}
	got, ok := free.firstFit(bits)
	if !ok {
		return "", subnetAllocationError("Insufficient prefix space to allocate subnet size /%d", bits)
	}
	return got.String(), nil
}

// poolAlloc is a subnet of a pool: its CIDR and project.
type poolAlloc struct{ cidr, project string }

// poolAllocs returns the subnets allocated from pool.
func (w *wtx) poolAllocs(ctx context.Context, pool string) ([]poolAlloc, error) {
	rows, err := w.query(ctx, `SELECT obj->>'cidr', project_id FROM subnets WHERE subnetpool_id = $1`, pool)
	if err != nil {
		return nil, fmt.Errorf("load subnets of subnet pool %s: %w", pool, err)
	}
	var out []poolAlloc
	for rows.Next() {
		var a poolAlloc
		if err := rows.Scan(&a.cidr, &a.project); err != nil {
			rows.Close()
			return nil, fmt.Errorf("load subnets of subnet pool %s: %w", pool, err)
		}
		out = append(out, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load subnets of subnet pool %s: %w", pool, err)
	}
	return out, nil
}

// checkPoolQuota refuses a /bits for project when the pool's default_quota (in /32s of
// IPv4, /64s of IPv6; 0 or none: no quota) would be exceeded by the project's subnets
// of the pool. Neutron counts the pool owner's subnets whoever asks; dvrflow counts the
// asking project's, as the quota is documented ("per-project quota on the prefix space").
func checkPoolQuota(p *topology.SubnetPool, project string, bits int, allocs []poolAlloc) error {
	if p.DefaultQuota == nil || *p.DefaultQuota == 0 {
		return nil
	}
	unit := poolVersions[p.IPVersion].quotaUnit
	used := 0.0
	for _, a := range allocs {
		if q, err := netip.ParsePrefix(a.cidr); err == nil && a.project == project {
			used += math.Pow(2, float64(unit-q.Bits()))
		}
	}
	if used+math.Pow(2, float64(unit-bits)) > float64(*p.DefaultQuota) {
		return conflict("SubnetPoolQuotaExceeded", "Per-tenant subnet pool prefix quota exceeded.")
	}
	return nil
}

// checkPoolAffinity refuses a subnet whose pool differs from that of another subnet of its
// network (Neutron's NetworkSubnetPoolAffinityError; all dvrflow subnets are IPv4).
func checkPoolAffinity(pool string, others []string) error {
	for _, o := range others {
		if o != pool {
			return newError(ClassInvalid, "NetworkSubnetPoolAffinityError",
				"Subnets hosted on the same network must be allocated from the same subnet pool.")
		}
	}
	return nil
}

// nullString maps "" to SQL NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
