package hostnet

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/dvrflow/dvrflow/plan"
)

// deviceSysctl reports whether key is one of a link of the namespace
// (net.<proto>.conf.<link>.<name> or net.<proto>.neigh.<link>.<name>), which exists only
// once the link does.
func deviceSysctl(ns *plan.Namespace, key string) bool {
	f := strings.Split(key, ".")
	return len(f) >= 5 && (f[2] == "conf" || f[2] == "neigh") && ns.Link(f[3]) != nil
}

// namespaceSysctls writes the namespace's sysctls that are not a link's. Apply writes
// them before it makes the namespace's links, so the links are made with the defaults
// the plan gives: with net.ipv6.conf.default.accept_dad=0, the kernel's IPv6 link-local
// address of a new link skips duplicate address detection (a router's MAC, and so that
// address, is the same on every host).
func (r *applyRun) namespaceSysctls(ns *plan.Namespace) error {
	return r.sysctls(ns, func(k string) bool { return !deviceSysctl(ns, k) })
}

// linkSysctls writes the sysctls of the namespace's links, once they are there.
func (r *applyRun) linkSysctls(ns *plan.Namespace) error {
	return r.sysctls(ns, func(k string) bool { return deviceSysctl(ns, k) })
}

// sysctls writes the namespace's sysctls that selects picks and that differ.
// /proc/sys/net resolves to the network namespace of the thread that opens the file, so
// reads and writes happen on a locked thread switched into the namespace (see
// onLockedThread). Sysctls a plan no longer lists are left as they are: the namespace is
// the unit of clean-up.
func (r *applyRun) sysctls(ns *plan.Namespace, selects func(key string) bool) error {
	name := r.full(ns.Name)
	keys := make([]string, 0, len(ns.Sysctls))
	for k := range ns.Sysctls {
		if selects(k) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys)
	var changed []string
	err := inNamespace(r.nsh[name], func() error {
		for _, k := range keys {
			path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			cur, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("hostnet: %s: sysctl %s: %w", name, k, err)
			}
			v := ns.Sysctls[k]
			if string(bytes.TrimSpace(cur)) == v {
				continue
			}
			if err := os.WriteFile(path, []byte(v+"\n"), 0o644); err != nil {
				return fmt.Errorf("hostnet: %s: sysctl %s=%s: %w", name, k, v, err)
			}
			changed = append(changed, k+"="+v)
		}
		return nil
	})
	for _, c := range changed {
		r.changed("%s: sysctl %s", name, c)
	}
	return err
}
