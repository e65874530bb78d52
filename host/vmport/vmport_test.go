package vmport

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestTapName(t *testing.T) {
	for id, want := range map[string]string{
		"11111111-aaaa-4000-8000-000000000001": "tap11111111-aa",
		"short":                                "tapshort",
	} {
		if got := TapName(id); got != want {
			t.Errorf("TapName(%q) = %q, want %q", id, got, want)
		}
		if len(TapName(id)) > 15 {
			t.Errorf("TapName(%q) longer than a device name may be", id)
		}
	}
}

// TestPlugRejectsBadInput checks that bad input is refused before anything is made:
// no OVSDB client is needed (nil would panic if used) and no namespace appears.
func TestPlugRejectsBadInput(t *testing.T) {
	good := VM{PortID: "11111111-aaaa-4000-8000-000000000001", MAC: "fa:16:3e:00:00:01",
		Netns: "vmport-test-never-created", CIDR: "10.0.1.5/24", Gateway: "10.0.1.1"}
	bad := map[string]func(v *VM){
		"no port ID":          func(v *VM) { v.PortID = "" },
		"no netns":            func(v *VM) { v.Netns = "" },
		"bad MAC":             func(v *VM) { v.MAC = "fa:16:3e:00:01" },
		"EUI-64 MAC":          func(v *VM) { v.MAC = "fa:16:3e:00:00:00:00:01" },
		"no CIDR":             func(v *VM) { v.CIDR = "10.0.1.5" },
		"IPv6 CIDR":           func(v *VM) { v.CIDR = "fd00::5/64" },
		"gateway off subnet":  func(v *VM) { v.Gateway = "10.0.2.1" },
		"gateway not an addr": func(v *VM) { v.Gateway = "gw" },
	}
	for name, mutate := range bad {
		vm := good
		mutate(&vm)
		if err := Plug(context.Background(), nil, vm); err == nil {
			t.Errorf("%s: Plug accepted %+v", name, vm)
		}
	}
	if _, err := os.Stat(filepath.Join("/run/netns", good.Netns)); err == nil {
		t.Errorf("a rejected Plug created namespace %s", good.Netns)
	}
	if _, _, err := good.check(); err != nil {
		t.Errorf("the good VM is refused: %v", err)
	}
}
