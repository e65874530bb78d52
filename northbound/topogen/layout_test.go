package topogen

import (
	"reflect"
	"strings"
	"testing"
)

func TestDefaultLayout(t *testing.T) {
	o := DefaultOptions()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	l := plan(o)
	if len(l.hosts) != 5000 || len(l.nets) != 5000 || len(l.vms) != 100000 || len(l.routers) != 2500 || len(l.fipVMs) != 10000 {
		t.Fatalf("sizes: %d hosts %d networks %d VMs %d routers %d FIPs", len(l.hosts), len(l.nets), len(l.vms), len(l.routers), len(l.fipVMs))
	}
	dpids, tips, modes := map[uint64]bool{}, map[string]bool{}, map[string]int{}
	for _, h := range l.hosts {
		modes[h.mode]++
		if tips[h.tunnelIP] {
			t.Fatalf("tunnel IP %s twice", h.tunnelIP)
		}
		tips[h.tunnelIP] = true
		if len(h.dpids) != 3 {
			t.Fatalf("host %s bridges %v", h.name, h.dpids)
		}
		for _, d := range h.dpids {
			if dpids[d] {
				t.Fatalf("DPID %x twice", d)
			}
			dpids[d] = true
		}
	}
	if modes["dvr_snat"] != 10 || modes["dvr"] != 4990 {
		t.Fatalf("modes %v", modes)
	}
	perHost := make([]int, len(l.hosts))
	hostsOfNet := make([]map[int]bool, len(l.nets))
	for _, vm := range l.vms {
		perHost[vm.host]++
		if hostsOfNet[vm.net] == nil {
			hostsOfNet[vm.net] = map[int]bool{}
		}
		hostsOfNet[vm.net][vm.host] = true
	}
	for h, n := range perHost {
		if n != 20 {
			t.Fatalf("host %d runs %d VMs, want 20", h, n)
		}
	}
	lo, hi := 100, 0
	for k, hs := range hostsOfNet {
		if l.vmsPerNet[k+1]-l.vmsPerNet[k] != 20 {
			t.Fatalf("network %d has %d VMs", k, l.vmsPerNet[k+1]-l.vmsPerNet[k])
		}
		lo, hi = min(lo, len(hs)), max(hi, len(hs))
	}
	// A network's 20 VMs sit on a realistic handful of hosts: neither one host nor 20.
	if lo < 6 || hi > 16 {
		t.Fatalf("distinct hosts per network %d-%d, want within 6-16", lo, hi)
	}
	seen := map[int]bool{}
	for _, v := range l.fipVMs {
		if seen[v] || l.vms[v].net >= 2*len(l.routers) {
			t.Fatalf("floating IP VM %d twice or unrouted", v)
		}
		seen[v] = true
	}
	if l.external != "172.16.0.0/17" {
		t.Fatalf("external subnet %s, want 172.16.0.0/17 (17500 addresses needed)", l.external)
	}
	if l.nets[4999].cidr != "10.19.135.0/24" || l.routers[7].nets != [2]int{14, 15} {
		t.Fatalf("address plan: %v %v", l.nets[4999], l.routers[7])
	}
}

func TestLayoutDeterministic(t *testing.T) {
	o := Options{Hosts: 50, VMsPerHost: 4, Networks: 20, Routers: 8, FIPPercent: 10, SNATHosts: 2, Seed: 7}
	a, b := plan(o), plan(o)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same options, different layouts")
	}
	o.Seed = 8
	if c := plan(o); reflect.DeepEqual(a.vms, c.vms) {
		t.Fatal("another seed gave the same placement")
	}
}

func TestOptionsValidate(t *testing.T) {
	good := Options{Hosts: 50, VMsPerHost: 4, Networks: 20, Routers: 8, FIPPercent: 10, SNATHosts: 2}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mutate func(*Options)
		want   string
	}{
		{func(o *Options) { o.Hosts = 0 }, "hosts"},
		{func(o *Options) { o.Routers = 11 }, "routers"},
		{func(o *Options) { o.SNATHosts = 0 }, "SNAT host"},
		{func(o *Options) { o.FIPPercent = 101 }, "percent"},
		{func(o *Options) { o.FIPPercent = 90; o.Routers = 1 }, "routed"},
		{func(o *Options) { o.Networks = 0 }, "networks"},
		{func(o *Options) { o.VMsPerHost = 200 }, "/24"},
		{func(o *Options) { o.BatchSize = 20000 }, "batch size"},
		{func(o *Options) { o.Workers = -1 }, "workers"},
	} {
		o := good
		tc.mutate(&o)
		if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("options %+v: error %v, want one about %q", o, err, tc.want)
		}
	}
}
