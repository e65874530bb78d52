package ovsdb

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/ovn-kubernetes/libovsdb/model"
	libovsdb "github.com/ovn-kubernetes/libovsdb/ovsdb"

	"github.com/dvrflow/dvrflow/host/ovsdb/vswitch"
)

// Bridge is the desired state of one OVS bridge.
type Bridge struct {
	Name         string   // <= 15 characters (it is also a network device name)
	DatapathType string   // "netdev" (userspace) or "system" (kernel)
	FailMode     string   // "secure" or "standalone"
	Protocols    []string // e.g. ["OpenFlow13"]
	// Controllers are OVS controller targets: "tcp:IP:PORT", "ssl:IP:PORT" or
	// "unix:PATH". They are set with connection_mode=out-of-band.
	Controllers []string
	// DatapathID is other_config:datapath-id: exactly 16 hex digits, or "" to let OVS
	// choose one.
	DatapathID string
	// ExternalIDs are set on the bridge; other keys already there are kept.
	ExternalIDs map[string]string
}

// Validate reports what is wrong with b, if anything.
func (b Bridge) Validate() error {
	if err := validIfName(b.Name); err != nil {
		return fmt.Errorf("bridge name: %w", err)
	}
	switch b.DatapathType {
	case "netdev", "system":
	default:
		return fmt.Errorf("bridge %s: datapath type %q: want netdev or system", b.Name, b.DatapathType)
	}
	switch b.FailMode {
	case vswitch.BridgeFailModeSecure, vswitch.BridgeFailModeStandalone:
	default:
		return fmt.Errorf("bridge %s: fail mode %q: want secure or standalone", b.Name, b.FailMode)
	}
	if len(b.Protocols) == 0 {
		return fmt.Errorf("bridge %s: no OpenFlow protocols", b.Name)
	}
	for _, p := range b.Protocols {
		switch p {
		case vswitch.BridgeProtocolsOpenflow10, vswitch.BridgeProtocolsOpenflow11, vswitch.BridgeProtocolsOpenflow12,
			vswitch.BridgeProtocolsOpenflow13, vswitch.BridgeProtocolsOpenflow14, vswitch.BridgeProtocolsOpenflow15:
		default:
			return fmt.Errorf("bridge %s: unknown protocol %q", b.Name, p)
		}
	}
	seen := map[string]bool{}
	for _, t := range b.Controllers {
		if err := validController(t); err != nil {
			return fmt.Errorf("bridge %s: %w", b.Name, err)
		}
		if seen[t] {
			return fmt.Errorf("bridge %s: controller %q given twice", b.Name, t)
		}
		seen[t] = true
	}
	if b.DatapathID != "" {
		if len(b.DatapathID) != 16 {
			return fmt.Errorf("bridge %s: datapath ID %q: want 16 hex digits", b.Name, b.DatapathID)
		}
		if _, err := strconv.ParseUint(b.DatapathID, 16, 64); err != nil {
			return fmt.Errorf("bridge %s: datapath ID %q: want 16 hex digits", b.Name, b.DatapathID)
		}
	}
	for k := range b.ExternalIDs {
		if k == "" {
			return fmt.Errorf("bridge %s: empty external_ids key", b.Name)
		}
	}
	return nil
}

func validController(t string) error {
	kind, rest, ok := strings.Cut(t, ":")
	if !ok {
		return fmt.Errorf("controller %q: want tcp:IP:PORT, ssl:IP:PORT or unix:PATH", t)
	}
	switch kind {
	case "tcp", "ssl":
		ap, err := netip.ParseAddrPort(rest) // IPv4 a.b.c.d:port or IPv6 [addr]:port
		if err != nil {
			return fmt.Errorf("controller %q: %w", t, err)
		}
		if ap.Port() == 0 {
			return fmt.Errorf("controller %q: port 0", t)
		}
	case "unix":
		if rest == "" || !strings.HasPrefix(rest, "/") {
			return fmt.Errorf("controller %q: want an absolute socket path", t)
		}
	default:
		return fmt.Errorf("controller %q: unknown kind %q (want tcp, ssl or unix)", t, kind)
	}
	return nil
}

