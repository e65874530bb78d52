package engine

import (
	"maps"
	"slices"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/topology"
)

// followMoves holds each VM port whose binding moved on the host it left while its tap is
// still plugged there and not yet on the new host, and releases held ports once the new
// host has the tap or the old one no longer has it (apps/hold.go). Traffic to a migrating
// VM so keeps reaching it where it runs until it runs on the new host.
func (e *Engine) followMoves(v *topology.View) {
	moves := e.pendingMoves
	e.pendingMoves = map[string]string{}
	held := v.Held()
	if len(moves) == 0 && len(held) == 0 {
		return
	}
	e.viewMu.Lock()
	defer e.viewMu.Unlock()
	for id, from := range moves {
		to := v.BindingHost(id)
		if to == "" || e.plugged(v, to, id) || !e.plugged(v, from, id) {
			continue
		}
		e.note(v.Hold(id, from))
		held[id] = from
		e.log.Info("port moved: held on the host it left until it is plugged on the new one",
			zap.String("port", id), zap.String("from", from), zap.String("to", to))
	}
	for _, id := range slices.Sorted(maps.Keys(held)) {
		from, to := held[id], v.BindingHost(id)
		if e.plugged(v, to, id) || !e.plugged(v, from, id) {
			e.note(v.Release(id))
			e.log.Info("port moved: released to its new host", zap.String("port", id), zap.String("from", from),
				zap.String("to", to), zap.Bool("plugged_there", e.plugged(v, to, id)))
		}
	}
}

// plugged reports whether port id's tap is on host's br-int, as its switch last said.
func (e *Engine) plugged(v *topology.View, host, id string) bool {
	h := v.Host(host)
	if h == nil {
		return false
	}
	dpid, ok := h.BridgeID(topology.BrInt)
	if !ok {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	b := e.bridges[dpid]
	if b == nil {
		return false
	}
	_, ok = b.ports[apps.VMPortName(id)]
	return ok
}
