package main

import (
	"strings"
	"testing"
)

func TestDeltaChange(t *testing.T) {
	ch, err := newDeltaChange(2000, 300)
	if err != nil {
		t.Fatal(err)
	}
	if ch.adds != 100 || ch.mods != 100 || ch.dels != 100 {
		t.Fatalf("%d adds, %d modifies, %d deletes", ch.adds, ch.mods, ch.dels)
	}
	if len(ch.base) != 2000 || len(ch.desired) != 2000 {
		t.Fatalf("base %d, desired %d", len(ch.base), len(ch.desired))
	}
	// The desired set differs from the base by exactly the change.
	base := map[string]bool{}
	for i := range ch.base {
		base[ch.base[i].String()] = true
	}
	same := 0
	for i := range ch.desired {
		if base[ch.desired[i].String()] {
			same++
		}
	}
	if same != 2000-100-100 {
		t.Fatalf("%d desired flows are unchanged base flows, want %d", same, 2000-200)
	}
	for _, file := range []string{ch.ofctl, ch.ofctlCookie} {
		lines := strings.Split(strings.TrimSpace(file), "\n")
		count := map[string]int{}
		for _, l := range lines {
			cmd, _, _ := strings.Cut(l, " ")
			count[cmd]++
		}
		if count["add"] != 100 || count["modify_strict"] != 100 || count["delete_strict"] != 100 || len(count) != 3 {
			t.Fatalf("ovs-ofctl file commands: %v", count)
		}
	}
	if strings.Contains(ch.ofctl, "/-1") || strings.Count(ch.ofctlCookie, "/-1") != 100 {
		t.Fatal("only the ofctl+ck file should match cookies in its deletes")
	}
	if _, err := newDeltaChange(100, 300); err == nil {
		t.Fatal("a change larger than its base was accepted")
	}
}
