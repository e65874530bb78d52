package topology_test

import (
	"crypto/sha1"
	"encoding/hex"
	"slices"
	"testing"

	"github.com/dvrflow/dvrflow/topology"
)

// TestDHCPAgentUUID checks the constant is uuid5(NAMESPACE_DNS, "dvrflow") (RFC 9562
// section 5.5), as Neutron's DHCP agent derives its own from its host name.
func TestDHCPAgentUUID(t *testing.T) {
	ns, _ := hex.DecodeString("6ba7b8109dad11d180b400c04fd430c8") // NAMESPACE_DNS
	sum := sha1.Sum(append(ns, "dvrflow"...))
	u := sum[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u)
	want := h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	if topology.DHCPAgentUUID != want {
		t.Fatalf("DHCPAgentUUID = %s, want uuid5(DNS, dvrflow) = %s", topology.DHCPAgentUUID, want)
	}
	if got := topology.DHCPDeviceID("n1"); got != "dhcp"+want+"-n1" {
		t.Fatalf("DHCPDeviceID(n1) = %s", got)
	}
}

func TestIsManagedDHCPPort(t *testing.T) {
	for _, c := range []struct {
		p    topology.Port
		want bool
	}{
		{topology.Port{NetworkID: "n1", DeviceOwner: topology.OwnerDHCP, DeviceID: topology.DHCPDeviceID("n1")}, true},
		{topology.Port{NetworkID: "n2", DeviceOwner: topology.OwnerDHCP, DeviceID: topology.DHCPDeviceID("n1")}, false},
		{topology.Port{NetworkID: "n1", DeviceOwner: topology.OwnerDHCP, DeviceID: "reserved_dhcp_port"}, false},
		{topology.Port{NetworkID: "n1", DeviceOwner: "compute:nova", DeviceID: topology.DHCPDeviceID("n1")}, false},
		{topology.Port{NetworkID: "", DeviceOwner: topology.OwnerDHCP, DeviceID: topology.DHCPDeviceID("")}, true},
	} {
		if got := topology.IsManagedDHCPPort(&c.p); got != c.want {
			t.Errorf("IsManagedDHCPPort(%+v) = %v, want %v", c.p, got, c.want)
		}
	}
}

// TestExtraDHCPOptsReachTheView applies an update of a bound VM port that changes only its
// extra DHCP options: the view's port has them, and no host's flows or plan are touched.
func TestExtraDHCPOptsReachTheView(t *testing.T) {
	topo := &topology.Topology{
		Hosts:    []topology.Host{{Name: "h1", TunnelIP: "192.168.248.1", Mode: topology.HostModeDVR, MACAddress: "fa:16:3f:00:00:01", Bridges: map[string]string{"br-int": "1"}}},
		Networks: []topology.Network{{ID: "n1", NetworkType: topology.NetworkTypeVXLAN, SegmentationID: 1001, MTU: 1450, Subnets: []string{"s1"}}},
		Subnets:  []topology.Subnet{{ID: "s1", NetworkID: "n1", IPVersion: 4, CIDR: "10.0.1.0/24", GatewayIP: "10.0.1.1", EnableDHCP: true}},
		Ports: []topology.Port{{ID: "p1", NetworkID: "n1", MACAddress: "fa:16:3e:00:00:05", DeviceOwner: "compute:nova", DeviceID: "vm1",
			HostID: "h1", FixedIPs: []topology.FixedIP{{SubnetID: "s1", IPAddress: "10.0.1.5"}}, ExtraDHCPOpts: []topology.ExtraDHCPOpt{}}},
	}
	v := topology.NewView(topo, 1)
	p := topo.Ports[0]
	p.ExtraDHCPOpts = []topology.ExtraDHCPOpt{{OptName: "tftp-server", OptValue: "10.0.1.9", IPVersion: 4}, {OptName: "mtu", OptValue: "1400", IPVersion: 4}}
	p.RevisionNumber++
	aff, err := v.Apply([]topology.Change{{Revision: 2, Kind: topology.KindPort, ID: "p1", Op: topology.OpUpdate, Object: &p}})
	if err != nil {
		t.Fatal(err)
	}
	got := v.Port("p1")
	if got == nil || !slices.Equal(got.Port.ExtraDHCPOpts, p.ExtraDHCPOpts) || got.RevisionNumber != p.RevisionNumber {
		t.Fatalf("view's port after the update: %+v, want extra DHCP options %v", got, p.ExtraDHCPOpts)
	}
	if aff.All || len(aff.Hosts) != 0 || len(aff.Parts) != 0 || len(aff.Plans) != 0 || !aff.Ports["p1"] {
		t.Fatalf("an extra DHCP option change affected %+v, want the port's record alone", aff)
	}
	// Removing them again reaches the view as well.
	q := p
	q.ExtraDHCPOpts = []topology.ExtraDHCPOpt{}
	if _, err := v.Apply([]topology.Change{{Revision: 3, Kind: topology.KindPort, ID: "p1", Op: topology.OpUpdate, Object: &q}}); err != nil {
		t.Fatal(err)
	}
	if n := len(v.Port("p1").ExtraDHCPOpts); n != 0 {
		t.Fatalf("view's port keeps %d extra DHCP options after they were removed", n)
	}
}
