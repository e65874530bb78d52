package hostnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/plan"
)

// Names of the throwaway plan: a qrouter- and a fip- namespace joined by the rfp-/fpr-
// pair (no OVS needed).
const (
	v6Router = "r6"
	v6Ext    = "e6"
	v6RFP    = "rfp-r6"
	v6FPR    = "fpr-r6"
	v6RFPMAC = "fa:16:3f:aa:00:01"
	v6FPRMAC = "fa:16:3f:aa:00:02"
)

// dualStackPlan is a plan with IPv6 beside IPv4 in every part a router's namespace has:
// addresses, routes in the main and other tables (an IPv4 and an IPv6 default route in
// the same table), rules from IPv4 and IPv6 prefixes at one priority, permanent
// neighbours of both families, IPv6 sysctls. Without full it lacks one IPv6 address,
// route, rule and neighbour, and has 2001:db8:1::3/64 on rfp- instead.
func dualStackPlan(full bool) plan.Plan {
	qr := plan.Namespace{
		Name: plan.PrefixQRouter + v6Router,
		Sysctls: map[string]string{
			"net.ipv4.ip_forward":                   "1",
			"net.ipv6.conf.all.forwarding":          "1",
			"net.ipv6.conf.default.accept_dad":      "0",
			"net.ipv6.conf.default.accept_ra":       "0",
			"net.ipv6.conf." + v6RFP + ".accept_ra": "0",
		},
		Links: []plan.Link{{Name: v6RFP, PeerNamespace: plan.PrefixFIP + v6Ext, PeerName: v6FPR, MAC: v6RFPMAC,
			Addresses: []string{"169.254.64.0/31", "2001:db8:1::1/64"}}},
		Routes: []plan.Route{
			{Dst: "default", Via: "2001:db8:1::ff", Dev: v6RFP},
			{Dst: "default", Via: "169.254.64.1", Dev: v6RFP, Table: 16},
			{Dst: "default", Via: "2001:db8:1::ff", Dev: v6RFP, Table: 16},
			{Dst: "::/0", Dev: v6RFP, Table: 18},
		},
		Rules: []plan.Rule{
			{Priority: 16, From: "10.0.1.0/24", Table: 16},
			{Priority: 16, From: "2001:db8:1::/64", Table: 16},
		},
		Neighbors: []plan.Neighbor{
			{IP: "169.254.64.1", MAC: v6FPRMAC, Dev: v6RFP},
			{IP: "2001:db8:1::ff", MAC: v6FPRMAC, Dev: v6RFP},
		},
	}
	fip := plan.Namespace{
		Name:    plan.PrefixFIP + v6Ext,
		Sysctls: map[string]string{"net.ipv6.conf.default.accept_dad": "0"},
		Links: []plan.Link{{Name: v6FPR, PeerNamespace: plan.PrefixQRouter + v6Router, PeerName: v6RFP, MAC: v6FPRMAC,
			Addresses: []string{"169.254.64.1/31", "2001:db8:1::ff/64"}}},
	}
	if full {
		qr.Links[0].Addresses = append(qr.Links[0].Addresses, "2001:db8:1::2/64")
		qr.Routes = append(qr.Routes, plan.Route{Dst: "2001:db8:99::/64", Via: "2001:db8:1::ff", Dev: v6RFP, Table: 17})
		qr.Rules = append(qr.Rules, plan.Rule{Priority: 17, From: "::/0", IIF: v6RFP, Table: 17})
		qr.Neighbors = append(qr.Neighbors, plan.Neighbor{IP: "2001:db8:1::fe", MAC: "fa:16:3e:00:00:fe", Dev: v6RFP})
	} else {
		qr.Links[0].Addresses = append(qr.Links[0].Addresses, "2001:db8:1::3/64")
	}
	return plan.Plan{Host: "h6", Revision: 1, Namespaces: []plan.Namespace{qr, fip}}
}

func needNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes network namespaces")
	}
	for _, c := range []string{"ip", "ping"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("needs %s", c)
		}
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func mustContain(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s: no %q in:\n%s", what, sub, s)
		}
	}
}

func mustLack(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			t.Errorf("%s: %q still in:\n%s", what, sub, s)
		}
	}
}

// linkLocal waits for the kernel's link-local address on dev in ns, usable (not
// tentative: no duplicate address detection holds it).
func linkLocal(t *testing.T, ns, dev string) string {
	t.Helper()
	re := regexp.MustCompile(`inet6 (fe80::[0-9a-f:]+/64) scope link( [a-z ]*)?\n`)
	var out string
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		out = run(t, "ip", "-n", ns, "-6", "addr", "show", "dev", dev)
		if m := re.FindStringSubmatch(out); m != nil && !strings.Contains(m[2], "tentative") {
			return m[1]
		}
	}
	t.Fatalf("%s %s: no usable link-local address:\n%s", ns, dev, out)
	return ""
}

