package controller

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netrack/openflow/ofp"
	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/ofproto"
)

// Errors returned by session operations.
var (
	// ErrSessionClosed is returned by operations on a session that is closed or closing.
	ErrSessionClosed = errors.New("openflow session closed")
	errMalformed     = errors.New("malformed openflow message")
)

// SessionConfig tunes a switch session. Zero fields take the defaults shown.
type SessionConfig struct {
	// EchoInterval is how long the session stays silent before sending an echo request
	// (default 5s).
	EchoInterval time.Duration
	// DeadTimeout closes the session when nothing was received for this long (default 3 x
	// EchoInterval).
	DeadTimeout time.Duration
	// HandshakeTimeout bounds hello, features and port description (default 10s).
	HandshakeTimeout time.Duration
	// QueueLen is the writer queue capacity in messages (or batches); Send blocks when it
	// is full (default 64).
	QueueLen int
	// MissSendLen is set on the switch with SET_CONFIG (default 0xffff: whole packets).
	MissSendLen uint16
}

func (c SessionConfig) withDefaults() SessionConfig {
	if c.EchoInterval <= 0 {
		c.EchoInterval = 5 * time.Second
	}
	if c.DeadTimeout <= 0 {
		c.DeadTimeout = 3 * c.EchoInterval
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 64
	}
	if c.MissSendLen == 0 {
		c.MissSendLen = ofproto.ControllerMaxLenNoBuffer
	}
	return c
}

// Role is an OpenFlow controller role (ofp_controller_role).
type Role uint32

// Controller roles.
const (
	RoleNoChange Role = 0
	RoleEqual    Role = 1
	RoleMaster   Role = 2
	RoleSlave    Role = 3
)

// Port is a switch port as reported by port description and port status.
type Port struct {
	No     uint32
	Name   string
	HWAddr net.HardwareAddr
	Config uint32 // ofp_port_config bits
	State  uint32 // ofp_port_state bits
}

// OFError is an OFPT_ERROR received from a switch.
type OFError struct {
	Type, Code uint16
	Data       []byte // the start of the offending message
}

// Error renders the error type and code with their OpenFlow names.
func (e *OFError) Error() string {
	return "switch error " + ofp.Error{Type: ofp.ErrType(e.Type), Code: ofp.ErrCode(e.Code)}.String() +
		" (type " + strconv.Itoa(int(e.Type)) + " code " + strconv.Itoa(int(e.Code)) + ")"
}

// pending is a request waiting for its reply.
type pending struct {
	replyType ofproto.MsgType
	multipart bool
	parts     [][]byte // multipart bodies received so far (after the 16-byte multipart header)
	done      chan reply
}

type reply struct {
	msg   []byte   // the whole reply message (non-multipart)
	parts [][]byte // multipart bodies
	err   error
}

// errorWatch receives switch errors for a range of xids that have no pending request
// (e.g. a batch of flow-mods confirmed by one barrier).
type errorWatch struct {
	first, n uint32
	fn       func(xid uint32, e *OFError)
}

// sessionHooks are the server's callbacks, called on the session's reader goroutine.
type sessionHooks interface {
	packetIn(s *Session, msg []byte)
	portStatus(s *Session, reason PortReason, p Port, old string)
}

// Session is one OpenFlow 1.3 connection to one bridge. It owns exactly one reader and one
// writer goroutine. All methods are safe for concurrent use.
type Session struct {
	log    *zap.Logger
	conn   net.Conn
	cfg    SessionConfig
	hooks  sessionHooks
	remote string

	dpid      uint64
	numTables uint8

	out       chan []byte
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error // set before done is closed
	wg        sync.WaitGroup

	xid      atomic.Uint32
	lastRecv atomic.Int64 // unix nanoseconds

	mu      sync.Mutex
	pending map[uint32]*pending
	watches []*errorWatch
	ports   map[uint32]Port

	errorsReceived atomic.Uint64
	bytesSent      atomic.Uint64
	msgsReceived   atomic.Uint64
	pinTokens      float64 // packet-in budget; only touched by the reader goroutine
	pinLast        time.Time
	pinDropped     atomic.Uint64
	pinReceived    atomic.Uint64
	connectedAt    time.Time
	role           atomic.Uint32 // the role the switch last confirmed (RoleEqual until asked)

	// With roles (Server.EnableRoles): whether this controller is the switch's master,
	// in which term, the term of its last slave request, and a kick of its role loop.
	// emitMu orders SwitchConnected, PortStatus and SwitchDisconnected of the session.
	emitMu     sync.Mutex
	mastered   atomic.Bool
	masterTerm atomic.Uint64
	slaveTerm  atomic.Uint64
	roleKick   chan struct{}
}

