package controller

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
)

type testCert struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

func issue(t *testing.T, cn string, parent *testCert, isCA bool, usage x509.ExtKeyUsage) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: isCA, BasicConstraintsValid: true, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
	}
	if !isCA {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{usage}
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCert{cert: c, key: key, der: der}
}

func (c *testCert) write(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	kd, err := x509.MarshalECPrivateKey(c.key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestTLSRequiresClientCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := issue(t, "switch-ca", nil, true, 0)
	caFile, _ := ca.write(t, dir, "ca")
	srvCert, srvKey := issue(t, "controller", ca, false, x509.ExtKeyUsageServerAuth).write(t, dir, "ctl")
	good := issue(t, "br-int", ca, false, x509.ExtKeyUsageClientAuth)
	rogueCA := issue(t, "rogue", nil, true, 0)
	rogue := issue(t, "br-evil", rogueCA, false, x509.ExtKeyUsageClientAuth)

	cfg, err := TLSConfig(srvCert, srvKey, caFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TLSConfig(srvCert, srvKey, filepath.Join(dir, "missing.pem")); err == nil {
		t.Fatal("missing CA file accepted")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(zaptest.NewLogger(t), Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, tls.NewListener(ln, cfg)) }()
	t.Cleanup(func() { cancel(); <-done })

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	dial := func(client *testCert, dpid uint64) error {
		ccfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
		if client != nil {
			ccfg.Certificates = []tls.Certificate{{Certificate: [][]byte{client.der}, PrivateKey: client.key}}
		}
		c, err := tls.Dial("tcp", ln.Addr().String(), ccfg)
		if err != nil {
			return err
		}
		sw := ofsim.New(zaptest.NewLogger(t), ofsim.Config{DPID: dpid})
		errc := make(chan error, 1)
		go func() { errc <- sw.Serve(ctx, c) }()
		select {
		case err := <-errc:
			return err
		case <-time.After(3 * time.Second):
			return nil
		}
	}
	if err := dial(nil, 1); err == nil {
		t.Error("switch without a client certificate stayed connected")
	}
	if err := dial(rogue, 2); err == nil {
		t.Error("switch with a certificate of another CA stayed connected")
	}
	if err := dial(good, 3); err != nil {
		t.Fatalf("valid switch refused: %v", err)
	}
	if _, ok := srv.Session(3); !ok {
		t.Fatal("valid switch not registered")
	}
	for _, d := range []uint64{1, 2} {
		if _, ok := srv.Session(d); ok {
			t.Errorf("switch %d registered without a valid certificate", d)
		}
	}
}

// rawSwitch completes the handshake by hand and then never reads again.
func rawSwitch(t *testing.T, addr string, dpid uint64) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	r := bufio.NewReader(c)
	if _, err := c.Write(ofproto.AppendHello(nil, 1, ofproto.HelloBitmapOF13)); err != nil {
		t.Fatal(err)
	}
	for got := 0; got < 3; { // hello, features request, port desc request
		h, msg, err := ofproto.ReadMessage(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		got++
		switch h.Type {
		case ofproto.TypeFeaturesRequest:
			b := ofproto.Begin(nil, ofproto.TypeFeaturesReply, h.Xid)
			b = binary.BigEndian.AppendUint64(b, dpid)
			b = append(b, make([]byte, 16)...)
			_, err = c.Write(ofproto.Finish(b, 0))
		case ofproto.TypeMultipartRequest:
			b := ofproto.Begin(nil, ofproto.TypeMultipartReply, h.Xid)
			b = append(b, msg[8:10]...)
			b = append(b, 0, 0, 0, 0, 0, 0)
			_, err = c.Write(ofproto.Finish(b, 0))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func TestSendBlocksWhenQueueFullThenFailsOnClose(t *testing.T) {
	h := newHarness(t, Config{Session: SessionConfig{QueueLen: 2, EchoInterval: time.Minute}})
	rawSwitch(t, h.addr, 0x77)
	s := h.waitSession(0x77, nil)
	msg := make([]byte, 60000)
	copy(msg, ofproto.AppendEcho(nil, ofproto.TypeEchoRequest, 1, make([]byte, 60000-8)))
	blocked := false
	for range 2000 { // 120 MB: far beyond the socket buffers of a peer that does not read
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		err := s.Send(ctx, msg)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			blocked = true
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !blocked {
		t.Fatal("Send never blocked on a full queue")
	}
	// Closing the session releases blocked senders with ErrSessionClosed.
	errc := make(chan error, 1)
	go func() { errc <- s.Send(context.Background(), msg) }()
	time.Sleep(50 * time.Millisecond)
	s.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrSessionClosed) {
			t.Fatalf("blocked send ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocked Send not released by Close")
	}
}

// A port the switch reports while the handshake runs (after the features reply, before
// the port description) is a port of the new session. Before: ignored until it changed.
func TestPortStatusDuringHandshake(t *testing.T) {
	h := newHarness(t, Config{})
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	r := bufio.NewReader(c)
	if _, err := c.Write(ofproto.AppendHello(nil, 1, ofproto.HelloBitmapOF13)); err != nil {
		t.Fatal(err)
	}
	port := func(no uint32, name string) []byte {
		b := binary.BigEndian.AppendUint32(nil, no)
		b = append(b, 0, 0, 0, 0, 2, 0, 0, 0, 0, byte(no), 0, 0)
		n := make([]byte, 16)
		copy(n, name)
		b = append(b, n...)
		return append(b, make([]byte, 64-len(b))...)
	}
	for got := 0; got < 3; {
		hd, msg, err := ofproto.ReadMessage(r, nil)
		if err != nil {
			t.Fatal(err)
		}
		got++
		switch hd.Type {
		case ofproto.TypeFeaturesRequest:
			b := ofproto.Begin(nil, ofproto.TypeFeaturesReply, hd.Xid)
			b = binary.BigEndian.AppendUint64(b, 0x78)
			b = append(b, make([]byte, 16)...)
			_, err = c.Write(ofproto.Finish(b, 0))
		case ofproto.TypeMultipartRequest:
			st := ofproto.Begin(nil, ofproto.TypePortStatus, 0)
			st = append(st, 0, 0, 0, 0, 0, 0, 0, 0) // OFPPR_ADD
			st = ofproto.Finish(append(st, port(5, "tap5")...), 0)
			b := ofproto.Begin(nil, ofproto.TypeMultipartReply, hd.Xid)
			b = append(b, msg[8:10]...)
			b = append(b, 0, 0, 0, 0, 0, 0)
			b = ofproto.Finish(append(b, port(1, "patch-tun")...), 0)
			_, err = c.Write(append(st, b...))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	s := h.waitSession(0x78, nil)
	var names []string
	for _, p := range s.Ports() {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	if strings.Join(names, " ") != "patch-tun tap5" {
		t.Fatalf("session ports %v, want patch-tun and tap5", names)
	}
}
