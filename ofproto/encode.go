package ofproto

import "encoding/binary"

// FlowModCommand is ofp_flow_mod_command.
type FlowModCommand uint8

// Flow-mod commands.
const (
	FlowAdd          FlowModCommand = 0
	FlowModify       FlowModCommand = 1
	FlowModifyStrict FlowModCommand = 2
	FlowDelete       FlowModCommand = 3
	FlowDeleteStrict FlowModCommand = 4
)

// String returns the OpenFlow name of the command ("ADD", "MODIFY_STRICT", ...).
func (c FlowModCommand) String() string {
	switch c {
	case FlowAdd:
		return "ADD"
	case FlowModify:
		return "MODIFY"
	case FlowModifyStrict:
		return "MODIFY_STRICT"
	case FlowDelete:
		return "DELETE"
	case FlowDeleteStrict:
		return "DELETE_STRICT"
	}
	return "COMMAND_" + itoa(uint64(c))
}

// Instruction types (ofp_instruction_type).
const (
	instGotoTable     uint16 = 1
	instWriteMetadata uint16 = 2
	instWriteActions  uint16 = 3
	instApplyActions  uint16 = 4
	instClearActions  uint16 = 5
	instMeter         uint16 = 6
)

const (
	headerLen      = 8
	flowModFixed   = 48 // ofp_flow_mod up to (not including) the match
	flowStatsFixed = 48 // ofp_flow_stats up to the match
)

// appendHeader appends an ofp_header whose length is patched later by finish.
func appendHeader(b []byte, t MsgType, xid uint32) []byte {
	b = append(b, Version, byte(t), 0, 0)
	return appendU32(b, xid)
}

