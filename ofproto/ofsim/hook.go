package ofsim

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

// Event is one thing a switch received, for harnesses that time convergence.
type Event struct {
	DPID uint64
	Kind EventKind
	N    int
}

func (s *Switch) emit(k EventKind, n int) {
	if s.cfg.Hook != nil {
		s.cfg.Hook(Event{DPID: s.cfg.DPID, Kind: k, N: n})
	}
}
