// Package hostnet makes a host's kernel match its namespace plan (plan):
// namespaces, veths (the OVS side plugged into a bridge through host/ovsdb),
// addresses, routes, policy rules and permanent neighbours (IPv4 and IPv6), sysctls and
// nftables NAT (IPv4).
//
// Apply is idempotent: it reads what is there, changes only what differs, and reports
// every change it made; applying the same plan twice reports zero changes the second
// time. What it owns, and so removes when the plan no longer has it:
//   - namespaces named <NamePrefix><qrouter-|fip-|snat-|qmeta-><id> (whole namespaces);
//   - in those namespaces: every link but lo, every IPv4 address and every permanent
//     IPv6 address but link-local ones on plan links (IPv6 ones are added without
//     duplicate address detection), every IPv4 and IPv6 route of protocol "static" (the
//     kernel's connected, link-local and multicast routes are the kernel's), every
//     rule except the kernel's local/main/default ones, every permanent neighbour,
//     and the nftables table "dvrflow";
//   - OVS ports named plan.OVSPeerName(<qr-|qg-|sg-|fg-...>) on the configured bridges.
//
// It never changes the calling process's network namespace: netlink and nftables use
// sockets opened in the target namespace (netlink.NewHandleAt, nftables.WithNetNSFd).
// The two things that need a thread inside the namespace, creating a named namespace
// and opening /proc/sys files (which resolve to the opener's namespace), run on a
// dedicated goroutine locked to its OS thread; when switching that thread back fails,
// the thread is left locked so the Go runtime discards it instead of reusing it.
package hostnet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/host/ovsdb"
	"github.com/dvrflow/dvrflow/plan"
)

// netnsDir is where named network namespaces are bind-mounted (iproute2's convention).
const netnsDir = "/run/netns"

// Config says where the plan is applied.
type Config struct {
	// NamePrefix is prepended to every namespace name of the plan ("" on a real host).
	// Test beds that run several simulated hosts on one kernel give each its own.
	NamePrefix string
	// HostNetns is the named namespace where OVS runs, and so where the bridge side of
	// plugged veths goes ("" for the caller's namespace).
	HostNetns string
	// Bridges are the OVS bridges whose stale plugged ports Apply removes (the bridges
	// plan links name are always included). Default: br-int.
	Bridges []string
}

// Applier applies plans on one host. It is not safe for concurrent Apply calls.
type Applier struct {
	cfg Config
	ovs *ovsdb.Client
	log *zap.Logger
}

// Result is what one Apply did.
type Result struct {
	Revision int64
	// Changes lists every change made, e.g. "qrouter-x: add route default table 16".
	Changes []string
}

// New returns an Applier plugging bridge links through ovs.
func New(log *zap.Logger, ovs *ovsdb.Client, cfg Config) *Applier {
	if len(cfg.Bridges) == 0 {
		cfg.Bridges = []string{"br-int"}
	}
	return &Applier{cfg: cfg, ovs: ovs,
		log: log.Named("hostnet").With(zap.String("prefix", cfg.NamePrefix), zap.String("host_netns", cfg.HostNetns))}
}

// applyRun is the state of one Apply.
type applyRun struct {
	a   *Applier
	ctx context.Context
	res *Result
	p   *plan.Plan
	// per namespace (full name) handles, closed at the end
	nsh     map[string]netns.NsHandle
	nl      map[string]*netlink.Handle
	hostNL  *netlink.Handle
	hostNsh netns.NsHandle
}

func (r *applyRun) changed(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.res.Changes = append(r.res.Changes, msg)
	r.a.log.Info("changed", zap.String("what", msg), zap.Int64("revision", r.p.Revision))
}

// Apply makes the kernel match p. A plan that fails Validate changes nothing. On an
// error midway the changes made so far stay (Apply again converges) and are reported.
func (a *Applier) Apply(ctx context.Context, p plan.Plan) (Result, error) {
	res := Result{Revision: p.Revision}
	if err := p.Validate(); err != nil {
		return res, fmt.Errorf("hostnet: %w", err)
	}
	for _, ns := range p.Namespaces {
		for _, l := range ns.Links {
			if l.Bridge != "" && a.ovs == nil {
				return res, fmt.Errorf("hostnet: namespace %s: link %s needs OVS but no OVSDB client was given", ns.Name, l.Name)
			}
		}
	}
	r := &applyRun{a: a, ctx: ctx, res: &res, p: &p, nsh: map[string]netns.NsHandle{}, nl: map[string]*netlink.Handle{}}
	defer r.close()
	err := r.run()
	return res, err
}

func (r *applyRun) close() {
	for _, h := range r.nl {
		h.Close()
	}
	for _, h := range r.nsh {
		if h.IsOpen() {
			_ = h.Close()
		}
	}
	if r.hostNL != nil {
		r.hostNL.Close()
	}
	if r.hostNsh.IsOpen() {
		_ = r.hostNsh.Close()
	}
}

func (r *applyRun) full(name string) string { return r.a.cfg.NamePrefix + name }

