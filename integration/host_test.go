//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/host/hostnet"
	"github.com/dvrflow/dvrflow/host/ovsdb"
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/testbed/ovsinst"
)

const (
	tRouter = "r1a2b3c4d5e6f"
	tExtNet = "e9f8e7d6c5b4a"
)

// throwawayPlan is a small compute-plus-network-node plan: qrouter with one qr- port
// and a floating IP, the fip namespace, and an snat namespace.
func throwawayPlan(rev int64) plan.Plan {
	qr, fip, snat := "qrouter-"+tRouter, "fip-"+tExtNet, "snat-"+tRouter
	rfp, fpr := "rfp-"+tRouter[:10], "fpr-"+tRouter[:10]
	return plan.Plan{Host: "h1", Revision: rev, Namespaces: []plan.Namespace{
		{
			Name:    qr,
			Sysctls: map[string]string{"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.send_redirects": "0"},
			Links: []plan.Link{
				{Name: "qr-aaaaaaaa-01", Bridge: "br-int", IfaceID: "aaaaaaaa-0001", MAC: "fa:16:3e:00:01:01", MTU: 1450, Addresses: []string{"10.0.1.1/24"}},
				{Name: rfp, PeerNamespace: fip, PeerName: fpr, MAC: "fa:16:3f:aa:00:01", Addresses: []string{"169.254.64.0/31"}},
			},
			Routes: []plan.Route{
				{Dst: "default", Via: "169.254.64.1", Dev: rfp, Table: 16},
				{Dst: "default", Via: "10.0.1.3", Dev: "qr-aaaaaaaa-01", Table: 167772417},
			},
			Rules: []plan.Rule{
				{Priority: 32768, From: "10.0.1.5/32", Table: 16},
				{Priority: 167772417, From: "10.0.1.0/24", Table: 167772417},
			},
			Neighbors: []plan.Neighbor{{IP: "169.254.64.1", MAC: "fa:16:3f:aa:00:02", Dev: rfp}},
			NAT: []plan.NATRule{
				{Kind: plan.NATDNAT, Match: plan.NATMatch{Daddr: "172.24.4.5", IIF: rfp}, To: "10.0.1.5"},
				{Kind: plan.NATSNAT, Match: plan.NATMatch{Saddr: "10.0.1.5", OIF: rfp}, To: "172.24.4.5"},
			},
		},
		{
			Name:    fip,
			Sysctls: map[string]string{"net.ipv4.ip_forward": "1", "net.ipv4.conf.fg-bbbbbbbb-02.proxy_arp": "1"},
			Links: []plan.Link{
				{Name: "fg-bbbbbbbb-02", Bridge: "br-int", IfaceID: "bbbbbbbb-0002", MAC: "fa:16:3e:00:02:01", Addresses: []string{"172.24.4.20/24"}},
				{Name: fpr, PeerNamespace: qr, PeerName: rfp, MAC: "fa:16:3f:aa:00:02", Addresses: []string{"169.254.64.1/31"}},
			},
			Routes: []plan.Route{
				{Dst: "172.24.4.5/32", Via: "169.254.64.0", Dev: fpr},
				{Dst: "default", Via: "172.24.4.1", Dev: "fg-bbbbbbbb-02", Table: 2852012033},
			},
			Rules:     []plan.Rule{{Priority: 2852012033, IIF: fpr, Table: 2852012033}},
			Neighbors: []plan.Neighbor{{IP: "169.254.64.0", MAC: "fa:16:3f:aa:00:01", Dev: fpr}},
		},
		{
			Name: snat,
			Links: []plan.Link{
				{Name: "qg-cccccccc-03", Bridge: "br-int", IfaceID: "cccccccc-0003", MAC: "fa:16:3e:00:03:01", Addresses: []string{"172.24.4.10/24"}},
				{Name: "sg-dddddddd-04", Bridge: "br-int", IfaceID: "dddddddd-0004", MAC: "fa:16:3e:00:04:01", Addresses: []string{"10.0.1.3/24"}},
			},
			Routes: []plan.Route{{Dst: "default", Via: "172.24.4.1", Dev: "qg-cccccccc-03"}},
			NAT:    []plan.NATRule{{Kind: plan.NATSNAT, Match: plan.NATMatch{OIF: "qg-cccccccc-03"}, To: "172.24.4.10"}},
		},
	}}
}

func ipn(t *testing.T, ns string, args ...string) string {
	t.Helper()
	return run(t, append([]string{"ip", "-n", ns}, args...)...)
}

func mustContain(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

func mustNotContain(t *testing.T, what, out string, bad ...string) {
	t.Helper()
	for _, w := range bad {
		if strings.Contains(out, w) {
			t.Errorf("%s still has %q:\n%s", what, w, out)
		}
	}
}

func ourNamespaces(t *testing.T, prefix string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(run(t, "ip", "netns", "list"), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			out = append(out, f[0])
		}
	}
	return out
}

