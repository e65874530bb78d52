package northbound_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestBulkCreate(t *testing.T) {
	a := newAPI(t)
	rev := a.revision()
	out := a.admin(http.StatusCreated, "POST", "/v2.0/networks", map[string]any{"networks": []any{
		map[string]any{"name": "n0", "tenant_id": "proj-a"},
		map[string]any{"name": "n1", "tenant_id": "proj-a"},
		map[string]any{"name": "n2", "tenant_id": "proj-a", "provider:network_type": "vxlan", "provider:segmentation_id": 5000},
	}})
	nets := list(out, "networks")
	if len(nets) != 3 || nets[0]["name"] != "n0" || nets[2]["provider:segmentation_id"] != float64(5000) || a.revision() != rev+1 {
		t.Fatalf("bulk networks %v (revision %d, was %d)", nets, a.revision(), rev)
	}
	var subs []any
	for i, n := range nets {
		subs = append(subs, map[string]any{"network_id": n["id"], "cidr": fmt.Sprintf("10.0.%d.0/24", i), "ip_version": 4, "tenant_id": "proj-a"})
	}
	sn := list(a.admin(http.StatusCreated, "POST", "/v2.0/subnets", map[string]any{"subnets": subs}), "subnets")
	if len(sn) != 3 || sn[1]["cidr"] != "10.0.1.0/24" || sn[1]["network_id"] != nets[1]["id"] {
		t.Fatalf("bulk subnets %v", sn)
	}
	var ports []any
	for i := 0; i < 6; i++ {
		ports = append(ports, map[string]any{"network_id": nets[i%3]["id"], "name": fmt.Sprintf("vm%d", i), "tenant_id": "proj-a",
			"binding:host_id": fmt.Sprintf("compute%d", i%2), "device_owner": "compute:nova"})
	}
	ps := list(a.admin(http.StatusCreated, "POST", "/v2.0/ports?fields=id&fields=name&fields=fixed_ips", map[string]any{"ports": ports}), "ports")
	for i, p := range ps {
		ip := p["fixed_ips"].([]any)[0].(map[string]any)["ip_address"]
		if len(p) != 3 || p["name"] != fmt.Sprintf("vm%d", i) || ip != fmt.Sprintf("10.0.%d.%d", i%3, 3+i/3) { // the DHCP ports have .2
			t.Fatalf("bulk port %d = %v", i, p)
		}
	}
	got := a.admin(http.StatusOK, "GET", "/v2.0/ports/"+ps[4]["id"].(string), nil)["port"].(map[string]any)
	if got["binding:host_id"] != "compute0" || got["network_id"] != nets[1]["id"] {
		t.Fatalf("stored bulk port %v", got)
	}
	// The singular form still works and sees the batch's allocations.
	p := a.create("ports", "port", map[string]any{"network_id": nets[0]["id"], "tenant_id": "proj-a"})
	if ip := p["fixed_ips"].([]any)[0].(map[string]any)["ip_address"]; ip != "10.0.0.5" {
		t.Fatalf("single create after bulk got %v", ip)
	}
}

