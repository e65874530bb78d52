// Shared parts: flows that many bridges hold alike (a remote group's members), computed once
// per view revision and handed to every bridge that has the part.

package engine

import (
	"fmt"
	"sync"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/topology"
)

// sharedParts holds the newest version of every shared part the engine computed. A part is
// computed at most once per revision, however many bridges ask for it in a pass, and each
// version records its difference from the one before, which is all that a bridge holding
// that one has to apply: a port joining a group of a thousand members costs every member's
// host one flow, not a thousand.
type sharedParts struct {
	mu    sync.Mutex
	parts map[string]*sharedEntry
}

// sharedEntry is a shared part at one revision, computed by the first bridge asking for it.
type sharedEntry struct {
	once sync.Once
	rev  int64
	prev *controller.SharedPart
	sp   *controller.SharedPart // nil: the part has no flows (or could not be computed)
	err  error
}

// get returns shared part part at view v, computing it if this revision has not yet.
func (s *sharedParts) get(v *topology.View, part string) (*controller.SharedPart, error) {
	s.mu.Lock()
	if s.parts == nil {
		s.parts = map[string]*sharedEntry{}
	}
	e := s.parts[part]
	if e == nil || e.rev != v.Revision {
		// Older entries were computed by an earlier pass, which has ended.
		var prev *controller.SharedPart
		if e != nil {
			prev = e.sp
		}
		e = &sharedEntry{rev: v.Revision, prev: prev}
		s.parts[part] = e
	}
	s.mu.Unlock()
	e.once.Do(func() { e.sp, e.err = computeShared(v, part, e.prev) })
	return e.sp, e.err
}

// computeShared computes shared part part at view v as the version after prev.
func computeShared(v *topology.View, part string, prev *controller.SharedPart) (*controller.SharedPart, error) {
	// Shared parts are br-int's, the same on every host.
	st := &apps.BridgeState{Bridge: topology.BrInt}
	flows := apps.FlowsOf(v, st, part)
	if len(flows) == 0 {
		return nil, nil
	}
	for i := range flows {
		if err := apps.Check(st.Bridge, &flows[i]); err != nil {
			return nil, fmt.Errorf("shared part %q: %w", part, err)
		}
	}
	sp, err := controller.NewSharedPart(flows, prev)
	if err != nil {
		return nil, fmt.Errorf("shared part %q: %w", part, err)
	}
	return sp, nil
}

// sweep forgets the parts of groups that no rule names as remote any more. It runs between
// passes.
func (s *sharedParts) sweep(v *topology.View) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for part := range s.parts {
		if _, group, ok := topology.PartRemoteGroup(part); !ok || v.SecurityGroup(group) == nil || !v.NamedAsRemote(group) {
			delete(s.parts, part)
		}
	}
}
