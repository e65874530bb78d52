package controller

import (
	"encoding/binary"
	"fmt"

	"github.com/dvrflow/dvrflow/ofproto"
)

// headerLen is the size of ofp_header.
const headerLen = 8

// msgHeader is a decoded ofp_header.
type msgHeader struct {
	Version uint8
	Type    ofproto.MsgType
	Length  uint16
	XID     uint32
}

func parseHeader(b []byte) msgHeader {
	return msgHeader{
		Version: b[0],
		Type:    ofproto.MsgType(b[1]),
		Length:  binary.BigEndian.Uint16(b[2:4]),
		XID:     binary.BigEndian.Uint32(b[4:8]),
	}
}

// setXID overwrites the xid of the message that starts msg.
func setXID(msg []byte, xid uint32) { binary.BigEndian.PutUint32(msg[4:8], xid) }

// appendHeader appends an ofp_header; finish patches its length.
func appendHeader(b []byte, t ofproto.MsgType, xid uint32) []byte {
	b = append(b, ofproto.Version, byte(t), 0, 0)
	return binary.BigEndian.AppendUint32(b, xid)
}

func finish(b []byte, start int) []byte {
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

// helloBitmapOF13 is a hello element version bitmap offering only OpenFlow 1.3 (bit 4).
const helloBitmapOF13 = 1 << ofproto.Version

func appendHello(b []byte, xid uint32) []byte {
	start := len(b)
	b = appendHeader(b, ofproto.TypeHello, xid)
	b = append(b, 0, 1, 0, 8) // OFPHET_VERSIONBITMAP, length 8
	b = binary.BigEndian.AppendUint32(b, helloBitmapOF13)
	return finish(b, start)
}

func appendEmpty(b []byte, t ofproto.MsgType, xid uint32) []byte {
	start := len(b)
	return finish(appendHeader(b, t, xid), start)
}

func appendEcho(b []byte, t ofproto.MsgType, xid uint32, data []byte) []byte {
	start := len(b)
	b = appendHeader(b, t, xid)
	b = append(b, data...)
	return finish(b, start)
}

func appendSetConfig(b []byte, xid uint32, missSendLen uint16) []byte {
	start := len(b)
	b = appendHeader(b, ofproto.TypeSetConfig, xid)
	b = append(b, 0, 0) // flags: OFPC_FRAG_NORMAL
	b = binary.BigEndian.AppendUint16(b, missSendLen)
	return finish(b, start)
}

func appendMultipartRequest(b []byte, xid uint32, mpType uint16, body []byte) []byte {
	start := len(b)
	b = appendHeader(b, ofproto.TypeMultipartRequest, xid)
	b = binary.BigEndian.AppendUint16(b, mpType)
	b = append(b, 0, 0, 0, 0, 0, 0)
	b = append(b, body...)
	return finish(b, start)
}

func appendRoleRequest(b []byte, xid uint32, role Role, generation uint64) []byte {
	start := len(b)
	b = appendHeader(b, ofproto.TypeRoleRequest, xid)
	b = binary.BigEndian.AppendUint32(b, uint32(role))
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, generation)
	return finish(b, start)
}

// appendError appends an OFPT_ERROR carrying up to 64 bytes of the offending message.
func appendError(b []byte, xid uint32, typ, code uint16, offending []byte) []byte {
	start := len(b)
	b = appendHeader(b, ofproto.TypeError, xid)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, code)
	if len(offending) > 64 {
		offending = offending[:64]
	}
	b = append(b, offending...)
	return finish(b, start)
}

// OpenFlow error types and codes used by the session layer.
const (
	errTypeHelloFailed    uint16 = 0
	errCodeIncompatible   uint16 = 0
	errTypeBadRequest     uint16 = 1
	errCodeBadVersion     uint16 = 0
	helloElemVersionBmap  uint16 = 1
	multipartReplyMoreBit uint16 = ofproto.MultipartReplyMore
)

// helloOffers13 reports whether a peer's HELLO (whole message) offers OpenFlow 1.3: its
// version bitmap has bit 4, or, without a bitmap, its header version is at least 4.
func helloOffers13(msg []byte) (bool, error) {
	h := parseHeader(msg)
	body := msg[headerLen:]
	for len(body) >= 4 {
		t := binary.BigEndian.Uint16(body[0:2])
		l := int(binary.BigEndian.Uint16(body[2:4]))
		if l < 4 || l > len(body) {
			return false, fmt.Errorf("%w: hello element length %d of %d bytes", errMalformed, l, len(body))
		}
		if t == helloElemVersionBmap {
			words := body[4:l]
			if len(words) < 4 {
				return false, nil
			}
			return binary.BigEndian.Uint32(words[0:4])&helloBitmapOF13 != 0, nil
		}
		padded := (l + 7) / 8 * 8 // elements are padded to 8 bytes
		if padded > len(body) {
			break
		}
		body = body[padded:]
	}
	return h.Version >= ofproto.Version, nil
}
