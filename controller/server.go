package controller

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/ofproto"
)

// DefaultAddr is the IANA OpenFlow port.
const DefaultAddr = ":6653"

// Config configures a Server.
type Config struct {
	// Session tunes every session.
	Session SessionConfig
	// PacketInRate is each switch's packet-in budget in packets per second (default 1000);
	// PacketInBurst is the bucket size (default 2 x rate). Packet-ins over budget are
	// dropped and counted.
	PacketInRate  float64
	PacketInBurst float64
	// Reconciler is the configuration of the reconcilers the server creates.
	Reconciler ReconcilerConfig
	// Observer is told about packet-ins and, unless Reconciler.Observer is set, about
	// reconcile passes (nil: nobody).
	Observer Observer
}

// Observer is told what the controller does, for metrics. Its methods are called on hot
// paths (packet-ins on the switches' reader goroutines, the end of every reconcile pass):
// they must be cheap and never block.
type Observer interface {
	// FlowModsSent: n flow-mods for flows with this cookie were sent to bridge dpid.
	FlowModsSent(dpid, cookie uint64, n int)
	// Reconciled: a reconcile pass of bridge dpid took d (err set when it failed).
	Reconciled(dpid uint64, d time.Duration, err error)
	// PacketIn: bridge dpid sent a packet-in from table; dropped when it was over the
	// switch's budget.
	PacketIn(dpid uint64, table uint8, dropped bool)
}

type nopObserver struct{}

func (nopObserver) FlowModsSent(uint64, uint64, int)        {}
func (nopObserver) Reconciled(uint64, time.Duration, error) {}
func (nopObserver) PacketIn(uint64, uint8, bool)            {}

// PortReason says what happened to a port.
type PortReason uint8

// Port status reasons (ofp_port_reason, plus PortRenamed for a MODIFY that changed the name).
const (
	PortAdded    PortReason = 0
	PortDeleted  PortReason = 1
	PortModified PortReason = 2
	PortRenamed  PortReason = 3
)

