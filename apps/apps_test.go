package apps

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// renderFlows prints flows the way `ovs-ofctl -O OpenFlow13 --no-stats --names dump-flows`
// does, one per line: the golden files teach the pipeline.
func renderFlows(b topology.Bridge, flows []ofproto.Flow) string {
	var sb strings.Builder
	names := TableNames(b)
	for i := range flows {
		sb.WriteString(flows[i].Format(names))
		sb.WriteByte('\n')
	}
	return sb.String()
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./apps -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from what the apps compute now (go test ./apps -update rewrites it):\n--- want\n%s\n--- got\n%s", path, want, got)
	}
}

func TestSeedFlowsGolden(t *testing.T) {
	v := topology.NewView(withVLANs(seedTopology()), 7)
	for _, h := range v.HostNames() {
		for _, b := range topology.Bridges() {
			flows := Flows(v, seedBridge(v, h, b))
			golden(t, filepath.Join("testdata", "seed", fmt.Sprintf("%s-%s.flows", h, b)), renderFlows(b, flows))
		}
	}
}

func TestSeedPlansGolden(t *testing.T) {
	v := topology.NewView(withVLANs(seedTopology()), 7)
	for _, h := range v.HostNames() {
		p := Plan(v, h)
		if err := p.Validate(); err != nil {
			t.Errorf("plan of %s: %v", h, err)
		}
		js, err := json.MarshalIndent(p, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, filepath.Join("testdata", "seed", h+"-plan.json"), string(js)+"\n")
	}
}

// TestFlowsObeyPipeline checks every computed flow against its table's declaration, and that
// no two flows of a bridge share a key (table, priority, match): OVS would keep only one.
func TestFlowsObeyPipeline(t *testing.T) {
	v := topology.NewView(withVLANs(seedTopology()), 7)
	for _, h := range v.HostNames() {
		for _, b := range topology.Bridges() {
			seen := map[ofproto.FlowKey]string{}
			for _, f := range Flows(v, seedBridge(v, h, b)) {
				if err := Check(b, &f); err != nil {
					t.Errorf("%s: %v", h, err)
				}
				if err := f.Validate(); err != nil {
					t.Errorf("%s %s: invalid flow %s: %v", h, b, f.String(), err)
				}
				if prev, dup := seen[f.Key()]; dup {
					t.Errorf("%s %s: two flows with one key:\n  %s\n  %s", h, b, prev, f.String())
				}
				seen[f.Key()] = f.String()
			}
		}
	}
}

func TestCheckRejects(t *testing.T) {
	bad := []ofproto.Flow{
		{Table: 99, Cookie: Cookie(AppL2)},
		{Table: IntTransient, Priority: 5, Cookie: Cookie(AppDVR), Match: ofproto.Match{ofproto.VLANVID(1)}},
		{Table: IntTransient, Priority: 5, Cookie: 0x1234, Match: ofproto.Match{ofproto.VLANVID(1)}},
		{Table: IntDVRToSrcMAC, Priority: 5, Cookie: Cookie(AppDVR), Match: ofproto.Match{ofproto.InPort(3)}},
		{Table: IntDVRToSrcMAC, Priority: 5, Cookie: Cookie(AppDVR), Match: ofproto.Match{ofproto.VLANVID(1)}, Goto: IntARPResponder, HasGoto: true},
	}
	for _, f := range bad {
		if err := Check(topology.BrInt, &f); err == nil {
			t.Errorf("Check accepted %s", f.String())
		}
	}
}

