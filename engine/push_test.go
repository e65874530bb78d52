package engine

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/topology"
)

// peersTopology is two dvr hosts, each with a VM on net1 behind distributed router R1:
// each host is the other's DVR peer.
func peersTopology() *topology.Topology {
	t := &topology.Topology{}
	for i, h := range []string{"compute1", "compute2"} {
		t.Hosts = append(t.Hosts, topology.Host{Name: h, Mode: "dvr", TunnelIP: fmt.Sprintf("192.168.248.%d", i+1),
			MACAddress: fmt.Sprintf("fa:16:3f:00:00:%02x", i+1),
			Bridges: map[string]string{"br-int": fmt.Sprintf("00000000000001%02x", i+1),
				"br-tun": fmt.Sprintf("00000000000002%02x", i+1), "br-ex": fmt.Sprintf("00000000000003%02x", i+1)}})
	}
	t.Networks = []topology.Network{{ID: "net1-000000000000", Name: "Net1", NetworkType: "vxlan", SegmentationID: 1001, MTU: 1450}}
	t.Subnets = []topology.Subnet{{ID: "sub1-000000000000", NetworkID: "net1-000000000000", IPVersion: 4, CIDR: "10.0.1.0/24",
		GatewayIP: "10.0.1.1", EnableDHCP: true}}
	port := func(id, ip, owner, device, host string) topology.Port {
		return topology.Port{ID: id, NetworkID: "net1-000000000000", MACAddress: "fa:16:3e:00:01:" + ip[len(ip)-2:], DeviceOwner: owner,
			DeviceID: device, HostID: host, FixedIPs: []topology.FixedIP{{SubnetID: "sub1-000000000000", IPAddress: ip}}}
	}
	t.Ports = []topology.Port{
		port("qr1-000000000000", "10.0.1.11", topology.OwnerRouterInterfaceDistributed, "r1", ""),
		port("vm1-000000000000", "10.0.1.15", "compute:nova", "vm1", "compute1"),
		port("vm2-000000000000", "10.0.1.16", "compute:nova", "vm2", "compute2"),
	}
	t.Routers = []topology.Router{{ID: "r1", Name: "R1", Distributed: true, LinkLocal: "169.254.64.0/31"}}
	return t
}

// TestPortStatusPushesPortPartsOnly: a port other than the fixed ones plugged on a bridge
// recomputes the parts that name ports, not the DVR peers' (a network node has thousands:
// at 5,000 hosts its whole br-int took over a second per port-status); a connect, or a
// fixed port changing, still recomputes the whole bridge.
func TestPortStatusPushesPortPartsOnly(t *testing.T) {
	v := topology.NewView(peersTopology(), 1)
	e := New(zaptest.NewLogger(t), Config{}, nil, nil)
	ids := map[topology.Bridge]uint64{}
	for _, br := range topology.Bridges() {
		id, ok := v.Host("compute1").BridgeID(br)
		if !ok {
			t.Fatalf("compute1 has no %s", br)
		}
		ids[br] = id
		e.onEvent(controller.SwitchConnected{DPID: id})
	}
	st := &apps.BridgeState{Host: "compute1", Bridge: topology.BrInt}
	if !slices.Contains(apps.Parts(v, st), topology.PeerPart("compute2")) {
		t.Fatalf("compute1's br-int has no part for its peer compute2: %q", apps.Parts(v, st))
	}
	pushes := func() map[uint64]map[string]bool {
		e.mu.Lock()
		dirty := e.dirtyDPIDs
		e.dirtyDPIDs = map[uint64]bool{}
		todo := e.pushesOf(v, false, nil, nil, dirty)
		e.mu.Unlock()
		out := map[uint64]map[string]bool{}
		for _, p := range todo {
			if _, dup := out[p.b.dpid]; dup {
				t.Fatalf("bridge %016x pushed twice", p.b.dpid)
			}
			out[p.b.dpid] = p.parts
		}
		return out
	}
	if got := pushes(); len(got) != 3 || got[ids[topology.BrInt]] != nil || got[ids[topology.BrTun]] != nil {
		t.Fatalf("after connecting: pushed %v, want every part of the 3 bridges", got)
	}

	tap := controller.Port{No: 7, Name: apps.VMPortName("vm1-000000000000")}
	e.onEvent(controller.PortStatus{DPID: ids[topology.BrInt], Reason: controller.PortAdded, Port: tap})
	got := pushes()
	want := map[string]bool{topology.PartBridge: true, "net1-000000000000": true}
	if len(got) != 1 || got[ids[topology.BrInt]] == nil || !maps.Equal(got[ids[topology.BrInt]], want) {
		t.Fatalf("after a tap came: pushed %v, want br-int's parts %v only", got, want)
	}

	// A port-status after a connect, before the pass: the connect's whole push stands.
	e.onEvent(controller.SwitchConnected{DPID: ids[topology.BrInt]})
	e.onEvent(controller.PortStatus{DPID: ids[topology.BrInt], Reason: controller.PortModified, Port: tap})
	if got := pushes(); len(got) != 1 || got[ids[topology.BrInt]] != nil {
		t.Fatalf("after a connect then a port-status: pushed %v, want every part of br-int", got)
	}
	e.onEvent(controller.PortStatus{DPID: ids[topology.BrInt], Reason: controller.PortAdded, Port: controller.Port{No: 1, Name: apps.PortPatchTun}})
	if got := pushes(); len(got) != 1 || got[ids[topology.BrInt]] != nil {
		t.Fatalf("after %s came: pushed %v, want every part of br-int", apps.PortPatchTun, got)
	}
}