func (r PortReason) String() string {
	switch r {
	case PortAdded:
		return "added"
	case PortDeleted:
		return "deleted"
	case PortModified:
		return "modified"
	case PortRenamed:
		return "renamed"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Event is delivered to subscribers: SwitchConnected, SwitchDisconnected or PortStatus.
type Event interface{ event() }

// SwitchConnected: a switch finished its handshake (a reconnect replaces its old session).
type SwitchConnected struct {
	DPID    uint64
	Ports   []Port
	Session *Session
}

// SwitchDisconnected: a switch's session ended (not sent for a session that was replaced
// by a newer one of the same DPID).
type SwitchDisconnected struct {
	DPID uint64
	Err  error
}

// PortStatus: a port was added, deleted, modified or renamed (OldName set).
type PortStatus struct {
	DPID    uint64
	Reason  PortReason
	Port    Port
	OldName string
}

func (SwitchConnected) event()    {}
func (SwitchDisconnected) event() {}
func (PortStatus) event()         {}

// PacketIn is a packet sent to the controller by a switch. The handler owns it and its Data.
type PacketIn struct {
	Session  *Session
	BufferID uint32
	TotalLen uint16
	Reason   uint8
	Table    uint8
	Cookie   uint64
	InPort   uint32
	Data     []byte
}

// PacketInHandler handles a packet-in. It runs on the switch's reader goroutine, so it must
// not block for long (hand heavy work to a goroutine of its own).
type PacketInHandler func(pi *PacketIn)

type pinRoute struct {
	table        uint8
	cookie, mask uint64
	h            PacketInHandler
}

// Server accepts switch connections and keeps the registry of sessions by DPID.
type Server struct {
	log *zap.Logger
	cfg Config

	mu          sync.Mutex
	sessions    map[uint64]*Session
	subs        map[int]func(Event)
	nextSub     int
	routes      atomic.Pointer[[]*pinRoute] // copied on write, read per packet-in without mu
	reconcilers map[uint64]*Reconciler
	ctx         context.Context // of the running Serve, for reconcilers' background passes
	pinDropped  atomic.Uint64
	pinNoRoute  atomic.Uint64
	pinSlave    atomic.Uint64 // packet-ins from switches this controller is not the master of

	// With EnableRoles: the role SetRoles gave each switch, and who is told of stale masters.
	rolesOn bool
	roles   map[uint64]Mastership
	onStale func(dpid uint64)
}

// NewServer returns a server; call Serve with a listener to accept switches.
func NewServer(log *zap.Logger, cfg Config) *Server {
	cfg.Session = cfg.Session.withDefaults()
	if cfg.PacketInRate <= 0 {
		cfg.PacketInRate = 1000
	}
	if cfg.PacketInBurst <= 0 {
		cfg.PacketInBurst = 2 * cfg.PacketInRate
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Reconciler.Observer == nil {
		cfg.Reconciler.Observer = cfg.Observer
	}
	return &Server{
		log:         log.Named("ofserver"),
		cfg:         cfg,
		sessions:    map[uint64]*Session{},
		subs:        map[int]func(Event){},
		reconcilers: map[uint64]*Reconciler{},
	}
}

// TLSConfig builds a server TLS configuration from PEM files. With caFile set, switches
// must present a client certificate signed by that CA.
func TLSConfig(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading controller certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading switch CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("switch CA %s: no PEM certificate found", caFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ListenAndServe listens on addr (DefaultAddr when empty), with TLS when tlsCfg is not nil,
// and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context, addr string, tlsCfg *tls.Config) error {
	if addr == "" {
		addr = DefaultAddr
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("openflow listen %s: %w", addr, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	return s.Serve(ctx, ln)
}

// Serve accepts switches on ln until ctx ends, then closes ln and every session it
// accepted and waits for their goroutines.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	log := s.log.With(zap.String("listen", ln.Addr().String()))
	log.Info("accepting switches")
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	var sessWG sync.WaitGroup
	defer func() {
		sessWG.Wait()
		// Sessions are gone, so reconcilers are detached: wait for passes in flight.
		s.mu.Lock()
		recs := make([]*Reconciler, 0, len(s.reconcilers))
		for _, r := range s.reconcilers {
			recs = append(recs, r)
		}
		s.mu.Unlock()
		for _, r := range recs {
			r.wait()
		}
	}()
	var conns sync.Map // net.Conn -> struct{}: connections still in handshake or running
	defer context.AfterFunc(ctx, func() {
		conns.Range(func(k, _ any) bool { _ = k.(net.Conn).Close(); return true })
	})()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				conns.Range(func(k, _ any) bool { _ = k.(net.Conn).Close(); return true })
				log.Info("stopped accepting switches")
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		conns.Store(c, struct{}{})
		sessWG.Add(1)
		go func() {
			defer sessWG.Done()
			defer conns.Delete(c)
			s.serveConn(ctx, c)
		}()
	}
}

// serveConn runs one connection: handshake, then it becomes the session's reader.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	remote := c.RemoteAddr().String()
	log := s.log.With(zap.String("remote", remote))
	r := bufio.NewReaderSize(c, 2048)
	sess, ports, err := s.handshake(c, r, log)
	if err != nil {
		log.Warn("switch handshake failed", zap.Error(err))
		_ = c.Close()
		return
	}
	if ctx.Err() != nil {
		_ = c.Close()
		return
	}
	sess.wg.Add(2)
	go sess.writeLoop()
	old := s.register(sess)
	if old != nil {
		sess.log.Info("switch reconnected: replacing its old session", zap.String("old_remote", old.remote))
		old.close(errors.New("replaced by a new connection of the same datapath"))
	}
	sess.log.Info("switch connected", zap.Int("ports", len(ports)), zap.Uint8("tables", sess.numTables))
	roleDone := make(chan struct{})
	if s.rolesOn {
		go func() { defer close(roleDone); s.roleLoop(ctx, sess) }()
	} else {
		close(roleDone)
		s.emit(SwitchConnected{DPID: sess.dpid, Ports: ports, Session: sess})
		s.attachReconciler(ctx, sess)
	}
	sess.readLoop(r) // wg.Done inside
	sess.wg.Wait()
	<-roleDone
	s.unregister(sess)
}

// handshake exchanges hellos, reads features and port descriptions and sets the config,
// all under the handshake deadline, on the connection's own goroutine.
func (s *Server) handshake(c net.Conn, r *bufio.Reader, log *zap.Logger) (*Session, []Port, error) {
	cfg := s.cfg.Session
	_ = c.SetDeadline(time.Now().Add(cfg.HandshakeTimeout))
	if _, err := c.Write(ofproto.AppendHello(nil, 1, ofproto.HelloBitmapOF13)); err != nil {
		return nil, nil, fmt.Errorf("sending hello: %w", err)
	}
	_, msg, err := ofproto.ReadMessage(r, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("reading hello: %w", err)
	}
	h := ofproto.HeaderOf(msg)
	if h.Type != ofproto.TypeHello {
		return nil, nil, fmt.Errorf("%w: first message is %v, not HELLO", errMalformed, h.Type)
	}
	ok, err := ofproto.HelloOffers13(msg)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		_, _ = c.Write(ofproto.AppendError(nil, h.Xid, ofproto.ErrTypeHelloFailed, ofproto.ErrCodeHelloIncompatible, []byte("only OpenFlow 1.3 is supported")))
		return nil, nil, fmt.Errorf("switch does not offer OpenFlow 1.3 (hello version %d)", h.Version)
	}
	const xidFeatures, xidPorts = 2, 3
	req := ofproto.AppendEmpty(nil, ofproto.TypeFeaturesRequest, xidFeatures)
	req = ofproto.AppendMultipartRequest(req, xidPorts, ofproto.MultipartPortDesc, nil)
	if _, err := c.Write(req); err != nil {
		return nil, nil, fmt.Errorf("sending features request: %w", err)
	}
	var feats *switchFeatures
	var ports []Port
	gotPorts := false
	for feats == nil || !gotPorts {
		_, msg, err = ofproto.ReadMessage(r, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("reading features: %w", err)
		}
		h = ofproto.HeaderOf(msg)
		if h.Version != ofproto.Version {
			return nil, nil, fmt.Errorf("%w: version %d during handshake", errMalformed, h.Version)
		}
		switch h.Type {
		case ofproto.TypeEchoRequest:
			if _, err := c.Write(ofproto.AppendEcho(nil, ofproto.TypeEchoReply, h.Xid, msg[ofproto.HeaderLen:])); err != nil {
				return nil, nil, fmt.Errorf("echo reply: %w", err)
			}
		case ofproto.TypeFeaturesReply:
			if len(msg) < ofproto.HeaderLen+24 {
				return nil, nil, fmt.Errorf("%w: features reply of %d bytes", errMalformed, len(msg))
			}
			feats = &switchFeatures{
				DatapathID: binary.BigEndian.Uint64(msg[8:16]),
				NumTables:  msg[20],
			}
		case ofproto.TypeMultipartReply:
			if len(msg) < ofproto.HeaderLen+8 || h.Xid != xidPorts {
				return nil, nil, fmt.Errorf("%w: unexpected multipart reply during handshake", errMalformed)
			}
			ps, err := decodePorts(msg[ofproto.HeaderLen+8:])
			if err != nil {
				return nil, nil, err
			}
			for _, p := range ps { // newer than any status received before it
				ports = slices.DeleteFunc(ports, func(q Port) bool { return q.No == p.No })
				ports = append(ports, p)
			}
			gotPorts = binary.BigEndian.Uint16(msg[10:12])&ofproto.MultipartReplyMore == 0
		case ofproto.TypeError:
			return nil, nil, fmt.Errorf("switch refused handshake: %w", errorFromMsg(msg))
		case ofproto.TypePortStatus:
			// A port that changed while the handshake runs: the port description may
			// predate it.
			if len(msg) != ofproto.HeaderLen+8+portLen {
				return nil, nil, fmt.Errorf("%w: port status of %d bytes", errMalformed, len(msg))
			}
			p := decodePort(msg[ofproto.HeaderLen+8:])
			ports = slices.DeleteFunc(ports, func(q Port) bool { return q.No == p.No })
			if PortReason(msg[ofproto.HeaderLen]) != PortDeleted {
				ports = append(ports, p)
			}
		case ofproto.TypeHello, ofproto.TypePacketIn, ofproto.TypeEchoReply:
		default:
			return nil, nil, fmt.Errorf("%w: unexpected %v during handshake", errMalformed, h.Type)
		}
	}
	if _, err := c.Write(ofproto.AppendSetConfig(nil, 4, cfg.MissSendLen)); err != nil {
		return nil, nil, fmt.Errorf("sending set-config: %w", err)
	}
	_ = c.SetDeadline(time.Time{})
	sess := s.newSession(log, c, feats.DatapathID, feats.NumTables)
	for _, p := range ports {
		sess.ports[p.No] = p
	}
	return sess, ports, nil
}

// newSession builds the session of a connection whose handshake is done.
func (s *Server) newSession(log *zap.Logger, c net.Conn, dpid uint64, numTables uint8) *Session {
	cfg := s.cfg.Session
	sess := &Session{
		log:       log.With(zap.String("dpid", ofproto.DPID(dpid).String())),
		conn:      c,
		cfg:       cfg,
		hooks:     s,
		remote:    c.RemoteAddr().String(),
		dpid:      dpid,
		numTables: numTables,
		out:       make(chan []byte, cfg.QueueLen),
		done:      make(chan struct{}),
		pending:   map[uint32]*pending{},
		ports:     map[uint32]Port{},
		pinTokens: s.cfg.PacketInBurst,
		pinLast:   time.Now(),
		roleKick:  make(chan struct{}, 1),
	}
	sess.xid.Store(16)
	sess.role.Store(uint32(RoleEqual))
	sess.connectedAt = time.Now()
	sess.lastRecv.Store(sess.connectedAt.UnixNano())
	return sess
}

func errorFromMsg(msg []byte) error {
	if len(msg) < ofproto.HeaderLen+4 {
		return fmt.Errorf("%w: short error message", errMalformed)
	}
	return &OFError{Type: binary.BigEndian.Uint16(msg[8:10]), Code: binary.BigEndian.Uint16(msg[10:12])}
}

func (s *Server) register(sess *Session) (old *Session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old = s.sessions[sess.dpid]
	s.sessions[sess.dpid] = sess
	return old
}

func (s *Server) unregister(sess *Session) {
	s.mu.Lock()
	current := s.sessions[sess.dpid] == sess
	if current {
		delete(s.sessions, sess.dpid)
	}
	rec := s.reconcilers[sess.dpid]
	s.mu.Unlock()
	sess.log.Info("switch disconnected", zap.Error(sess.closeErr), zap.Bool("replaced", !current))
	if rec != nil {
		rec.Detach(sess)
	}
	if current && !s.rolesOn { // with roles, the role loop's end told subscribers
		s.emit(SwitchDisconnected{DPID: sess.dpid, Err: sess.closeErr})
	}
}

// Session returns the current session of the switch dpid.
func (s *Server) Session(dpid uint64) (*Session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[dpid]
	return sess, ok
}

// Sessions returns every current session.
func (s *Server) Sessions() []*Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*Session, 0, len(s.sessions))
	for _, sess := range s.sessions {
		out = append(out, sess)
	}
	return out
}

