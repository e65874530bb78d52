package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
)

// SecurityGroupSpec holds the fields of a security group create or update; nil means
// "not given".
type SecurityGroupSpec struct {
	ProjectID   string // create only
	Name        *string
	Description *string
	Stateful    *bool
}

// GroupWithRules is a security group with its rules, as the API shows it.
type GroupWithRules struct {
	Group topology.SecurityGroup
	Rules []topology.SecurityGroupRule // by creation, then ID
}

// groupEtherTypes are the ether types a new group gets rules for (Neutron's
// sg_supported_ethertypes).
var groupEtherTypes = []string{topology.EtherTypeIPv4, topology.EtherTypeIPv6}

// DefaultGroupName is the name of every project's default group.
const DefaultGroupName = "default"

// EnsureDefaultSecurityGroup returns the ID of project's default group, creating it
// (with Neutron's four rules) on the project's first use, as Neutron does.
func (s *Store) EnsureDefaultSecurityGroup(ctx context.Context, project string) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT security_group_id FROM default_security_groups WHERE project_id = $1`, project).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("default security group of %s: %w", project, err)
	}
	_, err = s.write(ctx, func(ctx context.Context, w *wtx) error {
		var err error
		id, err = w.defaultSecurityGroup(ctx, project)
		return err
	})
	return id, err
}

// defaultSecurityGroup is EnsureDefaultSecurityGroup within a write.
func (w *wtx) defaultSecurityGroup(ctx context.Context, project string) (string, error) {
	if id, ok := w.defaultGroups[project]; ok {
		return id, nil
	}
	var id string
	err := w.queryRow(ctx, `SELECT security_group_id FROM default_security_groups WHERE project_id = $1`, project).Scan(&id)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// Neutron counts the default group against no quota but reserves its rules
		// (two an ether type): a project out of rules cannot get it.
		if err := w.checkQuotaOne(ctx, QuotaSecurityGroupRule, project, 2*len(groupEtherTypes)); err != nil {
			return "", err
		}
		g, err := w.insertGroup(ctx, project, DefaultGroupName, "Default security group", true)
		if err != nil {
			return "", err
		}
		w.exec(`INSERT INTO default_security_groups (project_id, security_group_id) VALUES ($1, $2)`, project, g.ID)
		for _, et := range groupEtherTypes {
			w.insertRule(topology.SecurityGroupRule{ProjectID: project, SecurityGroupID: g.ID,
				Direction: topology.DirectionEgress, EtherType: et})
			w.insertRule(topology.SecurityGroupRule{ProjectID: project, SecurityGroupID: g.ID,
				Direction: topology.DirectionIngress, EtherType: et, RemoteGroupID: g.ID})
		}
		id = g.ID
	case err != nil:
		return "", fmt.Errorf("default security group of %s: %w", project, err)
	}
	if w.defaultGroups == nil {
		w.defaultGroups = map[string]string{}
	}
	w.defaultGroups[project] = id
	return id, nil
}

// insertGroup takes the new group's tag, queues its insert and records it.
func (w *wtx) insertGroup(ctx context.Context, project, name, description string, stateful bool) (topology.SecurityGroup, error) {
	tags, err := w.groupTags(ctx, 1)
	if err != nil {
		return topology.SecurityGroup{}, err
	}
	return w.putGroup(tags[0], project, name, description, stateful), nil
}

// groupTags takes n new groups' tags in one query.
func (w *wtx) groupTags(ctx context.Context, n int) ([]uint32, error) {
	rows, err := w.query(ctx, `SELECT nextval('security_group_tags') FROM generate_series(1, $1)`, n)
	if err != nil {
		return nil, fmt.Errorf("security group tags: %w", err)
	}
	tags, err := pgx.CollectRows(rows, pgx.RowTo[uint32])
	if err != nil {
		return nil, fmt.Errorf("security group tags: %w", err)
	}
	return tags, nil
}

// putGroup queues a new group's insert, with its tag, and records it.
func (w *wtx) putGroup(tag uint32, project, name, description string, stateful bool) topology.SecurityGroup {
	g := topology.SecurityGroup{ID: newID(), ProjectID: project, Name: name, Description: description,
		Stateful: stateful, Tag: tag, CreatedAt: w.now, UpdatedAt: w.now}
	w.exec(`INSERT INTO security_groups (id, project_id, obj) VALUES ($1, $2, $3)`, g.ID, g.ProjectID, mustJSON(g))
	w.record(topology.KindSecurityGroup, g.ID, topology.OpCreate, g)
	return g
}

// CreateSecurityGroup creates a group with Neutron's two egress rules (any IPv4, any
// IPv6). The project's default group is created first if it has none; no other group
// may be named "default".
func (s *Store) CreateSecurityGroup(ctx context.Context, spec SecurityGroupSpec) (*GroupWithRules, error) {
	return createOne(ctx, spec, s.CreateSecurityGroups)
}

// CreateSecurityGroups creates groups in one write, each as CreateSecurityGroup does.
func (s *Store) CreateSecurityGroups(ctx context.Context, specs []SecurityGroupSpec) ([]GroupWithRules, error) {
	if err := checkBulk("security_groups", len(specs)); err != nil {
		return nil, err
	}
	for i, spec := range specs {
		if spec.Name != nil && *spec.Name == DefaultGroupName {
			return nil, itemError(i, conflict("SecurityGroupDefaultAlreadyExists", "Default security group already exists."))
		}
	}
	out := make([]GroupWithRules, len(specs))
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		groups := map[string]int{}
		for _, spec := range specs {
			groups[spec.ProjectID]++
		}
		if err := w.checkQuota(ctx, QuotaSecurityGroup, groups); err != nil {
			return err
		}
		for i, spec := range specs {
			if _, err := w.defaultSecurityGroup(ctx, spec.ProjectID); err != nil {
				return itemError(i, err)
			}
		}
		rules := map[string]int{}
		for p, n := range groups {
			rules[p] = n * len(groupEtherTypes)
		}
		if err := w.checkQuota(ctx, QuotaSecurityGroupRule, rules); err != nil {
			return err
		}
		tags, err := w.groupTags(ctx, len(specs))
		if err != nil {
			return err
		}
		for i, spec := range specs {
			name, desc, stateful := "", "", true
			if spec.Name != nil {
				name = *spec.Name
			}
			if spec.Description != nil {
				desc = *spec.Description
			}
			if spec.Stateful != nil {
				stateful = *spec.Stateful
			}
			g := &out[i]
			g.Group = w.putGroup(tags[i], spec.ProjectID, name, desc, stateful)
			g.Rules = nil
			for _, et := range groupEtherTypes {
				g.Rules = append(g.Rules, w.insertRule(topology.SecurityGroupRule{ProjectID: spec.ProjectID,
					SecurityGroupID: g.Group.ID, Direction: topology.DirectionEgress, EtherType: et}))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// securityGroup loads one group within a write.
func (w *wtx) securityGroup(ctx context.Context, id string) (*topology.SecurityGroup, error) {
	var g topology.SecurityGroup
	err := w.getObj(ctx, "security_groups", id, &g)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound("SecurityGroupNotFound", "Security group %s does not exist", id)
	}
	if err != nil {
		return nil, fmt.Errorf("load security group %s: %w", id, err)
	}
	return &g, w.constrain(topology.KindSecurityGroup, id, g.RevisionNumber)
}

// isDefaultGroup reports whether id is its project's default group.
func (w *wtx) isDefaultGroup(ctx context.Context, id string) (bool, error) {
	var is bool
	if err := w.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM default_security_groups WHERE security_group_id = $1)`, id).Scan(&is); err != nil {
		return false, fmt.Errorf("is %s a default security group: %w", id, err)
	}
	return is, nil
}

