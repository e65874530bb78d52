// OpenFlow roles: with several controllers, each switch has one master, which alone sees
// packet-ins and writes flows; the others are slaves.

package controller

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/ofproto"
)

// Mastership is this controller's role for one switch, as the mastership lease decides
// it (package mastership).
type Mastership struct {
	Master bool   // master in Term; otherwise a slave
	Term   uint64 // the lease term: the generation_id of the role request (0: none yet)
}

// roleStale is OFPRRFC_STALE: the generation_id is older than one the switch has seen.
const roleStale = 0

// roleTimeout bounds one role request.
const roleTimeout = 5 * time.Second

// roleRetry is how long a role request that failed otherwise than stale waits to be sent again.
const roleRetry = time.Second

// errDemoted ends a switch's mastership (SwitchDisconnected.Err) while its session runs.
var errDemoted = errors.New("no longer this controller's switch: its mastership moved")

// isStale reports whether err is a switch refusing a role request as stale.
func isStale(err error) bool {
	var oe *OFError
	return errors.As(err, &oe) && oe.Type == ofproto.ErrTypeRoleRequest && oe.Code == roleStale
}

// EnableRoles makes the server take switch roles from SetRoles: a switch is this
// controller's (SwitchConnected to subscribers, packet-ins, port events, a reconciler)
// only while it is its master; a switch whose master is another controller gets a slave
// role request, and one that SetRoles does not name is left as it connected (equal) and
// unused. onStale is called when a switch refuses a master role request as stale (a newer
// master exists): the caller's view of the masterships is old. Call it before Serve.
func (s *Server) EnableRoles(onStale func(dpid uint64)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rolesOn = true
	s.roles = map[uint64]Mastership{}
	s.onStale = onStale
}

// SetRoles replaces the role of every switch (by datapath ID) and applies the changes to
// the connected ones.
func (s *Server) SetRoles(roles map[uint64]Mastership) {
	s.mu.Lock()
	old := s.roles
	s.roles = roles
	var kick []*Session
	for dpid, sess := range s.sessions {
		if old[dpid] != roles[dpid] {
			kick = append(kick, sess)
		}
	}
	s.mu.Unlock()
	for _, sess := range kick {
		sess.kickRole()
	}
}

func (s *Server) roleOf(dpid uint64) (Mastership, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.roles[dpid]
	return m, ok
}

func (s *Server) isCurrent(sess *Session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[sess.dpid] == sess
}

func (sess *Session) kickRole() {
	select {
	case sess.roleKick <- struct{}{}:
	default:
	}
}

// roleLoop gives the session the role SetRoles wants, each time it changes, until the
// session ends; then the switch stops being this controller's.
func (s *Server) roleLoop(ctx context.Context, sess *Session) {
	defer s.demote(sess)
	sess.kickRole()
	for {
		select {
		case <-sess.done:
			return
		case <-ctx.Done():
			return
		case <-sess.roleKick:
		}
		if !s.applyRole(ctx, sess) {
			t := time.AfterFunc(roleRetry, sess.kickRole)
			select {
			case <-sess.done:
				t.Stop()
				return
			case <-ctx.Done():
				t.Stop()
				return
			case <-sess.roleKick:
				t.Stop()
				sess.kickRole()
			}
		}
	}
}

// applyRole sends the role request the switch needs; false: try again later.
func (s *Server) applyRole(ctx context.Context, sess *Session) bool {
	want, known := s.roleOf(sess.dpid)
	if known && want.Master {
		if sess.masterIn(want.Term) {
			return true
		}
		rctx, cancel := context.WithTimeout(ctx, roleTimeout)
		_, gen, err := sess.RoleRequest(rctx, RoleMaster, want.Term)
		cancel()
		if err != nil {
			s.demote(sess)
			if isStale(err) {
				sess.log.Warn("switch refused mastership as stale: a newer master exists", zap.Uint64("term", want.Term))
				if s.onStale != nil {
					s.onStale(sess.dpid)
				}
				return true
			}
			sess.log.Warn("master role request failed", zap.Uint64("term", want.Term), zap.Error(err))
			return false
		}
		if now, ok := s.roleOf(sess.dpid); !ok || now != want {
			sess.kickRole() // changed while asking: the next round settles it
			return true
		}
		sess.log.Info("master of the switch", zap.Uint64("term", want.Term), zap.Uint64("generation", gen))
		s.promote(sess, want.Term)
		return true
	}
	s.demote(sess)
	if !known || want.Term == 0 || (sess.Role() == RoleSlave && sess.slaveTerm.Load() == want.Term) {
		return true
	}
	rctx, cancel := context.WithTimeout(ctx, roleTimeout)
	_, _, err := sess.RoleRequest(rctx, RoleSlave, want.Term)
	cancel()
	switch {
	case isStale(err):
		// A master newer than this controller knows: it already made this one a slave.
		sess.log.Debug("slave role request stale", zap.Uint64("term", want.Term))
		if s.onStale != nil {
			s.onStale(sess.dpid)
		}
		return true
	case err != nil:
		sess.log.Warn("slave role request failed", zap.Uint64("term", want.Term), zap.Error(err))
		return false
	}
	sess.slaveTerm.Store(want.Term)
	return true
}

// promote makes the switch this controller's: subscribers get SwitchConnected with its
// current ports, and the engine's first push creates its reconciler, which dumps the
// switch and sends only the difference. A reconciler left from an earlier mastership
// holds a desired set of that time: it is dropped, never applied.
func (s *Server) promote(sess *Session, term uint64) {
	s.dropReconciler(sess)
	sess.emitMu.Lock()
	defer sess.emitMu.Unlock()
	if !s.isCurrent(sess) {
		return
	}
	sess.masterTerm.Store(term)
	sess.mastered.Store(true)
	s.emit(SwitchConnected{DPID: sess.dpid, Ports: sess.Ports(), Session: sess})
}

// demote ends this controller's mastership of the switch, if it had it: subscribers get
// SwitchDisconnected (unless a newer session of the switch replaced this one) and its
// reconciler stops writing.
func (s *Server) demote(sess *Session) {
	sess.emitMu.Lock()
	was := sess.mastered.Swap(false)
	sess.masterTerm.Store(0)
	if was && s.isCurrent(sess) {
		s.emit(SwitchDisconnected{DPID: sess.dpid, Err: errDemoted})
	}
	sess.emitMu.Unlock()
	if was {
		s.dropReconciler(sess)
	}
}

// dropReconciler detaches and forgets the switch's reconciler, if it is bound to sess or
// to no session.
func (s *Server) dropReconciler(sess *Session) {
	s.mu.Lock()
	r := s.reconcilers[sess.dpid]
	s.mu.Unlock()
	if r == nil {
		return
	}
	r.Detach(sess)
	if !r.bound(nil) {
		return // a newer session of the switch has it
	}
	s.mu.Lock()
	if s.reconcilers[sess.dpid] == r {
		delete(s.reconcilers, sess.dpid)
	}
	s.mu.Unlock()
}

// mayUse reports whether the session is this controller's to use: always without roles,
// only as its master with them.
func (s *Server) mayUse(sess *Session) bool {
	return !s.rolesOn || sess.mastered.Load()
}

// masterIn reports whether this controller is the switch's master in term.
func (sess *Session) masterIn(term uint64) bool {
	return sess.mastered.Load() && sess.masterTerm.Load() == term
}

// MasterTerm returns the term this controller masters the switch in (0: not its master).
func (sess *Session) MasterTerm() uint64 { return sess.masterTerm.Load() }
