// VMs that boot as instances do: a real DHCP client configures eth0.

package bed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// DHCPClient is the DHCP client a VM boots with: each is a real one from Debian.
type DHCPClient string

// The DHCP clients a VM can run.
const (
	// Dhclient is ISC dhclient with Debian's own dhclient-script and hooks (the
	// rfc3442-classless-routes hook included), as Debian and Ubuntu images boot.
	Dhclient DHCPClient = "dhclient"
	// Udhcpc is busybox udhcpc with a script like cirros's, as cirros images boot.
	Udhcpc DHCPClient = "udhcpc"
	// Dhclient6 is ISC dhclient -6 with Debian's own dhclient-script: stateful DHCPv6 (an
	// address for eth0, with DNS), or stateless with -S (DNS only).
	Dhclient6 DHCPClient = "dhclient6"
)

// Dhclient6Conf is the dhclient.conf of the bed's VMs for DHCPv6: Debian's requests.
const Dhclient6Conf = `request dhcp6.name-servers, dhcp6.domain-search;
`

// DhclientConf is the dhclient.conf of the bed's VMs: Debian's requests, with a 1 s first
// retransmission (its default is 10 s) so that a DISCOVER lost while OVS attaches the port
// costs a second.
const DhclientConf = `option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;
request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers, host-name,
	interface-mtu, rfc3442-classless-static-routes;
timeout 8;
retry 2;
initial-interval 1;
backoff-cutoff 2;
`

// udhcpcScript configures eth0 from udhcpc's variables, as cirros's default.script does:
// the address, the MTU, option 121's routes (or the router), and resolv.conf.
const udhcpcScript = `#!/bin/sh
resolv=%q
case "$1" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound|renew)
	if ! ip -4 addr show dev "$interface" | grep -q "inet $ip/"; then
		ip -4 addr flush dev "$interface"
	fi
	ip addr replace "$ip/$mask" dev "$interface"
	if [ -n "$mtu" ]; then ip link set dev "$interface" mtu "$mtu"; fi
	if [ -n "$staticroutes" ]; then
		set -- $staticroutes
		while [ $# -ge 2 ]; do
			if [ "$1" = 0.0.0.0/0 ]; then
				ip route replace default via "$2" dev "$interface"
			elif [ "$2" = 0.0.0.0 ]; then
				ip route replace "$1" dev "$interface"
			else
				ip route replace "$1" via "$2" dev "$interface"
			fi
			shift 2
		done
	elif [ -n "$router" ]; then
		for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
	fi
	: > "$resolv"
	if [ -n "$domain" ]; then echo "search $domain" >> "$resolv"; fi
	for d in $dns; do echo "nameserver $d" >> "$resolv"; done
	;;
esac
exit 0
`

// dhcpRun is a VM's running DHCP client.
type dhcpRun struct {
	p      *process
	mu     sync.Mutex
	stderr []string // its last lines
}

func (r *dhcpRun) line(l string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.stderr) == 40 {
		r.stderr = r.stderr[1:]
	}
	r.stderr = append(r.stderr, l)
}

func (r *dhcpRun) tail() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.stderr, "\n")
}

// VMDir is where a VM's DHCP client keeps its files: configuration, leases, resolv.conf.
func (b *Bed) VMDir(vmName string) string { return filepath.Join(b.dir, "vms", vmName) }

// ResolvConf is the resolv.conf the VM's DHCP client writes (never the machine's).
func (b *Bed) ResolvConf(vmName string) string { return filepath.Join(b.VMDir(vmName), "resolv.conf") }

// StartDHCP boots the VM's DHCP client in its namespace (a VM that AddVM plugged with no
// address), in the background until StopDHCP or Close, with more arguments for the client.
// The client configures eth0; dhclient runs in mount and UTS namespaces of its own where
// only the enter hook that writes resolv.conf is replaced (to write ResolvConf), so that
// the machine's /etc/resolv.conf and host name are never touched.
func (b *Bed) StartDHCP(vmName string, c DHCPClient, extra ...string) error {
	argv, err := b.dhcpArgv(vmName, c, extra)
	if err != nil {
		return err
	}
	r := &dhcpRun{}
	p, err := b.start(b.name(vmName), argv, r.line)
	if err != nil {
		return err
	}
	r.p = p
	b.mu.Lock()
	if old := b.dhcp[vmName]; old != nil {
		b.mu.Unlock()
		_ = p.stop()
		return fmt.Errorf("bed: VM %s already runs a DHCP client", vmName)
	}
	b.dhcp[vmName] = r
	b.mu.Unlock()
	return nil
}

// RunDHCP runs the VM's DHCP client in the foreground until it exits (dhclient -r
// releases and exits, -1 exits when it gets no lease), as StartDHCP would run it, and
// returns its output.
func (b *Bed) RunDHCP(ctx context.Context, vmName string, c DHCPClient, extra ...string) (string, error) {
	argv, err := b.dhcpArgv(vmName, c, extra)
	if err != nil {
		return "", err
	}
	return run(ctx, b.name(vmName), argv[0], argv[1:]...)
}

