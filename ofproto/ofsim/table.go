package ofsim

import (
	"encoding/binary"
	"errors"
	"slices"
	"time"

	"github.com/dvrflow/dvrflow/ofproto"
)

// entry is one stored flow. It is immutable once in a table (a modify stores a new entry)
// except for its counters. The flow is kept encoded (match + instructions as on the wire),
// which is several times smaller than the decoded form.
type entry struct {
	table      uint8
	priority   uint16
	idle, hard uint16
	flags      uint16
	cookie     uint64
	added      int64  // Unix nanoseconds
	body       []byte // ofp_match + instructions, as in the flow-mod
	packets    uint64
	bytes      uint64
}

// flowTable is every flow of a switch, keyed like OVS: (table, priority, match).
type flowTable map[ofproto.FlowKey]*entry

// flow decodes the entry.
func (e *entry) flow() (ofproto.Flow, error) {
	return decodeStored(e.appendFlowMod(make([]byte, 0, 48+len(e.body))))
}

// appendFlowMod appends the entry as the OFPT_FLOW_MOD (ADD) that installs it.
func (e *entry) appendFlowMod(b []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, 48)...)
	msg := b[start:]
	msg[0], msg[1] = ofproto.Version, byte(ofproto.TypeFlowMod)
	binary.BigEndian.PutUint64(msg[8:], e.cookie)
	msg[24] = e.table
	binary.BigEndian.PutUint16(msg[26:], e.idle)
	binary.BigEndian.PutUint16(msg[28:], e.hard)
	binary.BigEndian.PutUint16(msg[30:], e.priority)
	b = append(b, e.body...)
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

// decodeStored decodes a stored flow's flow-mod, its match in canonical order.
func decodeStored(msg []byte) (ofproto.Flow, error) {
	fm, err := ofproto.DecodeFlowMod(msg)
	if err != nil {
		return ofproto.Flow{}, err
	}
	fm.Flow.Match = fm.Flow.Match.Canonical()
	return fm.Flow, nil
}

// flowModError is an OpenFlow error to send for a refused flow-mod.
type flowModError struct{ typ, code uint16 }

func (e *flowModError) Error() string { return "flow-mod refused" }

// OpenFlow error types and codes the simulator sends, as Open vSwitch does.
const (
	errBadRequest      uint16 = 1
	errBadInstruction  uint16 = 3
	errBadMatch        uint16 = 4
	errFlowModFailed   uint16 = 5
	errBundleFailed    uint16 = 17
	codeBadVersion     uint16 = 0
	codeBadType        uint16 = 1
	codeBadMultipart   uint16 = 2
	codeBadExpType     uint16 = 4
	codeBadLen         uint16 = 6
	codeBadTableID     uint16 = 2 // OFPFMFC_BAD_TABLE_ID, OFPBIC_BAD_TABLE_ID
	codeBadPrereq      uint16 = 9 // OFPBMC_BAD_PREREQ
	codeDupField       uint16 = 10
	codeBadTableIDReq  uint16 = 9 // OFPBRC_BAD_TABLE_ID
	codeOverlap        uint16 = 3 // OFPFMFC_OVERLAP
	errBadAction       uint16 = 2
	codeBadActionType  uint16 = 0 // OFPBAC_BAD_TYPE
	codeBadActionExp   uint16 = 2 // OFPBAC_BAD_EXPERIMENTER
	codeBadOutPort     uint16 = 4 // OFPBAC_BAD_OUT_PORT
	codeUnknownInst    uint16 = 0 // OFPBIC_UNKNOWN_INST
	codeBadInstExp     uint16 = 5 // OFPBIC_BAD_EXPERIMENTER
	codeDupInst        uint16 = 7 // OFPBIC_DUP_INST (OVS's extension code)
	codeBundleClosed   uint16 = 9
	codeBundleBadFlags uint16 = 8
	codeBadCommand     uint16 = 6 // OFPFMFC_BAD_COMMAND
	codeBundleBadID    uint16 = 2
	codeBundleExists   uint16 = 3
	codeBundleMsgFails uint16 = 13
)

// apply executes one decoded flow-mod on t (OVS semantics for OpenFlow 1.3). raw is the
// whole flow-mod message.
func (t flowTable) apply(fm *ofproto.FlowMod, raw []byte, numTables uint8, now time.Time) error {
	f := &fm.Flow
	f.Match = f.Match.Canonical()
	switch fm.Command {
	case ofproto.FlowAdd:
		if f.Table >= numTables {
			return &flowModError{errFlowModFailed, codeBadTableID}
		}
		if err := checkFlow(f, numTables); err != nil {
			return err
		}
		k := f.Key()
		if fm.Flags&flagCheckOverlap != 0 && t.overlaps(k, f.Match) {
			return &flowModError{errFlowModFailed, codeOverlap}
		}
		e := &entry{table: f.Table, priority: f.Priority, idle: f.IdleTimeout, hard: f.HardTimeout,
			flags: fm.Flags, cookie: f.Cookie, added: now.UnixNano(), body: slices.Clone(raw[48:])}
		if old := t[k]; old != nil && fm.Flags&ofproto.FlagResetCounts == 0 {
			e.packets, e.bytes = old.packets, old.bytes
		}
		t[k] = e
	case ofproto.FlowModify, ofproto.FlowModifyStrict:
		if f.Table >= numTables && f.Table != ofproto.TableAll {
			return &flowModError{errFlowModFailed, codeBadTableID}
		}
		if f.Table != ofproto.TableAll {
			if err := checkFlow(f, numTables); err != nil {
				return err
			}
		}
		instr := instructionBytes(raw)
		for k, e := range t.selectFlows(fm, fm.Command == ofproto.FlowModifyStrict) {
			ne := *e
			ne.body = append(slices.Clone(e.body[:matchLen(e.body)]), instr...)
			t[k] = &ne
		}
	case ofproto.FlowDelete, ofproto.FlowDeleteStrict:
		if f.Table >= numTables && f.Table != ofproto.TableAll {
			return &flowModError{errFlowModFailed, codeBadTableID}
		}
		for k := range t.selectFlows(fm, fm.Command == ofproto.FlowDeleteStrict) {
			delete(t, k)
		}
	default:
		return &flowModError{errFlowModFailed, codeBadCommand}
	}
	return nil
}

