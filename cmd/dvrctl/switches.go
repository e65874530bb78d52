package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/switchapi"
)

// line is the flow as ?format=text shows it: drifted flows prefixed MISSING / EXTRA.
func flowLine(f switchapi.Flow) string {
	switch f.State {
	case switchapi.StateMissing:
		return "MISSING " + f.Text
	case switchapi.StateExtra:
		return "EXTRA " + f.Text
	}
	return f.Text
}

// dpidString is the API's form of a datapath ID written any way ofproto.ParseDPID takes.
func dpidString(s string) (string, error) {
	d, err := ofproto.ParseDPID(s)
	return d.String(), err
}

func listSwitches(ctx context.Context, cl *client) ([]switchapi.Switch, json.RawMessage, error) {
	var out switchapi.List
	raw, err := cl.getInto(ctx, "/v2.0/dvr-switches", nil, &out)
	if err != nil {
		return nil, nil, err
	}
	return out.Switches, raw, nil
}

func runSwitches(ctx context.Context, c *cli, args []string) error {
	if _, err := c.parse("switches", "", args, 0, 0, nil); err != nil {
		return err
	}
	sws, raw, err := listSwitches(ctx, c.client())
	if err != nil {
		return err
	}
	if c.json() {
		return writeJSON(c.stdout, raw)
	}
	var rows [][]string
	for _, s := range sws {
		rows = append(rows, []string{s.DPID, s.Host, s.Bridge, s.Role, s.Master, s.Address,
			strconv.FormatFloat(s.UptimeSeconds, 'f', 0, 64) + "s",
			fmt.Sprintf("%d/%d", s.FlowsInstalled, s.FlowsDesired), fmt.Sprint(s.FlowsMissing), fmt.Sprint(s.FlowsExtra),
			strconv.FormatFloat(s.LastReconcileMS, 'f', 1, 64), strconv.FormatFloat(s.PacketInsPerSecond, 'f', 1, 64),
			fmt.Sprint(s.Errors)})
	}
	return table(c.stdout, []string{"DPID", "HOST", "BRIDGE", "ROLE", "MASTER", "ADDRESS", "UPTIME", "FLOWS", "MISSING", "EXTRA",
		"RECONCILE_MS", "PKTIN/S", "ERRORS"}, rows)
}

// bridgeDPID returns the datapath ID host registered for bridge.
func bridgeDPID(ctx context.Context, cl *client, hostName, bridge string) (string, error) {
	var out struct {
		Host host `json:"dvr_host"`
	}
	if _, err := cl.getInto(ctx, "/v2.0/dvr-hosts/"+url.PathEscape(hostName), nil, &out); err != nil {
		return "", err
	}
	d, ok := out.Host.Bridges[bridge]
	if !ok {
		return "", fmt.Errorf("host %s registered no bridge %s (it has: %s)", hostName, bridge,
			orDash(strings.Join(sortedKeys(out.Host.Bridges), ", ")))
	}
	dpid, err := dpidString(d)
	if err != nil {
		return "", fmt.Errorf("host %s bridge %s: %w", hostName, bridge, err)
	}
	return dpid, nil
}

func getFlows(ctx context.Context, cl *client, dpid string) (switchapi.Flows, json.RawMessage, error) {
	var out switchapi.Flows
	raw, err := cl.getInto(ctx, "/v2.0/dvr-switches/"+dpid+"/flows", nil, &out)
	return out, raw, err
}

func runFlows(ctx context.Context, c *cli, args []string) error {
	pos, err := c.parse("flows", "<host> <bridge> | <dpid>", args, 1, 2, nil)
	if err != nil {
		return err
	}
	cl := c.client()
	var dpid string
	if len(pos) == 2 {
		dpid, err = bridgeDPID(ctx, cl, pos[0], pos[1])
	} else {
		dpid, err = dpidString(pos[0])
	}
	if err != nil {
		return err
	}
	sf, raw, err := getFlows(ctx, cl, dpid)
	if err != nil {
		return err
	}
	if c.json() {
		return writeJSON(c.stdout, raw)
	}
	return writeFlows(c.stdout, sf, sf.Flows)
}

// writeFlows prints a header naming the switch and its drift, then one flow per line.
func writeFlows(w io.Writer, sf switchapi.Flows, flows []switchapi.Flow) error {
	missing, extra := 0, 0
	for _, f := range sf.Flows {
		switch f.State {
		case switchapi.StateMissing:
			missing++
		case switchapi.StateExtra:
			extra++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s %s dpid %s: %d flows, %d missing, %d extra\n", orDash(sf.Host), orDash(sf.Bridge), sf.DPID,
		len(sf.Flows), missing, extra)
	for _, f := range flows {
		b.WriteString(flowLine(f))
		b.WriteByte('\n')
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