// DPID returns the switch's datapath id.
func (s *Session) DPID() uint64 { return s.dpid }

// NumTables returns the table count the switch reported in its features.
func (s *Session) NumTables() uint8 { return s.numTables }

// Remote returns the switch's address.
func (s *Session) Remote() string { return s.remote }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns why the session ended (nil while it runs).
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.closeErr
	default:
		return nil
	}
}

// Ports returns the switch's ports as last reported, in no particular order.
func (s *Session) Ports() []Port {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := make([]Port, 0, len(s.ports))
	for _, p := range s.ports {
		ps = append(ps, p)
	}
	return ps
}

// ErrorsReceived counts OFPT_ERROR messages received from the switch.
func (s *Session) ErrorsReceived() uint64 { return s.errorsReceived.Load() }

// BytesSent counts bytes written to the switch.
func (s *Session) BytesSent() uint64 { return s.bytesSent.Load() }

// MessagesReceived counts messages read from the switch after the handshake.
func (s *Session) MessagesReceived() uint64 { return s.msgsReceived.Load() }

// PacketInsDropped counts packet-ins dropped by the per-switch budget.
func (s *Session) PacketInsDropped() uint64 { return s.pinDropped.Load() }

// PacketIns counts packet-ins received from the switch, dropped ones included.
func (s *Session) PacketIns() uint64 { return s.pinReceived.Load() }

// ConnectedAt is when the switch finished its handshake.
func (s *Session) ConnectedAt() time.Time { return s.connectedAt }

// Role is the controller role the switch last confirmed (RoleEqual, OpenFlow's default,
// until a role request succeeds).
func (s *Session) Role() Role { return Role(s.role.Load()) }

func (r Role) String() string {
	switch r {
	case RoleNoChange:
		return "nochange"
	case RoleEqual:
		return "equal"
	case RoleMaster:
		return "master"
	case RoleSlave:
		return "slave"
	}
	return fmt.Sprintf("role(%d)", uint32(r))
}

// NextXID allocates a transaction id unique within this session (never 0).
func (s *Session) NextXID() uint32 { return s.ReserveXIDs(1) }

// ReserveXIDs allocates n consecutive transaction ids and returns the first.
func (s *Session) ReserveXIDs(n uint32) uint32 {
	for {
		last := s.xid.Add(n)
		first := last - n + 1
		if first != 0 && first <= last { // skip 0 and wrap-around ranges
			return first
		}
	}
}

// Send queues msg (one or more whole, encoded OpenFlow messages) for the writer. It blocks
// while the queue is full (back-pressure) and fails when ctx ends or the session closes.
// msg must not be modified after Send.
func (s *Session) Send(ctx context.Context, msg []byte) error {
	if len(msg) < ofproto.HeaderLen {
		return fmt.Errorf("send: %d-byte message is shorter than a header", len(msg))
	}
	select {
	case <-s.done:
		return ErrSessionClosed
	default:
	}
	select {
	case s.out <- msg:
		return nil
	case <-s.done:
		return ErrSessionClosed
	case <-ctx.Done():
		return fmt.Errorf("send to %016x: %w", s.dpid, ctx.Err())
	}
}

// Request sends msg with a fresh xid and waits for the reply of type replyType with the
// same xid, or for an OFPT_ERROR about it (returned as *OFError).
func (s *Session) Request(ctx context.Context, msg []byte, replyType ofproto.MsgType) ([]byte, error) {
	r, err := s.request(ctx, msg, 0, replyType, false)
	return r.msg, err
}

// RequestMultipart sends a multipart request with a fresh xid and returns the bodies of all
// reply parts (each without the 16-byte multipart reply header).
func (s *Session) RequestMultipart(ctx context.Context, msg []byte) ([][]byte, error) {
	r, err := s.request(ctx, msg, 0, ofproto.TypeMultipartReply, true)
	return r.parts, err
}

