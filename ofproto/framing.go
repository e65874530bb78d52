// Message framing: headers and the small session messages (hello, echo, set-config,
// multipart and role requests, errors), for the controller, ofsim and the bench tools.

package ofproto

import (
	"encoding/binary"
	"fmt"
)

// HeaderLen is the size of ofp_header.
const HeaderLen = headerLen

// HelloBitmapOF13 is a hello version bitmap offering only OpenFlow 1.3.
const HelloBitmapOF13 uint32 = 1 << Version

// helloElemVersionBitmap is OFPHET_VERSIONBITMAP.
const helloElemVersionBitmap = 1

// HeaderOf decodes the header of a whole message (as ReadMessage returns it: at least
// HeaderLen bytes).
func HeaderOf(msg []byte) Header {
	return Header{Version: msg[0], Type: MsgType(msg[1]), Length: binary.BigEndian.Uint16(msg[2:]),
		Xid: binary.BigEndian.Uint32(msg[4:])}
}

// SetXID overwrites the xid of the message that starts msg.
func SetXID(msg []byte, xid uint32) { binary.BigEndian.PutUint32(msg[4:8], xid) }

// Begin appends an OpenFlow 1.3 header of type t whose length Finish writes once the body
// is appended: start := len(b); b = Begin(b, t, xid); ...; b = Finish(b, start).
func Begin(b []byte, t MsgType, xid uint32) []byte { return appendHeader(b, t, xid) }

// Finish writes the length of the message that starts at start.
func Finish(b []byte, start int) []byte { return finish(b, start) }

// AppendEmpty appends a message without a body (features, barrier, get-config requests).
func AppendEmpty(b []byte, t MsgType, xid uint32) []byte {
	return finish(appendHeader(b, t, xid), len(b))
}

// AppendHello appends a HELLO with one version bitmap element. Its header carries 1.3
// when the bitmap offers it, 1.0 otherwise (an old peer, in tests).
func AppendHello(b []byte, xid, bitmap uint32) []byte {
	start := len(b)
	v := uint8(Version)
	if bitmap&HelloBitmapOF13 == 0 {
		v = 1
	}
	b = append(b, v, byte(TypeHello), 0, 0)
	b = appendU32(b, xid)
	b = append(b, 0, helloElemVersionBitmap, 0, 8)
	b = appendU32(b, bitmap)
	return finish(b, start)
}

// HelloOffers13 reports whether a peer's HELLO (whole message) offers OpenFlow 1.3: its
// version bitmap has bit 4, or, without a bitmap, its header version is at least 4. A
// malformed element is an ErrMalformed.
func HelloOffers13(msg []byte) (bool, error) {
	body := msg[headerLen:]
	for len(body) >= 4 {
		t := binary.BigEndian.Uint16(body[0:2])
		l := int(binary.BigEndian.Uint16(body[2:4]))
		if l < 4 || l > len(body) {
			return false, fmt.Errorf("%w: hello element length %d of %d bytes", ErrMalformed, l, len(body))
		}
		if t == helloElemVersionBitmap {
			words := body[4:l]
			if len(words) < 4 {
				return false, nil
			}
			return binary.BigEndian.Uint32(words[0:4])&HelloBitmapOF13 != 0, nil
		}
		padded := (l + 7) / 8 * 8 // elements are padded to 8 bytes
		if padded > len(body) {
			break
		}
		body = body[padded:]
	}
	return msg[0] >= Version, nil
}

// AppendEcho appends an echo request or reply (t) carrying data.
func AppendEcho(b []byte, t MsgType, xid uint32, data []byte) []byte {
	start := len(b)
	b = appendHeader(b, t, xid)
	b = append(b, data...)
	return finish(b, start)
}

// AppendSetConfig appends an OFPT_SET_CONFIG with normal fragment handling.
func AppendSetConfig(b []byte, xid uint32, missSendLen uint16) []byte {
	start := len(b)
	b = appendHeader(b, TypeSetConfig, xid)
	b = append(b, 0, 0) // flags: OFPC_FRAG_NORMAL
	b = appendU16(b, missSendLen)
	return finish(b, start)
}

// AppendMultipartRequest appends an OFPT_MULTIPART_REQUEST of mpType with body.
func AppendMultipartRequest(b []byte, xid uint32, mpType uint16, body []byte) []byte {
	start := len(b)
	b = appendHeader(b, TypeMultipartRequest, xid)
	b = appendU16(b, mpType)
	b = append(b, 0, 0, 0, 0, 0, 0)
	b = append(b, body...)
	return finish(b, start)
}

// AppendRoleRequest appends an OFPT_ROLE_REQUEST (role: OFPCR_ROLE_*).
func AppendRoleRequest(b []byte, xid, role uint32, generation uint64) []byte {
	start := len(b)
	b = appendHeader(b, TypeRoleRequest, xid)
	b = appendU32(b, role)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, generation)
	return finish(b, start)
}

// AppendError appends an OFPT_ERROR carrying up to 64 bytes of the offending message.
func AppendError(b []byte, xid uint32, typ, code uint16, offending []byte) []byte {
	start := len(b)
	b = appendHeader(b, TypeError, xid)
	b = appendU16(b, typ)
	b = appendU16(b, code)
	if len(offending) > 64 {
		offending = offending[:64]
	}
	b = append(b, offending...)
	return finish(b, start)
}

// Error codes the session layer sends.
const (
	ErrCodeHelloIncompatible uint16 = 0 // OFPHFC_INCOMPATIBLE
	ErrCodeBadVersion        uint16 = 0 // OFPBRC_BAD_VERSION
)
