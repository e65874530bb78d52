package db

import (
	"strings"
	"unicode/utf8"

	"github.com/dvrflow/dvrflow/topology"
)

// ExtraDHCPOptSpec is one item of a port's extra_dhcp_opts in a create or update. A nil
// OptValue removes the option (name, IP version) on update and is not stored on create;
// IPVersion 0 means 4.
type ExtraDHCPOptSpec struct {
	OptName   string
	OptValue  *string
	IPVersion int
}

// Neutron's limits on extra DHCP options (neutron-lib's extra_dhcp_opt definition).
const (
	maxDHCPOptName  = 64
	maxDHCPOptValue = 255
)

// blankableDHCPOpts may have an empty value (no router, no classless static routes).
var blankableDHCPOpts = map[string]bool{"router": true, "classless-static-route": true}

// checkExtraDHCPOpts validates items as Neutron's key specs do: a non-empty single-line
// name of at most 64 characters, a value that is null or a single-line non-empty string of
// at most 255 (for router and classless-static-route: any string, empty included), IP
// version 4 or 6; and no option named twice for one IP version.
func checkExtraDHCPOpts(items []ExtraDHCPOptSpec) error {
	type key struct {
		name    string
		version int
	}
	seen := make(map[key]bool, len(items))
	for i, o := range items {
		if o.IPVersion != 0 && o.IPVersion != 4 && o.IPVersion != 6 {
			return invalid("extra_dhcp_opts item %d: ip_version %d is not 4 or 6", i, o.IPVersion)
		}
		blankable := blankableDHCPOpts[o.OptName]
		if !blankable && (strings.TrimSpace(o.OptName) == "" || multiline(o.OptName) || utf8.RuneCountInString(o.OptName) > maxDHCPOptName) {
			return invalid("extra_dhcp_opts item %d: opt_name '%s' must be a non-blank single line of at most %d characters", i, o.OptName, maxDHCPOptName)
		}
		if v := o.OptValue; v != nil {
			if utf8.RuneCountInString(*v) > maxDHCPOptValue {
				return invalid("extra_dhcp_opts item %d: opt_value of %s exceeds maximum length of %d", i, o.OptName, maxDHCPOptValue)
			}
			if !blankable && (strings.TrimSpace(*v) == "" || multiline(*v)) {
				return invalid("extra_dhcp_opts item %d: opt_value '%s' of %s must be a non-blank single line (or null)", i, *v, o.OptName)
			}
		}
		k := key{o.OptName, ipVersionOr4(o.IPVersion)}
		if seen[k] {
			return invalid("extra_dhcp_opts names %s for IPv%d more than once", k.name, k.version)
		}
		seen[k] = true
	}
	return nil
}

// multiline reports whether s is more than one line, as Python's str.splitlines counts
// them: a line break other than one ending s.
func multiline(s string) bool {
	s = strings.TrimSuffix(s, "\r\n")
	if r, n := utf8.DecodeLastRuneInString(s); lineBreak(r) {
		s = s[:len(s)-n]
	}
	return strings.ContainsFunc(s, lineBreak)
}

func lineBreak(r rune) bool {
	switch r {
	case '\n', '\r', '\v', '\f', 0x1c, 0x1d, 0x1e, 0x85, 0x2028, 0x2029:
		return true
	}
	return false
}

func ipVersionOr4(v int) int {
	if v == 0 {
		return 4
	}
	return v
}

// newExtraDHCPOpts returns a new port's options: the items with a value, in order.
func newExtraDHCPOpts(items *[]ExtraDHCPOptSpec) []topology.ExtraDHCPOpt {
	out := []topology.ExtraDHCPOpt{}
	if items == nil {
		return out
	}
	for _, o := range *items {
		if o.OptValue != nil {
			out = append(out, topology.ExtraDHCPOpt{OptName: o.OptName, OptValue: *o.OptValue, IPVersion: ipVersionOr4(o.IPVersion)})
		}
	}
	return out
}

// updateExtraDHCPOpts applies items to a port's options as Neutron's extra_dhcp_opt
// mixin does: an item whose (name, IP version) the port has replaces its value, or
// removes it when its value is null; a new one is appended (nothing happens for a new one
// with a null value); options the items do not name stay.
func updateExtraDHCPOpts(cur []topology.ExtraDHCPOpt, items []ExtraDHCPOptSpec) []topology.ExtraDHCPOpt {
	out := append([]topology.ExtraDHCPOpt{}, cur...)
	for _, o := range items {
		v := ipVersionOr4(o.IPVersion)
		at := -1
		for j, c := range out {
			if c.OptName == o.OptName && c.IPVersion == v {
				at = j
				break
			}
		}
		switch {
		case at >= 0 && o.OptValue == nil:
			out = append(out[:at], out[at+1:]...)
		case at >= 0:
			out[at].OptValue = *o.OptValue
		case o.OptValue != nil:
			out = append(out, topology.ExtraDHCPOpt{OptName: o.OptName, OptValue: *o.OptValue, IPVersion: v})
		}
	}
	return out
}
