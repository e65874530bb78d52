// Options by name: what Neutron's extra_dhcp_opts hand to dnsmasq, encoded as dnsmasq would.

package dhcp4

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// kind is how an option's text value is encoded.
type kind uint8

const (
	kindAddrs   kind = iota // comma-separated IPv4 addresses
	kindText                // the text itself
	kindU8                  // a number in one byte
	kindU16                 // a number in two bytes
	kindU32                 // a number (or seconds) in four bytes
	kindDomains             // comma-separated domain names, RFC 1035 labels (RFC 3397)
	kindRoutes              // classless routes: "dest/len,router,dest/len,router"
	kindGuess               // not in the table: addresses, a number or text, as dnsmasq guesses
)

// ServerIPAddress is the pseudo option (dnsmasq's 255 "server-ip-address") that sets the
// reply's siaddr rather than an option.
const ServerIPAddress = 255

// optionNames are the DHCPv4 options an operator may name in extra_dhcp_opts, with dnsmasq's
// names (Neutron passes the names through to dnsmasq), numbers and encodings. Options the
// server owns (message type, server identifier, lease times it computes, requested address)
// are not settable.
var optionNames = []struct {
	name string
	code uint8
	kind kind
}{
	{"netmask", 1, kindAddrs},
	{"time-offset", 2, kindU32},
	{"router", 3, kindAddrs},
	{"dns-server", 6, kindAddrs},
	{"log-server", 7, kindAddrs},
	{"lpr-server", 9, kindAddrs},
	{"hostname", 12, kindText},
	{"boot-file-size", 13, kindU16},
	{"domain-name", 15, kindText},
	{"swap-server", 16, kindAddrs},
	{"root-path", 17, kindText},
	{"extension-path", 18, kindText},
	{"ip-forward-enable", 19, kindU8},
	{"non-local-source-routing", 20, kindU8},
	{"policy-filter", 21, kindAddrs},
	{"max-datagram-reassembly", 22, kindU16},
	{"default-ttl", 23, kindU8},
	{"mtu", 26, kindU16},
	{"all-subnets-local", 27, kindU8},
	{"broadcast", 28, kindAddrs},
	{"router-discovery", 31, kindU8},
	{"router-solicitation", 32, kindAddrs},
	{"static-route", 33, kindAddrs},
	{"trailer-encapsulation", 34, kindU8},
	{"arp-timeout", 35, kindU32},
	{"ethernet-encap", 36, kindU8},
	{"tcp-ttl", 37, kindU8},
	{"tcp-keepalive", 38, kindU32},
	{"nis-domain", 40, kindText},
	{"nis-server", 41, kindAddrs},
	{"ntp-server", 42, kindAddrs},
	{"netbios-ns", 44, kindAddrs},
	{"netbios-dd", 45, kindAddrs},
	{"netbios-nodetype", 46, kindU8},
	{"netbios-scope", 47, kindText},
	{"x-windows-fs", 48, kindAddrs},
	{"x-windows-dm", 49, kindAddrs},
	{"lease-time", 51, kindU32},
	{"T1", 58, kindU32},
	{"T2", 59, kindU32},
	{"vendor-class", 60, kindText},
	{"nis+-domain", 64, kindText},
	{"nis+-server", 65, kindAddrs},
	{"tftp-server", 66, kindText},
	{"bootfile-name", 67, kindText},
	{"mobile-ip-home", 68, kindAddrs},
	{"smtp-server", 69, kindAddrs},
	{"pop3-server", 70, kindAddrs},
	{"nntp-server", 71, kindAddrs},
	{"irc-server", 74, kindAddrs},
	{"user-class", 77, kindText},
	{"client-arch", 93, kindU16},
	{"posix-timezone", 100, kindText},
	{"tzdb-timezone", 101, kindText},
	{"domain-search", 119, kindDomains},
	{"classless-static-route", 121, kindRoutes},
	{"tftp-server-address", 150, kindAddrs},
	{"server-ip-address", ServerIPAddress, kindAddrs},
}

// notSettable are the options the server alone decides.
var notSettable = map[uint8]bool{OptPad: true, OptRequestedIP: true, OptOverload: true, OptMessageType: true,
	OptServerID: true, OptParamRequest: true, OptMaxMessageSize: true, OptClientID: true}

