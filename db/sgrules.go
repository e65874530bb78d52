package db

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/dvrflow/dvrflow/topology"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// RuleSpec holds the fields of a security group rule create; nil means "not given".
type RuleSpec struct {
	ProjectID       string
	SecurityGroupID string
	Direction       *string
	EtherType       *string
	Protocol        *string // nil, "" or "any": any protocol
	PortRangeMin    *int64
	PortRangeMax    *int64
	RemoteIPPrefix  *string
	RemoteGroupID   *string
	Description     *string
}

// Protocol numbers whose rules take a port range, the ICMP ones (type and code), and the
// IPv6-only ones an IPv4 rule refuses (Neutron's _validate_ethertype_and_protocol:
// ipv6-encap, ipv6-route, ipv6-frag, ipv6-icmp, ipv6-nonxt, ipv6-opts, by name or number).
var (
	portProtocols = map[int]bool{6: true, 17: true, 132: true, 33: true, 136: true}
	icmpProtocols = map[int]bool{1: true, 58: true}
	ipv6Protocols = map[int]bool{41: true, 43: true, 44: true, 58: true, 59: true, 60: true}
)

// normalizeRule checks a rule create as Neutron does and returns the rule it stores.
func normalizeRule(spec RuleSpec) (topology.SecurityGroupRule, error) {
	r := topology.SecurityGroupRule{ProjectID: spec.ProjectID, SecurityGroupID: spec.SecurityGroupID,
		Direction: "", EtherType: topology.EtherTypeIPv4}
	if spec.Direction == nil {
		return r, invalid("direction is required")
	}
	r.Direction = *spec.Direction
	if r.Direction != topology.DirectionIngress && r.Direction != topology.DirectionEgress {
		return r, badRequest("Invalid input for direction. Reason: '%s' is not in ['ingress', 'egress'].", r.Direction)
	}
	if spec.EtherType != nil {
		switch strings.ToLower(*spec.EtherType) {
		case "ipv4":
			r.EtherType = topology.EtherTypeIPv4
		case "ipv6":
			r.EtherType = topology.EtherTypeIPv6
		default:
			return r, badRequest("Invalid input for ethertype. Reason: '%s' is not in ['IPv4', 'IPv6'].", *spec.EtherType)
		}
	}
	num := -1
	if spec.Protocol != nil {
		p := strings.ToLower(*spec.Protocol)
		if n, ok := topology.IPProtocols[p]; ok {
			r.Protocol, num = p, n
		} else if n, err := strconv.Atoi(p); err == nil && n >= 0 && n <= 255 && strconv.Itoa(n) == p {
			r.Protocol, num = p, n
		} else if p != "" && p != "any" {
			names := slices.Sorted(func(yield func(string) bool) {
				for k := range topology.IPProtocols {
					if !yield(k) {
						return
					}
				}
			})
			return r, newError(ClassInvalid, "SecurityGroupRuleInvalidProtocol",
				"Security group rule protocol %s not supported. Only protocol values [None, %s] and integer representations [0 to 255] are supported.",
				*spec.Protocol, strings.Join(names, ", "))
		}
	}
	if ipv6Protocols[num] && r.EtherType == topology.EtherTypeIPv4 {
		return r, newError(ClassInvalid, "SecurityGroupEthertypeConflictWithProtocol",
			"Invalid ethertype %s for protocol %s.", r.EtherType, r.Protocol)
	}
	if err := normalizePorts(&r, num, spec.PortRangeMin, spec.PortRangeMax); err != nil {
		return r, err
	}
	if spec.RemoteIPPrefix != nil && *spec.RemoteIPPrefix != "" && spec.RemoteGroupID != nil && *spec.RemoteGroupID != "" {
		return r, newError(ClassInvalid, "SecurityGroupRemoteGroupAndRemoteIpPrefix",
			"Only remote_ip_prefix or remote_group_id may be provided.")
	}
	if spec.RemoteIPPrefix != nil && *spec.RemoteIPPrefix != "" {
		pfx, err := parsePrefixOrAddr(*spec.RemoteIPPrefix)
		if err != nil {
			return r, badRequest("Invalid input for remote_ip_prefix. Reason: '%s' is not a valid IP subnet.", *spec.RemoteIPPrefix)
		}
		if pfx.Addr().Is4() != (r.EtherType == topology.EtherTypeIPv4) {
			return r, newError(ClassInvalid, "SecurityGroupRuleParameterConflict",
				"Conflicting value ethertype %s for CIDR %s", r.EtherType, *spec.RemoteIPPrefix)
		}
		r.RemoteIPPrefix = pfx.Masked().String()
	}
	if spec.RemoteGroupID != nil {
		r.RemoteGroupID = *spec.RemoteGroupID
	}
	if spec.Description != nil {
		r.Description = *spec.Description
	}
	return r, nil
}

