package northbound_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/topology"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/agents"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
)

// TestSeedWithGophercloud builds the reference topology with gophercloud's own
// networking packages and checks what the API allocated.
func TestSeedWithGophercloud(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	c := seed.NewClient(a.url, adminToken)
	topo, err := seed.Create(ctx, c, seed.DefaultOptions())
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	checkSeed(t, a, topo)

	// gophercloud reads back every resource and lists with its pagination.
	allNets, err := networks.List(c, networks.ListOpts{Limit: 1}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nets, err := networks.ExtractNetworks(allNets)
	if err != nil {
		t.Fatal(err)
	}
	if len(nets) != 3 {
		t.Fatalf("paged network list has %d networks, want 3", len(nets))
	}
	pp, err := ports.List(c, ports.ListOpts{DeviceOwner: "compute:nova", FixedIPs: []ports.FixedIPOpts{{IPAddress: "10.0.2.3"}}}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vmPorts, _ := ports.ExtractPorts(pp)
	if len(vmPorts) != 1 || vmPorts[0].Name != "VM3" {
		t.Fatalf("filter by fixed IP 10.0.2.3 found %+v, want VM3", vmPorts)
	}
	ap, err := agents.List(c, agents.ListOpts{}).AllPages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	as, err := agents.ExtractAgents(ap)
	if err != nil {
		t.Fatal(err)
	}
	if len(as) != 6 {
		t.Fatalf("%d agents, want 6 (OVS + L3 for 3 hosts)", len(as))
	}
	modes := map[string]any{}
	for _, ag := range as {
		if !ag.Alive {
			t.Errorf("agent %s/%s not alive", ag.Host, ag.AgentType)
		}
		if ag.AgentType == db.AgentTypeL3 {
			modes[ag.Host] = ag.Configurations["agent_mode"]
		}
	}
	if modes["network"] != "dvr_snat" || modes["compute1"] != "dvr" {
		t.Fatalf("L3 agent modes %v", modes)
	}

	// Disassociate and re-associate a floating IP, gophercloud's way (port_id: null).
	fip := topo.FloatingIPs["VM3"]
	f, err := floatingips.Update(ctx, c, fip.ID, floatingips.UpdateOpts{PortID: new(string)}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if f.PortID != "" || f.Status != "DOWN" {
		t.Fatalf("disassociated FIP: %+v", f)
	}
	vm3 := topo.VMs["VM3"].ID
	if f, err = floatingips.Update(ctx, c, fip.ID, floatingips.UpdateOpts{PortID: &vm3}).Extract(); err != nil {
		t.Fatal(err)
	}
	if f.PortID != vm3 || f.FixedIP != "10.0.2.3" || f.RouterID != topo.Router.ID {
		t.Fatalf("re-associated FIP: %+v", f)
	}
	// Removing the interface a FIP needs: 409 through gophercloud too.
	_, err = routers.RemoveInterface(ctx, c, topo.Router.ID, routers.RemoveInterfaceOpts{SubnetID: topo.Subnet2.ID}).Extract()
	if err == nil || !strings.Contains(err.Error(), "RouterInterfaceInUseByFloatingIP") {
		t.Fatalf("remove interface needed by FIP: %v", err)
	}
}

// checkSeed checks the allocations of the seed topology through the raw API.
func checkSeed(t *testing.T, a *api, topo *seed.Topology) {
	t.Helper()
	for name, want := range map[string]struct{ ip, host string }{
		"VM1": {"10.0.1.5", "compute1"}, "VM2": {"10.0.2.5", "compute2"},
		"VM3": {"10.0.2.3", "compute1"}, "VM4": {"10.0.1.6", "compute2"},
	} {
		p := a.admin(http.StatusOK, "GET", "/v2.0/ports/"+topo.VMs[name].ID, nil)["port"].(map[string]any)
		ips := p["fixed_ips"].([]any)
		if len(ips) != 1 || ips[0].(map[string]any)["ip_address"] != want.ip || p["binding:host_id"] != want.host {
			t.Errorf("%s: fixed_ips %v host %v, want %s on %s", name, ips, p["binding:host_id"], want.ip, want.host)
		}
		if !strings.HasPrefix(p["mac_address"].(string), "fa:16:3e:") || p["status"] != "DOWN" {
			t.Errorf("%s: mac %v status %v", name, p["mac_address"], p["status"])
		}
	}
	r := a.admin(http.StatusOK, "GET", "/v2.0/routers/"+topo.Router.ID, nil)["router"].(map[string]any)
	gw, _ := r["external_gateway_info"].(map[string]any)
	if r["distributed"] != true || gw == nil || gw["network_id"] != topo.External.ID || gw["enable_snat"] != true {
		t.Fatalf("router: %v", r)
	}
	byOwner := map[string][]map[string]any{}
	for _, p := range list(a.admin(http.StatusOK, "GET", "/v2.0/ports", nil), "ports") {
		byOwner[p["device_owner"].(string)] = append(byOwner[p["device_owner"].(string)], p)
	}
	ifaces := byOwner[topology.OwnerRouterInterfaceDistributed]
	if len(ifaces) != 2 {
		t.Fatalf("%d router interface ports, want 2", len(ifaces))
	}
	gwIPs := map[string]bool{}
	for _, p := range ifaces {
		gwIPs[p["fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)] = true
		if p["device_id"] != topo.Router.ID {
			t.Errorf("interface port device_id %v", p["device_id"])
		}
	}
	if !gwIPs["10.0.1.1"] || !gwIPs["10.0.2.1"] {
		t.Errorf("interface IPs %v, want the subnet gateways", gwIPs)
	}
	ipOf := func(p map[string]any) string {
		return p["fixed_ips"].([]any)[0].(map[string]any)["ip_address"].(string)
	}
	snatIPs := map[string]bool{}
	for _, p := range byOwner[topology.OwnerRouterCentralizedSNAT] {
		snatIPs[ipOf(p)] = true
	}
	if len(byOwner[topology.OwnerRouterCentralizedSNAT]) != 2 || !snatIPs["10.0.1.2"] || !snatIPs["10.0.2.2"] {
		t.Errorf("csnat ports at %v, want one per router subnet at 10.0.1.2 and 10.0.2.2", snatIPs)
	}
	// DHCP came on after the SNAT ports and the VMs had their addresses: each tenant
	// network's DHCP port has the next free one; the external network has no DHCP.
	dhcp := map[string]string{}
	for _, p := range byOwner[topology.OwnerDHCP] {
		switch n := p["network_id"].(string); n {
		case topo.Net1.ID, topo.Net2.ID, topo.External.ID:
			if p["device_id"] != topology.DHCPDeviceID(n) || p["status"] != "ACTIVE" || len(p["fixed_ips"].([]any)) != 1 {
				t.Errorf("DHCP port %v", p)
			}
			dhcp[n] = ipOf(p)
		}
	}
	if len(dhcp) != 2 || dhcp[topo.Net1.ID] != "10.0.1.3" || dhcp[topo.Net2.ID] != "10.0.2.4" {
		t.Errorf("DHCP ports by network %v, want Net1 10.0.1.3 and Net2 10.0.2.4", dhcp)
	}
	if !topo.Subnet1.EnableDHCP || !topo.Subnet2.EnableDHCP || topo.ExternalSub.EnableDHCP {
		t.Errorf("enable_dhcp: Net1 %v, Net2 %v, external %v", topo.Subnet1.EnableDHCP, topo.Subnet2.EnableDHCP, topo.ExternalSub.EnableDHCP)
	}
	if n := len(byOwner[topology.OwnerRouterGateway]); n != 1 {
		t.Errorf("%d router gateway ports, want 1", n)
	}
	fg := byOwner[topology.OwnerFloatingIPAgentGateway]
	if len(fg) != 1 || fg[0]["binding:host_id"] != "compute1" {
		t.Errorf("FIP agent gateway ports %v, want one on compute1 (both FIP ports are there)", fg)
	}
	if n := len(byOwner["compute:nova"]); n != 4 {
		t.Errorf("%d VM ports, want 4", n)
	}
	fips := list(a.admin(http.StatusOK, "GET", "/v2.0/floatingips", nil), "floatingips")
	got := map[string]string{}
	for _, f := range fips {
		got[f["floating_ip_address"].(string)] = f["fixed_ip_address"].(string)
		if f["router_id"] != topo.Router.ID || f["status"] != "ACTIVE" {
			t.Errorf("FIP %v", f)
		}
	}
	if got["172.24.4.5"] != "10.0.1.5" || got["172.24.4.7"] != "10.0.2.3" || len(got) != 2 {
		t.Errorf("FIPs %v", got)
	}
	macs := list(a.admin(http.StatusOK, "GET", "/v2.0/dvr-host-macs", nil), "dvr_host_macs")
	seen := map[string]bool{}
	for _, m := range macs {
		mac := m["mac_address"].(string)
		if !strings.HasPrefix(mac, "fa:16:3f:") || seen[mac] {
			t.Errorf("DVR host MAC %s: wrong base or duplicate", mac)
		}
		seen[mac] = true
	}
	if len(macs) != 3 {
		t.Errorf("%d DVR host MACs, want 3", len(macs))
	}
	ext := a.admin(http.StatusOK, "GET", "/v2.0/networks/"+topo.External.ID, nil)["network"].(map[string]any)
	if ext["router:external"] != true || ext["provider:network_type"] != "flat" || ext["provider:physical_network"] != "public" {
		t.Errorf("external network %v", ext)
	}
	n1 := a.admin(http.StatusOK, "GET", "/v2.0/networks/"+topo.Net1.ID, nil)["network"].(map[string]any)
	n2 := a.admin(http.StatusOK, "GET", "/v2.0/networks/"+topo.Net2.ID, nil)["network"].(map[string]any)
	if n1["provider:network_type"] != "vxlan" || n1["provider:segmentation_id"] == n2["provider:segmentation_id"] || n1["mtu"] != float64(1450) {
		t.Errorf("tenant networks: %v / %v", n1, n2)
	}
}