// Subscribe registers fn for every event until the returned function is called. Events
// of one switch arrive in order on that switch's reader goroutine: fn must not block long.
func (s *Server) Subscribe(fn func(Event)) (cancel func()) {
	s.mu.Lock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = fn
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.subs, id)
		s.mu.Unlock()
	}
}

func (s *Server) emit(e Event) {
	s.mu.Lock()
	fns := make([]func(Event), 0, len(s.subs))
	for _, fn := range s.subs {
		fns = append(fns, fn)
	}
	s.mu.Unlock()
	for _, fn := range fns {
		fn(e)
	}
}

// HandlePacketIn registers h for packet-ins from table whose cookie c satisfies
// c&mask == cookie&mask. The first matching registration wins.
func (s *Server) HandlePacketIn(table uint8, cookie, mask uint64, h PacketInHandler) (cancel func()) {
	r := &pinRoute{table: table, cookie: cookie, mask: mask, h: h}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setRoutes(append(s.loadRoutes(), r))
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		rs := s.loadRoutes()
		for i, x := range rs {
			if x == r {
				s.setRoutes(append(rs[:i:i], rs[i+1:]...))
				return
			}
		}
	}
}

// loadRoutes returns the packet-in routes; the slice must not be modified.
func (s *Server) loadRoutes() []*pinRoute {
	if rs := s.routes.Load(); rs != nil {
		return *rs
	}
	return nil
}

