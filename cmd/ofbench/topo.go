// The packet-in benchmarks' topology: hosts, networks and VMs, and its creation through the API.

package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/dvrflow/dvrflow/apiclient"
	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/topology"
)

// simVM is one VM port of the benchmark topology.
type simVM struct {
	Host   int
	Net    int
	PortNo uint32
	IP     netip.Addr
	MAC    net.HardwareAddr
	ID     string // Neutron port ID (dvrflow only)
}

// simDHCPPort is a network's DHCP port, as the API made it.
type simDHCPPort struct {
	ID  string
	MAC net.HardwareAddr
	IP  netip.Addr // its address on the network's subnet: the DHCP server identifier
}

// simTopology is the generated topology: hosts (one switch each), networks of HostsPerNet
// hosts with one /24 subnet each, VMsPerHost VMs per host.
type simTopology struct {
	Name  string // prefix of host and network names
	Hosts int
	Nets  int
	VMs   []simVM  // by host, then VM
	ByNet [][]int  // VM indexes of each network
	VLAN  []uint16 // local VLAN of each host's network (learned from dvrflow's flows)
	Names []string // host names
	DPIDs []uint64 // br-int datapath id of each host
	Nw    []string // Neutron network IDs
	Sub   []string // Neutron subnet IDs
	Cook  uint64   // cookie of the packet-ins
	Table uint8    // table of the packet-ins
	Miss  bool     // packet-ins are table misses (OFPR_NO_MATCH), not OFPR_ACTION
	per   int      // VMs per host

	// DHCP: the subnets are created with enable_dhcp; the API gives each network a DHCP
	// port (createTopology reads them into DHCPPorts) and an MTU.
	DHCP      bool
	DHCPPorts []simDHCPPort
	MTU       []int
	Gateway   []netip.Addr // of each network's subnet
}

// newSimTopology lays out cfg's hosts, networks and VMs; name prefixes host and network
// names.
func newSimTopology(cfg simConfig, name string) *simTopology {
	t := &simTopology{Name: name, Hosts: cfg.Switches, Nets: (cfg.Switches + cfg.HostsPerNet - 1) / cfg.HostsPerNet,
		Cook: apps.Cookie(apps.AppARP), Table: apps.IntARPResponder, per: cfg.VMsPerHost}
	t.ByNet = make([][]int, t.Nets)
	t.VLAN = make([]uint16, t.Hosts)
	for h := range t.Hosts {
		t.Names = append(t.Names, fmt.Sprintf("%s-%04d", name, h))
		t.DPIDs = append(t.DPIDs, uint64(0xa7000000+h))
		n := h / cfg.HostsPerNet
		t.VLAN[h] = uint16(n%4000 + 1)
		for v := range cfg.VMsPerHost {
			k := (h%cfg.HostsPerNet)*cfg.VMsPerHost + v + 10
			ip := netip.AddrFrom4([4]byte{10, byte(100 + n/250), byte(n % 250), byte(k)})
			// The MAC the API would allocate is only known for dvrflow; the others use this one.
			mac := net.HardwareAddr{0xfa, 0x16, 0x3e, byte(h >> 8), byte(h), byte(v)}
			t.ByNet[n] = append(t.ByNet[n], len(t.VMs))
			t.VMs = append(t.VMs, simVM{Host: h, Net: n, PortNo: uint32(v + 1), IP: ip, MAC: mac})
		}
	}
	return t
}

// netOf returns the network of host h.
func (t *simTopology) netOf(h int) int { return t.VMs[h*t.per].Net }

// vmsOf returns the VMs of host h.
func (t *simTopology) vmsOf(h int) []simVM { return t.VMs[h*t.per : (h+1)*t.per] }

func (t *simTopology) subnet(n int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(100 + n/250), byte(n % 250), 0}), 24)
}

// parallel runs fn(0..n-1) on c workers and returns the first error.
func parallel(n, c int, fn func(i int) error) error {
	var wg sync.WaitGroup
	var next atomic.Int64
	var first atomic.Pointer[error]
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				if err := fn(i); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if e := first.Load(); e != nil {
		return *e
	}
	return nil
}

