// Local VLANs allocated for the networks present on the hosts a pass touches.

package engine

import (
	"context"
	"fmt"

	"github.com/dvrflow/dvrflow/topology"
)

// allocateVLANs gives every network present on one of hosts a local VLAN there and frees
// those of networks gone from it. It reports whether it changed anything.
func (e *Engine) allocateVLANs(ctx context.Context, v *topology.View, hosts []string) (bool, error) {
	missing, stale := v.MissingVLANs(hosts), v.StaleVLANs(hosts)
	for h, nets := range stale {
		if len(nets) == 0 {
			delete(stale, h)
		}
	}
	if len(missing) > 0 {
		if _, err := e.store.EnsureLocalVLANs(ctx, missing); err != nil {
			return false, fmt.Errorf("allocate local VLANs on %d hosts: %w", len(missing), err)
		}
	}
	if len(stale) > 0 {
		if err := e.store.ReleaseLocalVLANs(ctx, stale); err != nil {
			return false, fmt.Errorf("release local VLANs on %d hosts: %w", len(stale), err)
		}
	}
	return len(missing)+len(stale) > 0, nil
}
