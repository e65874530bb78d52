package hostnet

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/dvrflow/dvrflow/plan"
)

// sysctls writes the namespace's sysctls that differ. /proc/sys/net resolves to the
// network namespace of the thread that opens the file, so reads and writes happen on
// a locked thread switched into the namespace (see onLockedThread). Sysctls a plan no
// longer lists are left as they are: the namespace is the unit of clean-up.
func (r *applyRun) sysctls(ns *plan.Namespace) error {
	if len(ns.Sysctls) == 0 {
		return nil
	}
	name := r.full(ns.Name)
	keys := make([]string, 0, len(ns.Sysctls))
	for k := range ns.Sysctls {
		keys = append(keys, k)
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
