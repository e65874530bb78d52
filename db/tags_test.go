package db_test

import (
	"context"
	"slices"
	"testing"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
)

// TestTags: a tag change is an update of its resource (revision_number and the topology
// revision move, the change log has the new tags), a change that leaves the tags as they
// were writes nothing, removing a tag it does not have is TagNotFound and changes
// nothing, and the tags survive a reopen of the store.
func TestTags(t *testing.T) {
	ctx := context.Background()
	s, dsn := newStore(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t)

	rev := revision(t, s)
	tags := ok(s.ReplaceTags(ctx, topology.KindNetwork, n.ID, []string{"red", "blue"}))(t)
	if !slices.Equal(tags, []string{"red", "blue"}) {
		t.Fatalf("tags %v", tags)
	}
	got := ok(s.GetNetwork(ctx, n.ID))(t)
	if !slices.Equal(got.Tags, tags) || got.RevisionNumber != n.RevisionNumber+1 {
		t.Fatalf("stored tags %v at revision_number %d, want %v at %d", got.Tags, got.RevisionNumber, tags, n.RevisionNumber+1)
	}
	changes := changesAfter(t, s, rev)
	if len(changes) != 1 || changes[0].Kind != topology.KindNetwork || changes[0].Op != topology.OpUpdate {
		t.Fatalf("changes %+v, want one network update", changes)
	}
	if logged, isNet := changes[0].Object.(*topology.Network); !isNet || !slices.Equal(logged.Tags, tags) {
		t.Fatalf("logged %+v, want the network with its tags", changes[0].Object)
	}

	// No change: the same set in another order, a tag it has, nothing written.
	rev = revision(t, s)
	ok(s.ReplaceTags(ctx, topology.KindNetwork, n.ID, []string{"blue", "red"}))(t)
	if err := s.AddTag(ctx, topology.KindNetwork, n.ID, "red"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveTag(ctx, topology.KindNetwork, n.ID, "green"); err == nil {
		t.Fatal("removing a tag the network does not have succeeded")
	} else if de, isDB := db.AsError(err); !isDB || de.Type != "TagNotFound" || de.Class != db.ClassNotFound {
		t.Fatalf("removing a missing tag: %v, want TagNotFound", err)
	}
	if got := revision(t, s); got != rev {
		t.Fatalf("unchanged tags moved the revision %d -> %d", rev, got)
	}
	if _, err := s.ReplaceTags(ctx, topology.KindNetwork, "no-such-network", nil); err == nil {
		t.Fatal("tags of a missing network changed")
	} else if de, isDB := db.AsError(err); !isDB || de.Type != "NetworkNotFound" {
		t.Fatalf("missing network: %v, want NetworkNotFound", err)
	}

	if err := s.AddTag(ctx, topology.KindNetwork, n.ID, "green"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveTag(ctx, topology.KindNetwork, n.ID, "red"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, dsn)
	if got := ok(s.GetNetwork(ctx, n.ID))(t); !slices.Equal(got.Tags, []string{"blue", "green"}) || got.RevisionNumber != n.RevisionNumber+3 {
		t.Fatalf("after reopen: tags %v at revision_number %d, want [blue green] at %d", got.Tags, got.RevisionNumber, n.RevisionNumber+3)
	}
	// Removing every tag leaves none stored.
	if tags := ok(s.ReplaceTags(ctx, topology.KindNetwork, n.ID, nil))(t); len(tags) != 0 {
		t.Fatalf("tags %v after removing all", tags)
	}
	if got := ok(s.GetNetwork(ctx, n.ID))(t); got.Tags != nil {
		t.Fatalf("stored tags %v after removing all", got.Tags)
	}
}

// TestTagsEveryKind: each tagged kind keeps its tags; a kind without tags is refused.
func TestTagsEveryKind(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	n, sn := tenantNet(t, s, "10.0.0.0/24")
	p := ok(s.CreatePort(ctx, db.PortSpec{ProjectID: "p", NetworkID: n.ID, Tags: []string{"on-create"}}))(t)
	if !slices.Equal(p.Tags, []string{"on-create"}) {
		t.Fatalf("port created with tags %v", p.Tags)
	}
	r := ok(s.CreateRouter(ctx, db.RouterSpec{ProjectID: "p"}))(t)
	pool := ok(s.CreateSubnetPool(ctx, poolSpec("10.10.0.0/16")))(t)
	g := ok(s.CreateSecurityGroup(ctx, db.SecurityGroupSpec{ProjectID: "p", Name: ptr("g")}))(t)
	for _, x := range []struct {
		kind topology.Kind
		id   string
		get  func() ([]string, error)
	}{
		{topology.KindSubnet, sn.ID, func() ([]string, error) { v, err := s.GetSubnet(ctx, sn.ID); return v.Tags, err }},
		{topology.KindPort, p.ID, func() ([]string, error) { v, err := s.GetPort(ctx, p.ID); return v.Tags, err }},
		{topology.KindRouter, r.ID, func() ([]string, error) { v, err := s.GetRouter(ctx, r.ID); return v.Tags, err }},
		{topology.KindSubnetPool, pool.ID, func() ([]string, error) { v, err := s.GetSubnetPool(ctx, pool.ID); return v.Tags, err }},
		{topology.KindSecurityGroup, g.Group.ID, func() ([]string, error) {
			v, err := s.GetSecurityGroup(ctx, g.Group.ID)
			return v.Group.Tags, err
		}},
	} {
		if err := s.AddTag(ctx, x.kind, x.id, "t"); err != nil {
			t.Fatalf("%s: %v", x.kind, err)
		}
		if tags := ok(x.get())(t); !slices.Contains(tags, "t") {
			t.Errorf("%s: tags %v, want t among them", x.kind, tags)
		}
	}
	if err := s.AddTag(ctx, topology.KindHost, "h", "t"); err == nil {
		t.Fatal("a host was tagged")
	}
}
