// Package topology is dvrflow's domain model: the Neutron records the store holds (networks,
// subnets, ports, routers, floating IPs, hosts and their local VLANs), the change log's
// decoded entries, and the View, the controller's in-memory index of them that the policy
// asks its questions of and that the change log keeps current.
package topology

import (
	"strings"
	"time"
)

// Device owners the store allocates or recognizes (dvr-reference.md section 0); a port's
// device_owner is free-form otherwise ("compute:nova").
const (
	OwnerRouterInterfaceDistributed = "network:router_interface_distributed"
	OwnerRouterCentralizedSNAT      = "network:router_centralized_snat"
	OwnerRouterGateway              = "network:router_gateway"
	OwnerFloatingIPAgentGateway     = "network:floatingip_agent_gateway"
	OwnerFloatingIP                 = "network:floatingip"
	OwnerDHCP                       = "network:dhcp"
)

// IsRouterPort reports whether a port's device is a router (its DeviceID is the router ID).
func IsRouterPort(owner string) bool {
	return owner == OwnerRouterInterfaceDistributed || owner == OwnerRouterCentralizedSNAT ||
		owner == OwnerRouterGateway
}

// IsDVRServiced reports whether a port's device owner makes its host serve the port's
// routers (Neutron's is_dvr_serviced): VMs, DHCP ports, load balancers, trunk subports.
func IsDVRServiced(owner string) bool {
	return strings.HasPrefix(owner, "compute:") || owner == OwnerDHCP ||
		owner == "neutron:LOADBALANCER" || owner == "neutron:LOADBALANCERV2" || owner == "trunk:subport"
}

// PortStatus is a port's status, as Neutron reports it.
type PortStatus string

// Port statuses.
const (
	PortStatusActive PortStatus = "ACTIVE"
	PortStatusDown   PortStatus = "DOWN"
	PortStatusBuild  PortStatus = "BUILD"
	PortStatusError  PortStatus = "ERROR"
	// PortStatusNotApplicable is a floating IP port's: it is realized as NAT, never
	// plugged (Neutron's PORT_STATUS_NOTAPPLICABLE).
	PortStatusNotApplicable PortStatus = "N/A"
)

// Network types.
const (
	NetworkTypeVXLAN = "vxlan"
	NetworkTypeVLAN  = "vlan"
	NetworkTypeFlat  = "flat"
)

// HostMode is a host's L3 agent mode.
type HostMode string

// Host modes.
const (
	HostModeDVR     HostMode = "dvr"      // compute node: qrouter and fip namespaces
	HostModeDVRSNAT HostMode = "dvr_snat" // network node: also routers' snat namespaces
)

// Kind is the kind of resource a change-log entry is of.
type Kind string

// Change kinds, as recorded in the change log.
const (
	KindNetwork    Kind = "network"
	KindSubnet     Kind = "subnet"
	KindPort       Kind = "port"
	KindRouter     Kind = "router"
	KindFloatingIP Kind = "floatingip"
	KindHost       Kind = "host"
	KindLocalVLAN  Kind = "local_vlan"
	// KindSecurityGroup is a group without its rules; each rule is a change of its own.
	KindSecurityGroup     Kind = "security_group"
	KindSecurityGroupRule Kind = "security_group_rule"
	// KindSubnetPool is a subnet pool: API state only, nothing on the switches depends on it.
	KindSubnetPool Kind = "subnetpool"
)

// Op is what a change-log entry did.
type Op string

