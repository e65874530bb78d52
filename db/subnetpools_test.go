package db_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/topology"
)

func poolSpec(prefixes ...string) db.SubnetPoolSpec {
	return db.SubnetPoolSpec{ProjectID: "p", Name: ptr("pool"), Prefixes: &prefixes}
}

// TestCreateSubnetPool: prefixes merged and sorted as Neutron's netaddr IPSet does, the IP
// version theirs, Neutron's default prefix lengths (min 8 or 64, max the width, default
// min), and the change logged.
func TestCreateSubnetPool(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	rev := revision(t, s)
	p := ok(s.CreateSubnetPool(ctx, poolSpec("192.168.1.7/24", "10.0.1.0/24", "10.0.0.0/24", "10.0.0.128/25")))(t)
	if want := []string{"10.0.0.0/23", "192.168.1.0/24"}; !slices.Equal(p.Prefixes, want) {
		t.Errorf("prefixes %v, want %v", p.Prefixes, want)
	}
	if p.IPVersion != 4 || p.MinPrefixLen != 8 || p.MaxPrefixLen != 32 || p.DefaultPrefixLen != 8 || p.DefaultQuota != nil || p.Shared || p.IsDefault {
		t.Errorf("defaults: %+v", p)
	}
	changes := changesAfter(t, s, rev)
	if len(changes) != 1 || changes[0].Kind != topology.KindSubnetPool || changes[0].Op != topology.OpCreate {
		t.Fatalf("changes %+v, want one subnet pool create", changes)
	}
	if got := ok(s.GetSubnetPool(ctx, p.ID))(t); !slices.Equal(got.Prefixes, p.Prefixes) || got.Name != "pool" {
		t.Errorf("stored %+v", got)
	}

	v6 := poolSpec("2001:db8:1::/48", "2001:db8::/48")
	v6.MinPrefixLen = ptr(56)
	v6.IsDefault = ptr(true)
	p6 := ok(s.CreateSubnetPool(ctx, v6))(t)
	if !slices.Equal(p6.Prefixes, []string{"2001:db8::/47"}) || p6.IPVersion != 6 || p6.MinPrefixLen != 56 || p6.MaxPrefixLen != 128 ||
		p6.DefaultPrefixLen != 56 || !p6.IsDefault {
		t.Errorf("IPv6 pool %+v", p6)
	}
	// One default per IP version: an IPv4 default beside the IPv6 one is fine.
	v4 := poolSpec("172.16.0.0/12")
	v4.IsDefault = ptr(true)
	ok(s.CreateSubnetPool(ctx, v4))(t)
	if n := len(ok(s.ListSubnetPools(ctx))(t)); n != 3 {
		t.Errorf("%d pools listed, want 3", n)
	}
}

