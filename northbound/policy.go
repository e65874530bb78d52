package northbound

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/dvrflow/dvrflow/topology"
	"github.com/labstack/echo/v4"
)

// refuseReader answers a write of a read-only caller as Neutron's policy hook
// (neutron/pecan_wsgi/hooks/policy_enforcement.py) does when the policy refuses it: the
// write of a resource the caller cannot see is answered as if the resource did not exist
// (the resource's NotFound, 404), so that a refusal tells nothing about other projects;
// any other write, a create or one on a resource it sees, is 403 PolicyNotAuthorized.
func (s *Server) refuseReader(c echo.Context) error {
	if id := c.Param("id"); id != "" {
		if err := s.seeTarget(c, id); err != nil {
			if isTagRoute(c) {
				return tagResourceNotFound(c, err)
			}
			return err
		}
	}
	return forbidden("rule:%s is disallowed by policy", policyAction(c))
}

// seeTarget returns the NotFound of the resource id of the request's collection when the
// caller cannot see it (or it does not exist), nil when it can: the resources with
// standard attributes as their tags' visibility says (tagParents), rules and agents here.
func (s *Server) seeTarget(c echo.Context, id string) error {
	coll := collection(c)
	if i := slices.IndexFunc(tagParents, func(p tagParent) bool { return p.collection == coll }); i >= 0 {
		_, _, err := tagParents[i].visible(s, c, id)
		return err
	}
	var err error
	switch coll {
	case "security-group-rules":
		_, err = s.ownedRule(c, id)
	case "agents":
		_, err = s.agent(c, id) // admin only: a reader sees none
	}
	return err
}

// adminAttr is an attribute Neutron's default policies let only an admin set
// (neutron/conf/policies: create_network:shared, update_port:binding:host_id, ...).
type adminAttr struct {
	name string
	// isDefault reports whether a create's value is the attribute's default, which
	// Neutron's policy does not count as setting it (nil: every value counts). An update
	// counts every value.
	isDefault func(b *body, name string) (bool, error)
}

// adminReadAttrs are the attributes of each resource kind that Neutron's default
// policies show to admin only (get_<kind>:<attribute> is rule:admin_only): a project's
// caller gets the resource without them, in shows, lists and the answers to its writes.
var adminReadAttrs = map[string][]string{
	"network": {"provider:network_type", "provider:physical_network", "provider:segmentation_id", "segments"},
	"port":    {"binding:host_id", "binding:profile", "binding:vif_type", "binding:vif_details"},
	"router":  {"distributed"},
}

// unreadable returns the attributes of kind the caller may not read: adminReadAttrs',
// none for an admin.
func unreadable(c echo.Context, kind string) []string {
	if callerOf(c).admin {
		return nil
	}
	return adminReadAttrs[kind]
}

// adminAttrs lists the admin-only attributes of each resource kind that a create (or,
// with update set, an update) may give.
func adminAttrs(kind string, update bool) []adminAttr {
	provider := []adminAttr{{name: "provider:network_type"}, {name: "provider:physical_network"},
		{name: "provider:segmentation_id"}, {name: "segments"}}
	switch kind {
	case "network":
		return append(provider, adminAttr{"shared", isFalse}, adminAttr{"router:external", isFalse})
	case "port":
		if update { // update_port:mac_address is admin's; on create the network owner's
			return []adminAttr{{"binding:host_id", isEmpty}, {name: "binding:profile"}, {name: "mac_address"}}
		}
		return []adminAttr{{"binding:host_id", isEmpty}, {name: "binding:profile"}}
	case "router":
		return []adminAttr{{name: "distributed"}}
	case "subnetpool":
		if update { // shared is read-only once created: 400 for everyone
			return []adminAttr{{name: "is_default"}}
		}
		return []adminAttr{{"shared", isFalse}, {"is_default", isFalse}}
	case "floatingip":
		if !update { // read-only once created: 400 for everyone
			return []adminAttr{{name: "floating_ip_address"}}
		}
	}
	return nil
}

// netOwnerAttr is a port attribute Neutron's default policies let only an admin or the
// owner of the port's network set (rule:network_owner, tenant_id:%(network:tenant_id)s),
// so that a project's member may not set it on a port of another project's network it
// uses, a shared one.
type netOwnerAttr struct {
	name string
	// sub names the key of the attribute's list items the rule is about (the rule
	// create_port:fixed_ips:ip_address counts a fixed_ips item with an ip_address); ""
	// is the attribute itself.
	sub string
	// shared also lets the users of a shared network set it (or rule:shared).
	shared bool
	// counts reports whether the request's value is one the rule is about (nil: every
	// value, as the attributes of the table have no default Neutron's policy skips).
	counts func(b *body, name string) (bool, error)
}

