package loadavg

import (
	"math"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	got, err := parse("0.52 0.61 0.70 2/345 12345\n")
	if err != nil || got != "0.52 0.61 0.70" {
		t.Fatalf("parse = %q, %v", got, err)
	}
	if _, err := parse("0.52 0.61\n"); err == nil {
		t.Fatal("a line with two fields parsed")
	}
}

func TestMinute(t *testing.T) {
	if m := Minute(); !(m >= 0) && !math.IsNaN(m) {
		t.Fatalf("Minute() = %v", m)
	}
}

func TestNow(t *testing.T) {
	if got := Now(); len(strings.Fields(got)) != 3 && !strings.HasPrefix(got, "unknown (") {
		t.Fatalf("Now() = %q", got)
	}
}
