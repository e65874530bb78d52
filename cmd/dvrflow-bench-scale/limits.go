package main

import (
	"fmt"
	"syscall"
)

// raiseFileLimit makes sure this process (the simulator: one socket per bridge and
// controller) and the dvrflowd it starts (one per bridge) may open need files, raising
// RLIMIT_NOFILE, the hard limit too when it is lower (as root). Children inherit it: a
// limit set explicitly is not put back for them by Go's runtime.
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
			"(it takes root with CAP_SYS_RESOURCE; fewer -hosts or -controllers fit): %w", lim.Cur, lim.Max, need, err)
	}
	return nil
}