// validIfName checks a Linux network device name (OVS bridges and ports are ones).
func validIfName(n string) error {
	if n == "" || len(n) > 15 {
		return fmt.Errorf("%q: want 1 to 15 characters", n)
	}
	if n == "." || n == ".." || strings.ContainsAny(n, "/:% \t\n") {
		return fmt.Errorf("%q: not a valid device name", n)
	}
	return nil
}

// EnsureBridge makes bridge b exist with exactly the given datapath type, fail mode,
// protocols, controllers (out-of-band) and datapath ID, and with b's external_ids set.
// A new bridge gets its internal port, as `ovs-vsctl add-br` does.
func (c *Client) EnsureBridge(ctx context.Context, b Bridge) (changed bool, err error) {
	if err := b.Validate(); err != nil {
		return false, fmt.Errorf("ovsdb: ensure bridge: %w", err)
	}
	return c.converge(ctx, "bridge "+b.Name, func(ctx context.Context) ([]libovsdb.Operation, error) {
		return c.bridgeOps(ctx, b)
	})
}

func (c *Client) bridgeOps(ctx context.Context, b Bridge) ([]libovsdb.Operation, error) {
	cur, err := c.bridgeByName(ctx, b.Name)
	if err != nil {
		return nil, err
	}
	var ops []libovsdb.Operation
	add := func(o []libovsdb.Operation, err error) error {
		if err != nil {
			return err
		}
		ops = append(ops, o...)
		return nil
	}
	ctrlUUIDs, ctrlOps, err := c.controllerOps(ctx, cur, b.Controllers)
	if err != nil {
		return nil, err
	}
	ops = append(ops, ctrlOps...)
	failMode := b.FailMode

	if cur == nil {
		root, err := c.rootRow(ctx)
		if err != nil {
			return nil, err
		}
		iface := &vswitch.Interface{UUID: "newiface", Name: b.Name, Type: "internal"}
		port := &vswitch.Port{UUID: "newport", Name: b.Name, Interfaces: []string{iface.UUID}}
		br := &vswitch.Bridge{
			UUID: "newbridge", Name: b.Name, DatapathType: b.DatapathType, FailMode: &failMode,
			Protocols: slices.Clone(b.Protocols), Controller: ctrlUUIDs, Ports: []string{port.UUID},
			OtherConfig: map[string]string{}, ExternalIDs: maps.Clone(b.ExternalIDs),
		}
		if b.DatapathID != "" {
			br.OtherConfig["datapath-id"] = b.DatapathID
		}
		if err := add(c.create(iface, port, br)); err != nil {
			return nil, fmt.Errorf("ovsdb: create bridge %s: %w", b.Name, err)
		}
		err = add(c.cl.Where(root).Mutate(root, model.Mutation{
			Field: &root.Bridges, Mutator: libovsdb.MutateOperationInsert, Value: []string{br.UUID},
		}))
		if err != nil {
			return nil, fmt.Errorf("ovsdb: add bridge %s: %w", b.Name, err)
		}
		return ops, nil
	}

	br := &vswitch.Bridge{UUID: cur.UUID}
	var fields []any
	if cur.DatapathType != b.DatapathType {
		br.DatapathType = b.DatapathType
		fields = append(fields, &br.DatapathType)
	}
	if cur.FailMode == nil || *cur.FailMode != b.FailMode {
		br.FailMode = &failMode
		fields = append(fields, &br.FailMode)
	}
	if !sameSet(cur.Protocols, b.Protocols) {
		br.Protocols = slices.Clone(b.Protocols)
		fields = append(fields, &br.Protocols)
	}
	if len(ctrlOps) > 0 || !sameSet(cur.Controller, ctrlUUIDs) {
		br.Controller = ctrlUUIDs
		fields = append(fields, &br.Controller)
	}
	if want := b.DatapathID; cur.OtherConfig["datapath-id"] != want {
		br.OtherConfig = maps.Clone(cur.OtherConfig)
		if br.OtherConfig == nil {
			br.OtherConfig = map[string]string{}
		}
		if want == "" {
			delete(br.OtherConfig, "datapath-id")
		} else {
			br.OtherConfig["datapath-id"] = want
		}
		fields = append(fields, &br.OtherConfig)
	}
	if ext, ok := merged(cur.ExternalIDs, b.ExternalIDs); !ok {
		br.ExternalIDs = ext
		fields = append(fields, &br.ExternalIDs)
	}
	if len(fields) > 0 {
		if err := add(c.cl.Where(br).Update(br, fields...)); err != nil {
			return nil, fmt.Errorf("ovsdb: update bridge %s: %w", b.Name, err)
		}
	}
	return ops, nil
}

