// Package ofsim is a fake OpenFlow 1.3 switch for tests and simulation. It dials the
// controller like Open vSwitch does, speaks OF1.3 over a real socket (hello, features, port
// description, echo, barrier, role, flow-mods, ONF bundles, flow stats with REPLY_MORE,
// packet-in, port status), stores flows with OVS's add/modify/delete semantics (strict and
// non-strict, cookie masks, out_port), refuses bad messages with the errors OVS sends, and
// can execute a packet through its tables (Execute).
//
// It is kept compact so that thousands can run in one process: flows are stored encoded,
// there is no goroutine per flow and exactly one goroutine per connection (the one that
// called Run).
package ofsim

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/ofproto"
)

// Port is a switch port.
type Port struct {
	No     uint32
	Name   string
	HWAddr net.HardwareAddr
}

// Config configures a Switch.
type Config struct {
	DPID      uint64
	NumTables uint8 // default 254, like OVS
	Ports     []Port
	// HelloBitmap is the version bitmap offered in HELLO (default 1<<4: OpenFlow 1.3 only).
	HelloBitmap uint32
	// FlowModRate limits flow-mod processing (flow-mods per second, 0: unlimited), to mimic
	// OVS's ingest.
	FlowModRate float64
	// BundleFlowModRate limits the flow-mods of committed bundles (per second; 0: as
	// FlowModRate). OVS takes bundled flow-mods about six times faster than single ones.
	BundleFlowModRate float64
	// Hook, when set, is told what the switch receives (see Event). It runs on the
	// connection's goroutine and must not block.
	Hook func(Event)
	// NoBundles refuses ONF bundle messages (OFPBRC_BAD_EXPERIMENTER), like a switch without
	// the extension.
	NoBundles bool
	// MaxFlows refuses adds beyond this many flows with OFPFMFC_TABLE_FULL (0: no limit).
	MaxFlows int
}

// Counts counts flow-mods received (inside bundles too), by command.
type Counts struct {
	Add, Modify, ModifyStrict, Delete, DeleteStrict uint64
	Bundles                                         uint64 // bundles committed
	Errors                                          uint64 // errors sent
	EchoReplies                                     uint64 // echo replies received
	EchoRequests                                    uint64 // echo requests received (and answered)
	Barriers                                        uint64 // barrier requests answered
	FlowStatsRequests                               uint64 // flow stats (dump) requests answered
	Connections                                     uint64 // sessions served
}

// Total is the number of flow-mods received.
func (c Counts) Total() uint64 {
	return c.Add + c.Modify + c.ModifyStrict + c.Delete + c.DeleteStrict
}

type bundle struct {
	flags  uint16
	closed bool
	msgs   [][]byte // inner flow-mods
}

// PacketOut is a packet-out received from the controller.
type PacketOut struct {
	InPort  uint32
	Actions []ofproto.Action
	Data    []byte
}

// Switch is one fake switch. Its flows survive reconnections, like OVS's.
type Switch struct {
	log *zap.Logger
	cfg Config

	mu          sync.Mutex
	flows       flowTable
	ports       map[uint32]Port
	conn        net.Conn
	wmu         sync.Mutex // serialises writes to conn
	bundles     map[uint32]*bundle
	counts      Counts
	muted       bool
	missSendLen uint16
	role        uint32
	generation  uint64
	genSet      bool
	packetOuts  []PacketOut
	nextFM      time.Time         // flow-mod rate limiter
	meters      map[uint32][]byte // meter ID -> its last METER_MOD body (flags and bands)
}

// New returns a disconnected switch.
func New(log *zap.Logger, cfg Config) *Switch {
	if cfg.NumTables == 0 {
		cfg.NumTables = 254
	}
	if cfg.HelloBitmap == 0 {
		cfg.HelloBitmap = 1 << ofproto.Version
	}
	s := &Switch{
		log:    log.Named("ofsim").With(zap.String("dpid", ofproto.DPID(cfg.DPID).String())),
		cfg:    cfg,
		flows:  flowTable{},
		ports:  map[uint32]Port{},
		meters: map[uint32][]byte{},
	}
	for _, p := range cfg.Ports {
		s.ports[p.No] = p
	}
	return s
}

// DPID returns the switch's datapath id.
func (s *Switch) DPID() uint64 { return s.cfg.DPID }