// finish writes the length of the message that starts at start.
func finish(b []byte, start int) []byte {
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

// appendMatch appends an ofp_match of type OXM with the fields in the order given, padded to
// a multiple of 8 bytes.
func appendMatch(b []byte, m Match) []byte {
	start := len(b)
	b = append(b, 0, 1, 0, 0) // OFPMT_OXM, length patched below
	for i := range m {
		b = appendOXM(b, m[i])
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	for (len(b)-start)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

// appendInstructions appends the flow's instructions in Open vSwitch's order: meter,
// apply-actions, (clear/write-actions as kept in OtherInstructions), write-metadata, goto-table.
func appendInstructions(b []byte, f *Flow) []byte {
	if f.Meter != 0 {
		b = append(b, 0, byte(instMeter), 0, 8)
		b = appendU32(b, f.Meter)
	}
	if len(f.Actions) > 0 {
		start := len(b)
		b = append(b, 0, byte(instApplyActions), 0, 0, 0, 0, 0, 0)
		for _, a := range f.Actions {
			b = a.appendTo(b)
		}
		binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	}
	b = append(b, f.OtherInstructions...)
	if f.HasMetadata {
		b = append(b, 0, byte(instWriteMetadata), 0, 24, 0, 0, 0, 0)
		b = appendU64(b, f.Metadata)
		b = appendU64(b, f.MetadataMask)
	}
	if f.HasGoto {
		b = append(b, 0, byte(instGotoTable), 0, 8, f.Goto, 0, 0, 0)
	}
	return b
}

// AppendFlowMod appends a complete OFPT_FLOW_MOD (OpenFlow 1.3) for f to b: cookie mask 0,
// buffer OFP_NO_BUFFER, out_port/out_group ANY, the OXM match in the order of f.Match (keep
// it Canonical to match ovs-ofctl byte for byte) and f's instructions. It does not allocate
// when b has enough capacity. For deletes with a cookie mask use AppendFlowDelete.
func AppendFlowMod(b []byte, xid uint32, cmd FlowModCommand, f *Flow, flags uint16) []byte {
	start := len(b)
	b = appendHeader(b, TypeFlowMod, xid)
	b = appendU64(b, f.Cookie)
	b = appendU64(b, 0) // cookie mask
	b = append(b, f.Table, byte(cmd))
	b = appendU16(b, f.IdleTimeout)
	b = appendU16(b, f.HardTimeout)
	b = appendU16(b, f.Priority)
	b = appendU32(b, NoBuffer)
	b = appendU32(b, PortAny)
	b = appendU32(b, GroupAny)
	b = appendU16(b, flags)
	b = append(b, 0, 0)
	b = appendMatch(b, f.Match)
	if cmd != FlowDelete && cmd != FlowDeleteStrict {
		b = appendInstructions(b, f)
	}
	return finish(b, start)
}

// AppendFlowDelete appends an OFPT_FLOW_MOD deleting flows of table (TableAll for every
// table) that match match, restricted to cookies c with c&cookieMask == cookie&cookieMask.
// strict selects DELETE_STRICT (priority and match must be equal) over DELETE (every flow
// whose match is at least as specific).
func AppendFlowDelete(b []byte, xid uint32, table uint8, priority uint16, match Match, cookie, cookieMask uint64, strict bool) []byte {
	start := len(b)
	cmd := FlowDelete
	if strict {
		cmd = FlowDeleteStrict
	}
	b = appendHeader(b, TypeFlowMod, xid)
	b = appendU64(b, cookie)
	b = appendU64(b, cookieMask)
	b = append(b, table, byte(cmd), 0, 0, 0, 0)
	b = appendU16(b, priority)
	b = appendU32(b, NoBuffer)
	b = appendU32(b, PortAny)
	b = appendU32(b, GroupAny)
	b = append(b, 0, 0, 0, 0)
	b = appendMatch(b, match)
	return finish(b, start)
}

// AppendFlowStatsRequest appends an OFPMP_FLOW multipart request for the flows of table
// (TableAll: all) matching match (nil: all) whose cookie matches cookie under cookieMask.
func AppendFlowStatsRequest(b []byte, xid uint32, table uint8, cookie, cookieMask uint64, match Match) []byte {
	start := len(b)
	b = appendHeader(b, TypeMultipartRequest, xid)
	b = appendU16(b, MultipartFlow)
	b = append(b, 0, 0, 0, 0, 0, 0) // flags, pad
	b = append(b, table, 0, 0, 0)
	b = appendU32(b, PortAny)
	b = appendU32(b, GroupAny)
	b = append(b, 0, 0, 0, 0)
	b = appendU64(b, cookie)
	b = appendU64(b, cookieMask)
	b = appendMatch(b, match)
	return finish(b, start)
}

// AppendBarrierRequest appends an OFPT_BARRIER_REQUEST.
func AppendBarrierRequest(b []byte, xid uint32) []byte {
	return finish(appendHeader(b, TypeBarrierRequest, xid), len(b))
}

// AppendFlowStatsReplies appends the OFPMP_FLOW replies for stats (for the fake switch): as
// many messages as needed to keep each under 65535 bytes, all but the last flagged
// MultipartReplyMore. An empty stats gives one empty reply.
func AppendFlowStatsReplies(b []byte, xid uint32, stats []FlowStats) []byte {
	const limit = 0xffff
	start := -1
	open := func() {
		start = len(b)
		b = appendHeader(b, TypeMultipartReply, xid)
		b = appendU16(b, MultipartFlow)
		b = append(b, 0, 0, 0, 0, 0, 0)
	}
	open()
	for i := range stats {
		entry := len(b)
		b = appendFlowStatsEntry(b, &stats[i])
		if len(b)-start > limit {
			// Move the entry to a new message; the current one gets the MORE flag.
			e := append([]byte(nil), b[entry:]...)
			b = b[:entry]
			binary.BigEndian.PutUint16(b[start+10:], MultipartReplyMore)
			finish(b, start)
			open()
			b = append(b, e...)
		}
	}
	return finish(b, start)
}

func appendFlowStatsEntry(b []byte, s *FlowStats) []byte {
	start := len(b)
	f := &s.Flow
	b = append(b, 0, 0, f.Table, 0)
	b = appendU32(b, s.DurationSec)
	b = appendU32(b, s.DurationNsec)
	b = appendU16(b, f.Priority)
	b = appendU16(b, f.IdleTimeout)
	b = appendU16(b, f.HardTimeout)
	b = appendU16(b, s.Flags)
	b = append(b, 0, 0, 0, 0)
	b = appendU64(b, f.Cookie)
	b = appendU64(b, s.PacketCount)
	b = appendU64(b, s.ByteCount)
	b = appendMatch(b, f.Match)
	b = appendInstructions(b, f)
	binary.BigEndian.PutUint16(b[start:], uint16(len(b)-start))
	return b
}