// controllerOps returns the Controller row uuids bridge cur should reference for the
// wanted targets: the existing rows when they already match (same targets, all
// out-of-band), else new rows (named uuids) with their insert operations. Replaced rows
// are garbage collected by ovsdb-server (Controller is not a root table).
func (c *Client) controllerOps(ctx context.Context, cur *vswitch.Bridge, targets []string) ([]string, []libovsdb.Operation, error) {
	if cur != nil && len(cur.Controller) == len(targets) {
		var have []string
		ok := true
		for _, u := range cur.Controller {
			row := &vswitch.Controller{UUID: u}
			if err := c.cl.Get(ctx, row); err != nil {
				ok = false
				break
			}
			if row.ConnectionMode == nil || *row.ConnectionMode != vswitch.ControllerConnectionModeOutOfBand {
				ok = false
				break
			}
			have = append(have, row.Target)
		}
		if ok && sameSet(have, targets) {
			return slices.Clone(cur.Controller), nil, nil
		}
	}
	var uuids []string
	var ops []libovsdb.Operation
	for i, t := range targets {
		mode := vswitch.ControllerConnectionModeOutOfBand
		row := &vswitch.Controller{UUID: fmt.Sprintf("newctrl%d", i), Target: t, ConnectionMode: &mode}
		o, err := c.cl.Create(row)
		if err != nil {
			return nil, nil, fmt.Errorf("ovsdb: controller %s: %w", t, err)
		}
		ops = append(ops, o...)
		uuids = append(uuids, row.UUID)
	}
	return uuids, ops, nil
}

// DeleteBridge removes a bridge (and with it its ports and interfaces). Deleting a
// bridge that does not exist changes nothing.
func (c *Client) DeleteBridge(ctx context.Context, name string) (changed bool, err error) {
	if err := validIfName(name); err != nil {
		return false, fmt.Errorf("ovsdb: delete bridge: %w", err)
	}
	return c.converge(ctx, "delete bridge "+name, func(ctx context.Context) ([]libovsdb.Operation, error) {
		cur, err := c.bridgeByName(ctx, name)
		if err != nil || cur == nil {
			return nil, err
		}
		root, err := c.rootRow(ctx)
		if err != nil {
			return nil, err
		}
		ops, err := c.cl.Where(root).Mutate(root, model.Mutation{
			Field: &root.Bridges, Mutator: libovsdb.MutateOperationDelete, Value: []string{cur.UUID},
		})
		if err != nil {
			return nil, fmt.Errorf("ovsdb: delete bridge %s: %w", name, err)
		}
		return ops, nil
	})
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

// merged returns cur with want's keys set, and whether cur already had them all.
func merged(cur, want map[string]string) (map[string]string, bool) {
	same := true
	for k, v := range want {
		if got, ok := cur[k]; !ok || got != v {
			same = false
		}
	}
	if same {
		return cur, true
	}
	out := maps.Clone(cur)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, want)
	return out, false
}
