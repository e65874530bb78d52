package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/switchapi"
	"github.com/dvrflow/dvrflow/topology"
)

// explanation is everything explain found about a port; -o json prints it as is.
type explanation struct {
	Port        json.RawMessage   `json:"port"`
	Network     json.RawMessage   `json:"network"`
	Subnets     []json.RawMessage `json:"subnets"`
	Routers     []json.RawMessage `json:"routers"`
	Host        json.RawMessage   `json:"host,omitempty"`
	FloatingIPs []json.RawMessage `json:"floatingips"`
	// DeviceName is the port's device (tap…, or qr-… in its namespace) and OVSPort its
	// port on br-int, as Neutron names them.
	DeviceName string            `json:"device_name"`
	OVSPort    string            `json:"ovs_port"`
	Flows      []switchapi.Flows `json:"flows"`
	Namespaces []hostNamespace   `json:"namespaces"`
	// Notes say what could not be looked at (no controller, no switch API, ...).
	Notes []string `json:"notes,omitempty"`

	port    port
	network network
	subnets []subnet
	routers []router
	host    *host
	fips    []floatingIP
}

type hostNamespace struct {
	Host      string         `json:"host"`
	Namespace plan.Namespace `json:"namespace"`
}

// portNames returns the port's device name (where it terminates: tap…, or qr-… in a
// namespace) and the name of its port on br-int, as the host helper names them.
func portNames(p port) (device, ovsPort string) {
	dp := &topology.Port{ID: p.ID, DeviceOwner: p.DeviceOwner}
	return apps.DeviceName(dp), apps.OVSPortName(dp)
}

func runExplain(ctx context.Context, c *cli, args []string) error {
	pos, err := c.parse("explain", "<port-id-or-name>", args, 1, 1, nil)
	if err != nil {
		return err
	}
	ex, err := explain(ctx, c.client(), pos[0])
	if err != nil {
		return err
	}
	if c.json() {
		return writeJSON(c.stdout, ex)
	}
	return ex.write(c.stdout)
}

// one fetches path, keeps the raw object under key in *raw and decodes it into out.
func one(ctx context.Context, cl *client, path, key string, raw *json.RawMessage, out any) error {
	var env map[string]json.RawMessage
	if _, err := cl.getInto(ctx, path, nil, &env); err != nil {
		return err
	}
	obj, ok := env[key]
	if !ok {
		return fmt.Errorf("GET %s: answer has no %q", path, key)
	}
	if err := json.Unmarshal(obj, out); err != nil {
		return fmt.Errorf("GET %s: decode %s: %w", path, key, err)
	}
	*raw = obj
	return nil
}

// many fetches a collection and keeps each element raw and decoded.
func many[T any](ctx context.Context, cl *client, path, coll string, q url.Values) ([]json.RawMessage, []T, error) {
	var env map[string][]json.RawMessage
	if _, err := cl.getInto(ctx, path, q, &env); err != nil {
		return nil, nil, err
	}
	raws := env[coll]
	out := make([]T, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			return nil, nil, fmt.Errorf("GET %s: decode %s: %w", path, coll, err)
		}
	}
	return raws, out, nil
}

