package ovsdb

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"

	"github.com/ovn-kubernetes/libovsdb/model"
	libovsdb "github.com/ovn-kubernetes/libovsdb/ovsdb"
	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/host/ovsdb/vswitch"
)

// External IDs Nova (os-vif) sets on a VM's interface, which Neutron's agent and
// dvrflow's controller read to bind an OpenFlow port to a Neutron port.
const (
	ExtIfaceID     = "iface-id"
	ExtAttachedMAC = "attached-mac"
	ExtIfaceStatus = "iface-status"
)

// portSpec is the desired state of a port with one interface of the same name.
type portSpec struct {
	bridge, name string
	ifType       string            // "" (system device), "internal", "patch", "vxlan"
	options      map[string]string // exact
	externalIDs  map[string]string // set; other keys kept
}

func (c *Client) ensurePort(ctx context.Context, s portSpec) (bool, error) {
	return c.converge(ctx, fmt.Sprintf("port %s on %s", s.name, s.bridge), func(ctx context.Context) ([]libovsdb.Operation, error) {
		return c.portOps(ctx, s)
	})
}

func (c *Client) portOps(ctx context.Context, s portSpec) ([]libovsdb.Operation, error) {
	br, err := c.bridgeByName(ctx, s.bridge)
	if err != nil {
		return nil, err
	}
	if br == nil {
		return nil, fmt.Errorf("ovsdb: port %s: bridge %s does not exist", s.name, s.bridge)
	}
	cur, err := c.portByName(ctx, s.name)
	if err != nil {
		return nil, err
	}
	if cur == nil {
		if i, err := c.ifaceByName(ctx, s.name); err != nil {
			return nil, err
		} else if i != nil {
			return nil, fmt.Errorf("ovsdb: interface %s exists on another port", s.name)
		}
		iface := &vswitch.Interface{UUID: "newiface", Name: s.name, Type: s.ifType,
			Options: maps.Clone(s.options), ExternalIDs: maps.Clone(s.externalIDs)}
		port := &vswitch.Port{UUID: "newport", Name: s.name, Interfaces: []string{iface.UUID}}
		ops, err := c.create(iface, port)
		if err != nil {
			return nil, fmt.Errorf("ovsdb: create port %s: %w", s.name, err)
		}
		mut, err := c.cl.Where(br).Mutate(br, model.Mutation{
			Field: &br.Ports, Mutator: libovsdb.MutateOperationInsert, Value: []string{port.UUID},
		})
		if err != nil {
			return nil, fmt.Errorf("ovsdb: add port %s to %s: %w", s.name, s.bridge, err)
		}
		return append(ops, mut...), nil
	}
	owner, err := c.bridgeOfPort(ctx, cur.UUID)
	if err != nil {
		return nil, err
	}
	if owner == nil || owner.Name != s.bridge {
		where := "no bridge"
		if owner != nil {
			where = "bridge " + owner.Name
		}
		return nil, fmt.Errorf("ovsdb: port %s is on %s, not on %s", s.name, where, s.bridge)
	}
	if len(cur.Interfaces) != 1 {
		return nil, fmt.Errorf("ovsdb: port %s has %d interfaces (a bond?), want 1", s.name, len(cur.Interfaces))
	}
	ci, err := c.ifaceByUUID(ctx, cur.Interfaces[0])
	if err != nil {
		return nil, err
	}
	if ci.Name != s.name {
		return nil, fmt.Errorf("ovsdb: port %s has interface %s, want one of the same name", s.name, ci.Name)
	}
	iface := &vswitch.Interface{UUID: ci.UUID}
	var fields []any
	if ci.Type != s.ifType {
		iface.Type = s.ifType
		fields = append(fields, &iface.Type)
	}
	if !maps.Equal(ci.Options, s.options) && (len(ci.Options) != 0 || len(s.options) != 0) {
		iface.Options = maps.Clone(s.options)
		if iface.Options == nil {
			iface.Options = map[string]string{}
		}
		fields = append(fields, &iface.Options)
	}
	if ext, same := merged(ci.ExternalIDs, s.externalIDs); !same {
		iface.ExternalIDs = ext
		fields = append(fields, &iface.ExternalIDs)
	}
	if len(fields) == 0 {
		return nil, nil
	}
	ops, err := c.cl.Where(iface).Update(iface, fields...)
	if err != nil {
		return nil, fmt.Errorf("ovsdb: update interface %s: %w", s.name, err)
	}
	return ops, nil
}