// request sends msg, whose last message (from byte at) is the request, and waits for the
// request's reply.
func (s *Session) request(ctx context.Context, msg []byte, at int, replyType ofproto.MsgType, multipart bool) (reply, error) {
	if len(msg)-at < ofproto.HeaderLen {
		return reply{}, fmt.Errorf("request: %d-byte message is shorter than a header", len(msg)-at)
	}
	xid := s.NextXID()
	ofproto.SetXID(msg[at:], xid)
	p := &pending{replyType: replyType, multipart: multipart, done: make(chan reply, 1)}
	s.mu.Lock()
	if s.pending == nil {
		s.mu.Unlock()
		return reply{}, ErrSessionClosed
	}
	s.pending[xid] = p
	s.mu.Unlock()
	forget := func() {
		s.mu.Lock()
		if s.pending != nil {
			delete(s.pending, xid)
		}
		s.mu.Unlock()
	}
	if err := s.Send(ctx, msg); err != nil {
		forget()
		return reply{}, err
	}
	select {
	case r := <-p.done:
		return r, r.err
	case <-ctx.Done():
		forget()
		return reply{}, fmt.Errorf("waiting for %v xid %d from %016x: %w", replyType, xid, s.dpid, ctx.Err())
	}
}

// Barrier sends a barrier request and waits for its reply: every message sent before it
// has then been processed by the switch.
func (s *Session) Barrier(ctx context.Context) error { return s.SendBarrier(ctx, nil) }

// SendBarrier sends msgs (whole encoded messages, or none) followed by a barrier request,
// in one write, and waits for the barrier's reply. msgs must not be used after.
func (s *Session) SendBarrier(ctx context.Context, msgs []byte) error {
	at := len(msgs)
	if _, err := s.request(ctx, ofproto.AppendEmpty(msgs, ofproto.TypeBarrierRequest, 0), at, ofproto.TypeBarrierReply, false); err != nil {
		return fmt.Errorf("barrier: %w", err)
	}
	return nil
}

// RoleRequest asks the switch for a controller role with a generation id and returns the
// role and generation the switch reports.
func (s *Session) RoleRequest(ctx context.Context, role Role, generation uint64) (Role, uint64, error) {
	msg, err := s.Request(ctx, ofproto.AppendRoleRequest(nil, 0, uint32(role), generation), ofproto.TypeRoleReply)
	if err != nil {
		return 0, 0, fmt.Errorf("role request: %w", err)
	}
	if len(msg) < ofproto.HeaderLen+16 {
		return 0, 0, fmt.Errorf("role reply: %w: %d bytes", errMalformed, len(msg))
	}
	got := Role(binary.BigEndian.Uint32(msg[8:12]))
	if got == RoleEqual || got == RoleMaster || got == RoleSlave {
		s.role.Store(uint32(got))
	}
	return got, binary.BigEndian.Uint64(msg[16:24]), nil
}

// WatchErrors routes switch errors for xids first..first+n-1 to fn (called on the reader
// goroutine) until the returned function is called.
func (s *Session) WatchErrors(first, n uint32, fn func(xid uint32, e *OFError)) (stop func()) {
	w := &errorWatch{first: first, n: n, fn: fn}
	s.mu.Lock()
	s.watches = append(s.watches, w)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, x := range s.watches {
			if x == w {
				s.watches = append(s.watches[:i], s.watches[i+1:]...)
				return
			}
		}
	}
}

// ErrQueueFull is returned by PacketOutPort when the session's writer queue is full.
var ErrQueueFull = errors.New("openflow session queue full")

// PacketOutPort queues an OFPT_PACKET_OUT of data (no buffer), as if received on inPort,
// with the single action output:outPort: the answer to a packet-in. It never waits: when
// the writer's queue is full it fails with ErrQueueFull and the packet is dropped (the
// asker retries), so a packet-in handler cannot stall its switch's reader.
func (s *Session) PacketOutPort(inPort, outPort uint32, data []byte) error {
	msg, err := ofproto.AppendPacketOutPort(make([]byte, 0, 40+len(data)), s.NextXID(), inPort, outPort, data)
	if err != nil {
		return fmt.Errorf("packet-out to %016x: %w", s.dpid, err)
	}
	select {
	case <-s.done:
		return ErrSessionClosed
	default:
	}
	select {
	case s.out <- msg:
		return nil
	case <-s.done:
		return ErrSessionClosed
	default:
		return fmt.Errorf("packet-out to %016x: %w", s.dpid, ErrQueueFull)
	}
}

// Close ends the session; pending requests fail with ErrSessionClosed.
func (s *Session) Close() { s.close(nil) }

func (s *Session) close(err error) {
	s.closeOnce.Do(func() {
		s.closeErr = err
		if err == nil {
			s.closeErr = ErrSessionClosed
		}
		close(s.done)
		_ = s.conn.Close()
		s.mu.Lock()
		ps := s.pending
		s.pending = nil
		s.watches = nil
		s.mu.Unlock()
		for _, p := range ps {
			p.done <- reply{err: ErrSessionClosed}
		}
	})
}

