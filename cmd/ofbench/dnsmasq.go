// dnsmasq as Neutron's DHCP agent runs it, for the DHCP benchmark: per network a namespace
// (the agent's qdhcp-<network>) holding the DHCP port's device, and a dnsmasq with the
// agent's arguments and files; the clients reach each through a veth whose other end is in
// one more namespace, where an AF_PACKET socket sends and reads their frames.

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/dhcp4"
	"github.com/dvrflow/dvrflow/host/hostnet"
)

// nsPrefix starts the name of every namespace the DHCP benchmark creates; the process ID
// follows, so that a later run can tell a dead run's namespaces.
const nsPrefix = "ofbench-dhcp-"

// dnsmasqNet is one network's DHCP server.
type dnsmasqNet struct {
	ns   string // its namespace
	dev  string // the DHCP port's device in ns, named as the agent names it
	peer string // the clients' end of the veth, in the clients' namespace
	conf string // the agent's files for the network: host, addn_hosts, opts, leases, pid
}

// dnsmasqBed is every network's dnsmasq and the clients' sockets.
type dnsmasqBed struct {
	log      *zap.Logger
	clientNS string
	nets     []dnsmasqNet
	procs    []*proc
	socks    []*os.File // the clients' packet socket of each network
	made     []string   // namespaces created
}