// groupInUse reports whether a port uses group id.
func (w *wtx) groupInUse(ctx context.Context, id string) (bool, error) {
	var used bool
	if err := w.queryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ports WHERE obj -> 'security_groups' ? $1)`, id).Scan(&used); err != nil {
		return false, fmt.Errorf("is security group %s in use: %w", id, err)
	}
	return used, nil
}

// UpdateSecurityGroup changes a group's name, description or stateful. The default group
// keeps its name; stateful cannot change while ports use the group.
func (s *Store) UpdateSecurityGroup(ctx context.Context, id string, spec SecurityGroupSpec) (*GroupWithRules, error) {
	var g *topology.SecurityGroup
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var err error
		if g, err = w.securityGroup(ctx, id); err != nil {
			return err
		}
		if spec.Name != nil && *spec.Name != g.Name {
			def, err := w.isDefaultGroup(ctx, id)
			if err != nil {
				return err
			}
			if def {
				return conflict("SecurityGroupCannotUpdateDefault", "Updating default security group not allowed.")
			}
			if *spec.Name == DefaultGroupName {
				return conflict("SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
			}
			g.Name = *spec.Name
		}
		if spec.Description != nil {
			g.Description = *spec.Description
		}
		if spec.Stateful != nil && *spec.Stateful != g.Stateful {
			used, err := w.groupInUse(ctx, id)
			if err != nil {
				return err
			}
			if used {
				return conflict("SecurityGroupInUse", "Security Group %s in use: stateful cannot be changed while ports use it.", id)
			}
			g.Stateful = *spec.Stateful
		}
		w.saveGroup(g)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s.GetSecurityGroup(ctx, g.ID)
}

// saveGroup stores a changed group with a new revision: its own update, or a change of
// its rules (Neutron's rules revise their group).
func (w *wtx) saveGroup(g *topology.SecurityGroup) {
	g.UpdatedAt = w.now
	g.RevisionNumber++
	w.exec(`UPDATE security_groups SET obj = $2 WHERE id = $1`, g.ID, mustJSON(g))
	w.record(topology.KindSecurityGroup, g.ID, topology.OpUpdate, *g)
}

// DeleteSecurityGroup deletes a group with its rules and the rules of other groups that
// name it as their remote group (Neutron's cascade; those groups get a new revision). A group ports use is refused
// (SecurityGroupInUse), and so is a project's default group unless allowDefault (an
// admin's request).
func (s *Store) DeleteSecurityGroup(ctx context.Context, id string, allowDefault bool) error {
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		g, err := w.securityGroup(ctx, id)
		if err != nil {
			return err
		}
		def, err := w.isDefaultGroup(ctx, id)
		if err != nil {
			return err
		}
		if def && !allowDefault {
			return conflict("SecurityGroupCannotRemoveDefault", "Insufficient rights for removing default security group.")
		}
		used, err := w.groupInUse(ctx, id)
		if err != nil {
			return err
		}
		if used {
			return conflict("SecurityGroupInUse", "Security Group %s in use.", id)
		}
		rules, err := objs[topology.SecurityGroupRule](ctx, w.query,
			`SELECT obj FROM security_group_rules WHERE security_group_id = $1 OR remote_group_id = $1 ORDER BY id`, id)
		if err != nil {
			return fmt.Errorf("rules of security group %s: %w", id, err)
		}
		revised := map[string]bool{}
		for _, r := range rules {
			w.record(topology.KindSecurityGroupRule, r.ID, topology.OpDelete, r)
			if r.SecurityGroupID != id && !revised[r.SecurityGroupID] {
				// Another group loses a rule: it gets a new revision.
				revised[r.SecurityGroupID] = true
				other, err := w.securityGroup(ctx, r.SecurityGroupID)
				if err != nil {
					return err
				}
				w.saveGroup(other)
			}
		}
		w.exec(`DELETE FROM security_group_rules WHERE security_group_id = $1 OR remote_group_id = $1`, id)
		w.exec(`DELETE FROM security_groups WHERE id = $1`, id)
		w.record(topology.KindSecurityGroup, id, topology.OpDelete, *g)
		return nil
	})
	return err
}

// groupsWithRules loads groups (all, or those of where) with their rules in one query.
func groupsWithRules(ctx context.Context, q func(context.Context, string, ...any) (pgx.Rows, error), where string, args ...any) ([]GroupWithRules, error) {
	rows, err := q(ctx, `
