package ofproto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Header is ofp_header.
type Header struct {
	Version uint8
	Type    MsgType
	Length  uint16
	Xid     uint32
}

// Errors returned by ReadMessage and the decoders; test with errors.Is.
var (
	ErrBadVersion = errors.New("unsupported OpenFlow version")
	ErrBadLength  = errors.New("bad message length")
	ErrTruncated  = errors.New("truncated")
	ErrMalformed  = errors.New("malformed")
)

// ParseHeader decodes the first 8 bytes of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < headerLen {
		return Header{}, fmt.Errorf("header of %d bytes: %w", len(b), ErrTruncated)
	}
	return Header{
		Version: b[0],
		Type:    MsgType(b[1]),
		Length:  binary.BigEndian.Uint16(b[2:]),
		Xid:     binary.BigEndian.Uint32(b[4:]),
	}, nil
}

// AppendHeader appends an ofp_header.
func AppendHeader(b []byte, h Header) []byte {
	b = append(b, h.Version, byte(h.Type))
	b = appendU16(b, h.Length)
	return appendU32(b, h.Xid)
}

// ReadMessage reads one whole OpenFlow message from r. It returns the header and the message
// (header included), stored in buf when it has the capacity (so the returned slice is only
// valid until buf is reused), or in a new slice otherwise. A header of another version is
// accepted only for HELLO and ERROR (so that a session can answer an old peer with
// HELLO_FAILED); any other version is an ErrBadVersion. A length below 8 is ErrBadLength and
// a message cut short by EOF is ErrTruncated (wrapping io.ErrUnexpectedEOF). An EOF before
// the first byte is returned as io.EOF.
func ReadMessage(r *bufio.Reader, buf []byte) (Header, []byte, error) {
	hb, err := r.Peek(headerLen)
	if err != nil {
		if errors.Is(err, io.EOF) && len(hb) == 0 {
			return Header{}, nil, io.EOF
		}
		if errors.Is(err, io.EOF) {
			return Header{}, nil, fmt.Errorf("read header: %w: %w", ErrTruncated, io.ErrUnexpectedEOF)
		}
		return Header{}, nil, fmt.Errorf("read header: %w", err)
	}
	h, _ := ParseHeader(hb)
	if h.Version != Version && h.Type != TypeHello && h.Type != TypeError {
		return h, nil, fmt.Errorf("%s xid %d: version 0x%02x: %w", h.Type, h.Xid, h.Version, ErrBadVersion)
	}
	if h.Length < headerLen {
		return h, nil, fmt.Errorf("%s xid %d: length %d < 8: %w", h.Type, h.Xid, h.Length, ErrBadLength)
	}
	n := int(h.Length)
	var msg []byte
	if cap(buf) >= n {
		msg = buf[:n]
	} else {
		msg = make([]byte, n)
	}
	if _, err := io.ReadFull(r, msg); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return h, nil, fmt.Errorf("%s xid %d: body of %d bytes: %w: %w", h.Type, h.Xid, n, ErrTruncated, io.ErrUnexpectedEOF)
		}
		return h, nil, fmt.Errorf("%s xid %d: read body: %w", h.Type, h.Xid, err)
	}
	return h, msg, nil
}
