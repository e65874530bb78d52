//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/deploy/agent"
	"github.com/dvrflow/dvrflow/deploy/hostnet"
	"github.com/dvrflow/dvrflow/integration/bed"
	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/provider"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

const dvrToken = "dvr-integration-token"

// dvrflowd is the controller under test, run as its own process so that it can be killed
// with SIGKILL and started again.
type dvrflowd struct {
	t        testing.TB
	bin      string
	args     []string
	logPath  string
	mu       sync.Mutex
	cmd      *exec.Cmd
	finished chan struct{}
}

func buildDvrflowd(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dvrflowd")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/dvrflowd").CombinedOutput()
	if err != nil {
		t.Fatalf("go build dvrflowd: %v\n%s", err, out)
	}
	return bin
}

func (d *dvrflowd) start() {
	d.t.Helper()
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	cmd := exec.Command(d.bin, d.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("start dvrflowd: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	d.mu.Lock()
	d.cmd, d.finished = cmd, done
	d.mu.Unlock()
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *dvrflowd) kill() {
	d.mu.Lock()
	cmd, done := d.cmd, d.finished
	d.cmd = nil
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

func (d *dvrflowd) logTailAll() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

func (d *dvrflowd) logTail() string {
	b, _ := os.ReadFile(d.logPath)
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

func freeAddr(t testing.TB, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// apiGet decodes GET path of the REST API into out.
func apiGet(ctx context.Context, api, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", dvrToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var why string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, why = cond(); ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, why)
}

// dvrBed is the seed scenario realized on a three-host bed.
type dvrBed struct {
	b    *bed.Bed
	api  string
	ctrl *dvrflowd
	topo *seed.Topology
	vms  map[string]string // VM name -> netns
}

func newDVRBed(t testing.TB) *dvrBed { return newDVRBedOn(t, "") }

// newDVRBedOn builds the bed on another underlay /24 (the default is 192.168.248.0/24), so
// that two beds can run at once.
func newDVRBedOn(t testing.TB, underlay string) *dvrBed {
	if os.Getuid() != 0 {
		t.Skip("the DVR bed needs root (network namespaces, OVS)")
	}
	if _, err := exec.LookPath("ovs-vswitchd"); err != nil {
		t.Skip("Open vSwitch is not installed (make test installs it)")
	}
	ctx := context.Background()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	prefix := fmt.Sprintf("d%d", os.Getpid()%100000)
	_ = bed.Sweep(ctx, log, prefix)
	net24 := "192.168.248"
	if underlay != "" {
		net24 = underlay[:strings.LastIndex(underlay, ".")]
	}
	b, err := bed.New(ctx, log, bed.Config{Prefix: prefix, External: true, Underlay: underlay, Hosts: []bed.HostConfig{
		{Name: "compute1", TunnelIP: net24 + ".1", Mode: "dvr"},
		{Name: "compute2", TunnelIP: net24 + ".2", Mode: "dvr"},
		{Name: "network", TunnelIP: net24 + ".3", Mode: "dvr_snat"},
	}})
	if err != nil {
		t.Fatalf("bed: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("bed close: %v", err)
		}
	})
	d := &dvrBed{b: b, vms: map[string]string{}}

	// The controller: dvrflowd on the underlay's root-namespace address.
	apiAddr, ofAddr := freeAddr(t, b.ControllerIP()), freeAddr(t, b.ControllerIP())
	d.api = "http://" + apiAddr
	d.ctrl = &dvrflowd{t: t, bin: buildDvrflowd(t), logPath: filepath.Join(t.TempDir(), "dvrflowd.log"),
		args: []string{"--db-url", pg.NewDatabase(t), "--listen", apiAddr, "--of-listen", ofAddr,
			"--auth-token", dvrToken, "--poll-interval", "1s", "--log-level", "info"}}
	d.ctrl.start()
	t.Cleanup(d.ctrl.kill)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dvrflowd log tail:\n%s", d.ctrl.logTail())
			d.diagnose(t)
			if os.Getenv("DVRFLOW_BED_HOLD") != "" {
				t.Logf("DVRFLOW_BED_HOLD: keeping the bed for 10 minutes")
				time.Sleep(10 * time.Minute)
			}
		}
	})

	// The host helpers, one per host, as dvrflow-host runs them.
	actx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, h := range b.Hosts() {
		cfg, err := b.AgentConfig(h.Name, d.api, []string{"tcp:" + ofAddr})
		if err != nil {
			t.Fatal(err)
		}
		cfg.Token = dvrToken
		cl, err := b.OVSDB(ctx, h.Name)
		if err != nil {
			t.Fatal(err)
		}
		hc, err := b.HostnetConfig(h.Name)
		if err != nil {
			t.Fatal(err)
		}
		a, err := agent.New(log.With(zap.String("host", h.Name)), cfg, cl, hostnet.New(log, cl, hc))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = a.Run(actx) }()
	}
	waitFor(t, "three hosts registered", 60*time.Second, func() (bool, string) {
		var hs struct {
			Hosts []map[string]any `json:"dvr_hosts"`
		}
		if err := apiGet(ctx, d.api, "/v2.0/dvr-hosts", &hs); err != nil {
			return false, err.Error()
		}
		return len(hs.Hosts) == 3, fmt.Sprintf("%d hosts", len(hs.Hosts))
	})

	// The seed topology, through the REST API only.
	opts := seed.DefaultOptions()
	for i := range opts.Hosts {
		h := &opts.Hosts[i]
		h.TunnelIP = b.Host(h.Name).TunnelIP
		h.Bridges = map[string]string{}
		for _, br := range apps.Bridges() {
			h.Bridges[string(br)] = agent.DatapathID(h.Name, string(br))
		}
	}
	topo, err := seed.Create(ctx, seed.NewClient(d.api, dvrToken), opts)
	if err != nil {
		t.Fatalf("seed through the API: %v", err)
	}
	d.topo = topo
	gw := map[string]string{"net1": "10.0.1.1", "net2": "10.0.2.1"}
	for _, vm := range opts.VMs {
		p := topo.VMs[vm.Name]
		ns, err := b.AddVM(ctx, vm.Host, strings.ToLower(vm.Name), p.ID, p.MACAddress, vm.IP+"/24", gw[vm.Network])
		if err != nil {
			t.Fatal(err)
		}
		d.vms[vm.Name] = ns
	}
	return d
}

