// The DHCP benchmark: complete exchanges against dvrflowd and against dnsmasq, side by side.

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
)

// dhcpConfig is what `ofbench dhcp` runs.
type dhcpConfig struct {
	simConfig
	Dnsmasq string // the dnsmasq binary
}

// runDHCP runs the DHCP benchmark: dvrflowd, then dnsmasq, serving the same clients.
func runDHCP(ctx context.Context, log *zap.Logger, cfg dhcpConfig) error {
	if os.Geteuid() != 0 {
		return errors.New("dhcp: needs root (network namespaces for dnsmasq)")
	}
	bin, err := exec.LookPath(cfg.Dnsmasq)
	if err != nil {
		return fmt.Errorf("dhcp: %w (Debian: apt-get install dnsmasq-base, or deploy/scripts/install-deps.sh bench)", err)
	}
	dir, err := os.MkdirTemp("", "ofbench-dhcp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // the postgres and dnsmasq users read inside
		return err
	}
	t := newSimTopology(cfg.simConfig, "dhcpbench")
	t.DHCP = true
	fmt.Printf("dhcp: %d simulated hosts, %d networks of %d hosts, %d VM ports per host, each a DHCP client (%d clients);\n",
		cfg.Switches, t.Nets, cfg.HostsPerNet, cfg.VMsPerHost, len(t.VMs))
	fmt.Printf("      each host keeps %d DISCOVER->OFFER->REQUEST->ACK exchanges in flight, its clients taking turns:\n", cfg.Window)
	fmt.Printf("      to dvrflow from its simulated OF1.3 br-int as PACKET_INs (table %d, cookie %#x, in_port the VM's),\n",
		apps.IntDHCPv4, apps.Cookie(apps.AppDHCP))
	fmt.Println("      to dnsmasq the same frames through a veth into its network's namespace (one dnsmasq per network, as")
	fmt.Println("      Neutron's DHCP agent runs it); the clients set the broadcast flag; every answer checked: type, xid,")
	fmt.Printf("      chaddr, yiaddr = the port's fixed IP, server id = the network's DHCP port, lease %v, broadcast;\n", dhcpLease)
	fmt.Printf("      %v measured after a warm-up; lost = unanswered for %v\n", cfg.Duration, lostAfter)
	var rows []loadRow
	for _, side := range []struct {
		name string
		run  func() (loadRow, error)
	}{
		{ctlDvrflow, func() (loadRow, error) { return dhcpDvrflow(ctx, log, cfg, t, dir) }},
		{"dnsmasq", func() (loadRow, error) { return dhcpDnsmasq(ctx, log, cfg, t, dir, bin) }},
	} {
		row, err := side.run()
		if err != nil {
			return fmt.Errorf("%s: %w", side.name, err)
		}
		row.name = side.name
		rows = append(rows, row)
		fmt.Printf("  %s done: %.0f exchanges/s\n", side.name, row.perSec)
	}
	printRows("server", "exchanges/s", rows, cfg.Duration)
	printRatio("dvrflow/dnsmasq", &rows[0], &rows[1], cfg.Duration, "exchanges/s", "exchanges per server CPU-second (goal >= 5x)")
	fmt.Printf("(2 cores shared by the generator, the server and anything else running: CPU is the server's\n" +
		" user+system CPU time while measured, all its processes, per CPU-s its exchanges per CPU-second)\n")
	var errs []error
	for _, r := range rows {
		if r.wrong > 0 {
			errs = append(errs, fmt.Errorf("%s: %d wrong answers, the first: %s", r.name, r.wrong, r.firstWrong))
		}
	}
	return errors.Join(errs...)
}

// dhcpDvrflow runs dvrflowd on a private PostgreSQL with Neutron's DHCP defaults, creates
// the topology through its API and loads it once every switch sends its VMs' DHCP to
// DHCP_IPV4.
func dhcpDvrflow(ctx context.Context, log *zap.Logger, cfg dhcpConfig, t *simTopology, dir string) (loadRow, error) {
	d, err := startDvrflowd(ctx, log, cfg.simConfig, dir, "--dhcp-lease-duration", dhcpLease.String(), "--dns-domain", dhcpDomain)
	if err != nil {
		return loadRow{}, err
	}
	defer d.stop()
	if err := d.load(ctx, t); err != nil {
		return loadRow{}, err
	}
	g := &loadGen{log: log}
	hosts := newDHCPHosts(g, t, true)
	sws := make([]*ofsim.Switch, len(hosts))
	for h, dh := range hosts {
		dh.sw = newSimSwitch(log, t, h)
		dh.wire = ofDHCPWire{sw: dh.sw}
		sws[h] = dh.sw
		g.loads = append(g.loads, dh)
	}
	ready := d.ready(len(sws), "DHCP flows", func(ctx context.Context) error {
		return waitFlows(ctx, sws, "DHCP flows", dhcpFlowsReady(hosts))
	})
	return d.measure(ctx, g, "dhcp", ready, "dvrflowd (private PostgreSQL): PACKET_OUTs with the OFFER and the ACK")
}

// dhcpFlowsReady tells whether switch h sends the DHCP of each of its clients' ports from
// LOCAL_SWITCHING to DHCP_IPV4: then dvrflow knows the port and its network's DHCP server.
func dhcpFlowsReady(hosts []*dhcpHost) func(h int, flows []ofproto.Flow) bool {
	return func(h int, flows []ofproto.Flow) bool {
		var in []uint32
		for i := range flows {
			f := &flows[i]
			if f.Table != apps.IntLocalSwitching || !f.HasGoto || f.Goto != apps.IntDHCPv4 {
				continue
			}
			if p, ok := f.Match.Get(ofproto.ClassBasic, ofproto.OXMInPort); ok && len(p.Value) == 4 {
				in = append(in, binary.BigEndian.Uint32(p.Value))
			}
		}
		for _, c := range hosts[h].clients {
			if !slices.Contains(in, c.inPort) {
				return false
			}
		}
		return true
	}
}

// dhcpDnsmasq runs a dnsmasq per network as Neutron's DHCP agent does and loads them with
// the same clients: the MACs and fixed IPs the API gave the ports, the DHCP ports' MACs
// and addresses.
func dhcpDnsmasq(ctx context.Context, log *zap.Logger, cfg dhcpConfig, t *simTopology, dir, bin string) (loadRow, error) {
	start := time.Now()
	b, err := newDnsmasqBed(ctx, log, t, dir, bin)
	if err != nil {
		return loadRow{}, err
	}
	defer b.close()
	version := dnsmasqVersion(bin)
	fmt.Printf("  dnsmasq: %d namespaces with dnsmasq %s up in %v\n", len(b.procs), version, time.Since(start).Round(time.Millisecond))
	g := &loadGen{log: log}
	hosts := newDHCPHosts(g, t, false)
	for h, dh := range hosts {
		dh.wire = packetWire{f: b.socks[t.netOf(h)]}
		g.loads = append(g.loads, dh)
	}
	row, err := g.run(ctx, b.carrier(t, hosts), b.pids(), cfg.Window, cfg.Duration, nil)
	switch {
	case err != nil && ctx.Err() != nil:
		return row, err
	case err != nil:
		return row, fmt.Errorf("%w\ndnsmasq log (the first):\n%s", err, b.procs[0].tail())
	}
	row.procs = len(b.procs)
	row.note = fmt.Sprintf("dnsmasq %s, one per network in its namespace with Neutron's arguments and files; logs each message", version)
	return row, nil
}