// createTopology registers the hosts and creates networks, subnets and VM ports through
// the API; the ports' MACs and IDs replace the generated ones. With t.DHCP it reads the
// networks' DHCP ports too.
func createTopology(ctx context.Context, c *apiclient.Client, t *simTopology) error {
	err := parallel(t.Hosts, 16, func(h int) error {
		body := map[string]any{"dvr_host": map[string]any{
			"tunnel_ip": fmt.Sprintf("192.168.%d.%d", 1+h/250, 1+h%250), "mode": "dvr",
			"bridges": map[string]string{"br-int": ofproto.DPID(t.DPIDs[h]).String()}}}
		_, err := c.Do(ctx, http.MethodPut, "/v2.0/dvr-hosts/"+t.Names[h], body, nil)
		return err
	})
	if err != nil {
		return err
	}
	t.Nw, t.Sub = make([]string, t.Nets), make([]string, t.Nets)
	t.MTU, t.Gateway = make([]int, t.Nets), make([]netip.Addr, t.Nets)
	err = parallel(t.Nets, 16, func(n int) error {
		var nw struct {
			Network struct {
				ID  string `json:"id"`
				MTU int    `json:"mtu"`
			} `json:"network"`
		}
		if _, err := c.Do(ctx, http.MethodPost, "/v2.0/networks", map[string]any{"network": map[string]any{
			"name": fmt.Sprintf("%s-%d", t.Name, n), "admin_state_up": true}}, &nw); err != nil {
			return err
		}
		var sn struct {
			Subnet struct {
				ID        string `json:"id"`
				GatewayIP string `json:"gateway_ip"`
			} `json:"subnet"`
		}
		if _, err := c.Do(ctx, http.MethodPost, "/v2.0/subnets", map[string]any{"subnet": map[string]any{
			"network_id": nw.Network.ID, "ip_version": 4, "cidr": t.subnet(n).String(), "enable_dhcp": t.DHCP}}, &sn); err != nil {
			return err
		}
		gw, err := netip.ParseAddr(sn.Subnet.GatewayIP)
		if err != nil {
			return fmt.Errorf("subnet %s: gateway_ip %q: %w", sn.Subnet.ID, sn.Subnet.GatewayIP, err)
		}
		t.Nw[n], t.Sub[n], t.MTU[n], t.Gateway[n] = nw.Network.ID, sn.Subnet.ID, nw.Network.MTU, gw
		return nil
	})
	if err != nil {
		return err
	}
	err = parallel(len(t.VMs), 16, func(i int) error {
		vm := &t.VMs[i]
		var p struct {
			Port struct {
				ID  string `json:"id"`
				MAC string `json:"mac_address"`
			} `json:"port"`
		}
		if _, err := c.Do(ctx, http.MethodPost, "/v2.0/ports", map[string]any{"port": map[string]any{
			"network_id": t.Nw[vm.Net], "name": fmt.Sprintf("vm-%d-%d", vm.Host, vm.PortNo),
			"device_owner": "compute:nova", "device_id": fmt.Sprintf("vm-%d-%d", vm.Host, vm.PortNo),
			"binding:host_id": t.Names[vm.Host],
			"fixed_ips":       []map[string]string{{"subnet_id": t.Sub[vm.Net], "ip_address": vm.IP.String()}}}}, &p); err != nil {
			return err
		}
		mac, err := net.ParseMAC(p.Port.MAC)
		if err != nil {
			return fmt.Errorf("port %s: mac %q: %w", p.Port.ID, p.Port.MAC, err)
		}
		vm.ID, vm.MAC = p.Port.ID, mac
		return nil
	})
	if err != nil || !t.DHCP {
		return err
	}
	return readDHCPPorts(ctx, c, t)
}

// readDHCPPorts reads the network:dhcp port of each network: the DHCP server's MAC and
// address on the network's subnet.
func readDHCPPorts(ctx context.Context, c *apiclient.Client, t *simTopology) error {
	var list struct {
		Ports []struct {
			ID        string `json:"id"`
			NetworkID string `json:"network_id"`
			MAC       string `json:"mac_address"`
			FixedIPs  []struct {
				SubnetID  string `json:"subnet_id"`
				IPAddress string `json:"ip_address"`
			} `json:"fixed_ips"`
		} `json:"ports"`
	}
	q := url.Values{"device_owner": {topology.OwnerDHCP}}
	if _, err := c.Do(ctx, http.MethodGet, "/v2.0/ports?"+q.Encode(), nil, &list); err != nil {
		return err
	}
	byID := map[string]int{}
	for n, id := range t.Nw {
		byID[id] = n
	}
	t.DHCPPorts = make([]simDHCPPort, t.Nets)
	for _, p := range list.Ports {
		n, ok := byID[p.NetworkID]
		if !ok || t.DHCPPorts[n].ID != "" && t.DHCPPorts[n].ID < p.ID {
			continue // the view serves a network's lowest DHCP port ID
		}
		for _, ip := range p.FixedIPs {
			if ip.SubnetID != t.Sub[n] {
				continue
			}
			a, err := netip.ParseAddr(ip.IPAddress)
			if err != nil {
				return fmt.Errorf("DHCP port %s: address %q: %w", p.ID, ip.IPAddress, err)
			}
			mac, err := net.ParseMAC(p.MAC)
			if err != nil {
				return fmt.Errorf("DHCP port %s: mac %q: %w", p.ID, p.MAC, err)
			}
			t.DHCPPorts[n] = simDHCPPort{ID: p.ID, MAC: mac, IP: a}
		}
	}
	for n, p := range t.DHCPPorts {
		if p.ID == "" {
			return fmt.Errorf("network %s (%s) has no %s port with an address on its subnet: this dvrflowd does not create the "+
				"DHCP port with a DHCP-enabled subnet, and answers no DHCP without it", t.Nw[n], t.subnet(n), topology.OwnerDHCP)
		}
	}
	return nil
}
