//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
// hosts get a new master within half a lease (its lease keeper releases the lease when the
// controller dies, not waiting for it to expire), and the survivors send no flow-mod
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
	if limit := defaultLease / 2; failover > limit {
		t.Errorf("failover took %v, want under %v: the killed controller's keeper releases its lease", failover, limit)
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

// cutAddr is the loopback address the partitioned controller reaches PostgreSQL by: nft
// translates it to the database's own address, and drops it to cut that controller off.
const cutAddr = "127.0.0.3"

// pgCut is an nftables table that gives one controller its own way to the database
// (cutAddr, translated to the real address) and can drop it.
type pgCut struct {
	table, port string
}

func newPGCut(t testing.TB, dsn string) (*pgCut, string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	c := &pgCut{table: fmt.Sprintf("dvrflow_cut_%d", os.Getpid()), port: u.Port()}
	rules := fmt.Sprintf(`table ip %s {
	chain nat { type nat hook output priority -100; ip daddr %s tcp dport %s dnat to %s:%s; }
	chain cut { type filter hook output priority -200; }
}`, c.table, cutAddr, c.port, u.Hostname(), c.port)
	c.nft(t, rules)
	t.Cleanup(func() { c.nft(t, "delete table ip "+c.table) })
	u.Host = cutAddr + ":" + c.port
	return c, u.String()
}

func (c *pgCut) nft(t testing.TB, script string) {
	t.Helper()
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s\n%s", err, script, out)
	}
}

// cut drops every packet to the database by cutAddr (the controller's open connections
// hang, new ones time out); heal takes the rule away.
func (c *pgCut) cut(t testing.TB) {
	c.nft(t, fmt.Sprintf("add rule ip %s cut ip daddr %s tcp dport %s drop", c.table, cutAddr, c.port))
}

func (c *pgCut) heal(t testing.TB) { c.nft(t, "flush chain ip "+c.table+" cut") }

// ovsWrites is OVS's own record of the OpenFlow messages of one host's ovs-vswitchd
// (module vconn at debug level): per controller connection, the role replies it was
// sent and the flow-mods it received, in order.
type ovsEvent struct {
	target string // tcp:IP:port
	role   string // master or slave, for a role reply; "" for a flow-mod
	gen    uint64
	stale  bool // a role request refused as stale
}

var (
	vconnRE = regexp.MustCompile(`vconn\|DBG\|(tcp:[0-9.]+:[0-9]+): (received|sent \(Success\)): (OFPT_\w+)`)
	roleRE  = regexp.MustCompile(`role=(\w+) generation_id=(\d+)`)
)

func ovsEvents(log string) []ovsEvent {
	var out []ovsEvent
	for _, l := range strings.Split(log, "\n") {
		m := vconnRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		switch {
		case m[2] == "received" && m[3] == "OFPT_FLOW_MOD":
			out = append(out, ovsEvent{target: m[1]})
		case m[2] != "received" && m[3] == "OFPT_ROLE_REPLY":
			if r := roleRE.FindStringSubmatch(l); r != nil {
				gen, _ := strconv.ParseUint(r[2], 10, 64)
				role := r[1]
				switch role { // OVS 3.x prints OpenFlow's roles by their newer names
				case "primary":
					role = "master"
				case "secondary":
					role = "slave"
				}
				out = append(out, ovsEvent{target: m[1], role: role, gen: gen})
			}
		case m[2] != "received" && m[3] == "OFPT_ERROR" && strings.Contains(l, "STALE"):
			out = append(out, ovsEvent{target: m[1], stale: true})
		}
	}
	return out
}

// logTime returns the time of the first JSON log line after since whose msg is msg.
func logTime(t testing.TB, log, msg string, since time.Time) (time.Time, bool) {
	t.Helper()
	for _, l := range strings.Split(log, "\n") {
		if !strings.Contains(l, `"msg":"`+msg+`"`) {
			continue
		}
		var line struct {
			TS string `json:"ts"`
		}
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			continue
		}
		at, err := time.Parse("2006-01-02T15:04:05.000Z0700", line.TS)
		if err == nil && at.After(since) {
			return at, true
		}
	}
	return time.Time{}, false
}

