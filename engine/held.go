// Packet-ins held until the view can answer them.

package engine

import (
	"sync"
	"time"

	"github.com/dvrflow/dvrflow/controller"
)

// held is a question a switch asked (an ARP request, a DHCP message) that the view could not
// answer when it came: a port the API just created can be faster than the change log, and a
// VM that boots as it is plugged faster than its port-status.
type held[Q any] struct {
	sess   *controller.Session
	inPort uint32
	q      Q
	at     time.Time
}

// heldList is the questions of one kind waiting for a pass (guarded by the engine's mu).
type heldList[Q any] struct {
	list []held[Q]
	max  int           // held at most; beyond that a question is not held
	keep time.Duration // then a question is stale (the asker retries)
}

// hold keeps q until a pass; it reports false when the list is full.
func (l *heldList[Q]) hold(mu *sync.Mutex, sess *controller.Session, inPort uint32, q Q) bool {
	mu.Lock()
	defer mu.Unlock()
	if len(l.list) >= l.max {
		return false
	}
	l.list = append(l.list, held[Q]{sess: sess, inPort: inPort, q: q, at: time.Now()})
	return true
}

// retry answers what answer can answer now, keeps the rest that is not stale (before what was
// held meanwhile) and returns how many went stale. answer runs without mu.
func (l *heldList[Q]) retry(mu *sync.Mutex, answer func(sess *controller.Session, inPort uint32, q Q) bool) (stale int) {
	mu.Lock()
	list := l.list
	l.list = nil
	mu.Unlock()
	var keep []held[Q]
	now := time.Now()
	for _, h := range list {
		switch {
		case answer(h.sess, h.inPort, h.q):
		case now.Sub(h.at) < l.keep:
			keep = append(keep, h)
		default:
			stale++
		}
	}
	if len(keep) > 0 {
		mu.Lock()
		l.list = append(keep, l.list...)
		mu.Unlock()
	}
	return stale
}
