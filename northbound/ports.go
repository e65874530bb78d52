package northbound

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/labstack/echo/v4"
)

// ownedPort returns a port of the caller's project (PortNotFound otherwise).
func (s *Server) ownedPort(c echo.Context, id string) (*topology.Port, error) {
	p, err := s.store.GetPort(c.Request().Context(), id)
	if err != nil {
		return nil, err
	}
	if !callerOf(c).owns(p.ProjectID) {
		return nil, notFound("PortNotFound", "Port %s could not be found.", id)
	}
	return p, nil
}

func (s *Server) listPorts(c echo.Context) error {
	ps, err := s.store.ListPorts(c.Request().Context())
	if err != nil {
		return err
	}
	hosts, err := s.store.ListHosts(c.Request().Context())
	if err != nil {
		return err
	}
	b := s.bindings(c)
	for _, h := range hosts {
		b.known[h.Name] = true
	}
	cl := callerOf(c)
	items := make([]map[string]any, 0, len(ps))
	for i := range ps {
		if cl.owns(ps[i].ProjectID) {
			items = append(items, b.shape(&ps[i]))
		}
	}
	return respondList(c, "ports", items)
}

func (s *Server) showPort(c echo.Context) error {
	p, err := s.ownedPort(c, c.Param("id"))
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "port", s.bindings(c).shape(p))
}

// bindings shapes ports, asking the store once per binding host whether it is registered.
type bindings struct {
	c     echo.Context
	store *db.Store
	known map[string]bool
}

func (s *Server) bindings(c echo.Context) *bindings {
	return &bindings{c: c, store: s.store, known: map[string]bool{}}
}

func (b *bindings) shape(p *topology.Port) map[string]any {
	if p.HostID == "" {
		return portShape(p, false)
	}
	reg, ok := b.known[p.HostID]
	if !ok {
		_, err := b.store.GetHost(b.c.Request().Context(), p.HostID)
		reg = !db.IsNotFound(err) // a store error is not a verdict on the host
		b.known[p.HostID] = reg
	}
	return portShape(p, reg)
}

type fixedIPBody struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

func fixedIPSpecs(b *body, name string) (*[]db.FixedIPSpec, error) {
	var in []fixedIPBody
	ok, err := b.decode(name, &in)
	if err != nil || !ok {
		return nil, err
	}
	return fixedIPs(name, in)
}

// fixedIPs converts fixed_ips entries, refusing a subnet_id that is not a UUID as
// Neutron's validate_fixed_ips does.
func fixedIPs(name string, in []fixedIPBody) (*[]db.FixedIPSpec, error) {
	out := make([]db.FixedIPSpec, 0, len(in))
	for _, f := range in {
		if f.SubnetID != "" && !isUUID(f.SubnetID) {
			return nil, notUUID(name, f.SubnetID)
		}
		out = append(out, db.FixedIPSpec{SubnetID: f.SubnetID, IPAddress: f.IPAddress})
	}
	return &out, nil
}

