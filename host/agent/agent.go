// Package agent is the host helper's loop: it sets up the host's bridges over OVSDB,
// registers the host with the dvrflow API, then long-polls its namespace plan, applies
// it (host/hostnet), brings the metadata proxies in line with it (host/metadata) and
// reports the revision it applied. It decides nothing: every choice comes from its
// configuration or from the plan.
//
// The API may be served by several dvrflowd over one database: the agent talks to the
// one that last answered and goes on at the next when it dies (apiclient.NewFailover).
// Such a switch changes nothing on the host: the agent keeps the revision it applied and
// asks the next dvrflowd for the plans after it.
package agent

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apiclient"
	"github.com/dvrflow/dvrflow/host/hostnet"
	"github.com/dvrflow/dvrflow/host/ovsdb"
	"github.com/dvrflow/dvrflow/ofproto"
	"github.com/dvrflow/dvrflow/plan"
)

// Bridge and patch port names, as Neutron's OVS agent names them.
const (
	BrInt = "br-int"
	BrTun = "br-tun"

	PatchTun = "patch-tun" // on br-int, peer patch-int on br-tun
	PatchInt = "patch-int"
	IntBrEx  = "int-br-ex" // on br-int, peer phy-br-ex on the external bridge
	PhyBrEx  = "phy-br-ex"
	VXLAN    = "vxlan0" // the one flow-based VXLAN port of br-tun
)

// Config is the host's configuration (flags of dvrflow-host).
type Config struct {
	Host string // host name, as ports' binding:host_id
	// APIs are the base URLs of the REST API of every dvrflowd serving this cloud, e.g.
	// http://192.168.248.254:9696, tried in this order: the helper sends each request to
	// the one that last answered and goes on at the next when it fails
	// (apiclient.NewFailover).
	APIs []string
	// API is one base URL, for callers that know one: the same as APIs of it alone.
	API          string
	Token        string   // sent as X-Auth-Token when not empty
	TunnelIP     string   // VXLAN endpoint address
	Mode         string   // "dvr" or "dvr_snat"
	Controllers  []string // OpenFlow controller targets, e.g. tcp:192.168.248.254:6653
	DatapathType string   // "netdev" or "system"
	ExtBridge    string   // external bridge, e.g. br-ex ("" for none)
	ExtUplink    string   // device added to the external bridge ("" for none)
	// PollTimeout is how long the API may hold a plan request (default 30s); the
	// request itself times out a little later.
	PollTimeout time.Duration
	// RetryDelay is the pause after a failed poll or apply (default 1s).
	RetryDelay time.Duration
}

// Validate reports what is wrong with the configuration.
func (c Config) Validate() error {
	if c.Host == "" {
		return errors.New("agent: empty host")
	}
	if c.API != "" && len(c.APIs) > 0 {
		return errors.New("agent: both API and APIs: give one")
	}
	if err := apiclient.CheckURLs(c.apiURLs()); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if ip, err := netip.ParseAddr(c.TunnelIP); err != nil || !ip.Is4() {
		return fmt.Errorf("agent: tunnel IP %q: want an IPv4 address", c.TunnelIP)
	}
	switch c.Mode {
	case "dvr", "dvr_snat":
	default:
		return fmt.Errorf("agent: mode %q: want dvr or dvr_snat", c.Mode)
	}
	if len(c.Controllers) == 0 {
		return errors.New("agent: no controller")
	}
	for _, b := range c.bridges() {
		if err := b.Validate(); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	}
	if c.ExtUplink != "" && c.ExtBridge == "" {
		return errors.New("agent: external uplink without an external bridge")
	}
	return nil
}

// DatapathID derives a bridge's fixed datapath ID from (host, bridge): 16 hex digits,
// stable across restarts, distinct per bridge.
func DatapathID(host, bridge string) string {
	h := fnv.New64a()
	_, _ = io.WriteString(h, host+"\x00"+bridge)
	// Clear the top byte's high bits so IDs read as ordinary numbers; keep 56 bits.
	return ofproto.DPID(h.Sum64() & 0x00ffffffffffffff).String()
}