func TestPlacement(t *testing.T) {
	v := topology.NewView(withVLANs(seedTopology()), 7)
	for host, want := range map[string]int{"compute1": 3, "compute2": 2, "network": 3} {
		if got := len(v.NetworksOn(host)); got != want {
			t.Errorf("%s carries %d networks %v, want %d", host, got, v.NetworksOn(host), want)
		}
	}
	if got := v.RoutersOn("network"); len(got) != 0 {
		t.Errorf("network node runs qrouter for %v; it has no VM", got)
	}
	if h, _ := v.SNATHost("r1-0000000000000"); h != "network" {
		t.Errorf("snat host %q, want network", h)
	}
	// The host the database scheduled wins over the hash, when it is a dvr_snat host.
	sched := func(mode topology.HostMode, snatHost string) string {
		topo := withVLANs(seedTopology())
		topo.Hosts = append(topo.Hosts, topology.Host{Name: "network2", Mode: mode, TunnelIP: "192.168.248.4", MACAddress: "fa:16:3f:00:00:04"})
		topo.Routers[0].SNATHost = snatHost
		h, _ := topology.NewView(topo, 7).SNATHost("r1-0000000000000")
		return h
	}
	for _, c := range []struct {
		mode            topology.HostMode
		scheduled, want string
	}{
		{topology.HostModeDVRSNAT, "network2", "network2"},
		{topology.HostModeDVRSNAT, "network", "network"},
		{topology.HostModeDVR, "network2", "network"},
		{topology.HostModeDVRSNAT, "gone", "network2"}, // not a host: the hash of r1 among both picks network2
	} {
		if got := sched(c.mode, c.scheduled); got != c.want {
			t.Errorf("network2 %s, scheduled %s: snat host %s, want %s", c.mode, c.scheduled, got, c.want)
		}
	}
	nsNames := func(h string) []string {
		var out []string
		for _, ns := range Plan(v, h).Namespaces {
			out = append(out, ns.Name)
		}
		return out
	}
	// A qmeta- namespace for each network with a VM on the host (Net1 and Net2 on both),
	// none where no VM is.
	if got := strings.Join(nsNames("compute1"), " "); got != "qrouter-r1-0000000000000 fip-ext-0000000000000 qmeta-net1-000000000000 qmeta-net2-000000000000" {
		t.Errorf("compute1 namespaces: %s", got)
	}
	if got := strings.Join(nsNames("compute2"), " "); got != "qrouter-r1-0000000000000 qmeta-net1-000000000000 qmeta-net2-000000000000" {
		t.Errorf("compute2 namespaces: %s", got)
	}
	if got := strings.Join(nsNames("network"), " "); got != "snat-r1-0000000000000" {
		t.Errorf("network namespaces: %s", got)
	}
}

// TestVLANFlowsGolden: a VLAN provider network routed by the distributed router. br-ex
// rewrites the router's MAC to the host's DVR MAC (DVR_PROCESS_PHYSICAL); br-int tags frames
// of remote DVR MACs from the uplink and restores the gateway MAC (DVR_TO_SRC_MAC).
func TestVLANFlowsGolden(t *testing.T) {
	v := topology.NewView(withVLANs(withVLANNet(seedTopology())), 7)
	for _, b := range []topology.Bridge{topology.BrInt, topology.BrEx} {
		flows := Flows(v, seedBridge(v, "compute1", b))
		for _, f := range flows {
			if err := Check(b, &f); err != nil {
				t.Error(err)
			}
		}
		golden(t, filepath.Join("testdata", "vlan", "compute1-"+string(b)+".flows"), renderFlows(b, flows))
	}
}

// TestPortPartsNameEveryPort: the parts that are not PortParts have the same flows whatever
// ports other than the fixed ones a bridge has, so that a port-status of such a port
// recomputes PortParts only (the engine relies on it).
func TestPortPartsNameEveryPort(t *testing.T) {
	v := topology.NewView(withVLANs(withVLANNet(seedTopology())), 1)
	for _, h := range v.HostNames() {
		for _, br := range topology.Bridges() {
			st := seedBridge(v, h, br)
			bare := &BridgeState{Host: h, Bridge: br, Ports: map[string]uint32{}}
			for name, no := range st.Ports {
				if FixedPort(name) {
					bare.Ports[name] = no
				}
			}
			if len(bare.Ports) == len(st.Ports) {
				st.Ports["tap-other"] = 99 // br-tun, br-ex: a port of no VM
			}
			ported := PortParts(v, h)
			for _, part := range Parts(v, st) {
				if ported[part] {
					continue
				}
				got, want := FlowsOf(v, bare, part), FlowsOf(v, st, part)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s %s part %q: its flows depend on ports that are not fixed: %d flows with them, %d without",
						h, br, part, len(want), len(got))
				}
			}
		}
	}
}
