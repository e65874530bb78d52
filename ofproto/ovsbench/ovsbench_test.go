//go:build integration

package ovsbench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/testbed/ovsinst"
)

const bridge = "brbench"

// flowSet returns n distinct flows shaped like the DVR pipeline's, over four tables.
func flowSet(n int) []ofproto.Flow {
	flows := make([]ofproto.Flow, n)
	for i := range flows {
		mac := net.HardwareAddr{0xfa, 0x16, 0x3e, byte(i >> 16), byte(i >> 8), byte(i)}
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		port := uint32(i%50) + 1
		vid := uint16(i%4000) + 1
		f := &flows[i]
		f.Cookie = 0x8000000000000000 | uint64(i)
		switch i % 4 {
		case 0:
			f.Table, f.Priority = 1, 4
			f.Match = ofproto.Match{ofproto.InPort(port), ofproto.VLANVID(vid), ofproto.EthDst(mac)}
			f.Actions = []ofproto.Action{ofproto.PopVLAN{}, ofproto.SetEthSrc(mac), ofproto.Output{Port: port}}
			f.HasGoto, f.Goto = true, 2
		case 1:
			f.Table, f.Priority = 2, 2
			f.Match = ofproto.Match{ofproto.VLANVID(vid), ofproto.EthDst(mac)}
			f.Actions = []ofproto.Action{ofproto.PopVLAN{}, ofproto.SetTunnelID(uint64(vid)),
				ofproto.SetTunDst(netip.AddrFrom4([4]byte{192, 168, 248, byte(i)})), ofproto.Output{Port: 4}}
		case 2:
			f.Table, f.Priority = 3, 10
			f.Match = ofproto.Match{ofproto.EthType(ofproto.EthTypeARP), ofproto.VLANVID(vid), ofproto.ARPOp(1), ofproto.ARPTPA(ip)}
			f.Actions = []ofproto.Action{
				ofproto.RegMove{Src: ofproto.RefEthSrc, Dst: ofproto.RefEthDst, NBits: 48},
				ofproto.SetEthSrc(mac), ofproto.SetARPOp(2), ofproto.Output{Port: ofproto.PortInPort}}
		case 3:
			f.Table, f.Priority = 4, 5
			f.Match = ofproto.Match{ofproto.EthType(ofproto.EthTypeIPv4), ofproto.VLANVID(vid), ofproto.IPv4Dst(ip)}
			f.Actions = []ofproto.Action{ofproto.DecNwTTL{}, ofproto.SetEthSrc(mac), ofproto.SetEthDst(mac), ofproto.Output{Port: port}}
		}
		f.Match.Canonical()
	}
	return flows
}

// conn is a minimal OpenFlow client on a bridge's management socket, as ovs-ofctl is.
type conn struct {
	c net.Conn
	r *bufio.Reader
	w *bufio.Writer
}

func dial(sock string) (*conn, error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", sock, err)
	}
	cn := &conn{c: c, r: bufio.NewReaderSize(c, 1<<16), w: bufio.NewWriterSize(c, 1<<20)}
	hello := ofproto.AppendHeader(nil, ofproto.Header{Version: ofproto.Version, Type: ofproto.TypeHello, Length: 8, Xid: 1})
	if _, err := c.Write(hello); err != nil {
		c.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	h, _, err := ofproto.ReadMessage(cn.r, nil)
	if err != nil || h.Type != ofproto.TypeHello {
		c.Close()
		return nil, fmt.Errorf("hello reply %v: %w", h.Type, err)
	}
	return cn, nil
}

// waitFor reads messages until one of type t with xid arrives; OFPT_ERRORs are failures,
// echo requests are answered.
func (cn *conn) waitFor(t ofproto.MsgType, xid uint32) ([]byte, error) {
	for {
		h, msg, err := ofproto.ReadMessage(cn.r, nil)
		if err != nil {
			return nil, err
		}
		switch {
		case h.Type == ofproto.TypeError:
			return nil, fmt.Errorf("switch error for xid %d: %x", h.Xid, msg[8:min(len(msg), 24)])
		case h.Type == ofproto.TypeEchoRequest:
			msg[1] = byte(ofproto.TypeEchoReply)
			if _, err := cn.c.Write(msg); err != nil {
				return nil, err
			}
		case h.Type == t && h.Xid == xid:
			return msg, nil
		}
	}
}

