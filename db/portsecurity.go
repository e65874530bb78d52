package db

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/dvrflow/dvrflow/topology"
)

// PortSecurity holds a port create's or update's port security fields; nil means "not
// given".
type PortSecurity struct {
	PortSecurityEnabled *bool
	SecurityGroups      *[]string
	AllowedAddressPairs *[]topology.AddressPair // MACAddress "" for the port's own
}

// maxAddressPairs is Neutron's max_allowed_address_pair.
const maxAddressPairs = 10

// secureNewPort settles a new port's security from sec and its network's default, as
// Neutron's ML2 does: a port that does not say inherits port_security_enabled from its
// network; with port security on, a port that names no groups gets its project's default
// group unless it is a network:* port (with or without an address: a port without one
// sends only from its allowed address pairs); with it off, naming groups or address
// pairs is refused.
func (w *wtx) secureNewPort(ctx context.Context, p *topology.Port, networkDefault bool, sec PortSecurity) error {
	p.PortSecurityEnabled = networkDefault
	if sec.PortSecurityEnabled != nil {
		p.PortSecurityEnabled = *sec.PortSecurityEnabled
	}
	p.SecurityGroups, p.AllowedAddressPairs = []string{}, []topology.AddressPair{}
	if sec.SecurityGroups != nil {
		p.SecurityGroups = sortedUnique(*sec.SecurityGroups)
	}
	if len(p.SecurityGroups) > 0 && !p.PortSecurityEnabled {
		return groupsNeedPortSecurity()
	}
	if sec.SecurityGroups == nil && p.PortSecurityEnabled && !strings.HasPrefix(p.DeviceOwner, "network:") {
		id, err := w.defaultSecurityGroup(ctx, p.ProjectID)
		if err != nil {
			return err
		}
		p.SecurityGroups = []string{id}
	} else if err := w.checkGroups(ctx, p.SecurityGroups); err != nil {
		return err
	}
	return setAddressPairs(p, sec.AllowedAddressPairs)
}

// groupsNeedPortSecurity is Neutron's refusal of groups named for a port without port
// security (its message still names the address the port no longer needs).
func groupsNeedPortSecurity() error {
	return newError(ClassInvalid, "PortSecurityAndIPRequiredForSecurityGroups",
		"Port security must be enabled and port must have an IP address in order to use security groups.")
}

// secureUpdatedPort applies sec to an existing port (after its new addresses), as
// Neutron's ML2 does. With port security off, a request that leaves the port address
// pairs is refused (AddressPairAndPortSecurityRequired), then one naming groups
// (PortSecurityAndIPRequiredForSecurityGroups) or leaving the port its groups
// (PortSecurityPortHasSecurityGroup). A port keeps its groups whatever its addresses.
func (w *wtx) secureUpdatedPort(ctx context.Context, p *topology.Port, sec PortSecurity) error {
	if sec.PortSecurityEnabled != nil {
		p.PortSecurityEnabled = *sec.PortSecurityEnabled
	}
	if !p.PortSecurityEnabled {
		pairs := p.AllowedAddressPairs
		if sec.AllowedAddressPairs != nil {
			pairs = *sec.AllowedAddressPairs
		}
		switch {
		case len(pairs) > 0:
			return conflict("AddressPairAndPortSecurityRequired", "Port Security must be enabled in order to have allowed address pairs on a port.")
		case sec.SecurityGroups != nil && len(*sec.SecurityGroups) > 0:
			return groupsNeedPortSecurity()
		case sec.SecurityGroups == nil && len(p.SecurityGroups) > 0:
			return conflict("PortSecurityPortHasSecurityGroup",
				"Port has security group associated. Cannot disable port security or IP address until security group is removed")
		}
	}
	if sec.SecurityGroups != nil {
		p.SecurityGroups = sortedUnique(*sec.SecurityGroups)
		if err := w.checkGroups(ctx, p.SecurityGroups); err != nil {
			return err
		}
	}
	return setAddressPairs(p, sec.AllowedAddressPairs)
}

// checkGroups refuses groups that do not exist.
func (w *wtx) checkGroups(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	rows, err := w.query(ctx, `SELECT id FROM security_groups WHERE id = ANY($1)`, ids)
	if err != nil {
		return fmt.Errorf("look up security groups: %w", err)
	}
	found := map[string]bool{}
	var id string
	for rows.Next() {
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return fmt.Errorf("look up security groups: %w", err)
		}
		found[id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("look up security groups: %w", err)
	}
	for _, id := range ids {
		if !found[id] {
			return notFound("SecurityGroupNotFound", "Security group %s does not exist", id)
		}
	}
	return nil
}

// setAddressPairs checks and sets a port's allowed address pairs (nil: none given).
func setAddressPairs(p *topology.Port, pairs *[]topology.AddressPair) error {
	if pairs == nil {
		return nil
	}
	if len(*pairs) > 0 && !p.PortSecurityEnabled {
		return conflict("AddressPairAndPortSecurityRequired", "Port Security must be enabled in order to have allowed address pairs on a port.")
	}
	if len(*pairs) > maxAddressPairs {
		return newError(ClassInvalid, "AllowedAddressPairExhausted", "The number of allowed address pair exceeds the maximum %d.", maxAddressPairs)
	}
	out := make([]topology.AddressPair, 0, len(*pairs))
	seen := map[topology.AddressPair]bool{}
	for _, ap := range *pairs {
		if ap.IPAddress == "" {
			return newError(ClassInvalid, "AllowedAddressPairsMissingIP", "AllowedAddressPair must contain ip_address")
		}
		pfx, err := parsePrefixOrAddr(ap.IPAddress)
		if err != nil {
			return badRequest("Invalid input for allowed_address_pairs. Reason: '%s' is not a valid IP address or CIDR.", ap.IPAddress)
		}
		ip := pfx.Addr().String() // an address stays an address, a CIDR a CIDR
		if strings.Contains(ap.IPAddress, "/") {
			ip = netip.PrefixFrom(pfx.Addr(), pfx.Bits()).String()
		}
		mac := p.MACAddress
		if ap.MACAddress != "" {
			if mac, err = normalizeMAC(ap.MACAddress); err != nil {
				return err
			}
		}
		n := topology.AddressPair{IPAddress: ip, MACAddress: mac}
		if seen[n] {
			return newError(ClassInvalid, "DuplicateAddressPairInRequest",
				"Request contains duplicate address pair: mac_address %s ip_address %s.", mac, ip)
		}
		seen[n] = true
		out = append(out, n)
	}
	p.AllowedAddressPairs = out
	return nil
}

func sortedUnique(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}