// Run dials the controller at addr and serves the connection until it ends or ctx is done.
// It returns nil when ctx ended it.
func (s *Switch) Run(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("ofsim %016x: dial %s: %w", s.cfg.DPID, addr, err)
	}
	return s.Serve(ctx, c)
}

// Serve runs the switch side of an established connection.
func (s *Switch) Serve(ctx context.Context, c net.Conn) error {
	s.mu.Lock()
	s.conn = c
	s.bundles = map[uint32]*bundle{}
	s.counts.Connections++
	s.mu.Unlock()
	s.emit(EventConnected, 0)
	defer s.emit(EventDisconnected, 0)
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	defer func() {
		s.mu.Lock()
		if s.conn == c {
			s.conn = nil
		}
		s.mu.Unlock()
		_ = c.Close()
	}()
	if err := s.write(appendHello(nil, 1, s.cfg.HelloBitmap)); err != nil {
		return fmt.Errorf("ofsim: hello: %w", err)
	}
	r := bufio.NewReaderSize(c, 8192)
	buf := make([]byte, 0, 2048)
	for {
		h, msg, err := ofproto.ReadMessage(r, buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, ofproto.ErrBadVersion) && h.Length >= 8 {
				// As OVS: refuse the message with OFPBRC_BAD_VERSION and go on.
				hdr, _ := r.Peek(8)
				hdr = slices.Clone(hdr)
				if _, derr := r.Discard(int(h.Length)); derr == nil {
					if err := s.sendError(h.Xid, errBadRequest, codeBadVersion, hdr); err != nil {
						return fmt.Errorf("ofsim %016x: %w", s.cfg.DPID, err)
					}
					continue
				}
			}
			return fmt.Errorf("ofsim %016x: read: %w", s.cfg.DPID, err)
		}
		if cap(msg) > cap(buf) {
			buf = msg[:0]
		}
		if err := s.handle(h, msg); err != nil {
			return fmt.Errorf("ofsim %016x: %w", s.cfg.DPID, err)
		}
	}
}