// setRoutes publishes a new route list (a fresh slice: readers may hold the old one); the
// caller holds s.mu.
func (s *Server) setRoutes(rs []*pinRoute) {
	rs = rs[:len(rs):len(rs)] // the next append copies
	s.routes.Store(&rs)
}

// PacketInStats returns packet-ins dropped by budgets and those no handler wanted.
func (s *Server) PacketInStats() (dropped, unrouted uint64) {
	return s.pinDropped.Load(), s.pinNoRoute.Load()
}

// PacketInsNotMaster counts packet-ins dropped because this controller was not the
// switch's master.
func (s *Server) PacketInsNotMaster() uint64 { return s.pinSlave.Load() }

// packetIn runs on the session's reader goroutine; msg is the reader's buffer.
func (s *Server) packetIn(sess *Session, msg []byte) {
	now := time.Now()
	sess.pinReceived.Add(1)
	if !s.mayUse(sess) {
		// Only a switch's master answers it (slaves get none; an equal one until its
		// role request is answered may).
		s.pinSlave.Add(1)
		return
	}
	var table uint8
	if len(msg) > 15 {
		table = msg[15] // ofp_packet_in.table_id
	}
	sess.pinTokens = min(s.cfg.PacketInBurst, sess.pinTokens+now.Sub(sess.pinLast).Seconds()*s.cfg.PacketInRate)
	sess.pinLast = now
	if sess.pinTokens < 1 {
		sess.pinDropped.Add(1)
		s.pinDropped.Add(1)
		s.cfg.Observer.PacketIn(sess.dpid, table, true)
		return
	}
	sess.pinTokens--
	s.cfg.Observer.PacketIn(sess.dpid, table, false)
	p, err := decodePacketIn(msg)
	if err != nil {
		// Debug: one line per packet at info or above would let a switch flood the log.
		sess.log.Debug("dropping malformed packet-in", zap.Error(err))
		return
	}
	p.Data = bytes.Clone(p.Data) // msg is the reader's buffer; the handler owns pi
	p.Session = sess
	pi := &p
	var h PacketInHandler
	for _, r := range s.loadRoutes() {
		if r.table == pi.Table && pi.Cookie&r.mask == r.cookie&r.mask {
			h = r.h
			break
		}
	}
	if h == nil {
		s.pinNoRoute.Add(1)
		return
	}
	h(pi)
}

