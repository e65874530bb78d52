package northbound_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// optsOf returns a port's extra_dhcp_opts as "name=value/vN" strings, in order.
func optsOf(t *testing.T, port map[string]any) []string {
	t.Helper()
	raw, ok := port["extra_dhcp_opts"].([]any)
	if !ok {
		t.Fatalf("extra_dhcp_opts of %v is %T, want a list", port["id"], port["extra_dhcp_opts"])
	}
	out := []string{}
	for _, o := range raw {
		m := o.(map[string]any)
		out = append(out, fmt.Sprintf("%v=%v/v%v", m["opt_name"], m["opt_value"], m["ip_version"]))
	}
	return out
}

// TestExtraDHCPOptsAPI: extra_dhcp_opts on port create (single and bulk), show, list with
// fields and filters, and update with Neutron's semantics.
func TestExtraDHCPOptsAPI(t *testing.T) {
	a := newAPI(t)
	netID, _, _, _ := base(a, "10.0.1.0/24")
	plain := a.create("ports", "port", map[string]any{"network_id": netID})
	if got := optsOf(t, plain); len(got) != 0 {
		t.Fatalf("port without options shows %v", got)
	}
	p := a.create("ports", "port", map[string]any{"network_id": netID, "extra_dhcp_opts": []any{
		map[string]any{"opt_name": "tftp-server", "opt_value": "10.0.1.9"},
		map[string]any{"opt_name": "bootfile-name", "opt_value": "pxelinux.0", "ip_version": 4},
		map[string]any{"opt_name": "bootfile-name", "opt_value": "ipxe.efi", "ip_version": "6"},
		map[string]any{"opt_name": "domain-search", "opt_value": nil},
	}})
	id := p["id"].(string)
	want := "[tftp-server=10.0.1.9/v4 bootfile-name=pxelinux.0/v4 bootfile-name=ipxe.efi/v6]"
	if got := fmt.Sprint(optsOf(t, p)); got != want {
		t.Fatalf("created with %s, want %s", got, want)
	}
	if got := fmt.Sprint(optsOf(t, a.admin(http.StatusOK, "GET", "/v2.0/ports/"+id, nil)["port"].(map[string]any))); got != want {
		t.Fatalf("show: %s, want %s", got, want)
	}
	// fields= and a filter on an option's name.
	ps := list(a.admin(http.StatusOK, "GET", "/v2.0/ports?extra_dhcp_opts=opt_name=tftp-server&fields=id&fields=extra_dhcp_opts", nil), "ports")
	if len(ps) != 1 || ps[0]["id"] != id || len(ps[0]) != 2 || fmt.Sprint(optsOf(t, ps[0])) != want {
		t.Fatalf("filtered list: %v", ps)
	}

	// Update: replace, remove (null), add; the others stay; null or [] changes nothing.
	p = a.admin(http.StatusOK, "PUT", "/v2.0/ports/"+id, map[string]any{"port": map[string]any{"extra_dhcp_opts": []any{
		map[string]any{"opt_name": "tftp-server", "opt_value": "10.0.1.10"},
		map[string]any{"opt_name": "bootfile-name", "opt_value": nil, "ip_version": 6},
		map[string]any{"opt_name": "mtu", "opt_value": "1400", "ip_version": 4},
	}}})["port"].(map[string]any)
	want = "[tftp-server=10.0.1.10/v4 bootfile-name=pxelinux.0/v4 mtu=1400/v4]"
	if got := fmt.Sprint(optsOf(t, p)); got != want {
		t.Fatalf("updated to %s, want %s", got, want)
	}
	for _, v := range []any{nil, []any{}} {
		p = a.admin(http.StatusOK, "PUT", "/v2.0/ports/"+id, map[string]any{"port": map[string]any{"extra_dhcp_opts": v}})["port"].(map[string]any)
		if got := fmt.Sprint(optsOf(t, p)); got != want {
			t.Fatalf("after extra_dhcp_opts %v: %s, want %s", v, got, want)
		}
	}

	// Bulk create.
	out := a.admin(http.StatusCreated, "POST", "/v2.0/ports", map[string]any{"ports": []any{
		map[string]any{"network_id": netID},
		map[string]any{"network_id": netID, "extra_dhcp_opts": []any{map[string]any{"opt_name": "router", "opt_value": ""}}},
	}})
	bulk := list(out, "ports")
	if len(optsOf(t, bulk[0])) != 0 || fmt.Sprint(optsOf(t, bulk[1])) != "[router=/v4]" {
		t.Fatalf("bulk created %v and %v", bulk[0]["extra_dhcp_opts"], bulk[1]["extra_dhcp_opts"])
	}

	exts := map[string]bool{}
	for _, x := range list(a.admin(http.StatusOK, "GET", "/v2.0/extensions", nil), "extensions") {
		exts[x["alias"].(string)] = true
	}
	if !exts["extra_dhcp_opt"] {
		t.Error("extension extra_dhcp_opt not listed")
	}
}

