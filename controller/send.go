// The switch side of a pass: flow dumps, and flow-mods sent plain or in bundles.

package controller

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/ofproto"
)

// dump reads every flow of the switch. Flows we do not own are kept in the mirror (so a
// desired flow with their key is known to overwrite them) but never deleted. A non-nil
// counters gets each flow's packet and byte counters.
//
// An entry whose match and instructions are byte for byte a desired flow's is that flow
// (Open vSwitch dumps a match in the canonical order our keys use) and is not decoded: on a
// restart or a mastership move nearly every flow is, and decoding them all was most of a
// reconciler's first pass. Any other entry is decoded and packed.
func (r *Reconciler) dump(ctx context.Context, sess *Session, counters map[ofproto.FlowKey]flowCounters) (map[ofproto.FlowKey]*ofproto.PackedFlow, int, error) {
	parts, err := sess.RequestMultipart(ctx, ofproto.AppendFlowStatsRequest(nil, 0, ofproto.TableAll, 0, 0, nil))
	if err != nil {
		return nil, 0, fmt.Errorf("dumping flows: %w", err)
	}
	r.mu.Lock()
	inst := make(map[ofproto.FlowKey]*ofproto.PackedFlow, len(r.desired)) // about what the switch holds
	r.mu.Unlock()
	foreign, decoded := 0, 0
	for _, body := range parts {
		r.mu.Lock() // once per reply part, not per flow
		err := ofproto.EachFlowStats(body, func(e *ofproto.FlowStatsEntry) error {
			if !r.owns(e.Cookie) {
				foreign++
			}
			k := ofproto.FlowKey{Table: e.Table, Priority: e.Priority, Match: string(e.OXMs)}
			var p *ofproto.PackedFlow
			if w, ok := r.desired[k]; ok && e.OXMs != nil && w.flow.Cookie == e.Cookie && w.flow.IdleTimeout == e.IdleTimeout &&
				w.flow.HardTimeout == e.HardTimeout && w.flow.Instructions == string(e.Instructions) {
				p = w.flow // share the desired flow's memory
			} else {
				fs, err := e.Decode()
				if err != nil {
					return err
				}
				decoded++
				q := ofproto.Pack(&fs.Flow)
				if w, ok := r.desired[q.Key]; ok && sameFlow(w.flow, &q) {
					p = w.flow
				} else {
					p = &q
				}
			}
			inst[p.Key] = p
			if counters != nil {
				counters[p.Key] = flowCounters{e.PacketCount, e.ByteCount}
			}
			return nil
		})
		r.mu.Unlock()
		if err != nil {
			return nil, 0, fmt.Errorf("decoding flow dump: %w", err)
		}
	}
	r.mu.Lock()
	r.stats.DumpDecoded += uint64(decoded)
	r.mu.Unlock()
	return inst, foreign, nil
}

// chunkSize is how many bytes of encoded flow-mods are handed to the writer at once.
const chunkSize = 64 << 10

// flowModEstimate is about the size of one encoded flow-mod (most are under it).
const flowModEstimate = 192

// send sends ops, plain or in a bundle, and waits for the barrier or commit. failed maps op
// indexes to the switch's errors; applied says whether the successful ops took effect (a
// bundle that failed to commit applied nothing); bundled whether a bundle was used.
func (r *Reconciler) send(ctx context.Context, sess *Session, ops []op, bundle bool) (failed map[int]error, applied, bundled bool, err error) {
	n := uint32(len(ops))
	first := sess.ReserveXIDs(n)
	var mu sync.Mutex
	failed = map[int]error{}
	stop := sess.WatchErrors(first, n, func(xid uint32, e *OFError) {
		mu.Lock()
		failed[int(xid-first)] = e
		mu.Unlock()
	})
	defer stop()

	var bundleID uint32
	if bundle {
		r.mu.Lock()
		r.bundleID++
		bundleID = r.bundleID
		r.mu.Unlock()
		_, err := sess.Request(ctx, ofproto.AppendBundleControl(nil, 0, bundleID, ofproto.BundleOpenRequest, bundleFlags), ofproto.TypeExperimenter)
		var ofe *OFError
		switch {
		case errors.As(err, &ofe):
			// The switch has no ONF bundles: send plain flow-mods confirmed by a barrier.
			r.log.Warn("switch refused to open a bundle; sending plain flow-mods", zap.Error(err))
			bundle = false
		case err != nil:
			return nil, false, bundle, fmt.Errorf("opening bundle: %w", err)
		}
	}
	// A few flow-mods (a port joining a group) need a few hundred bytes, not a chunk: the
	// buffer is cleared on allocation, and thousands of switches change at once.
	buf := make([]byte, 0, min(len(ops)*flowModEstimate, chunkSize)+1024)
	var scratch []byte
	for i := range ops {
		o := &ops[i]
		xid := first + uint32(i)
		switch {
		case bundle:
			scratch = o.flow.AppendFlowMod(scratch[:0], xid, o.kind.command(), 0)
			buf = ofproto.AppendBundleAdd(buf, xid, bundleID, bundleFlags, scratch)
		default:
			// Strict deletes name the flow by table, priority and match with cookie mask 0:
			// the mirror proves it is ours, and a cookie mask makes OVS walk its cookie
			// index, which every flow of an app shares, on each delete.
			buf = o.flow.AppendFlowMod(buf, xid, o.kind.command(), 0)
		}
		if len(buf) >= chunkSize {
			if err := sess.Send(ctx, buf); err != nil {
				return nil, false, bundle, fmt.Errorf("sending flow-mods: %w", err)
			}
			buf = make([]byte, 0, chunkSize+1024)
		}
	}
	if len(buf) > 0 && bundle {
		if err := sess.Send(ctx, buf); err != nil {
			return nil, false, bundle, fmt.Errorf("sending flow-mods: %w", err)
		}
		buf = nil
	}
	applied = true
	if bundle {
		_, cerr := sess.Request(ctx, ofproto.AppendBundleControl(nil, 0, bundleID, ofproto.BundleCommitRequest, bundleFlags), ofproto.TypeExperimenter)
		var ofe *OFError
		switch {
		case errors.As(cerr, &ofe):
			applied = false // rolled back; the failing flow-mods were reported by xid
		case cerr != nil:
			return nil, false, bundle, fmt.Errorf("committing bundle: %w", cerr)
		}
	}
	// The barrier (in the same write as the last plain flow-mods) also guarantees every
	// error for the batch has been routed to us.
	if err := sess.SendBarrier(ctx, buf); err != nil {
		return nil, false, bundle, err
	}
	mu.Lock()
	defer mu.Unlock()
	if !applied && len(failed) == 0 {
		return nil, false, bundle, errors.New("bundle commit refused without naming a flow")
	}
	return failed, applied, bundle, nil
}

const bundleFlags = ofproto.BundleAtomic | ofproto.BundleOrdered