// A controller cut off from PostgreSQL (nftables drops its packets) stops mastering its
// switches by its own deadline, before the database lets another claim them. OVS's own
// record of the OpenFlow messages (vconn at debug level) shows every flow-mod coming from
// the master of its term, master terms only growing, one controller per term, and no
// write refused. Pings do not notice. Healed, it renews and takes its share back in new
// terms.
func TestControllerPartition(t *testing.T) {
	all := []string{"ctl1", "ctl2", "ctl3"}
	victim := mastership.Pick("compute1", all)
	vi := ctlIndex(t, victim)
	var cut *pgCut
	d := newDVRBedDatabases(t, "", 3, func(dsn string) []string {
		var cutDSN string
		cut, cutDSN = newPGCut(t, dsn)
		urls := make([]string, 3)
		urls[vi] = cutDSN
		return urls
	})
	ctx := context.Background()
	st, err := db.Open(ctx, d.dsn, db.DefaultConfig(), zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const converge = 30 * time.Second
	waitMasters(t, st, all, 10*time.Second)
	termOf := func(host string) (string, int64) {
		hms, err := st.HostMasters(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, hm := range hms {
			if hm.Host == host {
				return hm.Controller, hm.Term
			}
		}
		t.Fatalf("host %s has no mastership row", host)
		return "", 0
	}
	_, oldTerm := termOf("compute1")
	target := map[string]string{} // OpenFlow target -> controller id
	for i, tg := range d.s.OFTargets {
		target[tg] = all[i]
	}

	fip := d.topo.FloatingIPs["VM1"].FloatingIP
	pings := []struct{ name, ns, dst string }{
		{"east-west VM1 -> VM2", d.vms["VM1"], "10.0.2.5"},
		{"internet -> VM1's floating IP", d.b.TargetNetns(), fip},
		{"SNAT VM4 -> internet", d.vms["VM4"], bed.TargetIP},
	}
	var runs []*bed.PingRun
	for _, p := range pings {
		d.pingUntil(t, p.ns, p.dst, converge)
		r, err := d.b.StartPing(ctx, p.ns, p.dst, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r)
	}
	ovs1 := d.b.Host("compute1").OVS
	if _, err := ovs1.Appctl(ctx, "ovs-vswitchd", "vlog/set", "vconn:file:dbg"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)

	cutAt := time.Now()
	cut.cut(t)
	var survivors []string
	for _, id := range all {
		if id != victim {
			survivors = append(survivors, id)
		}
	}
	waitMasters(t, st, survivors, 10*time.Second)
	newMaster, newTerm := termOf("compute1")
	t.Logf("%s cut off from PostgreSQL: compute1 mastered by %s in term %d (was %s, term %d) %v after the cut",
		victim, newMaster, newTerm, victim, oldTerm, time.Since(cutAt))
	if newTerm <= oldTerm {
		t.Errorf("compute1's new term %d is not above %d", newTerm, oldTerm)
	}
	time.Sleep(2 * time.Second)
	cut.heal(t)
	healAt := time.Now()
	masters := waitMasters(t, st, all, 15*time.Second)
	var backMaster string
	var backTerm int64
	waitFor(t, "compute1 claimed in a new term after the return", 5*time.Second, func() (bool, string) {
		backMaster, backTerm = termOf("compute1")
		return backTerm > newTerm, fmt.Sprintf("%s term %d", backMaster, backTerm)
	})
	t.Logf("healed: %s renews; compute1 mastered by %s in term %d %v later (%v)", victim, backMaster, backTerm, time.Since(healAt), masters)
	time.Sleep(2 * time.Second)
	if _, err := ovs1.Appctl(ctx, "ovs-vswitchd", "vlog/set", "vconn:file:info"); err != nil {
		t.Fatal(err)
	}
	logBytes, err := os.ReadFile(filepath.Join(ovs1.Dir(), "ovs-vswitchd.log"))
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range runs {
		res, err := r.Stop()
		if err != nil {
			t.Fatalf("%s: %v", pings[i].name, err)
		}
		t.Logf("%s across the partition and the return: %d/%d", pings[i].name, res.Received, res.Sent)
		if res.Lost() != 0 {
			t.Errorf("%s: %d of %d pings lost", pings[i].name, res.Lost(), res.Sent)
		}
	}

	// The victim stopped before anyone else claimed its hosts.
	stopped, ok := logTime(t, d.s.Ctrls[vi].Log(), "stopped mastering every host", cutAt)
	if !ok {
		t.Fatalf("%s never logged that it stopped mastering", victim)
	}
	claimed, ok := logTime(t, d.s.Ctrls[ctlIndex(t, newMaster)].Log(), "claimed hosts", cutAt)
	if !ok {
		t.Fatalf("%s never logged its claim", newMaster)
	}
	t.Logf("%s stopped %v after the cut; %s claimed %v after the cut", victim, stopped.Sub(cutAt), newMaster, claimed.Sub(cutAt))
	if !stopped.Before(claimed) {
		t.Errorf("%s stopped at %s, after %s claimed at %s", victim, stopped.Format("15:04:05.000"), newMaster, claimed.Format("15:04:05.000"))
	}
	// OVS's own record: every flow-mod came from the connection whose last role reply was
	// master, in a term no other controller was master in; master terms only grew.
	last := map[string]ovsEvent{} // target -> its last role reply
	termOwner := map[uint64]string{}
	var maxGen uint64
	var seq []string
	writes := map[string]int{}
	for _, e := range ovsEvents(string(logBytes)) {
		who := target[e.target]
		switch {
		case e.stale:
			t.Logf("OVS refused a stale role request of %s", who)
		case e.role == "master":
			if o, ok := termOwner[e.gen]; ok && o != who {
				t.Errorf("OVS made %s and %s master in the same term %d", o, who, e.gen)
			}
			if e.gen < maxGen {
				t.Errorf("OVS made %s master in term %d after term %d", who, e.gen, maxGen)
			}
			termOwner[e.gen], maxGen = who, max(maxGen, e.gen)
			if len(seq) == 0 || seq[len(seq)-1] != fmt.Sprintf("%s@%d", who, e.gen) {
				seq = append(seq, fmt.Sprintf("%s@%d", who, e.gen))
			}
			last[e.target] = e
		case e.role != "":
			last[e.target] = e
		default:
			l := last[e.target]
			if l.role != "master" || termOwner[l.gen] != who {
				t.Errorf("OVS received a flow-mod from %s, whose last role was %q (term %d)", who, l.role, l.gen)
			}
			writes[who]++
		}
	}
	t.Logf("OVS's record on compute1: masters in order %v; flow-mods received by controller %v", seq, writes)
	if len(seq) < 2 {
		var sample []string
		for _, l := range strings.Split(string(logBytes), "\n") {
			if strings.Contains(l, "vconn") && len(sample) < 20 {
				sample = append(sample, l)
			}
		}
		t.Errorf("OVS's record shows masters %v: want the new master after the cut, and the victim back; its vconn lines:\n%s",
			seq, strings.Join(sample, "\n"))
	}
	if logs := d.b.Host("compute1").OVS.Logs(); strings.Contains(logs, "IS_SECONDARY") || strings.Contains(logs, "IS_SLAVE") {
		t.Errorf("OVS refused a write from a controller that was not master:\n%s", logs)
	}
}