// parsePrefixOrAddr parses a CIDR, or an address as its host prefix.
func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// normalizePorts checks a rule's port range (or ICMP type and code) for protocol num.
func normalizePorts(r *topology.SecurityGroupRule, num int, lo, hi *int64) error {
	if lo == nil && hi == nil {
		return nil
	}
	switch {
	case num < 0:
		return newError(ClassInvalid, "SecurityGroupProtocolRequiredWithPorts", "Must also specify protocol if port range is given.")
	case portProtocols[num]:
		for _, v := range []*int64{lo, hi} {
			if v != nil && (*v < 1 || *v > 65535) {
				return newError(ClassInvalid, "SecurityGroupInvalidPortValue", "Invalid value for port %d.", *v)
			}
		}
		if lo == nil {
			return newError(ClassInvalid, "SecurityGroupInvalidPortRange", "For TCP/UDP protocols, port_range_min must be <= port_range_max")
		}
		if hi == nil {
			hi = lo
		}
		if *lo > *hi {
			return newError(ClassInvalid, "SecurityGroupInvalidPortRange", "For TCP/UDP protocols, port_range_min must be <= port_range_max")
		}
	case icmpProtocols[num]:
		for _, f := range []struct {
			v          *int64
			field, key string
		}{{lo, "type", "port_range_min"}, {hi, "code", "port_range_max"}} {
			if f.v != nil && (*f.v < 0 || *f.v > 255) {
				return newError(ClassInvalid, "SecurityGroupInvalidIcmpValue",
					"Invalid value for ICMP %s (%s) %d. It must be 0 to 255.", f.field, f.key, *f.v)
			}
		}
		if lo == nil {
			return newError(ClassInvalid, "SecurityGroupMissingIcmpType",
				"ICMP code (port-range-max) %d is provided but ICMP type (port-range-min) is missing.", *hi)
		}
	default:
		return newError(ClassInvalid, "SecurityGroupInvalidProtocolForPortRange",
			"Invalid protocol %s for port range, only supported for TCP, UDP, UDPLITE, SCTP and DCCP.", r.Protocol)
	}
	r.PortRangeMin = intPtr(lo)
	r.PortRangeMax = intPtr(hi)
	return nil
}

func intPtr(v *int64) *int {
	if v == nil {
		return nil
	}
	n := int(*v)
	return &n
}

// ruleKey is what makes two rules of a group the same: protocols by number (ICMP as
// ICMPv6 in an IPv6 rule), the whole address space as no prefix; the description does
// not count.
func ruleKey(r *topology.SecurityGroupRule) string {
	num := topology.ProtocolNumber(r.Protocol)
	if num == 1 && r.EtherType == topology.EtherTypeIPv6 {
		num = 58
	}
	port := func(p *int) string {
		if p == nil {
			return "*"
		}
		return strconv.Itoa(*p)
	}
	prefix := r.RemoteIPPrefix
	if strings.HasSuffix(prefix, "/0") {
		prefix = ""
	}
	return strings.Join([]string{r.Direction, r.EtherType, strconv.Itoa(num), port(r.PortRangeMin), port(r.PortRangeMax),
		prefix, r.RemoteGroupID}, "|")
}