// Disconnect closes the current connection (Run returns).
func (s *Switch) Disconnect() {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

// Mute makes the switch stop answering anything (a hung peer) while keeping the socket.
func (s *Switch) Mute(on bool) {
	s.mu.Lock()
	s.muted = on
	s.mu.Unlock()
}

// SendRaw writes b as is to the controller (for malformed-message tests).
func (s *Switch) SendRaw(b []byte) error { return s.write(b) }

func (s *Switch) write(b []byte) error {
	s.mu.Lock()
	c := s.conn
	s.mu.Unlock()
	if c == nil {
		return errors.New("not connected")
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := c.Write(b)
	return err
}

func (s *Switch) sendError(xid uint32, typ, code uint16, offending []byte) error {
	s.mu.Lock()
	s.counts.Errors++
	s.mu.Unlock()
	if len(offending) > 64 {
		offending = offending[:64]
	}
	b := appendHeader(nil, ofproto.TypeError, xid)
	b = binary.BigEndian.AppendUint16(b, typ)
	b = binary.BigEndian.AppendUint16(b, code)
	b = append(b, offending...)
	return s.write(finish(b, 0))
}

func (s *Switch) handle(h ofproto.Header, msg []byte) error {
	s.mu.Lock()
	muted := s.muted
	s.mu.Unlock()
	if muted {
		return nil
	}
	if h.Version != ofproto.Version && h.Type != ofproto.TypeHello {
		return s.sendError(h.Xid, errBadRequest, codeBadVersion, msg)
	}
	switch h.Type {
	case ofproto.TypeHello:
		if !offers13(msg) {
			_ = s.sendError(h.Xid, 0, 0, []byte("no common version"))
			return errors.New("controller does not offer OpenFlow 1.3")
		}
		return nil
	case ofproto.TypeEchoReply:
		s.mu.Lock()
		s.counts.EchoReplies++
		s.mu.Unlock()
		return nil
	case ofproto.TypeError:
		return nil
	case ofproto.TypeEchoRequest:
		s.mu.Lock()
		s.counts.EchoRequests++
		s.mu.Unlock()
		return s.write(finish(append(appendHeader(nil, ofproto.TypeEchoReply, h.Xid), msg[8:]...), 0))
	case ofproto.TypeFeaturesRequest:
		b := appendHeader(nil, ofproto.TypeFeaturesReply, h.Xid)
		b = binary.BigEndian.AppendUint64(b, s.cfg.DPID)
		b = binary.BigEndian.AppendUint32(b, 0) // n_buffers
		b = append(b, s.cfg.NumTables, 0, 0, 0)
		b = binary.BigEndian.AppendUint32(b, 0x4f) // flow/table/port stats, group stats, queue stats
		b = binary.BigEndian.AppendUint32(b, 0)
		return s.write(finish(b, 0))
	case ofproto.TypeSetConfig:
		if len(msg) != 12 {
			return s.sendError(h.Xid, errBadRequest, codeBadLen, msg)
		}
		s.mu.Lock()
		s.missSendLen = binary.BigEndian.Uint16(msg[10:])
		s.mu.Unlock()
		return nil
	case ofproto.TypeBarrierRequest:
		s.mu.Lock()
		s.counts.Barriers++
		s.mu.Unlock()
		if err := s.write(finish(appendHeader(nil, ofproto.TypeBarrierReply, h.Xid), 0)); err != nil {
			return err
		}
		s.emit(EventBarrier, 0)
		return nil
	case ofproto.TypeRoleRequest:
		return s.handleRole(h, msg)
	case ofproto.TypeMultipartRequest:
		return s.handleMultipart(h, msg)
	case ofproto.TypeFlowMod:
		s.rateLimit(1, s.cfg.FlowModRate)
		s.mu.Lock()
		err := s.flowModLocked(s.flows, msg)
		s.mu.Unlock()
		s.emit(EventFlowMods, 1)
		return s.reportFlowMod(h.Xid, msg, err)
	case ofproto.TypeExperimenter:
		return s.handleExperimenter(h, msg)
	case ofproto.TypePacketOut:
		return s.handlePacketOut(h, msg)
	case ofproto.TypeMeterMod:
		return s.handleMeterMod(h, msg)
	default:
		return s.sendError(h.Xid, errBadRequest, codeBadType, msg)
	}
}

// reportFlowMod sends the error for a refused flow-mod; a malformed one ends the session.
func (s *Switch) reportFlowMod(xid uint32, msg []byte, err error) error {
	var fe *flowModError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return s.sendError(xid, fe.typ, fe.code, msg)
	default:
		return s.sendError(xid, errBadRequest, codeBadLen, msg)
	}
}

// flowModLocked decodes and applies one flow-mod to t.
func (s *Switch) flowModLocked(t flowTable, msg []byte) error {
	if len(msg) >= 56 && msg[25] > byte(ofproto.FlowDeleteStrict) {
		return &flowModError{errFlowModFailed, codeBadCommand}
	}
	fm, err := ofproto.DecodeFlowMod(msg)
	if err != nil {
		return err
	}
	if fm.Flow.Meter != 0 && fm.Command <= ofproto.FlowModifyStrict {
		if _, ok := s.meters[fm.Flow.Meter]; !ok {
			return &flowModError{errMeterModFailed, codeInvalidMeter} // as OVS: a flow may not use a missing meter
		}
	}
	switch fm.Command {
	case ofproto.FlowAdd:
		s.counts.Add++
		if s.cfg.MaxFlows > 0 && len(t) >= s.cfg.MaxFlows {
			if _, replace := t[fm.Flow.Key()]; !replace {
				return &flowModError{errFlowModFailed, 1} // OFPFMFC_TABLE_FULL
			}
		}
	case ofproto.FlowModify:
		s.counts.Modify++
	case ofproto.FlowModifyStrict:
		s.counts.ModifyStrict++
	case ofproto.FlowDelete:
		s.counts.Delete++
	case ofproto.FlowDeleteStrict:
		s.counts.DeleteStrict++
	}
	if fm.Command <= ofproto.FlowModifyStrict {
		if err := checkStructure(&fm.Flow); err != nil {
			return err
		}
	}
	return t.apply(&fm, msg, s.cfg.NumTables, time.Now())
}

// rateLimit waits as long as n flow-mods take at rate per second (0: no wait). The
// budget carries over between calls, so a burst is spaced as OVS would take it.
func (s *Switch) rateLimit(n int, rate float64) {
	if rate <= 0 || n <= 0 {
		return
	}
	now := time.Now()
	s.mu.Lock()
	if s.nextFM.Before(now) {
		s.nextFM = now
	}
	s.nextFM = s.nextFM.Add(time.Duration(float64(n) * float64(time.Second) / rate))
	wait := s.nextFM.Sub(now)
	s.mu.Unlock()
	if wait > time.Millisecond {
		time.Sleep(wait)
	}
}

func (s *Switch) handleRole(h ofproto.Header, msg []byte) error {
	if len(msg) != 24 {
		return s.sendError(h.Xid, errBadRequest, codeBadLen, msg)
	}
	role := binary.BigEndian.Uint32(msg[8:])
	gen := binary.BigEndian.Uint64(msg[16:])
	s.mu.Lock()
	if role == 2 || role == 3 { // master, slave: check the generation id
		if s.genSet && int64(gen-s.generation) < 0 {
			s.mu.Unlock()
			return s.sendError(h.Xid, 11, 0, msg) // OFPET_ROLE_REQUEST_FAILED, OFPRRFC_STALE
		}
		s.generation, s.genSet = gen, true
	}
	if role != 0 {
		s.role = role
	}
	role, gen = s.role, s.generation
	s.mu.Unlock()
	b := appendHeader(nil, ofproto.TypeRoleReply, h.Xid)
	b = binary.BigEndian.AppendUint32(b, role)
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, gen)
	return s.write(finish(b, 0))
}