SELECT g.obj, coalesce((SELECT json_agg(r.obj ORDER BY r.obj->>'created_at', r.id) FROM security_group_rules r
                        WHERE r.security_group_id = g.id), '[]')
FROM security_groups g `+where+` ORDER BY g.obj->>'created_at', g.id`, args...)
	if err != nil {
		return nil, err
	}
	var out []GroupWithRules
	var graw, rraw []byte
	_, err = pgx.ForEachRow(rows, []any{&graw, &rraw}, func() error {
		var gr GroupWithRules
		if err := json.Unmarshal(graw, &gr.Group); err != nil {
			return fmt.Errorf("decode security group: %w", err)
		}
		if err := json.Unmarshal(rraw, &gr.Rules); err != nil {
			return fmt.Errorf("decode security group rules: %w", err)
		}
		out = append(out, gr)
		return nil
	})
	return out, err
}

// GetSecurityGroup returns one group with its rules.
func (s *Store) GetSecurityGroup(ctx context.Context, id string) (*GroupWithRules, error) {
	gs, err := groupsWithRules(ctx, s.pool.Query, `WHERE g.id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("get security group %s: %w", id, err)
	}
	if len(gs) == 0 {
		return nil, notFound("SecurityGroupNotFound", "Security group %s does not exist", id)
	}
	return &gs[0], nil
}

// ListSecurityGroups returns every group with its rules.
func (s *Store) ListSecurityGroups(ctx context.Context) ([]GroupWithRules, error) {
	gs, err := groupsWithRules(ctx, s.pool.Query, ``)
	if err != nil {
		return nil, fmt.Errorf("list security groups: %w", err)
	}
	return gs, nil
}
