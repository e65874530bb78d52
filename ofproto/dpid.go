// Datapath IDs: one type, one parser, one formatter.

package ofproto

import (
	"fmt"
	"strconv"
	"strings"
)

// DPID is an OpenFlow datapath ID.
type DPID uint64

// ParseDPID parses a datapath ID as OVS, the API and operators write it: 1 to 16 hex
// digits (either case), with an optional "0x" prefix and optional ':' between octets.
func ParseDPID(s string) (DPID, error) {
	h := strings.ReplaceAll(s, ":", "")
	if len(h) > 1 && h[0] == '0' && (h[1] == 'x' || h[1] == 'X') {
		h = h[2:]
	}
	if h == "" || len(h) > 16 || strings.ContainsAny(h, "+-_") {
		return 0, fmt.Errorf("datapath ID %q: want 1 to 16 hex digits", s)
	}
	v, err := strconv.ParseUint(h, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("datapath ID %q: want 1 to 16 hex digits", s)
	}
	return DPID(v), nil
}

// String writes d as 16 lower-case hex digits, the form of the API and of ovs-vsctl's
// other-config:datapath-id.
func (d DPID) String() string { return fmt.Sprintf("%016x", uint64(d)) }
