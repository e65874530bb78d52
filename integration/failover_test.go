//go:build integration

package integration

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dvrflow/dvrflow/testbed/bed"
)

var icmpSeq = regexp.MustCompile(`icmp_seq=(\d+) `)

// longestGap is the longest run of unanswered pings among the sent ones of ping's output.
func longestGap(r bed.PingResult) int {
	got := map[int]bool{}
	for _, m := range icmpSeq.FindAllStringSubmatch(r.Output, -1) {
		n, _ := strconv.Atoi(m[1])
		got[n] = true
	}
	longest, run := 0, 0
	for seq := 1; seq <= r.Sent; seq++ {
		if got[seq] {
			run = 0
			continue
		}
		run++
		longest = max(longest, run)
	}
	return longest
}

// testSNATFailover adds a second dvr_snat host, network2: R1's snat namespace stays on
// network (scheduling is sticky). Then network dies (its helper SIGKILLed, its underlay
// and external NICs down): once its heartbeat is older than the agent down time the
// router moves to network2 and SNAT traffic from VM4 resumes through it, E-W traffic
// untouched; network back, its stale snat namespace is removed and the router stays on
// network2. Then the same the other way, so later tests find the seed's placement.
// Before: the snat host was a hash over every dvr_snat host, dead or alive, and
// SNAT stayed down with its host.
func testSNATFailover(t *testing.T, d *dvrBed, converge time.Duration) {
	ctx := context.Background()
	nw := d.b.Host("network")
	net24 := nw.TunnelIP[:strings.LastIndex(nw.TunnelIP, ".")]
	nw2, err := d.s.AddHost(ctx, bed.HostConfig{Name: "network2", TunnelIP: net24 + ".4", Mode: "dvr_snat"})
	if err != nil {
		t.Fatal(err)
	}
	snatNS := func(h *bed.Host) string { return h.Netns + "-snat-" + d.topo.Router.ID }
	has := func(ns string) bool {
		out, _ := d.b.Exec(ctx, "", "ip", "netns", "list")
		return strings.Contains(out, ns)
	}
	waitFor(t, "network2 applying its plan", 30*time.Second, func() (bool, string) {
		return len(readHelperLog(d.s.Helpers["network2"], 0).applied) > 0, d.s.Helpers["network2"].LogTail(5)
	})
	time.Sleep(time.Second)
	if !has(snatNS(nw)) || has(snatNS(nw2)) {
		t.Fatalf("a second dvr_snat host moved R1's snat namespace (on network %v, on network2 %v)", has(snatNS(nw)), has(snatNS(nw2)))
	}
	d.pingUntil(t, "VM4", bed.TargetIP, converge)

	fail := func(from, to *bed.Host) {
		t.Helper()
		snat, err := d.b.StartPing(ctx, d.vms["VM4"], bed.TargetIP, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		ew, err := d.b.StartPing(ctx, d.vms["VM1"], "10.0.2.5", 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		p := d.s.Helpers[from.Name]
		p.Kill()
		links := []string{from.UnderlayLink, from.ExternalLink}
		for _, l := range links {
			if out, err := d.b.Exec(ctx, "", "ip", "link", "set", l, "down"); err != nil {
				t.Fatalf("%s down: %v\n%s", l, err, out)
			}
		}
		died := time.Now()
		waitFor(t, "R1's snat namespace on "+to.Name, 30*time.Second, func() (bool, string) {
			return has(snatNS(to)), "not yet"
		})
		moved := time.Since(died)
		time.Sleep(3 * time.Second)
		sr, err := snat.Stop()
		if err != nil {
			t.Fatal(err)
		}
		er, err := ew.Stop()
		if err != nil {
			t.Fatal(err)
		}
		gap := longestGap(sr)
		t.Logf("%s died: snat namespace on %s after %v; VM4->internet SNAT %d/%d, outage %d pings (%v) with agent-down-time %v; VM1->VM2 E-W %d/%d",
			from.Name, to.Name, moved.Round(10*time.Millisecond), sr.Received, sr.Sent, gap,
			time.Duration(gap)*100*time.Millisecond, agentDownTime, er.Received, er.Sent)
		if sr.Lost() != gap {
			t.Errorf("SNAT pings lost outside the one outage: %d lost, longest gap %d", sr.Lost(), gap)
		}
		if outage := time.Duration(gap) * 100 * time.Millisecond; outage > agentDownTime+5*time.Second {
			t.Errorf("SNAT outage %v: want within agent-down-time + 5 s", outage)
		}
		if er.Lost() != 0 {
			t.Errorf("E-W pings lost while %s died: %d of %d", from.Name, er.Lost(), er.Sent)
		}
		// The dead host comes back: its stale snat namespace goes, the router stays.
		for _, l := range links {
			if out, err := d.b.Exec(ctx, "", "ip", "link", "set", l, "up"); err != nil {
				t.Fatalf("%s up: %v\n%s", l, err, out)
			}
		}
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the stale snat namespace on "+from.Name+" removed", 30*time.Second, func() (bool, string) {
			return !has(snatNS(from)), p.LogTail(5)
		})
		if !has(snatNS(to)) {
			t.Fatalf("R1's snat namespace left %s when %s came back", to.Name, from.Name)
		}
		d.pingUntil(t, "VM4", bed.TargetIP, converge)
	}
	fail(nw, nw2)
	fail(nw2, nw)
}
