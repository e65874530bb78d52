package bed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
)

// netnsDir is where iproute2 bind-mounts named namespaces.
const netnsDir = "/run/netns"

// sweepTimeout bounds one Sweep (killing, deleting namespaces and links).
const sweepTimeout = 30 * time.Second

// killGrace is how long a process gets between SIGTERM and SIGKILL.
const killGrace = 5 * time.Second

// leftovers names what exists of a bed with prefix: its directory, namespaces and
// root-namespace links.
func leftovers(prefix string) ([]string, error) {
	var out []string
	if _, err := os.Stat(Dir(prefix)); err == nil {
		out = append(out, Dir(prefix))
	}
	ns, err := namespaces(prefix)
	if err != nil {
		return nil, err
	}
	out = append(out, ns...)
	links, err := rootLinks(prefix)
	if err != nil {
		return nil, err
	}
	for _, l := range links {
		out = append(out, "link "+l.Attrs().Name)
	}
	return out, nil
}

// Leftovers reports everything of a bed with prefix that still exists: its directory,
// namespaces and root-namespace links ("link NAME"), and OVS daemons running from its
// directory ("pid N"). A bed that closed cleanly leaves nothing.
func Leftovers(prefix string) ([]string, error) {
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("bed: prefix %q: want 1-8 of [a-z0-9] starting with a letter", prefix)
	}
	out, err := leftovers(prefix)
	if err != nil {
		return nil, err
	}
	for _, pid := range processesUsing(Dir(prefix)) {
		out = append(out, "pid "+strconv.Itoa(pid))
	}
	return out, nil
}

// namespaces lists the named namespaces "<prefix>-*".
func namespaces(prefix string) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bed: list namespaces: %w", err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix+"-") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// rootLinks lists the root namespace's links "<prefix>-*".
func rootLinks(prefix string) ([]netlink.Link, error) {
	var all []netlink.Link
	var err error
	// A dump that links changed under (a bed starting or stopping) is interrupted: retry.
	for range 10 {
		if all, err = netlink.LinkList(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bed: list links: %w", err)
	}
	var out []netlink.Link
	for _, l := range all {
		if strings.HasPrefix(l.Attrs().Name, prefix+"-") {
			out = append(out, l)
		}
	}
	return out, nil
}

// addressOwner returns the root-namespace link holding addr, or "".
func addressOwner(addr netip.Addr) (string, error) {
	var addrs []netlink.Addr
	var err error
	for range 10 { // retried as rootLinks
		if addrs, err = netlink.AddrList(nil, netlink.FAMILY_V4); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("bed: list addresses: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP.To4()); ok && ip == addr {
			if l, err := netlink.LinkByIndex(a.LinkIndex); err == nil {
				return l.Attrs().Name, nil
			}
			return fmt.Sprintf("link %d", a.LinkIndex), nil
		}
	}
	return "", nil
}

// processesUsing returns the live processes whose command line names a file under dir
// (the OVS daemons a bed started there).
func processesUsing(dir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if usesDir(pid, dir) {
			out = append(out, pid)
		}
	}
	return out
}

func usesDir(pid int, dir string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(cmdline, []byte(dir+"/"))
}

// Sweep removes what a bed with prefix left behind (an interrupted run): it stops the
// OVS daemons started from the bed's directory (by the pids in their pid files, checked
// against their command lines), kills the processes left inside the bed's namespaces
// (pings and captures the bed started), deletes the namespaces "<prefix>-*" and the
// root-namespace links "<prefix>-*", and removes the bed's directory. Nothing else is
// touched. Sweeping a prefix with nothing left is not an error.
func Sweep(ctx context.Context, log *zap.Logger, prefix string) error {
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("bed: sweep: prefix %q: want 1-8 of [a-z0-9] starting with a letter", prefix)
	}
	log = log.Named("bed").With(zap.String("prefix", prefix))
	dir := Dir(prefix)
	var errs []error
	pidFiles, _ := filepath.Glob(filepath.Join(dir, "*", "*.pid"))
	var pids []int
	for _, f := range pidFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && usesDir(pid, dir) {
			pids = append(pids, pid)
		}
	}
	if err := kill(ctx, pids, func(pid int) bool { return usesDir(pid, dir) }); err != nil {
		errs = append(errs, err)
	}
	nss, err := namespaces(prefix)
	if err != nil {
		errs = append(errs, err)
	}
	for _, ns := range nss {
		pids, err := nsPids(ctx, ns)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(pids) > 0 {
			log.Info("killing processes left in namespace", zap.String("netns", ns), zap.Ints("pids", pids))
			if err := kill(ctx, pids, func(pid int) bool { return inNetns(pid, ns) }); err != nil {
				errs = append(errs, err)
			}
		}
		if out, err := run(ctx, "", "ip", "netns", "del", ns); err != nil {
			errs = append(errs, fmt.Errorf("bed: delete netns %s: %w: %s", ns, err, out))
		}
	}
	links, err := rootLinks(prefix)
	if err != nil {
		errs = append(errs, err)
	}
	for _, l := range links {
		// Deleting one end of a veth deletes the other: ignore what is already gone.
		if err := netlink.LinkDel(l); err != nil && !errors.Is(err, syscall.ENODEV) {
			if _, lerr := netlink.LinkByName(l.Attrs().Name); lerr == nil {
				errs = append(errs, fmt.Errorf("bed: delete link %s: %w", l.Attrs().Name, err))
			}
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, fmt.Errorf("bed: remove %s: %w", dir, err))
	}
	return errors.Join(errs...)
}

// nsPids lists the processes inside a named namespace.
func nsPids(ctx context.Context, ns string) ([]int, error) {
	out, err := run(ctx, "", "ip", "netns", "pids", ns)
	if err != nil {
		return nil, fmt.Errorf("bed: pids of netns %s: %w: %s", ns, err, out)
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// inNetns reports whether pid is a live process in the named namespace.
func inNetns(pid int, ns string) bool {
	st, err := os.Stat(filepath.Join(netnsDir, ns))
	if err != nil {
		return false
	}
	pst, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	return os.SameFile(st, pst)
}

// kill sends SIGTERM to each pid for which ours holds, then SIGKILL to those still
// there after killGrace, and waits until ours no longer holds for any.
func kill(ctx context.Context, pids []int, ours func(int) bool) error {
	for _, pid := range pids {
		if ours(pid) {
			_ = syscall.Kill(pid, syscall.SIGTERM)
		}
	}
	term := time.Now().Add(killGrace)
	killed := false
	for {
		var left []int
		for _, pid := range pids {
			if ours(pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if !killed && time.Now().After(term) {
			for _, pid := range left {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			killed = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bed: processes %v still running: %w", left, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
