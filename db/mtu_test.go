package db_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/dvrflow/dvrflow/db"
)

// TestNetworkMTU: a network's MTU follows global_physnet_mtu as in Neutron (VXLAN 50
// less, flat and VLAN equal), a requested one may be smaller but not larger, 0 asks for
// the maximum, and an MTU below 68 cannot go with subnets. Refusals change nothing.
func TestNetworkMTU(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		physnet             int
		vxlan, flat, vlan   int
		tooBigVXLAN, tooBig int
	}{
		{1500, 1450, 1500, 1500, 1451, 1501},
		{9000, 8950, 9000, 9000, 8951, 9001},
	} {
		cfg := db.DefaultConfig()
		cfg.GlobalPhysnetMTU = c.physnet
		s, err := db.Open(ctx, pg.NewDatabase(t), cfg, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		vx := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p"}))(t)
		flat := ok(s.CreateNetwork(ctx, db.NetworkSpec{NetworkType: ptr("flat"), PhysicalNetwork: ptr("public")}))(t)
		vlan := ok(s.CreateNetwork(ctx, db.NetworkSpec{NetworkType: ptr("vlan"), PhysicalNetwork: ptr("physnet1"), SegmentationID: ptr(int64(100))}))(t)
		if vx.MTU != c.vxlan || flat.MTU != c.flat || vlan.MTU != c.vlan {
			t.Fatalf("physnet %d: MTUs vxlan %d, flat %d, vlan %d; want %d, %d, %d", c.physnet, vx.MTU, flat.MTU, vlan.MTU, c.vxlan, c.flat, c.vlan)
		}
		if got := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p", MTU: ptr(c.vxlan)}))(t).MTU; got != c.vxlan {
			t.Fatalf("physnet %d: the maximum asked for gives %d", c.physnet, got)
		}
		if got := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p", MTU: ptr(0)}))(t).MTU; got != c.vxlan {
			t.Fatalf("physnet %d: mtu 0 gives %d, want the maximum %d", c.physnet, got, c.vxlan)
		}
		if got := ok(s.UpdateNetwork(ctx, flat.ID, db.NetworkSpec{MTU: ptr(1280)}))(t).MTU; got != 1280 {
			t.Fatalf("physnet %d: flat network updated to MTU %d, want 1280", c.physnet, got)
		}
		if got := ok(s.UpdateNetwork(ctx, flat.ID, db.NetworkSpec{MTU: ptr(0)}))(t).MTU; got != c.flat {
			t.Fatalf("physnet %d: mtu 0 on update gives %d, want %d", c.physnet, got, c.flat)
		}
		ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: vx.ID, CIDR: ptr("10.0.0.0/24")}))(t)
		tiny := ok(s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p", MTU: ptr(60)}))(t) // no subnets: Neutron takes it

		rev := revision(t, s)
		tooBig := "Invalid input for operation: Requested MTU is too big, maximum is "
		for _, r := range []struct {
			name     string
			call     func() error
			typ, msg string
		}{
			{"vxlan create above the maximum", func() error {
				_, err := s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p", MTU: ptr(c.tooBigVXLAN)})
				return err
			}, "InvalidInput", tooBig},
			{"flat create above the maximum", func() error {
				_, err := s.CreateNetwork(ctx, db.NetworkSpec{NetworkType: ptr("flat"), PhysicalNetwork: ptr("other"), MTU: ptr(c.tooBig)})
				return err
			}, "InvalidInput", tooBig},
			{"bulk create above the maximum", func() error {
				_, err := s.CreateNetworks(ctx, []db.NetworkSpec{{ProjectID: "p"}, {ProjectID: "p", MTU: ptr(c.tooBigVXLAN)}})
				return err
			}, "InvalidInput", "Item 1: " + tooBig},
			{"update above the maximum", func() error {
				_, err := s.UpdateNetwork(ctx, vx.ID, db.NetworkSpec{MTU: ptr(c.tooBigVXLAN)})
				return err
			}, "InvalidInput", tooBig},
			{"negative", func() error {
				_, err := s.CreateNetwork(ctx, db.NetworkSpec{ProjectID: "p", MTU: ptr(-1)})
				return err
			}, "InvalidInput", ""},
			{"below 68 with a subnet", func() error {
				_, err := s.UpdateNetwork(ctx, vx.ID, db.NetworkSpec{MTU: ptr(67)})
				return err
			}, "NetworkMTUSubnetConflict", "subnet requires a minimum of 68"},
			{"a subnet below 68", func() error {
				_, err := s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: tiny.ID, CIDR: ptr("10.0.9.0/24")})
				return err
			}, "NetworkMTUSubnetConflict", "subnet requires a minimum of 68"},
			{"bulk subnets below 68", func() error {
				_, err := s.CreateSubnets(ctx, []db.SubnetSpec{{ProjectID: "p", NetworkID: vx.ID, CIDR: ptr("10.0.8.0/24")},
					{ProjectID: "p", NetworkID: tiny.ID, CIDR: ptr("10.0.9.0/24")}})
				return err
			}, "NetworkMTUSubnetConflict", "Item 1: "},
		} {
			err := r.call()
			e, isDB := db.AsError(err)
			if !isDB || e.Type != r.typ || !strings.Contains(e.Message, r.msg) {
				t.Fatalf("physnet %d, %s: %v, want %s containing %q", c.physnet, r.name, err, r.typ, r.msg)
			}
			if strings.HasPrefix(r.msg, tooBig) && !strings.HasSuffix(e.Message, "maximum is "+strconv.Itoa(c.vxlan)+".") && !strings.HasSuffix(e.Message, "maximum is "+strconv.Itoa(c.flat)+".") {
				t.Fatalf("physnet %d, %s: %q does not name the maximum", c.physnet, r.name, e.Message)
			}
			if got := revision(t, s); got != rev {
				t.Fatalf("physnet %d, %s: revision %d, want %d", c.physnet, r.name, got, rev)
			}
		}
		if got := ok(s.UpdateNetwork(ctx, tiny.ID, db.NetworkSpec{MTU: ptr(1200)}))(t).MTU; got != 1200 {
			t.Fatalf("physnet %d: MTU %d after raising it", c.physnet, got)
		}
		ok(s.CreateSubnet(ctx, db.SubnetSpec{ProjectID: "p", NetworkID: tiny.ID, CIDR: ptr("10.0.9.0/24")}))(t)
	}
}
