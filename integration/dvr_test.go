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
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/switchapi"
	"github.com/dvrflow/dvrflow/testbed/bed"
	"github.com/dvrflow/dvrflow/testbed/scenario"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/provider"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

const dvrToken = "dvr-integration-token"

// The bed's liveness timers: short, so that the liveness test sees a helper die quickly.
const (
	agentDownTime = 3 * time.Second
	helperPoll    = time.Second
)

// dvrflowd is the controller under test, a process of the scenario, so that it can be
// killed with SIGKILL and started again.
type dvrflowd struct {
	t testing.TB
	p *scenario.Process
}

// start starts it again after kill.
func (d *dvrflowd) start() {
	d.t.Helper()
	if err := d.p.Start(); err != nil {
		d.t.Fatal(err)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *dvrflowd) kill() { d.p.Kill() }

func (d *dvrflowd) logTailAll() string { return d.p.Log() }

// buildCmd builds ../cmd/<name> into dir and returns the binary's path.
func buildCmd(t testing.TB, dir, name string) string {
	t.Helper()
	bin := filepath.Join(dir, name)
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/"+name).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", name, err, out)
	}
	return bin
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

// dvrBed is the seed scenario realized on a three-host bed (testbed/scenario, as the
// demo runs it): the API at api with token dvrToken, the bed b, the controller process
// ctrl, the topology created through the API and the VMs' namespaces by VM name.
type dvrBed struct {
	dsn  string // the database's URL
	s    *scenario.Scenario
	b    *bed.Bed
	api  string
	ctrl *dvrflowd
	topo *seed.Topology
	vms  map[string]string // VM name -> netns (the scenario's own map: add to it)
}

func newDVRBed(t testing.TB) *dvrBed { return newDVRBedOn(t, "") }

// newDVRBedOn builds the bed on another underlay /24 (the default is 192.168.248.0/24), so
// that two beds can run at once; helperArgs are added to every host helper's arguments.
func newDVRBedOn(t testing.TB, underlay string, helperArgs ...string) *dvrBed {
	return newDVRBedControllers(t, underlay, 1, helperArgs...)
}

// newDVRBedControllers builds the bed with n dvrflowd against its database (ctrl is the
// first; the scenario's Ctrls all of them).
func newDVRBedControllers(t testing.TB, underlay string, n int, helperArgs ...string) *dvrBed {
	return newDVRBedDatabases(t, underlay, n, nil, helperArgs...)
}

// newDVRBedDatabases builds the bed with n dvrflowd, controller i reaching the database
// through dsns(dsn)[i] when dsns is set.
func newDVRBedDatabases(t testing.TB, underlay string, n int, dsns func(dsn string) []string, helperArgs ...string) *dvrBed {
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
	bins := t.TempDir()
	dsn := pg.NewDatabase(t)
	var perCtl []string
	if dsns != nil {
		perCtl = dsns(dsn)
	}
	s, err := scenario.Up(ctx, log, scenario.Config{Prefix: prefix, Underlay: underlay, DatabaseURL: dsn, Controllers: n, DatabaseURLs: perCtl,
		Token: dvrToken, Dvrflowd: buildCmd(t, bins, "dvrflowd"), HostHelper: buildCmd(t, bins, "dvrflow-host"),
		LogDir: t.TempDir(), DvrflowdArgs: []string{"--poll-interval", "1s", "--agent-down-time", agentDownTime.String()},
		HelperArgs: append([]string{"--poll-timeout", helperPoll.String()}, helperArgs...),
		Progress:   func(line string) { t.Logf("%s", line) }})
	if err != nil {
		t.Fatalf("seed scenario: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("scenario close: %v", err)
		}
	})
	d := &dvrBed{dsn: dsn, s: s, b: s.Bed, api: s.API, ctrl: &dvrflowd{t: t, p: s.Ctrl}, topo: s.Topo, vms: s.VMs}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range s.Ctrls {
				t.Logf("%s log tail:\n%s", p.Name, p.LogTail(60))
			}
			for name, p := range s.Helpers {
				t.Logf("dvrflow-host %s log tail:\n%s", name, p.LogTail(30))
			}
			d.diagnose(t)
			if os.Getenv("DVRFLOW_BED_HOLD") != "" {
				t.Logf("DVRFLOW_BED_HOLD: keeping the bed for 10 minutes")
				time.Sleep(10 * time.Minute)
			}
		}
	})
	return d
}

