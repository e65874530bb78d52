package ofsim

import (
	"encoding/binary"

	"github.com/dvrflow/dvrflow/ofproto"
)

// EventKind says what happened on a switch.
type EventKind uint8

// Events a Switch reports to Config.Hook.
const (
	// EventConnected: a session started (before the HELLO is sent).
	EventConnected EventKind = iota + 1
	// EventDisconnected: the session ended.
	EventDisconnected
	// EventFlowMods: N flow-mods were processed (one plain flow-mod, or a committed or
	// failed bundle's N), after they took effect.
	EventFlowMods
	// EventBarrier: a barrier reply was sent, after everything received before it.
	EventBarrier
	// EventFlowStats: a flow stats request was answered with N flows.
	EventFlowStats
)

func (k EventKind) String() string {
	switch k {
	case EventConnected:
		return "connected"
	case EventDisconnected:
		return "disconnected"
	case EventFlowMods:
		return "flow-mods"
	case EventBarrier:
		return "barrier"
	case EventFlowStats:
		return "flow-stats"
	}
	return "unknown"
}

// Event is one thing a switch received, for harnesses that time convergence. A plain
// flow-mod's event also says which flow it was about (for a bundle's, they are zero).
type Event struct {
	DPID uint64
	Kind EventKind
	N    int
	// Cookie, Table and Command of a plain flow-mod.
	Cookie  uint64
	Table   uint8
	Command ofproto.FlowModCommand
	// Addr is the address of the controller connection it happened on (the one Run
	// dialled, or the remote address of the connection given to Serve).
	Addr string
}

// emitFlowMod reports the plain flow-mod msg (whole, well-formed or not).
func (s *Switch) emitFlowMod(sess *session, msg []byte) {
	if s.cfg.Hook == nil {
		return
	}
	e := Event{DPID: s.cfg.DPID, Kind: EventFlowMods, N: 1, Addr: sess.addr}
	if len(msg) >= ofproto.HeaderLen+18 {
		e.Cookie = binary.BigEndian.Uint64(msg[8:16])
		e.Table, e.Command = msg[24], ofproto.FlowModCommand(msg[25])
	}
	s.cfg.Hook(e)
}

func (s *Switch) emit(sess *session, k EventKind, n int) {
	if s.cfg.Hook != nil {
		s.cfg.Hook(Event{DPID: s.cfg.DPID, Kind: k, N: n, Addr: sess.addr})
	}
}