func portSpec(b *body) (db.PortSpec, error) {
	var spec db.PortSpec
	var err error
	for _, f := range []struct {
		name string
		dst  **string
	}{
		{"name", &spec.Name}, {"description", &spec.Description}, {"mac_address", &spec.MACAddress},
		{"device_owner", &spec.DeviceOwner}, {"device_id", &spec.DeviceID},
	} {
		if *f.dst, err = b.str(f.name); err != nil {
			return spec, err
		}
	}
	if spec.HostID, err = b.nullableStr("binding:host_id"); err != nil {
		return spec, err
	}
	if spec.AdminStateUp, err = b.boolean("admin_state_up"); err != nil {
		return spec, err
	}
	if spec.FixedIPs, err = fixedIPSpecs(b, "fixed_ips"); err != nil {
		return spec, err
	}
	if vt, err := b.str("binding:vnic_type"); err != nil {
		return spec, err
	} else if vt != nil && *vt != "normal" {
		return spec, badBody("Invalid input for binding:vnic_type. Reason: only 'normal' is supported.")
	}
	var profile map[string]any
	if _, err := b.decode("binding:profile", &profile); err != nil {
		return spec, err
	} else if len(profile) > 0 {
		return spec, badBody("Invalid input for binding:profile. Reason: binding profiles are not supported.")
	}
	if spec.PortSecurityEnabled, err = b.boolean("port_security_enabled"); err != nil {
		return spec, err
	}
	if r, ok := b.fields["security_groups"]; ok {
		sgs := []string{}
		if !isNull(r) { // null: none, as the openstack CLI's --no-security-group may send
			if _, err := b.decode("security_groups", &sgs); err != nil {
				return spec, err
			}
		}
		if dups := duplicates(sgs); len(dups) > 0 {
			return spec, badBody("Invalid input for security_groups. Reason: Duplicate items in the list: '%s'.", strings.Join(dups, ", "))
		}
		for _, id := range sgs {
			if !isUUID(id) {
				return spec, notUUID("security_groups", id)
			}
		}
		spec.SecurityGroups = &sgs
	}
	if r, ok := b.fields["allowed_address_pairs"]; ok {
		var in []struct {
			IPAddress  string `json:"ip_address"`
			MACAddress string `json:"mac_address"`
		}
		if !isNull(r) {
			if _, err := b.decode("allowed_address_pairs", &in); err != nil {
				return spec, err
			}
		}
		pairs := make([]topology.AddressPair, 0, len(in))
		for _, ap := range in {
			pairs = append(pairs, topology.AddressPair{IPAddress: ap.IPAddress, MACAddress: ap.MACAddress})
		}
		spec.AllowedAddressPairs = &pairs
	}
	if spec.ExtraDHCPOpts, err = extraDHCPOpts(b); err != nil {
		return spec, err
	}
	return spec, nil
}

