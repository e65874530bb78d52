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
)

// switchInfo is one entry of GET /v2.0/dvr-switches.
type switchInfo struct {
	DPID               string  `json:"dpid"`
	Host               string  `json:"host"`
	Bridge             string  `json:"bridge"`
	Address            string  `json:"address"`
	Role               string  `json:"role"`
	ConnectedAt        string  `json:"connected_at"`
	UptimeSeconds      float64 `json:"uptime_seconds"`
	FlowsInstalled     int     `json:"flows_installed"`
	FlowsDesired       int     `json:"flows_desired"`
	FlowsMissing       int     `json:"flows_missing"`
	FlowsExtra         int     `json:"flows_extra"`
	LastReconcileAt    string  `json:"last_reconcile_at"`
	LastReconcileMS    float64 `json:"last_reconcile_ms"`
	PacketInsPerSecond float64 `json:"packet_ins_per_second"`
	Errors             uint64  `json:"errors"`
}

// switchFlows is GET /v2.0/dvr-switches/{dpid}/flows.
type switchFlows struct {
	DPID   string `json:"dpid"`
	Host   string `json:"host"`
	Bridge string `json:"bridge"`
	Flows  []flow `json:"flows"`
}

type flow struct {
	Table     int    `json:"table"`
	TableName string `json:"table_name"`
	Priority  int    `json:"priority"`
	Cookie    string `json:"cookie"`
	Text      string `json:"text"`
	State     string `json:"state"` // ok, missing, extra
}

// Flow states of the switch API.
const (
	stateOK      = "ok"
	stateMissing = "missing"
	stateExtra   = "extra"
)

// line is the flow as ?format=text shows it: drifted flows prefixed MISSING / EXTRA.
func (f flow) line() string {
	switch f.State {
	case stateMissing:
		return "MISSING " + f.Text
	case stateExtra:
		return "EXTRA " + f.Text
	}
	return f.Text
}

// dpidString is the API's form of a datapath ID written any way ofproto.ParseDPID takes.
func dpidString(s string) (string, error) {
	d, err := ofproto.ParseDPID(s)
	return d.String(), err
}

func listSwitches(ctx context.Context, cl *client) ([]switchInfo, json.RawMessage, error) {
	var out struct {
		Switches []switchInfo `json:"dvr_switches"`
	}
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
		rows = append(rows, []string{s.DPID, s.Host, s.Bridge, s.Role, s.Address,
			strconv.FormatFloat(s.UptimeSeconds, 'f', 0, 64) + "s",
			fmt.Sprintf("%d/%d", s.FlowsInstalled, s.FlowsDesired), fmt.Sprint(s.FlowsMissing), fmt.Sprint(s.FlowsExtra),
			strconv.FormatFloat(s.LastReconcileMS, 'f', 1, 64), strconv.FormatFloat(s.PacketInsPerSecond, 'f', 1, 64),
			fmt.Sprint(s.Errors)})
	}
	return table(c.stdout, []string{"DPID", "HOST", "BRIDGE", "ROLE", "ADDRESS", "UPTIME", "FLOWS", "MISSING", "EXTRA",
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

func getFlows(ctx context.Context, cl *client, dpid string) (switchFlows, json.RawMessage, error) {
	var out switchFlows
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
func writeFlows(w io.Writer, sf switchFlows, flows []flow) error {
	missing, extra := 0, 0
	for _, f := range sf.Flows {
		switch f.State {
		case stateMissing:
			missing++
		case stateExtra:
			extra++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# %s %s dpid %s: %d flows, %d missing, %d extra\n", orDash(sf.Host), orDash(sf.Bridge), sf.DPID,
		len(sf.Flows), missing, extra)
	for _, f := range flows {
		b.WriteString(f.line())
		b.WriteByte('\n')
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}