func explain(ctx context.Context, cl *client, idOrName string) (*explanation, error) {
	p, err := findPort(ctx, cl, idOrName)
	if err != nil {
		return nil, err
	}
	ex := &explanation{Subnets: []json.RawMessage{}, Routers: []json.RawMessage{},
		FloatingIPs: []json.RawMessage{}, Flows: []switchapi.Flows{}, Namespaces: []hostNamespace{}}
	ex.DeviceName, ex.OVSPort = portNames(p)
	if err := one(ctx, cl, "/v2.0/ports/"+url.PathEscape(p.ID), "port", &ex.Port, &ex.port); err != nil {
		return nil, err
	}
	if err := one(ctx, cl, "/v2.0/networks/"+url.PathEscape(p.NetworkID), "network", &ex.Network, &ex.network); err != nil {
		return nil, err
	}
	subnetIDs := map[string]bool{}
	for _, f := range p.FixedIPs {
		if subnetIDs[f.SubnetID] {
			continue
		}
		subnetIDs[f.SubnetID] = true
		var raw json.RawMessage
		var s subnet
		if err := one(ctx, cl, "/v2.0/subnets/"+url.PathEscape(f.SubnetID), "subnet", &raw, &s); err != nil {
			return nil, err
		}
		ex.Subnets, ex.subnets = append(ex.Subnets, raw), append(ex.subnets, s)
	}
	// Routers: those with an interface on one of the port's subnets (or the port's own
	// router, for a router port).
	routerIDs := []string{}
	_, netPorts, err := many[port](ctx, cl, "/v2.0/ports", "ports", url.Values{"network_id": {p.NetworkID}})
	if err != nil {
		return nil, err
	}
	for _, np := range netPorts {
		if !strings.HasPrefix(np.DeviceOwner, "network:router_interface") {
			continue
		}
		for _, f := range np.FixedIPs {
			if subnetIDs[f.SubnetID] && !slices.Contains(routerIDs, np.DeviceID) {
				routerIDs = append(routerIDs, np.DeviceID)
			}
		}
	}
	if strings.HasPrefix(p.DeviceOwner, "network:router") && p.DeviceID != "" && !slices.Contains(routerIDs, p.DeviceID) {
		routerIDs = append(routerIDs, p.DeviceID)
	}
	for _, id := range routerIDs {
		var raw json.RawMessage
		var r router
		if err := one(ctx, cl, "/v2.0/routers/"+url.PathEscape(id), "router", &raw, &r); err != nil {
			return nil, err
		}
		ex.Routers, ex.routers = append(ex.Routers, raw), append(ex.routers, r)
	}
	if ex.FloatingIPs, ex.fips, err = many[floatingIP](ctx, cl, "/v2.0/floatingips", "floatingips", url.Values{"port_id": {p.ID}}); err != nil {
		return nil, err
	}
	if p.HostID != "" {
		var h host
		if err := one(ctx, cl, "/v2.0/dvr-hosts/"+url.PathEscape(p.HostID), "dvr_host", &ex.Host, &h); err != nil {
			if !isNotFound(err) {
				return nil, err
			}
			ex.Notes = append(ex.Notes, fmt.Sprintf("port bound to host %s, which is not registered", p.HostID))
		} else {
			ex.host = &h
		}
	}
	if err := ex.findFlows(ctx, cl); err != nil {
		return nil, err
	}
	if err := ex.findNamespaces(ctx, cl, netPorts); err != nil {
		return nil, err
	}
	return ex, nil
}

// matchers returns the patterns of the port in flow text: its MAC (colon and hex
// forms), its fixed and floating IPs, and its device name.
func (ex *explanation) matchers() []*regexp.Regexp {
	var res []*regexp.Regexp
	add := func(word, edge string) {
		res = append(res, regexp.MustCompile(`(?i)(?:^|[^`+edge+`])`+regexp.QuoteMeta(word)+`(?:$|[^`+edge+`])`))
	}
	if mac := strings.ToLower(ex.port.MACAddress); mac != "" {
		add(mac, "0-9a-f:")
		add("0x"+strings.ReplaceAll(mac, ":", ""), "0-9a-fx")
	}
	for _, f := range ex.port.FixedIPs {
		add(f.IPAddress, "0-9.")
	}
	for _, f := range ex.fips {
		add(f.FloatingIPAddress, "0-9.")
	}
	add(ex.DeviceName, `\w-`)
	add(ex.OVSPort, `\w-`)
	return res
}

// flowFetchers bounds the flow dumps explain asks for at once.
const flowFetchers = 8

