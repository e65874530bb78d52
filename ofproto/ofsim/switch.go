// Package ofsim is a fake OpenFlow 1.3 switch for tests and simulation. It dials the
// controller like Open vSwitch does, speaks OF1.3 over a real socket (hello, features, port
// description, echo, barrier, role, flow-mods, ONF bundles, flow stats with REPLY_MORE,
// packet-in, port status), stores flows with OVS's add/modify/delete semantics (strict and
// non-strict, cookie masks, out_port), refuses bad messages with the errors OVS sends, and
// can execute a packet through its tables (Execute). Like Open vSwitch with several
// controller targets, a switch may be connected to several controllers at once (Run once
// per address, or a Fleet with FleetConfig.Addrs): they share its flows, ports, meters and
// generation id, and each connection has its own role, miss_send_len and bundles; a slave
// may not change the switch, and packet-ins go to masters and equals only (roles.go).
//
// It is kept compact so that thousands can run in one process: flows are stored encoded,
// there is no goroutine per flow and exactly one goroutine per connection (the one that
// called Run).
package ofsim

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
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
	sessions    []*session         // the controller connections, oldest first (roles.go)
	byAddr      map[string]*Counts // counts by controller address
	counts      Counts
	muted       bool
	missSendLen uint16 // the last one set by any connection
	role        uint32 // the last role set by any connection
	generation  uint64
	genSet      bool
	packetOuts  []PacketOut
	nextFM      time.Time         // flow-mod rate limiter
	meters      map[uint32][]byte // meter ID -> its last METER_MOD body (flags and bands)
	conns       map[connKey]*conn // the connection tracker (conntrack.go)
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
		byAddr: map[string]*Counts{},
	}
	for _, p := range cfg.Ports {
		s.ports[p.No] = p
	}
	return s
}

// DPID returns the switch's datapath id.
func (s *Switch) DPID() uint64 { return s.cfg.DPID }

// Run dials the controller at addr and serves the connection until it ends or ctx is done.
// It returns nil when ctx ended it. A switch may run several connections at once, to as
// many controllers, as Open vSwitch does with several controller targets: they share the
// flows, ports, meters and generation id, and each has its own role (roles.go).
func (s *Switch) Run(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("ofsim %016x: dial %s: %w", s.cfg.DPID, addr, err)
	}
	return s.serve(ctx, c, addr)
}

// Serve runs the switch side of an established connection; its controller's address (in
// Event.Addr and CountsFrom) is the connection's remote address.
func (s *Switch) Serve(ctx context.Context, c net.Conn) error {
	return s.serve(ctx, c, c.RemoteAddr().String())
}

