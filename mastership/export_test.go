package mastership

import (
	"context"
	"io"
	"time"

	"go.uber.org/zap"
)

// InProcessKeeper is a lease keeper's work run in this process.
type InProcessKeeper struct {
	Deadline func() time.Time // reads the deadline it publishes
	Beat     func()           // beats the controller's heartbeat
	Done     <-chan error     // what it returned
}

// KeepInProcess runs a lease keeper's work in this process over in and out, the
// controller's heartbeat beaten once.
func KeepInProcess(ctx context.Context, log *zap.Logger, cfg Config, instance string, leases LeaseStore,
	in io.Reader, out io.Writer) (*InProcessKeeper, error) {
	mem, f, err := newDeadlineMem()
	if err != nil {
		return nil, err
	}
	f.Close()
	mem.beat()
	ch := make(chan error, 1)
	go func() { ch <- keep(ctx, log, keeperSpec{Config: cfg, Instance: instance}, leases, in, out, mem) }()
	return &InProcessKeeper{Deadline: mem.load, Beat: mem.beat, Done: ch}, nil
}

// KeeperPID is the process ID of the loop's keeper (0: none running).
func (l *Loop) KeeperPID() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.remote == nil {
		return 0
	}
	return l.remote.cmd.Process.Pid
}