// apiURLs returns the API URLs to use, in order.
func (c Config) apiURLs() []string {
	if c.API != "" {
		return []string{c.API}
	}
	return c.APIs
}

func (c Config) bridges() []ovsdb.Bridge {
	names := []string{BrInt, BrTun}
	if c.ExtBridge != "" {
		names = append(names, c.ExtBridge)
	}
	var out []ovsdb.Bridge
	for _, n := range names {
		out = append(out, ovsdb.Bridge{Name: n, DatapathType: c.DatapathType, FailMode: "secure",
			Protocols: []string{"OpenFlow13"}, Controllers: c.Controllers, DatapathID: DatapathID(c.Host, n),
			ExternalIDs: map[string]string{"dvrflow-host": c.Host}})
	}
	return out
}

// Proxies are what a plan runs beyond the kernel's state: the metadata proxies of its
// qmeta- namespaces (host/metadata).
type Proxies interface {
	// Sync makes the proxies match plan p, applied just before.
	Sync(ctx context.Context, p plan.Plan) error
	// Shutdown stops them all.
	Shutdown(ctx context.Context)
}

// Agent runs one host's helper.
type Agent struct {
	cfg     Config
	ovs     *ovsdb.Client
	apply   *hostnet.Applier
	proxies Proxies // nil: none
	api     *apiclient.Client
	log     *zap.Logger
}

