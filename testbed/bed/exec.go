package bed

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// run runs a command inside the named namespace ns ("" for the root namespace) and
// returns its standard output; on failure the error's text carries standard error.
func run(ctx context.Context, ns, bin string, args ...string) (string, error) {
	argv := append([]string{bin}, args...)
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// Exec runs args[0] with args[1:] inside namespace ns ("" for the root namespace) and
// returns its standard output.
func (b *Bed) Exec(ctx context.Context, ns string, args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("bed: exec: no command")
	}
	out, err := run(ctx, ns, args[0], args[1:]...)
	if err != nil {
		return out, fmt.Errorf("bed: %w", err)
	}
	return out, nil
}

// ip runs `ip [-n ns] args...`.
func (b *Bed) ip(ctx context.Context, ns string, args ...string) error {
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	if _, err := run(ctx, "", "ip", args...); err != nil {
		return fmt.Errorf("bed: %w", err)
	}
	return nil
}

// noIPv6 turns IPv6 off on a root-namespace device (nothing to do when the kernel has
// no IPv6).
func noIPv6(dev string) error {
	err := os.WriteFile(filepath.Join("/proc/sys/net/ipv6/conf", dev, "disable_ipv6"), []byte("1"), 0o644)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("bed: disable IPv6 on %s: %w", dev, err)
	}
	return nil
}

// PingResult is ping's summary.
type PingResult struct {
	Sent, Received int
	Output         string // ping's whole output
}

// Lost is Sent - Received.
func (r PingResult) Lost() int { return r.Sent - r.Received }

var pingSummary = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

func parsePing(out string) (PingResult, error) {
	m := pingSummary.FindStringSubmatch(out)
	if m == nil {
		return PingResult{Output: out}, fmt.Errorf("bed: no ping summary in %q", out)
	}
	sent, _ := strconv.Atoi(m[1])
	recv, _ := strconv.Atoi(m[2])
	return PingResult{Sent: sent, Received: recv, Output: out}, nil
}

func checkDst(dst string) error {
	if a, err := netip.ParseAddr(dst); err != nil || a.Zone() != "" || a.Is4In6() {
		return fmt.Errorf("bed: ping destination %q: want an IPv4 or IPv6 address", dst)
	}
	return nil
}

// Ping pings dst (IPv4 or IPv6) from namespace fromNS every 0.2 s until count replies came back or
// deadline (rounded up to whole seconds) passed (`ping -c count -w deadline`), so Sent
// may exceed count when replies are missing. Missing replies are not an error: read
// Received. The error says ping could not run.
func (b *Bed) Ping(ctx context.Context, fromNS, dst string, count int, deadline time.Duration) (PingResult, error) {
	if err := checkDst(dst); err != nil {
		return PingResult{}, err
	}
	if count <= 0 || deadline <= 0 {
		return PingResult{}, fmt.Errorf("bed: ping: count %d and deadline %s must be positive", count, deadline)
	}
	secs := int(math.Ceil(deadline.Seconds()))
	out, err := run(ctx, fromNS, "ping", "-n", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "1",
		"-w", strconv.Itoa(secs), dst)
	res, perr := parsePing(out)
	if perr != nil {
		if err != nil {
			return res, fmt.Errorf("bed: ping %s from %s: %w", dst, fromNS, err)
		}
		return res, perr
	}
	return res, nil // ping exits 1 when replies are missing: that is in res
}

// process is a background command started by the bed (a ping, a capture).
type process struct {
	b      *Bed
	cmd    *exec.Cmd
	stdout bytes.Buffer // read only after done
	done   chan struct{}
	err    error // Wait's error, set before done closes
	once   sync.Once
}

// start runs argv in ns; stderrLine, when set, sees every line of standard error.
func (b *Bed) start(ns string, argv []string, stderrLine func(string)) (*process, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, errors.New("bed: closed")
	}
	if ns != "" {
		argv = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	p := &process{b: b, done: make(chan struct{})}
	// Not CommandContext: the process outlives the call; stop or Close ends it.
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout = &p.stdout
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, fmt.Errorf("bed: %s: %w", argv[0], err)
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bed: start %s: %w", strings.Join(argv, " "), err)
	}
	b.mu.Lock()
	b.running[p] = struct{}{}
	b.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			if stderrLine != nil {
				stderrLine(sc.Text())
			}
		}
		_, _ = io.Copy(io.Discard, errPipe)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGINT (ping and tcpdump then print their summary and flush), waits,
