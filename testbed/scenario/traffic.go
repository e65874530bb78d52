package scenario

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dvrflow/dvrflow/testbed/bed"
)

// Internet names the bed's internet target (bed.TargetIP) as the source of a Check.
const Internet = "internet"

// Check is one traffic check of the seed scenario: pings From (a VM name or Internet)
// to To must all be answered and, when SeenAs is set, the internet target must see them
// come from SeenAs (the floating IP, or the router's SNAT address).
type Check struct {
	Name   string // short: "east-west routed"
	What   string // one line saying what the packets go through
	From   string // VM name (VM1...) or Internet
	To     string // destination IPv4 address
	SeenAs string // source address the target must see ("" for no capture)
}

// Checks are the seed scenario's traffic checks: east-west routed by DVR and on one
// network across hosts, a floating IP both ways, and SNAT through the network node.
func (s *Scenario) Checks() []Check {
	fip := ""
	if f, ok := s.Topo.FloatingIPs["VM1"]; ok {
		fip = f.FloatingIP
	}
	return []Check{
		{Name: "east-west, routed by DVR", From: "VM1", To: "10.0.2.5",
			What: "VM1 10.0.1.5 (net1, compute1) -> VM2 10.0.2.5 (net2, compute2): routed by R1 on compute1, across the VXLAN tunnel"},
		{Name: "east-west, same network", From: "VM1", To: "10.0.1.6",
			What: "VM1 10.0.1.5 (net1, compute1) -> VM4 10.0.1.6 (net1, compute2): switched across the VXLAN tunnel"},
		{Name: "floating IP, inbound", From: Internet, To: fip,
			What: fmt.Sprintf("internet %s -> %s, VM1's floating IP: DNAT in compute1's qrouter, no network node", bed.TargetIP, fip)},
		{Name: "floating IP, outbound", From: "VM1", To: bed.TargetIP, SeenAs: fip,
			What: fmt.Sprintf("VM1 10.0.1.5 -> internet %s: leaves compute1 through its fip namespace as %s", bed.TargetIP, fip)},
		{Name: "SNAT", From: "VM4", To: bed.TargetIP, SeenAs: s.GatewayIP(),
			What: fmt.Sprintf("VM4 10.0.1.6 (no floating IP) -> internet %s: through the network node's snat namespace as %s",
				bed.TargetIP, s.GatewayIP())},
	}
}

// Netns is the namespace of a check's source: a VM's, the internet target's for
// Internet, or from itself when it is already a namespace name.
func (s *Scenario) Netns(from string) string {
	if from == Internet {
		return s.Bed.TargetNetns()
	}
	if ns, ok := s.VMs[from]; ok {
		return ns
	}
	return from
}

// CheckResult is what Run saw.
type CheckResult struct {
	Check
	Converged time.Duration  // until the first reply
	Ping      bed.PingResult // the counted pings after that; Output is ping's own
	Seen      []string       // the target's capture lines with SeenAs as source
}

// Run waits up to timeout for the first reply of c, then sends count pings that must all
// be answered, capturing at the target when c.SeenAs is set.
func (s *Scenario) Run(ctx context.Context, c Check, count int, timeout time.Duration) (CheckResult, error) {
	res := CheckResult{Check: c}
	if c.To == "" {
		return res, fmt.Errorf("scenario: check %q: no destination", c.Name)
	}
	ns := s.Netns(c.From)
	start := time.Now()
	if err := s.waitFirstReply(ctx, ns, c.From, c.To, timeout); err != nil {
		return res, err
	}
	res.Converged = time.Since(start)
	var capture *bed.CaptureRun
	if c.SeenAs != "" {
		var err error
		if capture, err = s.Bed.Capture(ctx, s.Bed.TargetNetns(), "eth0", "icmp"); err != nil {
			return res, fmt.Errorf("scenario: check %q: %w", c.Name, err)
		}
	}
	r, err := s.Bed.Ping(ctx, ns, c.To, count, time.Duration(count)*time.Second+5*time.Second)
	res.Ping = r
	if capture != nil {
		lines, cerr := capture.Stop(ctx)
		if cerr != nil && err == nil {
			err = cerr
		}
		for _, l := range lines {
			if strings.Contains(l, c.SeenAs+" > "+c.To) {
				res.Seen = append(res.Seen, l)
			}
		}
	}
	if err != nil {
		return res, fmt.Errorf("scenario: check %q: %w", c.Name, err)
	}
	if r.Lost() != 0 {
		return res, fmt.Errorf("scenario: check %q: %d of %d pings lost after convergence:\n%s", c.Name, r.Lost(), r.Sent, r.Output)
	}
	if c.SeenAs != "" && len(res.Seen) == 0 {
		return res, fmt.Errorf("scenario: check %q: the internet target never saw packets from %s", c.Name, c.SeenAs)
	}
	return res, nil
}

// PingUntil waits up to timeout until one ping from namespace (or VM name) from reaches
// dst, then sends count more that must all be answered.
func (s *Scenario) PingUntil(ctx context.Context, from, dst string, count int, timeout time.Duration) (bed.PingResult, error) {
	ns := s.Netns(from)
	if err := s.waitFirstReply(ctx, ns, from, dst, timeout); err != nil {
		return bed.PingResult{}, err
	}
	r, err := s.Bed.Ping(ctx, ns, dst, count, time.Duration(count)*time.Second+5*time.Second)
	if err != nil {
		return r, fmt.Errorf("scenario: %s -> %s: %w", from, dst, err)
	}
	if r.Lost() != 0 {
		return r, fmt.Errorf("scenario: %s -> %s: %d of %d pings lost after convergence:\n%s", from, dst, r.Lost(), r.Sent, r.Output)
	}
	return r, nil
}

func (s *Scenario) waitFirstReply(ctx context.Context, ns, from, dst string, timeout time.Duration) error {
	return s.waitFor(ctx, fmt.Sprintf("a first reply %s -> %s", from, dst), timeout, func() (bool, string, error) {
		r, err := s.Bed.Ping(ctx, ns, dst, 1, 2*time.Second)
		if err != nil { // e.g. no route yet: ping printed no summary
			return false, err.Error(), nil
		}
		return r.Received == 1, lastLine(r.Output), nil
	})
}

func lastLine(out string) string {
	lines := slices.DeleteFunc(strings.Split(out, "\n"), func(l string) bool { return strings.TrimSpace(l) == "" })
	if len(lines) == 0 {
		return ""
	}
	return strings.TrimSpace(lines[len(lines)-1])
}
