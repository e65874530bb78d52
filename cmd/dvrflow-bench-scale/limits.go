package main

import (
	"fmt"
	"syscall"
)

// raiseFileLimit makes sure this process (the simulator, when it runs here: one socket per
// bridge and controller) and the processes it starts (dvrflowd: one per bridge; simulator
// workers) may open need files, raising RLIMIT_NOFILE, the hard limit too when it is lower
// (as root). Children inherit it: a limit set explicitly is not put back for them by Go's
// runtime.
func raiseFileLimit(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("open files limit: %w", err)
	}
	if lim.Cur >= need {
		return nil
	}
	want := lim
	want.Cur = need
	want.Max = max(lim.Max, need)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return fmt.Errorf("open files limit %d (hard %d) is below the %d the bridges' sessions need, and raising it failed "+
			"(it takes root with CAP_SYS_RESOURCE; -sim-procs 0 spreads the bridges over as many processes as their limit needs): %w", lim.Cur, lim.Max, need, err)
	}
	return nil
}
