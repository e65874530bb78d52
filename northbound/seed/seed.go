// Package seed creates dvrflow's reference topology through the Neutron API with
// gophercloud's own networking/v2 packages: Net1 10.0.1.0/24, Net2 10.0.2.0/24, an
// external flat network 172.24.4.0/24, a distributed router R1 with both interfaces and
// the gateway, hosts compute1/compute2 (dvr) and network (dvr_snat), four VM ports
// (VM1 10.0.1.5 and VM3 10.0.2.3 on compute1, VM2 10.0.2.5 and VM4 10.0.1.6 on
// compute2) and floating IPs 172.24.4.5 -> VM1 and 172.24.4.7 -> VM3. Every VM port is in
// the project's default group (its members reach each other, the rest of the world does
// not get in); the two with floating IPs are also in "public", which lets ICMP and SSH in
// from anywhere. DHCP is turned on for Net1 and Net2 once the router's SNAT ports (10.0.1.2,
// 10.0.2.2) and the VMs have their addresses, so their DHCP ports take 10.0.1.3 and
// 10.0.2.4 (with DHCP on from the start, the DHCP port would take .2 and Net2's SNAT port
// VM3's 10.0.2.3). The demo, the API tests and the DVR integration tests all build it with
// Create.
package seed

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/external"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsbinding"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/provider"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// NewClient returns a networking v2 client for a dvrflow API at endpoint (e.g.
// "http://127.0.0.1:9696") with a static token: no identity service is involved.
func NewClient(endpoint, token string) *gophercloud.ServiceClient {
	endpoint = strings.TrimSuffix(endpoint, "/") + "/"
	pc := &gophercloud.ProviderClient{TokenID: token, HTTPClient: http.Client{}}
	return &gophercloud.ServiceClient{ProviderClient: pc, Endpoint: endpoint, ResourceBase: endpoint + "v2.0/", Type: "network"}
}

// Host is a host of the seed topology.
type Host struct {
	Name     string
	TunnelIP string
	Mode     string
	Bridges  map[string]string
}

// VM is a VM port of the seed topology.
type VM struct {
	Name    string
	Network string // "net1" or "net2"
	IP      string
	Host    string
}

// Options say what to create; DefaultOptions is the reference topology.
type Options struct {
	ProjectID       string // project of the tenant resources ("" = the caller's)
	PhysicalNetwork string // physnet of the flat external network
	Hosts           []Host
	VMs             []VM
	FloatingIPs     map[string]string // VM name -> floating IP address
}

// DefaultOptions returns the reference topology.
func DefaultOptions() Options {
	return Options{
		ProjectID:       "demo",
		PhysicalNetwork: "public",
		Hosts: []Host{
			{Name: "compute1", TunnelIP: "192.168.248.1", Mode: "dvr"},
			{Name: "compute2", TunnelIP: "192.168.248.2", Mode: "dvr"},
			{Name: "network", TunnelIP: "192.168.248.3", Mode: "dvr_snat"},
		},
		VMs: []VM{
			{Name: "VM1", Network: "net1", IP: "10.0.1.5", Host: "compute1"},
			{Name: "VM2", Network: "net2", IP: "10.0.2.5", Host: "compute2"},
			{Name: "VM3", Network: "net2", IP: "10.0.2.3", Host: "compute1"},
			{Name: "VM4", Network: "net1", IP: "10.0.1.6", Host: "compute2"},
		},
		FloatingIPs: map[string]string{"VM1": "172.24.4.5", "VM3": "172.24.4.7"},
	}
}

// HostInfo is a registered host as the dvr-hosts extension returns it.
type HostInfo struct {
	Host       string            `json:"host"`
	TunnelIP   string            `json:"tunnel_ip"`
	Mode       string            `json:"mode"`
	Bridges    map[string]string `json:"bridges"`
	MACAddress string            `json:"mac_address"`
}

