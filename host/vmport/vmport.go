// Package vmport plugs a VM's port the way Nova and os-vif do: a veth whose eth0 end
// lives in the VM (here: a network namespace) with the port's MAC, address and default
// route, and whose tap<port id[:11]> end is on br-int with external_ids iface-id and
// attached-mac. `dvrflow-host plug` and the test bed both use it.
package vmport

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/dvrflow/dvrflow/host/ovsdb"
)

// VM describes one port to plug.
type VM struct {
	PortID    string // Neutron port ID (iface-id)
	MAC       string
	Netns     string // the VM's named network namespace (created when missing)
	CIDR      string // address of eth0, e.g. 10.0.1.5/24; "": none, the VM asks DHCP
	Gateway   string // default gateway ("" for none; needs CIDR)
	Bridge    string // default br-int
	HostNetns string // named namespace where OVS runs ("" for the caller's)
}

// TapName is the host-side device name of a port, as Nova names it.
func TapName(portID string) string {
	if len(portID) > 11 {
		portID = portID[:11]
	}
	return "tap" + portID
}

func (vm *VM) check() (net.HardwareAddr, netip.Prefix, error) {
	if vm.PortID == "" || vm.Netns == "" {
		return nil, netip.Prefix{}, fmt.Errorf("vmport: port ID and netns are required")
	}
	mac, err := net.ParseMAC(vm.MAC)
	if err != nil || len(mac) != 6 {
		return nil, netip.Prefix{}, fmt.Errorf("vmport: MAC %q: want an Ethernet MAC", vm.MAC)
	}
	if vm.CIDR == "" {
		if vm.Gateway != "" {
			return nil, netip.Prefix{}, fmt.Errorf("vmport: gateway %q without an address", vm.Gateway)
		}
		return mac, netip.Prefix{}, nil
	}
	pfx, err := netip.ParsePrefix(vm.CIDR)
	if err != nil || !pfx.Addr().Is4() {
		return nil, netip.Prefix{}, fmt.Errorf("vmport: address %q: want IPv4 CIDR", vm.CIDR)
	}
	if vm.Gateway != "" {
		if gw, err := netip.ParseAddr(vm.Gateway); err != nil || !pfx.Masked().Contains(gw) {
			return nil, netip.Prefix{}, fmt.Errorf("vmport: gateway %q: want an address in %s", vm.Gateway, pfx.Masked())
		}
	}
	return mac, pfx, nil
}

func hostHandle(name string) (*netlink.Handle, error) {
	if name == "" {
		return netlink.NewHandle()
	}
	h, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("vmport: host netns %s: %w", name, err)
	}
	defer h.Close()
	return netlink.NewHandleAt(h)
}

// Plug creates (or completes) the VM side and plugs the tap into OVS.
func Plug(ctx context.Context, ovs *ovsdb.Client, vm VM) error {
	mac, pfx, err := vm.check()
	if err != nil {
		return err
	}
	if vm.Bridge == "" {
		vm.Bridge = "br-int"
	}
	vmns, err := netns.GetFromName(vm.Netns)
	if err != nil {
		if vmns, err = newNamed(vm.Netns); err != nil {
			return err
		}
	}
	defer vmns.Close()
	host, err := hostHandle(vm.HostNetns)
	if err != nil {
		return err
	}
	defer host.Close()
	in, err := netlink.NewHandleAt(vmns)
	if err != nil {
		return fmt.Errorf("vmport: handle in %s: %w", vm.Netns, err)
	}
	defer in.Close()
	tap := TapName(vm.PortID)
	if _, err := in.LinkByName("eth0"); err != nil {
		if old, err := host.LinkByName(tap); err == nil {
			_ = host.LinkDel(old)
		}
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: tap}, PeerName: "eth0", PeerHardwareAddr: mac,
			PeerNamespace: netlink.NsFd(int(vmns))}
		if err := host.LinkAdd(veth); err != nil {
			return fmt.Errorf("vmport: veth %s/eth0: %w", tap, err)
		}
	}
	eth0, err := in.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("vmport: eth0 in %s: %w", vm.Netns, err)
	}
	if eth0.Attrs().HardwareAddr.String() != mac.String() {
		if err := in.LinkSetHardwareAddr(eth0, mac); err != nil {
			return fmt.Errorf("vmport: MAC of eth0: %w", err)
		}
	}
	if pfx.IsValid() {
		addr := &netlink.Addr{IPNet: &net.IPNet{IP: pfx.Addr().AsSlice(), Mask: net.CIDRMask(pfx.Bits(), 32)}}
		if err := in.AddrReplace(eth0, addr); err != nil {
			return fmt.Errorf("vmport: address: %w", err)
		}
	}
	for _, l := range []string{"lo", "eth0"} {
		if lk, err := in.LinkByName(l); err == nil {
			if err := in.LinkSetUp(lk); err != nil {
				return fmt.Errorf("vmport: up %s: %w", l, err)
			}
		}
	}
	if vm.Gateway != "" {
		rt := &netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP(vm.Gateway).To4()}
		if err := in.RouteReplace(rt); err != nil {
			return fmt.Errorf("vmport: default route: %w", err)
		}
	}
	tl, err := host.LinkByName(tap)
	if err != nil {
		return fmt.Errorf("vmport: %s: %w", tap, err)
	}
	if err := host.LinkSetUp(tl); err != nil {
		return fmt.Errorf("vmport: up %s: %w", tap, err)
	}
	if _, err := ovs.PlugPort(ctx, vm.Bridge, tap, vm.PortID, mac.String(), "active"); err != nil {
		return fmt.Errorf("vmport: %w", err)
	}
	return nil
}

// Unplug removes the tap from OVS and deletes the veth (the VM namespace stays: it is
// the VM's).
func Unplug(ctx context.Context, ovs *ovsdb.Client, portID, bridge, hostNetns string) error {
	if bridge == "" {
		bridge = "br-int"
	}
	tap := TapName(portID)
	if _, err := ovs.UnplugPort(ctx, bridge, tap); err != nil {
		return fmt.Errorf("vmport: %w", err)
	}
	host, err := hostHandle(hostNetns)
	if err != nil {
		return err
	}
	defer host.Close()
	if l, err := host.LinkByName(tap); err == nil {
		if err := host.LinkDel(l); err != nil {
			return fmt.Errorf("vmport: delete %s: %w", tap, err)
		}
	}
	return nil
}

// newNamed creates a named namespace on a locked thread, restoring the thread after.
func newNamed(name string) (netns.NsHandle, error) {
	type res struct {
		h   netns.NsHandle
		err error
	}
	c := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			c <- res{err: fmt.Errorf("vmport: current netns: %w", err)}
			return
		}
		defer orig.Close()
		h, err := netns.NewNamed(name)
		if rerr := netns.Set(orig); rerr != nil {
			c <- res{err: fmt.Errorf("vmport: restore netns: %w", rerr)}
			return // thread stays locked and is discarded
		}
		runtime.UnlockOSThread()
		if err != nil {
			err = fmt.Errorf("vmport: create netns %s: %w", name, err)
		}
		c <- res{h, err}
	}()
	r := <-c
	return r.h, r.err
}