// TestSubnetPoolRefusals: each refusal is Neutron's exception and changes nothing.
func TestSubnetPoolRefusals(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	def := poolSpec("10.0.0.0/16")
	def.IsDefault = ptr(true)
	pool := ok(s.CreateSubnetPool(ctx, def))(t)
	other := ok(s.CreateSubnetPool(ctx, poolSpec("10.1.0.0/16")))(t)
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t)
	ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n.ID, SubnetPoolID: pool.ID, PrefixLen: ptr(24)}))(t)
	with := func(f func(*db.SubnetPoolSpec), prefixes ...string) db.SubnetPoolSpec {
		sp := poolSpec(prefixes...)
		f(&sp)
		return sp
	}
	none := func(*db.SubnetPoolSpec) {}
	create := func(sp db.SubnetPoolSpec) func() error {
		return func() error { _, err := s.CreateSubnetPool(ctx, sp); return err }
	}
	update := func(id string, sp db.SubnetPoolSpec) func() error {
		return func() error { sp.ProjectID = ""; _, err := s.UpdateSubnetPool(ctx, id, sp); return err }
	}
	rev := revision(t, s)
	for _, c := range []struct {
		name     string
		call     func() error
		typ, msg string
	}{
		{"no prefixes", create(db.SubnetPoolSpec{ProjectID: "p", Name: ptr("x")}), "BadRequest", ""},
		{"empty prefixes", create(with(none)), "EmptySubnetPoolPrefixList", "Empty subnet pool prefix list."},
		{"not a CIDR", create(with(none, "10.0.0.0/33")), "InvalidInput", ""},
		{"mixed versions", create(with(none, "10.2.0.0/16", "2001:db8::/32")), "PrefixVersionMismatch", ""},
		{"min above max", create(with(func(sp *db.SubnetPoolSpec) { sp.MinPrefixLen, sp.MaxPrefixLen = ptr(28), ptr(24) }, "10.2.0.0/16")),
			"IllegalSubnetPoolPrefixBounds", "Illegal prefix bounds: min_prefixlen=28, max_prefixlen=24."},
		{"max above 32", create(with(func(sp *db.SubnetPoolSpec) { sp.MaxPrefixLen = ptr(33) }, "10.2.0.0/16")),
			"IllegalSubnetPoolPrefixBounds", "Illegal prefix bounds: max_prefixlen=33, ip_version_max=32."},
		{"default below min", create(with(func(sp *db.SubnetPoolSpec) { sp.MinPrefixLen, sp.DefaultPrefixLen = ptr(24), ptr(20) }, "10.2.0.0/16")),
			"IllegalSubnetPoolPrefixBounds", "Illegal prefix bounds: default_prefixlen=20, min_prefixlen=24."},
		{"default above max", create(with(func(sp *db.SubnetPoolSpec) { sp.MaxPrefixLen, sp.DefaultPrefixLen = ptr(24), ptr(26) }, "10.2.0.0/16")),
			"IllegalSubnetPoolPrefixBounds", "Illegal prefix bounds: default_prefixlen=26, max_prefixlen=24."},
		{"second default", create(with(func(sp *db.SubnetPoolSpec) { sp.IsDefault = ptr(true) }, "10.2.0.0/16")), "InvalidInput",
			"Invalid input for operation: A default subnetpool for this IP family has already been set. Only one default may exist per IP family"},
		{"update to a second default", update(other.ID, db.SubnetPoolSpec{IsDefault: ptr(true)}), "InvalidInput", ""},
		{"shrink", update(pool.ID, db.SubnetPoolSpec{Prefixes: &[]string{"10.0.0.0/17"}}), "IllegalSubnetPoolPrefixUpdate",
			"Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes."},
		{"replace", update(pool.ID, db.SubnetPoolSpec{Prefixes: &[]string{"10.9.0.0/16"}}), "IllegalSubnetPoolPrefixUpdate", ""},
		{"other version", update(pool.ID, db.SubnetPoolSpec{Prefixes: &[]string{"2001:db8::/32"}}), "IllegalSubnetPoolPrefixUpdate", ""},
		{"grow with another version", update(pool.ID, db.SubnetPoolSpec{Prefixes: &[]string{"10.0.0.0/16", "2001:db8::/32"}}), "PrefixVersionMismatch", ""},
		{"update bounds", update(pool.ID, db.SubnetPoolSpec{MinPrefixLen: ptr(30), MaxPrefixLen: ptr(28)}), "IllegalSubnetPoolPrefixBounds", ""},
		{"update default out of bounds", update(pool.ID, db.SubnetPoolSpec{DefaultPrefixLen: ptr(4)}), "IllegalSubnetPoolPrefixBounds", ""},
		{"update unknown", update("nope", db.SubnetPoolSpec{Name: ptr("x")}), "SubnetPoolNotFound", "Subnet pool nope could not be found."},
		{"delete in use", func() error { return s.DeleteSubnetPool(ctx, pool.ID) }, "SubnetPoolDeleteError",
			"Unable to delete subnet pool: Subnet pool has existing allocations."},
		{"delete unknown", func() error { return s.DeleteSubnetPool(ctx, "nope") }, "SubnetPoolNotFound", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			wantErrType(t, err, c.typ)
			if e, _ := db.AsError(err); c.msg != "" && e.Message != c.msg {
				t.Errorf("message %q, want %q", e.Message, c.msg)
			}
			if got := revision(t, s); got != rev {
				t.Errorf("revision %d -> %d", rev, got)
			}
		})
	}
	if got := ok(s.GetSubnetPool(ctx, pool.ID))(t); got.RevisionNumber != 0 || !slices.Equal(got.Prefixes, []string{"10.0.0.0/16"}) {
		t.Errorf("refused updates changed the pool: %+v", got)
	}
}

