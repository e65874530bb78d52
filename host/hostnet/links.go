package hostnet

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/dvrflow/dvrflow/host/ovsdb"
	"github.com/dvrflow/dvrflow/plan"
)

// isNotFound reports whether err says the link does not exist (or no longer does: a veth
// goes with its peer's namespace, asynchronously, between a lookup and a delete).
func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// links makes the namespace's devices match: removes unplanned ones, creates the
// missing veths, fixes MAC/MTU, brings everything up and plugs bridge links into OVS.
func (r *applyRun) links(ns *plan.Namespace) error {
	name := r.full(ns.Name)
	h := r.nl[name]
	cur, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("hostnet: %s: list links: %w", name, err)
	}
	for _, l := range cur {
		n := l.Attrs().Name
		if n == "lo" || ns.Link(n) != nil {
			continue
		}
		if err := h.LinkDel(l); err != nil {
			return fmt.Errorf("hostnet: %s: delete link %s: %w", name, n, err)
		}
		r.changed("%s: delete link %s", name, n)
	}
	for i := range ns.Links {
		if err := r.link(ns, &ns.Links[i]); err != nil {
			return err
		}
	}
	return nil
}

func (r *applyRun) link(ns *plan.Namespace, pl *plan.Link) error {
	name := r.full(ns.Name)
	h := r.nl[name]
	mac, _ := net.ParseMAC(pl.MAC) // validated
	l, err := h.LinkByName(pl.Name)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("hostnet: %s: link %s: %w", name, pl.Name, err)
	}
	if l != nil && l.Type() != "veth" {
		if err := h.LinkDel(l); err != nil {
			return fmt.Errorf("hostnet: %s: delete non-veth %s: %w", name, pl.Name, err)
		}
		r.changed("%s: delete %s link %s (want veth)", name, l.Type(), pl.Name)
		l = nil
	}
	if l == nil {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: pl.Name, HardwareAddr: mac, MTU: pl.MTU}}
		if pl.Bridge != "" {
			// Created on the OVS side, the namespace end moved into the namespace.
			peer := plan.OVSPeerName(pl.Name)
			if old, err := r.hostNL.LinkByName(peer); err == nil {
				if err := r.hostNL.LinkDel(old); err != nil {
					return fmt.Errorf("hostnet: delete orphan %s: %w", peer, err)
				}
				r.changed("delete orphan link %s", peer)
			}
			// An OVS port of that name still holds the device that is gone: the userspace
			// datapath keeps its old handle and would never pass a packet to the new one.
			// Remove it in a transaction of its own before the new device is plugged.
			ch, err := r.a.ovs.UnplugPort(r.ctx, pl.Bridge, peer)
			if err != nil {
				return fmt.Errorf("hostnet: %s: unplug %s before replacing its device: %w", name, peer, err)
			}
			if ch {
				r.changed("unplug %s from %s (its device is replaced)", peer, pl.Bridge)
			}
			veth = &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: peer, MTU: pl.MTU},
				PeerName: pl.Name, PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(int(r.nsh[name]))}
			if pl.MTU != 0 {
				veth.PeerMTU = uint32(pl.MTU)
			}
			if err := r.hostNL.LinkAdd(veth); err != nil {
				return fmt.Errorf("hostnet: %s: add veth %s/%s: %w", name, peer, pl.Name, err)
			}
		} else {
			peerNS := r.full(pl.PeerNamespace)
			ph := r.nl[peerNS]
			if ph == nil {
				return fmt.Errorf("hostnet: %s: link %s: peer namespace %s not open", name, pl.Name, peerNS)
			}
			if old, err := ph.LinkByName(pl.PeerName); err == nil {
				// Its own peer is elsewhere: it is not our pair. Recreate both ends.
				if err := ph.LinkDel(old); err != nil {
					return fmt.Errorf("hostnet: %s: delete %s: %w", peerNS, pl.PeerName, err)
				}
				r.changed("%s: delete link %s (wrong peer)", peerNS, pl.PeerName)
			}
			other := findLink(r.p, pl.PeerNamespace, pl.PeerName)
			pmac, _ := net.ParseMAC(other.MAC)
			veth.PeerName, veth.PeerHardwareAddr = pl.PeerName, pmac
			veth.PeerNamespace = netlink.NsFd(int(r.nsh[peerNS]))
			if other.MTU != 0 {
				veth.PeerMTU = uint32(other.MTU)
			}
			if err := h.LinkAdd(veth); err != nil {
				return fmt.Errorf("hostnet: %s: add veth %s <-> %s/%s: %w", name, pl.Name, peerNS, pl.PeerName, err)
			}
		}
		r.changed("%s: add link %s", name, pl.Name)
		if l, err = h.LinkByName(pl.Name); err != nil {
			return fmt.Errorf("hostnet: %s: link %s after add: %w", name, pl.Name, err)
		}
	}
	attrs := l.Attrs()
	if attrs.HardwareAddr.String() != mac.String() {
		if err := h.LinkSetHardwareAddr(l, mac); err != nil {
			return fmt.Errorf("hostnet: %s: set MAC of %s: %w", name, pl.Name, err)
		}
		r.changed("%s: set MAC of %s to %s", name, pl.Name, mac)
	}
	if pl.MTU != 0 && attrs.MTU != pl.MTU {
		if err := h.LinkSetMTU(l, pl.MTU); err != nil {
			return fmt.Errorf("hostnet: %s: set MTU of %s: %w", name, pl.Name, err)
		}
		r.changed("%s: set MTU of %s to %d", name, pl.Name, pl.MTU)
	}
	if attrs.Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("hostnet: %s: up %s: %w", name, pl.Name, err)
		}
		r.changed("%s: set %s up", name, pl.Name)
	}
	if pl.Bridge == "" {
		return nil
	}
	peer := plan.OVSPeerName(pl.Name)
	pln, err := r.hostNL.LinkByName(peer)
	if err != nil {
		return fmt.Errorf("hostnet: %s: OVS side %s of %s: %w", name, peer, pl.Name, err)
	}
	if pl.MTU != 0 && pln.Attrs().MTU != pl.MTU {
		if err := r.hostNL.LinkSetMTU(pln, pl.MTU); err != nil {
			return fmt.Errorf("hostnet: set MTU of %s: %w", peer, err)
		}
		r.changed("set MTU of %s to %d", peer, pl.MTU)
	}
	if pln.Attrs().Flags&net.FlagUp == 0 {
		if err := r.hostNL.LinkSetUp(pln); err != nil {
			return fmt.Errorf("hostnet: up %s: %w", peer, err)
		}
		r.changed("set %s up", peer)
	}
	ch, err := r.a.ovs.PlugPort(r.ctx, pl.Bridge, peer, pl.IfaceID, pl.MAC, "active")
	if err != nil {
		return fmt.Errorf("hostnet: %s: plug %s: %w", name, peer, err)
	}
	if ch {
		r.changed("plug %s into %s (iface-id %s)", peer, pl.Bridge, pl.IfaceID)
	}
	return nil
}

