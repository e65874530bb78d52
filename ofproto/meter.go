package ofproto

import (
	"encoding/binary"
	"fmt"
)

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
	ErrCodeUnknownMeter uint16 = 3 // OFPMMFC_UNKNOWN_METER
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

// MeterAll is OFPM_ALL: every meter, in requests.
const MeterAll uint32 = 0xffffffff

// MultipartMeterConfig is OFPMP_METER_CONFIG.
const MultipartMeterConfig uint16 = 10

// MeterConfig is one meter of an OFPMP_METER_CONFIG reply.
type MeterConfig struct {
	MeterID uint32
	Flags   uint16
	Bands   []MeterBandDrop // its drop bands
	Other   int             // bands of other types
}

// AppendMeterConfigRequest appends an OFPMP_METER_CONFIG request for meterID (MeterAll
// for every meter: a switch refuses a request for one it does not have).
func AppendMeterConfigRequest(b []byte, xid, meterID uint32) []byte {
	start := len(b)
	b = appendHeader(b, TypeMultipartRequest, xid)
	b = appendU16(b, MultipartMeterConfig)
	b = append(b, 0, 0, 0, 0, 0, 0) // flags, pad
	b = appendU32(b, meterID)
	b = append(b, 0, 0, 0, 0)
	return finish(b, start)
}

// DecodeMeterConfigReply decodes the body of one OFPMP_METER_CONFIG reply.
func DecodeMeterConfigReply(body []byte) ([]MeterConfig, error) {
	var out []MeterConfig
	for off := 0; off < len(body); {
		if len(body)-off < 8 {
			return nil, fmt.Errorf("meter config at %d: %d bytes left, want at least 8", off, len(body)-off)
		}
		n := int(binary.BigEndian.Uint16(body[off:]))
		if n < 8 || off+n > len(body) {
			return nil, fmt.Errorf("meter config at %d: length %d of %d bytes", off, n, len(body)-off)
		}
		mc := MeterConfig{Flags: binary.BigEndian.Uint16(body[off+2:]), MeterID: binary.BigEndian.Uint32(body[off+4:])}
		for bo := off + 8; bo < off+n; {
			if off+n-bo < 4 {
				return nil, fmt.Errorf("meter %d: band at %d: truncated", mc.MeterID, bo)
			}
			typ, bl := binary.BigEndian.Uint16(body[bo:]), int(binary.BigEndian.Uint16(body[bo+2:]))
			if bl < 12 || bo+bl > off+n {
				return nil, fmt.Errorf("meter %d: band at %d: length %d", mc.MeterID, bo, bl)
			}
			if typ == 1 { // OFPMBT_DROP
				mc.Bands = append(mc.Bands, MeterBandDrop{Rate: binary.BigEndian.Uint32(body[bo+4:]), BurstSize: binary.BigEndian.Uint32(body[bo+8:])})
			} else {
				mc.Other++
			}
			bo += bl
		}
		out = append(out, mc)
		off += n
	}
	return out, nil
}
