package controller

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/ofproto"
)

// seedMessages are well-formed switch messages the fuzzer mutates.
func seedMessages() [][]byte {
	port := make([]byte, 64)
	binary.BigEndian.PutUint32(port, 3)
	copy(port[16:], "tap3")
	portStatus := append(ofproto.Begin(nil, ofproto.TypePortStatus, 0), 0, 0, 0, 0, 0, 0, 0, 0)
	portStatus = ofproto.Finish(append(portStatus, port...), 0)
	pin := ofproto.Begin(nil, ofproto.TypePacketIn, 0)
	pin = binary.BigEndian.AppendUint32(pin, ofproto.NoBuffer)
	pin = append(pin, 0, 14, 1, 5)
	pin = binary.BigEndian.AppendUint64(pin, 0xabc)
	pin = append(pin, 0, 1, 0, 12, 0x80, 0, 0, 4, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0)
	pin = ofproto.Finish(append(pin, make([]byte, 14)...), 0)
	mp := ofproto.Begin(nil, ofproto.TypeMultipartReply, 20)
	mp = ofproto.Finish(append(mp, 0, 1, 0, 1, 0, 0, 0, 0), 0)
	errMsg := ofproto.Finish(append(ofproto.Begin(nil, ofproto.TypeError, 21), 0, 5, 0, 1, 4, 14), 0)
	return [][]byte{
		ofproto.AppendEcho(nil, ofproto.TypeEchoRequest, 7, []byte("hi")),
		portStatus, pin, mp, errMsg,
		ofproto.AppendEmpty(nil, ofproto.TypeBarrierReply, 22),
		ofproto.AppendRoleRequest(nil, 23, uint32(RoleMaster), 1),
	}
}

// FuzzSessionMessages feeds arbitrary bytes to a session's reader: whatever a switch sends,
// the session either handles it or closes with an error; it never panics or hangs.
func FuzzSessionMessages(f *testing.F) {
	seeds := seedMessages()
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add(bytes.Join(seeds, nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		srv := NewServer(zap.NewNop(), Config{})
		srv.HandlePacketIn(5, 0, 0, func(*PacketIn) {})
		a, b := net.Pipe()
		go func() { _, _ = io.Copy(io.Discard, b) }()
		defer b.Close()
		s := srv.newSession(zap.NewNop(), a, 1, 1)
		s.pending[20] = &pending{replyType: ofproto.TypeMultipartReply, multipart: true, done: make(chan reply, 1)}
		s.pending[22] = &pending{replyType: ofproto.TypeBarrierReply, done: make(chan reply, 1)}
		s.wg.Add(2)
		go s.writeLoop()
		s.readLoop(bufio.NewReader(bytes.NewReader(data)))
		s.wg.Wait()
		if err := s.Err(); err == nil || strings.Contains(err.Error(), "panic") {
			t.Fatalf("session ended with %v", err)
		}
	})
}

func FuzzHelloAndPorts(f *testing.F) {
	f.Add(ofproto.AppendHello(nil, 1, ofproto.HelloBitmapOF13))
	f.Add(ofproto.Finish(append(ofproto.Begin(nil, ofproto.TypeHello, 1), 0, 1, 0, 3), 0))
	f.Add(make([]byte, 8+64))
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) < 8 {
			return
		}
		_, _ = ofproto.HelloOffers13(msg)
		ports, err := decodePorts(msg[8:])
		if err == nil && len(ports) != len(msg[8:])/64 {
			t.Fatalf("%d ports from %d bytes", len(ports), len(msg)-8)
		}
		_, _ = decodePacketIn(msg)
	})
}
