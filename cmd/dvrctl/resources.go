package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
)

// The API's objects, as far as the tables show them (-o json prints the API's own JSON).

type fixedIP struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

type network struct {
	ID              string   `json:"id"`
	Name            string   `json:"name"`
	Status          string   `json:"status"`
	NetworkType     string   `json:"provider:network_type"`
	PhysicalNetwork *string  `json:"provider:physical_network"`
	SegmentationID  *int64   `json:"provider:segmentation_id"`
	External        bool     `json:"router:external"`
	Shared          bool     `json:"shared"`
	MTU             int      `json:"mtu"`
	Subnets         []string `json:"subnets"`
}

type subnet struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	NetworkID string  `json:"network_id"`
	CIDR      string  `json:"cidr"`
	GatewayIP *string `json:"gateway_ip"`
}

type gatewayInfo struct {
	NetworkID        string    `json:"network_id"`
	EnableSNAT       bool      `json:"enable_snat"`
	ExternalFixedIPs []fixedIP `json:"external_fixed_ips"`
}

type router struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Status      string       `json:"status"`
	Distributed bool         `json:"distributed"`
	Gateway     *gatewayInfo `json:"external_gateway_info"`
}

type port struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	NetworkID    string    `json:"network_id"`
	MACAddress   string    `json:"mac_address"`
	FixedIPs     []fixedIP `json:"fixed_ips"`
	DeviceOwner  string    `json:"device_owner"`
	DeviceID     string    `json:"device_id"`
	HostID       string    `json:"binding:host_id"`
	Status       string    `json:"status"`
	AdminStateUp bool      `json:"admin_state_up"`
}

type floatingIP struct {
	ID                string  `json:"id"`
	FloatingNetworkID string  `json:"floating_network_id"`
	FloatingIPAddress string  `json:"floating_ip_address"`
	FixedIPAddress    *string `json:"fixed_ip_address"`
	PortID            *string `json:"port_id"`
	RouterID          *string `json:"router_id"`
	Status            string  `json:"status"`
}

type host struct {
	Host            string            `json:"host"`
	TunnelIP        string            `json:"tunnel_ip"`
	Mode            string            `json:"mode"`
	Bridges         map[string]string `json:"bridges"`
	MACAddress      string            `json:"mac_address"`
	AppliedRevision int64             `json:"applied_revision"`
	Heartbeat       string            `json:"heartbeat_timestamp"`
	Alive           bool              `json:"alive"`
}

func deref[T any](p *T) (v T) {
	if p != nil {
		v = *p
	}
	return v
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// table writes rows aligned with text/tabwriter.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		for i := range r {
			r[i] = orDash(r[i])
		}
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

