// ONF bundles: open, add, commit and discard, applied atomically as OVS applies them.

package ofsim

import (
	"encoding/binary"
	"slices"

	"github.com/dvrflow/dvrflow/ofproto"
)

// ONF bundle experimenter id and message types.
const (
	experimenterONF = 0x4f4e4600
	bundleControl   = 2300
	bundleAdd       = 2301
)

func (s *Switch) handleExperimenter(sess *session, h ofproto.Header, msg []byte) error {
	if len(msg) < 16 || binary.BigEndian.Uint32(msg[8:]) != experimenterONF || s.cfg.NoBundles {
		return s.sendError(sess, h.Xid, errBadRequest, 3, msg) // OFPBRC_BAD_EXPERIMENTER
	}
	s.mu.Lock()
	slave := sess.role == roleSlave
	s.mu.Unlock()
	if slave { // as OVS's handle_bundle_control and handle_bundle_add
		return s.refuseSlave(sess, h, msg)
	}
	switch binary.BigEndian.Uint32(msg[12:]) {
	case bundleControl:
		bc, err := ofproto.DecodeBundleControl(msg)
		if err != nil {
			return s.sendError(sess, h.Xid, errBadRequest, codeBadLen, msg)
		}
		return s.bundleCtl(sess, h, bc, msg)
	case bundleAdd:
		ba, err := ofproto.DecodeBundleAdd(msg)
		if err != nil {
			return s.sendError(sess, h.Xid, errBadRequest, codeBadLen, msg)
		}
		inner, err := ofproto.ParseHeader(ba.Inner)
		if err != nil || inner.Type != ofproto.TypeFlowMod {
			return s.sendError(sess, h.Xid, errBundleFailed, 10, msg) // MSG_UNSUP
		}
		s.mu.Lock()
		b := sess.bundles[ba.BundleID]
		code := uint16(0)
		switch {
		case b == nil:
			// OVS opens a bundle implicitly on its first add.
			sess.bundles[ba.BundleID] = &bundle{flags: ba.Flags, msgs: [][]byte{slices.Clone(ba.Inner)}}
		case b.closed:
			code = codeBundleClosed
		case b.flags != ba.Flags:
			code = codeBundleBadFlags
		default:
			b.msgs = append(b.msgs, slices.Clone(ba.Inner))
		}
		s.mu.Unlock()
		if code != 0 {
			return s.sendError(sess, h.Xid, errBundleFailed, code, msg)
		}
		return nil
	default:
		return s.sendError(sess, h.Xid, errBadRequest, codeBadExpType, msg)
	}
}

func (s *Switch) bundleCtl(sess *session, h ofproto.Header, bc ofproto.BundleControl, msg []byte) error {
	reply := func(t ofproto.BundleCtrlType) error {
		return sess.write(ofproto.AppendBundleControl(nil, h.Xid, bc.BundleID, t, bc.Flags))
	}
	s.mu.Lock()
	b := sess.bundles[bc.BundleID]
	switch bc.Type {
	case ofproto.BundleOpenRequest:
		if b != nil {
			s.mu.Unlock()
			return s.sendError(sess, h.Xid, errBundleFailed, codeBundleExists, msg)
		}
		sess.bundles[bc.BundleID] = &bundle{flags: bc.Flags}
		s.mu.Unlock()
		return reply(ofproto.BundleOpenReply)
	case ofproto.BundleCloseRequest:
		code := uint16(0)
		switch {
		case b == nil:
			code = codeBundleBadID
		case b.closed:
			code = codeBundleClosed
		case b.flags != bc.Flags:
			code = codeBundleBadFlags
		default:
			b.closed = true
		}
		s.mu.Unlock()
		if code != 0 {
			return s.sendError(sess, h.Xid, errBundleFailed, code, msg)
		}
		return reply(ofproto.BundleCloseReply)
	case ofproto.BundleDiscardRequest:
		delete(sess.bundles, bc.BundleID)
		s.mu.Unlock()
		if b == nil {
			return s.sendError(sess, h.Xid, errBundleFailed, codeBundleBadID, msg)
		}
		return reply(ofproto.BundleDiscardReply)
	case ofproto.BundleCommitRequest:
		delete(sess.bundles, bc.BundleID)
		if b == nil {
			s.mu.Unlock()
			return s.sendError(sess, h.Xid, errBundleFailed, codeBundleBadID, msg)
		}
		if b.flags != bc.Flags {
			s.mu.Unlock()
			return s.sendError(sess, h.Xid, errBundleFailed, codeBundleBadFlags, msg)
		}
		s.mu.Unlock()
		rate := s.cfg.BundleFlowModRate
		if rate <= 0 {
			rate = s.cfg.FlowModRate
		}
		s.rateLimit(len(b.msgs), rate)
		defer s.emit(sess, EventFlowMods, len(b.msgs))
		s.mu.Lock()
		t := s.flows.clone()
		for _, m := range b.msgs {
			if err := s.flowModLocked(sess, t, m); err != nil {
				s.mu.Unlock()
				inner, _ := ofproto.ParseHeader(m)
				if err := s.reportFlowMod(sess, inner.Xid, m, err); err != nil {
					return err
				}
				return s.sendError(sess, h.Xid, errBundleFailed, codeBundleMsgFails, msg)
			}
		}
		s.flows = t
		s.countLocked(sess, func(c *Counts) { c.Bundles++ })
		s.mu.Unlock()
		return reply(ofproto.BundleCommitReply)
	default:
		s.mu.Unlock()
		return s.sendError(sess, h.Xid, errBundleFailed, 6, msg) // BAD_TYPE
	}
}
