package db

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// QuotaResource is one resource Neutron's quota engine limits per project.
type QuotaResource struct {
	// Name is the resource as the quotas API names it (network, security_group_rule).
	Name string
	// Default is Neutron's default limit (its [QUOTAS] quota_<resource> option; -1 is
	// unlimited, as Neutron's default_quota for subnet pools).
	Default int64
	// count is the SQL expression counting a project's resources ($1 is the project).
	count string
}

// QuotaResources is every resource a project's quota limits, in the order the API
// lists them, with Neutron's defaults. A project's usage counts every resource of the
// project, those the system made for it (DHCP and router interface ports, the default
// security group and its rules) included, as Neutron counts them.
var QuotaResources = []QuotaResource{
	{"network", 100, `SELECT count(*) FROM networks WHERE project_id = $1`},
	{"subnet", 100, `SELECT count(*) FROM subnets WHERE project_id = $1`},
	{"subnetpool", -1, `SELECT count(*) FROM subnetpools WHERE project_id = $1`},
	{"port", 500, `SELECT count(*) FROM ports WHERE project_id = $1`},
	{"router", 10, `SELECT count(*) FROM routers WHERE project_id = $1`},
	{"floatingip", 50, `SELECT count(*) FROM floatingips WHERE project_id = $1`},
	{"security_group", 10, `SELECT count(*) FROM security_groups WHERE project_id = $1`},
	{"security_group_rule", 100, `SELECT count(*) FROM security_group_rules WHERE obj ->> 'project_id' = $1`},
}

// Quota resource names the store enforces.
const (
	QuotaNetwork           = "network"
	QuotaSubnet            = "subnet"
	QuotaSubnetPool        = "subnetpool"
	QuotaPort              = "port"
	QuotaRouter            = "router"
	QuotaFloatingIP        = "floatingip"
	QuotaSecurityGroup     = "security_group"
	QuotaSecurityGroupRule = "security_group_rule"
)

// MaxQuota is the largest limit a quota takes (Neutron's DB_INTEGER_MAX_VALUE).
const MaxQuota = 1<<31 - 1

// DefaultQuotas returns Neutron's default limits by resource.
func DefaultQuotas() map[string]int64 {
	out := make(map[string]int64, len(QuotaResources))
	for _, r := range QuotaResources {
		out[r.Name] = r.Default
	}
	return out
}

func quotaResource(name string) (QuotaResource, bool) {
	i := slices.IndexFunc(QuotaResources, func(r QuotaResource) bool { return r.Name == name })
	if i < 0 {
		return QuotaResource{}, false
	}
	return QuotaResources[i], true
}

// validateQuotaDefaults checks a configuration's default limits.
func validateQuotaDefaults(d map[string]int64) error {
	for name, v := range d {
		if _, ok := quotaResource(name); !ok {
			return fmt.Errorf("quota of unknown resource %q", name)
		}
		if v < -1 || v > MaxQuota {
			return fmt.Errorf("default quota of %s %d: must be -1 (unlimited) to %d", name, v, MaxQuota)
		}
	}
	return nil
}

// defaultQuota returns the configured default limit of resource.
func (c Config) defaultQuota(resource string) int64 {
	if v, ok := c.QuotaDefaults[resource]; ok {
		return v
	}
	r, _ := quotaResource(resource)
	return r.Default
}

// DefaultQuotas returns the store's default limits by resource (GET
// /v2.0/quotas/{project_id}/default).
func (s *Store) DefaultQuotas() map[string]int64 {
	out := make(map[string]int64, len(QuotaResources))
	for _, r := range QuotaResources {
		out[r.Name] = s.cfg.defaultQuota(r.Name)
	}
	return out
}

// ProjectQuotas is the limits of a project that has limits of its own.
type ProjectQuotas struct {
	ProjectID string
	Limits    map[string]int64
}

