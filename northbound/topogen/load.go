package topogen

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dvrflow/dvrflow/apiclient"
	"github.com/dvrflow/dvrflow/ofproto"
	"go.uber.org/zap"
)

// Client reaches a dvrflow API: URL is its base ("http://127.0.0.1:9696"), Token the
// admin token; HTTP nil means a client of Load's own.
type Client struct {
	URL, Token string
	HTTP       *http.Client
}

// Result is what Load built.
type Result struct {
	// Hosts in registration order: the dvr_snat hosts first, then the compute hosts.
	Hosts []Host `json:"hosts"`
	// ExternalNetwork is the ID of the external network.
	ExternalNetwork string `json:"external_network"`
	// SharedGroup is the ID of the shared security group ("" without one).
	SharedGroup string `json:"shared_group,omitempty"`
	// Requests is the number of API requests Load made, Objects the number of API
	// objects it created (hosts, networks, subnets, routers, interfaces, ports,
	// floating IPs; not the ports the API made by itself).
	Requests int           `json:"requests"`
	Objects  int           `json:"objects"`
	Elapsed  time.Duration `json:"elapsed_ns"`
}

// Host is a registered host and the VM ports bound to it.
type Host struct {
	Name     string            `json:"name"`
	Mode     string            `json:"mode"`
	TunnelIP string            `json:"tunnel_ip"`
	DPIDs    map[string]uint64 `json:"dpids"` // "br-int", "br-tun", "br-ex"
	Ports    []Port            `json:"ports"`
}

// Port is a VM port.
type Port struct {
	ID         string   `json:"id"`
	MAC        string   `json:"mac"`
	Network    string   `json:"network"` // network ID
	IPs        []string `json:"ips"`
	FloatingIP string   `json:"floating_ip,omitempty"`
}

// Load builds the topology of opt through the API at c and returns it. It stops at the
// first failed request (the topology is then partly built).
func Load(ctx context.Context, log *zap.Logger, c Client, opt Options) (*Result, error) {
	if err := opt.Validate(); err != nil {
		return nil, fmt.Errorf("topogen options: %w", err)
	}
	opt = opt.withDefaults()
	if c.URL == "" {
		return nil, errors.New("topogen: API URL is required")
	}
	l := plan(opt)
	hc := c.HTTP
	if hc == nil {
		tr := &http.Transport{MaxIdleConns: 2 * opt.Workers, MaxIdleConnsPerHost: 2 * opt.Workers}
		defer tr.CloseIdleConnections()
		hc = &http.Client{Transport: tr}
	}
	ld := &loader{log: log.Named("topogen"), api: &api{c: apiclient.New(c.URL, c.Token, hc)},
		opt: opt, l: l}
	start := time.Now()
	res, err := ld.run(ctx)
	if err != nil {
		return nil, err
	}
	res.Requests, res.Objects, res.Elapsed = int(ld.api.requests.Load()), int(ld.objects.Load()), time.Since(start)
	ld.log.Info("topology loaded", zap.Int("hosts", len(l.hosts)), zap.Int("networks", len(l.nets)), zap.Int("vms", len(l.vms)),
		zap.Int("routers", len(l.routers)), zap.Int("floating_ips", len(l.fipVMs)), zap.Int("requests", res.Requests),
		zap.Int("objects", res.Objects), zap.Duration("elapsed", res.Elapsed),
		zap.Float64("objects_per_second", float64(res.Objects)/res.Elapsed.Seconds()))
	return res, nil
}

type loader struct {
	log     *zap.Logger
	api     *api
	opt     Options
	l       *layout
	objects atomic.Int64
}

