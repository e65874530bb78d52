package ofproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func TestFraming(t *testing.T) {
	hello := AppendHello(nil, 9, HelloBitmapOF13)
	if h := HeaderOf(hello); h.Version != Version || h.Type != TypeHello || h.Xid != 9 || int(h.Length) != len(hello) {
		t.Fatalf("hello header %+v of %d bytes", h, len(hello))
	}
	if ok, err := HelloOffers13(hello); !ok || err != nil {
		t.Fatalf("our hello: %v %v", ok, err)
	}
	old := AppendHello(nil, 1, 1<<1) // OpenFlow 1.0 only
	if ok, err := HelloOffers13(old); ok || err != nil || old[0] != 1 {
		t.Fatalf("1.0 hello: %v %v, version %d", ok, err, old[0])
	}
	bare := AppendEmpty(nil, TypeHello, 1) // no elements: the header version decides
	if ok, _ := HelloOffers13(bare); !ok {
		t.Fatal("a bare 1.3 hello does not offer 1.3")
	}
	bad := append(AppendEmpty(nil, TypeHello, 1), 0, 1, 0, 2)
	if _, err := HelloOffers13(bad); !errors.Is(err, ErrMalformed) {
		t.Fatalf("element of length 2: %v", err)
	}
	off := bytes.Repeat([]byte{7}, 100)
	e := AppendError(nil, 3, ErrTypeBadRequest, ErrCodeBadVersion, off)
	if len(e) != HeaderLen+4+64 || binary.BigEndian.Uint16(e[2:]) != uint16(len(e)) {
		t.Fatalf("error of %d bytes, length field %d", len(e), binary.BigEndian.Uint16(e[2:]))
	}
	r := AppendRoleRequest(nil, 4, 2, 77)
	if HeaderOf(r).Type != TypeRoleRequest || len(r) != 24 || binary.BigEndian.Uint32(r[8:]) != 2 || binary.BigEndian.Uint64(r[16:]) != 77 {
		t.Fatalf("role request %x", r)
	}
	m := AppendMultipartRequest([]byte{0xaa}, 5, MultipartPortDesc, nil) // appended after other bytes
	if len(m) != 1+16 || binary.BigEndian.Uint16(m[3:]) != 16 || binary.BigEndian.Uint16(m[9:]) != MultipartPortDesc {
		t.Fatalf("multipart request %x", m)
	}
	SetXID(m[1:], 42)
	if HeaderOf(m[1:]).Xid != 42 {
		t.Fatal("SetXID")
	}
}
