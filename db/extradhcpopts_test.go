package db_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
)

func opt(name string, value *string, version int) db.ExtraDHCPOptSpec {
	return db.ExtraDHCPOptSpec{OptName: name, OptValue: value, IPVersion: version}
}

// TestExtraDHCPOpts creates and updates a port's extra DHCP options with Neutron's
// semantics, and checks the change log and the snapshot carry them.
func TestExtraDHCPOpts(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n, _ := tenantNet(t, s, "10.0.0.0/24")

	plain := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID}))(t)
	if plain.ExtraDHCPOpts == nil || len(plain.ExtraDHCPOpts) != 0 {
		t.Fatalf("a port without options has %#v, want an empty list", plain.ExtraDHCPOpts)
	}
	// Create: items with a null value are not stored; ip_version defaults to 4; one name
	// may be given once per IP version; router may be empty.
	p := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID, ExtraDHCPOpts: &[]db.ExtraDHCPOptSpec{
		opt("tftp-server", ptr("10.0.0.9"), 0), opt("bootfile-name", ptr("pxelinux.0"), 4), opt("bootfile-name", ptr("ipxe.efi"), 6),
		opt("domain-search", nil, 4), opt("router", ptr(""), 4),
	}}))(t)
	want := []topology.ExtraDHCPOpt{{OptName: "tftp-server", OptValue: "10.0.0.9", IPVersion: 4}, {OptName: "bootfile-name", OptValue: "pxelinux.0", IPVersion: 4},
		{OptName: "bootfile-name", OptValue: "ipxe.efi", IPVersion: 6}, {OptName: "router", OptValue: "", IPVersion: 4}}
	if !slices.Equal(p.ExtraDHCPOpts, want) {
		t.Fatalf("created with %v, want %v", p.ExtraDHCPOpts, want)
	}

	// Update: a named option is replaced or (null) removed, a new one appended, the others
	// stay; an empty list changes nothing.
	p = ok(s.UpdatePort(ctx, p.ID, db.PortSpec{ExtraDHCPOpts: &[]db.ExtraDHCPOptSpec{
		opt("tftp-server", ptr("10.0.0.10"), 4), opt("bootfile-name", nil, 6), opt("mtu", ptr("1400"), 0), opt("ntp-server", nil, 4),
	}}))(t)
	want = []topology.ExtraDHCPOpt{{OptName: "tftp-server", OptValue: "10.0.0.10", IPVersion: 4}, {OptName: "bootfile-name", OptValue: "pxelinux.0", IPVersion: 4},
		{OptName: "router", OptValue: "", IPVersion: 4}, {OptName: "mtu", OptValue: "1400", IPVersion: 4}}
	if !slices.Equal(p.ExtraDHCPOpts, want) {
		t.Fatalf("updated to %v, want %v", p.ExtraDHCPOpts, want)
	}
	p = ok(s.UpdatePort(ctx, p.ID, db.PortSpec{Name: ptr("renamed"), ExtraDHCPOpts: &[]db.ExtraDHCPOptSpec{}}))(t)
	if !slices.Equal(p.ExtraDHCPOpts, want) || p.Name != "renamed" {
		t.Fatalf("after an update with no items: %v %q, want %v", p.ExtraDHCPOpts, p.Name, want)
	}

	// The change log's last state of the port and the snapshot agree.
	topo, _ := ok2(s.Snapshot(ctx))(t)
	var snap *topology.Port
	for i := range topo.Ports {
		if topo.Ports[i].ID == p.ID {
			snap = &topo.Ports[i]
		}
	}
	if snap == nil || !slices.Equal(snap.ExtraDHCPOpts, want) {
		t.Fatalf("snapshot has %+v, want options %v", snap, want)
	}
	var logged *topology.Port
	for _, c := range changesAfter(t, s, 0) {
		if c.ID == p.ID {
			logged = c.Object.(*topology.Port)
		}
	}
	if logged == nil || !slices.Equal(logged.ExtraDHCPOpts, want) {
		t.Fatalf("change log's last state %+v, want options %v", logged, want)
	}

	// Bulk create takes them per item.
	ps := ok(s.CreatePorts(ctx, []db.PortSpec{{ProjectID: "p", NetworkID: n.ID},
		{ProjectID: "p", NetworkID: n.ID, ExtraDHCPOpts: &[]db.ExtraDHCPOptSpec{opt("150", ptr("10.0.0.9"), 4)}}}))(t)
	if len(ps[0].ExtraDHCPOpts) != 0 || ps[0].ExtraDHCPOpts == nil || !slices.Equal(ps[1].ExtraDHCPOpts, []topology.ExtraDHCPOpt{{OptName: "150", OptValue: "10.0.0.9", IPVersion: 4}}) {
		t.Fatalf("bulk created %#v and %#v", ps[0].ExtraDHCPOpts, ps[1].ExtraDHCPOpts)
	}
}

// TestExtraDHCPOptsRefused sends what Neutron's key specs refuse, on create, bulk create
// and update: each is InvalidInput and changes nothing.
func TestExtraDHCPOptsRefused(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n, _ := tenantNet(t, s, "10.0.0.0/24")
	p := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID, ExtraDHCPOpts: &[]db.ExtraDHCPOptSpec{opt("mtu", ptr("1400"), 4)}}))(t)
	for name, items := range map[string][]db.ExtraDHCPOptSpec{
		"empty name":            {opt("", ptr("x"), 4)},
		"blank name":            {opt("  ", ptr("x"), 4)},
		"name too long":         {opt(strings.Repeat("n", 65), ptr("x"), 4)},
		"two-line name":         {opt("tftp\nserver", ptr("x"), 4)},
		"empty value":           {opt("tftp-server", ptr(""), 4)},
		"blank value":           {opt("tftp-server", ptr(" \t"), 4)},
		"two-line value":        {opt("tftp-server", ptr("10.0.0.9\n10.0.0.10"), 4)},
		"value too long":        {opt("bootfile-name", ptr(strings.Repeat("v", 256)), 4)},
		"router value too long": {opt("router", ptr(strings.Repeat("1", 256)), 4)},
		"ip_version 5":          {opt("mtu", ptr("1400"), 5)},
		"twice for IPv4":        {opt("mtu", ptr("1400"), 4), opt("mtu", ptr("1300"), 0)},
		"twice, null and value": {opt("mtu", nil, 4), opt("mtu", ptr("1300"), 4)},
	} {
		rev := revision(t, s)
		_, err := s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID, ExtraDHCPOpts: &items})
		wantErrType(t, err, "InvalidInput")
		_, err = s.CreatePorts(ctx, []db.PortSpec{{ProjectID: "p", NetworkID: n.ID}, {ProjectID: "p", NetworkID: n.ID, ExtraDHCPOpts: &items}})
		wantErrType(t, err, "InvalidInput")
		if e, _ := db.AsError(err); !strings.HasPrefix(e.Message, "Item 1: ") {
			t.Errorf("%s: bulk error %q does not name item 1", name, e.Message)
		}
		_, err = s.UpdatePort(ctx, p.ID, db.PortSpec{ExtraDHCPOpts: &items})
		wantErrType(t, err, "InvalidInput")
		if got := revision(t, s); got != rev {
			t.Fatalf("%s: revision %d after refusals, want %d", name, got, rev)
		}
	}
	if got := ok(s.GetPort(ctx, p.ID))(t); !slices.Equal(got.ExtraDHCPOpts, []topology.ExtraDHCPOpt{{OptName: "mtu", OptValue: "1400", IPVersion: 4}}) {
		t.Fatalf("options after refused updates: %v", got.ExtraDHCPOpts)
	}
}
