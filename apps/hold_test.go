package apps

import (
	"testing"

	"github.com/dvrflow/dvrflow/topology"
)

// A VM port whose binding moves is realized where it was while held, through further
// updates of its record, and where it is bound once released: each time exactly as a
// fresh view of the corresponding topology.
func TestHoldKeepsAMovingPortWhereItWas(t *testing.T) {
	const id = "vm4-000000000000"
	m := newModel(withVLANs(seedTopology()))
	v := topology.NewView(m.topology(), 0)
	hosts := []string{"compute1", "compute2", "network"}
	before := map[string]string{}
	for _, h := range hosts {
		before[h] = render(v, h)
	}
	p := m.ports[id]
	p.HostID = "compute1"
	m.rev, m.log = 1, nil
	setRec(m, m.ports, topology.KindPort, id, p)
	aff, err := v.Apply(m.log)
	if err != nil {
		t.Fatal(err)
	}
	if aff.Moves[id] != "compute2" {
		t.Fatalf("Moves = %v, want %s from compute2", aff.Moves, id)
	}
	held := v.Hold(id, "compute2")
	if !held.Hosts["compute1"] || !held.Hosts["compute2"] || len(held.Moves) != 0 {
		t.Errorf("Hold affected %v (moves %v): want both hosts, no move", held.Hosts, held.Moves)
	}
	// A status update of the held port keeps it where it is.
	p.Status = topology.PortStatusDown
	m.rev, m.log = 2, nil
	setRec(m, m.ports, topology.KindPort, id, p)
	if aff, err = v.Apply(m.log); err != nil || len(aff.Moves) != 0 {
		t.Fatalf("status update: %v, moves %v", err, aff.Moves)
	}
	for _, h := range hosts {
		if got := render(v, h); got != before[h] {
			t.Errorf("held: host %s differs from before the move:\n%s", h, lineDiff(got, before[h]))
		}
	}
	if got := v.Held(); got[id] != "compute2" || v.BindingHost(id) != "compute1" {
		t.Errorf("Held() = %v, BindingHost = %q", got, v.BindingHost(id))
	}
	v.Release(id)
	fresh := topology.NewView(m.topology(), v.Revision)
	for _, h := range hosts {
		if got, want := render(v, h), render(fresh, h); got != want {
			t.Errorf("released: host %s differs from a fresh view:\n%s", h, lineDiff(got, want))
		}
	}
	if len(v.Held()) != 0 {
		t.Errorf("still held: %v", v.Held())
	}
	// A binding that moves again while held ends the hold.
	v.Hold(id, "compute2")
	p.HostID = "network"
	m.rev, m.log = 3, nil
	setRec(m, m.ports, topology.KindPort, id, p)
	if _, err := v.Apply(m.log); err != nil {
		t.Fatal(err)
	}
	fresh = topology.NewView(m.topology(), v.Revision)
	for _, h := range hosts {
		if got, want := render(v, h), render(fresh, h); got != want {
			t.Errorf("moved again: host %s differs from a fresh view:\n%s", h, lineDiff(got, want))
		}
	}
}