// EnsurePatchPair makes patch port portA on bridge brA and patch port portB on bridge
// brB, each the other's peer, in one transaction each way.
func (c *Client) EnsurePatchPair(ctx context.Context, brA, portA, brB, portB string) (changed bool, err error) {
	for _, n := range []string{brA, portA, brB, portB} {
		if err := validIfName(n); err != nil {
			return false, fmt.Errorf("ovsdb: patch pair: %w", err)
		}
	}
	if brA == brB || portA == portB {
		return false, fmt.Errorf("ovsdb: patch pair %s:%s <-> %s:%s: needs two bridges and two ports", brA, portA, brB, portB)
	}
	for _, s := range []portSpec{
		{bridge: brA, name: portA, ifType: "patch", options: map[string]string{"peer": portB}},
		{bridge: brB, name: portB, ifType: "patch", options: map[string]string{"peer": portA}},
	} {
		ch, err := c.ensurePort(ctx, s)
		if err != nil {
			return changed, err
		}
		changed = changed || ch
	}
	return changed, nil
}

// EnsureVXLAN makes the one flow-based VXLAN port of a bridge: type=vxlan,
// options:remote_ip=flow, key=flow, local_ip=localIP (the host's tunnel endpoint).
// The flows choose the peer (set_field tun_dst) and the VNI (set_field tun_id).
func (c *Client) EnsureVXLAN(ctx context.Context, bridge, port, localIP string) (changed bool, err error) {
	if err := validIfName(bridge); err != nil {
		return false, fmt.Errorf("ovsdb: vxlan: bridge: %w", err)
	}
	if err := validIfName(port); err != nil {
		return false, fmt.Errorf("ovsdb: vxlan: port: %w", err)
	}
	ip, err := netip.ParseAddr(localIP)
	if err != nil || !ip.Is4() || ip.IsUnspecified() {
		return false, fmt.Errorf("ovsdb: vxlan %s: local IP %q: want a unicast IPv4 address", port, localIP)
	}
	return c.ensurePort(ctx, portSpec{bridge: bridge, name: port, ifType: "vxlan",
		options: map[string]string{"remote_ip": "flow", "key": "flow", "local_ip": ip.String()}})
}

// PlugPort attaches network device name to bridge as Nova does for a VM port, with
// external_ids iface-id (the Neutron port ID), attached-mac and iface-status (status,
// "active" when empty).
func (c *Client) PlugPort(ctx context.Context, bridge, name, ifaceID, attachedMAC, status string) (changed bool, err error) {
	if err := validIfName(bridge); err != nil {
		return false, fmt.Errorf("ovsdb: plug: bridge: %w", err)
	}
	if err := validIfName(name); err != nil {
		return false, fmt.Errorf("ovsdb: plug: port: %w", err)
	}
	if ifaceID == "" {
		return false, fmt.Errorf("ovsdb: plug %s: empty iface-id", name)
	}
	mac, err := net.ParseMAC(attachedMAC)
	if err != nil || len(mac) != 6 {
		return false, fmt.Errorf("ovsdb: plug %s: attached MAC %q: want an Ethernet MAC", name, attachedMAC)
	}
	switch status {
	case "":
		status = "active"
	case "active", "inactive":
	default:
		return false, fmt.Errorf("ovsdb: plug %s: iface-status %q: want active or inactive", name, status)
	}
	return c.ensurePort(ctx, portSpec{bridge: bridge, name: name, externalIDs: map[string]string{
		ExtIfaceID: ifaceID, ExtAttachedMAC: mac.String(), ExtIfaceStatus: status,
	}})
}