// dhcpArgv writes the client's files and returns its command line.
func (b *Bed) dhcpArgv(vmName string, c DHCPClient, extra []string) ([]string, error) {
	dir := b.VMDir(vmName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("bed: %w", err)
	}
	resolv := b.ResolvConf(vmName)
	switch c {
	case Dhclient, Dhclient6:
		if _, err := exec.LookPath("dhclient"); err != nil {
			return nil, fmt.Errorf("bed: dhclient is not installed (isc-dhcp-client): %w", err)
		}
		hooks := filepath.Join(dir, "enter-hooks")
		if err := os.MkdirAll(hooks, 0o755); err != nil {
			return nil, fmt.Errorf("bed: %w", err)
		}
		hook := fmt.Sprintf(`make_resolv_conf() {
	: > %[1]s
	if [ -n "$new_domain_name" ]; then echo "search $new_domain_name" >> %[1]s; fi
	for ns in $new_domain_name_servers; do echo "nameserver $ns" >> %[1]s; done
	if [ -n "$new_dhcp6_domain_search" ]; then echo "search $new_dhcp6_domain_search" >> %[1]s; fi
	for ns in $new_dhcp6_name_servers; do echo "nameserver $ns" >> %[1]s; done
}
`, resolv)
		conf, family, text, leases := filepath.Join(dir, "dhclient.conf"), "-4", DhclientConf, "leases"
		if c == Dhclient6 {
			conf, family, text, leases = filepath.Join(dir, "dhclient6.conf"), "-6", Dhclient6Conf, "leases6"
		}
		for file, text := range map[string]string{filepath.Join(hooks, "resolv"): hook, conf: text} {
			if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
				return nil, fmt.Errorf("bed: %w", err)
			}
		}
		args := append([]string{family, "-d", "-v", "-cf", conf, "-lf", filepath.Join(dir, leases),
			"-pf", filepath.Join(dir, "dhclient.pid")}, extra...)
		script := fmt.Sprintf("hostname localhost && mount --bind %s /etc/dhcp/dhclient-enter-hooks.d && exec dhclient %s eth0",
			hooks, strings.Join(args, " "))
		return []string{"unshare", "-u", "-m", "sh", "-c", script}, nil
	case Udhcpc:
		if _, err := exec.LookPath("busybox"); err != nil {
			return nil, fmt.Errorf("bed: busybox is not installed: %w", err)
		}
		script := filepath.Join(dir, "udhcpc.sh")
		if err := os.WriteFile(script, []byte(fmt.Sprintf(udhcpcScript, resolv)), 0o755); err != nil {
			return nil, fmt.Errorf("bed: %w", err)
		}
		return append([]string{"busybox", "udhcpc", "-f", "-i", "eth0", "-t", "30", "-T", "1", "-O", "mtu",
			"-O", "staticroutes", "-s", script}, extra...), nil
	}
	return nil, fmt.Errorf("bed: DHCP client %q: want %s, %s or %s", c, Dhclient, Udhcpc, Dhclient6)
}

// StopDHCP ends the VM's DHCP client without a release (as a VM that is switched off) and
// returns what it printed last.
func (b *Bed) StopDHCP(vmName string) (string, error) {
	b.mu.Lock()
	r := b.dhcp[vmName]
	delete(b.dhcp, vmName)
	b.mu.Unlock()
	if r == nil {
		return "", fmt.Errorf("bed: VM %s runs no DHCP client", vmName)
	}
	err := r.p.stop()
	return r.tail(), err
}

// DHCPOutput is what the VM's DHCP client printed last.
func (b *Bed) DHCPOutput(vmName string) string {
	b.mu.Lock()
	r := b.dhcp[vmName]
	b.mu.Unlock()
	if r == nil {
		return ""
	}
	return r.tail()
}

var inetRE = regexp.MustCompile(`inet (\d+\.\d+\.\d+\.\d+/\d+)`)

// Addrs returns the IPv4 addresses (CIDR) of the VM's eth0.
func (b *Bed) Addrs(ctx context.Context, vmName string) ([]string, error) {
	out, err := run(ctx, b.name(vmName), "ip", "-4", "addr", "show", "dev", "eth0")
	if err != nil {
		return nil, fmt.Errorf("bed: %w", err)
	}
	var got []string
	for _, m := range inetRE.FindAllStringSubmatch(out, -1) {
		got = append(got, m[1])
	}
	return got, nil
}

// WaitAddr waits until the VM's eth0 holds exactly want (a CIDR), for at most within.
func (b *Bed) WaitAddr(ctx context.Context, vmName, want string, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		got, err := b.Addrs(ctx, vmName)
		if err == nil && len(got) == 1 && got[0] == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bed: VM %s eth0 holds %v after %s, want %s (%v); its DHCP client said:\n%s",
				vmName, got, within, want, errors.Join(err, ctx.Err()), b.DHCPOutput(vmName))
		case <-time.After(100 * time.Millisecond):
		}
	}
}