func (r *applyRun) run() error {
	var err error
	if r.a.cfg.HostNetns != "" {
		if r.hostNsh, err = netns.GetFromName(r.a.cfg.HostNetns); err != nil {
			return fmt.Errorf("hostnet: host netns %s: %w", r.a.cfg.HostNetns, err)
		}
		r.hostNL, err = netlink.NewHandleAt(r.hostNsh)
	} else {
		r.hostNL, err = netlink.NewHandle()
	}
	if err != nil {
		return fmt.Errorf("hostnet: netlink handle for the host namespace: %w", err)
	}

	// 1. Namespaces: delete stale ones first (frees their names and devices), then
	// create the missing ones, so pair links can be made in one go afterwards.
	want := map[string]bool{}
	for _, ns := range r.p.Namespaces {
		want[r.full(ns.Name)] = true
	}
	have, err := r.a.ownedNamespaces()
	if err != nil {
		return err
	}
	for _, n := range have {
		if !want[n] {
			if err := deleteNamespace(n); err != nil {
				return err
			}
			r.changed("delete namespace %s", n)
		}
	}
	for _, ns := range r.p.Namespaces {
		n := r.full(ns.Name)
		h, err := r.openNamespace(n, slices.Contains(have, n))
		if err != nil {
			return err
		}
		r.nsh[n] = h
		nl, err := netlink.NewHandleAt(h)
		if err != nil {
			return fmt.Errorf("hostnet: netlink handle in %s: %w", n, err)
		}
		r.nl[n] = nl
	}

	// 2. Per namespace: the sysctls that are not a link's (the defaults new links take),
	// links, then their checksum offload and sysctls (both need the devices), addresses,
	// neighbours, routes, rules, NAT.
	for i := range r.p.Namespaces {
		if err := r.namespaceSysctls(&r.p.Namespaces[i]); err != nil {
			return err
		}
	}
	for i := range r.p.Namespaces {
		if err := r.links(&r.p.Namespaces[i]); err != nil {
			return err
		}
	}
	for i := range r.p.Namespaces {
		ns := &r.p.Namespaces[i]
		steps := []func(*plan.Namespace) error{r.loUp, r.checksums, r.linkSysctls, r.addresses, r.neighbors, r.routes, r.rules, r.nat}
		for _, step := range steps {
			if err := step(ns); err != nil {
				return err
			}
		}
	}
	// 3. OVS ports of links no longer planned.
	return r.staleOVSPorts()
}

// openNamespace opens named namespace n, creating it when it is not there. A name left
// by a previous run whose mount is gone (an empty file under /run/netns, as when the
// helper ran in a mount namespace of its own and exited) is a stale entry: it is removed
// and the namespace created again.
func (r *applyRun) openNamespace(n string, exists bool) (netns.NsHandle, error) {
	if exists {
		live, err := isNamespaceMount(filepath.Join(netnsDir, n))
		if err != nil {
			return netns.None(), err
		}
		if live {
			h, err := netns.GetFromName(n)
			if err != nil {
				return netns.None(), fmt.Errorf("hostnet: open namespace %s: %w", n, err)
			}
			return h, nil
		}
		if err := removeStale(n); err != nil {
			return netns.None(), err
		}
		r.changed("remove stale namespace entry %s", n)
	}
	if err := createNamespace(n); err != nil {
		return netns.None(), err
	}
	r.changed("create namespace %s", n)
	h, err := netns.GetFromName(n)
	if err != nil {
		return netns.None(), fmt.Errorf("hostnet: open namespace %s: %w", n, err)
	}
	return h, nil
}

// ownedNamespaces lists existing namespaces whose names carry our prefixes.
func (a *Applier) ownedNamespaces() ([]string, error) {
	entries, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hostnet: list namespaces: %w", err)
	}
	var out []string
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), a.cfg.NamePrefix)
		if !ok {
			continue
		}
		for _, pre := range plan.Prefixes {
			if strings.HasPrefix(rest, pre) && len(rest) > len(pre) {
				out = append(out, e.Name())
				break
			}
		}
	}
	return out, nil
}

func deleteNamespace(name string) error {
	if err := netns.DeleteNamed(name); err != nil {
		return fmt.Errorf("hostnet: delete namespace %s: %w", name, err)
	}
	return nil
}

// createNamespace creates a named namespace on a locked thread and switches that
// thread back before releasing it. Like `ip netns add`, it first makes /run/netns a
// shared mount point, so the namespace's bind mount propagates to every mount namespace
// that shares the host's (services started later, `ip netns exec` of other tools).
func createNamespace(name string) error {
	if strings.ContainsRune(name, '/') {
		return fmt.Errorf("hostnet: namespace name %q", name)
	}
	if err := shareNetnsDir(); err != nil {
		return err
	}
	return onLockedThread(func() error {
		h, err := netns.NewNamed(name)
		if err != nil {
			return fmt.Errorf("hostnet: create namespace %s: %w", name, err)
		}
		return h.Close()
	})
}