// maxBatch bounds how many queued messages one writev carries.
const maxBatch = 64

// writeLoop is the session's writer goroutine: it drains the queue into the connection
// with one writev per batch (no buffer held while idle) and runs the echo keepalive and
// dead-peer check.
func (s *Session) writeLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.cfg.EchoInterval / 2)
	defer tick.Stop()
	var batch net.Buffers
	flush := func(now time.Time) bool {
		n := 0
		for _, b := range batch {
			n += len(b)
		}
		_ = s.conn.SetWriteDeadline(now.Add(s.cfg.DeadTimeout))
		v := batch // WriteTo consumes v; batch keeps the array for reuse
		if _, err := v.WriteTo(s.conn); err != nil {
			s.close(fmt.Errorf("write: %w", err))
			return false
		}
		s.bytesSent.Add(uint64(n))
		clear(batch) // drop the references to sent messages
		batch = batch[:0]
		return true
	}
	for {
		select {
		case <-s.done:
			return
		case m := <-s.out:
			batch = append(batch[:0], m)
		drain:
			for len(batch) < maxBatch {
				select {
				case m := <-s.out:
					batch = append(batch, m)
				default:
					break drain
				}
			}
			if !flush(time.Now()) {
				return
			}
		case now := <-tick.C:
			idle := now.Sub(time.Unix(0, s.lastRecv.Load()))
			if idle >= s.cfg.DeadTimeout {
				s.close(fmt.Errorf("peer silent for %v (dead-peer timeout %v)", idle.Round(time.Millisecond), s.cfg.DeadTimeout))
				return
			}
			if idle >= s.cfg.EchoInterval {
				batch = append(batch[:0], ofproto.AppendEcho(nil, ofproto.TypeEchoRequest, s.NextXID(), nil))
				if !flush(now) {
					return
				}
			}
		}
	}
}

// readLoop is the session's reader goroutine after the handshake.
func (s *Session) readLoop(r *bufio.Reader) {
	defer s.wg.Done()
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("panic handling switch message; dropping session", zap.Any("panic", v))
			s.close(fmt.Errorf("%w: panic: %v", errMalformed, v))
		}
	}()
	buf := make([]byte, 0, 256) // grows to the largest message seen
	for {
		h, msg, err := ofproto.ReadMessage(r, buf)
		if err != nil {
			if errors.Is(err, ofproto.ErrBadVersion) {
				_ = s.trySend(ofproto.AppendError(nil, h.Xid, ofproto.ErrTypeBadRequest, ofproto.ErrCodeBadVersion, nil))
			}
			s.close(fmt.Errorf("read: %w", err))
			return
		}
		if cap(msg) > cap(buf) {
			buf = msg[:0]
		}
		s.lastRecv.Store(time.Now().UnixNano())
		s.msgsReceived.Add(1)
		if err := s.handle(msg); err != nil {
			s.close(err)
			return
		}
	}
}

// handle processes one message from the switch; an error drops the session.
func (s *Session) handle(msg []byte) error {
	h := ofproto.HeaderOf(msg)
	if h.Version != ofproto.Version {
		_ = s.trySend(ofproto.AppendError(nil, h.Xid, ofproto.ErrTypeBadRequest, ofproto.ErrCodeBadVersion, msg))
		return fmt.Errorf("%w: version %d after negotiating 1.3", errMalformed, h.Version)
	}
	switch h.Type {
	case ofproto.TypeEchoRequest:
		return s.trySend(ofproto.AppendEcho(nil, ofproto.TypeEchoReply, h.Xid, msg[ofproto.HeaderLen:]))
	case ofproto.TypeEchoReply, ofproto.TypeHello:
		return nil
	case ofproto.TypeError:
		return s.handleError(h, msg)
	case ofproto.TypePacketIn:
		s.hooks.packetIn(s, msg)
		return nil
	case ofproto.TypePortStatus:
		return s.handlePortStatus(msg)
	case ofproto.TypeFlowRemoved:
		return nil
	case ofproto.TypeMultipartReply:
		return s.handleMultipart(h, msg)
	default:
		s.mu.Lock()
		p := s.pending[h.Xid]
		if p != nil && p.replyType == h.Type && !p.multipart {
			delete(s.pending, h.Xid)
		} else {
			p = nil
		}
		s.mu.Unlock()
		if p != nil {
			p.done <- reply{msg: bytes.Clone(msg)}
			return nil
		}
		s.log.Debug("unexpected message from switch", zap.Stringer("type", h.Type), zap.Uint32("xid", h.Xid))
		return nil
	}
}