// pushBundle installs flows in one atomic ordered bundle and waits for the commit reply.
func pushBundle(sock string, flows []ofproto.Flow) error {
	cn, err := dial(sock)
	if err != nil {
		return err
	}
	defer cn.c.Close()
	const id = 1
	flags := ofproto.BundleAtomic | ofproto.BundleOrdered
	if _, err := cn.w.Write(ofproto.AppendBundleControl(nil, 2, id, ofproto.BundleOpenRequest, flags)); err != nil {
		return err
	}
	if err := cn.w.Flush(); err != nil {
		return err
	}
	if _, err := cn.waitFor(ofproto.TypeExperimenter, 2); err != nil {
		return fmt.Errorf("bundle open: %w", err)
	}
	buf := make([]byte, 0, 1024)
	xid := uint32(3)
	for i := range flows {
		buf = ofproto.AppendBundleAddFlowMod(buf[:0], xid, id, flags, ofproto.FlowAdd, &flows[i], 0)
		if _, err := cn.w.Write(buf); err != nil {
			return fmt.Errorf("bundle add %d: %w", i, err)
		}
		xid++
	}
	if _, err := cn.w.Write(ofproto.AppendBundleControl(nil, xid, id, ofproto.BundleCommitRequest, flags)); err != nil {
		return err
	}
	if err := cn.w.Flush(); err != nil {
		return err
	}
	msg, err := cn.waitFor(ofproto.TypeExperimenter, xid)
	if err != nil {
		return fmt.Errorf("bundle commit: %w", err)
	}
	bc, err := ofproto.DecodeBundleControl(msg)
	if err != nil || bc.Type != ofproto.BundleCommitReply {
		return fmt.Errorf("bundle commit reply %+v: %w", bc, err)
	}
	return nil
}

type bed struct {
	inst  *ovsinst.Instance
	netns string
}

func startBed(tb testing.TB) *bed {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("ovsbench: needs root to run Open vSwitch")
	}
	if _, err := exec.LookPath("ovs-vswitchd"); err != nil {
		tb.Skip("ovsbench: Open vSwitch is not installed")
	}
	ctx := context.Background()
	ns := fmt.Sprintf("ofbench-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add: %v: %s", err, out)
	}
	b := &bed{netns: ns}
	tb.Cleanup(func() {
		if b.inst != nil {
			if err := b.inst.Stop(); err != nil {
				tb.Errorf("stop OVS: %v", err)
			}
		}
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del: %v: %s", err, out)
		}
	})
	inst, err := ovsinst.Start(ctx, zap.NewNop(), "", ns)
	if err != nil {
		tb.Fatal(err)
	}
	b.inst = inst
	if _, err := inst.Vsctl(ctx, "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev",
		"fail_mode=secure", "protocols=OpenFlow13"); err != nil {
		tb.Fatal(err)
	}
	// Wait for the bridge's management socket.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(inst.MgmtSocket(bridge)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no management socket for %s", bridge)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return b
}

func (b *bed) ofctl(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := b.inst.Ofctl(context.Background(), bridge, args...)
	if err != nil {
		tb.Fatalf("ovs-ofctl %v: %v", args, err)
	}
	return out
}