func (ld *loader) run(ctx context.Context) (*Result, error) {
	l := ld.l
	res := &Result{Hosts: make([]Host, len(l.hosts))}
	for i, h := range l.hosts {
		res.Hosts[i] = Host{Name: h.name, Mode: h.mode, TunnelIP: h.tunnelIP, DPIDs: h.dpids, Ports: []Port{}}
	}
	if err := ld.phase(ctx, "hosts", len(l.hosts), int64(len(l.hosts)), func(ctx context.Context, i int) error {
		h := l.hosts[i]
		br := map[string]string{}
		for name, dpid := range h.dpids {
			br[name] = ofproto.DPID(dpid).String()
		}
		return ld.api.do(ctx, "PUT", "/v2.0/dvr-hosts/"+h.name, map[string]any{"dvr_host": map[string]any{
			"tunnel_ip": h.tunnelIP, "mode": h.mode, "bridges": br}}, nil, http.StatusCreated, http.StatusOK)
	}); err != nil {
		return nil, err
	}

	var ext struct {
		Network struct {
			ID string `json:"id"`
		} `json:"network"`
	}
	if err := ld.api.do(ctx, "POST", "/v2.0/networks", map[string]any{"network": map[string]any{"name": "public",
		"router:external": true, "provider:network_type": "flat", "provider:physical_network": "public"}}, &ext, http.StatusCreated); err != nil {
		return nil, err
	}
	res.ExternalNetwork = ext.Network.ID
	var extSub struct {
		Subnet struct {
			ID string `json:"id"`
		} `json:"subnet"`
	}
	if err := ld.api.do(ctx, "POST", "/v2.0/subnets", map[string]any{"subnet": map[string]any{"name": "public",
		"network_id": ext.Network.ID, "cidr": l.external, "ip_version": 4, "enable_dhcp": false}}, &extSub, http.StatusCreated); err != nil {
		return nil, err
	}
	ld.objects.Add(2)

	netIDs := make([]string, len(l.nets))
	if err := ld.bulk(ctx, "networks", "networks", len(l.nets), func(i int) map[string]any {
		n := l.nets[i]
		return map[string]any{"name": n.name, "tenant_id": n.project, "port_security_enabled": !ld.opt.NoPortSecurity}
	}, func(i int, obj bulkObj) { netIDs[i] = obj.ID }); err != nil {
		return nil, err
	}
	subIDs := make([]string, len(l.nets))
	if err := ld.bulk(ctx, "subnets", "subnets", len(l.nets), func(i int) map[string]any {
		n := l.nets[i]
		return map[string]any{"name": n.name, "network_id": netIDs[i], "cidr": n.cidr, "ip_version": 4, "tenant_id": n.project}
	}, func(i int, obj bulkObj) { subIDs[i] = obj.ID }); err != nil {
		return nil, err
	}

	routerIDs := make([]string, len(l.routers))
	if err := ld.phase(ctx, "routers", len(l.routers), int64(len(l.routers)), func(ctx context.Context, i int) error {
		r := l.routers[i]
		var out struct {
			Router struct {
				ID string `json:"id"`
			} `json:"router"`
		}
		if err := ld.api.do(ctx, "POST", "/v2.0/routers", map[string]any{"router": map[string]any{"name": r.name, "tenant_id": r.project,
			"external_gateway_info": map[string]any{"network_id": ext.Network.ID}}}, &out, http.StatusCreated); err != nil {
			return err
		}
		routerIDs[i] = out.Router.ID
		return nil
	}); err != nil {
		return nil, err
	}
	if err := ld.phase(ctx, "router interfaces", 2*len(l.routers), int64(2*len(l.routers)), func(ctx context.Context, i int) error {
		r := l.routers[i/2]
		return ld.api.do(ctx, "PUT", "/v2.0/routers/"+routerIDs[i/2]+"/add_router_interface",
			map[string]any{"subnet_id": subIDs[r.nets[i%2]]}, nil, http.StatusOK)
	}); err != nil {
		return nil, err
	}

	if ld.opt.SharedMembers > 0 {
		id, err := ld.sharedGroup(ctx, l.nets[0].project)
		if err != nil {
			return nil, err
		}
		res.SharedGroup = id
	}
	ports := make([]Port, len(l.vms))
	groups := make([][]string, len(l.vms))
	if err := ld.bulk(ctx, "ports", "ports", len(l.vms), func(i int) map[string]any {
		vm := l.vms[i]
		return map[string]any{"name": vm.name, "network_id": netIDs[vm.net], "tenant_id": l.nets[vm.net].project,
			"device_owner": "compute:nova", "device_id": vm.deviceID, "binding:host_id": l.hosts[vm.host].name}
	}, func(i int, obj bulkObj) {
		groups[i] = obj.SecurityGroups
		p := Port{ID: obj.ID, MAC: obj.MAC, Network: netIDs[l.vms[i].net], IPs: make([]string, 0, len(obj.FixedIPs))}
		for _, f := range obj.FixedIPs {
			p.IPs = append(p.IPs, f.IPAddress)
		}
		ports[i] = p
	}); err != nil {
		return nil, err
	}

	// The shared group's members join it after their project's default group (which the
	// API gave them when created).
	var members []int
	for i := range l.vms {
		if ld.opt.SharedMember(i, len(l.vms)) {
			members = append(members, i)
		}
	}
	if err := ld.phase(ctx, "shared group members", len(members), 0, func(ctx context.Context, k int) error {
		i := members[k]
		return ld.api.do(ctx, "PUT", "/v2.0/ports/"+ports[i].ID, map[string]any{"port": map[string]any{
			"security_groups": append(slices.Clone(groups[i]), res.SharedGroup)}}, nil, http.StatusOK)
	}); err != nil {
		return nil, err
	}

	if err := ld.phase(ctx, "floating IPs", len(l.fipVMs), int64(len(l.fipVMs)), func(ctx context.Context, i int) error {
		v := l.fipVMs[i]
		var out struct {
			FloatingIP struct {
				Address string `json:"floating_ip_address"`
			} `json:"floatingip"`
		}
		if err := ld.api.do(ctx, "POST", "/v2.0/floatingips", map[string]any{"floatingip": map[string]any{
			"floating_network_id": ext.Network.ID, "port_id": ports[v].ID, "tenant_id": l.nets[l.vms[v].net].project}},
			&out, http.StatusCreated); err != nil {
			return err
		}
		ports[v].FloatingIP = out.FloatingIP.Address
		return nil
	}); err != nil {
		return nil, err
	}
	for i, vm := range l.vms {
		res.Hosts[vm.host].Ports = append(res.Hosts[vm.host].Ports, ports[i])
	}
	return res, nil
}