func TestApplyIPv6(t *testing.T) {
	needNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := zaptest.NewLogger(t)
	prefix := fmt.Sprintf("hn6t%d-", os.Getpid()%100000)
	qr, fip := prefix+plan.PrefixQRouter+v6Router, prefix+plan.PrefixFIP+v6Ext
	t.Cleanup(func() {
		for _, ns := range []string{qr, fip} {
			if _, err := os.Stat(netnsDir + "/" + ns); err == nil {
				_ = exec.Command("ip", "netns", "del", ns).Run()
			}
		}
	})
	ipn := func(ns string, args ...string) string {
		t.Helper()
		return run(t, "ip", append([]string{"-n", ns}, args...)...)
	}
	sysctl := func(ns, key string) string {
		t.Helper()
		return strings.TrimSpace(run(t, "ip", "netns", "exec", ns, "sysctl", "-n", key))
	}
	apply := func(p plan.Plan) []string {
		t.Helper()
		// A new Applier each time, as a restarted helper: it starts from what the
		// kernel has.
		res, err := New(log, nil, Config{NamePrefix: prefix}).Apply(ctx, p)
		if err != nil {
			t.Fatalf("apply: %v (changes %q)", err, res.Changes)
		}
		return res.Changes
	}

	apply(dualStackPlan(true))
	mustContain(t, "qrouter addresses", ipn(qr, "-6", "addr", "show", "dev", v6RFP),
		"inet6 2001:db8:1::1/64 scope global nodad", "inet6 2001:db8:1::2/64 scope global nodad")
	mustContain(t, "qrouter IPv4 address", ipn(qr, "-4", "addr", "show", "dev", v6RFP), "inet 169.254.64.0/31")
	mustContain(t, "fip address", ipn(fip, "-6", "addr", "show", "dev", v6FPR), "inet6 2001:db8:1::ff/64 scope global nodad")
	mustContain(t, "qrouter IPv6 main", ipn(qr, "-6", "route", "show"), "default via 2001:db8:1::ff dev "+v6RFP+" proto static")
	mustContain(t, "qrouter IPv6 table 16", ipn(qr, "-6", "route", "show", "table", "16"), "default via 2001:db8:1::ff dev "+v6RFP+" proto static")
	mustContain(t, "qrouter IPv4 table 16", ipn(qr, "-4", "route", "show", "table", "16"), "default via 169.254.64.1 dev "+v6RFP+" proto static")
	mustContain(t, "qrouter table 17", ipn(qr, "-6", "route", "show", "table", "17"), "2001:db8:99::/64 via 2001:db8:1::ff dev "+v6RFP+" proto static")
	mustContain(t, "qrouter table 18", ipn(qr, "-6", "route", "show", "table", "18"), "default dev "+v6RFP+" proto static")
	mustContain(t, "qrouter IPv6 rules", ipn(qr, "-6", "rule"), "16:\tfrom 2001:db8:1::/64 lookup 16", "17:\tfrom all iif "+v6RFP+" lookup 17")
	mustContain(t, "qrouter IPv4 rules", ipn(qr, "-4", "rule"), "16:\tfrom 10.0.1.0/24 lookup 16")
	mustContain(t, "qrouter IPv6 neighbours", ipn(qr, "-6", "neigh", "show", "dev", v6RFP),
		"2001:db8:1::ff lladdr "+v6FPRMAC+" PERMANENT", "2001:db8:1::fe lladdr fa:16:3e:00:00:fe PERMANENT")
	mustContain(t, "qrouter IPv4 neighbours", ipn(qr, "-4", "neigh", "show", "dev", v6RFP), "169.254.64.1 lladdr "+v6FPRMAC+" PERMANENT")
	// The namespace-wide sysctls were written before the link was made: it took
	// accept_dad=0 from the namespace's default, so its link-local address skipped DAD.
	for key, want := range map[string]string{
		"net.ipv6.conf.all.forwarding":           "1",
		"net.ipv6.conf." + v6RFP + ".forwarding": "1",
		"net.ipv6.conf." + v6RFP + ".accept_dad": "0",
		"net.ipv6.conf." + v6RFP + ".accept_ra":  "0",
	} {
		if got := sysctl(qr, key); got != want {
			t.Errorf("%s: %s = %s, want %s", qr, key, got, want)
		}
	}
	ll := linkLocal(t, qr, v6RFP)
	// Usable at once, both ways.
	mustContain(t, "ping qrouter->fip", run(t, "ip", "netns", "exec", qr, "ping", "-6", "-c", "1", "-W", "2", "2001:db8:1::ff"), "1 received")
	mustContain(t, "ping fip->qrouter", run(t, "ip", "netns", "exec", fip, "ping", "-6", "-c", "1", "-W", "2", "2001:db8:1::2"), "1 received")

	if ch := apply(dualStackPlan(true)); len(ch) != 0 {
		t.Errorf("second apply changed %d things: %q", len(ch), ch)
	}

	// Stale IPv6 state of every kind, and a planned address that failed duplicate
	// address detection (the fip side held it first).
	ipn(qr, "-6", "addr", "add", "2001:db8:5::1/64", "dev", v6RFP, "nodad")
	ipn(qr, "-6", "route", "add", "2001:db8:6::/64", "via", "2001:db8:1::ff", "dev", v6RFP, "proto", "static", "table", "16")
	ipn(qr, "-6", "rule", "add", "from", "2001:db8:7::/64", "lookup", "20", "pref", "20")
	ipn(qr, "-6", "neigh", "replace", "2001:db8:1::fd", "lladdr", "fa:16:3e:00:00:fd", "dev", v6RFP, "nud", "permanent")
	ipn(fip, "-6", "addr", "add", "2001:db8:1::3/64", "dev", v6FPR, "nodad")
	run(t, "ip", "netns", "exec", qr, "sysctl", "-q", "-w", "net.ipv6.conf."+v6RFP+".accept_dad=1")
	ipn(qr, "-6", "addr", "add", "2001:db8:1::3/64", "dev", v6RFP)
	var out string
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if out = ipn(qr, "-6", "addr", "show", "dev", v6RFP); strings.Contains(out, "dadfailed") {
			break
		}
	}
	mustContain(t, "the address that failed DAD", out, "2001:db8:1::3/64 scope global dadfailed tentative")
	kernelRoutes := []string{
		"2001:db8:1::/64 dev " + v6RFP + " proto kernel",
		"fe80::/64 dev " + v6RFP + " proto kernel",
		"multicast ff00::/8 dev " + v6RFP + " table local proto kernel",
		"local " + strings.TrimSuffix(ll, "/64") + " dev " + v6RFP + " table local proto kernel",
	}
	mustContain(t, "kernel routes before", ipn(qr, "-6", "route", "show", "table", "all"), kernelRoutes...)

	changes := strings.Join(apply(dualStackPlan(false)), "\n")
	mustContain(t, "removing and repairing", changes,
		"delete address 2001:db8:1::2/64 from "+v6RFP,
		"delete address 2001:db8:5::1/64 from "+v6RFP,
		"delete address 2001:db8:1::3/64 from "+v6RFP, "add address 2001:db8:1::3/64 to "+v6RFP,
		"delete address 2001:db8:1::3/64 from "+v6FPR,
		"delete route 2001:db8:99::/64 table 17", "delete route 2001:db8:6::/64 table 16",
		`delete rule pref 17 from ::/0 iif "`+v6RFP+`" lookup 17`, `delete rule pref 20 from 2001:db8:7::/64 iif "" lookup 20`,
		"delete neighbour 2001:db8:1::fe on "+v6RFP, "delete neighbour 2001:db8:1::fd on "+v6RFP)
	// Nothing of the kernel's, nothing IPv4.
	mustLack(t, "removing and repairing", changes, "fe80", "ff00", "169.254", "10.0.1.0", "default table")

	addrs := ipn(qr, "-6", "addr", "show", "dev", v6RFP)
	mustContain(t, "addresses after", addrs, "inet6 2001:db8:1::1/64 scope global nodad", "inet6 2001:db8:1::3/64 scope global nodad", "inet6 "+ll+" scope link")
	mustLack(t, "addresses after", addrs, "2001:db8:1::2/", "2001:db8:5::1/", "dadfailed", "tentative")
	mustLack(t, "fip addresses after", ipn(fip, "-6", "addr", "show", "dev", v6FPR), "2001:db8:1::3/")
	routes := ipn(qr, "-6", "route", "show", "table", "all")
	mustContain(t, "routes after", routes, kernelRoutes...)
	mustContain(t, "routes after", routes, "default via 2001:db8:1::ff dev "+v6RFP+" table 16 proto static")
	mustLack(t, "routes after", routes, "2001:db8:99::/64", "2001:db8:6::/64")
	mustContain(t, "IPv4 routes after", ipn(qr, "-4", "route", "show", "table", "16"), "default via 169.254.64.1 dev "+v6RFP+" proto static")
	rules := ipn(qr, "-6", "rule")
	mustContain(t, "rules after", rules, "16:\tfrom 2001:db8:1::/64 lookup 16", "0:\tfrom all lookup local", "32766:\tfrom all lookup main")
	mustLack(t, "rules after", rules, "lookup 17", "lookup 20")
	mustContain(t, "IPv4 rules after", ipn(qr, "-4", "rule"), "16:\tfrom 10.0.1.0/24 lookup 16")
	neigh := ipn(qr, "-6", "neigh", "show", "dev", v6RFP)
	mustLack(t, "neighbours after", neigh, "2001:db8:1::fe", "2001:db8:1::fd")
	mustContain(t, "neighbours after", neigh, "2001:db8:1::ff lladdr "+v6FPRMAC+" PERMANENT")
	mustContain(t, "ping the repaired address", run(t, "ip", "netns", "exec", fip, "ping", "-6", "-c", "1", "-W", "2", "2001:db8:1::3"), "1 received")

	if ch := apply(dualStackPlan(false)); len(ch) != 0 {
		t.Errorf("apply after removing changed %d things: %q", len(ch), ch)
	}
}
