// Package loadavg reads the machine's load averages, which every benchmark prints next
// to its figures: a figure measured on a loaded machine says so.
package loadavg

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
)

// Now returns the 1, 5 and 15 minute load averages as /proc/loadavg has them
// ("0.52 0.61 0.70"), or "unknown (reason)" where they cannot be read.
func Now() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	s, err := parse(string(b))
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	return s
}

// parse returns the three load averages of /proc/loadavg's line.
func parse(line string) (string, error) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return "", fmt.Errorf("/proc/loadavg: %q has no three load averages", line)
	}
	return strings.Join(f[:3], " "), nil
}

// Minute returns the 1-minute load average, or NaN where it cannot be read: a number for
// a benchmark's metrics, which go test never truncates as it truncates logs.
func Minute() float64 {
	f := strings.Fields(Now())
	if len(f) != 3 {
		return math.NaN()
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return math.NaN()
	}
	return v
}