// New checks cfg and returns an Agent using ovs for bridges, applier for plans and
// proxies (nil for none) for the plans' metadata proxies.
func New(log *zap.Logger, cfg Config, ovs *ovsdb.Client, applier *hostnet.Applier, proxies Proxies) (*Agent, error) {
	if cfg.PollTimeout == 0 {
		cfg.PollTimeout = 30 * time.Second
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = time.Second
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log = log.Named("agent").With(zap.String("host", cfg.Host))
	api, err := apiclient.NewFailover(cfg.apiURLs(), cfg.Token, nil, log)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return &Agent{cfg: cfg, ovs: ovs, apply: applier, proxies: proxies, api: api, log: log}, nil
}

// SetupBridges ensures br-int, br-tun and the external bridge, their patch ports, the
// flow-based VXLAN port and the uplink, and returns each bridge's datapath ID.
func (a *Agent) SetupBridges(ctx context.Context) (map[string]string, error) {
	dpids := map[string]string{}
	for _, b := range a.cfg.bridges() {
		if _, err := a.ovs.EnsureBridge(ctx, b); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		dpids[b.Name] = b.DatapathID
	}
	if _, err := a.ovs.EnsurePatchPair(ctx, BrInt, PatchTun, BrTun, PatchInt); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if _, err := a.ovs.EnsureVXLAN(ctx, BrTun, VXLAN, a.cfg.TunnelIP); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if a.cfg.ExtBridge != "" {
		if _, err := a.ovs.EnsurePatchPair(ctx, BrInt, IntBrEx, a.cfg.ExtBridge, PhyBrEx); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	if a.cfg.ExtUplink != "" {
		if err := a.ovs.EnsureUplink(ctx, a.cfg.ExtBridge, a.cfg.ExtUplink); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	return dpids, nil
}

type hostBody struct {
	DVRHost struct {
		TunnelIP string            `json:"tunnel_ip"`
		Mode     string            `json:"mode"`
		Bridges  map[string]string `json:"bridges"`
	} `json:"dvr_host"`
}

// Register tells the API this host's tunnel IP, mode and bridges' datapath IDs
// (PUT /v2.0/dvr-hosts/{host}).
func (a *Agent) Register(ctx context.Context, dpids map[string]string) error {
	var body hostBody
	body.DVRHost.TunnelIP, body.DVRHost.Mode, body.DVRHost.Bridges = a.cfg.TunnelIP, a.cfg.Mode, dpids
	if _, err := a.api.Do(ctx, http.MethodPut, "/v2.0/dvr-hosts/"+url.PathEscape(a.cfg.Host), body, nil); err != nil {
		return fmt.Errorf("agent: register: %w", err)
	}
	a.log.Info("registered", zap.String("tunnel_ip", a.cfg.TunnelIP), zap.String("mode", a.cfg.Mode), zap.Any("bridges", dpids))
	return nil
}

// Run sets up the bridges, registers, then applies plans until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	dpids, err := a.SetupBridges(ctx)
	if err != nil {
		return err
	}
	for {
		if err = a.Register(ctx, dpids); err == nil {
			break
		}
		a.log.Warn("register failed, retrying", zap.Error(err))
		if !sleep(ctx, a.cfg.RetryDelay) {
			return ctx.Err()
		}
	}
	return a.Loop(ctx, -1)
}

// Loop long-polls the plan after revision applied, applies each new plan and reports
// it, until ctx ends (it then returns ctx's error, after stopping the proxies).
// Failures are logged and retried after RetryDelay; a plan that fails to apply is not
// reported and is fetched again.
func (a *Agent) Loop(ctx context.Context, applied int64) error {
	if a.proxies != nil {
		defer a.proxies.Shutdown(context.WithoutCancel(ctx))
	}
	for {
		p, err := a.Poll(ctx, applied)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			a.log.Warn("plan poll failed", zap.Error(err))
			if !sleep(ctx, a.cfg.RetryDelay) {
				return ctx.Err()
			}
			continue
		}
		if p == nil {
			continue // nothing new before the API's timeout
		}
		if err := a.ApplyAndReport(ctx, *p); err != nil {
			a.log.Warn("plan not applied", zap.Int64("revision", p.Revision), zap.Error(err))
			if !sleep(ctx, a.cfg.RetryDelay) {
				return ctx.Err()
			}
			continue
		}
		applied = p.Revision
	}
}

// Poll asks for the plan after revision after (GET
// /v2.0/dvr-hosts/{host}/plan?after_revision=N). It returns nil, nil when the API
// answered 304 or 204 (no newer plan before its timeout).
func (a *Agent) Poll(ctx context.Context, after int64) (*plan.Plan, error) {
	q := url.Values{"after_revision": {strconv.FormatInt(after, 10)},
		"timeout": {strconv.Itoa(int(a.cfg.PollTimeout / time.Second))}}
	pctx, cancel := context.WithTimeout(ctx, a.cfg.PollTimeout+10*time.Second)
	defer cancel()
	var body struct {
		Plan *plan.Plan `json:"plan"`
	}
	code, err := a.api.Do(pctx, http.MethodGet, "/v2.0/dvr-hosts/"+url.PathEscape(a.cfg.Host)+"/plan?"+q.Encode(), nil, &body)
	if err != nil {
		return nil, fmt.Errorf("agent: poll plan: %w", err)
	}
	if code == http.StatusNotModified || code == http.StatusNoContent {
		return nil, nil
	}
	if body.Plan == nil {
		return nil, errors.New("agent: poll plan: response without a plan")
	}
	if body.Plan.Host != a.cfg.Host {
		return nil, fmt.Errorf("agent: poll plan: got the plan of host %q", body.Plan.Host)
	}
	if body.Plan.Revision <= after {
		return nil, fmt.Errorf("agent: poll plan: revision %d is not after %d", body.Plan.Revision, after)
	}
	return body.Plan, nil
}

// ApplyAndReport applies p, syncs the proxies to it and reports its revision (PUT
// /v2.0/dvr-hosts/{host}/applied {"revision": N}).
func (a *Agent) ApplyAndReport(ctx context.Context, p plan.Plan) error {
	res, err := a.apply.Apply(ctx, p)
	if err != nil {
		return fmt.Errorf("agent: apply revision %d (%d changes made): %w", p.Revision, len(res.Changes), err)
	}
	if a.proxies != nil {
		if err := a.proxies.Sync(ctx, p); err != nil {
			return fmt.Errorf("agent: metadata proxies of revision %d: %w", p.Revision, err)
		}
	}
	a.log.Info("plan applied", zap.Int64("revision", p.Revision), zap.Int("changes", len(res.Changes)))
	body := map[string]int64{"revision": p.Revision}
	if _, err := a.api.Do(ctx, http.MethodPut, "/v2.0/dvr-hosts/"+url.PathEscape(a.cfg.Host)+"/applied", body, nil); err != nil {
		return fmt.Errorf("agent: report revision %d: %w", p.Revision, err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