func TestBulkCreateErrors(t *testing.T) {
	a := newAPI(t)
	netID, subnetID, _, _ := base(a, "10.0.1.0/24")
	other := a.create("networks", "network", map[string]any{"name": "b", "tenant_id": "proj-b"})
	port := func(extra map[string]any) map[string]any {
		p := map[string]any{"network_id": netID, "tenant_id": "proj-a"}
		for k, v := range extra {
			p[k] = v
		}
		return p
	}
	many := make([]any, 10001)
	for i := range many {
		many[i] = map[string]any{}
	}
	for _, tc := range []struct {
		name, token, coll string
		body              any
		code              int
		typ, item         string
	}{
		{"address twice", adminToken, "ports", map[string]any{"ports": []any{port(nil),
			port(map[string]any{"fixed_ips": []any{map[string]any{"ip_address": "10.0.1.50"}}}),
			port(map[string]any{"fixed_ips": []any{map[string]any{"subnet_id": subnetID, "ip_address": "10.0.1.50"}}})}},
			http.StatusConflict, "IpAddressAlreadyAllocated", "Item 2:"},
		{"MAC twice", adminToken, "ports", map[string]any{"ports": []any{port(map[string]any{"mac_address": "fa:16:3e:01:02:03"}),
			port(map[string]any{"mac_address": "fa:16:3e:01:02:03"})}}, http.StatusConflict, "MacAddressInUse", "Item 1:"},
		{"unknown network", adminToken, "ports", map[string]any{"ports": []any{port(nil), port(map[string]any{"network_id": "5b7c2f5e-0000-4000-8000-000000000000"})}},
			http.StatusNotFound, "NetworkNotFound", "Item 1:"},
		{"unknown attribute", adminToken, "ports", map[string]any{"ports": []any{port(nil), port(nil), port(map[string]any{"colour": "red"})}},
			http.StatusBadRequest, "HTTPBadRequest", "Item 2:"},
		{"not a list", adminToken, "ports", `{"ports": {"network_id": "x"}}`, http.StatusBadRequest, "HTTPBadRequest", ""},
		{"empty list", adminToken, "ports", `{"ports": []}`, http.StatusBadRequest, "HTTPBadRequest", ""},
		{"both forms", adminToken, "ports", map[string]any{"ports": []any{port(nil)}, "port": port(nil)}, http.StatusBadRequest, "HTTPBadRequest", ""},
		{"too many", adminToken, "ports", map[string]any{"ports": many}, http.StatusRequestEntityTooLarge, "HTTPRequestEntityTooLarge", ""},
		{"other project's network", tokenA, "ports", map[string]any{"ports": []any{map[string]any{"network_id": netID},
			map[string]any{"network_id": other["id"]}}}, http.StatusNotFound, "NetworkNotFound", "Item 1:"},
		{"binding as project", tokenA, "ports", map[string]any{"ports": []any{map[string]any{"network_id": netID, "binding:host_id": "h"}}},
			http.StatusForbidden, "PolicyNotAuthorized", "Item 0:"},
		{"bad CIDR", adminToken, "subnets", map[string]any{"subnets": []any{
			map[string]any{"network_id": netID, "cidr": "10.0.2.0/24"}, map[string]any{"network_id": netID, "cidr": "10.0.3.1/24"}}},
			http.StatusBadRequest, "InvalidInput", "Item 1:"},
		{"overlap in batch", adminToken, "subnets", map[string]any{"subnets": []any{
			map[string]any{"network_id": netID, "cidr": "10.0.2.0/24"}, map[string]any{"network_id": netID, "cidr": "10.0.2.0/23"}}},
			http.StatusBadRequest, "InvalidInput", "Item 1:"},
		{"VNI twice", adminToken, "networks", map[string]any{"networks": []any{
			map[string]any{"provider:network_type": "vxlan", "provider:segmentation_id": 77},
			map[string]any{"provider:network_type": "vxlan", "provider:segmentation_id": 77}}},
			http.StatusConflict, "TunnelIdInUse", "Item 1:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rev := a.revision()
			before := len(list(a.admin(http.StatusOK, "GET", "/v2.0/"+tc.coll, nil), tc.coll))
			code, out := a.do(tc.token, "POST", "/v2.0/"+tc.coll, tc.body)
			wantError(t, code, out, tc.code, tc.typ)
			if msg := out["NeutronError"].(map[string]any)["message"].(string); !strings.Contains(msg, tc.item) {
				t.Fatalf("message %q does not name %q", msg, tc.item)
			}
			if a.revision() != rev {
				t.Fatal("a rejected bulk create changed the revision")
			}
			if after := len(list(a.admin(http.StatusOK, "GET", "/v2.0/"+tc.coll, nil), tc.coll)); after != before {
				t.Fatalf("%d %s after a rejected bulk create, had %d", after, tc.coll, before)
			}
		})
	}
}