func (s *Switch) serve(ctx context.Context, c net.Conn, addr string) error {
	// HELLO goes first: the connection is published (and port changes written to it)
	// only once it is sent, as OVS never sends anything before its HELLO.
	sess := &session{c: c, addr: addr, role: roleEqual, bundles: map[uint32]*bundle{}}
	sess.wmu.Lock()
	_, herr := c.Write(ofproto.AppendHello(nil, 1, s.cfg.HelloBitmap))
	s.mu.Lock()
	sess.counts = s.byAddr[addr]
	if sess.counts == nil {
		sess.counts = &Counts{}
		s.byAddr[addr] = sess.counts
	}
	s.sessions = append(s.sessions, sess)
	s.countLocked(sess, func(c *Counts) { c.Connections++ })
	s.mu.Unlock()
	sess.wmu.Unlock()
	s.emit(sess, EventConnected, 0)
	defer s.emit(sess, EventDisconnected, 0)
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	defer func() {
		s.mu.Lock()
		s.sessions = slices.DeleteFunc(s.sessions, func(o *session) bool { return o == sess })
		s.mu.Unlock()
		_ = c.Close()
	}()
	if herr != nil {
		return fmt.Errorf("ofsim: hello: %w", herr)
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
					if err := s.sendError(sess, h.Xid, errBadRequest, codeBadVersion, hdr); err != nil {
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
		if err := s.handle(sess, h, msg); err != nil {
			return fmt.Errorf("ofsim %016x: %w", s.cfg.DPID, err)
		}
	}
}

// Disconnect closes every controller connection (Run returns).
func (s *Switch) Disconnect() {
	s.mu.Lock()
	ss := slices.Clone(s.sessions)
	s.mu.Unlock()
	for _, sess := range ss {
		_ = sess.c.Close()
	}
}

// Mute makes the switch stop answering anything (a hung peer) while keeping the socket.
func (s *Switch) Mute(on bool) {
	s.mu.Lock()
	s.muted = on
	s.mu.Unlock()
}

// SendRaw writes b as is to every controller connection (for malformed-message tests and
// load generators, which run one).
func (s *Switch) SendRaw(b []byte) error {
	return s.writeTo(func(*session) bool { return true }, b)
}

// writeTo writes b to the connections that want reports "not connected" when there is
// no connection at all.
func (s *Switch) writeTo(want func(*session) bool, b []byte) error {
	s.mu.Lock()
	if len(s.sessions) == 0 {
		s.mu.Unlock()
		return errors.New("not connected")
	}
	var to []*session
	for _, sess := range s.sessions {
		if want(sess) {
			to = append(to, sess)
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, sess := range to {
		errs = append(errs, sess.write(b))
	}
	return errors.Join(errs...)
}

func (s *Switch) sendError(sess *session, xid uint32, typ, code uint16, offending []byte) error {
	s.mu.Lock()
	s.countLocked(sess, func(c *Counts) { c.Errors++ })
	s.mu.Unlock()
	return sess.write(ofproto.AppendError(nil, xid, typ, code, offending))
}

func (s *Switch) handle(sess *session, h ofproto.Header, msg []byte) error {
	s.mu.Lock()
	muted := s.muted
	slave := sess.role == roleSlave
	s.mu.Unlock()
	if muted {
		return nil
	}
	if h.Version != ofproto.Version && h.Type != ofproto.TypeHello {
		return s.sendError(sess, h.Xid, errBadRequest, codeBadVersion, msg)
	}
	if slave && slaveRefuses(h.Type) {
		return s.refuseSlave(sess, h, msg)
	}
	switch h.Type {
	case ofproto.TypeHello:
		if ok, err := ofproto.HelloOffers13(msg); err != nil || !ok {
			_ = s.sendError(sess, h.Xid, 0, 0, []byte("no common version"))
			return errors.New("controller does not offer OpenFlow 1.3")
		}
		return nil
	case ofproto.TypeEchoReply:
		s.mu.Lock()
		s.countLocked(sess, func(c *Counts) { c.EchoReplies++ })
		s.mu.Unlock()
		return nil
	case ofproto.TypeError:
		return nil
	case ofproto.TypeEchoRequest:
		s.mu.Lock()
		s.countLocked(sess, func(c *Counts) { c.EchoRequests++ })
		s.mu.Unlock()
		return sess.write(ofproto.AppendEcho(nil, ofproto.TypeEchoReply, h.Xid, msg[ofproto.HeaderLen:]))
	case ofproto.TypeFeaturesRequest:
		b := ofproto.Begin(nil, ofproto.TypeFeaturesReply, h.Xid)
		b = binary.BigEndian.AppendUint64(b, s.cfg.DPID)
		b = binary.BigEndian.AppendUint32(b, 0) // n_buffers
		b = append(b, s.cfg.NumTables, 0, 0, 0)
		b = binary.BigEndian.AppendUint32(b, 0x4f) // flow/table/port stats, group stats, queue stats
		b = binary.BigEndian.AppendUint32(b, 0)
		return sess.write(ofproto.Finish(b, 0))
	case ofproto.TypeSetConfig:
		if len(msg) != 12 {
			return s.sendError(sess, h.Xid, errBadRequest, codeBadLen, msg)
		}
		s.mu.Lock()
		sess.missSendLen = binary.BigEndian.Uint16(msg[10:])
		s.missSendLen = sess.missSendLen
		s.mu.Unlock()
		return nil
	case ofproto.TypeBarrierRequest:
		s.mu.Lock()
		s.countLocked(sess, func(c *Counts) { c.Barriers++ })
		s.mu.Unlock()
		if err := sess.write(ofproto.Finish(ofproto.Begin(nil, ofproto.TypeBarrierReply, h.Xid), 0)); err != nil {
			return err
		}
		s.emit(sess, EventBarrier, 0)
		return nil
	case ofproto.TypeRoleRequest:
		return s.handleRole(sess, h, msg)
	case ofproto.TypeMultipartRequest:
		return s.handleMultipart(sess, h, msg)
	case ofproto.TypeFlowMod:
		s.rateLimit(1, s.cfg.FlowModRate)
		s.mu.Lock()
		err := s.flowModLocked(sess, s.flows, msg)
		s.mu.Unlock()
		s.emitFlowMod(sess, msg)
		return s.reportFlowMod(sess, h.Xid, msg, err)
	case ofproto.TypeExperimenter:
		return s.handleExperimenter(sess, h, msg)
	case ofproto.TypePacketOut:
		return s.handlePacketOut(sess, h, msg)
	case ofproto.TypeMeterMod:
		return s.handleMeterMod(sess, h, msg)
	default:
		return s.sendError(sess, h.Xid, errBadRequest, codeBadType, msg)
	}
}

// reportFlowMod sends the error for a refused flow-mod; a malformed one ends the session.
func (s *Switch) reportFlowMod(sess *session, xid uint32, msg []byte, err error) error {
	var fe *flowModError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &fe):
		return s.sendError(sess, xid, fe.typ, fe.code, msg)
	default:
		return s.sendError(sess, xid, errBadRequest, codeBadLen, msg)
	}
}

// flowModLocked decodes and applies one flow-mod of sess to t.
func (s *Switch) flowModLocked(sess *session, t flowTable, msg []byte) error {
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
		s.countLocked(sess, func(c *Counts) { c.Add++ })
		if s.cfg.MaxFlows > 0 && len(t) >= s.cfg.MaxFlows {
			if _, replace := t[fm.Flow.Key()]; !replace {
				return &flowModError{errFlowModFailed, 1} // OFPFMFC_TABLE_FULL
			}
		}
	case ofproto.FlowModify:
		s.countLocked(sess, func(c *Counts) { c.Modify++ })
	case ofproto.FlowModifyStrict:
		s.countLocked(sess, func(c *Counts) { c.ModifyStrict++ })
	case ofproto.FlowDelete:
		s.countLocked(sess, func(c *Counts) { c.Delete++ })
	case ofproto.FlowDeleteStrict:
		s.countLocked(sess, func(c *Counts) { c.DeleteStrict++ })
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

func (s *Switch) handleMultipart(sess *session, h ofproto.Header, msg []byte) error {
	if len(msg) < 16 {
		return s.sendError(sess, h.Xid, errBadRequest, codeBadLen, msg)
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
		b := ofproto.Begin(nil, ofproto.TypeMultipartReply, h.Xid)
		b = binary.BigEndian.AppendUint16(b, mp)
		b = append(b, 0, 0, 0, 0, 0, 0)
		for _, p := range ports {
			b = appendPort(b, p)
		}
		return sess.write(ofproto.Finish(b, 0))
	case ofproto.MultipartFlow:
		if len(msg) < 16+40 {
			return s.sendError(sess, h.Xid, errBadRequest, codeBadLen, msg)
		}
		table := msg[16]
		if table >= s.cfg.NumTables && table != ofproto.TableAll {
			return s.sendError(sess, h.Xid, errBadRequest, codeBadTableIDReq, msg) // OFPBRC_BAD_TABLE_ID
		}
		cookie := binary.BigEndian.Uint64(msg[32:])
		mask := binary.BigEndian.Uint64(msg[40:])
		s.mu.Lock()
		s.countLocked(sess, func(c *Counts) { c.FlowStatsRequests++ })
		st, err := s.flows.stats(table, cookie, mask, time.Now())
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if err := sess.write(ofproto.AppendFlowStatsReplies(nil, h.Xid, st)); err != nil {
			return err
		}
		s.emit(sess, EventFlowStats, len(st))
		return nil
	case ofproto.MultipartMeterConfig:
		if len(msg) < 24 {
			return s.sendError(sess, h.Xid, errBadRequest, codeBadLen, msg)
		}
		return s.replyMeterConfig(sess, h, binary.BigEndian.Uint32(msg[16:]), msg)
	default:
		return s.sendError(sess, h.Xid, errBadRequest, codeBadMultipart, msg)
	}
}