// portStatus runs on the session's reader goroutine.
func (s *Server) portStatus(sess *Session, reason PortReason, p Port, old string) {
	sess.log.Info("port status", zap.Stringer("reason", reason), zap.Uint32("port", p.No), zap.String("name", p.Name))
	if !s.rolesOn {
		s.emit(PortStatus{DPID: sess.dpid, Reason: reason, Port: p, OldName: old})
		return
	}
	sess.emitMu.Lock()
	defer sess.emitMu.Unlock()
	if sess.mastered.Load() {
		s.emit(PortStatus{DPID: sess.dpid, Reason: reason, Port: p, OldName: old})
	}
}

// SetObserver makes o the observer of the server and of the reconcilers it creates (unless
// Config.Reconciler.Observer was set). Call it before Serve: metrics built over a status
// server that reads this server are wired this way, in one direction.
func (s *Server) SetObserver(o Observer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.Reconciler.Observer == s.cfg.Observer {
		s.cfg.Reconciler.Observer = o
	}
	s.cfg.Observer = o
}

// Reconciler returns the reconciler of bridge dpid, creating it on first use; it is
// attached to the bridge's session whenever the bridge (re)connects.
func (s *Server) Reconciler(dpid uint64) *Reconciler {
	s.mu.Lock()
	r := s.reconcilers[dpid]
	if r == nil {
		r = NewReconciler(s.log, dpid, s.cfg.Reconciler)
		s.reconcilers[dpid] = r
	}
	sess, ctx := s.sessions[dpid], s.ctx
	s.mu.Unlock()
	if sess != nil && ctx != nil && s.mayUse(sess) && !r.bound(sess) {
		r.Attach(ctx, sess)
	}
	return r
}

// ReconcilerOf returns the reconciler of bridge dpid if it has one, without creating it.
func (s *Server) ReconcilerOf(dpid uint64) (*Reconciler, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.reconcilers[dpid]
	return r, ok
}

func (s *Server) attachReconciler(ctx context.Context, sess *Session) {
	s.mu.Lock()
	r := s.reconcilers[sess.dpid]
	s.mu.Unlock()
	if r != nil {
		r.Attach(ctx, sess)
	}
}

// switchFeatures is what the handshake keeps of OFPT_FEATURES_REPLY.
type switchFeatures struct {
	DatapathID uint64
	NumTables  uint8
}
