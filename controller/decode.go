package controller

import (
	"fmt"

	"github.com/dvrflow/dvrflow/ofproto"
)

// decodePacketIn decodes an OFPT_PACKET_IN (OF1.3, one whole message) with ofproto's
// in-place reader: the result's Data aliases msg and its Session is not set.
func decodePacketIn(msg []byte) (PacketIn, error) {
	var ref ofproto.PacketInRef
	if err := ofproto.ReadPacketIn(msg, &ref); err != nil {
		return PacketIn{}, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return PacketIn{BufferID: ref.BufferID, TotalLen: ref.TotalLen, Reason: ref.Reason, Table: ref.Table,
		Cookie: ref.Cookie, InPort: ref.InPort, Data: ref.Data}, nil
}