func (s *Switch) handleMultipart(h ofproto.Header, msg []byte) error {
	if len(msg) < 16 {
		return s.sendError(h.Xid, errBadRequest, codeBadLen, msg)
	}
	switch mp := binary.BigEndian.Uint16(msg[8:]); mp {
	case ofproto.MultipartPortDesc:
		s.mu.Lock()
		ports := make([]Port, 0, len(s.ports))
		for _, p := range s.ports {
			ports = append(ports, p)
		}
		s.mu.Unlock()
		slices.SortFunc(ports, func(a, b Port) int { return int(a.No) - int(b.No) })
		b := appendHeader(nil, ofproto.TypeMultipartReply, h.Xid)
		b = binary.BigEndian.AppendUint16(b, mp)
		b = append(b, 0, 0, 0, 0, 0, 0)
		for _, p := range ports {
			b = appendPort(b, p)
		}
		return s.write(finish(b, 0))
	case ofproto.MultipartFlow:
		if len(msg) < 16+40 {
			return s.sendError(h.Xid, errBadRequest, codeBadLen, msg)
		}
		table := msg[16]
		if table >= s.cfg.NumTables && table != ofproto.TableAll {
			return s.sendError(h.Xid, errBadRequest, codeBadTableIDReq, msg) // OFPBRC_BAD_TABLE_ID
		}
		cookie := binary.BigEndian.Uint64(msg[32:])
		mask := binary.BigEndian.Uint64(msg[40:])
		s.mu.Lock()
		s.counts.FlowStatsRequests++
		st, err := s.flows.stats(table, cookie, mask, time.Now())
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if err := s.write(ofproto.AppendFlowStatsReplies(nil, h.Xid, st)); err != nil {
			return err
		}
		s.emit(EventFlowStats, len(st))
		return nil
	case ofproto.MultipartMeterConfig:
		if len(msg) < 24 {
			return s.sendError(h.Xid, errBadRequest, codeBadLen, msg)
		}
		return s.replyMeterConfig(h, binary.BigEndian.Uint32(msg[16:]), msg)
	default:
		return s.sendError(h.Xid, errBadRequest, codeBadMultipart, msg)
	}
}

func appendPort(b []byte, p Port) []byte {
	b = binary.BigEndian.AppendUint32(b, p.No)
	b = append(b, 0, 0, 0, 0)
	mac := make([]byte, 6)
	copy(mac, p.HWAddr)
	b = append(b, mac...)
	b = append(b, 0, 0)
	var name [16]byte
	copy(name[:15], p.Name)
	b = append(b, name[:]...)
	b = binary.BigEndian.AppendUint32(b, 0) // config
	b = binary.BigEndian.AppendUint32(b, 4) // state: live
	for range 4 {
		b = binary.BigEndian.AppendUint32(b, 0) // curr, advertised, supported, peer
	}
	b = binary.BigEndian.AppendUint32(b, 10_000_000) // curr speed, kbps
	b = binary.BigEndian.AppendUint32(b, 10_000_000) // max speed
	return b
}

