package ofproto

import (
	"encoding/binary"
	"testing"
)

func TestMeterConfigReply(t *testing.T) {
	// One meter: flags pktps|burst|stats, ID 1, a drop band 1000/s burst 200 and a
	// 12-byte band of another type.
	body := []byte{0, 0} // length, set below
	body = binary.BigEndian.AppendUint16(body, MeterFlagPktps|MeterFlagBurst|MeterFlagStats)
	body = binary.BigEndian.AppendUint32(body, 1)
	body = append(body, 0, 1, 0, 16, 0, 0, 3, 0xe8, 0, 0, 0, 200, 0, 0, 0, 0)
	body = append(body, 0xff, 0xff, 0, 12, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(body, uint16(len(body)))
	mcs, err := DecodeMeterConfigReply(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(mcs) != 1 || mcs[0].MeterID != 1 || mcs[0].Flags != MeterFlagPktps|MeterFlagBurst|MeterFlagStats ||
		len(mcs[0].Bands) != 1 || mcs[0].Bands[0] != (MeterBandDrop{Rate: 1000, BurstSize: 200}) || mcs[0].Other != 1 {
		t.Fatalf("decoded %+v", mcs)
	}
	// Truncated or lying lengths are errors, never a panic.
	for n := range len(body) {
		if _, err := DecodeMeterConfigReply(body[:n]); err == nil && n != 0 {
			t.Errorf("%d of %d bytes decoded without error", n, len(body))
		}
	}
	bad := append([]byte(nil), body...)
	binary.BigEndian.PutUint16(bad[10:], 2) // a band of length 2
	if _, err := DecodeMeterConfigReply(bad); err == nil {
		t.Error("a 2-byte band decoded")
	}
	if req := AppendMeterConfigRequest(nil, 7, MeterAll); len(req) != 24 || binary.BigEndian.Uint16(req[8:]) != MultipartMeterConfig ||
		binary.BigEndian.Uint32(req[16:]) != MeterAll {
		t.Errorf("request %x", req)
	}
}