// TestUpdateSubnetPool: prefixes may grow (appended or replaced by a covering prefix, then
// merged), bounds and the rest change, the revision number counts, and a pool whose subnets
// are gone can be deleted.
func TestUpdateSubnetPool(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	sp := poolSpec("10.11.12.0/24")
	sp.MinPrefixLen = ptr(29)
	p := ok(s.CreateSubnetPool(ctx, sp))(t)
	p = ok(s.UpdateSubnetPool(ctx, p.ID, db.SubnetPoolSpec{Prefixes: &[]string{"10.11.12.0/24", "10.11.15.0/24", "10.11.13.0/24"}}))(t)
	if want := []string{"10.11.12.0/23", "10.11.15.0/24"}; !slices.Equal(p.Prefixes, want) {
		t.Errorf("appended: %v, want %v", p.Prefixes, want)
	}
	p = ok(s.UpdateSubnetPool(ctx, p.ID, db.SubnetPoolSpec{Prefixes: &[]string{"10.11.0.0/16"}}))(t)
	if want := []string{"10.11.0.0/16"}; !slices.Equal(p.Prefixes, want) {
		t.Errorf("extended: %v, want %v", p.Prefixes, want)
	}
	p = ok(s.UpdateSubnetPool(ctx, p.ID, db.SubnetPoolSpec{Name: ptr("new"), MinPrefixLen: ptr(28), MaxPrefixLen: ptr(30),
		DefaultQuota: ptr(int64(16)), IsDefault: ptr(true)}))(t)
	if p.Name != "new" || p.MinPrefixLen != 28 || p.MaxPrefixLen != 30 || p.DefaultPrefixLen != 29 || *p.DefaultQuota != 16 ||
		!p.IsDefault || p.RevisionNumber != 3 {
		t.Errorf("updated: %+v", p)
	}
	n := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t)
	sn := ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: n.ID, SubnetPoolID: p.ID}))(t)
	if err := s.DeleteSubnet(ctx, sn.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSubnetPool(ctx, p.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetSubnetPool(ctx, p.ID)
	wantErrType(t, err, "SubnetPoolNotFound")
}

// TestSubnetFromPool: a subnet of a pool gets the first free prefix of its length (the
// smallest free block that holds it, lowest address first), or the CIDR it asks for if
// free; exhaustion, bounds, quota, IP version and network affinity are Neutron's refusals
// and change nothing; a deleted subnet's prefix is free again.
func TestSubnetFromPool(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	sp := poolSpec("10.0.0.0/24", "10.1.0.0/28")
	sp.MinPrefixLen, sp.MaxPrefixLen, sp.DefaultPrefixLen = ptr(24), ptr(28), ptr(26)
	pool := ok(s.CreateSubnetPool(ctx, sp))(t)
	v6 := ok(s.CreateSubnetPool(ctx, poolSpec("2001:db8::/48")))(t)
	net := func() string { return ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID }
	sub := func(spec db.SubnetSpec) (*topology.Subnet, error) {
		if spec.NetworkID == "" {
			spec.NetworkID = net()
		}
		spec.ProjectID = "p"
		return s.CreateSubnet(ctx, spec)
	}
	for _, c := range []struct {
		spec db.SubnetSpec
		want string
	}{
		{db.SubnetSpec{SubnetPoolID: pool.ID, PrefixLen: ptr(28)}, "10.1.0.0/28"}, // the smallest block first
		{db.SubnetSpec{SubnetPoolID: pool.ID}, "10.0.0.0/26"},                     // default_prefixlen
		{db.SubnetSpec{SubnetPoolID: pool.ID, CIDR: ptr("10.0.0.128/26")}, "10.0.0.128/26"},
		{db.SubnetSpec{SubnetPoolID: pool.ID, PrefixLen: ptr(27), IPVersion: ptr(4)}, "10.0.0.64/27"},
		{db.SubnetSpec{SubnetPoolID: pool.ID, PrefixLen: ptr(26)}, "10.0.0.192/26"},
		{db.SubnetSpec{SubnetPoolID: pool.ID, PrefixLen: ptr(28)}, "10.0.0.96/28"},
	} {
		sn := ok(sub(c.spec))(t)
		if sn.CIDR != c.want || sn.SubnetPoolID != pool.ID || sn.GatewayIP == "" {
			t.Errorf("%+v: subnet %s pool %q gateway %q, want %s of %s", c.spec, sn.CIDR, sn.SubnetPoolID, sn.GatewayIP, c.want, pool.ID)
		}
	}
	// An IPv6 pool hands out IPv6 subnets (its default_prefixlen, 64); on a network whose
	// IPv4 subnet has no pool: Neutron's affinity holds per IP version.
	plain4 := net()
	ok(sub(db.SubnetSpec{NetworkID: plain4, CIDR: ptr("10.21.0.0/24")}))(t)
	if sn := ok(sub(db.SubnetSpec{NetworkID: plain4, SubnetPoolID: v6.ID}))(t); sn.CIDR != "2001:db8::/64" || sn.IPVersion != 6 || sn.GatewayIP != "2001:db8::1" {
		t.Errorf("subnet of the IPv6 pool: %s v%d gateway %s, want 2001:db8::/64 v6 gateway 2001:db8::1", sn.CIDR, sn.IPVersion, sn.GatewayIP)
	}
	pooled := ok(sub(db.SubnetSpec{SubnetPoolID: pool.ID, PrefixLen: ptr(28)}))(t) // 10.0.0.112/28, the last
	other := ok(s.CreateSubnetPool(ctx, poolSpec("10.9.0.0/16")))(t)
	plainNet := net()
	ok(sub(db.SubnetSpec{NetworkID: plainNet, CIDR: ptr("10.20.0.0/24")}))(t)
	quota := poolSpec("10.30.0.0/16")
	quota.DefaultQuota = ptr(int64(320)) // a /24 and a /26, not two /24
	quotaPool := ok(s.CreateSubnetPool(ctx, quota))(t)
	ok(sub(db.SubnetSpec{SubnetPoolID: quotaPool.ID, PrefixLen: ptr(24)}))(t)

	for _, c := range []struct {
		name, typ string
		spec      db.SubnetSpec
	}{
		{"exhausted", "SubnetAllocationError", db.SubnetSpec{SubnetPoolID: pool.ID, PrefixLen: ptr(28)}},
		{"asked CIDR taken", "SubnetAllocationError", db.SubnetSpec{SubnetPoolID: pool.ID, CIDR: ptr("10.0.0.0/26")}},
		{"asked CIDR outside", "SubnetAllocationError", db.SubnetSpec{SubnetPoolID: pool.ID, CIDR: ptr("10.5.0.0/26")}},
		{"above max", "MaxPrefixSubnetAllocationError", db.SubnetSpec{SubnetPoolID: pool.ID, PrefixLen: ptr(29)}},
		{"below min", "MinPrefixSubnetAllocationError", db.SubnetSpec{SubnetPoolID: pool.ID, PrefixLen: ptr(23)}},
		{"cidr and prefixlen", "BadRequest", db.SubnetSpec{SubnetPoolID: pool.ID, CIDR: ptr("10.0.0.0/26"), PrefixLen: ptr(26)}},
		{"pools with no cidr", "BadRequest", db.SubnetSpec{SubnetPoolID: pool.ID, AllocationPools: &[]topology.AllocationPool{}}},
		{"prefixlen without pool", "BadRequest", db.SubnetSpec{PrefixLen: ptr(26)}},
		{"IPv4 from an IPv6 pool", "BadRequest", db.SubnetSpec{SubnetPoolID: v6.ID, IPVersion: ptr(4)}},
		{"IPv4 CIDR from an IPv6 pool", "InvalidInput", db.SubnetSpec{SubnetPoolID: v6.ID, CIDR: ptr("10.0.0.0/26")}},
		{"unknown pool", "SubnetPoolNotFound", db.SubnetSpec{SubnetPoolID: "nope"}},
		{"quota", "SubnetPoolQuotaExceeded", db.SubnetSpec{SubnetPoolID: quotaPool.ID, PrefixLen: ptr(24)}},
		{"another pool on the network", "NetworkSubnetPoolAffinityError", db.SubnetSpec{NetworkID: pooled.NetworkID, SubnetPoolID: other.ID}},
		{"no pool on a pool's network", "NetworkSubnetPoolAffinityError", db.SubnetSpec{NetworkID: pooled.NetworkID, CIDR: ptr("10.40.0.0/24")}},
		{"a pool on a network without", "NetworkSubnetPoolAffinityError", db.SubnetSpec{NetworkID: plainNet, SubnetPoolID: other.ID}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.spec.NetworkID == "" {
				c.spec.NetworkID = net()
			}
			rev := revision(t, s)
			_, err := sub(c.spec)
			wantErrType(t, err, c.typ)
			if got := revision(t, s); got != rev {
				t.Errorf("revision %d -> %d", rev, got)
			}
		})
	}
	if got, _ := db.AsError(func() error { _, err := sub(db.SubnetSpec{SubnetPoolID: pool.ID, PrefixLen: ptr(28)}); return err }()); got == nil ||
		got.Class != db.SubnetAllocationClass || !strings.HasPrefix(got.Message, "Failed to allocate subnet: Insufficient prefix space to allocate subnet size /28") {
		t.Errorf("exhaustion: %v", got)
	}
	// A second pool subnet on the same network is fine, and a freed prefix is given again.
	ok(sub(db.SubnetSpec{NetworkID: quotaNetwork(t, s, quotaPool.ID), SubnetPoolID: quotaPool.ID, PrefixLen: ptr(26)}))(t)
	if err := s.DeleteSubnet(ctx, pooled.ID); err != nil {
		t.Fatal(err)
	}
	if again := ok(sub(db.SubnetSpec{SubnetPoolID: pool.ID, PrefixLen: ptr(28)}))(t); again.CIDR != pooled.CIDR {
		t.Errorf("after delete: %s, want the freed %s", again.CIDR, pooled.CIDR)
	}

	// Bulk: items of one pool get distinct prefixes; a refused item changes nothing.
	bulkPool := ok(s.CreateSubnetPool(ctx, func() db.SubnetPoolSpec {
		sp := poolSpec("10.50.0.0/24")
		sp.DefaultPrefixLen = ptr(25)
		return sp
	}()))(t)
	n1, n2, n3 := net(), net(), net()
	rev := revision(t, s)
	_, err := s.CreateSubnets(ctx, []db.SubnetSpec{{ProjectID: "p", NetworkID: n1, SubnetPoolID: bulkPool.ID},
		{ProjectID: "p", NetworkID: n2, SubnetPoolID: bulkPool.ID}, {ProjectID: "p", NetworkID: n3, SubnetPoolID: bulkPool.ID}})
	wantErrType(t, err, "SubnetAllocationError")
	if !strings.HasPrefix(err.Error(), "SubnetAllocationError: Item 2: ") || revision(t, s) != rev {
		t.Errorf("bulk refusal %v, revision %d -> %d", err, rev, revision(t, s))
	}
	subs := ok(s.CreateSubnets(ctx, []db.SubnetSpec{{ProjectID: "p", NetworkID: n1, SubnetPoolID: bulkPool.ID},
		{ProjectID: "p", NetworkID: n2, SubnetPoolID: bulkPool.ID}}))(t)
	if subs[0].CIDR != "10.50.0.0/25" || subs[1].CIDR != "10.50.0.128/25" || subs[1].SubnetPoolID != bulkPool.ID {
		t.Errorf("bulk: %s %s", subs[0].CIDR, subs[1].CIDR)
	}
	if got := ok(s.GetSubnet(ctx, subs[1].ID))(t); got.SubnetPoolID != bulkPool.ID {
		t.Errorf("stored subnet's pool %q", got.SubnetPoolID)
	}
}

