package ofproto

import (
	"encoding/binary"
	"fmt"
)

// ONF bundle extension for OpenFlow 1.3 (EXT-230), as Open vSwitch implements it: an
// OFPT_EXPERIMENTER message with experimenter ExperimenterONF and exp_type 2300 (bundle
// control) or 2301 (bundle add).
const (
	onfBundleControl uint32 = 2300
	onfBundleAdd     uint32 = 2301
)

// BundleCtrlType is ofp_bundle_ctrl_type.
type BundleCtrlType uint16

// Bundle control types.
const (
	BundleOpenRequest    BundleCtrlType = 0
	BundleOpenReply      BundleCtrlType = 1
	BundleCloseRequest   BundleCtrlType = 2
	BundleCloseReply     BundleCtrlType = 3
	BundleCommitRequest  BundleCtrlType = 4
	BundleCommitReply    BundleCtrlType = 5
	BundleDiscardRequest BundleCtrlType = 6
	BundleDiscardReply   BundleCtrlType = 7
)

// String returns the OpenFlow name ("OPEN_REQUEST", ...).
func (t BundleCtrlType) String() string {
	names := [...]string{"OPEN_REQUEST", "OPEN_REPLY", "CLOSE_REQUEST", "CLOSE_REPLY",
		"COMMIT_REQUEST", "COMMIT_REPLY", "DISCARD_REQUEST", "DISCARD_REPLY"}
	if int(t) < len(names) {
		return names[t]
	}
	return "BUNDLE_CTRL_" + itoa(uint64(t))
}

// Bundle flags (ofp_bundle_flags).
const (
	BundleAtomic  uint16 = 1
	BundleOrdered uint16 = 2
)

// BundleControl is a decoded bundle control message (request or reply).
type BundleControl struct {
	Xid      uint32
	BundleID uint32
	Type     BundleCtrlType
	Flags    uint16
}

// AppendBundleControl appends an ONF bundle control message.
func AppendBundleControl(b []byte, xid, bundleID uint32, ctlType BundleCtrlType, flags uint16) []byte {
	start := len(b)
	b = appendHeader(b, TypeExperimenter, xid)
	b = appendU32(b, ExperimenterONF)
	b = appendU32(b, onfBundleControl)
	b = appendU32(b, bundleID)
	b = appendU16(b, uint16(ctlType))
	b = appendU16(b, flags)
	return finish(b, start)
}

// AppendBundleAdd appends an ONF bundle add message carrying innerMsg, a complete OpenFlow
// message (typically from AppendFlowMod) whose xid should equal xid, as the specification
// requires. The result must fit in 65535 bytes.
func AppendBundleAdd(b []byte, xid, bundleID uint32, flags uint16, innerMsg []byte) []byte {
	start := len(b)
	b = appendHeader(b, TypeExperimenter, xid)
	b = appendU32(b, ExperimenterONF)
	b = appendU32(b, onfBundleAdd)
	b = appendU32(b, bundleID)
	b = append(b, 0, 0)
	b = appendU16(b, flags)
	b = append(b, innerMsg...)
	return finish(b, start)
}

// AppendBundleAddFlowMod is AppendBundleAdd of AppendFlowMod(xid, cmd, f, fmFlags) without
// an intermediate buffer: allocation-free when b has the capacity.
func AppendBundleAddFlowMod(b []byte, xid, bundleID uint32, flags uint16, cmd FlowModCommand, f *Flow, fmFlags uint16) []byte {
	start := len(b)
	b = appendHeader(b, TypeExperimenter, xid)
	b = appendU32(b, ExperimenterONF)
	b = appendU32(b, onfBundleAdd)
	b = appendU32(b, bundleID)
	b = append(b, 0, 0)
	b = appendU16(b, flags)
	b = AppendFlowMod(b, xid, cmd, f, fmFlags)
	return finish(b, start)
}

// IsBundleControl reports whether msg is an ONF bundle control message.
func IsBundleControl(msg []byte) bool {
	return len(msg) >= 16 && msg[1] == byte(TypeExperimenter) &&
		binary.BigEndian.Uint32(msg[8:]) == ExperimenterONF &&
		binary.BigEndian.Uint32(msg[12:]) == onfBundleControl
}

// DecodeBundleControl decodes an ONF bundle control message (header included), e.g. the
// switch's reply to an open or commit request. Properties are ignored.
func DecodeBundleControl(msg []byte) (BundleControl, error) {
	h, err := ParseHeader(msg)
	if err != nil {
		return BundleControl{}, fmt.Errorf("bundle control: %w", err)
	}
	if int(h.Length) != len(msg) || len(msg) < 24 {
		return BundleControl{}, fmt.Errorf("bundle control: header length %d, message %d bytes: %w", h.Length, len(msg), ErrBadLength)
	}
	if !IsBundleControl(msg) || h.Version != Version {
		return BundleControl{}, fmt.Errorf("bundle control: not an ONF bundle control message: %w", ErrMalformed)
	}
	return BundleControl{
		Xid:      h.Xid,
		BundleID: binary.BigEndian.Uint32(msg[16:]),
		Type:     BundleCtrlType(binary.BigEndian.Uint16(msg[20:])),
		Flags:    binary.BigEndian.Uint16(msg[22:]),
	}, nil
}

// BundleAdd is a decoded bundle add message.
type BundleAdd struct {
	Xid      uint32
	BundleID uint32
	Flags    uint16
	Inner    []byte // the embedded message, header included (aliases the input)
}

// DecodeBundleAdd decodes an ONF bundle add message (for the fake switch).
func DecodeBundleAdd(msg []byte) (BundleAdd, error) {
	h, err := ParseHeader(msg)
	if err != nil {
		return BundleAdd{}, fmt.Errorf("bundle add: %w", err)
	}
	if int(h.Length) != len(msg) || len(msg) < 24+headerLen {
		return BundleAdd{}, fmt.Errorf("bundle add: header length %d, message %d bytes: %w", h.Length, len(msg), ErrBadLength)
	}
	if h.Version != Version || h.Type != TypeExperimenter || binary.BigEndian.Uint32(msg[8:]) != ExperimenterONF ||
		binary.BigEndian.Uint32(msg[12:]) != onfBundleAdd {
		return BundleAdd{}, fmt.Errorf("bundle add: not an ONF bundle add message: %w", ErrMalformed)
	}
	inner := msg[24:]
	ih, _ := ParseHeader(inner)
	if int(ih.Length) < headerLen || int(ih.Length) > len(inner) {
		return BundleAdd{}, fmt.Errorf("bundle add: inner length %d of %d: %w", ih.Length, len(inner), ErrBadLength)
	}
	return BundleAdd{
		Xid:      h.Xid,
		BundleID: binary.BigEndian.Uint32(msg[16:]),
		Flags:    binary.BigEndian.Uint16(msg[22:]),
		Inner:    inner[:ih.Length],
	}, nil
}