// Topology is what Create made.
type Topology struct {
	Net1, Net2, External          networks.Network
	Subnet1, Subnet2, ExternalSub subnets.Subnet
	Router                        routers.Router
	Interfaces                    []routers.InterfaceInfo
	Hosts                         map[string]HostInfo
	VMs                           map[string]ports.Port
	FloatingIPs                   map[string]floatingips.FloatingIP // by VM name
	// DefaultGroup is the project's default security group, PublicGroup the group of the
	// VMs with floating IPs (ICMP and tcp/22 in from anywhere).
	DefaultGroup, PublicGroup groups.SecGroup
}

// RegisterHost registers (or refreshes) a host through the dvr-hosts extension.
func RegisterHost(ctx context.Context, c *gophercloud.ServiceClient, h Host) (HostInfo, error) {
	var res struct {
		Host HostInfo `json:"dvr_host"`
	}
	body := map[string]any{"dvr_host": map[string]any{"tunnel_ip": h.TunnelIP, "mode": h.Mode, "bridges": h.Bridges}}
	if h.Bridges == nil {
		body["dvr_host"].(map[string]any)["bridges"] = map[string]string{}
	}
	_, err := c.Put(ctx, c.ServiceURL("dvr-hosts", h.Name), body, &res, &gophercloud.RequestOpts{OkCodes: []int{200, 201}})
	if err != nil {
		return HostInfo{}, fmt.Errorf("register host %s: %w", h.Name, err)
	}
	return res.Host, nil
}

// Create builds the topology of opts through the API. It stops at the first error; what
// was created before stays.
func Create(ctx context.Context, c *gophercloud.ServiceClient, opts Options) (*Topology, error) {
	t := &Topology{Hosts: map[string]HostInfo{}, VMs: map[string]ports.Port{}, FloatingIPs: map[string]floatingips.FloatingIP{}}
	for _, h := range opts.Hosts {
		info, err := RegisterHost(ctx, c, h)
		if err != nil {
			return t, err
		}
		t.Hosts[h.Name] = info
	}
	yes, no := true, false
	var err error
	for _, n := range []struct {
		dst  *networks.Network
		sub  *subnets.Subnet
		name string
		cidr string
	}{{&t.Net1, &t.Subnet1, "net1", "10.0.1.0/24"}, {&t.Net2, &t.Subnet2, "net2", "10.0.2.0/24"}} {
		nw, err := networks.Create(ctx, c, networks.CreateOpts{Name: n.name, ProjectID: opts.ProjectID, AdminStateUp: &yes}).Extract()
		if err != nil {
			return t, fmt.Errorf("create network %s: %w", n.name, err)
		}
		*n.dst = *nw
		sn, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: nw.ID, Name: n.name + "-subnet", CIDR: n.cidr,
			IPVersion: gophercloud.IPv4, ProjectID: opts.ProjectID, EnableDHCP: &no}).Extract()
		if err != nil {
			return t, fmt.Errorf("create subnet %s: %w", n.cidr, err)
		}
		*n.sub = *sn
	}
	ext, err := networks.Create(ctx, c, external.CreateOptsExt{
		CreateOptsBuilder: provider.CreateOptsExt{
			CreateOptsBuilder: networks.CreateOpts{Name: "public", AdminStateUp: &yes},
			Segments:          []provider.Segment{{NetworkType: "flat", PhysicalNetwork: opts.PhysicalNetwork}},
		},
		External: &yes,
	}).Extract()
	if err != nil {
		return t, fmt.Errorf("create external network: %w", err)
	}
	t.External = *ext
	esn, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: ext.ID, Name: "public-subnet", CIDR: "172.24.4.0/24",
		IPVersion: gophercloud.IPv4, EnableDHCP: &no}).Extract()
	if err != nil {
		return t, fmt.Errorf("create external subnet: %w", err)
	}
	t.ExternalSub = *esn
	r, err := routers.Create(ctx, c, routers.CreateOpts{Name: "R1", ProjectID: opts.ProjectID, Distributed: &yes,
		AdminStateUp: &yes, GatewayInfo: &routers.GatewayInfo{NetworkID: ext.ID}}).Extract()
	if err != nil {
		return t, fmt.Errorf("create router R1: %w", err)
	}
	for _, sn := range []subnets.Subnet{t.Subnet1, t.Subnet2} {
		ii, err := routers.AddInterface(ctx, c, r.ID, routers.AddInterfaceOpts{SubnetID: sn.ID}).Extract()
		if err != nil {
			return t, fmt.Errorf("add interface %s to R1: %w", sn.CIDR, err)
		}
		t.Interfaces = append(t.Interfaces, *ii)
	}
	if r, err = routers.Get(ctx, c, r.ID).Extract(); err != nil {
		return t, fmt.Errorf("get router R1: %w", err)
	}
	t.Router = *r
	if err := createGroups(ctx, c, opts.ProjectID, t); err != nil {
		return t, err
	}
	for _, vm := range opts.VMs {
		nw, sn := t.Net1, t.Subnet1
		if vm.Network == "net2" {
			nw, sn = t.Net2, t.Subnet2
		}
		p, err := ports.Create(ctx, c, portsbinding.CreateOptsExt{
			CreateOptsBuilder: ports.CreateOpts{NetworkID: nw.ID, Name: vm.Name, ProjectID: opts.ProjectID,
				DeviceOwner: "compute:nova", DeviceID: vm.Name, SecurityGroups: vmGroups(t, opts, vm.Name),
				FixedIPs: []ports.IP{{SubnetID: sn.ID, IPAddress: vm.IP}}},
			HostID: vm.Host,
		}).Extract()
		if err != nil {
			return t, fmt.Errorf("create port of %s: %w", vm.Name, err)
		}
		t.VMs[vm.Name] = *p
	}
	for _, sn := range []*subnets.Subnet{&t.Subnet1, &t.Subnet2} {
		upd, err := subnets.Update(ctx, c, sn.ID, subnets.UpdateOpts{EnableDHCP: &yes}).Extract()
		if err != nil {
			return t, fmt.Errorf("enable DHCP on %s: %w", sn.CIDR, err)
		}
		*sn = *upd
	}
	for _, vm := range opts.VMs {
		addr, ok := opts.FloatingIPs[vm.Name]
		if !ok {
			continue
		}
		f, err := floatingips.Create(ctx, c, floatingips.CreateOpts{FloatingNetworkID: ext.ID, FloatingIP: addr,
			PortID: t.VMs[vm.Name].ID, ProjectID: opts.ProjectID}).Extract()
		if err != nil {
			return t, fmt.Errorf("create floating IP %s for %s: %w", addr, vm.Name, err)
		}
		t.FloatingIPs[vm.Name] = *f
	}
	return t, nil
}