// ONF bundle experimenter id and message types.
const (
	experimenterONF = 0x4f4e4600
	bundleControl   = 2300
	bundleAdd       = 2301
)

func (s *Switch) handleExperimenter(h ofproto.Header, msg []byte) error {
	if len(msg) < 16 || binary.BigEndian.Uint32(msg[8:]) != experimenterONF || s.cfg.NoBundles {
		return s.sendError(h.Xid, errBadRequest, 3, msg) // OFPBRC_BAD_EXPERIMENTER
	}
	switch binary.BigEndian.Uint32(msg[12:]) {
	case bundleControl:
		bc, err := ofproto.DecodeBundleControl(msg)
		if err != nil {
			return s.sendError(h.Xid, errBadRequest, codeBadLen, msg)
		}
		return s.bundleCtl(h, bc, msg)
	case bundleAdd:
		ba, err := ofproto.DecodeBundleAdd(msg)
		if err != nil {
			return s.sendError(h.Xid, errBadRequest, codeBadLen, msg)
		}
		inner, err := ofproto.ParseHeader(ba.Inner)
		if err != nil || inner.Type != ofproto.TypeFlowMod {
			return s.sendError(h.Xid, errBundleFailed, 10, msg) // MSG_UNSUP
		}
		s.mu.Lock()
		b := s.bundles[ba.BundleID]
		code := uint16(0)
		switch {
		case b == nil:
			// OVS opens a bundle implicitly on its first add.
			s.bundles[ba.BundleID] = &bundle{flags: ba.Flags, msgs: [][]byte{slices.Clone(ba.Inner)}}
		case b.closed:
			code = codeBundleClosed
		case b.flags != ba.Flags:
			code = codeBundleBadFlags
		default:
			b.msgs = append(b.msgs, slices.Clone(ba.Inner))
		}
		s.mu.Unlock()
		if code != 0 {
			return s.sendError(h.Xid, errBundleFailed, code, msg)
		}
		return nil
	default:
		return s.sendError(h.Xid, errBadRequest, codeBadExpType, msg)
	}
}

func (s *Switch) bundleCtl(h ofproto.Header, bc ofproto.BundleControl, msg []byte) error {
	reply := func(t ofproto.BundleCtrlType) error {
		return s.write(ofproto.AppendBundleControl(nil, h.Xid, bc.BundleID, t, bc.Flags))
	}
	s.mu.Lock()
	b := s.bundles[bc.BundleID]
	switch bc.Type {
	case ofproto.BundleOpenRequest:
		if b != nil {
			s.mu.Unlock()
			return s.sendError(h.Xid, errBundleFailed, codeBundleExists, msg)
		}
		s.bundles[bc.BundleID] = &bundle{flags: bc.Flags}
		s.mu.Unlock()
		return reply(ofproto.BundleOpenReply)
	case ofproto.BundleCloseRequest:
		code := uint16(0)
		switch {
		case b == nil:
			code = codeBundleBadID
		case b.closed:
			code = codeBundleClosed
		case b.flags != bc.Flags:
			code = codeBundleBadFlags
		default:
			b.closed = true
		}
		s.mu.Unlock()
		if code != 0 {
			return s.sendError(h.Xid, errBundleFailed, code, msg)
		}
		return reply(ofproto.BundleCloseReply)
	case ofproto.BundleDiscardRequest:
		delete(s.bundles, bc.BundleID)
		s.mu.Unlock()
		if b == nil {
			return s.sendError(h.Xid, errBundleFailed, codeBundleBadID, msg)
		}
		return reply(ofproto.BundleDiscardReply)
	case ofproto.BundleCommitRequest:
		delete(s.bundles, bc.BundleID)
		if b == nil {
			s.mu.Unlock()
			return s.sendError(h.Xid, errBundleFailed, codeBundleBadID, msg)
		}
		if b.flags != bc.Flags {
			s.mu.Unlock()
			return s.sendError(h.Xid, errBundleFailed, codeBundleBadFlags, msg)
		}
		s.mu.Unlock()
		rate := s.cfg.BundleFlowModRate
		if rate <= 0 {
			rate = s.cfg.FlowModRate
		}
		s.rateLimit(len(b.msgs), rate)
		defer s.emit(EventFlowMods, len(b.msgs))
		s.mu.Lock()
		t := s.flows.clone()
		for _, m := range b.msgs {
			if err := s.flowModLocked(t, m); err != nil {
				s.mu.Unlock()
				inner, _ := ofproto.ParseHeader(m)
				if err := s.reportFlowMod(inner.Xid, m, err); err != nil {
					return err
				}
				return s.sendError(h.Xid, errBundleFailed, codeBundleMsgFails, msg)
			}
		}
		s.flows = t
		s.counts.Bundles++
		s.mu.Unlock()
		return reply(ofproto.BundleCommitReply)
	default:
		s.mu.Unlock()
		return s.sendError(h.Xid, errBundleFailed, 6, msg) // BAD_TYPE
	}
}