// and SIGKILLs after killGrace. It is safe to call more than once.
func (p *process) stop() error {
	var err error
	p.once.Do(func() {
		defer func() {
			p.b.mu.Lock()
			delete(p.b.running, p)
			p.b.mu.Unlock()
		}()
		if e := p.cmd.Process.Signal(syscall.SIGINT); e != nil && !errors.Is(e, os.ErrProcessDone) {
			err = fmt.Errorf("bed: interrupt pid %d: %w", p.cmd.Process.Pid, e)
		}
		select {
		case <-p.done:
		case <-time.After(killGrace):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return err
}

// PingRun is a background ping started by StartPing.
type PingRun struct{ p *process }

// StartPing starts `ping -i interval dst` in fromNS in the background, until Stop (or
// Close). ctx only bounds the start.
func (b *Bed) StartPing(ctx context.Context, fromNS, dst string, interval time.Duration) (*PingRun, error) {
	if err := checkDst(dst); err != nil {
		return nil, err
	}
	if interval < 2*time.Millisecond {
		return nil, fmt.Errorf("bed: ping interval %s: at least 2ms", interval)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bed: start ping: %w", err)
	}
	p, err := b.start(fromNS, []string{"ping", "-n", "-i", strconv.FormatFloat(interval.Seconds(), 'f', 3, 64), dst}, nil)
	if err != nil {
		return nil, err
	}
	return &PingRun{p: p}, nil
}

// Stop interrupts the ping and returns its summary. The last request, if it was still in
// flight when ping was interrupted (no reply to its icmp_seq), is not counted as sent: a
// reply can arrive up to the round-trip time after it, and ping exits at once.
func (r *PingRun) Stop() (PingResult, error) {
	if err := r.p.stop(); err != nil {
		return PingResult{}, err
	}
	res, err := parsePing(r.p.stdout.String())
	if err == nil && res.Sent > 0 && !strings.Contains(res.Output, fmt.Sprintf("icmp_seq=%d ", res.Sent)) {
		res.Sent--
	}
	return res, err
}

// CaptureRun is a running tcpdump started by Capture.
type CaptureRun struct {
	b    *Bed
	p    *process
	file string

	mu     sync.Mutex
	stderr []string
}

// Capture starts tcpdump on iface in namespace ns ("" for the root namespace, e.g. a
// Host's UnderlayLink) with a pcap filter ("" for everything), writing to a file in
// the bed's directory. It returns once tcpdump is listening (or ctx ends).
func (b *Bed) Capture(ctx context.Context, ns, iface, filter string) (*CaptureRun, error) {
	if iface == "" || strings.ContainsAny(iface, "/ ") {
		return nil, fmt.Errorf("bed: capture: interface %q", iface)
	}
	dir := filepath.Join(b.dir, "captures")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bed: capture: %w", err)
	}
	b.mu.Lock()
	b.captures++
	file := filepath.Join(dir, fmt.Sprintf("%d-%s.pcap", b.captures, iface))
	b.mu.Unlock()
	c := &CaptureRun{b: b, file: file}
	listening := make(chan struct{})
	var once sync.Once
	argv := []string{"tcpdump", "-i", iface, "-n", "-U", "--immediate-mode", "-Z", "root", "-w", file}
	if filter != "" {
		argv = append(argv, filter)
	}
	p, err := b.start(ns, argv, func(line string) {
		c.mu.Lock()
		c.stderr = append(c.stderr, line)
		c.mu.Unlock()
		if strings.Contains(line, "listening on") {
			once.Do(func() { close(listening) })
		}
	})
	if err != nil {
		return nil, err
	}
	c.p = p
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	select {
	case <-listening:
		return c, nil
	case <-p.done:
		return nil, fmt.Errorf("bed: tcpdump on %s exited: %v: %s", iface, p.err, c.errText())
	case <-wait.Done():
		_ = p.stop()
		return nil, fmt.Errorf("bed: tcpdump on %s never listened: %w: %s", iface, wait.Err(), c.errText())
	}
}

func (c *CaptureRun) errText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.stderr, "\n")
}

// File is the capture's pcap file (removed by Close).
func (c *CaptureRun) File() string { return c.file }

// Stop ends the capture and returns the packets seen, one string each as
// `tcpdump -r -n -e` prints them (continuation lines, such as a VXLAN packet's inner
// frame, joined with "\n").
func (c *CaptureRun) Stop(ctx context.Context) ([]string, error) {
	if err := c.p.stop(); err != nil {
		return nil, err
	}
	out, err := run(ctx, "", "tcpdump", "-r", c.file, "-n", "-e")
	if err != nil {
		return nil, fmt.Errorf("bed: read capture: %w", err)
	}
	return splitPackets(out), nil
}

var tsRE = regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d+ `)

// splitPackets groups tcpdump's text output into packets: a line starting with a
// timestamp starts one.
func splitPackets(out string) []string {
	var pkts []string
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		if tsRE.MatchString(line) || len(pkts) == 0 {
			pkts = append(pkts, line)
			continue
		}
		pkts[len(pkts)-1] += "\n" + line
	}
	return pkts
}

// noTxChecksum turns off checksum offload on a veth end. A frame a kernel sends through a
// veth keeps a partial checksum (the peer is trusted to be local); when the peer is read by
// the userspace datapath of OVS, that frame reaches another kernel through a tap with the
// checksum never filled in, and TCP drops it (ICMP, fully checksummed, passes). Computing
// checksums at the sending veth makes TCP work across the bed, as a real NIC would.
func noTxChecksum(ctx context.Context, ns, dev string) error {
	if _, err := run(ctx, ns, "ethtool", "-K", dev, "tx", "off"); err != nil {
		return fmt.Errorf("bed: checksum offload off on %s: %w", dev, err)
	}
	return nil
}