// trySend queues a reply from the reader goroutine; it only fails when the session closes.
func (s *Session) trySend(msg []byte) error {
	select {
	case s.out <- msg:
		return nil
	case <-s.done:
		return ErrSessionClosed
	}
}

func (s *Session) handleError(h ofproto.Header, msg []byte) error {
	if len(msg) < ofproto.HeaderLen+4 {
		return fmt.Errorf("%w: %d-byte error message", errMalformed, len(msg))
	}
	s.errorsReceived.Add(1)
	e := &OFError{
		Type: binary.BigEndian.Uint16(msg[8:10]),
		Code: binary.BigEndian.Uint16(msg[10:12]),
		Data: bytes.Clone(msg[12:]),
	}
	s.mu.Lock()
	p := s.pending[h.Xid]
	if p != nil {
		delete(s.pending, h.Xid)
	}
	var w *errorWatch
	if p == nil {
		for _, x := range s.watches {
			if h.Xid-x.first < x.n {
				w = x
				break
			}
		}
	}
	s.mu.Unlock()
	switch {
	case p != nil:
		p.done <- reply{err: e}
	case w != nil:
		w.fn(h.Xid, e)
	default:
		s.log.Warn("switch error without a request", zap.Uint32("xid", h.Xid), zap.Error(e))
	}
	return nil
}

func (s *Session) handleMultipart(h ofproto.Header, msg []byte) error {
	if len(msg) < ofproto.HeaderLen+8 {
		return fmt.Errorf("%w: %d-byte multipart reply", errMalformed, len(msg))
	}
	flags := binary.BigEndian.Uint16(msg[10:12])
	s.mu.Lock()
	p := s.pending[h.Xid]
	if p == nil || !p.multipart {
		s.mu.Unlock()
		s.log.Debug("multipart reply without a request", zap.Uint32("xid", h.Xid))
		return nil
	}
	p.parts = append(p.parts, bytes.Clone(msg[ofproto.HeaderLen+8:]))
	last := flags&ofproto.MultipartReplyMore == 0
	if last {
		delete(s.pending, h.Xid)
	}
	s.mu.Unlock()
	if last {
		p.done <- reply{parts: p.parts}
	}
	return nil
}

func (s *Session) handlePortStatus(msg []byte) error {
	if len(msg) != ofproto.HeaderLen+8+portLen {
		return fmt.Errorf("%w: port status of %d bytes", errMalformed, len(msg))
	}
	reason := PortReason(msg[ofproto.HeaderLen]) // then 7 bytes of padding
	p := decodePort(msg[ofproto.HeaderLen+8:])
	s.mu.Lock()
	old, had := s.ports[p.No]
	switch reason {
	case PortDeleted:
		delete(s.ports, p.No)
	default:
		s.ports[p.No] = p
	}
	s.mu.Unlock()
	oldName := ""
	if had && old.Name != p.Name {
		oldName = old.Name
		if reason == PortModified {
			reason = PortRenamed
		}
	}
	s.hooks.portStatus(s, reason, p, oldName)
	return nil
}

// portLen is the size of an OF1.3 ofp_port.
const portLen = 64

// decodePort decodes an ofp_port (portLen bytes): port_no, 4 pad, hw_addr, 2 pad, name[16],
// config, state, then features and speeds (not kept). Decoded here rather than with
// netrack's ofp.Port, whose ReadFrom writes the padding into a package variable (a data race
// between switches handshaking at once).
func decodePort(b []byte) Port {
	name := b[16:32]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return Port{
		No:     binary.BigEndian.Uint32(b[0:4]),
		HWAddr: net.HardwareAddr(bytes.Clone(b[8:14])),
		Name:   string(name),
		Config: binary.BigEndian.Uint32(b[32:36]),
		State:  binary.BigEndian.Uint32(b[36:40]),
	}
}

// decodePorts decodes an OFPMP_PORT_DESC reply body.
func decodePorts(body []byte) ([]Port, error) {
	if len(body)%portLen != 0 {
		return nil, fmt.Errorf("%w: port desc body of %d bytes", errMalformed, len(body))
	}
	ports := make([]Port, 0, len(body)/portLen)
	for off := 0; off < len(body); off += portLen {
		ports = append(ports, decodePort(body[off:off+portLen]))
	}
	return ports, nil
}
