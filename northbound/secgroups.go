package northbound

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/labstack/echo/v4"
)

// Security groups and their rules (Neutron's security-group and stateful-security-group
// extensions). A project gets its default group on first use: listing groups, creating
// one, or creating a port that names none.

func ruleShape(r *topology.SecurityGroupRule) map[string]any {
	var pmin, pmax, normalized any
	if r.PortRangeMin != nil {
		pmin = *r.PortRangeMin
	}
	if r.PortRangeMax != nil {
		pmax = *r.PortRangeMax
	}
	if r.RemoteIPPrefix != "" {
		normalized = r.RemoteIPPrefix
	}
	return map[string]any{
		"id": r.ID, "tenant_id": r.ProjectID, "project_id": r.ProjectID,
		"security_group_id": r.SecurityGroupID, "direction": r.Direction, "ethertype": r.EtherType,
		"protocol": nullIfEmpty(r.Protocol), "port_range_min": pmin, "port_range_max": pmax,
		"remote_ip_prefix": nullIfEmpty(r.RemoteIPPrefix), "normalized_cidr": normalized,
		"remote_group_id": nullIfEmpty(r.RemoteGroupID), "remote_address_group_id": nil,
		"description": r.Description,
		"created_at":  ts(r.CreatedAt), "updated_at": ts(r.UpdatedAt), "revision_number": r.RevisionNumber,
	}
}

func groupShape(g *db.GroupWithRules) map[string]any {
	rules := make([]map[string]any, 0, len(g.Rules))
	for i := range g.Rules {
		rules = append(rules, ruleShape(&g.Rules[i]))
	}
	return map[string]any{
		"id": g.Group.ID, "name": g.Group.Name, "description": g.Group.Description,
		"tenant_id": g.Group.ProjectID, "project_id": g.Group.ProjectID,
		"stateful": g.Group.Stateful, "shared": false, "security_group_rules": rules, "tags": orEmpty(g.Group.Tags),
		"created_at": ts(g.Group.CreatedAt), "updated_at": ts(g.Group.UpdatedAt), "revision_number": g.Group.RevisionNumber,
	}
}

// ownedGroup returns a group of the caller's project (SecurityGroupNotFound otherwise).
func (s *Server) ownedGroup(c echo.Context, id string) (*db.GroupWithRules, error) {
	g, err := s.store.GetSecurityGroup(c.Request().Context(), id)
	if err != nil {
		return nil, err
	}
	if !callerOf(c).owns(g.Group.ProjectID) {
		return nil, notFound("SecurityGroupNotFound", "Security group %s does not exist", id)
	}
	return g, nil
}

// ensureDefaultGroup creates the caller's project's default group on its first use.
func (s *Server) ensureDefaultGroup(c echo.Context) error {
	cl := callerOf(c)
	if cl.project == "" {
		return nil
	}
	_, err := s.store.EnsureDefaultSecurityGroup(c.Request().Context(), cl.project)
	return err
}

func (s *Server) listSecurityGroups(c echo.Context) error {
	if err := s.ensureDefaultGroup(c); err != nil {
		return err
	}
	gs, err := s.store.ListSecurityGroups(c.Request().Context())
	if err != nil {
		return err
	}
	cl := callerOf(c)
	items := make([]map[string]any, 0, len(gs))
	for i := range gs {
		if cl.owns(gs[i].Group.ProjectID) {
			items = append(items, groupShape(&gs[i]))
		}
	}
	return respondList(c, "security_groups", items)
}

func (s *Server) showSecurityGroup(c echo.Context) error {
	g, err := s.ownedGroup(c, c.Param("id"))
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "security_group", groupShape(g))
}

func groupSpec(b *body) (db.SecurityGroupSpec, error) {
	var spec db.SecurityGroupSpec
	var err error
	if spec.Name, err = b.str("name"); err != nil {
		return spec, err
	}
	if spec.Description, err = b.str("description"); err != nil {
		return spec, err
	}
	if spec.Stateful, err = b.boolean("stateful"); err != nil {
		return spec, err
	}
	return spec, nil
}

var groupReadOnly = with(standardReadOnly, "security_group_rules", "shared")

// createSecurityGroup creates one group, or a list of them in one write (bulk).
func (s *Server) createSecurityGroup(c echo.Context) error {
	cl := callerOf(c)
	return create(c, creation[db.SecurityGroupSpec, db.GroupWithRules]{
		kind: "security_group", plural: "security_groups",
		allowed:  []string{"name", "description", "stateful", "tenant_id", "project_id"},
		readOnly: groupReadOnly,
		spec: func(b *body) (db.SecurityGroupSpec, error) {
			spec, err := groupSpec(b)
			if err != nil {
				return spec, err
			}
			spec.ProjectID, err = b.project(cl)
			return spec, err
		},
		one:   s.store.CreateSecurityGroup,
		many:  s.store.CreateSecurityGroups,
		shape: groupShape,
	})
}

