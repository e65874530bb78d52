package ofsim

import (
	"encoding/binary"
	"fmt"
	"net"
)

// Tap is a net.Conn for Switch.Serve that lets a load generator see, and take away, the
// controller's messages before the switch handles them: every complete OpenFlow message
// read from the controller is passed to take, and those for which take returns true are
// not given to the switch (a generator counting thousands of PACKET_OUTs per second need not
// have the switch decode and keep them). Writes go to the connection unchanged, so
// Switch.SendPacketIn injects packet-ins as usual.
//
// take runs on the goroutine that reads the connection (the one running Serve); msg is only
// valid during the call.
type Tap struct {
	net.Conn
	// After, when set, is called (on the reading goroutine) once the messages of one read
	// from the connection have all been passed to take: a generator answering them can
	// send its answers to the batch in one write.
	After func()

	take func(msg []byte) bool

	in  []byte // bytes read from the connection and not yet framed
	out []byte // framed messages for the switch, not yet read by it
	off int    // read position in out
}

// maxMessage is the largest OpenFlow message (its length field is 16 bits).
const maxMessage = 1 << 16

// NewTap wraps c.
func NewTap(c net.Conn, take func(msg []byte) bool) *Tap {
	return &Tap{Conn: c, take: take, in: make([]byte, 0, 2*maxMessage), out: make([]byte, 0, 2*maxMessage)}
}

// Read returns the controller's messages that take did not keep.
func (t *Tap) Read(p []byte) (int, error) {
	for t.off == len(t.out) {
		t.out, t.off = t.out[:0], 0
		if len(t.in) == cap(t.in) {
			return 0, fmt.Errorf("ofsim tap: %d bytes without a complete message", len(t.in))
		}
		n, err := t.Conn.Read(t.in[len(t.in):cap(t.in)])
		t.in = t.in[:len(t.in)+n]
		rest, ferr := t.frame(t.in)
		// Keep the incomplete tail at the start of in.
		t.in = t.in[:copy(t.in, rest)]
		if ferr != nil {
			return 0, ferr
		}
		if t.After != nil && n > 0 {
			t.After()
		}
		if err != nil && t.off == len(t.out) {
			return 0, err
		}
	}
	n := copy(p, t.out[t.off:])
	t.off += n
	return n, nil
}

// frame passes every complete message of b to take, appends the ones it does not keep to
// out, and returns the incomplete tail.
func (t *Tap) frame(b []byte) ([]byte, error) {
	for len(b) >= 8 {
		l := int(binary.BigEndian.Uint16(b[2:]))
		if l < 8 {
			return nil, fmt.Errorf("ofsim tap: message length %d", l)
		}
		if len(b) < l {
			break
		}
		if !t.take(b[:l]) {
			t.out = append(t.out, b[:l]...)
		}
		b = b[l:]
	}
	return b, nil
}

// AppendPacketIn appends the PACKET_IN that SendPacketIn sends (no buffer, reason
// OFPR_ACTION, in_port in the match), for generators that build their messages once and
// send them with SendRaw.
func AppendPacketIn(b []byte, table uint8, cookie uint64, inPort uint32, data []byte) []byte {
	return appendPacketIn(b, table, cookie, inPort, data)
}
