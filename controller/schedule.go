// When a reconciler's passes run: kicked by changes, retried with backoff.

package controller

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
)

// kick starts a background pass, or asks the running one to go again.
func (r *Reconciler) kick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sess == nil || r.ctx == nil || !r.primed {
		return
	}
	if r.running {
		r.dirty = true
		return
	}
	r.running = true
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		r.loop()
	}()
}

// wait waits for the background pass, if any, to end.
func (r *Reconciler) wait() { r.bg.Wait() }

func (r *Reconciler) loop() {
	for {
		r.mu.Lock()
		r.dirty = false
		sess, base := r.sess, r.ctx
		r.mu.Unlock()
		if sess == nil || base.Err() != nil {
			r.mu.Lock()
			r.running = false
			r.mu.Unlock()
			return
		}
		ctx, cancel := context.WithTimeout(base, r.cfg.PassTimeout)
		go func() {
			select {
			case <-sess.Done():
				cancel()
			case <-ctx.Done():
			}
		}()
		res, err := r.Reconcile(ctx)
		cancel()
		r.mu.Lock()
		if err != nil && !errors.Is(err, ErrNotConnected) && r.sess == sess && base.Err() == nil {
			r.log.Warn("reconcile failed; retrying", zap.Error(err))
			r.scheduleLocked(r.cfg.RetryBase)
		}
		if res.Deferred > 0 {
			r.scheduleRetryLocked()
		}
		if !r.dirty {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
	}
}

// scheduleLocked kicks again after d (one timer at a time, the earliest wins).
func (r *Reconciler) scheduleLocked(d time.Duration) {
	if r.retry != nil {
		r.retry.Stop()
	}
	r.retry = time.AfterFunc(d, r.kick)
}

func (r *Reconciler) scheduleRetryLocked() {
	var next time.Time
	for _, f := range r.failed {
		if next.IsZero() || f.next.Before(next) {
			next = f.next
		}
	}
	if !next.IsZero() {
		r.scheduleLocked(max(time.Until(next), time.Millisecond))
	}
}
