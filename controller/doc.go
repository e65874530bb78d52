// Package controller is the one place in dvrflow that talks to switches: it accepts
// OpenFlow 1.3 connections (TCP, or TLS with client certificates), runs one Session per
// bridge (handshake, echo keepalive both ways, per-session xids, a bounded writer queue),
// keeps the registry of connected switches keyed by datapath id, delivers switch and port
// events to subscribers, dispatches packet-ins to handlers under a per-switch budget, and
// reconciles each bridge's flows against the desired set (Reconciler).
//
// # Sessions
//
// A session has exactly one reader goroutine (the connection's own, which also runs the
// handshake) and one writer goroutine (which also runs the echo keepalive and the dead-peer
// check). Send queues whole encoded messages and blocks while the queue is full; Request,
// RequestMultipart, Barrier and RoleRequest match replies by xid within the session, and
// an OFPT_ERROR is returned to the request it names. A message that cannot be decoded
// closes its session with a log line carrying dpid and remote; other sessions go on.
//
// # Reconciling
//
// The Reconciler owns the desired flows of one bridge, keyed like OVS keys flows (table,
// priority, match), and a mirror of what is installed. On (re)connect it dumps the switch;
// afterwards it diffs against the mirror only. The diff is sent in this order: adds and
// modifies, then deletes, so no table is left empty on the way; nothing is ever flushed.
//
//   - A missing flow is an ADD.
//   - Different instructions with the same cookie and timeouts: MODIFY_STRICT (keeps the
//     flow's counters). A different cookie or timeouts: ADD, which replaces the flow (OVS
//     does not change cookies or timeouts on modify).
//   - An installed flow whose cookie is ours (cookie & CookieMask == CookieValue) and that is
//     not desired: DELETE_STRICT with cookie mask 0 (its table, priority and match name it).
//   - A flow of another owner is left alone, unless a desired flow has its key: it is then
//     replaced and the overwrite is logged and counted.
//
// Large diffs (or every diff, with AlwaysBundle) go in one atomic ONF bundle; a switch
// that refuses bundles gets plain flow-mods. Every batch is confirmed by a barrier, which
// also guarantees that every OFPT_ERROR for it has been seen. A refused flow is reported
// with its ovs-ofctl text and retried with exponential backoff; a refused bundle applied
// nothing and is re-sent at once without the refused flows.
//
// Note that Open vSwitch flushes a bridge's flows when it gets its first controller
// (set-controller on a bridge without one): flows added before that are gone.
package controller
