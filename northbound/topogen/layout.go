// Package topogen builds a scale topology (hosts, tenant networks, distributed routers,
// VMs, floating IPs) through dvrflow's real Neutron API: hosts register through the
// dvr-hosts extension, networks, subnets and VM ports are created with Neutron's bulk
// POST (one store write per batch), and routers, interfaces and floating IPs one request
// at a time from concurrent workers.
//
// What is built is a pure function of Options (layout.go); Load only sends it. The
// default is the scale target: 5000 hosts (10 of them dvr_snat), 20 VMs on each (100k
// VMs), 5000 tenant networks of 20 VMs, 2500 routers of two networks each with a gateway
// on one external network, and floating IPs on 10% of the VMs.
package topogen

import (
	"errors"
	"fmt"
	"math/rand/v2"
)

// Options say what to build.
type Options struct {
	// Hosts is the number of hosts; the first SNATHosts are dvr_snat network nodes
	// ("network001"...), the others dvr compute nodes ("compute00001"...). Every host
	// runs VMsPerHost VMs.
	Hosts, VMsPerHost int
	// Networks is the number of tenant networks (one /24 each, in 10.0.0.0/8); the VMs
	// are shared out evenly among them.
	Networks int
	// Routers is the number of distributed routers; router r joins networks 2r and
	// 2r+1 and has its gateway on the external network.
	Routers int
	// FIPPercent is the share of all VMs (0-100) that get a floating IP; they are drawn
	// from the VMs of routed networks.
	FIPPercent float64
	// SNATHosts is the number of dvr_snat hosts (the controller spreads the routers'
	// SNAT over them).
	SNATHosts int
	// Seed makes VM placement and the choice of VMs with floating IPs reproducible.
	Seed int64
	// Workers is the number of concurrent requests (0: 16).
	Workers int
	// BatchSize is the number of objects per bulk create (0: 1000).
	BatchSize int
	// NoPortSecurity creates the tenant networks with port security off, so that VM ports
	// have no security groups and no firewall flows. Otherwise every VM port is in its
	// project's default group, as the API makes it.
	NoPortSecurity bool
	// SharedMembers VMs, spread evenly over all of them, are also in one group "shared"
	// (of the first project, used by all as an RBAC-shared group would be) whose rule
	// lets tcp/5432 in from the group's own members: a remote group of SharedMembers.
	SharedMembers int
}

// DefaultOptions returns the scale target.
func DefaultOptions() Options {
	return Options{Hosts: 5000, VMsPerHost: 20, Networks: 5000, Routers: 2500, FIPPercent: 10, SNATHosts: 10, Seed: 1}
}

// SharedMember reports whether VM i (of vms) is in the shared group.
func (o Options) SharedMember(i, vms int) bool {
	return o.SharedMembers > 0 && i%(vms/o.SharedMembers) == 0 && i/(vms/o.SharedMembers) < o.SharedMembers
}

// podHosts is how many hosts share the VMs of a group of networks: a network's VMs land
// on hosts of one pod (or two, where its VMs straddle pods), so each network spans a
// realistic handful of hosts rather than all of them.
const podHosts = 16

// Limits of the address plan.
const (
	maxHosts       = 1 << 20 // tunnel IPs in 100.64.0.0/10
	maxNetworks    = 1 << 16 // /24s in 10.0.0.0/8
	maxVMsPerNet   = 252     // a /24's pool (.2-.254) less the router's SNAT port
	maxRouters     = 8192    // link-local /31s for rfp/fpr pairs
	maxExternalIPs = 1<<20 - 3
)

func (o Options) withDefaults() Options {
	if o.Workers == 0 {
		o.Workers = 16
	}
	if o.BatchSize == 0 {
		o.BatchSize = 1000
	}
	return o
}

// Validate checks that the options describe a topology that fits the address plan.
func (o Options) Validate() error {
	o = o.withDefaults()
	switch {
	case o.Hosts < 1 || o.Hosts > maxHosts:
		return fmt.Errorf("hosts %d: want 1-%d", o.Hosts, maxHosts)
	case o.VMsPerHost < 0:
		return fmt.Errorf("VMs per host %d: must not be negative", o.VMsPerHost)
	case o.Networks < 1 || o.Networks > maxNetworks:
		return fmt.Errorf("networks %d: want 1-%d", o.Networks, maxNetworks)
	case o.Routers < 0 || o.Routers > maxRouters || 2*o.Routers > o.Networks:
		return fmt.Errorf("routers %d: want 0-%d and two networks each (%d networks)", o.Routers, maxRouters, o.Networks)
	case o.FIPPercent < 0 || o.FIPPercent > 100:
		return fmt.Errorf("floating IP percent %g: want 0-100", o.FIPPercent)
	case o.SNATHosts < 0 || o.SNATHosts > o.Hosts:
		return fmt.Errorf("SNAT hosts %d: want 0-%d", o.SNATHosts, o.Hosts)
	case o.Routers > 0 && o.SNATHosts == 0:
		return errors.New("routers need at least one SNAT host")
	case o.Workers < 1:
		return fmt.Errorf("workers %d: must be positive", o.Workers)
	case o.BatchSize < 1 || o.BatchSize > 10000:
		return fmt.Errorf("batch size %d: want 1-10000", o.BatchSize)
	case o.SharedMembers < 0 || o.SharedMembers > o.Hosts*o.VMsPerHost:
		return fmt.Errorf("shared group members %d: want 0-%d (the VMs)", o.SharedMembers, o.Hosts*o.VMsPerHost)
	case o.SharedMembers > 0 && o.NoPortSecurity:
		return errors.New("a shared group needs port security")
	}
	vms := o.Hosts * o.VMsPerHost
	if per := (vms + o.Networks - 1) / o.Networks; per > maxVMsPerNet {
		return fmt.Errorf("%d VMs on %d networks: %d per network does not fit a /24 (at most %d)", vms, o.Networks, per, maxVMsPerNet)
	}
	fips := o.fipCount()
	routed := 0
	if o.Networks > 0 {
		routed = vmsOfNetworks(vms, o.Networks, 2*o.Routers)
	}
	if fips > routed {
		return fmt.Errorf("%d floating IPs but only %d VMs on routed networks", fips, routed)
	}
	if o.Routers+o.Hosts+fips > maxExternalIPs {
		return fmt.Errorf("%d gateways, %d agent gateways and %d floating IPs do not fit the external /12", o.Routers, o.Hosts, fips)
	}
	return nil
}

