package ofproto

import "encoding/binary"

// MeterModCommand is ofp_meter_mod_command.
type MeterModCommand uint16

// Meter commands.
const (
	MeterAdd    MeterModCommand = 0
	MeterModify MeterModCommand = 1
	MeterDelete MeterModCommand = 2
)

// Meter flags (ofp_meter_flags).
const (
	MeterFlagKbps  uint16 = 1 << 0
	MeterFlagPktps uint16 = 1 << 1
	MeterFlagBurst uint16 = 1 << 2
	MeterFlagStats uint16 = 1 << 3
)

// Meter error codes (OFPET_METER_MOD_FAILED).
const (
	ErrCodeMeterExists  uint16 = 1 // OFPMMFC_METER_EXISTS
	ErrCodeUnknownMeter uint16 = 7 // OFPMMFC_UNKNOWN_METER
)

// MeterBandDrop is an OFPMBT_DROP band: packets over Rate (in the meter's unit) are dropped.
type MeterBandDrop struct {
	Rate, BurstSize uint32
}

// AppendMeterMod appends an OFPT_METER_MOD with drop bands.
func AppendMeterMod(b []byte, xid uint32, cmd MeterModCommand, flags uint16, meterID uint32, bands []MeterBandDrop) []byte {
	start := len(b)
	b = AppendHeader(b, Header{Version: Version, Type: TypeMeterMod, Xid: xid})
	b = binary.BigEndian.AppendUint16(b, uint16(cmd))
	b = binary.BigEndian.AppendUint16(b, flags)
	b = binary.BigEndian.AppendUint32(b, meterID)
	for _, band := range bands {
		b = binary.BigEndian.AppendUint16(b, 1) // OFPMBT_DROP
		b = binary.BigEndian.AppendUint16(b, 16)
		b = binary.BigEndian.AppendUint32(b, band.Rate)
		b = binary.BigEndian.AppendUint32(b, band.BurstSize)
		b = append(b, 0, 0, 0, 0)
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}
