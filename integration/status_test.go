//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/dvrflow/dvrflow/topology"
)

// chromiumPath is Debian's chromium (deploy/scripts/install-deps.sh installs it).
const chromiumPath = "/usr/bin/chromium"

// browser starts a headless Chromium with a fresh profile and returns its context.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("no %s (deploy/scripts/install-deps.sh installs chromium): %v", chromiumPath, err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1600, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() }) // closes the browser and waits for it
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("DVRFLOW_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

type switchRow struct {
	DPID      string `json:"dpid"`
	Host      string `json:"host"`
	Bridge    string `json:"bridge"`
	Installed string `json:"installed"`
	Desired   string `json:"desired"`
}

const switchRowsJS = `Array.from(document.querySelectorAll('tr.switch')).map(r => ({
	dpid: r.dataset.dpid, installed: r.dataset.installed, desired: r.dataset.desired,
	host: r.cells[0].innerText.trim(), bridge: r.cells[1].innerText.trim()}))`

// TestStatusPageInChromium loads the status page of the seed bed in a real browser: every
// switch listed with its flows installed, the hosts' DVR MACs, the deep link to a br-tun
// flow table with its table names, and a stray flow added with ovs-ofctl shown in red.
func TestStatusPageInChromium(t *testing.T) {
	d := newDVRBed(t)
	ctx := browser(t)
	tctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	arts := artifactsDir(t)

	// The page lists all 9 bridges, each holding exactly its desired flows.
	var rows []switchRow
	waitFor(t, "9 converged switches on /status", 60*time.Second, func() (bool, string) {
		rows = nil
		if err := chromedp.Run(tctx, chromedp.Navigate(d.api+"/status?refresh=0"),
			chromedp.WaitVisible("#switches", chromedp.ByQuery), chromedp.Evaluate(switchRowsJS, &rows)); err != nil {
			return false, err.Error()
		}
		if len(rows) != 9 {
			return false, fmt.Sprintf("%d switches listed: %+v", len(rows), rows)
		}
		for _, r := range rows {
			if r.Host == "" || r.Installed != r.Desired || r.Desired == "0" {
				return false, fmt.Sprintf("%+v", r)
			}
		}
		return true, ""
	})
	seen := map[string]string{} // host/bridge -> dpid
	for _, r := range rows {
		seen[r.Host+"/"+r.Bridge] = r.DPID
	}
	for _, h := range []string{"compute1", "compute2", "network"} {
		for _, b := range topology.Bridges() {
			if seen[h+"/"+string(b)] == "" {
				t.Errorf("%s %s not listed: %+v", h, b, rows)
			}
		}
	}

	// Every port forwards, so every port row says ACTIVE: VM ports and the router
	// interface, SNAT, gateway and agent gateway ports alike (these were DOWN in red);
	// floating IP ports say N/A, as Neutron's.
	waitFor(t, "every port ACTIVE on /status", 30*time.Second, func() (bool, string) {
		var states []string
		if err := chromedp.Run(tctx, chromedp.Navigate(d.api+"/status?refresh=0"), chromedp.WaitVisible("#switches", chromedp.ByQuery),
			chromedp.Evaluate(`Array.from(document.querySelectorAll('tr[id^="ports-"]')).map(
				r => r.id + " " + r.querySelectorAll('td')[2].innerText.trim())`, &states)); err != nil {
			return false, err.Error()
		}
		if len(states) < 10 {
			return false, fmt.Sprintf("%d port rows", len(states))
		}
		for _, st := range states {
			if !strings.HasSuffix(st, " ACTIVE") && !strings.HasSuffix(st, " N/A") {
				return false, fmt.Sprint(states)
			}
		}
		return true, ""
	})

	// Hosts show their DVR MACs.
	var macs map[string]string
	if err := chromedp.Run(tctx, chromedp.Evaluate(`Object.fromEntries(Array.from(document.querySelectorAll('tr.host')).map(
		r => [r.id.replace('host-', ''), r.querySelector('td.mac').innerText.trim()]))`, &macs)); err != nil {
		t.Fatal(err)
	}
	for name, h := range d.topo.Hosts {
		if h.MACAddress == "" || macs[name] != h.MACAddress {
			t.Errorf("host %s shows DVR MAC %q, want %q", name, macs[name], h.MACAddress)
		}
	}
	var shot []byte
	if err := chromedp.Run(tctx, chromedp.FullScreenshot(&shot, 100)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(arts, "status.png"), shot, 0o644); err != nil {
		t.Fatal(err)
	}

	// The deep link from compute1's br-tun leads to its flow table, with table names.
	dpid := seen["compute1/br-tun"]
	var flowsText, url string
	if err := chromedp.Run(tctx,
		chromedp.Click(`#switch-`+dpid+` a.flows`, chromedp.ByQuery),
		chromedp.WaitVisible(`#table-DVR_PROCESS`, chromedp.ByQuery),
		chromedp.Location(&url),
		chromedp.Text(`main`, &flowsText, chromedp.ByQuery)); err != nil {
		t.Fatalf("following the flows link of compute1 br-tun: %v", err)
	}
	if !strings.HasSuffix(url, "/status/switches/"+dpid+"?refresh=0") || !strings.Contains(flowsText, "table=DVR_PROCESS") ||
		!strings.Contains(flowsText, "table=UCAST_TO_TUN") {
		t.Fatalf("flows page %s lacks the table names:\n%s", url, flowsText)
	}

	// Drift: a stray flow with dvrflow's cookie, added behind the controller's back.
	var c1 = d.b.Hosts()[0]
	for _, h := range d.b.Hosts() {
		if h.Name == "compute1" {
			c1 = h
		}
	}
	const stray = "cookie=0xd701000000000000,table=20,priority=77,dl_dst=fa:16:3e:de:ad:01,actions=drop"
	if out, err := c1.OVS.Ofctl(tctx, "br-tun", "add-flow", stray); err != nil {
		t.Fatalf("ovs-ofctl add-flow: %v\n%s", err, out)
	}
	type drift struct {
		Text  string `json:"text"`
		Color string `json:"color"`
		State string `json:"state"`
	}
	const extraJS = `Array.from(document.querySelectorAll('tr.flow.extra')).map(r => ({
		text: r.innerText, color: getComputedStyle(r).color, state: r.querySelector('td.state').innerText}))`
	var extras []drift
	var shown *drift
	removed := false
	waitFor(t, "the stray flow shown as extra, or removed by the reconciler", 30*time.Second, func() (bool, string) {
		extras = nil
		if err := chromedp.Run(tctx, chromedp.Navigate(d.api+"/status/switches/"+dpid+"?refresh=0"),
			chromedp.WaitVisible(`#flows, p.error`, chromedp.ByQuery),
			chromedp.Evaluate(extraJS, &extras)); err != nil {
			return false, err.Error()
		}
		for i := range extras {
			if strings.Contains(extras[i].Text, "priority=77") {
				shown = &extras[i]
				return true, ""
			}
		}
		dump, err := c1.OVS.Ofctl(tctx, "br-tun", "--no-stats", "dump-flows")
		if err == nil && !strings.Contains(dump, "priority=77") {
			removed = true
			return true, ""
		}
		return false, fmt.Sprintf("stray neither shown (%d extra flows) nor removed", len(extras))
	})
	switch {
	case shown != nil:
		t.Logf("the stray flow was shown as %q in %s: %s", strings.TrimSpace(shown.State), shown.Color, shown.Text)
		if shown.Color != "rgb(192, 19, 43)" || !strings.EqualFold(strings.TrimSpace(shown.State), "extra") {
			t.Errorf("the stray flow is not shown in red as extra: %+v", *shown)
		}
		if err := chromedp.Run(tctx, chromedp.FullScreenshot(&shot, 100)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(arts, "status-drift.png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	case removed:
		t.Logf("the reconciler removed the stray flow before a page showed it")
	}
	// Either way the reconciler repairs the bridge once the drift is known.
	waitFor(t, "the stray flow removed", 30*time.Second, func() (bool, string) {
		dump, err := c1.OVS.Ofctl(tctx, "br-tun", "--no-stats", "dump-flows")
		if err != nil {
			return false, err.Error()
		}
		return !strings.Contains(dump, "priority=77"), dump
	})
}