// TestExtraDHCPOptsRefusedAPI: what Neutron's validator refuses is 400 InvalidInput, on
// create, bulk create (naming the item) and update, and changes nothing.
func TestExtraDHCPOptsRefusedAPI(t *testing.T) {
	a := newAPI(t)
	netID, _, _, _ := base(a, "10.0.1.0/24")
	p := a.create("ports", "port", map[string]any{"network_id": netID,
		"extra_dhcp_opts": []any{map[string]any{"opt_name": "mtu", "opt_value": "1400"}}})
	id := p["id"].(string)
	rev := a.revision()
	for name, v := range map[string]any{
		"not a list":         map[string]any{"opt_name": "mtu", "opt_value": "1400"},
		"a string":           "mtu=1400",
		"item not an object": []any{"mtu"},
		"unknown key":        []any{map[string]any{"opt_name": "mtu", "opt_value": "1400", "tag": "x"}},
		"no opt_value":       []any{map[string]any{"opt_name": "mtu"}},
		"no opt_name":        []any{map[string]any{"opt_value": "1400"}},
		"null opt_name":      []any{map[string]any{"opt_name": nil, "opt_value": "1400"}},
		"number opt_value":   []any{map[string]any{"opt_name": "mtu", "opt_value": 1400}},
		"empty opt_value":    []any{map[string]any{"opt_name": "mtu", "opt_value": ""}},
		"empty opt_name":     []any{map[string]any{"opt_name": "", "opt_value": "1400"}},
		"ip_version 5":       []any{map[string]any{"opt_name": "mtu", "opt_value": "1400", "ip_version": 5}},
		"ip_version null":    []any{map[string]any{"opt_name": "mtu", "opt_value": "1400", "ip_version": nil}},
		"ip_version text":    []any{map[string]any{"opt_name": "mtu", "opt_value": "1400", "ip_version": "four"}},
		"duplicate":          []any{map[string]any{"opt_name": "mtu", "opt_value": "1400"}, map[string]any{"opt_name": "mtu", "opt_value": "1300", "ip_version": 4}},
		"two lines":          []any{map[string]any{"opt_name": "domain-search", "opt_value": "a.example\nb.example"}},
	} {
		t.Run(name, func(t *testing.T) {
			code, out := a.do(adminToken, "POST", "/v2.0/ports", map[string]any{"port": map[string]any{"network_id": netID, "extra_dhcp_opts": v}})
			wantError(t, code, out, http.StatusBadRequest, "InvalidInput")
			code, out = a.do(adminToken, "POST", "/v2.0/ports", map[string]any{"ports": []any{
				map[string]any{"network_id": netID}, map[string]any{"network_id": netID, "extra_dhcp_opts": v}}})
			wantError(t, code, out, http.StatusBadRequest, "InvalidInput")
			if msg := out["NeutronError"].(map[string]any)["message"].(string); !strings.HasPrefix(msg, "Item 1: ") {
				t.Errorf("bulk refusal %q does not name item 1", msg)
			}
			code, out = a.do(adminToken, "PUT", "/v2.0/ports/"+id, map[string]any{"port": map[string]any{"extra_dhcp_opts": v}})
			wantError(t, code, out, http.StatusBadRequest, "InvalidInput")
			if got := a.revision(); got != rev {
				t.Fatalf("revision %d after the refusals, want %d", got, rev)
			}
		})
	}
	if got := fmt.Sprint(optsOf(t, a.admin(http.StatusOK, "GET", "/v2.0/ports/"+id, nil)["port"].(map[string]any))); got != "[mtu=1400/v4]" {
		t.Fatalf("options after the refusals: %s", got)
	}
}