func (s *Switch) handlePacketOut(h ofproto.Header, msg []byte) error {
	if len(msg) < 24 {
		return s.sendError(h.Xid, errBadRequest, codeBadLen, msg)
	}
	inPort := binary.BigEndian.Uint32(msg[12:])
	alen := int(binary.BigEndian.Uint16(msg[16:]))
	if 24+alen > len(msg) {
		return s.sendError(h.Xid, errBadRequest, codeBadLen, msg)
	}
	acts, err := decodeActions(msg[24 : 24+alen])
	if err != nil {
		return s.sendError(h.Xid, errBadRequest, codeBadLen, msg)
	}
	s.mu.Lock()
	s.packetOuts = append(s.packetOuts, PacketOut{InPort: inPort, Actions: acts, Data: slices.Clone(msg[24+alen:])})
	s.mu.Unlock()
	return nil
}

// decodeActions decodes an action list by wrapping it in a flow-mod.
func decodeActions(acts []byte) ([]ofproto.Action, error) {
	if len(acts) == 0 {
		return nil, nil
	}
	b := ofproto.AppendFlowMod(nil, 0, ofproto.FlowAdd, &ofproto.Flow{}, 0)
	b = append(b, 0, 4) // OFPIT_APPLY_ACTIONS
	b = binary.BigEndian.AppendUint16(b, uint16(8+len(acts)))
	b = append(b, 0, 0, 0, 0)
	b = append(b, acts...)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	fm, err := ofproto.DecodeFlowMod(b)
	if err != nil {
		return nil, err
	}
	return fm.Flow.Actions, nil
}

// TakePacketOuts returns and forgets the packet-outs received so far.
func (s *Switch) TakePacketOuts() []PacketOut {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.packetOuts
	s.packetOuts = nil
	return p
}

// Counts returns the flow-mod counters.
func (s *Switch) Counts() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// Role returns the controller role and generation id last set.
func (s *Switch) Role() (role uint32, generation uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.role, s.generation
}

// MissSendLen returns the miss_send_len set by the controller.
func (s *Switch) MissSendLen() uint16 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.missSendLen
}

// NumFlows returns the number of flows installed.
func (s *Switch) NumFlows() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.flows)
}

// Flows returns every flow, ordered by table, priority (high first) and text.
func (s *Switch) Flows() ([]ofproto.Flow, error) {
	fs, err := s.UnorderedFlows()
	if err != nil {
		return nil, err
	}
	type flowText struct {
		f    ofproto.Flow
		text string
	}
	ft := make([]flowText, len(fs))
	for i := range fs {
		ft[i] = flowText{fs[i], fs[i].String()}
	}
	slices.SortFunc(ft, func(a, b flowText) int {
		return cmp.Or(cmp.Compare(a.f.Table, b.f.Table), cmp.Compare(b.f.Priority, a.f.Priority), strings.Compare(a.text, b.text))
	})
	for i := range ft {
		fs[i] = ft[i].f
	}
	return fs, nil
}