// extraDHCPOpts reads extra_dhcp_opts as Neutron's validator of the attribute does: null
// (none on create, no change on update) or a list of objects holding opt_name (a string),
// opt_value (a string, or null to remove the option on update) and optionally ip_version
// (4 or 6, as a number or a string), and nothing else; every violation is 400
// InvalidInput. What names and values are valid, and duplicates, the store checks.
func extraDHCPOpts(b *body) (*[]db.ExtraDHCPOptSpec, error) {
	const name = "extra_dhcp_opts"
	r, ok := b.fields[name]
	if !ok || isNull(r) {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(r, &items); err != nil {
		return nil, invalidInput("'%s' is not a list", string(r))
	}
	out := make([]db.ExtraDHCPOptSpec, 0, len(items))
	for i, raw := range items {
		var item map[string]json.RawMessage
		if err := json.Unmarshal(raw, &item); err != nil || item == nil {
			return nil, invalidInput("%s item %d: '%s' is not a dictionary", name, i, string(raw))
		}
		var unexpected []string
		for k := range item {
			if k != "opt_name" && k != "opt_value" && k != "ip_version" {
				unexpected = append(unexpected, k)
			}
		}
		if len(unexpected) > 0 {
			sort.Strings(unexpected)
			return nil, invalidInput("%s item %d: Unexpected keys supplied: %s", name, i, strings.Join(unexpected, ", "))
		}
		rn, hasName := item["opt_name"]
		rv, hasValue := item["opt_value"]
		if !hasName || !hasValue {
			return nil, invalidInput("%s item %d: opt_name and opt_value are required", name, i)
		}
		var o db.ExtraDHCPOptSpec
		if isNull(rn) || json.Unmarshal(rn, &o.OptName) != nil {
			return nil, invalidInput("%s item %d: opt_name '%s' is not a valid string", name, i, string(rn))
		}
		if !isNull(rv) {
			var v string
			if json.Unmarshal(rv, &v) != nil {
				return nil, invalidInput("%s item %d: opt_value '%s' is not a valid string", name, i, string(rv))
			}
			o.OptValue = &v
		}
		if rver, ok := item["ip_version"]; ok {
			v, err := intOf(rver)
			if err != nil || (v != 4 && v != 6) {
				return nil, invalidInput("%s item %d: ip_version '%s' is not 4 or 6", name, i, string(rver))
			}
			o.IPVersion = int(v)
		}
		out = append(out, o)
	}
	return &out, nil
}

// visibleGroups refuses security groups the caller cannot see (SecurityGroupNotFound).
func (s *Server) visibleGroups(c echo.Context, spec db.PortSpec) error {
	if spec.SecurityGroups == nil {
		return nil
	}
	for _, id := range *spec.SecurityGroups {
		if _, err := s.ownedGroup(c, id); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) createPort(c echo.Context) error {
	cl := callerOf(c)
	network := networkCheck(c, s.visibleNetwork)
	return create(c, creation[db.PortSpec, topology.Port]{
		kind: "port", plural: "ports",
		allowed: []string{"name", "description", "network_id", "mac_address", "fixed_ips",
			"device_owner", "device_id", "binding:host_id", "binding:vnic_type", "binding:profile", "admin_state_up",
			"tenant_id", "project_id", "security_groups", "port_security_enabled", "allowed_address_pairs", "extra_dhcp_opts",
			"tags"},
		readOnly: with(standardReadOnly, "binding:vif_type", "binding:vif_details"),
		spec: func(b *body) (db.PortSpec, error) {
			spec, err := portCreateSpec(b, cl)
			var n *topology.Network
			if err == nil {
				n, err = network(spec.NetworkID)
			}
			if err == nil {
				err = checkNetOwnerAttrs(c, b, func() (*topology.Network, error) { return n, nil })
			}
			if err == nil {
				err = s.visibleGroups(c, spec)
			}
			return spec, err
		},
		one:   s.store.CreatePort,
		many:  s.store.CreatePorts,
		shape: s.bindings(c).shape,
	})
}

// portCreateSpec reads a port create body.
func portCreateSpec(b *body, cl caller) (db.PortSpec, error) {
	spec, err := portSpec(b)
	if err != nil {
		return spec, err
	}
	if spec.ProjectID, err = b.project(cl); err != nil {
		return spec, err
	}
	nid, err := b.id("network_id")
	if err != nil {
		return spec, err
	}
	if nid == nil {
		return spec, badBody("Invalid input for network_id. Reason: network_id is required.")
	}
	spec.NetworkID = *nid
	if spec.Tags, err = createTags(b); err != nil {
		return spec, err
	}
	return spec, nil
}

func (s *Server) updatePort(c echo.Context) error {
	id := c.Param("id")
	b, err := readBody(c, "port", []string{"name", "description", "mac_address", "fixed_ips", "device_owner",
		"device_id", "binding:host_id", "binding:vnic_type", "binding:profile", "admin_state_up", "security_groups",
		"port_security_enabled", "allowed_address_pairs", "extra_dhcp_opts"},
		with(standardReadOnly, "network_id", "tenant_id", "project_id", "binding:vif_type", "binding:vif_details"))
	if err != nil {
		return err
	}
	spec, err := portSpec(b)
	if err != nil {
		return err
	}
	p, err := s.ownedPort(c, id)
	if err != nil {
		return err
	}
	err = checkNetOwnerAttrs(c, b, func() (*topology.Network, error) {
		return s.store.GetNetwork(c.Request().Context(), p.NetworkID)
	})
	if err != nil {
		return err
	}
	if err := s.visibleGroups(c, spec); err != nil {
		return err
	}
	p, err = s.store.UpdatePort(c.Request().Context(), id, spec)
	if err != nil {
		return err
	}
	return respondOne(c, http.StatusOK, "port", s.bindings(c).shape(p))
}

func (s *Server) deletePort(c echo.Context) error {
	return deleteOwned(c, s.ownedPort, s.store.DeletePort)
}
