// Package ofproto is dvrflow's OpenFlow 1.3 mechanism layer: the flow model (Flow, Match,
// Action), its canonical text form as printed by `ovs-ofctl -O OpenFlow13 dump-flows`, and the
// wire encoders and decoders that github.com/netrack/openflow lacks or does slowly: flow-mods,
// flow-stats requests and replies, Nicira extensions (tun_dst, reg_move, registers) and ONF
// bundles. It knows nothing about DVR or switch sessions.
package ofproto

// Version is the only OpenFlow version spoken: 1.3.
const Version = 4

// MsgType is an OpenFlow 1.3 message type (ofp_header.type).
type MsgType uint8

// OpenFlow 1.3 message types.
const (
	TypeHello                 MsgType = 0
	TypeError                 MsgType = 1
	TypeEchoRequest           MsgType = 2
	TypeEchoReply             MsgType = 3
	TypeExperimenter          MsgType = 4
	TypeFeaturesRequest       MsgType = 5
	TypeFeaturesReply         MsgType = 6
	TypeGetConfigRequest      MsgType = 7
	TypeGetConfigReply        MsgType = 8
	TypeSetConfig             MsgType = 9
	TypePacketIn              MsgType = 10
	TypeFlowRemoved           MsgType = 11
	TypePortStatus            MsgType = 12
	TypePacketOut             MsgType = 13
	TypeFlowMod               MsgType = 14
	TypeGroupMod              MsgType = 15
	TypePortMod               MsgType = 16
	TypeTableMod              MsgType = 17
	TypeMultipartRequest      MsgType = 18
	TypeMultipartReply        MsgType = 19
	TypeBarrierRequest        MsgType = 20
	TypeBarrierReply          MsgType = 21
	TypeQueueGetConfigRequest MsgType = 22
	TypeQueueGetConfigReply   MsgType = 23
	TypeRoleRequest           MsgType = 24
	TypeRoleReply             MsgType = 25
	TypeGetAsyncRequest       MsgType = 26
	TypeGetAsyncReply         MsgType = 27
	TypeSetAsync              MsgType = 28
	TypeMeterMod              MsgType = 29
)

var msgTypeNames = [...]string{
	"HELLO", "ERROR", "ECHO_REQUEST", "ECHO_REPLY", "EXPERIMENTER", "FEATURES_REQUEST",
	"FEATURES_REPLY", "GET_CONFIG_REQUEST", "GET_CONFIG_REPLY", "SET_CONFIG", "PACKET_IN",
	"FLOW_REMOVED", "PORT_STATUS", "PACKET_OUT", "FLOW_MOD", "GROUP_MOD", "PORT_MOD",
	"TABLE_MOD", "MULTIPART_REQUEST", "MULTIPART_REPLY", "BARRIER_REQUEST", "BARRIER_REPLY",
	"QUEUE_GET_CONFIG_REQUEST", "QUEUE_GET_CONFIG_REPLY", "ROLE_REQUEST", "ROLE_REPLY",
	"GET_ASYNC_REQUEST", "GET_ASYNC_REPLY", "SET_ASYNC", "METER_MOD",
}

// String returns the OpenFlow name of the type, e.g. "FLOW_MOD".
func (t MsgType) String() string {
	if int(t) < len(msgTypeNames) {
		return msgTypeNames[t]
	}
	return "TYPE_" + itoa(uint64(t))
}

// Multipart types used by dvrflow (ofp_multipart_type).
const (
	MultipartDesc     uint16 = 0
	MultipartFlow     uint16 = 1
	MultipartTable    uint16 = 3
	MultipartPortDesc uint16 = 13
)

// Multipart flags.
const (
	// MultipartReplyMore (OFPMPF_REPLY_MORE) says more replies follow for the same xid.
	MultipartReplyMore uint16 = 1
	// MultipartRequestMore (OFPMPF_REQ_MORE) says more requests follow.
	MultipartRequestMore uint16 = 1
)

// Reserved port numbers (ofp_port_no).
const (
	PortMax        uint32 = 0xffffff00
	PortInPort     uint32 = 0xfffffff8
	PortTable      uint32 = 0xfffffff9
	PortNormal     uint32 = 0xfffffffa
	PortFlood      uint32 = 0xfffffffb
	PortAll        uint32 = 0xfffffffc
	PortController uint32 = 0xfffffffd
	PortLocal      uint32 = 0xfffffffe
	PortAny        uint32 = 0xffffffff
)

// GroupAny is OFPG_ANY, the wildcard group for deletes and stats.
const GroupAny uint32 = 0xffffffff

// NoBuffer is OFP_NO_BUFFER.
const NoBuffer uint32 = 0xffffffff

// TableAll is OFPTT_ALL, every table, for deletes and stats.
const TableAll uint8 = 0xff

// ControllerMaxLenNoBuffer is OFPCML_NO_BUFFER: send the whole packet to the controller.
const ControllerMaxLenNoBuffer uint16 = 0xffff

// Flow-mod flags (ofp_flow_mod_flags).
const (
	FlagSendFlowRem  uint16 = 1 << 0
	FlagCheckOverlap uint16 = 1 << 1
	FlagResetCounts  uint16 = 1 << 2
	FlagNoPktCounts  uint16 = 1 << 3
	FlagNoByteCounts uint16 = 1 << 4
)

// itoa formats n in decimal without fmt (used on paths that must not allocate much).
func itoa(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}
