// Controller connections and their roles, as Open vSwitch keeps them for a bridge with
// several controller targets (ofproto/connmgr.c, ofproto.c handle_role_request and
// reject_slave_controller): every connection starts equal; a master or slave request with
// a generation id older than the switch's is refused as stale; a new master turns the
// other masters into slaves; a slave may not change the switch.

package ofsim

import (
	"encoding/binary"
	"net"
	"sync"

	"github.com/dvrflow/dvrflow/ofproto"
)

// Controller roles (ofp_controller_role).
const (
	roleNoChange uint32 = 0
	roleEqual    uint32 = 1
	roleMaster   uint32 = 2
	roleSlave    uint32 = 3
)

// Errors of role handling.
const (
	codeIsSlave          uint16 = 10 // OFPBRC_IS_SLAVE
	errRoleRequestFailed uint16 = 11 // OFPET_ROLE_REQUEST_FAILED
	codeStale            uint16 = 0  // OFPRRFC_STALE
)

// session is one controller connection (OVS's ofconn).
type session struct {
	c    net.Conn
	addr string     // the controller's address
	wmu  sync.Mutex // serialises writes to c

	// Guarded by Switch.mu.
	role        uint32
	missSendLen uint16
	bundles     map[uint32]*bundle // open bundles, discarded with the connection
	counts      *Counts            // the counts of addr, over its sessions
}

func (c *session) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.c.Write(b)
	return err
}

// countLocked applies f to the switch's counts and to those of sess's address.
func (s *Switch) countLocked(sess *session, f func(*Counts)) {
	f(&s.counts)
	if sess != nil && sess.counts != nil {
		f(sess.counts)
	}
}

// Conn is one controller connection as a test sees it.
type Conn struct {
	Addr        string
	Role        uint32 // 1 equal, 2 master, 3 slave
	MissSendLen uint16
}

// Conns returns the controller connections, oldest first.
func (s *Switch) Conns() []Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Conn, 0, len(s.sessions))
	for _, c := range s.sessions {
		out = append(out, Conn{Addr: c.addr, Role: c.role, MissSendLen: c.missSendLen})
	}
	return out
}

// slaveRefuses says whether a slave may not send a message of type t: those that change
// the switch (bundles are checked in handleExperimenter).
func slaveRefuses(t ofproto.MsgType) bool {
	switch t {
	case ofproto.TypeFlowMod, ofproto.TypeGroupMod, ofproto.TypeMeterMod, ofproto.TypePortMod,
		ofproto.TypePacketOut, ofproto.TypeTableMod:
		return true
	}
	return false
}

// refuseSlave answers a slave's message with OFPBRC_IS_SLAVE; nothing changes.
func (s *Switch) refuseSlave(sess *session, h ofproto.Header, msg []byte) error {
	s.mu.Lock()
	s.countLocked(sess, func(c *Counts) { c.SlaveRefused++ })
	s.mu.Unlock()
	return s.sendError(sess, h.Xid, errBadRequest, codeIsSlave, msg)
}

func (s *Switch) handleRole(sess *session, h ofproto.Header, msg []byte) error {
	if len(msg) != 24 {
		return s.sendError(sess, h.Xid, errBadRequest, codeBadLen, msg)
	}
	role := binary.BigEndian.Uint32(msg[8:])
	gen := binary.BigEndian.Uint64(msg[16:])
	if role > roleSlave {
		return s.sendError(sess, h.Xid, errRoleRequestFailed, 2, msg) // OFPRRFC_BAD_ROLE
	}
	s.mu.Lock()
	if role == roleMaster || role == roleSlave { // check the generation id
		if s.genSet && int64(gen-s.generation) < 0 {
			s.mu.Unlock()
			return s.sendError(sess, h.Xid, errRoleRequestFailed, codeStale, msg)
		}
		s.generation, s.genSet = gen, true
	}
	if role != roleNoChange {
		if role == roleMaster {
			// One master: the others become slaves (OF1.3 sends them no role status).
			for _, o := range s.sessions {
				if o != sess && o.role == roleMaster {
					o.role = roleSlave
				}
			}
		}
		sess.role, s.role = role, role
	}
	role, gen = sess.role, s.generation
	s.mu.Unlock()
	b := ofproto.Begin(nil, ofproto.TypeRoleReply, h.Xid)
	b = binary.BigEndian.AppendUint32(b, role)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, gen)
	return sess.write(ofproto.Finish(b, 0))
}
