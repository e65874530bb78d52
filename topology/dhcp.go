// The network:dhcp port the store keeps on each network that has DHCP-enabled subnets.

package topology

import "strings"

// DHCPAgentUUID is the host part of the device_id of the DHCP ports the store manages.
// Neutron's DHCP agent names its port on a network "dhcp<uuid5(NAMESPACE_DNS, host)>-<network
// ID>"; dvrflow's DHCP server is the controller, answering on every host, so its host is
// "dvrflow": this is uuid5(NAMESPACE_DNS, "dvrflow").
const DHCPAgentUUID = "17b056ad-ebf6-54e9-9d22-df729fe2f908"

// dhcpDevicePrefix starts the device_id of every managed DHCP port.
const dhcpDevicePrefix = "dhcp" + DHCPAgentUUID + "-"

// DHCPDeviceID returns the device_id of the DHCP port the store manages on network netID.
func DHCPDeviceID(netID string) string { return dhcpDevicePrefix + netID }

// IsManagedDHCPPort reports whether p is the DHCP port the store manages for its network
// (device_owner network:dhcp, device_id DHCPDeviceID of its network). Its fixed IPs are
// the DHCP server's address on each DHCP-enabled subnet of the network that had a free
// address for it; it is bound to no host. Users may create network:dhcp ports of their
// own: those are not managed.
func IsManagedDHCPPort(p *Port) bool {
	return p.DeviceOwner == OwnerDHCP && strings.HasPrefix(p.DeviceID, dhcpDevicePrefix) &&
		p.DeviceID[len(dhcpDevicePrefix):] == p.NetworkID
}