func findLink(p *plan.Plan, ns, name string) *plan.Link {
	for i := range p.Namespaces {
		if p.Namespaces[i].Name == ns {
			return p.Namespaces[i].Link(name)
		}
	}
	return nil
}

func (r *applyRun) loUp(ns *plan.Namespace) error {
	name := r.full(ns.Name)
	h := r.nl[name]
	lo, err := h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("hostnet: %s: lo: %w", name, err)
	}
	if lo.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("hostnet: %s: up lo: %w", name, err)
	}
	r.changed("%s: set lo up", name)
	return nil
}

// staleOVSPorts unplugs (and deletes the host side of) plugged links that no
// namespace of the plan has any more.
func (r *applyRun) staleOVSPorts() error {
	if r.a.ovs == nil {
		return nil
	}
	want := map[string]bool{}
	bridges := append([]string{}, r.a.cfg.Bridges...)
	for _, ns := range r.p.Namespaces {
		for _, l := range ns.Links {
			if l.Bridge != "" {
				want[plan.OVSPeerName(l.Name)] = true
				if !contains(bridges, l.Bridge) {
					bridges = append(bridges, l.Bridge)
				}
			}
		}
	}
	for _, br := range bridges {
		ports, err := r.a.ovs.Ports(r.ctx, br, ovsdb.ExtIfaceID)
		if err != nil {
			return fmt.Errorf("hostnet: stale ports: %w", err)
		}
		for _, p := range ports {
			if want[p] || !isPlanPeer(p) {
				continue
			}
			if _, err := r.a.ovs.UnplugPort(r.ctx, br, p); err != nil {
				return fmt.Errorf("hostnet: unplug stale %s: %w", p, err)
			}
			r.changed("unplug %s from %s", p, br)
			if l, err := r.hostNL.LinkByName(p); err == nil {
				if err := r.hostNL.LinkDel(l); err != nil && !isNotFound(err) {
					return fmt.Errorf("hostnet: delete stale %s: %w", p, err)
				}
				r.changed("delete link %s", p)
			}
		}
	}
	return nil
}

// isPlanPeer reports whether an OVS port name has the form OVSPeerName gives plan links.
func isPlanPeer(name string) bool {
	for _, pre := range plan.BridgeLinkPrefixes {
		if strings.HasPrefix(name, plan.OVSPeerName(pre)) {
			return true
		}
	}
	return false
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}