// findFlows keeps, of every switch, the flows that mention the port. The switches are
// asked concurrently (at most flowFetchers at a time); the result keeps the API's order.
func (ex *explanation) findFlows(ctx context.Context, cl *client) error {
	sws, _, err := listSwitches(ctx, cl)
	if err != nil {
		if isNotFound(err) {
			ex.Notes = append(ex.Notes, "flows: this API serves no switch API (GET /v2.0/dvr-switches is 404)")
			return nil
		}
		return err
	}
	type result struct {
		sf   switchapi.Flows
		note string
		err  error
	}
	results := make([]result, len(sws))
	sem := make(chan struct{}, flowFetchers)
	var wg sync.WaitGroup
	for i, s := range sws {
		dpid, err := dpidString(s.DPID)
		if err != nil {
			return fmt.Errorf("switch list: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			sf, _, err := getFlows(ctx, cl, dpid)
			switch {
			case isNotFound(err): // disconnected between the list and now
				results[i].note = fmt.Sprintf("flows of %s %s (%s): %v", orDash(s.Host), orDash(s.Bridge), dpid, err)
			case err != nil:
				results[i].err = err
			default:
				results[i].sf = sf
			}
		}()
	}
	wg.Wait()
	ms := ex.matchers()
	for _, r := range results {
		if r.err != nil {
			return r.err
		}
		if r.note != "" {
			ex.Notes = append(ex.Notes, r.note)
			continue
		}
		var hits []switchapi.Flow
		for _, f := range r.sf.Flows {
			for _, m := range ms {
				if m.MatchString(f.Text) {
					hits = append(hits, f)
					break
				}
			}
		}
		if len(hits) > 0 {
			r.sf.Flows = hits
			ex.Flows = append(ex.Flows, r.sf)
		}
	}
	return nil
}

// findNamespaces keeps, of every host's plan, the namespaces of the port's routers
// (qrouter-, snat-), of their external networks and the port's floating IPs' (fip-), and
// any namespace with a device on the port's network.
func (ex *explanation) findNamespaces(ctx context.Context, cl *client, netPorts []port) error {
	want := map[string]bool{}
	for _, r := range ex.routers {
		want[plan.PrefixQRouter+r.ID], want[plan.PrefixSNAT+r.ID] = true, true
		if r.Gateway != nil {
			want[plan.PrefixFIP+r.Gateway.NetworkID] = true
		}
	}
	for _, f := range ex.fips {
		want[plan.PrefixFIP+f.FloatingNetworkID] = true
	}
	onNet := map[string]bool{}
	for _, np := range netPorts {
		onNet[np.ID] = true
	}
	_, hosts, err := many[host](ctx, cl, "/v2.0/dvr-hosts", "dvr_hosts", nil)
	if err != nil {
		return err
	}
	for _, h := range hosts {
		p, _, err := getPlan(ctx, cl, h.Host)
		if err != nil {
			ex.Notes = append(ex.Notes, fmt.Sprintf("namespaces of %s: %v", h.Host, err))
			continue
		}
		for _, ns := range p.Namespaces {
			involved := want[ns.Name]
			for _, l := range ns.Links {
				involved = involved || (l.IfaceID != "" && onNet[l.IfaceID])
			}
			if involved {
				ex.Namespaces = append(ex.Namespaces, hostNamespace{Host: h.Host, Namespace: ns})
			}
		}
	}
	return nil
}

func (ex *explanation) write(w io.Writer) error {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	p, n := ex.port, ex.network
	fmt.Fprintf(tw, "PORT\t%s\t%s\n", p.ID, orDash(p.Name))
	fmt.Fprintf(tw, "  mac\t%s\n", p.MACAddress)
	fmt.Fprintf(tw, "  fixed ips\t%s\n", orDash(ips(p.FixedIPs)))
	fmt.Fprintf(tw, "  device\t%s\tbr-int port %s, owner %s, device_id %s\n", ex.DeviceName, ex.OVSPort,
		orDash(p.DeviceOwner), orDash(p.DeviceID))
	fmt.Fprintf(tw, "  status\t%s\tadmin_state_up %v\n", p.Status, p.AdminStateUp)
	switch {
	case ex.host != nil:
		fmt.Fprintf(tw, "HOST\t%s\tmode %s, tunnel %s, DVR MAC %s, alive %v, applied revision %d\n", ex.host.Host,
			ex.host.Mode, ex.host.TunnelIP, ex.host.MACAddress, ex.host.Alive, ex.host.AppliedRevision)
	case p.HostID != "":
		fmt.Fprintf(tw, "HOST\t%s\t(not registered)\n", p.HostID)
	default:
		fmt.Fprintf(tw, "HOST\t-\tunbound\n")
	}
	fmt.Fprintf(tw, "NETWORK\t%s\t%s, %s %s, mtu %d, external %v\n", n.ID, orDash(n.Name), n.NetworkType, orDash(segment(n)), n.MTU, n.External)
	for _, s := range ex.subnets {
		fmt.Fprintf(tw, "SUBNET\t%s\t%s %s, gateway %s\n", s.ID, orDash(s.Name), s.CIDR, orDash(deref(s.GatewayIP)))
	}
	for _, r := range ex.routers {
		fmt.Fprintf(tw, "ROUTER\t%s\t%s, distributed %v, gateway %s\n", r.ID, orDash(r.Name), r.Distributed, orDash(gatewayText(r.Gateway)))
	}
	for _, f := range ex.fips {
		fmt.Fprintf(tw, "FLOATING IP\t%s\t%s -> %s, router %s, %s\n", f.ID, f.FloatingIPAddress, orDash(deref(f.FixedIPAddress)),
			orDash(deref(f.RouterID)), f.Status)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	b.WriteString("\nFLOWS (mentioning its MAC, IPs or device)\n")
	if len(ex.Flows) == 0 {
		b.WriteString("  none\n")
	}
	for _, sf := range ex.Flows {
		var fb strings.Builder
		if err := writeFlows(&fb, sf, sf.Flows); err != nil {
			return err
		}
		b.WriteString(fb.String())
	}
	b.WriteString("\nNAMESPACES (of its routers and network, by host)\n")
	if len(ex.Namespaces) == 0 {
		b.WriteString("  none\n")
	}
	for _, hn := range ex.Namespaces {
		writeNamespace(&b, "  ", hn.Host+": "+hn.Namespace.Name, hn.Namespace)
	}
	for _, note := range ex.Notes {
		b.WriteString("\nnote: " + note + "\n")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
