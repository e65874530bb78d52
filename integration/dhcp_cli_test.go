//go:build integration

package integration

import (
	"slices"
	"strings"
	"testing"
)

// TestDHCPClients drives what DHCP adds to the API with Debian's openstack CLI: the
// network's MTU by Neutron's rule, the DHCP port Neutron's agent would have made (found as
// tools look for it: by device owner), and a port's extra DHCP options.
func TestDHCPClients(t *testing.T) {
	o := newOSCAPI(t)
	var net struct {
		ID  string `json:"id"`
		MTU int    `json:"mtu"`
	}
	o.json(&net, "network", "create", "dhcpnet")
	if net.MTU != 1450 {
		t.Errorf("VXLAN network MTU %d, want 1450 (global_physnet_mtu 1500 - 50)", net.MTU)
	}
	o.run("subnet", "create", "--network", "dhcpnet", "--subnet-range", "10.8.0.0/24", "dhcpsub")

	type port struct {
		ID          string `json:"id"`
		DeviceOwner string `json:"device_owner"`
		Status      string `json:"status"`
		FixedIPs    []struct {
			IPAddress string `json:"ip_address"`
		} `json:"fixed_ips"`
		ExtraDHCPOpts []struct {
			OptName   string `json:"opt_name"`
			OptValue  string `json:"opt_value"`
			IPVersion int    `json:"ip_version"`
		} `json:"extra_dhcp_opts"`
	}
	var servers []struct {
		ID string `json:"ID"`
	}
	o.json(&servers, "port", "list", "--network", "dhcpnet", "--device-owner", "network:dhcp")
	if len(servers) != 1 {
		t.Fatalf("network:dhcp ports of the network: %+v, want 1", servers)
	}
	var srv port
	o.json(&srv, "port", "show", servers[0].ID)
	if srv.Status != "ACTIVE" || len(srv.FixedIPs) != 1 || srv.FixedIPs[0].IPAddress != "10.8.0.2" {
		t.Errorf("the DHCP port: %+v, want ACTIVE with 10.8.0.2", srv)
	}

	var vm port
	o.json(&vm, "port", "create", "--network", "dhcpnet", "--device-owner", "compute:nova",
		"--extra-dhcp-option", "name=domain-search,value=example.org",
		"--extra-dhcp-option", "name=mtu,value=1400", "vm")
	type opt struct {
		name, value string
		version     int
	}
	opts := func(p port) []opt {
		var out []opt
		for _, x := range p.ExtraDHCPOpts {
			out = append(out, opt{x.OptName, x.OptValue, x.IPVersion})
		}
		slices.SortFunc(out, func(a, b opt) int { return strings.Compare(a.name, b.name) })
		return out
	}
	if got, want := opts(vm), []opt{{"domain-search", "example.org", 4}, {"mtu", "1400", 4}}; !slices.Equal(got, want) {
		t.Errorf("port create --extra-dhcp-option: %+v, want %+v", got, want)
	}
	o.run("port", "set", "--extra-dhcp-option", "name=mtu,value=1300", vm.ID)
	o.json(&vm, "port", "show", vm.ID)
	if got, want := opts(vm), []opt{{"domain-search", "example.org", 4}, {"mtu", "1300", 4}}; !slices.Equal(got, want) {
		t.Errorf("port set --extra-dhcp-option mtu: %+v, want %+v (the named option replaced, the other kept)", got, want)
	}

	// DHCP off on the network's only subnet: no DHCP port any more.
	o.run("subnet", "set", "--no-dhcp", "dhcpsub")
	servers = nil
	o.json(&servers, "port", "list", "--network", "dhcpnet", "--device-owner", "network:dhcp")
	if len(servers) != 0 {
		t.Errorf("network:dhcp ports with DHCP off: %+v, want none", servers)
	}
}