// Quotas returns project's limits by resource: those set for it, the defaults for the
// others.
func (s *Store) Quotas(ctx context.Context, project string) (map[string]int64, error) {
	out := s.DefaultQuotas()
	rows, err := s.pool.Query(ctx, `SELECT resource, hard_limit FROM quotas WHERE project_id = $1`, project)
	if err != nil {
		return nil, fmt.Errorf("quotas of %s: %w", project, err)
	}
	var res string
	var limit int64
	if _, err := pgx.ForEachRow(rows, []any{&res, &limit}, func() error {
		if _, ok := out[res]; ok {
			out[res] = limit
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("quotas of %s: %w", project, err)
	}
	return out, nil
}

// ListQuotas returns the limits of every project with limits of its own (set and not
// reset), by project.
func (s *Store) ListQuotas(ctx context.Context) ([]ProjectQuotas, error) {
	rows, err := s.pool.Query(ctx, `SELECT project_id, resource, hard_limit FROM quotas ORDER BY project_id`)
	if err != nil {
		return nil, fmt.Errorf("list quotas: %w", err)
	}
	var out []ProjectQuotas
	var project, res string
	var limit int64
	if _, err := pgx.ForEachRow(rows, []any{&project, &res, &limit}, func() error {
		if len(out) == 0 || out[len(out)-1].ProjectID != project {
			out = append(out, ProjectQuotas{ProjectID: project, Limits: s.DefaultQuotas()})
		}
		if _, ok := out[len(out)-1].Limits[res]; ok {
			out[len(out)-1].Limits[res] = limit
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list quotas: %w", err)
	}
	return out, nil
}

// QuotaDetail is one resource's limit and usage (Neutron's quota_details: nothing is
// ever reserved, every create counts in the write that inserts).
type QuotaDetail struct {
	Limit, Used, Reserved int64
}

// QuotaDetails returns project's limits and usage by resource.
func (s *Store) QuotaDetails(ctx context.Context, project string) (map[string]QuotaDetail, error) {
	limits, err := s.Quotas(ctx, project)
	if err != nil {
		return nil, err
	}
	used, err := s.quotaUsage(ctx, project)
	if err != nil {
		return nil, err
	}
	out := make(map[string]QuotaDetail, len(limits))
	for name, l := range limits {
		out[name] = QuotaDetail{Limit: l, Used: used[name]}
	}
	return out, nil
}

// quotaUsage counts project's resources of every kind in one query.
func (s *Store) quotaUsage(ctx context.Context, project string) (map[string]int64, error) {
	parts := make([]string, len(QuotaResources))
	for i, r := range QuotaResources {
		parts[i] = "(" + r.count + ")"
	}
	counts := make([]int64, len(QuotaResources))
	dst := make([]any, len(counts))
	for i := range counts {
		dst[i] = &counts[i]
	}
	if err := s.pool.QueryRow(ctx, `SELECT `+strings.Join(parts, ", "), project).Scan(dst...); err != nil {
		return nil, fmt.Errorf("quota usage of %s: %w", project, err)
	}
	out := make(map[string]int64, len(counts))
	for i, r := range QuotaResources {
		out[r.Name] = counts[i]
	}
	return out, nil
}

// SetQuotas sets project's limits of the resources in limits (-1 is unlimited) and
// returns all its limits. With checkLimit, a limit below the project's usage is refused
// (Neutron's check_limit); without, it is set (Neutron's default: the project keeps
// what it has and creates nothing more).
func (s *Store) SetQuotas(ctx context.Context, project string, limits map[string]int64, checkLimit bool) (map[string]int64, error) {
	names := slices.Sorted(maps.Keys(limits))
	for _, name := range names {
		if _, ok := quotaResource(name); !ok {
			return nil, badRequest("Unrecognized attribute(s) '%s'", name)
		}
		if v := limits[name]; v < -1 || v > MaxQuota {
			return nil, invalid("'%d' is not in range -1 through %d", v, MaxQuota)
		}
	}
	err := s.quotaTx(ctx, func(tx pgx.Tx) error {
		for _, name := range names {
			if !checkLimit || limits[name] < 0 {
				continue
			}
			r, _ := quotaResource(name)
			var used int64
			if err := tx.QueryRow(ctx, r.count, project).Scan(&used); err != nil {
				return fmt.Errorf("count %s of %s: %w", name, project, err)
			}
			if used > limits[name] {
				return badRequest("Quota limit %d for %s must be greater than or equal to already used %d", limits[name], name, used)
			}
		}
		for _, name := range names {
			if _, err := tx.Exec(ctx, `INSERT INTO quotas (project_id, resource, hard_limit) VALUES ($1, $2, $3)
ON CONFLICT (project_id, resource) DO UPDATE SET hard_limit = excluded.hard_limit`, project, name, limits[name]); err != nil {
				return fmt.Errorf("set quota of %s for %s: %w", name, project, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.Quotas(ctx, project)
}

// DeleteQuotas resets project's limits to the defaults; a project without limits of
// its own is Neutron's TenantQuotaNotFound.
func (s *Store) DeleteQuotas(ctx context.Context, project string) error {
	return s.quotaTx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM quotas WHERE project_id = $1`, project)
		if err != nil {
			return fmt.Errorf("delete quotas of %s: %w", project, err)
		}
		if tag.RowsAffected() == 0 {
			return notFound("TenantQuotaNotFound", "Quota for tenant %s could not be found.", project)
		}
		return nil
	})
}

// quotaTx runs fn in a transaction holding the topology revision lock, so a change of
// limits is ordered with the topology writes (whose creates count against them) without
// being one: it has no revision and no change-log entry.
func (s *Store) quotaTx(ctx context.Context, fn func(pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin quota write: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
	if _, err := tx.Exec(ctx, `SELECT revision FROM topology_revision WHERE id = 1 FOR UPDATE`); err != nil {
		return fmt.Errorf("lock topology revision: %w", err)
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit quota write: %w", err)
	}
	return nil
}

// overQuota is Neutron's OverQuota naming the resources a create would take past
// their limit.
func overQuota(resources ...string) *Error {
	quoted := make([]string, len(resources))
	for i, r := range resources {
		quoted[i] = "'" + r + "'"
	}
	return conflict("OverQuota", "Quota exceeded for resources: [%s].", strings.Join(quoted, ", "))
}

// checkQuota refuses with OverQuota a write that would add adds[project] resources
// of kind resource to a project and so take it past its limit. It counts inside the
// write, after the statements of the writes before it, so concurrent creates cannot
// pass a limit together.
func (w *wtx) checkQuota(ctx context.Context, resource string, adds map[string]int) error {
	r, ok := quotaResource(resource)
	if !ok {
		return fmt.Errorf("quota of unknown resource %q", resource)
	}
	for _, project := range slices.Sorted(maps.Keys(adds)) {
		n := adds[project]
		if n <= 0 {
			continue
		}
		var used int64
		var set *int64
		if err := w.queryRow(ctx, `SELECT (`+r.count+`), (SELECT hard_limit FROM quotas WHERE project_id = $1 AND resource = $2)`,
			project, resource).Scan(&used, &set); err != nil {
			return fmt.Errorf("quota of %s for %s: %w", resource, project, err)
		}
		limit := w.cfg.defaultQuota(resource)
		if set != nil {
			limit = *set
		}
		if limit >= 0 && used+int64(n) > limit {
			return overQuota(resource)
		}
	}
	return nil
}

// checkQuotaOne is checkQuota for n resources of one project.
func (w *wtx) checkQuotaOne(ctx context.Context, resource, project string, n int) error {
	return w.checkQuota(ctx, resource, map[string]int{project: n})
}
