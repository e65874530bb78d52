package northbound_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/routers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"
)

// IPv6 subnets through gophercloud (issue 16): their modes are written on create and
// shown (null on IPv4), a port gets an address of each kind, a router an interface on
// the IPv6 subnet, and Neutron's refusals come back as 400.
func TestIPv6WithGophercloud(t *testing.T) {
	a := newAPI(t)
	ctx := context.Background()
	c := seed.NewClient(a.url, adminToken)
	n, err := networks.Create(ctx, c, networks.CreateOpts{Name: "dual"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	v4, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: n.ID, CIDR: "10.8.0.0/24", IPVersion: gophercloud.IPv4}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if v4.IPv6RAMode != "" || v4.IPv6AddressMode != "" {
		t.Errorf("IPv4 subnet modes %q %q", v4.IPv6RAMode, v4.IPv6AddressMode)
	}
	v6, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: n.ID, CIDR: "2001:db8:8::/64", IPVersion: gophercloud.IPv6,
		IPv6RAMode: "slaac", IPv6AddressMode: "slaac"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if v6.IPVersion != 6 || v6.GatewayIP != "2001:db8:8::1" || v6.IPv6RAMode != "slaac" || v6.IPv6AddressMode != "slaac" ||
		len(v6.AllocationPools) != 1 || v6.AllocationPools[0].Start != "2001:db8:8::2" || v6.AllocationPools[0].End != "2001:db8:8:0:ffff:ffff:ffff:ffff" {
		t.Errorf("IPv6 subnet %+v", v6)
	}
	got, err := subnets.Get(ctx, c, v6.ID).Extract()
	if err != nil || got.IPv6AddressMode != "slaac" {
		t.Errorf("read back: %+v, %v", got, err)
	}
	p, err := ports.Create(ctx, c, ports.CreateOpts{NetworkID: n.ID, MACAddress: "fa:16:3e:4f:00:00"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	want := []ports.IP{{SubnetID: v4.ID, IPAddress: "10.8.0.3"}, {SubnetID: v6.ID, IPAddress: "2001:db8:8:0:f816:3eff:fe4f:0"}}
	if !slices.Equal(p.FixedIPs, want) {
		t.Errorf("port fixed IPs %v, want %v", p.FixedIPs, want)
	}
	r, err := routers.Create(ctx, c, routers.CreateOpts{Name: "r6"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	ri, err := routers.AddInterface(ctx, c, r.ID, routers.AddInterfaceOpts{SubnetID: v6.ID}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	qr, err := ports.Get(ctx, c, ri.PortID).Extract()
	if err != nil || !slices.Equal(qr.FixedIPs, []ports.IP{{SubnetID: v6.ID, IPAddress: "2001:db8:8::1"}}) {
		t.Errorf("interface port %+v, %v", qr, err)
	}
	// Neutron's refusals.
	for _, body := range []map[string]any{
		{"network_id": n.ID, "cidr": "2001:db8:9::/80", "ip_version": 6, "ipv6_address_mode": "slaac"},
		{"network_id": n.ID, "cidr": "2001:db8:9::/64", "ip_version": 6, "ipv6_ra_mode": "slaac", "ipv6_address_mode": "dhcpv6-stateful"},
		{"network_id": n.ID, "cidr": "2001:db8:9::/64", "ip_version": 6, "ipv6_ra_mode": "sometimes"},
		{"network_id": n.ID, "cidr": "2001:db8:9::/64", "ip_version": 4},
	} {
		a.admin(http.StatusBadRequest, "POST", "/v2.0/subnets", map[string]any{"subnet": body})
	}
	_, err = ports.Create(ctx, c, ports.CreateOpts{NetworkID: n.ID, FixedIPs: []ports.IP{{SubnetID: v6.ID, IPAddress: "2001:db8:8::9"}}}).Extract()
	if !gophercloud.ResponseCodeIs(err, http.StatusBadRequest) {
		t.Errorf("address on a SLAAC subnet: %v, want 400", err)
	}
}

// Router interfaces on IPv6 subnets as Neutron answers them: a second IPv6 subnet of a
// network joins the router's port there (subnet_ids names the subnet added), a
// dual-stack port attaches with both its subnets, and removing by port with a subnet the
// port is not on is Neutron's SubnetMismatchForPort (400).
func TestRouterInterfaceIPv6API(t *testing.T) {
	a := newAPI(t)
	n := a.create("networks", "network", map[string]any{"name": "six"})["id"].(string)
	sub := func(cidr string, version int) string {
		return a.create("subnets", "subnet", map[string]any{"network_id": n, "cidr": cidr, "ip_version": version})["id"].(string)
	}
	v4, s1, s2 := sub("10.9.0.0/24", 4), sub("2001:db8:a::/64", 6), sub("2001:db8:b::/64", 6)
	r := a.create("routers", "router", map[string]any{"name": "r"})["id"].(string)
	add := func(body map[string]any) map[string]any {
		return a.admin(http.StatusOK, "PUT", "/v2.0/routers/"+r+"/add_router_interface", body)
	}
	first := add(map[string]any{"subnet_id": s1})
	second := add(map[string]any{"subnet_id": s2})
	if second["port_id"] != first["port_id"] || second["subnet_id"] != s2 || !slices.Equal(toStrings(second["subnet_ids"]), []string{s2}) {
		t.Errorf("second IPv6 subnet: %v, first %v", second, first)
	}
	ri := add(map[string]any{"subnet_id": v4})
	if ri["port_id"] == first["port_id"] || !slices.Equal(toStrings(ri["subnet_ids"]), []string{v4}) {
		t.Errorf("IPv4 subnet: %v", ri)
	}
	n2 := a.create("networks", "network", map[string]any{"name": "dual"})["id"].(string)
	d4 := a.create("subnets", "subnet", map[string]any{"network_id": n2, "cidr": "10.10.0.0/24", "ip_version": 4})["id"].(string)
	d6 := a.create("subnets", "subnet", map[string]any{"network_id": n2, "cidr": "2001:db8:c::/64", "ip_version": 6})["id"].(string)
	dual := a.create("ports", "port", map[string]any{"network_id": n2})["id"].(string)
	ri = add(map[string]any{"port_id": dual})
	if ri["subnet_id"] != d6 || !slices.Equal(toStrings(ri["subnet_ids"]), []string{d4, d6}) {
		t.Errorf("dual-stack port attached: %v", ri)
	}
	code, out := a.do(adminToken, "PUT", "/v2.0/routers/"+r+"/remove_router_interface", map[string]any{"port_id": dual, "subnet_id": s1})
	wantError(t, code, out, http.StatusBadRequest, "SubnetMismatchForPort")
	gone := a.admin(http.StatusOK, "PUT", "/v2.0/routers/"+r+"/remove_router_interface", map[string]any{"subnet_id": s1})
	if gone["port_id"] != first["port_id"] || !slices.Equal(toStrings(gone["subnet_ids"]), []string{s1}) {
		t.Errorf("removed by subnet: %v", gone)
	}
	left := a.admin(http.StatusOK, "GET", "/v2.0/ports/"+first["port_id"].(string), nil)["port"].(map[string]any)
	if ips := left["fixed_ips"].([]any); len(ips) != 1 || ips[0].(map[string]any)["subnet_id"] != s2 {
		t.Errorf("port after the removal: %v", left["fixed_ips"])
	}
}

func toStrings(v any) []string {
	xs, _ := v.([]any)
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i], _ = x.(string)
	}
	return out
}
