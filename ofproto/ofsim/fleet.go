package ofsim

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"
)

// FleetConfig configures a Fleet.
type FleetConfig struct {
	// Addr is the controller's host:port (the single-controller form of Addrs).
	Addr string
	// Addrs are several controllers' host:port: every switch keeps a session to each, as
	// Open vSwitch does with several controller targets, each reconnecting on its own
	// backoff. When set, Addr is ignored.
	Addrs []string
	// ConnectRate spaces the first connections (sessions started per second; 0: all at
	// once), so that thousands of switches do not overflow the controller's listen backlog.
	ConnectRate float64
	// MaxBackoff caps the reconnection backoff (default 8 s, as OVS's max_backoff). As OVS's
	// rconn, a switch waits 1 s after losing its session, then doubles the wait after each
	// failed attempt, and starts again from 1 s after a session that lasted longer than the
	// current backoff.
	MaxBackoff time.Duration
	// MinBackoff is the first wait (default 1 s, as OVS).
	MinBackoff time.Duration
}

// Fleet runs many switches against one controller or several, each switch on its own TCP
// session to each, and keeps them connected the way Open vSwitch does.
type Fleet struct {
	log *zap.Logger
	cfg FleetConfig

	mu       sync.Mutex
	switches []*Switch
}

// NewFleet returns an empty fleet.
func NewFleet(log *zap.Logger, cfg FleetConfig) *Fleet {
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 8 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if len(cfg.Addrs) == 0 {
		cfg.Addrs = []string{cfg.Addr}
	}
	return &Fleet{log: log.Named("fleet"), cfg: cfg}
}

// Add adds a switch; Run connects the switches added before it is called.
func (f *Fleet) Add(s *Switch) {
	f.mu.Lock()
	f.switches = append(f.switches, s)
	f.mu.Unlock()
}

// Switches returns the fleet's switches in the order they were added.
func (f *Fleet) Switches() []*Switch {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*Switch(nil), f.switches...)
}

// Run connects every switch (at ConnectRate) and keeps reconnecting them until ctx ends;
// it returns when every session has ended.
func (f *Fleet) Run(ctx context.Context) error {
	sws := f.Switches()
	var wg sync.WaitGroup
	var gap time.Duration
	if f.cfg.ConnectRate > 0 {
		gap = time.Duration(float64(time.Second) / f.cfg.ConnectRate)
	}
	start := time.Now()
	for i, s := range sws {
		if gap > 0 {
			if d := time.Until(start.Add(time.Duration(i) * gap)); d > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
			}
		}
		if ctx.Err() != nil {
			break
		}
		for _, addr := range f.cfg.Addrs {
			wg.Add(1)
			go func() { defer wg.Done(); f.keep(ctx, s, addr) }()
		}
	}
	wg.Wait()
	if err := ctx.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// keep runs one switch's sessions to addr with OVS's backoff.
func (f *Fleet) keep(ctx context.Context, s *Switch, addr string) {
	backoff := f.cfg.MinBackoff
	for ctx.Err() == nil {
		began := time.Now()
		err := s.Run(ctx, addr)
		if ctx.Err() != nil {
			return
		}
		if time.Since(began) > backoff {
			backoff = f.cfg.MinBackoff
		}
		f.log.Debug("session ended", zap.Uint64("dpid", s.DPID()), zap.String("controller", addr), zap.Duration("retry_in", backoff), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, f.cfg.MaxBackoff)
	}
}