// UnplugPort removes port name from bridge. Removing a port that is not there changes
// nothing; a port of that name on another bridge is an error.
func (c *Client) UnplugPort(ctx context.Context, bridge, name string) (changed bool, err error) {
	if err := validIfName(bridge); err != nil {
		return false, fmt.Errorf("ovsdb: unplug: bridge: %w", err)
	}
	if err := validIfName(name); err != nil {
		return false, fmt.Errorf("ovsdb: unplug: port: %w", err)
	}
	// The port's removal carries a next_cfg bump, and UnplugPort returns once
	// ovs-vswitchd has reached it (cur_cfg), as ovs-vsctl waits: a port of the same name
	// plugged before vswitchd saw the removal would keep the old device's handle. A
	// database whose cur_cfg is still 0 has no ovs-vswitchd reporting: nothing to wait for.
	var target int
	var reporting bool
	changed, err = c.converge(ctx, fmt.Sprintf("unplug %s from %s", name, bridge), func(ctx context.Context) ([]libovsdb.Operation, error) {
		cur, err := c.portByName(ctx, name)
		if err != nil || cur == nil {
			return nil, err
		}
		owner, err := c.bridgeOfPort(ctx, cur.UUID)
		if err != nil {
			return nil, err
		}
		if owner == nil {
			return nil, nil // being garbage collected
		}
		if owner.Name != bridge {
			return nil, fmt.Errorf("ovsdb: unplug %s: it is on bridge %s, not %s", name, owner.Name, bridge)
		}
		ops, err := c.cl.Where(owner).Mutate(owner, model.Mutation{
			Field: &owner.Ports, Mutator: libovsdb.MutateOperationDelete, Value: []string{cur.UUID},
		})
		if err != nil {
			return nil, fmt.Errorf("ovsdb: unplug %s: %w", name, err)
		}
		root, err := c.rootRow(ctx)
		if err != nil {
			return nil, err
		}
		bump, err := c.cl.Where(root).Mutate(root, model.Mutation{
			Field: &root.NextCfg, Mutator: libovsdb.MutateOperationAdd, Value: 1,
		})
		if err != nil {
			return nil, fmt.Errorf("ovsdb: unplug %s: next_cfg: %w", name, err)
		}
		target, reporting = root.NextCfg+1, root.CurCfg > 0
		return append(ops, bump...), nil
	})
	if err != nil || !changed || !reporting {
		return changed, err
	}
	return true, c.waitReconfigured(ctx, target)
}

// waitReconfigured waits until ovs-vswitchd has applied the database up to next_cfg
// target (cur_cfg >= target).
func (c *Client) waitReconfigured(ctx context.Context, target int) error {
	settle, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	for {
		ch := c.changes()
		root, err := c.rootRow(settle)
		if err != nil {
			return err
		}
		if root.CurCfg >= target {
			return nil
		}
		select {
		case <-ch:
		case <-settle.Done():
			return fmt.Errorf("ovsdb: ovs-vswitchd did not reach configuration %d (at %d): %w", target, root.CurCfg, settle.Err())
		}
	}
}

// Ports lists the names of the ports of a bridge whose interface external_ids hold key
// (all ports when key is ""), for callers that remove what they no longer want.
func (c *Client) Ports(ctx context.Context, bridge, key string) ([]string, error) {
	br, err := c.bridgeByName(ctx, bridge)
	if err != nil {
		return nil, err
	}
	if br == nil {
		return nil, fmt.Errorf("ovsdb: ports: bridge %s does not exist", bridge)
	}
	var names []string
	for _, pu := range br.Ports {
		p := &vswitch.Port{UUID: pu}
		if err := c.cl.Get(ctx, p); err != nil {
			continue // removed meanwhile
		}
		if key != "" {
			found := false
			for _, iu := range p.Interfaces {
				if i, err := c.ifaceByUUID(ctx, iu); err == nil {
					_, found = i.ExternalIDs[key]
				}
			}
			if !found {
				continue
			}
		}
		names = append(names, p.Name)
	}
	return names, nil
}

// OFPort waits until OVS has given interface ifname an OpenFlow port number and
// returns it. It gives up when ctx ends, reporting the interface's error column
// (e.g. "could not open network device") when OVS set one.
func (c *Client) OFPort(ctx context.Context, ifname string) (int, error) {
	if err := validIfName(ifname); err != nil {
		return 0, fmt.Errorf("ovsdb: ofport: %w", err)
	}
	lastErr := "interface not in the database"
	for {
		ch := c.changes()
		i, err := c.ifaceByName(ctx, ifname)
		if err != nil {
			return 0, err
		}
		if i != nil {
			if i.Ofport != nil && *i.Ofport > 0 {
				return *i.Ofport, nil
			}
			lastErr = "no ofport yet"
			if i.Error != nil {
				lastErr = *i.Error
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			c.log.Warn("ofport wait gave up", zap.String("interface", ifname), zap.String("last", lastErr))
			return 0, fmt.Errorf("ovsdb: ofport of %s (%s): %w", ifname, lastErr, ctx.Err())
		}
	}
}

// EnsureUplink adds an existing network device (e.g. the external network's NIC) to
// bridge as a plain port.
func (c *Client) EnsureUplink(ctx context.Context, bridge, dev string) error {
	if err := validIfName(bridge); err != nil {
		return fmt.Errorf("ovsdb: uplink: bridge: %w", err)
	}
	if err := validIfName(dev); err != nil {
		return fmt.Errorf("ovsdb: uplink: %w", err)
	}
	_, err := c.ensurePort(ctx, portSpec{bridge: bridge, name: dev})
	return err
}
