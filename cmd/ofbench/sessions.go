package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/ofproto/ofsim"
)

// runSessions measures what n idle switch sessions cost the controller: it serves n fake
// switches run by a child process (so their cost is not counted) and compares goroutines
// and Go memory in use before and after.
func runSessions(ctx context.Context, log *zap.Logger, n int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	srv := controller.NewServer(log, controller.Config{})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	defer func() { cancel(); <-done }()

	g0, m0 := measure()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.CommandContext(ctx, self, "simswitches", "-n", strconv.Itoa(n), "-addr", ln.Addr().String())
	stdin, err := child.StdinPipe()
	if err != nil {
		return err
	}
	child.Stdout, child.Stderr = os.Stderr, os.Stderr
	if err := child.Start(); err != nil {
		return fmt.Errorf("starting fake switches: %w", err)
	}
	defer func() {
		_ = stdin.Close() // the child exits when its stdin closes
		if err := child.Wait(); err != nil {
			log.Warn("fake switch process", zap.Error(err))
		}
	}()
	start := time.Now()
	for len(srv.Sessions()) < n {
		if time.Since(start) > 2*time.Minute {
			return fmt.Errorf("only %d of %d switches connected", len(srv.Sessions()), n)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	connect := time.Since(start)
	// Let handshakes settle, and one echo round pass on every session.
	time.Sleep(time.Second)
	g1, m1 := measure()
	fmt.Printf("%d idle sessions (connected in %v)\n", n, connect.Round(time.Millisecond))
	fmt.Printf("  goroutines: %d -> %d: %.2f per session\n", g0, g1, float64(g1-g0)/float64(n))
	per := func(a, b uint64) float64 { return (float64(b) - float64(a)) / float64(n) / 1024 }
	fmt.Printf("  Go memory in use (heap + stacks): %.1f MiB -> %.1f MiB: %.1f KiB per session (heap %.1f KiB, stacks %.1f KiB)\n",
		mib(m0.HeapInuse+m0.StackInuse), mib(m1.HeapInuse+m1.StackInuse),
		per(m0.HeapInuse+m0.StackInuse, m1.HeapInuse+m1.StackInuse), per(m0.HeapInuse, m1.HeapInuse), per(m0.StackInuse, m1.StackInuse))
	if path := os.Getenv("OFBENCH_HEAPPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
	}
	return nil
}

func measure() (goroutines int, ms runtime.MemStats) {
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// runSimSwitches runs n fake switches against addr until stdin closes.
func runSimSwitches(ctx context.Context, log *zap.Logger, n int, addr string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, bufio.NewReader(os.Stdin))
		cancel()
	}()
	var wg sync.WaitGroup
	errc := make(chan error, n)
	for i := range n {
		sw := ofsim.New(log, ofsim.Config{DPID: uint64(0x5e0000 + i), Ports: []ofsim.Port{{No: 1, Name: "p1"}}})
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sw.Run(ctx, addr); err != nil && !errors.Is(err, context.Canceled) {
				errc <- err
			}
		}()
		if i%100 == 99 {
			time.Sleep(10 * time.Millisecond) // do not overflow the listen backlog
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if ctx.Err() == nil {
			return err
		}
	}
	return nil
}
