// Local VLANs allocated for the networks present on the hosts a pass touches.

package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
)

// allocateVLANs gives every network present on one of hosts a local VLAN there and frees
// those of networks gone from it. It reports whether it changed anything. A host out of
// local VLANs does not stop the others: its networks without one get no flows there, and
// the error is logged on every pass until networks leave it.
func (e *Engine) allocateVLANs(ctx context.Context, v *topology.View, hosts []string) (bool, error) {
	missing, stale := v.MissingVLANs(hosts), v.StaleVLANs(hosts)
	for h, nets := range stale {
		if len(nets) == 0 {
			delete(stale, h)
		}
	}
	changed := len(stale) > 0
	if len(missing) > 0 {
		_, err := e.store.EnsureLocalVLANs(ctx, missing)
		switch {
		case err == nil:
			changed = true
		case !exhausted(err):
			return false, fmt.Errorf("allocate local VLANs on %d hosts: %w", len(missing), err)
		default:
			// Host by host, so that only the exhausted ones go without.
			for _, h := range slices.Sorted(maps.Keys(missing)) {
				_, err := e.store.EnsureLocalVLANs(ctx, map[string][]string{h: missing[h]})
				switch {
				case err == nil:
					changed = true
				case exhausted(err):
					e.log.Error("host out of local VLANs: its networks without one get no flows there", zap.String("host", h),
						zap.Int("networks_waiting", len(missing[h])), zap.Error(err))
				default:
					return false, fmt.Errorf("allocate local VLANs on %s: %w", h, err)
				}
			}
		}
	}
	if len(stale) > 0 {
		if err := e.store.ReleaseLocalVLANs(ctx, stale); err != nil {
			return false, fmt.Errorf("release local VLANs on %d hosts: %w", len(stale), err)
		}
	}
	return changed, nil
}

// exhausted reports whether err is a host's local VLANs running out.
func exhausted(err error) bool {
	var de *db.Error
	return errors.As(err, &de) && de.Type == "LocalVLANExhausted"
}