// UnorderedFlows returns every flow in no particular order (cheaper than Flows).
func (s *Switch) UnorderedFlows() ([]ofproto.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ofproto.Flow, 0, len(s.flows))
	for _, e := range s.flows {
		f, err := e.flow()
		if err != nil {
			return nil, fmt.Errorf("ofsim %016x: stored flow does not decode: %w", s.cfg.DPID, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// DumpFlows returns the flows one per line in ovs-ofctl syntax (like --no-stats dump-flows).
func (s *Switch) DumpFlows() (string, error) {
	fs, err := s.Flows()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for i := range fs {
		b.WriteString(fs[i].String())
		b.WriteByte('\n')
	}
	return b.String(), nil
}

// AddFlow installs f directly (as another controller or ovs-ofctl would), without
// counting it as received from the controller.
func (s *Switch) AddFlow(f ofproto.Flow) error {
	msg := ofproto.AppendFlowMod(nil, 0, ofproto.FlowAdd, &f, 0)
	fm, err := ofproto.DecodeFlowMod(msg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.flows.apply(&fm, msg, s.cfg.NumTables, time.Now()); err != nil {
		return fmt.Errorf("ofsim: add flow %s: refused", f.String())
	}
	return nil
}

// AddPort adds (or replaces) a port and tells the controller with a port status.
func (s *Switch) AddPort(p Port) error {
	s.mu.Lock()
	_, had := s.ports[p.No]
	s.ports[p.No] = p
	connected := s.conn != nil
	s.mu.Unlock()
	reason := byte(0) // OFPPR_ADD
	if had {
		reason = 2 // OFPPR_MODIFY (a rename too, as OVS reports it)
	}
	if !connected {
		return nil
	}
	return s.portStatus(reason, p)
}

// DelPort removes a port and tells the controller.
func (s *Switch) DelPort(no uint32) error {
	s.mu.Lock()
	p, ok := s.ports[no]
	delete(s.ports, no)
	connected := s.conn != nil
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("ofsim: no port %d", no)
	}
	if !connected {
		return nil
	}
	return s.portStatus(1, p) // OFPPR_DELETE
}

func (s *Switch) portStatus(reason byte, p Port) error {
	b := appendHeader(nil, ofproto.TypePortStatus, 0)
	b = append(b, reason, 0, 0, 0, 0, 0, 0, 0)
	b = appendPort(b, p)
	return s.write(finish(b, 0))
}

// SendPacketIn sends a packet-in as if table/cookie had sent data from inPort to the
// controller.
func (s *Switch) SendPacketIn(table uint8, cookie uint64, inPort uint32, data []byte) error {
	return s.write(appendPacketIn(nil, table, cookie, inPort, data))
}

func appendPacketIn(b []byte, table uint8, cookie uint64, inPort uint32, data []byte) []byte {
	start := len(b)
	b = appendHeader(b, ofproto.TypePacketIn, 0)
	b = binary.BigEndian.AppendUint32(b, ofproto.NoBuffer)
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	b = append(b, 1, table) // reason OFPR_ACTION
	b = binary.BigEndian.AppendUint64(b, cookie)
	b = append(b, 0, 1, 0, 12, 0x80, 0, 0, 4) // OXM match with in_port
	b = binary.BigEndian.AppendUint32(b, inPort)
	b = append(b, 0, 0, 0, 0) // match padding
	b = append(b, 0, 0)       // pad
	b = append(b, data...)
	return finish(b, start)
}

func appendHeader(b []byte, t ofproto.MsgType, xid uint32) []byte {
	return ofproto.AppendHeader(b, ofproto.Header{Version: ofproto.Version, Type: t, Xid: xid})
}

func finish(b []byte, start int) []byte {
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return b
}

func appendHello(b []byte, xid, bitmap uint32) []byte {
	v := uint8(ofproto.Version)
	if bitmap&(1<<ofproto.Version) == 0 {
		v = 1 // an OF1.0-only peer
	}
	b = ofproto.AppendHeader(b, ofproto.Header{Version: v, Type: ofproto.TypeHello, Xid: xid})
	b = append(b, 0, 1, 0, 8)
	b = binary.BigEndian.AppendUint32(b, bitmap)
	return finish(b, 0)
}

// offers13 reports whether a HELLO offers OpenFlow 1.3.
func offers13(msg []byte) bool {
	body := msg[8:]
	for len(body) >= 8 {
		t, l := binary.BigEndian.Uint16(body), int(binary.BigEndian.Uint16(body[2:]))
		if l < 4 || l > len(body) {
			return false
		}
		if t == 1 {
			return binary.BigEndian.Uint32(body[4:])&(1<<ofproto.Version) != 0
		}
		padded := (l + 7) / 8 * 8
		if padded > len(body) {
			break
		}
		body = body[padded:]
	}
	return msg[0] >= ofproto.Version
}

// Ports returns the switch's ports, ordered by number.
func (s *Switch) Ports() []Port {
	s.mu.Lock()
	out := make([]Port, 0, len(s.ports))
	for _, p := range s.ports {
		out = append(out, p)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Port) int { return cmp.Compare(a.No, b.No) })
	return out
}