func (b *bed) flowCount(tb testing.TB) int {
	out := b.ofctl(tb, "dump-aggregate")
	_, rest, ok := strings.Cut(out, "flow_count=")
	if !ok {
		tb.Fatalf("dump-aggregate: %q", out)
	}
	n, err := strconv.Atoi(strings.Fields(rest)[0])
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func (b *bed) dump(tb testing.TB) []string {
	var lines []string
	for _, l := range strings.Split(b.ofctl(tb, "--no-stats", "dump-flows"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	return lines
}

func numFlows(tb testing.TB) int {
	if s := os.Getenv("OVSBENCH_FLOWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			tb.Fatalf("OVSBENCH_FLOWS=%q", s)
		}
		return n
	}
	return 100000
}

// BenchmarkPushVsOfctl installs N flows with ofproto (one bundle) and with
// `ovs-ofctl --bundle add-flows` of the same flows, into the same emptied bridge, and reports
// both rates and their ratio. Each iteration does both pushes.
func BenchmarkPushVsOfctl(b *testing.B) {
	n := numFlows(b)
	bd := startBed(b)
	flows := flowSet(n)
	var text strings.Builder
	for i := range flows {
		text.WriteString(flows[i].String())
		text.WriteByte('\n')
	}
	file := filepath.Join(bd.inst.Dir(), "flows.txt")
	if err := os.WriteFile(file, []byte(text.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	var ours, theirs time.Duration
	var ourDump []string
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		bd.ofctl(b, "del-flows")
		b.StartTimer()
		start := time.Now()
		if err := pushBundle(bd.inst.MgmtSocket(bridge), flows); err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		b.StopTimer()
		if got := bd.flowCount(b); got != n {
			b.Fatalf("ofproto push: %d flows on the bridge, want %d", got, n)
		}
		if i == 0 {
			ourDump = bd.dump(b)
		}
		bd.ofctl(b, "del-flows")
		start = time.Now()
		bd.ofctl(b, "--bundle", "add-flows", ovsinst.Switch, file)
		theirs += time.Since(start)
		if got := bd.flowCount(b); got != n {
			b.Fatalf("ovs-ofctl push: %d flows on the bridge, want %d", got, n)
		}
		if i == 0 {
			if d := bd.dump(b); !slices.Equal(d, ourDump) {
				b.Fatalf("bridge differs after ovs-ofctl push of the same flows (%d vs %d lines)", len(d), len(ourDump))
			}
		}
		b.StartTimer()
	}
	b.StopTimer()
	iters := float64(b.N)
	ourRate := float64(n) * iters / ours.Seconds()
	theirRate := float64(n) * iters / theirs.Seconds()
	b.ReportMetric(ourRate, "ofproto-flows/s")
	b.ReportMetric(theirRate, "ofctl-flows/s")
	b.ReportMetric(ourRate/theirRate, "ratio")
	b.Logf("%d flows: ofproto bundle %.0f flows/s, ovs-ofctl --bundle add-flows %.0f flows/s, ratio %.2f",
		n, ourRate, theirRate, ourRate/theirRate)
}

// TestPushSmall checks the push path on a small flow set (run by -tags integration tests).
func TestPushSmall(t *testing.T) {
	bd := startBed(t)
	flows := flowSet(1000)
	if err := pushBundle(bd.inst.MgmtSocket(bridge), flows); err != nil {
		t.Fatal(err)
	}
	lines := bd.dump(t)
	if len(lines) != len(flows) {
		t.Fatalf("%d flows on the bridge, want %d", len(lines), len(flows))
	}
	want := make([]string, len(flows))
	for i := range flows {
		want[i] = flows[i].String()
	}
	slices.Sort(want)
	if !slices.Equal(lines, want) {
		for i := range lines {
			if lines[i] != want[i] {
				t.Fatalf("first difference:\n got  %s\n want %s", lines[i], want[i])
			}
		}
	}
	// A bad flow fails the whole bundle, leaving the bridge as it was.
	bad := []ofproto.Flow{{Table: 9, Priority: 1, Actions: []ofproto.Action{ofproto.Group{ID: 77}}}}
	if err := pushBundle(bd.inst.MgmtSocket(bridge), bad); err == nil {
		t.Fatal("bundle with a flow to a missing group committed")
	} else if !strings.Contains(err.Error(), "switch error") {
		t.Fatalf("unexpected error: %v", err)
	}
	if n := bd.flowCount(t); n != len(flows) {
		t.Fatalf("%d flows after a failed bundle, want %d", n, len(flows))
	}
}