// diagnose prints what an operator would look at first: every bridge's flows and every
// namespace's addresses, routes and rules.
func (d *dvrBed) diagnose(t testing.TB) {
	ctx := context.Background()
	for _, h := range d.b.Hosts() {
		out, _ := h.OVS.Vsctl(ctx, "show")
		t.Logf("%s ovs-vsctl show:\n%s\nOVS logs:\n%s", h.Name, out, h.OVS.Logs())
		r, _ := d.b.Ping(ctx, h.Netns, d.b.ControllerIP(), 1, 2*time.Second)
		t.Logf("%s -> controller address: %d/%d", h.Name, r.Received, r.Sent)
		for _, br := range apps.Bridges() {
			out, err := h.OVS.Ofctl(ctx, string(br), "--no-stats", "dump-flows")
			t.Logf("%s %s flows (%v):\n%s", h.Name, br, err, out)
			out, _ = h.OVS.Ofctl(ctx, string(br), "show")
			t.Logf("%s %s ports:\n%s", h.Name, br, out)
		}
	}
	out, _ := d.b.Exec(ctx, "", "ip", "netns", "list")
	t.Logf("namespaces:\n%s", out)
	for _, ns := range strings.Fields(out) {
		if !strings.HasPrefix(ns, d.b.Prefix()+"-") || strings.HasPrefix(ns, "(") {
			continue
		}
		a, _ := d.b.Exec(ctx, ns, "ip", "-br", "addr")
		r, _ := d.b.Exec(ctx, ns, "ip", "route", "show", "table", "all")
		ru, _ := d.b.Exec(ctx, ns, "ip", "rule")
		t.Logf("netns %s:\n%s\n%s\n%s", ns, a, r, ru)
	}
}