// quotaNetwork returns the network of the subnet of pool (there is one).
func quotaNetwork(t *testing.T, s *db.Store, pool string) string {
	t.Helper()
	for _, sn := range ok(s.ListSubnets(context.Background()))(t) {
		if sn.SubnetPoolID == pool {
			return sn.NetworkID
		}
	}
	t.Fatalf("no subnet of pool %s", pool)
	return ""
}

// TestSubnetPoolConcurrentAllocation: two creates at once from one pool never get the same
// prefix; with one prefix left, one gets it and the other is refused.
func TestSubnetPoolConcurrentAllocation(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	sp := poolSpec("10.60.0.0/24")
	sp.DefaultPrefixLen = ptr(25)
	pool := ok(s.CreateSubnetPool(ctx, sp))(t)
	race := func() ([]*topology.Subnet, []error) {
		nets := []string{ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID, ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t).ID}
		subs, errs := make([]*topology.Subnet, 2), make([]error, 2)
		var wg sync.WaitGroup
		for i := range nets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				subs[i], errs[i] = s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: nets[i], SubnetPoolID: pool.ID})
			}()
		}
		wg.Wait()
		return subs, errs
	}
	subs, errs := race()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("both fit: %v", errs)
	}
	got := []string{subs[0].CIDR, subs[1].CIDR}
	slices.Sort(got)
	if !slices.Equal(got, []string{"10.60.0.0/25", "10.60.0.128/25"}) {
		t.Fatalf("concurrent prefixes %v", got)
	}
	if err := s.DeleteSubnet(ctx, subs[0].ID); err != nil {
		t.Fatal(err)
	}
	subs, errs = race()
	won := 0
	for i := range errs {
		if errs[i] == nil {
			won++
			if subs[i].CIDR != got[0] && subs[i].CIDR != got[1] {
				t.Errorf("winner got %s", subs[i].CIDR)
			}
			continue
		}
		wantErrType(t, errs[i], "SubnetAllocationError")
	}
	if won != 1 {
		t.Fatalf("%d of two creates got the one free prefix: %v", won, errs)
	}
}