// bootVM plugs a VM into port p on host as Nova does, with no address, and boots it: its
// DHCP client c configures eth0 from the controller's answers. It returns the VM's
// namespace once eth0 holds the port's first address with a /24.
func (d *dvrBed) bootVM(ctx context.Context, t testing.TB, host, vmName string, p *ports.Port, c bed.DHCPClient) string {
	t.Helper()
	ns, err := d.b.AddVM(ctx, host, vmName, p.ID, p.MACAddress, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.b.StartDHCP(vmName, c); err != nil {
		t.Fatal(err)
	}
	if err := d.b.WaitAddr(ctx, vmName, p.FixedIPs[0].IPAddress+"/24", 45*time.Second); err != nil {
		t.Fatal(err)
	}
	return ns
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
		for _, br := range topology.Bridges() {
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

// pingUntil waits until one ping from from (a VM name or a namespace) gets through to
// dst, then checks that 5 more are all answered.
func (d *dvrBed) pingUntil(t testing.TB, from, dst string, timeout time.Duration) {
	t.Helper()
	if _, err := d.s.PingUntil(context.Background(), from, dst, 5, timeout); err != nil {
		t.Fatal(err)
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

	// 1 to 4: the scenario's traffic checks, exactly as the demo runs and shows them.
	for _, c := range d.s.Checks() {
		t.Run("1-4 "+c.Name, func(t *testing.T) {
			r, err := d.s.Run(ctx, c, 5, converge)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d/%d replies, first after %v; seen at the target as %s: %d", c.What, r.Ping.Received, r.Ping.Sent,
				r.Converged, c.SeenAs, len(r.Seen))
		})
	}
	t.Run("openstack CLI: the commands the demo prints", func(t *testing.T) {
		testOpenStackCLI(t, d)
	})
	t.Run("2 routed on one host VM1 to VM3", func(t *testing.T) {
		d.pingUntil(t, "VM1", "10.0.2.3", converge)
	})
	t.Run("3 floating IP from the internet router", func(t *testing.T) {
		d.pingUntil(t, d.b.InternetNetns(), "172.24.4.5", converge)
	})
	t.Run("4 SNAT: no ICMP redirect to VM4", func(t *testing.T) {
		d.pingUntil(t, "VM4", bed.TargetIP, converge)
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
		// Open vSwitch dumps every flow as the controller encodes it, ct, conjunction, learn
		// and meter actions included: the restarted reconcilers decode only foreign flows.
		var sw switchapi.List
		if err := apiGet(ctx, d.api, "/v2.0/dvr-switches", &sw); err != nil {
			t.Fatal(err)
		}
		dumped, decoded := 0, uint64(0)
		for _, s := range sw.Switches {
			dumped += s.FlowsInstalled + s.FlowsForeign
			decoded += s.FlowsDecoded
			if s.FlowsDecoded > uint64(s.FlowsForeign) {
				t.Errorf("%s %s: the restart's dump decoded %d flows, only %d foreign", s.Host, s.Bridge, s.FlowsDecoded, s.FlowsForeign)
			}
		}
		t.Logf("after the restart: %d switches dumped %d flows, %d of them decoded", len(sw.Switches), dumped, decoded)
	})
	t.Run("9 host helpers killed with SIGKILL and restarted: no ping lost, no kernel change", func(t *testing.T) {
		testHelperRestart(t, d, converge)
	})
	t.Run("10 fixed IP reused by a new port with a new MAC: routed to it at once", func(t *testing.T) {
		testReusedIP(t, d, converge)
	})
	t.Run("11 port moved between hosts: at most one ping lost beyond the unplugged time", func(t *testing.T) {
		testPortMove(t, d, converge)
	})
	t.Run("12 liveness: agents alive while their helpers poll, dead once one stops", func(t *testing.T) {
		testLiveness(t, d)
	})
	t.Run("13 SNAT failover: its dvr_snat host dies, SNAT resumes through another", func(t *testing.T) {
		testSNATFailover(t, d, converge)
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
			d.vms[vm.name] = d.bootVM(ctx, t, vm.host, vm.name, p, bed.Udhcpc)
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
				for _, br := range topology.Bridges() {
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