// netOwnerAttrs are the port attributes of Neutron's default policies
// (neutron/conf/policies/port.py) that are the network owner's and admin's, by policy
// verb. A sub-attribute rule whose answer is its attribute's (update_port:fixed_ips:
// ip_address, create_port:allowed_address_pairs:mac_address, ...) is not repeated.
// update_port:mac_address is admin's alone, not the network owner's.
var netOwnerAttrs = map[string][]netOwnerAttr{
	"create": {
		{name: "device_owner", counts: isNetworkDevice}, // not rule:network_device or ...
		{name: "mac_address"},
		{name: "fixed_ips", shared: true},
		{name: "fixed_ips", sub: "ip_address"},
		{name: "port_security_enabled"},
		{name: "allowed_address_pairs"},
	},
	"update": {
		{name: "device_owner", counts: isNetworkDevice},
		{name: "fixed_ips"},
		{name: "port_security_enabled"},
		{name: "allowed_address_pairs"},
	},
}

// isNetworkDevice reports whether a device_owner is a network device's (network:...),
// Neutron's rule network_device.
func isNetworkDevice(b *body, name string) (bool, error) {
	v, err := b.str(name)
	return v != nil && strings.HasPrefix(*v, "network:"), err
}

// hasItemKey reports whether a list attribute has an object item with key.
func hasItemKey(raw json.RawMessage, key string) bool {
	var items []map[string]json.RawMessage
	if json.Unmarshal(raw, &items) != nil { // validated by the attribute's reader
		return false
	}
	for _, it := range items {
		if _, ok := it[key]; ok {
			return true
		}
	}
	return false
}

// checkNetOwnerAttrs refuses a port body that sets an attribute of netOwnerAttrs when the
// caller is neither admin nor the owner of the port's network, which network returns (it
// is asked only then): 403 PolicyNotAuthorized naming the rule, as Neutron answers.
func checkNetOwnerAttrs(c echo.Context, b *body, network func() (*topology.Network, error)) error {
	cl := callerOf(c)
	if cl.admin {
		return nil
	}
	v := verb(c)
	var n *topology.Network
	for _, a := range netOwnerAttrs[v] {
		raw, ok := b.fields[a.name]
		if !ok || (a.sub != "" && !hasItemKey(raw, a.sub)) {
			continue
		}
		if a.counts != nil {
			counts, err := a.counts(b, a.name)
			if err != nil {
				return err
			}
			if !counts {
				continue
			}
		}
		if n == nil {
			var err error
			if n, err = network(); err != nil {
				return err
			}
		}
		if cl.owns(n.ProjectID) || (a.shared && n.Shared) {
			continue
		}
		rule := a.name
		if a.sub != "" {
			rule += ":" + a.sub
		}
		return forbidden("(rule:%[1]s_port and rule:%[1]s_port:%[2]s) is disallowed by policy", v, rule)
	}
	return nil
}

func isFalse(b *body, name string) (bool, error) {
	v, err := b.boolean(name)
	return v != nil && !*v, err
}

func isEmpty(b *body, name string) (bool, error) {
	v, err := b.nullableStr(name)
	return v != nil && *v == "", err
}

// checkAdminAttrs refuses a non-admin caller's body that sets an admin-only attribute
// of kind, as Neutron does: 403 PolicyNotAuthorized naming the attribute's rule.
func checkAdminAttrs(c echo.Context, kind string, b *body) error {
	if callerOf(c).admin {
		return nil
	}
	update := c.Request().Method == http.MethodPut
	for _, a := range adminAttrs(kind, update) {
		if _, ok := b.fields[a.name]; !ok {
			continue
		}
		if !update && a.isDefault != nil {
			def, err := a.isDefault(b, a.name)
			if err != nil {
				return err
			}
			if def {
				continue
			}
		}
		return forbidden("(rule:%[1]s_%[2]s and rule:%[1]s_%[2]s:%[3]s) is disallowed by policy", verb(c), kind, a.name)
	}
	return nil
}

// verb is the policy verb of a write: create or update.
func verb(c echo.Context) string {
	if c.Request().Method == http.MethodPut {
		return "update"
	}
	return "create"
}