func ips(fs []fixedIP) string {
	var out []string
	for _, f := range fs {
		out = append(out, f.IPAddress)
	}
	return strings.Join(out, ",")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// list fetches a collection; for table output it decodes it into T and renders rows.
func list[T any](ctx context.Context, c *cli, args []string, name, path, coll string, q url.Values,
	header []string, row func(T) []string) error {
	if _, err := c.parse(name, "", args, 0, 0, nil); err != nil {
		return err
	}
	return listQuery(ctx, c, path, coll, q, header, row)
}

func listQuery[T any](ctx context.Context, c *cli, path, coll string, q url.Values, header []string, row func(T) []string) error {
	var items map[string][]T
	raw, err := c.client().getInto(ctx, path, q, &items)
	if err != nil {
		return err
	}
	if c.json() {
		return writeJSON(c.stdout, raw)
	}
	var rows [][]string
	for _, it := range items[coll] {
		rows = append(rows, row(it))
	}
	return table(c.stdout, header, rows)
}

func runHosts(ctx context.Context, c *cli, args []string) error {
	return list(ctx, c, args, "hosts", "/v2.0/dvr-hosts", "dvr_hosts", nil,
		[]string{"HOST", "MODE", "TUNNEL_IP", "DVR_MAC", "ALIVE", "APPLIED_REV", "HEARTBEAT", "BRIDGES"},
		func(h host) []string {
			var br []string
			for _, b := range sortedKeys(h.Bridges) {
				br = append(br, b+"="+h.Bridges[b])
			}
			return []string{h.Host, h.Mode, h.TunnelIP, h.MACAddress, yesNo(h.Alive),
				fmt.Sprint(h.AppliedRevision), h.Heartbeat, strings.Join(br, ",")}
		})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func segment(n network) string {
	if n.SegmentationID == nil {
		return ""
	}
	return fmt.Sprint(*n.SegmentationID)
}

func runNetworks(ctx context.Context, c *cli, args []string) error {
	return list(ctx, c, args, "networks", "/v2.0/networks", "networks", nil,
		[]string{"ID", "NAME", "TYPE", "PHYSNET", "SEGMENT", "EXTERNAL", "SHARED", "MTU", "STATUS", "SUBNETS"},
		func(n network) []string {
			return []string{n.ID, n.Name, n.NetworkType, deref(n.PhysicalNetwork), segment(n), yesNo(n.External),
				yesNo(n.Shared), fmt.Sprint(n.MTU), n.Status, strings.Join(n.Subnets, ",")}
		})
}

func runSubnets(ctx context.Context, c *cli, args []string) error {
	return list(ctx, c, args, "subnets", "/v2.0/subnets", "subnets", nil,
		[]string{"ID", "NAME", "NETWORK", "CIDR", "GATEWAY"},
		func(s subnet) []string {
			return []string{s.ID, s.Name, s.NetworkID, s.CIDR, deref(s.GatewayIP)}
		})
}

func gatewayText(g *gatewayInfo) string {
	if g == nil {
		return ""
	}
	s := g.NetworkID
	if a := ips(g.ExternalFixedIPs); a != "" {
		s += " " + a
	}
	if !g.EnableSNAT {
		s += " (no snat)"
	}
	return s
}

func runRouters(ctx context.Context, c *cli, args []string) error {
	return list(ctx, c, args, "routers", "/v2.0/routers", "routers", nil,
		[]string{"ID", "NAME", "DISTRIBUTED", "STATUS", "EXT_NETWORK", "EXT_IPS", "SNAT"},
		func(r router) []string {
			if r.Gateway == nil {
				return []string{r.ID, r.Name, yesNo(r.Distributed), r.Status, "", "", ""}
			}
			return []string{r.ID, r.Name, yesNo(r.Distributed), r.Status, r.Gateway.NetworkID, ips(r.Gateway.ExternalFixedIPs),
				yesNo(r.Gateway.EnableSNAT)}
		})
}

func runFIPs(ctx context.Context, c *cli, args []string) error {
	return list(ctx, c, args, "fips", "/v2.0/floatingips", "floatingips", nil,
		[]string{"ID", "FLOATING_IP", "FIXED_IP", "PORT", "ROUTER", "NETWORK", "STATUS"},
		func(f floatingIP) []string {
			return []string{f.ID, f.FloatingIPAddress, deref(f.FixedIPAddress), deref(f.PortID), deref(f.RouterID),
				f.FloatingNetworkID, f.Status}
		})
}

var portHeader = []string{"ID", "NAME", "NETWORK", "MAC", "FIXED_IPS", "DEVICE_OWNER", "HOST", "STATUS"}

func portRow(p port) []string {
	return []string{p.ID, p.Name, p.NetworkID, p.MACAddress, ips(p.FixedIPs), p.DeviceOwner, p.HostID, p.Status}
}

func runPorts(ctx context.Context, c *cli, args []string) error {
	var netw, hostName, owner string
	if _, err := c.parse("ports", "[--network ID|NAME] [--host HOST] [--device-owner OWNER]", args, 0, 0, func(fs *flag.FlagSet) {
		fs.StringVar(&netw, "network", "", "only ports of this network (ID or name)")
		fs.StringVar(&hostName, "host", "", "only ports bound to this host (binding:host_id)")
		fs.StringVar(&owner, "device-owner", "", "only ports of this device_owner (compute:nova, network:router_interface_distributed, ...)")
	}); err != nil {
		return err
	}
	q := url.Values{}
	if netw != "" {
		n, err := findNetwork(ctx, c.client(), netw)
		if err != nil {
			return err
		}
		q.Set("network_id", n.ID)
	}
	if hostName != "" {
		q.Set("binding:host_id", hostName)
	}
	if owner != "" {
		q.Set("device_owner", owner)
	}
	return listQuery(ctx, c, "/v2.0/ports", "ports", q, portHeader, portRow)
}

// findNetwork finds a network by ID, else by (unique) name.
func findNetwork(ctx context.Context, cl *client, idOrName string) (network, error) {
	return findByIDOrName(ctx, cl, "network", "networks", idOrName, func(n network) string { return n.ID })
}

// findPort finds a port by ID, else by (unique) name.
func findPort(ctx context.Context, cl *client, idOrName string) (port, error) {
	return findByIDOrName(ctx, cl, "port", "ports", idOrName, func(p port) string { return p.ID })
}

// findByIDOrName finds the resource of kind (plural names its collection) whose ID is
// idOrName, else the only one named idOrName; idOf gives a resource's ID, to list the
// candidates when several share the name.
func findByIDOrName[T any](ctx context.Context, cl *client, kind, plural, idOrName string, idOf func(T) string) (T, error) {
	var zero T
	var one map[string]T
	_, err := cl.getInto(ctx, "/v2.0/"+plural+"/"+url.PathEscape(idOrName), nil, &one)
	if err == nil {
		x, ok := one[kind]
		if !ok {
			return zero, fmt.Errorf("%s %q: the answer holds no %q object", kind, idOrName, kind)
		}
		return x, nil
	}
	if !isNotFound(err) {
		return zero, err
	}
	var byName map[string][]T
	if _, err2 := cl.getInto(ctx, "/v2.0/"+plural, url.Values{"name": {idOrName}}, &byName); err2 != nil {
		return zero, err2
	}
	xs := byName[plural]
	switch len(xs) {
	case 0:
		return zero, fmt.Errorf("%s %q: no %s has this ID or name: %w", kind, idOrName, kind, err)
	case 1:
		return xs[0], nil
	}
	ids := make([]string, len(xs))
	for i, x := range xs {
		ids[i] = idOf(x)
	}
	return zero, fmt.Errorf("%s %q: %d %s have this name (%s), give an ID", kind, idOrName, len(xs), plural, strings.Join(ids, ", "))
}
