package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"runtime/debug"
	"strings"

	"github.com/dvrflow/dvrflow/plan"
)

// getPlan returns host's current plan (no waiting beyond one second for a first one).
func getPlan(ctx context.Context, cl *client, hostName string) (plan.Plan, json.RawMessage, error) {
	var out struct {
		Plan plan.Plan `json:"plan"`
	}
	raw, err := cl.getInto(ctx, "/v2.0/dvr-hosts/"+url.PathEscape(hostName)+"/plan",
		url.Values{"after_revision": {"-1"}, "timeout": {"1"}}, &out)
	if errors.Is(err, errNotModified) {
		return plan.Plan{}, nil, fmt.Errorf("host %s: the controller has computed no plan for it yet", hostName)
	}
	if err != nil {
		return plan.Plan{}, nil, err
	}
	return out.Plan, raw, nil
}

func runPlan(ctx context.Context, c *cli, args []string) error {
	pos, err := c.parse("plan", "<host>", args, 1, 1, nil)
	if err != nil {
		return err
	}
	p, raw, err := getPlan(ctx, c.client(), pos[0])
	if err != nil {
		return err
	}
	if c.json() {
		return writeJSON(c.stdout, raw)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# host %s, plan revision %d, %d namespaces\n", p.Host, p.Revision, len(p.Namespaces))
	for _, ns := range p.Namespaces {
		writeNamespace(&b, "", ns.Name, ns)
	}
	if _, err := io.WriteString(c.stdout, b.String()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// writeNamespace renders one namespace of a plan under title, as `ip` would list its parts.
func writeNamespace(b *strings.Builder, indent, title string, ns plan.Namespace) {
	fmt.Fprintf(b, "%s%s\n", indent, title)
	in := indent + "  "
	for _, l := range ns.Links {
		where := ""
		switch {
		case l.Bridge != "":
			where = "on " + l.Bridge + " iface-id " + l.IfaceID
		case l.PeerName != "":
			where = "peer " + l.PeerNamespace + "/" + l.PeerName
		}
		fmt.Fprintf(b, "%slink  %s %s %s %s\n", in, l.Name, l.MAC, strings.Join(l.Addresses, ","), where)
	}
	for _, r := range ns.Routes {
		s := r.Dst
		if r.Via != "" {
			s += " via " + r.Via
		}
		s += " dev " + r.Dev
		if r.Table != 0 {
			s += fmt.Sprintf(" table %d", r.Table)
		}
		fmt.Fprintf(b, "%sroute %s\n", in, s)
	}
	for _, r := range ns.Rules {
		s := fmt.Sprintf("%d:", r.Priority)
		if r.From != "" {
			s += " from " + r.From
		} else {
			s += " from all"
		}
		if r.IIF != "" {
			s += " iif " + r.IIF
		}
		fmt.Fprintf(b, "%srule  %s lookup %d\n", in, s, r.Table)
	}
	for _, n := range ns.Neighbors {
		fmt.Fprintf(b, "%sneigh %s lladdr %s dev %s permanent\n", in, n.IP, n.MAC, n.Dev)
	}
	for _, n := range ns.NAT {
		var m []string
		for _, kv := range [][2]string{{"saddr", n.Match.Saddr}, {"daddr", n.Match.Daddr}, {"iif", n.Match.IIF}, {"oif", n.Match.OIF}} {
			if kv[1] != "" {
				m = append(m, kv[0]+" "+kv[1])
			}
		}
		fmt.Fprintf(b, "%snat   %s %s to %s\n", in, n.Kind, strings.Join(m, " "), n.To)
	}
}

func runVersion(ctx context.Context, c *cli, args []string) error {
	if _, err := c.parse("version", "", args, 0, 0, nil); err != nil {
		return err
	}
	ver, rev := "(devel)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			ver = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	var out struct {
		Versions []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"versions"`
	}
	if _, err := c.client().getInto(ctx, "/", nil, &out); err != nil {
		return fmt.Errorf("dvrctl %s: %w", ver, err)
	}
	if c.json() {
		return writeJSON(c.stdout, map[string]any{"dvrctl": map[string]string{"version": ver, "revision": rev},
			"api": map[string]any{"url": c.opts.api, "versions": out.Versions}})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "dvrctl %s", ver)
	if rev != "" {
		fmt.Fprintf(&b, " (%s)", rev)
	}
	fmt.Fprintf(&b, "\napi %s:", c.opts.api)
	for _, v := range out.Versions {
		fmt.Fprintf(&b, " %s %s", v.ID, v.Status)
	}
	b.WriteByte('\n')
	if _, err := io.WriteString(c.stdout, b.String()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
