package northbound

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/labstack/echo/v4"
)

// Subnet pools (Neutron's subnet_allocation and default-subnetpools extensions). A project
// sees its own pools and shared ones; only an admin may create a shared or default pool or
// make one the default. Address scopes are not supported: address_scope_id is always null.

func subnetPoolShape(p *topology.SubnetPool) map[string]any {
	var quota any
	if p.DefaultQuota != nil {
		quota = *p.DefaultQuota
	}
	// Neutron answers the prefix lengths as strings (_make_subnetpool_dict).
	return map[string]any{
		"id": p.ID, "name": p.Name, "description": p.Description,
		"tenant_id": p.ProjectID, "project_id": p.ProjectID,
		"prefixes": orEmpty(p.Prefixes), "ip_version": p.IPVersion,
		"default_prefixlen": strconv.Itoa(p.DefaultPrefixLen), "min_prefixlen": strconv.Itoa(p.MinPrefixLen),
		"max_prefixlen": strconv.Itoa(p.MaxPrefixLen), "default_quota": quota,
		"shared": p.Shared, "is_default": p.IsDefault, "address_scope_id": nil, "tags": orEmpty(p.Tags),
		"created_at": ts(p.CreatedAt), "updated_at": ts(p.UpdatedAt), "revision_number": p.RevisionNumber,
	}
}

// visibleSubnetPool returns a pool the caller may see: its project's or a shared one
// (SubnetPoolNotFound otherwise).
func (s *Server) visibleSubnetPool(c echo.Context, id string) (*topology.SubnetPool, error) {
	p, err := s.store.GetSubnetPool(c.Request().Context(), id)
	if err != nil {
		return nil, err
	}
	if !callerOf(c).sees(p.ProjectID, p.Shared) {
		return nil, notFound("SubnetPoolNotFound", "Subnet pool %s could not be found.", id)
	}
	return p, nil
}

// ownedSubnetPool returns a pool the caller may change.
func (s *Server) ownedSubnetPool(c echo.Context, id string) (*topology.SubnetPool, error) {
	p, err := s.visibleSubnetPool(c, id)
	if err != nil {
		return nil, err
	}
	if !callerOf(c).owns(p.ProjectID) {
		return nil, forbidden("Subnet pool %s belongs to another project", id)
	}
	return p, nil
}

func (s *Server) listSubnetPools(c echo.Context) error {
	ps, err := s.store.ListSubnetPools(c.Request().Context())
	if err != nil {
		return err
	}
	cl := callerOf(c)
	items := make([]map[string]any, 0, len(ps))
	for i := range ps {
		if cl.sees(ps[i].ProjectID, ps[i].Shared) {
			items = append(items, subnetPoolShape(&ps[i]))
		}
	}
	return respondList(c, "subnetpools", items)
}

func (s *Server) showSubnetPool(c echo.Context) error {
	p, err := s.visibleSubnetPool(c, c.Param("id"))
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "subnetpool", subnetPoolShape(p))
}

// subnetPoolSpec reads the attributes shared by create and update, checked as Neutron's
// attribute map says: name a non-blank string, prefixes a list of distinct CIDRs, prefix
// lengths and quota non-negative integers, address_scope_id null.
func subnetPoolSpec(b *body) (db.SubnetPoolSpec, error) {
	var spec db.SubnetPoolSpec
	var err error
	if spec.Name, err = b.str("name"); err != nil {
		return spec, err
	}
	if spec.Name != nil && strings.TrimSpace(*spec.Name) == "" {
		return spec, badBody("Invalid input for name. Reason: '%s' Blank strings are not permitted.", *spec.Name)
	}
	if spec.Description, err = b.str("description"); err != nil {
		return spec, err
	}
	if r, ok := b.fields["prefixes"]; ok {
		var prefixes []string
		if isNull(r) || json.Unmarshal(r, &prefixes) != nil {
			return spec, invalidField("prefixes", r, "is not a list")
		}
		seen := map[string]bool{}
		for _, p := range prefixes {
			if seen[p] {
				return spec, badBody("Invalid input for prefixes. Reason: Duplicate items in the list: '%s'.", strings.Join(prefixes, ", "))
			}
			seen[p] = true
			if _, err := netip.ParsePrefix(p); err != nil {
				return spec, badBody("Invalid input for prefixes. Reason: '%s' is not a valid IP subnet.", p)
			}
		}
		spec.Prefixes = &prefixes
	}
	for _, f := range []struct {
		name string
		dst  **int
	}{{"default_prefixlen", &spec.DefaultPrefixLen}, {"min_prefixlen", &spec.MinPrefixLen}, {"max_prefixlen", &spec.MaxPrefixLen}} {
		v, err := nonNegative(b, f.name)
		if err != nil {
			return spec, err
		}
		if v != nil {
			n := int(*v)
			*f.dst = &n
		}
	}
	if spec.DefaultQuota, err = nonNegative(b, "default_quota"); err != nil {
		return spec, err
	}
	if spec.IsDefault, err = b.boolean("is_default"); err != nil {
		return spec, err
	}
	if r, ok := b.fields["address_scope_id"]; ok && !isNull(r) {
		return spec, badBody("Invalid input for address_scope_id. Reason: address scopes are not supported (no address-scope extension).")
	}
	return spec, nil
}

