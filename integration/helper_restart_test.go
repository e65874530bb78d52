//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/testbed/bed"
	"github.com/dvrflow/dvrflow/testbed/scenario"
)

// helperLog is what one host helper's log says after offset: the plans it applied and
// the kernel changes hostnet reported.
type helperLog struct {
	applied []int // changes of each "plan applied" line
	changes []string
}

func readHelperLog(p *scenario.Process, offset int) helperLog {
	var out helperLog
	log := p.Log()
	if offset > len(log) {
		offset = len(log)
	}
	for _, l := range strings.Split(log[offset:], "\n") {
		var e struct {
			Msg     string `json:"msg"`
			What    string `json:"what"`
			Changes int    `json:"changes"`
		}
		if json.Unmarshal([]byte(l), &e) != nil {
			continue
		}
		switch e.Msg {
		case "plan applied":
			out.applied = append(out.applied, e.Changes)
		case "changed":
			out.changes = append(out.changes, e.What)
		}
	}
	return out
}

// restartHelper SIGKILLs the helper of host, waits down, starts it again as the bed
// does and waits until it has applied its plan. It returns the log offset at the kill.
func restartHelper(t *testing.T, d *dvrBed, host string, down time.Duration, whileDown func()) int {
	t.Helper()
	p := d.s.Helpers[host]
	offset := len(p.Log())
	p.Kill()
	if whileDown != nil {
		whileDown()
	}
	time.Sleep(down)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the restarted helper of "+host+" applying its plan", 30*time.Second, func() (bool, string) {
		return len(readHelperLog(p, offset).applied) > 0, p.LogTail(5)
	})
	return offset
}

// testHelperRestart: the host helper of each host kind, SIGKILLed and started again,
// disturbs nothing (its namespaces outlive it, it adopts them as they are), and a plan
// that changed while it was down is realized once it is back.
func testHelperRestart(t *testing.T, d *dvrBed, converge time.Duration) {
	ctx := context.Background()
	flows := []struct{ name, from, to string }{
		{"VM1->VM2 routed E-W", "VM1", "10.0.2.5"},
		{"VM2->VM1 routed E-W", "VM2", "10.0.1.5"},
		{"internet->VM1 floating IP", d.b.InternetNetns(), "172.24.4.5"},
		{"VM4->internet SNAT", "VM4", bed.TargetIP},
	}
	for _, f := range flows {
		d.pingUntil(t, f.from, f.to, converge)
	}
	runs := make([]*bed.PingRun, len(flows))
	for i, f := range flows {
		ns := f.from
		if vm, ok := d.vms[f.from]; ok {
			ns = vm
		}
		r, err := d.b.StartPing(ctx, ns, f.to, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		runs[i] = r
	}
	time.Sleep(time.Second)
	offsets := map[string]int{}
	for _, h := range []string{"compute2", "network", "compute1"} { // dvr, dvr_snat, dvr with the fip namespace
		offsets[h] = restartHelper(t, d, h, time.Second, nil)
		time.Sleep(time.Second)
	}
	for i, r := range runs {
		res, err := r.Stop()
		if err != nil {
			t.Fatalf("%s: %v", flows[i].name, err)
		}
		t.Logf("%s across the three helper restarts: %d/%d", flows[i].name, res.Received, res.Sent)
		if res.Lost() != 0 || res.Sent < 50 {
			t.Errorf("%s: %d of %d pings lost across the helper restarts", flows[i].name, res.Lost(), res.Sent)
		}
	}
	for h, off := range offsets {
		l := readHelperLog(d.s.Helpers[h], off)
		if len(l.changes) != 0 {
			t.Errorf("the restarted helper of %s changed the kernel although nothing changed:\n%s", h, strings.Join(l.changes, "\n"))
		}
		t.Logf("%s: restarted helper applied %d plan(s), changes %v", h, len(l.applied), l.applied)
	}

	// The plan changes while the helper is down: VM2 gets a floating IP, which needs a
	// fip namespace and NAT on compute2. Once the helper is back, it is realized. (VM2
	// joins the seed's "public" group too, so that ICMP from the internet is let in.)
	c := seed.NewClient(d.api, dvrToken)
	var fip *floatingips.FloatingIP
	restartHelper(t, d, "compute2", time.Second, func() {
		groups := []string{d.topo.DefaultGroup.ID, d.topo.PublicGroup.ID}
		if _, err := ports.Update(ctx, c, d.topo.VMs["VM2"].ID, ports.UpdateOpts{SecurityGroups: &groups}).Extract(); err != nil {
			t.Fatal(err)
		}
		var err error
		fip, err = floatingips.Create(ctx, c, floatingips.CreateOpts{FloatingNetworkID: d.topo.External.ID,
			PortID: d.topo.VMs["VM2"].ID, ProjectID: "demo"}).Extract()
		if err != nil {
			t.Fatal(err)
		}
	})
	defer func() {
		if err := floatingips.Delete(ctx, c, fip.ID).ExtractErr(); err != nil {
			t.Errorf("delete floating IP %s: %v", fip.FloatingIP, err)
		}
	}()
	d.pingUntil(t, d.b.InternetNetns(), fip.FloatingIP, converge)
	out, err := d.b.Exec(ctx, "", "ip", "netns", "exec", d.b.Host("compute2").Netns+"-fip-"+d.topo.External.ID, "ip", "-br", "link")
	if err != nil {
		t.Fatalf("the fip namespace planned while the helper was down, entered from the root namespace: %v\n%s", err, out)
	}
	t.Logf("VM2's floating IP %s, planned while compute2's helper was down, answers; %s", fip.FloatingIP,
		fmt.Sprint(len(strings.Split(strings.TrimSpace(out), "\n")), " links in compute2's fip namespace"))
}
