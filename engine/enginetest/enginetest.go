// Package enginetest holds what tests of the control loop share when they run it over the
// seed scenario: the seed's hosts with their bridges registered under the datapath IDs
// their host helpers use, the controller configuration dvrflowd runs with, and simulated
// switches (ofsim) standing in for every bridge with the ports a host helper creates.
//
// It is for tests only, in packages that wire a store, an API, an OpenFlow server and an
// engine together (engine, status, northbound, cmd/dvrctl). It does not import the engine,
// so the engine's own tests can use it.
package enginetest

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/host/agent"
	"github.com/dvrflow/dvrflow/northbound/seed"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
	"github.com/dvrflow/dvrflow/topology"
)

// SeedOptions returns the seed scenario with each host's bridges (topology.Bridges) registered
// under the datapath IDs its host helper would use (DPID).
func SeedOptions() seed.Options {
	opts := seed.DefaultOptions()
	for i := range opts.Hosts {
		h := &opts.Hosts[i]
		h.Bridges = map[string]string{}
		for _, b := range topology.Bridges() {
			h.Bridges[string(b)] = agent.DatapathID(h.Name, string(b))
		}
	}
	return opts
}

// DPID is the datapath ID the host helper of host gives bridge b (agent.DatapathID as a
// number).
func DPID(host string, b topology.Bridge) uint64 {
	s := agent.DatapathID(host, string(b))
	id, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		// agent.DatapathID always writes 16 hex digits: this is a broken invariant.
		panic(fmt.Sprintf("datapath ID %q of %s %s: %v", s, host, b, err))
	}
	return id
}

// ControllerConfig is the OpenFlow server configuration dvrflowd runs with: reconcilers
// own the flows carrying the apps' cookie owner bits.
func ControllerConfig() controller.Config {
	var cfg controller.Config
	cfg.Reconciler.CookieMask, cfg.Reconciler.CookieValue = apps.CookieOwnerMask, apps.CookieOwner
	return cfg
}

// FirstVMPort is the OpenFlow port number of the first VM tap on a host's br-int; the
// others follow in the order of opts.VMs.
const FirstVMPort = 10

// Ports returns the OpenFlow ports, name to number, the host helper creates on bridge b of
// host: the patch ports, vxlan0 and the uplink, and on br-int the tap of each of the host's
// VMs of opts (created as topo), numbered from FirstVMPort.
func Ports(opts seed.Options, topo *seed.Topology, host string, b topology.Bridge) map[string]uint32 {
	ports := map[string]uint32{}
	switch b {
	case topology.BrInt:
		ports[apps.PortPatchTun], ports[apps.PortIntBrEx] = 1, 2
		n := uint32(FirstVMPort)
		for _, vm := range opts.VMs {
			if vm.Host == host {
				ports[apps.VMPortName(topo.VMs[vm.Name].ID)] = n
				n++
			}
		}
	case topology.BrTun:
		ports[apps.PortPatchInt], ports[apps.PortVXLAN] = 1, 2
	case topology.BrEx:
		ports[apps.PortPhyBrEx], ports["eth-ext"] = 1, 2
	}
	return ports
}

// Switches returns a simulated switch, not yet running, for every bridge of every host of
// opts, keyed "host/bridge", with its host's DPID and Ports.
func Switches(log *zap.Logger, opts seed.Options, topo *seed.Topology) map[string]*ofsim.Switch {
	out := map[string]*ofsim.Switch{}
	for _, h := range opts.Hosts {
		for _, b := range topology.Bridges() {
			var ports []ofsim.Port
			for name, no := range Ports(opts, topo, h.Name, b) {
				ports = append(ports, ofsim.Port{No: no, Name: name})
			}
			slices.SortFunc(ports, func(x, y ofsim.Port) int { return int(x.No) - int(y.No) })
			out[h.Name+"/"+string(b)] = ofsim.New(log, ofsim.Config{DPID: DPID(h.Name, b), Ports: ports})
		}
	}
	return out
}

// SameFlows reports whether dump, an ofsim switch's DumpFlows, holds exactly the flows of
// want, whatever their order and the order of their match fields.
func SameFlows(dump string, want []ofproto.Flow) bool {
	return slices.Equal(ofsim.SplitDump(dump), ofsim.DumpLines(want))
}

// Eventually polls cond every 20ms until it holds, failing t after 20s with what was
// awaited and cond's last explanation of why not.
func Eventually(t testing.TB, what string, cond func() (ok bool, why string)) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var why string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, why = cond(); ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, why)
}