// ParseOption encodes an extra DHCP option given as Neutron has it: a name known to dnsmasq
// ("dns-server", case-insensitive) or a number ("6", also dnsmasq's "option:6" form), and
// its value in dnsmasq's text form. Code ServerIPAddress stands for siaddr. An option whose
// value cannot be encoded is an error; the caller leaves it out.
func ParseOption(name, value string) (code uint8, data []byte, err error) {
	k := kindGuess
	found := false
	n := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(name)), "option:")
	for _, o := range optionNames {
		if strings.EqualFold(o.name, n) {
			code, k, found = o.code, o.kind, true
			break
		}
	}
	if !found {
		num, err := strconv.ParseUint(n, 10, 8)
		if err != nil || num == 0 || num == 255 {
			return 0, nil, fmt.Errorf("unknown DHCP option %q", name)
		}
		code = uint8(num)
		for _, o := range optionNames {
			if o.code == code {
				k = o.kind
			}
		}
	}
	if notSettable[code] {
		return 0, nil, fmt.Errorf("DHCP option %q is the server's own", name)
	}
	data, err = encodeValue(k, value)
	if err != nil {
		return 0, nil, fmt.Errorf("DHCP option %q: %w", name, err)
	}
	return code, data, nil
}

func encodeValue(k kind, value string) ([]byte, error) {
	value = strings.TrimSpace(value)
	items := strings.Split(value, ",")
	for i := range items {
		items[i] = strings.TrimSpace(items[i])
	}
	switch k {
	case kindAddrs:
		return parseAddrs(items)
	case kindText:
		if value == "" {
			return nil, fmt.Errorf("empty value")
		}
		return []byte(value), nil
	case kindU8, kindU16, kindU32:
		bits := map[kind]int{kindU8: 8, kindU16: 16, kindU32: 32}[k]
		v, err := strconv.ParseUint(value, 10, bits)
		if err != nil {
			return nil, fmt.Errorf("%q is not a %d-bit number", value, bits)
		}
		switch k {
		case kindU8:
			return []byte{byte(v)}, nil
		case kindU16:
			return U16(uint16(v)), nil
		}
		return U32(uint32(v)), nil
	case kindDomains:
		return domainSearch(items)
	case kindRoutes:
		return parseRoutes(items)
	}
	// A number as dnsmasq sizes it, addresses, or text.
	if v, err := strconv.ParseUint(value, 10, 32); err == nil {
		switch {
		case v <= 0xff:
			return []byte{byte(v)}, nil
		case v <= 0xffff:
			return U16(uint16(v)), nil
		}
		return U32(uint32(v)), nil
	}
	if b, err := parseAddrs(items); err == nil {
		return b, nil
	}
	if value == "" {
		return nil, fmt.Errorf("empty value")
	}
	return []byte(value), nil
}

func parseAddrs(items []string) ([]byte, error) {
	var addrs []netip.Addr
	for _, s := range items {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return nil, fmt.Errorf("%q is not an IPv4 address", s)
		}
		addrs = append(addrs, a)
	}
	return IPs(addrs...), nil
}

func parseRoutes(items []string) ([]byte, error) {
	if len(items)%2 != 0 {
		return nil, fmt.Errorf("routes come as destination,router pairs")
	}
	var routes []Route
	for i := 0; i < len(items); i += 2 {
		d, err := netip.ParsePrefix(items[i])
		if err != nil || !d.Addr().Is4() {
			return nil, fmt.Errorf("%q is not an IPv4 prefix", items[i])
		}
		gw, err := netip.ParseAddr(items[i+1])
		if err != nil || !gw.Is4() {
			return nil, fmt.Errorf("%q is not an IPv4 address", items[i+1])
		}
		routes = append(routes, Route{Dest: d, Router: gw})
	}
	return ClasslessRoutes(routes), nil
}

// domainSearch encodes domain names as RFC 1035 labels, without compression (RFC 3397
// allows it, it does not need it).
func domainSearch(names []string) ([]byte, error) {
	var b []byte
	for _, n := range names {
		n = strings.TrimSuffix(n, ".")
		if n == "" {
			return nil, fmt.Errorf("empty domain name")
		}
		for _, l := range strings.Split(n, ".") {
			if l == "" || len(l) > 63 {
				return nil, fmt.Errorf("domain %q has an invalid label", n)
			}
			b = append(b, byte(len(l)))
			b = append(b, l...)
		}
		b = append(b, 0)
	}
	return b, nil
}