func (s *Server) updateSecurityGroup(c echo.Context) error {
	id := c.Param("id")
	b, err := readBody(c, "security_group", []string{"name", "description", "stateful"},
		with(groupReadOnly, "tenant_id", "project_id"))
	if err != nil {
		return err
	}
	spec, err := groupSpec(b)
	if err != nil {
		return err
	}
	if _, err := s.ownedGroup(c, id); err != nil {
		return err
	}
	g, err := s.store.UpdateSecurityGroup(c.Request().Context(), id, spec)
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "security_group", groupShape(g))
}

func (s *Server) deleteSecurityGroup(c echo.Context) error {
	admin := callerOf(c).admin
	return deleteOwned(c, s.ownedGroup, func(ctx context.Context, id string) error {
		return s.store.DeleteSecurityGroup(ctx, id, admin)
	})
}

// ownedRule returns a rule of a group of the caller's project (SecurityGroupRuleNotFound
// otherwise).
func (s *Server) ownedRule(c echo.Context, id string) (*topology.SecurityGroupRule, error) {
	r, err := s.store.GetSecurityGroupRule(c.Request().Context(), id)
	if err != nil {
		return nil, err
	}
	if !callerOf(c).owns(r.ProjectID) {
		return nil, notFound("SecurityGroupRuleNotFound", "Security group rule %s does not exist", id)
	}
	return r, nil
}

func (s *Server) listSecurityGroupRules(c echo.Context) error {
	rs, err := s.store.ListSecurityGroupRules(c.Request().Context())
	if err != nil {
		return err
	}
	cl := callerOf(c)
	items := make([]map[string]any, 0, len(rs))
	for i := range rs {
		if cl.owns(rs[i].ProjectID) {
			items = append(items, ruleShape(&rs[i]))
		}
	}
	return respondList(c, "security_group_rules", items)
}

func (s *Server) showSecurityGroupRule(c echo.Context) error {
	r, err := s.ownedRule(c, c.Param("id"))
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "security_group_rule", ruleShape(r))
}

func (s *Server) createSecurityGroupRule(c echo.Context) error {
	b, err := readBody(c, "security_group_rule", []string{"security_group_id", "direction", "ethertype", "protocol",
		"port_range_min", "port_range_max", "remote_ip_prefix", "remote_group_id", "description", "tenant_id", "project_id"},
		with(standardReadOnly, "normalized_cidr", "remote_address_group_id", "belongs_to_default_sg"))
	if err != nil {
		return err
	}
	var spec db.RuleSpec
	sg, err := b.str("security_group_id")
	if err != nil {
		return err
	}
	if sg == nil {
		return badBody("Invalid input for security_group_id. Reason: security_group_id is required.")
	}
	if _, err := b.project(callerOf(c)); err != nil {
		return err
	}
	g, err := s.ownedGroup(c, *sg)
	if err != nil {
		return err
	}
	spec.SecurityGroupID, spec.ProjectID = g.Group.ID, g.Group.ProjectID
	for _, f := range []struct {
		name string
		dst  **string
	}{
		{"direction", &spec.Direction}, {"ethertype", &spec.EtherType}, {"description", &spec.Description},
	} {
		if *f.dst, err = b.str(f.name); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		dst  **string
	}{
		{"remote_ip_prefix", &spec.RemoteIPPrefix}, {"remote_group_id", &spec.RemoteGroupID},
	} {
		if *f.dst, err = b.nullableStr(f.name); err != nil {
			return err
		}
	}
	if spec.Protocol, err = protocolField(b); err != nil {
		return err
	}
	if spec.PortRangeMin, err = b.integer("port_range_min", true); err != nil {
		return err
	}
	if spec.PortRangeMax, err = b.integer("port_range_max", true); err != nil {
		return err
	}
	if spec.RemoteGroupID != nil && *spec.RemoteGroupID != "" {
		if _, err := s.ownedGroup(c, *spec.RemoteGroupID); err != nil {
			return err
		}
	}
	r, err := s.store.CreateSecurityGroupRule(c.Request().Context(), spec)
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusCreated, "security_group_rule", ruleShape(r))
}

// protocolField reads a rule's protocol: a name, a number (as a JSON number or string)
// or null.
func protocolField(b *body) (*string, error) {
	r, ok := b.fields["protocol"]
	if !ok {
		return nil, nil
	}
	var n json.Number
	if json.Unmarshal(r, &n) == nil && !strings.HasPrefix(strings.TrimSpace(string(r)), `"`) {
		v := n.String()
		return &v, nil
	}
	return b.nullableStr("protocol")
}

func (s *Server) deleteSecurityGroupRule(c echo.Context) error {
	return deleteOwned(c, s.ownedRule, s.store.DeleteSecurityGroupRule)
}