// insertRule queues a rule's insert and records it; the unique rule_key refuses a
// duplicate when the write commits.
func (w *wtx) insertRule(r topology.SecurityGroupRule) topology.SecurityGroupRule {
	r.ID = newID()
	r.CreatedAt, r.UpdatedAt = w.now, w.now
	var remote any
	if r.RemoteGroupID != "" {
		remote = r.RemoteGroupID
	}
	w.exec(`INSERT INTO security_group_rules (id, security_group_id, remote_group_id, rule_key, obj) VALUES ($1, $2, $3, $4, $5)`,
		r.ID, r.SecurityGroupID, remote, ruleKey(&r), mustJSON(r))
	w.record(topology.KindSecurityGroupRule, r.ID, topology.OpCreate, r)
	return r
}

// CreateSecurityGroupRule adds a rule to a group, which gets a new revision. A rule the
// group already has is refused with SecurityGroupRuleExists, naming it.
func (s *Store) CreateSecurityGroupRule(ctx context.Context, spec RuleSpec) (*topology.SecurityGroupRule, error) {
	r, err := normalizeRule(spec)
	if err != nil {
		return nil, err
	}
	_, err = s.write(ctx, func(ctx context.Context, w *wtx) error {
		if err := w.checkQuotaOne(ctx, QuotaSecurityGroupRule, r.ProjectID, 1); err != nil {
			return err
		}
		g, err := w.securityGroup(ctx, r.SecurityGroupID)
		if err != nil {
			return err
		}
		if r.RemoteGroupID != "" {
			if _, err := w.securityGroup(ctx, r.RemoteGroupID); err != nil {
				return err
			}
		}
		var dup string
		err = w.queryRow(ctx, `SELECT id FROM security_group_rules WHERE security_group_id = $1 AND rule_key = $2`,
			r.SecurityGroupID, ruleKey(&r)).Scan(&dup)
		if err == nil {
			return conflict("SecurityGroupRuleExists", "Security group rule already exists. Rule id is %s.", dup)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("look for a duplicate rule: %w", err)
		}
		r = w.insertRule(r)
		w.saveGroup(g)
		return nil
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		// Defensive: writes are serialized, so the check above sees every committed rule.
		return nil, conflict("SecurityGroupRuleExists", "Security group rule already exists.")
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// GetSecurityGroupRule returns one rule.
func (s *Store) GetSecurityGroupRule(ctx context.Context, id string) (*topology.SecurityGroupRule, error) {
	rs, err := objs[topology.SecurityGroupRule](ctx, s.pool.Query, `SELECT obj FROM security_group_rules WHERE id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("get security group rule %s: %w", id, err)
	}
	if len(rs) == 0 {
		return nil, notFound("SecurityGroupRuleNotFound", "Security group rule %s does not exist", id)
	}
	return &rs[0], nil
}

// ListSecurityGroupRules returns every rule.
func (s *Store) ListSecurityGroupRules(ctx context.Context) ([]topology.SecurityGroupRule, error) {
	rs, err := objs[topology.SecurityGroupRule](ctx, s.pool.Query, `SELECT obj FROM security_group_rules ORDER BY obj->>'created_at', id`)
	if err != nil {
		return nil, fmt.Errorf("list security group rules: %w", err)
	}
	return rs, nil
}

// DeleteSecurityGroupRule deletes a rule; its group gets a new revision.
func (s *Store) DeleteSecurityGroupRule(ctx context.Context, id string) error {
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		var r topology.SecurityGroupRule
		err := w.getObj(ctx, "security_group_rules", id, &r)
		if errors.Is(err, pgx.ErrNoRows) {
			return notFound("SecurityGroupRuleNotFound", "Security group rule %s does not exist", id)
		}
		if err != nil {
			return fmt.Errorf("load security group rule %s: %w", id, err)
		}
		if err := w.constrain(topology.KindSecurityGroupRule, id, r.RevisionNumber); err != nil {
			return err
		}
		g, err := w.securityGroup(ctx, r.SecurityGroupID)
		if err != nil {
			return err
		}
		w.exec(`DELETE FROM security_group_rules WHERE id = $1`, id)
		w.record(topology.KindSecurityGroupRule, id, topology.OpDelete, r)
		w.saveGroup(g)
		return nil
	})
	return err
}