// TestCreateSubnetPools: a bulk create is one write; a refused item (a second default, also
// within the batch) changes nothing.
func TestCreateSubnetPools(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	def := func(prefix string) db.SubnetPoolSpec {
		sp := poolSpec(prefix)
		sp.IsDefault = ptr(true)
		return sp
	}
	rev := revision(t, s)
	_, err := s.CreateSubnetPools(ctx, []db.SubnetPoolSpec{poolSpec("10.0.0.0/16"), def("10.1.0.0/16"), def("10.2.0.0/16")})
	wantErrType(t, err, "InvalidInput")
	if !strings.Contains(err.Error(), "Item 2: ") || revision(t, s) != rev || len(ok(s.ListSubnetPools(ctx))(t)) != 0 {
		t.Fatalf("refused bulk: %v, revision %d -> %d", err, rev, revision(t, s))
	}
	_, err = s.CreateSubnetPools(ctx, []db.SubnetPoolSpec{poolSpec("10.0.0.0/16"), poolSpec()})
	wantErrType(t, err, "EmptySubnetPoolPrefixList")
	ps := ok(s.CreateSubnetPools(ctx, []db.SubnetPoolSpec{poolSpec("10.0.0.0/16"), def("10.1.0.0/16"), def("2001:db8::/32")}))(t)
	if len(ps) != 3 || revision(t, s) != rev+1 || ps[2].IPVersion != 6 {
		t.Fatalf("bulk: %+v, revision %d -> %d", ps, rev, revision(t, s))
	}
}
