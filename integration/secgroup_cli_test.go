//go:build integration

package integration

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/portsecurity"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/dvrflow/dvrflow/northbound/seed"
)

// TestSecurityGroupClients drives the security group API with the clients users have:
// Debian's openstack CLI (security group and rule create/list/show/delete, port create
// --security-group, port set --no-security-group --disable-port-security, port set
// --allowed-address) and gophercloud, each reading back what the other wrote.
func TestSecurityGroupClients(t *testing.T) {
	ctx := context.Background()
	o := newOSCAPI(t)
	osc, oscJSON := o.run, o.json

	var web struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Rules []struct {
			Direction string `json:"direction"`
		} `json:"rules"`
	}
	oscJSON(&web, "security", "group", "create", "web", "--description", "front ends")
	if web.ID == "" || web.Name != "web" || len(web.Rules) != 2 {
		t.Fatalf("security group create: %+v", web)
	}
	var ssh struct {
		ID             string `json:"id"`
		PortRangeMin   int    `json:"port_range_min"`
		PortRangeMax   int    `json:"port_range_max"`
		Protocol       string `json:"protocol"`
		RemoteIPPrefix string `json:"remote_ip_prefix"`
	}
	oscJSON(&ssh, "security", "group", "rule", "create", "--ingress", "--protocol", "tcp", "--dst-port", "22",
		"--remote-ip", "192.0.2.0/24", "web")
	if ssh.Protocol != "tcp" || ssh.PortRangeMin != 22 || ssh.PortRangeMax != 22 || ssh.RemoteIPPrefix != "192.0.2.0/24" {
		t.Fatalf("security group rule create: %+v", ssh)
	}
	oscJSON(&struct{}{}, "security", "group", "rule", "create", "--ingress", "--protocol", "icmp", "--remote-group", "web", "web")
	var listed []struct {
		Name string `json:"Name"`
	}
	oscJSON(&listed, "security", "group", "list")
	names := []string{}
	for _, g := range listed {
		names = append(names, g.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"default", "web"}) {
		t.Fatalf("security group list: %v", names)
	}
	if out := osc("security", "group", "show", "web"); !strings.Contains(out, "192.0.2.0/24") {
		t.Fatalf("security group show lacks the ssh rule:\n%s", out)
	}
	var ruleList []struct {
		ID string `json:"ID"`
	}
	oscJSON(&ruleList, "security", "group", "rule", "list", "web")
	if len(ruleList) != 4 {
		t.Fatalf("security group rule list web: %d rules, want 4", len(ruleList))
	}

	// gophercloud reads what the CLI wrote, and writes what the CLI reads.
	c := seed.NewClient(o.URL, o.Token)
	g, err := groups.Get(ctx, c, web.ID).Extract()
	if err != nil || len(g.Rules) != 4 || g.Description != "front ends" {
		t.Fatalf("gophercloud get group: %+v, %v", g, err)
	}
	db2, err := groups.Create(ctx, c, groups.CreateOpts{Name: "db"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rules.Create(ctx, c, rules.CreateOpts{SecGroupID: db2.ID, Direction: rules.DirIngress, EtherType: rules.EtherType4,
		Protocol: rules.ProtocolTCP, PortRangeMin: 5432, PortRangeMax: 5432, RemoteGroupID: web.ID}).Extract(); err != nil {
		t.Fatal(err)
	}
	if out := osc("security", "group", "rule", "list", "db", "--long"); !strings.Contains(out, "5432") {
		t.Fatalf("rule list db lacks 5432:\n%s", out)
	}

	// Ports.
	nw, err := networks.Create(ctx, c, networks.CreateOpts{Name: "sgnet"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := subnets.Create(ctx, c, subnets.CreateOpts{NetworkID: nw.ID, CIDR: "10.7.0.0/24", IPVersion: 4}).Extract(); err != nil {
		t.Fatal(err)
	}
	var port struct {
		ID             string   `json:"id"`
		SecurityGroups []string `json:"security_group_ids"`
	}
	oscJSON(&port, "port", "create", "--network", "sgnet", "--security-group", "web", "--security-group", "db", "vm1")
	if len(port.SecurityGroups) != 2 {
		t.Fatalf("port create --security-group: %+v", port)
	}
	osc("port", "set", "--allowed-address", "ip-address=10.7.0.250", "vm1")
	type secPort struct {
		ports.Port
		portsecurity.PortSecurityExt
	}
	var p secPort
	if err := ports.Get(ctx, c, port.ID).ExtractInto(&p); err != nil {
		t.Fatal(err)
	}
	if len(p.AllowedAddressPairs) != 1 || p.AllowedAddressPairs[0].IPAddress != "10.7.0.250" || p.AllowedAddressPairs[0].MACAddress != p.MACAddress ||
		!p.PortSecurityEnabled || len(p.SecurityGroups) != 2 {
		t.Fatalf("after port set --allowed-address: %+v", p)
	}
	osc("port", "set", "--no-allowed-address", "--no-security-group", "--disable-port-security", "vm1")
	if err := ports.Get(ctx, c, port.ID).ExtractInto(&p); err != nil {
		t.Fatal(err)
	}
	if p.PortSecurityEnabled || len(p.SecurityGroups) != 0 || len(p.AllowedAddressPairs) != 0 {
		t.Fatalf("after port set --no-security-group --disable-port-security: %+v", p)
	}
	// Deletes: the rule, then the groups (web is in use by no port now).
	osc("security", "group", "rule", "delete", ssh.ID)
	osc("security", "group", "delete", "db")
	osc("security", "group", "delete", "web")
	oscJSON(&listed, "security", "group", "list")
	if len(listed) != 1 || listed[0].Name != "default" {
		t.Fatalf("after deletes: %+v", listed)
	}
}
