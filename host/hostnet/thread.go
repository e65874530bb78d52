package hostnet

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// onLockedThread runs f on a fresh goroutine locked to its OS thread, restoring the
// thread's original network namespace afterwards. f may switch the thread's namespace
// (netns.Set, netns.NewNamed). If the restore fails, the goroutine exits still locked,
// so the runtime terminates the thread rather than reuse it in a foreign namespace.
func onLockedThread(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("hostnet: current namespace: %w", err)
			return // still locked: thread discarded
		}
		defer orig.Close()
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- fmt.Errorf("hostnet: restore thread namespace: %w (after: %v)", err, ferr)
			return // still locked: thread discarded
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// inNamespace runs f on a locked thread switched into namespace h.
func inNamespace(h netns.NsHandle, f func() error) error {
	return onLockedThread(func() error {
		if err := netns.Set(h); err != nil {
			return fmt.Errorf("hostnet: enter namespace: %w", err)
		}
		return f()
	})
}

// InNamespace runs f on a thread inside the named network namespace: sockets f opens
// belong to that namespace (and stay there when used from other threads afterwards).
func InNamespace(name string, f func() error) error {
	h, err := netns.GetFromName(name)
	if err != nil {
		return fmt.Errorf("hostnet: namespace %s: %w", name, err)
	}
	defer h.Close()
	return inNamespace(h, f)
}
