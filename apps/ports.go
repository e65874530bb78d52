package apps

import (
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/topology"
)

// Well-known OVS port names on every host (set up by the host helper, host/agent).
const (
	PortPatchTun = "patch-tun" // br-int end of the br-int <-> br-tun patch
	PortPatchInt = "patch-int" // br-tun end
	PortIntBrEx  = "int-br-ex" // br-int end of the br-int <-> br-ex patch
	PortPhyBrEx  = "phy-br-ex" // br-ex end
	PortVXLAN    = "vxlan0"    // the single flow-based VXLAN port of br-tun
)

// FixedPort reports whether name is one of the well-known ports the host helper sets up on
// every host, which every part of a bridge may name (PortParts names the others).
func FixedPort(name string) bool {
	switch name {
	case PortPatchTun, PortPatchInt, PortIntBrEx, PortPhyBrEx, PortVXLAN:
		return true
	}
	return false
}

// shortID cuts an ID to Neutron's 11 characters used in device names.
func shortID(id string) string {
	if len(id) > 11 {
		return id[:11]
	}
	return id
}

// VMPortName is the br-int port of a VM (or any port plugged like one): "tap" + 11
// characters of the port ID, as Nova names it.
func VMPortName(portID string) string { return "tap" + shortID(portID) }

// DeviceName is the name a port's device has where it terminates: in a namespace for the
// router and agent gateway ports (qr-, sg-, qg-, fg- + 11 characters of the port ID, as
// Neutron names them), the tap device for anything else.
func DeviceName(p *topology.Port) string {
	switch p.DeviceOwner {
	case topology.OwnerRouterInterfaceDistributed:
		return "qr-" + shortID(p.ID)
	case topology.OwnerRouterCentralizedSNAT:
		return "sg-" + shortID(p.ID)
	case topology.OwnerRouterGateway:
		return "qg-" + shortID(p.ID)
	case topology.OwnerFloatingIPAgentGateway:
		return "fg-" + shortID(p.ID)
	}
	return VMPortName(p.ID)
}

// OVSPortName is the name of the br-int port that carries port p on its host: the OVS end of
// the namespace veth for the ports the helper plans links for (nsLinked), the tap for VM
// ports and any other.
func OVSPortName(p *topology.Port) string {
	if nsLinked(p) {
		return plan.OVSPeerName(DeviceName(p))
	}
	return VMPortName(p.ID)
}

// HasOVSPortName reports whether OVSPortName(p) is name, without building a tap's name (the
// DHCP packet-in path asks it of every port of a host).
func HasOVSPortName(p *topology.Port, name string) bool {
	if nsLinked(p) {
		return OVSPortName(p) == name
	}
	id := shortID(p.ID)
	return len(name) == 3+len(id) && name[:3] == "tap" && name[3:] == id
}

// nsLinked reports whether port p ends in a namespace of a plan, through a veth whose other
// end the helper plugs: router interfaces, gateways and SNAT ports, floating IP agent
// gateways, and the network's DHCP server (View.DHCPServer: its tap in the qmeta-
// namespaces).
func nsLinked(p *topology.Port) bool {
	switch p.DeviceOwner {
	case topology.OwnerRouterInterfaceDistributed, topology.OwnerRouterCentralizedSNAT, topology.OwnerRouterGateway,
		topology.OwnerFloatingIPAgentGateway:
		return true
	case topology.OwnerDHCP:
		return p.HostID == ""
	}
	return false
}