// Change operations.
const (
	OpCreate Op = "create"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// Network is a Neutron network with its single segment.
type Network struct {
	ID              string `json:"id"`
	ProjectID       string `json:"project_id"`
	Name            string `json:"name"`
	Description     string `json:"description"`
	AdminStateUp    bool   `json:"admin_state_up"`
	Status          string `json:"status"`
	Shared          bool   `json:"shared"`
	External        bool   `json:"external"`
	NetworkType     string `json:"network_type"`
	PhysicalNetwork string `json:"physical_network"`
	SegmentationID  int64  `json:"segmentation_id"`
	MTU             int    `json:"mtu"`
	// PortSecurityEnabled is what the network's new ports inherit when they do not say.
	PortSecurityEnabled bool      `json:"port_security_enabled"`
	Subnets             []string  `json:"subnets"`
	CreatedAt           time.Time `json:"created_at"`
	UpdatedAt           time.Time `json:"updated_at"`
	RevisionNumber      int64     `json:"revision_number"`

	// Tags are the resource's Neutron tags (standard-attr-tag): API state only, no flow
	// depends on them. A resource without tags has none stored.
	Tags []string `json:"tags,omitempty"`
}

// AllocationPool is an inclusive range of IPv4 addresses.
type AllocationPool struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// HostRoute is a static route handed to instances by DHCP.
type HostRoute struct {
	Destination string `json:"destination"`
	NextHop     string `json:"nexthop"`
}

// Subnet is a subnet of a network, IPv4 or IPv6 (IPVersion).
type Subnet struct {
	ID              string           `json:"id"`
	NetworkID       string           `json:"network_id"`
	ProjectID       string           `json:"project_id"`
	Name            string           `json:"name"`
	Description     string           `json:"description"`
	IPVersion       int              `json:"ip_version"`
	CIDR            string           `json:"cidr"`
	GatewayIP       string           `json:"gateway_ip"` // "" when the subnet has no gateway
	AllocationPools []AllocationPool `json:"allocation_pools"`
	HostRoutes      []HostRoute      `json:"host_routes"`
	DNSNameservers  []string         `json:"dns_nameservers"`
	EnableDHCP      bool             `json:"enable_dhcp"`
	SubnetPoolID    string           `json:"subnetpool_id,omitempty"` // "" when not allocated from a pool
	// IPv6RAMode and IPv6AddressMode are an IPv6 subnet's ipv6_ra_mode and
	// ipv6_address_mode (IPv6SLAAC, IPv6DHCPStateful, IPv6DHCPStateless), "" when unset.
	IPv6RAMode      string    `json:"ipv6_ra_mode,omitempty"`
	IPv6AddressMode string    `json:"ipv6_address_mode,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	RevisionNumber  int64     `json:"revision_number"`

	// Tags are the resource's Neutron tags (standard-attr-tag): API state only, no flow
	// depends on them. A resource without tags has none stored.
	Tags []string `json:"tags,omitempty"`
}

// FixedIP is one address of a port.
type FixedIP struct {
	SubnetID  string `json:"subnet_id"`
	IPAddress string `json:"ip_address"`
}

// Port is a Neutron port. HostID is binding:host_id.
type Port struct {
	ID           string     `json:"id"`
	NetworkID    string     `json:"network_id"`
	ProjectID    string     `json:"project_id"`
	Name         string     `json:"name"`
	Description  string     `json:"description"`
	MACAddress   string     `json:"mac_address"`
	FixedIPs     []FixedIP  `json:"fixed_ips"`
	DeviceOwner  string     `json:"device_owner"`
	DeviceID     string     `json:"device_id"`
	HostID       string     `json:"host_id"`
	Status       PortStatus `json:"status"`
	AdminStateUp bool       `json:"admin_state_up"`
	// PortSecurityEnabled turns on anti-spoofing and the security groups of the port;
	// SecurityGroups are their IDs (sorted), AllowedAddressPairs the other addresses the
	// port may send from.
	PortSecurityEnabled bool          `json:"port_security_enabled"`
	SecurityGroups      []string      `json:"security_groups"`
	AllowedAddressPairs []AddressPair `json:"allowed_address_pairs"`
	// ExtraDHCPOpts are DHCP options the port's DHCP answers add or override (Neutron's extra_dhcp_opt).
	ExtraDHCPOpts  []ExtraDHCPOpt `json:"extra_dhcp_opts"`
	CreatedAt      time.Time      `json:"created_at"`
	UpdatedAt      time.Time      `json:"updated_at"`
	RevisionNumber int64          `json:"revision_number"`

	// Tags are the resource's Neutron tags (standard-attr-tag): API state only, no flow
	// depends on them. A resource without tags has none stored.
	Tags []string `json:"tags,omitempty"`
}

// ExtraDHCPOpt is one DHCP option of a port, as Neutron's extra_dhcp_opt extension has it:
// the option's name (a dnsmasq name such as "tftp-server" or "mtu", or its number), its
// value as text, and the IP version (4 or 6) of the answers it goes in. A port has at
// most one option per name and version.
type ExtraDHCPOpt struct {
	OptName   string `json:"opt_name"`
	OptValue  string `json:"opt_value"`
	IPVersion int    `json:"ip_version"`
}

// AddressPair is an allowed address pair of a port: an address or prefix, and the MAC
// it may come from (the port's own when none was given).
type AddressPair struct {
	IPAddress  string `json:"ip_address"`
	MACAddress string `json:"mac_address"`
}

// SecurityGroup is a Neutron security group; its rules are records of their own.
// Stateful groups are enforced with connection tracking, stateless ones per packet.
type SecurityGroup struct {
	ID          string `json:"id"`
	ProjectID   string `json:"project_id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Stateful    bool   `json:"stateful"`
	// Tag is a number unique among groups, assigned by the store when the group is
	// created and never reused: it names the group in flows (its conjunction IDs).
	Tag            uint32    `json:"tag"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	RevisionNumber int64     `json:"revision_number"`

	// Tags are the resource's Neutron tags (standard-attr-tag): API state only, no flow
	// depends on them. A resource without tags has none stored.
	Tags []string `json:"tags,omitempty"`
}

// Security group rule directions and ethertypes.
const (
	DirectionIngress = "ingress"
	DirectionEgress  = "egress"
	EtherTypeIPv4    = "IPv4"
	EtherTypeIPv6    = "IPv6"
)

// SecurityGroupRule allows one kind of traffic into (ingress) or out of (egress) the
// ports of its group. Protocol is "" for any, a lower-case name or a decimal number;
// PortRangeMin/Max are the port range for TCP, UDP, SCTP, DCCP and UDP-Lite, ICMP type
// and code for ICMP (nil: any). At most one of RemoteIPPrefix (a normalized prefix) and
// RemoteGroupID names the other end; neither means anywhere.
type SecurityGroupRule struct {
	ID              string    `json:"id"`
	ProjectID       string    `json:"project_id"`
	SecurityGroupID string    `json:"security_group_id"`
	Direction       string    `json:"direction"`
	EtherType       string    `json:"ethertype"`
	Protocol        string    `json:"protocol"`
	PortRangeMin    *int      `json:"port_range_min"`
	PortRangeMax    *int      `json:"port_range_max"`
	RemoteIPPrefix  string    `json:"remote_ip_prefix"`
	RemoteGroupID   string    `json:"remote_group_id"`
	Description     string    `json:"description"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
	RevisionNumber  int64     `json:"revision_number"`
}

// GatewayInfo is a router's external gateway.
type GatewayInfo struct {
	NetworkID        string    `json:"network_id"`
	EnableSNAT       bool      `json:"enable_snat"`
	ExternalFixedIPs []FixedIP `json:"external_fixed_ips"`
	PortID           string    `json:"port_id"`
}

// Router is a (distributed) router. LinkLocal is the rfp/fpr /31 from 169.254.64.0/18,
// set while the router has a gateway.
type Router struct {
	ID           string       `json:"id"`
	ProjectID    string       `json:"project_id"`
	Name         string       `json:"name"`
	Description  string       `json:"description"`
	AdminStateUp bool         `json:"admin_state_up"`
	Status       string       `json:"status"`
	Distributed  bool         `json:"distributed"`
	Gateway      *GatewayInfo `json:"gateway,omitempty"`
	LinkLocal    string       `json:"link_local,omitempty"`
	// SNATHost is the dvr_snat host running the router's snat namespace (see snat.go).
	SNATHost       string    `json:"snat_host,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	UpdatedAt      time.Time `json:"updated_at"`
	RevisionNumber int64     `json:"revision_number"`

	// Tags are the resource's Neutron tags (standard-attr-tag): API state only, no flow
	// depends on them. A resource without tags has none stored.
	Tags []string `json:"tags,omitempty"`
}

// RouterInterface is one subnet attached to a router through a
// network:router_interface_distributed port.
type RouterInterface struct {
	RouterID  string `json:"router_id"`
	SubnetID  string `json:"subnet_id"`
	PortID    string `json:"port_id"`
	NetworkID string `json:"network_id"`
	ProjectID string `json:"project_id"`
}

// FloatingIP maps an external address to a port's fixed address.
type FloatingIP struct {
	ID                string    `json:"id"`
	ProjectID         string    `json:"project_id"`
	Description       string    `json:"description"`
	FloatingNetworkID string    `json:"floating_network_id"`
	FloatingIPAddress string    `json:"floating_ip_address"`
	FloatingPortID    string    `json:"floating_port_id"`
	PortID            string    `json:"port_id"`
	FixedIPAddress    string    `json:"fixed_ip_address"`
	RouterID          string    `json:"router_id"`
	Status            string    `json:"status"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
	RevisionNumber    int64     `json:"revision_number"`

	// Tags are the resource's Neutron tags (standard-attr-tag): API state only, no flow
	// depends on them. A resource without tags has none stored.
	Tags []string `json:"tags,omitempty"`
}

// Host is a registered DVR host (compute node or network node).
type Host struct {
	Name            string            `json:"host"`
	TunnelIP        string            `json:"tunnel_ip"`
	Mode            HostMode          `json:"mode"`
	Bridges         map[string]string `json:"bridges"`
	MACAddress      string            `json:"mac_address"`
	AppliedRevision int64             `json:"applied_revision"`
	Heartbeat       time.Time         `json:"heartbeat"`
	CreatedAt       time.Time         `json:"created_at"`
	UpdatedAt       time.Time         `json:"updated_at"`
}

// SubnetPool is a Neutron subnet pool (subnet_allocation): prefixes subnets are allocated
// from. Prefixes are normalized, merged and sorted (netaddr's IPSet.iter_cidrs order);
// IPVersion follows from them. DefaultQuota is nil when the pool has none.
type SubnetPool struct {
	ID               string    `json:"id"`
	ProjectID        string    `json:"project_id"`
	Name             string    `json:"name"`
	Description      string    `json:"description"`
	IPVersion        int       `json:"ip_version"`
	Prefixes         []string  `json:"prefixes"`
	DefaultPrefixLen int       `json:"default_prefixlen"`
	MinPrefixLen     int       `json:"min_prefixlen"`
	MaxPrefixLen     int       `json:"max_prefixlen"`
	DefaultQuota     *int64    `json:"default_quota"`
	Shared           bool      `json:"shared"`
	IsDefault        bool      `json:"is_default"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
	RevisionNumber   int64     `json:"revision_number"`

	// Tags are the resource's Neutron tags (standard-attr-tag): API state only, no flow
	// depends on them. A resource without tags has none stored.
	Tags []string `json:"tags,omitempty"`
}

// LocalVLAN is the br-int VLAN a network uses on one host.
type LocalVLAN struct {
	Host      string `json:"host"`
	NetworkID string `json:"network_id"`
	VLAN      uint16 `json:"vlan"`
}

// Key is the local VLAN's ID in the change log: host and network.
func (lv LocalVLAN) Key() string { return lv.Host + "/" + lv.NetworkID }

// Topology is every resource at one revision.
type Topology struct {
	Networks    []Network
	Subnets     []Subnet
	Ports       []Port
	Routers     []Router
	FloatingIPs []FloatingIP
	Hosts       []Host
	LocalVLANs  []LocalVLAN
	// SecurityGroups and SecurityGroupRules are every group and rule.
	SecurityGroups     []SecurityGroup
	SecurityGroupRules []SecurityGroupRule
}

// IPv6 address and router advertisement modes of a subnet (ipv6_address_mode,
// ipv6_ra_mode).
const (
	IPv6SLAAC         = "slaac"
	IPv6DHCPStateful  = "dhcpv6-stateful"
	IPv6DHCPStateless = "dhcpv6-stateless"
)

// IsIPv4 tells whether the subnet is IPv4.
func (s *Subnet) IsIPv4() bool { return s.IPVersion != 6 }

// IsAutoAddress tells whether the subnet's ports take their address from their MAC
// (EUI-64) rather than from its pools: an IPv6 subnet in SLAAC or DHCPv6-stateless mode,
// by either attribute (Neutron's ipv6_utils.is_auto_address_subnet).
func (s *Subnet) IsAutoAddress() bool {
	auto := func(m string) bool { return m == IPv6SLAAC || m == IPv6DHCPStateless }
	return s.IPVersion == 6 && (auto(s.IPv6AddressMode) || auto(s.IPv6RAMode))
}