func (o Options) fipCount() int {
	return int(float64(o.Hosts*o.VMsPerHost)*o.FIPPercent/100 + 0.5)
}

// vmsOfNetworks is how many of vms VMs the first k of n networks hold.
func vmsOfNetworks(vms, n, k int) int {
	per, extra := vms/n, vms%n
	return k*per + min(k, extra)
}

// layout is the topology to build, without the IDs the API gives.
type layout struct {
	hosts     []hostPlan
	nets      []netPlan
	vms       []vmPlan // by network, then in order
	routers   []routerPlan
	external  string // CIDR of the external subnet
	fipVMs    []int  // indexes into vms, in creation order
	vmsPerNet []int  // first VM of each network; vms of net k: [vmsPerNet[k], vmsPerNet[k+1])
}

type hostPlan struct {
	name, mode, tunnelIP string
	dpids                map[string]uint64
}

type netPlan struct {
	name, project, cidr string
}

type vmPlan struct {
	name, deviceID string
	net, host      int
}

type routerPlan struct {
	name, project string
	nets          [2]int
}

// Bridges every host registers, with the low bits of their DPIDs.
var bridges = []struct {
	name string
	low  uint64
}{{"br-int", 1}, {"br-tun", 2}, {"br-ex", 3}}

func hostName(o Options, i int) (name, mode string) {
	if i < o.SNATHosts {
		return fmt.Sprintf("network%03d", i+1), "dvr_snat"
	}
	return fmt.Sprintf("compute%05d", i-o.SNATHosts+1), "dvr"
}

func ipv4(v uint32) string {
	return fmt.Sprintf("%d.%d.%d.%d", v>>24, v>>16&0xff, v>>8&0xff, v&0xff)
}

// plan computes the layout of o (which must be valid).
func plan(o Options) *layout {
	l := &layout{}
	for i := 0; i < o.Hosts; i++ {
		name, mode := hostName(o, i)
		h := hostPlan{name: name, mode: mode, tunnelIP: ipv4(100<<24 | 64<<16 + uint32(i) + 1), dpids: map[string]uint64{}}
		for _, b := range bridges {
			h.dpids[b.name] = uint64(i+1)<<8 | b.low
		}
		l.hosts = append(l.hosts, h)
	}
	for k := 0; k < o.Networks; k++ {
		l.nets = append(l.nets, netPlan{name: fmt.Sprintf("net%05d", k), project: fmt.Sprintf("tenant%05d", k/2),
			cidr: fmt.Sprintf("10.%d.%d.0/24", k>>8, k&0xff)})
	}
	for r := 0; r < o.Routers; r++ {
		l.routers = append(l.routers, routerPlan{name: fmt.Sprintf("router%05d", r), project: fmt.Sprintf("tenant%05d", r), nets: [2]int{2 * r, 2*r + 1}})
	}
	// Slots: every host VMsPerHost times, shuffled within pods of podHosts hosts, then
	// cut into consecutive runs, one per network.
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x746f706f67656e)) // "topogen"
	slots := make([]int, 0, o.Hosts*o.VMsPerHost)
	for p := 0; p < o.Hosts; p += podHosts {
		pod := make([]int, 0, podHosts*o.VMsPerHost)
		for h := p; h < min(p+podHosts, o.Hosts); h++ {
			for v := 0; v < o.VMsPerHost; v++ {
				pod = append(pod, h)
			}
		}
		rng.Shuffle(len(pod), func(i, j int) { pod[i], pod[j] = pod[j], pod[i] })
		slots = append(slots, pod...)
	}
	for k := 0; k <= o.Networks; k++ {
		l.vmsPerNet = append(l.vmsPerNet, vmsOfNetworks(len(slots), o.Networks, k))
	}
	for k := 0; k < o.Networks; k++ {
		for i := l.vmsPerNet[k]; i < l.vmsPerNet[k+1]; i++ {
			l.vms = append(l.vms, vmPlan{name: fmt.Sprintf("vm%06d", i), net: k, host: slots[i],
				deviceID: fmt.Sprintf("%08x-0000-4000-8000-%012x", uint32(o.Seed), i)})
		}
	}
	routed := l.vmsPerNet[2*o.Routers]
	fips := o.fipCount()
	perm := rng.Perm(routed)[:fips]
	l.fipVMs = perm
	// The external subnet: the smallest prefix of 172.16.0.0/12 that holds a gateway per
	// router, an agent gateway port per host and every floating IP.
	need := o.Routers + o.Hosts + fips
	bits := 24
	for bits > 12 && 1<<(32-bits)-3 < need {
		bits--
	}
	l.external = fmt.Sprintf("172.16.0.0/%d", bits)
	return l
}