// pingUntil waits until one ping from VM from gets through to dst, then checks that count
// more are all answered.
func (d *dvrBed) pingUntil(t testing.TB, from, dst string, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	ns := d.vms[from]
	if ns == "" {
		ns = from
	}
	waitFor(t, from+" reaching "+dst, timeout, func() (bool, string) {
		r, err := d.b.Ping(ctx, ns, dst, 1, 2*time.Second)
		if err != nil {
			return false, err.Error()
		}
		return r.Received == 1, r.Output
	})
	r, err := d.b.Ping(ctx, ns, dst, 5, 10*time.Second)
	if err != nil || r.Lost() != 0 {
		t.Fatalf("%s -> %s after convergence: %+v %v", from, dst, r, err)
	}
}

func TestDVRSeedScenario(t *testing.T) {
	d := newDVRBed(t)
	ctx := context.Background()
	converge := 45 * time.Second

	// 7: no ARP broadcast for a known address is ever encapsulated: watch every host's wire
	// during tests 1 to 4.
	var wires []*bed.CaptureRun
	for _, h := range d.b.Hosts() {
		c, err := d.b.Capture(ctx, "", h.UnderlayLink, "udp port 4789")
		if err != nil {
			t.Fatal(err)
		}
		wires = append(wires, c)
	}

	t.Run("1 east-west across hosts VM1 to VM2", func(t *testing.T) {
		d.pingUntil(t, "VM1", "10.0.2.5", converge)
	})
	t.Run("2 same subnet across hosts VM1 to VM4, routed on one host VM1 to VM3", func(t *testing.T) {
		d.pingUntil(t, "VM1", "10.0.1.6", converge)
		d.pingUntil(t, "VM1", "10.0.2.3", converge)
	})
	t.Run("3 floating IP: VM1 to the internet leaves as 172.24.4.5, and back", func(t *testing.T) {
		capture, err := d.b.Capture(ctx, d.b.TargetNetns(), "eth0", "icmp")
		if err != nil {
			t.Fatal(err)
		}
		d.pingUntil(t, "VM1", bed.TargetIP, converge)
		lines, err := capture.Stop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, "172.24.4.5 > "+bed.TargetIP) }) {
			t.Fatalf("the target never saw 172.24.4.5:\n%s", strings.Join(lines, "\n"))
		}
		// The reverse direction: the internet reaches VM1 by its floating IP.
		d.pingUntil(t, d.b.InternetNetns(), "172.24.4.5", converge)
	})
	t.Run("4 SNAT: VM4 without floating IP leaves through the network node", func(t *testing.T) {
		capture, err := d.b.Capture(ctx, d.b.TargetNetns(), "eth0", "icmp")
		if err != nil {
			t.Fatal(err)
		}
		d.pingUntil(t, "VM4", bed.TargetIP, converge)
		lines, err := capture.Stop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		gwIP := ""
		for _, ip := range d.topo.Router.GatewayInfo.ExternalFixedIPs {
			gwIP = ip.IPAddress
		}
		if gwIP == "" || !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, gwIP+" > "+bed.TargetIP) }) {
			t.Fatalf("the target never saw the router's gateway address %q:\n%s", gwIP, strings.Join(lines, "\n"))
		}
		// The qrouter hairpins this traffic out of the qr- it came in by; it must not send
		// the VM an ICMP redirect to the snat port.
		snmp, err := d.b.Exec(ctx, d.vms["VM4"], "cat", "/proc/net/snmp")
		if err != nil {
			t.Fatal(err)
		}
		if n := icmpCounter(snmp, "InRedirects"); n != 0 {
			t.Fatalf("VM4 received %d ICMP redirects from its qrouter", n)
		}
	})
	t.Run("7 no encapsulated ARP on the underlay", func(t *testing.T) {
		vxlan, arp := 0, []string{}
		for _, c := range wires {
			lines, err := c.Stop(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range lines {
				vxlan++
				if strings.Contains(l, "ARP") {
					arp = append(arp, l)
				}
			}
		}
		if vxlan == 0 {
			t.Fatal("the capture saw no VXLAN packet at all: it watches the wrong place")
		}
		if len(arp) > 0 {
			t.Fatalf("%d of %d VXLAN packets carried ARP:\n%s", len(arp), vxlan, strings.Join(arp, "\n"))
		}
		t.Logf("%d VXLAN packets on the underlay during tests 1-4, none of them ARP", vxlan)
	})
	t.Run("8 controller killed with SIGKILL and restarted: no ping lost", func(t *testing.T) {
		d.pingUntil(t, "VM1", "10.0.2.5", converge)
		d.pingUntil(t, "VM4", bed.TargetIP, converge)
		p1, err := d.b.StartPing(ctx, d.vms["VM1"], "10.0.2.5", 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := d.b.StartPing(ctx, d.vms["VM4"], bed.TargetIP, 100*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		logBefore := len(d.ctrl.logTailAll())
		d.ctrl.kill()
		time.Sleep(time.Second)
		d.ctrl.start()
		waitFor(t, "the restarted controller serving the API", 30*time.Second, func() (bool, string) {
			var hs map[string]any
			err := apiGet(ctx, d.api, "/v2.0/dvr-hosts", &hs)
			return err == nil, fmt.Sprint(err)
		})
		time.Sleep(5 * time.Second) // switches reconnect (OVS backs off up to 8 s) and reconcile
		r1, err1 := p1.Stop()
		r2, err2 := p2.Stop()
		if err1 != nil || err2 != nil {
			t.Fatalf("pings: %v %v", err1, err2)
		}
		t.Logf("during the restart: VM1->VM2 %d/%d, VM4->internet %d/%d", r1.Received, r1.Sent, r2.Received, r2.Sent)
		// The reconcilers log every pass that sent flow-mods ("reconciled"); after the restart
		// there must be none, while every bridge was dumped and found equal.
		after := d.ctrl.logTailAll()[logBefore:]
		if strings.Contains(after, "reconciled") {
			t.Errorf("the restarted controller sent flow-mods:\n%s", after)
		}
		if r1.Lost() != 0 || r2.Lost() != 0 || r1.Sent < 50 {
			t.Fatalf("pings lost across the controller restart: VM1->VM2 %+v, VM4->internet %+v", r1, r2)
		}
	})
	t.Run("VLAN provider network routed by DVR: frames on the wire carry the DVR MAC", func(t *testing.T) {
		c := seed.NewClient(d.api, dvrToken)
		yes := true
		nw, err := networks.Create(ctx, c, provider.CreateOptsExt{
			CreateOptsBuilder: networks.CreateOpts{Name: "net3-vlan", ProjectID: "demo", AdminStateUp: &yes},
			Segments:          []provider.Segment{{NetworkType: "vlan", PhysicalNetwork: "public", SegmentationID: 100}},
		}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		sn, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: nw.ID, CIDR: "10.0.3.0/24", IPVersion: gophercloud.IPv4, ProjectID: "demo"}).Extract()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := routers.AddInterface(ctx, c, d.topo.Router.ID, routers.AddInterfaceOpts{SubnetID: sn.ID}).Extract(); err != nil {
			t.Fatal(err)
		}
		var vlanPorts []string
		defer func() { // the life-cycle test below expects the seed's VMs only
			for _, id := range vlanPorts {
				if err := ports.Delete(ctx, c, id).ExtractErr(); err != nil {
					t.Errorf("delete port %s: %v", id, err)
				}
			}
		}()
		for _, vm := range []struct{ name, ip, host string }{{"vm5", "10.0.3.5", "compute1"}, {"vm6", "10.0.3.6", "compute2"}} {
			p, err := ports.Create(ctx, c, portsbinding.CreateOptsExt{
				CreateOptsBuilder: ports.CreateOpts{NetworkID: nw.ID, Name: vm.name, ProjectID: "demo", DeviceOwner: "compute:nova",
					DeviceID: vm.name, FixedIPs: []ports.IP{{SubnetID: sn.ID, IPAddress: vm.ip}}},
				HostID: vm.host,
			}).Extract()
			if err != nil {
				t.Fatal(err)
			}
			vlanPorts = append(vlanPorts, p.ID)
			ns, err := d.b.AddVM(ctx, vm.host, vm.name, p.ID, p.MACAddress, vm.ip+"/24", "10.0.3.1")
			if err != nil {
				t.Fatal(err)
			}
			d.vms[vm.name] = ns
		}
		d.pingUntil(t, "vm5", "10.0.3.6", converge) // same VLAN network, across hosts
		d.pingUntil(t, "vm5", "10.0.2.5", converge) // VLAN -> VXLAN, routed on compute1
		wire, err := d.b.Capture(ctx, "", d.b.Host("compute2").ExternalLink, "vlan 100 and icmp")
		if err != nil {
			t.Fatal(err)
		}
		d.pingUntil(t, "VM2", "10.0.3.5", converge) // VXLAN -> VLAN, routed on compute2
		lines, err := wire.Stop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var hosts struct {
			Hosts []struct {
				Host string `json:"host"`
				MAC  string `json:"mac_address"`
			} `json:"dvr_host_macs"`
		}
		if err := apiGet(ctx, d.api, "/v2.0/dvr-host-macs", &hosts); err != nil {
			t.Fatal(err)
		}
		d2 := ""
		for _, h := range hosts.Hosts {
			if h.Host == "compute2" {
				d2 = h.MAC
			}
		}
		routed := slices.ContainsFunc(lines, func(l string) bool {
			return strings.Contains(l, d2+" > ") && strings.Contains(l, "10.0.2.5 > 10.0.3.5")
		})
		if d2 == "" || !routed {
			t.Fatalf("no frame routed by compute2 left it with its DVR MAC %q on VLAN 100:\n%s", d2, strings.Join(lines, "\n"))
		}
		d.pingUntil(t, "VM4", "10.0.3.6", converge) // both routed on compute2, delivered locally
	})
	t.Run("6 life cycle: namespaces and flows follow deletions", func(t *testing.T) {
		c := seed.NewClient(d.api, dvrToken)
		netnsWith := func(sub string) bool {
			out, _ := d.b.Exec(ctx, "", "ip", "netns", "list")
			return strings.Contains(out, sub)
		}
		qrouter1 := d.b.Host("compute1").Netns + "-qrouter-"
		fip1 := d.b.Host("compute1").Netns + "-fip-"
		snat := d.b.Host("network").Netns + "-snat-"
		if !netnsWith(qrouter1) || !netnsWith(fip1) || !netnsWith(snat) {
			t.Fatal("the seed's namespaces are not all there to begin with")
		}
		if err := ports.Delete(ctx, c, d.topo.VMs["VM3"].ID).ExtractErr(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second) // let a wrong removal happen, if it would
		if !netnsWith(qrouter1) || !netnsWith(fip1) {
			t.Fatal("deleting VM3 removed compute1's qrouter or fip namespace although VM1 is still there")
		}
		if err := ports.Delete(ctx, c, d.topo.VMs["VM1"].ID).ExtractErr(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "compute1 without qrouter and fip namespaces", 30*time.Second, func() (bool, string) {
			return !netnsWith(qrouter1) && !netnsWith(fip1), "still there"
		})
		if _, err := routers.Update(ctx, c, d.topo.Router.ID, routers.UpdateOpts{GatewayInfo: &routers.GatewayInfo{}}).Extract(); err != nil {
			t.Fatalf("removing the gateway: %v", err)
		}
		waitFor(t, "snat namespace removed from the network node", 30*time.Second, func() (bool, string) {
			return !netnsWith(snat), "still there"
		})
		waitFor(t, "no flow left for the deleted ports", 30*time.Second, func() (bool, string) {
			for _, h := range d.b.Hosts() {
				for _, br := range apps.Bridges() {
					out, err := h.OVS.Ofctl(ctx, string(br), "--no-stats", "dump-flows")
					if err != nil {
						return false, err.Error()
					}
					for _, vm := range []string{"VM1", "VM3"} {
						if mac := d.topo.VMs[vm].MACAddress; strings.Contains(out, mac) {
							return false, fmt.Sprintf("%s %s still has %s's MAC %s", h.Name, br, vm, mac)
						}
					}
				}
			}
			return true, ""
		})
		d.pingUntil(t, "VM4", "10.0.2.5", 30*time.Second) // what remains still works
	})
}

// icmpCounter reads one counter of the "Icmp:" lines of /proc/net/snmp (-1 if absent).
func icmpCounter(snmp, name string) int {
	var names, values []string
	for _, l := range strings.Split(snmp, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == "Icmp:" {
			if names == nil {
				names = f
			} else {
				values = f
			}
		}
	}
	for i, n := range names {
		if n == name && i < len(values) {
			v, _ := strconv.Atoi(values[i])
			return v
		}
	}
	return -1
}
