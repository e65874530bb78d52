//go:build integration

package integration

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/mastership"
	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/testbed/bed"
	"github.com/dvrflow/dvrflow/testbed/scenario"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

// defaultLease is dvrflowd's default --lease, which the bed's controllers run with.
var defaultLease = mastership.DefaultConfig().Lease

// ctlIndex returns the index in Ctrls of controller id ("ctl2" -> 1).
func ctlIndex(t testing.TB, id string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimPrefix(id, "ctl"))
	if err != nil || n < 1 {
		t.Fatalf("controller id %q: not one of the bed's", id)
	}
	return n - 1
}

// waitMasters waits until every registered host has a master among live (the one Pick
// names) and returns host -> controller.
func waitMasters(t testing.TB, st *db.Store, live []string, timeout time.Duration) map[string]string {
	t.Helper()
	var out map[string]string
	waitFor(t, fmt.Sprintf("every host mastered by the controller Pick names among %v", live), timeout, func() (bool, string) {
		hms, err := st.HostMasters(context.Background())
		if err != nil {
			return false, err.Error()
		}
		out = map[string]string{}
		for _, hm := range hms {
			if want := mastership.Pick(hm.Host, live); hm.Controller != want {
				return false, fmt.Sprintf("host %s: master %q, want %q", hm.Host, hm.Controller, want)
			}
			out[hm.Host] = hm.Controller
		}
		return len(out) > 0, "no host"
	})
	return out
}

// flowModsSent sums dvrflow_flow_mods_total of a controller's /metrics.
func flowModsSent(ctx context.Context, t testing.TB, api string) float64 {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", dvrToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("metrics of %s: %v", api, err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, "dvrflow_flow_mods_total{") {
			continue
		}
		v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", l, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sum
}

// Three dvrflowd against one PostgreSQL on the seed bed. SIGKILL the master of compute1
// under pings at 10/s east-west, to a floating IP and through SNAT: none is lost, its
// hosts get a new master within a lease and a renewal, and the survivors send no flow-mod
// (every switch held its flows: the new master dumps and finds them). Back, it gets its
// share again, and still nobody sends a flow-mod. Killed again, a port created on
// compute1 at that moment answers ping within the lease plus a second.
func TestControllersFailover(t *testing.T) {
	d := newDVRBedControllers(t, "", 3)
	ctx := context.Background()
	st, err := db.Open(ctx, d.dsn, db.DefaultConfig(), zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	all := []string{"ctl1", "ctl2", "ctl3"}
	const converge = 30 * time.Second
	masters := waitMasters(t, st, all, 10*time.Second)
	t.Logf("masters: %v", masters)

	fip := d.topo.FloatingIPs["VM1"].FloatingIP
	pings := []struct{ name, from, ns, dst string }{
		{"east-west VM1 -> VM2", "VM1", d.vms["VM1"], "10.0.2.5"},
		{"internet -> VM1's floating IP", scenario.Internet, d.b.TargetNetns(), fip},
		{"SNAT VM4 -> internet", "VM4", d.vms["VM4"], bed.TargetIP},
	}
	for _, p := range pings {
		d.pingUntil(t, p.ns, p.dst, converge)
	}
	var runs []*bed.PingRun
	for _, p := range pings {
		r, err := d.b.StartPing(ctx, p.ns, p.dst, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	time.Sleep(2 * time.Second)

	victim := masters["compute1"]
	vi := ctlIndex(t, victim)
	var survivors []string
	before := map[string]float64{}
	for _, id := range all {
		if id != victim {
			survivors = append(survivors, id)
			before[id] = flowModsSent(ctx, t, d.s.APIs[ctlIndex(t, id)])
		}
	}
	killed := time.Now()
	d.s.Ctrls[vi].Kill()
	after := waitMasters(t, st, survivors, 10*time.Second)
	failover := time.Since(killed)
	t.Logf("SIGKILL %s (master of compute1): every host mastered by %v after %v: %v", victim, survivors, failover, after)
	if limit := defaultLease + time.Second; failover > limit {
		t.Errorf("failover took %v, want under %v", failover, limit)
	}
	time.Sleep(3 * time.Second) // the new masters dump and reconcile; pings go on
	for i, r := range runs {
		res, err := r.Stop()
		if err != nil {
			t.Fatalf("%s: %v", pings[i].name, err)
		}
		t.Logf("%s across the failover: %d/%d", pings[i].name, res.Received, res.Sent)
		if res.Lost() != 0 || res.Sent < 40 {
			t.Errorf("%s: %d of %d pings lost across the failover", pings[i].name, res.Lost(), res.Sent)
		}
	}
	for _, id := range survivors {
		if n := flowModsSent(ctx, t, d.s.APIs[ctlIndex(t, id)]) - before[id]; n != 0 {
			t.Errorf("%s sent %v flow-mods taking over switches that held their flows", id, n)
		}
	}

	// Back: its share returns to it, and nobody sends a flow-mod.
	for _, id := range survivors {
		before[id] = flowModsSent(ctx, t, d.s.APIs[ctlIndex(t, id)])
	}
	if err := d.s.Ctrls[vi].Start(); err != nil {
		t.Fatal(err)
	}
	if err := d.s.WaitAPIOf(ctx, vi); err != nil {
		t.Fatal(err)
	}
	masters = waitMasters(t, st, all, 10*time.Second)
	time.Sleep(3 * time.Second)
	for _, id := range all {
		n := flowModsSent(ctx, t, d.s.APIs[ctlIndex(t, id)]) - before[id]
		if n != 0 {
			t.Errorf("%s sent %v flow-mods when %s came back", id, n, victim)
		}
	}
	d.pingUntil(t, "VM1", "10.0.2.5", converge)

	// Killed again, with a port created on compute1 at once, through a survivor's API.
	victim = masters["compute1"]
	vi = ctlIndex(t, victim)
	api := d.s.APIs[(vi+1)%3]
	c := seed.NewClient(api, dvrToken)
	vm1 := d.topo.VMs["VM1"]
	killed = time.Now()
	d.s.Ctrls[vi].Kill()
	p, err := ports.Create(ctx, c, portsbinding.CreateOptsExt{
		CreateOptsBuilder: ports.CreateOpts{NetworkID: d.topo.Net1.ID, Name: "vm-failover", ProjectID: "demo",
			DeviceOwner: "compute:nova", DeviceID: "vm-failover", SecurityGroups: &vm1.SecurityGroups,
			FixedIPs: []ports.IP{{SubnetID: d.topo.Subnet1.ID, IPAddress: "10.0.1.30"}}},
		HostID: "compute1",
	}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	ns, err := d.b.AddVM(ctx, "compute1", "vmfo", p.ID, p.MACAddress, "10.0.1.30/24", "10.0.1.1")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns,
		"ping", "-n", "-q", "-i", "0.05", "-c", "1", "-w", "15", "10.0.2.5").CombinedOutput()
	first := time.Since(killed)
	if err != nil {
		t.Fatalf("the port created during the failover never answered: %v\n%s", err, out)
	}
	t.Logf("SIGKILL %s (master of compute1) and a new port on compute1 at once: its first routed reply %v after the kill", victim, first)
	if limit := defaultLease + time.Second; first > limit {
		t.Errorf("first reply %v after the kill, want within the lease and a second (%v)", first, limit)
	}
}