// newDnsmasqBed starts a dnsmasq for each network of t (bin, files in dir) and opens the
// clients' sockets. On failure it removes what it made.
func newDnsmasqBed(ctx context.Context, log *zap.Logger, t *simTopology, dir, bin string) (*dnsmasqBed, error) {
	sweepNamespaces(log)
	prefix := nsPrefix + strconv.Itoa(os.Getpid()) + "-"
	b := &dnsmasqBed{log: log, clientNS: prefix + "c"}
	for n := range t.Nets {
		b.nets = append(b.nets, dnsmasqNet{ns: prefix + "q" + strconv.Itoa(n), dev: "tap" + t.DHCPPorts[n].ID[:11],
			peer: "dh" + strconv.Itoa(n), conf: filepath.Join(dir, "dhcp", strconv.Itoa(n))})
	}
	if err := b.build(ctx, t, dir, bin); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

func (b *dnsmasqBed) build(ctx context.Context, t *simTopology, dir, bin string) error {
	add := []string{"netns add " + b.clientNS}
	for _, nt := range b.nets {
		add = append(add, "netns add "+nt.ns)
	}
	// Namespaces first recorded, then created: close deletes whatever exists of them.
	b.made = append([]string{b.clientNS}, b.nsNames()...)
	if err := ipBatch(ctx, "", add); err != nil {
		return err
	}
	var links []string
	for _, nt := range b.nets {
		links = append(links, fmt.Sprintf("link add %s type veth peer name %s netns %s", nt.peer, nt.dev, nt.ns),
			"link set "+nt.peer+" up")
	}
	if err := ipBatch(ctx, b.clientNS, links); err != nil {
		return err
	}
	for n, nt := range b.nets {
		pfx := t.subnet(n)
		if err := ipBatch(ctx, nt.ns, []string{"link set lo up",
			fmt.Sprintf("link set %s address %s", nt.dev, t.DHCPPorts[n].MAC),
			fmt.Sprintf("addr add %s/%d dev %s", t.DHCPPorts[n].IP, pfx.Bits(), nt.dev),
			"link set " + nt.dev + " up"}); err != nil {
			return err
		}
		if err := writeAgentFiles(nt.conf, t, n); err != nil {
			return err
		}
		p, err := startProc(ctx, dir, "dnsmasq-"+strconv.Itoa(n), nil, "ip",
			append([]string{"netns", "exec", nt.ns, bin}, dnsmasqArgs(nt.conf, t, n)...)...)
		if err != nil {
			return err
		}
		b.procs = append(b.procs, p)
	}
	for _, p := range b.procs {
		if err := waitDHCPSocket(ctx, p); err != nil {
			return err
		}
	}
	return hostnet.InNamespace(b.clientNS, func() error {
		for _, nt := range b.nets {
			f, err := openPacketSocket(nt.peer)
			if err != nil {
				return err
			}
			b.socks = append(b.socks, f)
		}
		return nil
	})
}

func (b *dnsmasqBed) nsNames() []string {
	var out []string
	for _, nt := range b.nets {
		out = append(out, nt.ns)
	}
	return out
}

// close closes the sockets, stops every dnsmasq and deletes the namespaces, and with them
// the veths.
func (b *dnsmasqBed) close() {
	for _, f := range b.socks {
		_ = f.Close()
	}
	var wg sync.WaitGroup
	for _, p := range b.procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
	if len(b.made) == 0 {
		return
	}
	var del []string
	for _, ns := range b.made {
		del = append(del, "netns del "+ns)
	}
	// Not under the run's context: Ctrl-C must not stop the cleanup. -force goes on past a
	// namespace that was never made.
	cmd := exec.Command("ip", "-force", "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(del, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.log.Warn("deleting the DHCP benchmark's namespaces", zap.Error(err), zap.ByteString("output", out))
	}
}

func (b *dnsmasqBed) pids() []int {
	var out []int
	for _, p := range b.procs {
		out = append(out, p.cmd.Process.Pid)
	}
	return out
}

// carrier reads each network's socket and hands the answers to the host whose client
// they are addressed to (by chaddr; to the network's first host, which counts it wrong,
// when no client has it), which sends the REQUEST due at once.
func (b *dnsmasqBed) carrier(t *simTopology, hosts []*dhcpHost) carrier {
	byMAC := map[[6]byte]*dhcpHost{}
	for _, h := range hosts {
		for _, c := range h.clients {
			byMAC[[6]byte(c.mac)] = h
		}
	}
	return func(ctx context.Context, wg *sync.WaitGroup, report func(error)) {
		for n, f := range b.socks {
			first := hosts[t.VMs[t.ByNet[n][0]].Host]
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 2048)
				for {
					k, err := f.Read(buf)
					if err != nil {
						if ctx.Err() == nil {
							report(fmt.Errorf("reading the clients' socket of network %d: %w", n, err))
						}
						return
					}
					now := time.Now()
					fr, err := dhcp4.ParseReply(buf[:k])
					if err != nil {
						continue // not an answer to a client: nothing else is counted on this link
					}
					h := first
					if len(fr.Reply.CHAddr) == 6 {
						if o, ok := byMAC[[6]byte(fr.Reply.CHAddr)]; ok {
							h = o
						}
					}
					h.reply(fr, 0, now)
					h.fill()
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			for _, f := range b.socks {
				_ = f.SetReadDeadline(time.Now()) // ends the readers; close closes
			}
		}()
	}
}

// packetWire sends a host's client messages on its network's veth.
type packetWire struct{ f *os.File }

func (w packetWire) send(msgs []dhcpMsg) error {
	for _, m := range msgs {
		if _, err := w.f.Write(m.frame); err != nil {
			return err
		}
	}
	return nil
}

// dnsmasqArgs returns the arguments Neutron's DHCP agent (neutron/agent/linux/dhcp.py,
// Dnsmasq._build_cmdline_callback) gives the dnsmasq of network n, files in conf, with
// its defaults (dhcp_lease_duration 86400, dns_domain openstacklocal, no DNS servers, no
// dnsmasq config file, no log dir); then, for the benchmark, the process stays in the
// foreground (its CPU time is read by its PID) and logs to its standard error, as there
// is no syslog here.
func dnsmasqArgs(conf string, t *simTopology, n int) []string {
	pfx := t.subnet(n)
	mask := net.IP(net.CIDRMask(pfx.Bits(), 32)).String()
	return []string{
		"--no-hosts",
		"--no-resolv",
		"--pid-file=" + filepath.Join(conf, "pid"),
		"--dhcp-hostsfile=" + filepath.Join(conf, "host"),
		"--addn-hosts=" + filepath.Join(conf, "addn_hosts"),
		"--dhcp-optsfile=" + filepath.Join(conf, "opts"),
		"--dhcp-leasefile=" + filepath.Join(conf, "leases"),
		"--dhcp-match=set:ipxe,175",
		"--dhcp-userclass=set:ipxe6,iPXE",
		"--local-service",
		"--bind-dynamic",
		fmt.Sprintf("--dhcp-range=set:subnet-%s,%s,static,%s,%ds", t.Sub[n], pfx.Addr(), mask, int(dhcpLease/time.Second)),
		fmt.Sprintf("--dhcp-option-force=option:mtu,%d", t.MTU[n]),
		fmt.Sprintf("--dhcp-lease-max=%d", 1<<(32-pfx.Bits())),
		"--conf-file=/dev/null",
		"--domain=" + dhcpDomain,
		"--keep-in-foreground",
		"--log-facility=-",
	}
}

// writeAgentFiles writes the files Neutron's DHCP agent writes for network n into conf:
// host (MAC, FQDN, address of each port), addn_hosts, opts (the subnet's router) and the
// initial leases.
func writeAgentFiles(conf string, t *simTopology, n int) error {
	if err := os.MkdirAll(conf, 0o755); err != nil {
		return err
	}
	var host, addn, leases bytes.Buffer
	expires := time.Now().Add(dhcpLease).Unix()
	for _, vi := range t.ByNet[n] {
		vm := t.VMs[vi]
		name := apps.DHCPHostname(vm.IP)
		fmt.Fprintf(&host, "%s,%s.%s,%s\n", vm.MAC, name, dhcpDomain, vm.IP)
		fmt.Fprintf(&addn, "%s\t%s.%s %s\n", vm.IP, name, dhcpDomain, name)
		fmt.Fprintf(&leases, "%d %s %s * *\n", expires, vm.MAC, vm.IP)
	}
	opts := fmt.Sprintf("tag:subnet-%s,option:router,%s", t.Sub[n], t.Gateway[n])
	for name, b := range map[string][]byte{"host": host.Bytes(), "addn_hosts": addn.Bytes(), "opts": []byte(opts),
		"leases": leases.Bytes()} {
		if err := os.WriteFile(filepath.Join(conf, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// waitDHCPSocket waits until dnsmasq process p (started by `ip netns exec`) listens on
// the DHCP server port in its namespace.
func waitDHCPSocket(ctx context.Context, p *proc) error {
	pid := p.cmd.Process.Pid
	deadline := time.Now().Add(30 * time.Second)
	for {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(comm)) == "dnsmasq" {
			udp, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/udp", pid))
			if err == nil && listensOn(udp, dhcp4.ServerPort) {
				return nil
			}
		}
		if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
			return fmt.Errorf("dnsmasq exited:\n%s", p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dnsmasq not listening on port %d after 30s:\n%s", dhcp4.ServerPort, p.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// listensOn reports whether /proc/net/udp text udp has a socket bound to port.
func listensOn(udp []byte, port uint16) bool {
	suffix := fmt.Sprintf(":%04X", port)
	for _, line := range strings.Split(string(udp), "\n") {
		if f := strings.Fields(line); len(f) > 1 && strings.HasSuffix(f[1], suffix) {
			return true
		}
	}
	return false
}

// openPacketSocket opens an AF_PACKET socket on interface ifname of the calling thread's
// namespace that sends whole frames and receives the IPv4 ones that arrive.
func openPacketSocket(ifname string) (*os.File, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	proto := htons(unix.ETH_P_IP)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return nil, fmt.Errorf("packet socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("packet socket on %s: %w", ifname, err)
	}
	// Room for every answer in flight: one dropped here would be counted lost to the server.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("packet socket buffer: %w", err)
	}
	return os.NewFile(uintptr(fd), "packet:"+ifname), nil // non-blocking: the runtime's poller reads it
}

// htons returns v in network byte order as the host reads it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// sweepNamespaces deletes the namespaces of DHCP benchmarks whose process is gone (killed
// before it could clean up), ending the processes still in them.
func sweepNamespaces(log *zap.Logger) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(e.Name(), nsPrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if !strings.HasPrefix(e.Name(), nsPrefix) || !ok || err != nil || processAlive(pid) {
			continue
		}
		out, _ := exec.Command("ip", "netns", "pids", e.Name()).Output()
		for _, f := range strings.Fields(string(out)) {
			if p, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
		}
		if out, err := exec.Command("ip", "netns", "del", e.Name()).CombinedOutput(); err != nil {
			log.Warn("deleting a stale namespace", zap.String("netns", e.Name()), zap.Error(err), zap.ByteString("output", out))
			continue
		}
		fmt.Printf("  removed namespace %s, left by a DHCP benchmark that is gone\n", e.Name())
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// ipBatch runs `ip [-n ns] -batch -` with lines.
func ipBatch(ctx context.Context, ns string, lines []string) error {
	args := []string{"-batch", "-"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// dnsmasqVersion returns the version bin reports.
func dnsmasqVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if f := strings.Fields(string(out)); err == nil && len(f) > 2 {
		return f[2]
	}
	return "?"
}