// createGroups creates the "public" group with its rules (which makes the project's
// default group too) and finds the default group.
func createGroups(ctx context.Context, c *gophercloud.ServiceClient, project string, t *Topology) error {
	g, err := groups.Create(ctx, c, groups.CreateOpts{Name: "public", ProjectID: project,
		Description: "ICMP and SSH from anywhere"}).Extract()
	if err != nil {
		return fmt.Errorf("create security group public: %w", err)
	}
	t.PublicGroup = *g
	for _, r := range []rules.CreateOpts{
		{Protocol: rules.ProtocolICMP},
		{Protocol: rules.ProtocolTCP, PortRangeMin: 22, PortRangeMax: 22},
	} {
		r.Direction, r.EtherType, r.SecGroupID, r.ProjectID, r.RemoteIPPrefix = rules.DirIngress, rules.EtherType4, g.ID, project, "0.0.0.0/0"
		if _, err := rules.Create(ctx, c, r).Extract(); err != nil {
			return fmt.Errorf("create rule %s in public: %w", r.Protocol, err)
		}
	}
	pages, err := groups.List(c, groups.ListOpts{Name: "default", ProjectID: project}).AllPages(ctx)
	if err != nil {
		return fmt.Errorf("list default security group: %w", err)
	}
	all, err := groups.ExtractGroups(pages)
	if err != nil || len(all) != 1 {
		return fmt.Errorf("default security group of %s: %d found (%v)", project, len(all), err)
	}
	t.DefaultGroup = all[0]
	return nil
}

// vmGroups returns the security groups of a VM's port.
func vmGroups(t *Topology, opts Options, vm string) *[]string {
	ids := []string{t.DefaultGroup.ID}
	if _, ok := opts.FloatingIPs[vm]; ok {
		ids = append(ids, t.PublicGroup.ID)
	}
	return &ids
}