// bulkObj is what Load reads of a bulk-created object.
type bulkObj struct {
	ID             string   `json:"id"`
	MAC            string   `json:"mac_address"`
	SecurityGroups []string `json:"security_groups"`
	FixedIPs       []struct {
		IPAddress string `json:"ip_address"`
	} `json:"fixed_ips"`
}

// bulk creates n objects of a collection in batches of BatchSize, from concurrent
// workers; item builds object i, got receives it back.
func (ld *loader) bulk(ctx context.Context, name, coll string, n int, item func(i int) map[string]any, got func(i int, obj bulkObj)) error {
	size := ld.opt.BatchSize
	batches := (n + size - 1) / size
	return ld.phase(ctx, name, batches, int64(n), func(ctx context.Context, b int) error {
		lo, hi := b*size, min((b+1)*size, n)
		items := make([]map[string]any, 0, hi-lo)
		for i := lo; i < hi; i++ {
			items = append(items, item(i))
		}
		out := map[string][]bulkObj{}
		if err := ld.api.do(ctx, "POST", "/v2.0/"+coll, map[string]any{coll: items}, &out, http.StatusCreated); err != nil {
			return err
		}
		objs := out[coll]
		if len(objs) != hi-lo {
			return fmt.Errorf("POST /v2.0/%s: %d objects back for %d", coll, len(objs), hi-lo)
		}
		for i, o := range objs {
			got(lo+i, o)
		}
		return nil
	})
}

// phase runs fn for 0..n-1 on Workers workers, logging progress; the calls create objs
// objects in all. It stops at the first error.
func (ld *loader) phase(ctx context.Context, name string, n int, objs int64, fn func(ctx context.Context, i int) error) error {
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log := ld.log.With(zap.String("phase", name))
	start := time.Now()
	var next, done atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for w := 0; w < min(ld.opt.Workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = fmt.Errorf("%s %d: %w", name, i, err); cancel() })
					return
				}
				done.Add(1)
			}
		}()
	}
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				d := done.Load()
				log.Info("progress", zap.Int64("done", d), zap.Int("of", n),
					zap.Float64("per_second", float64(d)/time.Since(start).Seconds()))
			case <-stop:
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	if first != nil {
		return first
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	ld.objects.Add(objs)
	el := time.Since(start)
	log.Info("phase done", zap.Int("requests", n), zap.Int64("objects", objs), zap.Duration("elapsed", el),
		zap.Float64("objects_per_second", float64(objs)/el.Seconds()))
	return nil
}

// api sends JSON requests with the admin token, counting them.
type api struct {
	c        *apiclient.Client
	requests atomic.Int64
}

// do sends body as JSON and decodes the answer into out (nil: discard); a status other
// than want fails.
func (a *api) do(ctx context.Context, method, path string, body, out any, want ...int) error {
	a.requests.Add(1)
	code, err := a.c.Do(ctx, method, path, body, out)
	if err != nil {
		return err
	}
	if !slices.Contains(want, code) {
		return fmt.Errorf("%s %s: status %d, want %v", method, path, code, want)
	}
	return nil
}

// sharedGroup creates the shared group in project with its rule: tcp/5432 in from the
// group's own members.
func (ld *loader) sharedGroup(ctx context.Context, project string) (string, error) {
	var g struct {
		SecurityGroup struct {
			ID string `json:"id"`
		} `json:"security_group"`
	}
	if err := ld.api.do(ctx, "POST", "/v2.0/security-groups", map[string]any{"security_group": map[string]any{
		"name": "shared", "tenant_id": project}}, &g, http.StatusCreated); err != nil {
		return "", err
	}
	id := g.SecurityGroup.ID
	if err := ld.api.do(ctx, "POST", "/v2.0/security-group-rules", map[string]any{"security_group_rule": map[string]any{
		"security_group_id": id, "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
		"port_range_min": 5432, "port_range_max": 5432, "remote_group_id": id, "tenant_id": project}}, nil, http.StatusCreated); err != nil {
		return "", err
	}
	ld.objects.Add(2)
	return id, nil
}
