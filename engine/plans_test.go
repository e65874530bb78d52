package engine

import (
	"encoding/json"
	"slices"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/plan"
	"github.com/dvrflow/dvrflow/topology"
)

// TestPlansByNamespace: a VM bound on compute2 gives compute1's qrouter a neighbour entry;
// compute1's plan, recomputed by that namespace only, is the plan computed whole, and is
// published with a new revision; recomputing it again with nothing new publishes nothing.
// A plan that fails validation is not published and is no base for the next one.
func TestPlansByNamespace(t *testing.T) {
	top := peersTopology()
	top.Routers[0].Gateway = nil
	v := topology.NewView(top, 1)
	e := New(zaptest.NewLogger(t), Config{}, nil, nil)
	e.updatePlans(v, v.HostNames(), nil)
	before := e.plans["compute1"]
	if before == nil || len(before.plan.Namespaces) != 1 {
		t.Fatalf("compute1's plan: %+v", before)
	}

	p := topology.Port{ID: "vm3-000000000000", NetworkID: "net1-000000000000", MACAddress: "fa:16:3e:00:01:17", DeviceOwner: "compute:nova",
		DeviceID: "vm3", HostID: "compute2", FixedIPs: []topology.FixedIP{{SubnetID: "sub1-000000000000", IPAddress: "10.0.1.17"}}}
	aff, err := v.Apply([]topology.Change{{Revision: 2, Kind: topology.KindPort, ID: p.ID, Op: topology.OpCreate, Object: &p}})
	if err != nil {
		t.Fatal(err)
	}
	if names := aff.Plans["compute1"]; len(names) != 1 || !names[plan.PrefixQRouter+"r1"] {
		t.Fatalf("compute1's plan reported as %v, want its qrouter alone", aff.Plans)
	}
	ch := e.planCh
	e.updatePlans(v, []string{"compute1"}, aff.Plans)
	got := e.plans["compute1"]
	want := apps.Plan(v, "compute1")
	if g, w := mustJSON(t, got.plan), mustJSON(t, want); g != w {
		t.Fatalf("plan recomputed by namespace:\n%s\nwant\n%s", g, w)
	}
	if !slices.ContainsFunc(got.plan.Namespaces[0].Neighbors, func(n plan.Neighbor) bool { return n.IP == "10.0.1.17" }) {
		t.Errorf("compute1's qrouter has no entry for the new VM: %+v", got.plan.Namespaces[0].Neighbors)
	}
	select {
	case <-ch:
	default:
		t.Error("the changed plan woke no helper")
	}
	ch = e.planCh
	e.updatePlans(v, []string{"compute1"}, aff.Plans)
	if e.plans["compute1"] != got {
		t.Error("a plan with nothing new was published again")
	}
	select {
	case <-ch:
		t.Error("a plan with nothing new woke the helpers")
	default:
	}

	// After a computation that failed validation the published plan is no base: the next
	// one is computed whole. (The stand-in for what an invalid computation leaves: the
	// published plan holds a namespace the view no longer gives, which recomputing by
	// namespace would keep and computing whole drops.)
	for _, invalid := range []bool{false, true} {
		stale := *got
		stale.plan.Namespaces = append(slices.Clone(got.plan.Namespaces), plan.Namespace{Name: plan.PrefixMeta + "gone"})
		stale.invalid = invalid
		e.plans["compute1"] = &stale
		e.updatePlans(v, []string{"compute1"}, aff.Plans)
		kept := slices.ContainsFunc(e.plans["compute1"].plan.Namespaces, func(ns plan.Namespace) bool { return ns.Name == plan.PrefixMeta+"gone" })
		if kept == invalid {
			t.Errorf("base marked invalid %v: the namespace only the base had kept %v", invalid, kept)
		}
	}
}

func mustJSON(t *testing.T, p plan.Plan) string {
	t.Helper()
	p.Revision = 0
	j, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(j)
}