func TestHostApplyPlan(t *testing.T) {
	needOVS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := zaptest.NewLogger(t)
	prefix := fmt.Sprintf("dfa%d-", os.Getpid()%100000)
	hostNS := testNetns(t, "host")
	inst, err := ovsinst.Start(ctx, log, "", hostNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := inst.Stop(); err != nil {
			t.Error(err)
		}
	})
	c, err := ovsdb.Dial(ctx, log, "unix:"+inst.DBSocket())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.EnsureBridge(ctx, ovsdb.Bridge{Name: "br-int", DatapathType: "netdev", FailMode: "secure", Protocols: []string{"OpenFlow13"}}); err != nil {
		t.Fatal(err)
	}
	a := hostnet.New(log, c, hostnet.Config{NamePrefix: prefix, HostNetns: hostNS})
	// Whatever happens, leave no namespace behind.
	t.Cleanup(func() {
		for _, ns := range ourNamespaces(t, prefix) {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	})

	p := throwawayPlan(1)
	res, err := a.Apply(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first apply: %d changes", len(res.Changes))
	qr, fip, snat := prefix+"qrouter-"+tRouter, prefix+"fip-"+tExtNet, prefix+"snat-"+tRouter
	rfp, fpr := "rfp-"+tRouter[:10], "fpr-"+tRouter[:10]

	mustContain(t, "qrouter addresses", ipn(t, qr, "-4", "addr"), "inet 10.0.1.1/24", "inet 169.254.64.0/31", "mtu 1450")
	mustContain(t, "qrouter links", ipn(t, qr, "link"), "link/ether fa:16:3e:00:01:01", "link/ether fa:16:3f:aa:00:01")
	mustContain(t, "qrouter table 16", ipn(t, qr, "route", "show", "table", "16"), "default via 169.254.64.1 dev "+rfp+" proto static")
	mustContain(t, "qrouter snat table", ipn(t, qr, "route", "show", "table", "167772417"), "default via 10.0.1.3 dev qr-aaaaaaaa-01")
	mustContain(t, "qrouter rules", ipn(t, qr, "rule"), "32768:\tfrom 10.0.1.5 lookup 16", "167772417:\tfrom 10.0.1.0/24 lookup 167772417")
	mustContain(t, "qrouter neighbours", ipn(t, qr, "neigh", "show", "dev", rfp), "169.254.64.1 lladdr fa:16:3f:aa:00:02 PERMANENT")
	mustContain(t, "fip routes", ipn(t, fip, "route"), "172.24.4.5 via 169.254.64.0 dev "+fpr)
	mustContain(t, "fip rules", ipn(t, fip, "rule"), "2852012033:\tfrom all iif "+fpr+" lookup 2852012033")
	mustContain(t, "qrouter sysctl", run(t, "ip", "netns", "exec", qr, "sysctl", "net.ipv4.ip_forward", "net.ipv4.conf.all.send_redirects"),
		"net.ipv4.ip_forward = 1", "net.ipv4.conf.all.send_redirects = 0")
	mustContain(t, "fip sysctl", run(t, "ip", "netns", "exec", fip, "sysctl", "net.ipv4.conf.fg-bbbbbbbb-02.proxy_arp"), "= 1")
	mustContain(t, "qrouter nft", run(t, "ip", "netns", "exec", qr, "nft", "list", "ruleset"),
		`iifname "`+rfp+`" ip daddr 172.24.4.5 dnat to 10.0.1.5`, `oifname "`+rfp+`" ip saddr 10.0.1.5 snat to 172.24.4.5`)
	mustContain(t, "snat nft", run(t, "ip", "netns", "exec", snat, "nft", "list", "ruleset"), `oifname "qg-cccccccc-03" snat to 172.24.4.10`)
	// The root namespace's sysctl must not have been touched by the namespace writes.
	// The rfp/fpr pair works: ping across it.
	mustContain(t, "rfp->fpr ping", run(t, "ip", "netns", "exec", qr, "ping", "-c", "1", "-W", "2", "169.254.64.1"), "1 received")
	// OVS side: plugged with iface-id, ports get an ofport.
	for _, n := range []string{"tqr-aaaaaaaa-01", "tfg-bbbbbbbb-02", "tqg-cccccccc-03", "tsg-dddddddd-04"} {
		wctx, wc := context.WithTimeout(ctx, 20*time.Second)
		if _, err := c.OFPort(wctx, n); err != nil {
			t.Error(err)
		}
		wc()
	}
	if out, _ := inst.Vsctl(ctx, "get", "interface", "tqr-aaaaaaaa-01", "external_ids:iface-id"); out != "aaaaaaaa-0001" {
		t.Errorf("iface-id of tqr-aaaaaaaa-01 = %q", out)
	}

	// Idempotent.
	res, err = a.Apply(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 0 {
		t.Errorf("second apply changed %d things: %q", len(res.Changes), res.Changes)
	}

	// A namespace whose mount died with the process that made it (a helper run by `ip
	// netns exec`, which gives it a mount namespace of its own) leaves an empty file in
	// /run/netns, and OVS keeps the port of the veth end that died with it. The next
	// Apply removes the stale entry, builds the namespace again and re-plugs the port, so
	// traffic through br-int flows again. Before: a nil-handle panic in close, and after
	// removing the file by hand, a port that passed nothing.
	mustVsctl(t, inst, "set", "bridge", "br-int", "fail_mode=standalone")
	pingSNAT := func() string {
		out, _ := exec.CommandContext(ctx, "ip", "netns", "exec", qr, "ping", "-c", "1", "-W", "2", "10.0.1.3").CombinedOutput()
		return string(out)
	}
	waitFor(t, "qrouter reaching the snat namespace through br-int", 20*time.Second, func() (bool, string) {
		out := pingSNAT()
		return strings.Contains(out, " 0% packet loss"), out
	})
	run(t, "umount", "/run/netns/"+qr)
	if _, err := os.Stat("/run/netns/" + qr); err != nil {
		t.Fatalf("the stale entry should stay as a plain file: %v", err)
	}
	res, err = a.Apply(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, "apply over a stale namespace", strings.Join(res.Changes, "\n"), "remove stale namespace entry "+qr,
		"create namespace "+qr, "unplug tqr-aaaaaaaa-01 from br-int (its device is replaced)", "plug tqr-aaaaaaaa-01 into br-int")
	waitFor(t, "qrouter rebuilt reaching the snat namespace through the re-plugged port", 20*time.Second, func() (bool, string) {
		out := pingSNAT()
		return strings.Contains(out, " 0% packet loss"), out
	})
	if res, err = a.Apply(ctx, p); err != nil || len(res.Changes) != 0 {
		t.Errorf("apply after rebuilding = %q, %v; want no change", res.Changes, err)
	}
	mustVsctl(t, inst, "set", "bridge", "br-int", "fail_mode=secure")

	// Drift is repaired: remove an address and a rule by hand.
	ipn(t, qr, "addr", "del", "10.0.1.1/24", "dev", "qr-aaaaaaaa-01")
	ipn(t, qr, "rule", "del", "pref", "32768")
	// (Deleting the address also made the kernel drop the route via 10.0.1.3.)
	res, err = a.Apply(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, "repair changes", strings.Join(res.Changes, "\n"), "add address 10.0.1.1/24", "add rule pref 32768", "set route default table 167772417")
	if res, err = a.Apply(ctx, p); err != nil || len(res.Changes) != 0 {
		t.Errorf("apply after repair = %q, %v; want no change", res.Changes, err)
	}

	// An emptier plan: no snat namespace, no FIP NAT/rule in qrouter, one route fewer.
	p2 := throwawayPlan(2)
	p2.Namespaces = p2.Namespaces[:2]
	p2.Namespaces[0].NAT = nil
	p2.Namespaces[0].Rules = p2.Namespaces[0].Rules[1:]
	p2.Namespaces[0].Routes = p2.Namespaces[0].Routes[1:]
	p2.Namespaces[0].Neighbors = nil
	if _, err := a.Apply(ctx, p2); err != nil {
		t.Fatal(err)
	}
	if ns := ourNamespaces(t, prefix); len(ns) != 2 {
		t.Errorf("namespaces after emptier plan: %v", ns)
	}
	mustNotContain(t, "qrouter rules", ipn(t, qr, "rule"), "from 10.0.1.5")
	mustNotContain(t, "qrouter table 16", ipn(t, qr, "route", "show", "table", "16"), "default")
	mustNotContain(t, "qrouter neighbours", ipn(t, qr, "neigh", "show", "dev", rfp), "PERMANENT")
	mustNotContain(t, "qrouter nft", run(t, "ip", "netns", "exec", qr, "nft", "list", "ruleset"), "dvrflow")
	mustNotContain(t, "br-int ports", mustVsctl(t, inst, "list-ports", "br-int"), "tqg-", "tsg-")
	if res, err = a.Apply(ctx, p2); err != nil || len(res.Changes) != 0 {
		t.Errorf("emptier plan again = %q, %v; want no change", res.Changes, err)
	}

	// A malformed plan changes nothing.
	bad := throwawayPlan(3)
	bad.Namespaces[0].Routes[0].Dev = "eth7"
	if res, err := a.Apply(ctx, bad); err == nil || len(res.Changes) != 0 {
		t.Errorf("bad plan = %q, %v; want an error and no change", res.Changes, err)
	}

	// The empty plan removes everything.
	if _, err := a.Apply(ctx, plan.Plan{Host: "h1", Revision: 4}); err != nil {
		t.Fatal(err)
	}
	if ns := ourNamespaces(t, prefix); len(ns) != 0 {
		t.Errorf("namespaces left: %v", ns)
	}
	mustNotContain(t, "br-int ports", mustVsctl(t, inst, "list-ports", "br-int"), "tqr-", "tfg-")
	mustNotContain(t, "host links", ipn(t, hostNS, "link"), "tqr-", "tfg-", "tqg-", "tsg-")
}

func mustVsctl(t *testing.T, inst *ovsinst.Instance, args ...string) string {
	t.Helper()
	out, err := inst.Vsctl(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
