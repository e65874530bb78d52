// How many reconcilers' passes run at once.

package controller

import (
	"context"
	"fmt"
)

// DefaultPasses is how many background passes a Server's reconcilers run at once.
const DefaultPasses = 64

// PassLimit bounds the background passes running at once across reconcilers. A cold start
// or a mastership move kicks thousands of passes, each dumping a switch or encoding
// thousands of flow-mods; with all of them runnable at once, a goroutine the network wakes
// (a lease renewal, an API request, a packet-in) waits behind them for seconds. A pass
// waiting for its switch holds its slot, so the limit is well above the processors. A nil
// *PassLimit limits nothing.
type PassLimit struct{ slots chan struct{} }

// NewPassLimit returns a limit of n passes at once.
func NewPassLimit(n int) *PassLimit { return &PassLimit{slots: make(chan struct{}, max(n, 1))} }

// acquire waits for a slot, or for ctx to end.
func (l *PassLimit) acquire(ctx context.Context) error {
	if l == nil {
		return nil
	}
	select {
	case l.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for a pass slot: %w", ctx.Err())
	}
}

// release gives a slot back.
func (l *PassLimit) release() {
	if l != nil {
		<-l.slots
	}
}

// Running returns how many passes hold a slot.
func (l *PassLimit) Running() int {
	if l == nil {
		return 0
	}
	return len(l.slots)
}