// checkFlow refuses a flow the way OVS does: a goto that does not go forward to an
// existing table, then any other invalid match or action (reported as a bad prerequisite).
func checkFlow(f *ofproto.Flow, numTables uint8) error {
	if f.HasGoto && (f.Goto <= f.Table || f.Goto >= numTables) {
		return &flowModError{errBadInstruction, codeBadTableID}
	}
	if err := f.Validate(); err != nil {
		return &flowModError{errBadMatch, codeBadPrereq}
	}
	return nil
}

// selectFlows returns the flows a modify or delete applies to.
func (t flowTable) selectFlows(fm *ofproto.FlowMod, strict bool) map[ofproto.FlowKey]*entry {
	out := map[ofproto.FlowKey]*entry{}
	f := &fm.Flow
	if strict {
		for _, table := range tablesOf(f.Table) {
			k := f.Key()
			k.Table = table
			if e := t[k]; e != nil && cookieOK(e, fm) && t.outPortOK(e, fm) {
				out[k] = e
			}
			if f.Table != ofproto.TableAll {
				break
			}
		}
		return out
	}
	for k, e := range t {
		if f.Table != ofproto.TableAll && e.table != f.Table {
			continue
		}
		if !cookieOK(e, fm) {
			continue
		}
		ef, err := e.flow()
		if err != nil || !restricts(ef.Match, f.Match) || !t.outPortOK(e, fm) {
			continue
		}
		out[k] = e
	}
	return out
}

func tablesOf(table uint8) []uint8 {
	if table != ofproto.TableAll {
		return []uint8{table}
	}
	ts := make([]uint8, 255)
	for i := range ts {
		ts[i] = uint8(i)
	}
	return ts
}

func cookieOK(e *entry, fm *ofproto.FlowMod) bool {
	return e.cookie&fm.CookieMask == fm.Flow.Cookie&fm.CookieMask
}

// outPortOK applies a delete's out_port filter: the flow must output to that port.
func (t flowTable) outPortOK(e *entry, fm *ofproto.FlowMod) bool {
	isDelete := fm.Command == ofproto.FlowDelete || fm.Command == ofproto.FlowDeleteStrict
	if !isDelete || fm.OutPort == ofproto.PortAny {
		return true
	}
	ef, err := e.flow()
	if err != nil {
		return false
	}
	for _, a := range ef.Actions {
		if o, ok := a.(ofproto.Output); ok && o.Port == fm.OutPort {
			return true
		}
	}
	return false
}

// restricts reports whether flow match fm is at least as specific as the given match g:
// every field g constrains, fm constrains at least as much, to a compatible value.
func restricts(fm, g ofproto.Match) bool {
	for _, gf := range g {
		ff, ok := fm.Get(gf.Class, gf.Type)
		if !ok {
			if gf.Mask != nil && allZero(gf.Mask) {
				continue
			}
			return false
		}
		if len(ff.Value) != len(gf.Value) {
			return false
		}
		for i := range gf.Value {
			gm, fmk := byte(0xff), byte(0xff)
			if gf.Mask != nil {
				gm = gf.Mask[i]
			}
			if ff.Mask != nil {
				fmk = ff.Mask[i]
			}
			if fmk&gm != gm || ff.Value[i]&gm != gf.Value[i]&gm {
				return false
			}
		}
	}
	return true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// matchLen is the padded length of the ofp_match at the start of body.
func matchLen(body []byte) int {
	if len(body) < 4 {
		return len(body)
	}
	n := (int(binary.BigEndian.Uint16(body[2:])) + 7) / 8 * 8
	return min(n, len(body))
}

// instructionBytes returns the instructions of a whole flow-mod message.
func instructionBytes(raw []byte) []byte {
	body := raw[48:]
	return body[matchLen(body):]
}

// stats returns every flow (of table, or all when TableAll) with cookie c&mask == cookie&mask.
func (t flowTable) stats(table uint8, cookie, mask uint64, now time.Time) ([]ofproto.FlowStats, error) {
	out := make([]ofproto.FlowStats, 0, len(t))
	for _, e := range t {
		if table != ofproto.TableAll && e.table != table {
			continue
		}
		if e.cookie&mask != cookie&mask {
			continue
		}
		f, err := e.flow()
		if err != nil {
			return nil, errors.Join(errors.New("stored flow does not decode"), err)
		}
		d := time.Duration(now.UnixNano() - e.added)
		out = append(out, ofproto.FlowStats{Flow: f, Flags: e.flags, DurationSec: uint32(d / time.Second),
			DurationNsec: uint32(d % time.Second), PacketCount: e.packets, ByteCount: e.bytes})
	}
	// By table and priority, as OVS dumps them (ComparePlaces: no match keys to compute).
	slices.SortFunc(out, func(a, b ofproto.FlowStats) int { return ofproto.ComparePlaces(&a.Flow, &b.Flow) })
	return out, nil
}

// clone returns a shallow copy (entries are shared; they are immutable but for counters).
func (t flowTable) clone() flowTable {
	c := make(flowTable, len(t))
	for k, e := range t {
		c[k] = e
	}
	return c
}