// nonNegative reads an integer attribute that must not be negative (Neutron's
// convert_to_int and type:non_negative).
func nonNegative(b *body, name string) (*int64, error) {
	v, err := b.integer(name, false)
	if err != nil || v == nil {
		return v, err
	}
	if *v < 0 {
		return nil, invalidField(name, b.fields[name], "should be non-negative")
	}
	return v, nil
}

func (s *Server) createSubnetPool(c echo.Context) error {
	cl := callerOf(c)
	return create(c, creation[db.SubnetPoolSpec, topology.SubnetPool]{
		kind: "subnetpool", plural: "subnetpools",
		allowed: []string{"name", "description", "prefixes", "default_prefixlen", "min_prefixlen", "max_prefixlen",
			"default_quota", "shared", "is_default", "address_scope_id", "tenant_id", "project_id"},
		readOnly: with(standardReadOnly, "ip_version"),
		spec: func(b *body) (db.SubnetPoolSpec, error) {
			for _, req := range []string{"name", "prefixes"} {
				if _, ok := b.fields[req]; !ok {
					return db.SubnetPoolSpec{}, badBody("Failed to parse request. Required attribute '%s' not specified", req)
				}
			}
			spec, err := subnetPoolSpec(b)
			if err != nil {
				return spec, err
			}
			if spec.Shared, err = b.boolean("shared"); err != nil {
				return spec, err
			}
			spec.ProjectID, err = b.project(cl)
			return spec, err
		},
		one:   s.store.CreateSubnetPool,
		many:  s.store.CreateSubnetPools,
		shape: subnetPoolShape,
	})
}

// badRequest is Neutron's BadRequest (400): "Bad <resource> request: <msg>."
func badRequest(format string, args ...any) error {
	return &db.Error{Class: db.ClassInvalid, Type: "BadRequest", Message: fmt.Sprintf(format, args...)}
}

func (s *Server) updateSubnetPool(c echo.Context) error {
	id := c.Param("id")
	b, err := readBody(c, "subnetpool", []string{"name", "description", "prefixes", "default_prefixlen", "min_prefixlen",
		"max_prefixlen", "default_quota", "is_default", "address_scope_id"},
		with(standardReadOnly, "tenant_id", "project_id", "shared", "ip_version"))
	if err != nil {
		return err
	}
	spec, err := subnetPoolSpec(b)
	if err != nil {
		return err
	}
	if _, err := s.ownedSubnetPool(c, id); err != nil {
		return err
	}
	p, err := s.store.UpdateSubnetPool(c.Request().Context(), id, spec)
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "subnetpool", subnetPoolShape(p))
}

func (s *Server) deleteSubnetPool(c echo.Context) error {
	return deleteOwned(c, s.ownedSubnetPool, s.store.DeleteSubnetPool)
}

// subnetPoolOf resolves the pool of a subnet create: subnetpool_id (null: none), or with
// use_default_subnetpool the default pool of the subnet's IP version the caller sees. The
// pool must be visible to the caller (SubnetPoolNotFound otherwise).
func (s *Server) subnetPoolOf(c echo.Context, b *body, spec *db.SubnetSpec) error {
	id, err := b.nullableStr("subnetpool_id")
	if err != nil {
		return err
	}
	useDefault, err := b.boolean("use_default_subnetpool")
	if err != nil {
		return err
	}
	if id != nil && *id != "" && useDefault != nil && *useDefault {
		return badRequest("Bad subnets request: subnetpool_id and use_default_subnetpool cannot both be specified.")
	}
	if pl, err := nonNegative(b, "prefixlen"); err != nil {
		return err
	} else if pl != nil {
		n := int(*pl)
		spec.PrefixLen = &n
	}
	switch {
	case id != nil && *id != "":
		if _, err := s.visibleSubnetPool(c, *id); err != nil {
			return err
		}
		spec.SubnetPoolID = *id
	case useDefault != nil && *useDefault:
		version := 0
		if spec.CIDR != nil {
			if p, err := netip.ParsePrefix(*spec.CIDR); err == nil {
				version = 4
				if p.Addr().Is6() {
					version = 6
				}
			}
		} else if spec.IPVersion != nil {
			version = *spec.IPVersion
		}
		if version == 0 {
			return badRequest("Bad subnets request: ip_version must be specified in the absence of cidr and subnetpool_id.")
		}
		pools, err := s.store.ListSubnetPools(c.Request().Context())
		if err != nil {
			return err
		}
		cl := callerOf(c)
		for _, p := range pools {
			if p.IsDefault && p.IPVersion == version && cl.sees(p.ProjectID, p.Shared) {
				spec.SubnetPoolID = p.ID
				return nil
			}
		}
		return badRequest("Bad subnets request: No default subnetpool found for IPv%d.", version)
	}
	return nil
}
