// Package metadata runs the host's instance metadata proxies, one HTTP server per
// qmeta- namespace of the plan, each sending its instances' requests on to Nova's
// metadata API with Neutron's signed headers.
//
// A server listens on plan.MetadataAddr port 80 inside its namespace: the listening
// socket is opened on a thread switched into the namespace (hostnet.InNamespace) and
// stays there, while everything else, above all the connections to Nova, runs in the
// helper's own namespace. A request is answered as Neutron's metadata agent answers
// it (neutron/common/metadata.py): the client's address is looked up in the
// namespace's instance table (404 when it is no instance's); the request goes to Nova
// with the path and query unchanged and only Neutron's four headers, X-Instance-ID (the
// port's device_id), X-Tenant-ID (its project), X-Forwarded-For (the client's address)
// and X-Instance-ID-Signature (hex HMAC-SHA256 of the instance ID under the shared
// secret), so nothing the VM sent can stand in for them; and Nova's answer comes back
// as Neutron passes it on (see proxy.go).
//
// Sync makes the running servers match a plan: it starts the missing ones, swaps the
// instance table of running ones in place (the listener and open connections stay),
// and shuts down those no longer planned, gracefully within a short timeout.
package metadata

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netns"
	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/host/hostnet"
	"github.com/dvrflow/dvrflow/plan"
)

// port is where a proxy listens on plan.MetadataAddr.
const port = "80"

// Defaults of Config.
const (
	DefaultShutdownTimeout = 5 * time.Second
	DefaultNovaTimeout     = 60 * time.Second // Neutron's timeout of its request to Nova
)

// Timeouts of a proxy's client side, those of the haproxy Neutron runs in front of its
// metadata agent (timeout http-request 30s, timeout http-keep-alive 30s).
const (
	readHeaderTimeout = 30 * time.Second
	idleTimeout       = 30 * time.Second
)

// Config says where the proxies send requests and how namespaces are named here.
type Config struct {
	// NovaURL is Nova's metadata API, e.g. http://nova:8775 (Neutron's
	// nova_metadata_protocol, nova_metadata_host and nova_metadata_port). A request's
	// path is appended to the URL's path; its query is kept.
	NovaURL string
	// Secret signs instance IDs (metadata_proxy_shared_secret of Neutron and Nova).
	Secret string
	// NamePrefix is hostnet.Config.NamePrefix: the plan's namespace qmeta-X is
	// NamePrefix+"qmeta-X" on this host.
	NamePrefix string
	// ShutdownTimeout bounds how long a stopped server waits for its requests before it
	// closes their connections (default DefaultShutdownTimeout).
	ShutdownTimeout time.Duration
	// NovaTimeout bounds one request to Nova (default DefaultNovaTimeout).
	NovaTimeout time.Duration
	// Transport sends the requests to Nova (default: a clone of http.DefaultTransport).
	Transport http.RoundTripper
}

// Proxies are the metadata proxies of one host. Its methods are safe for concurrent use.
type Proxies struct {
	cfg  Config
	nova *url.URL
	log  *zap.Logger

	mu      sync.Mutex
	servers map[string]*server // by namespace name on this host
}

// Validate reports what is wrong with the configuration.
func (c Config) Validate() error {
	_, err := c.novaURL()
	return err
}

func (c Config) novaURL() (*url.URL, error) {
	u, err := url.Parse(c.NovaURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("metadata: Nova metadata URL %q: want http(s)://host:port", c.NovaURL)
	}
	return u, nil
}

// New checks cfg and returns Proxies with none running.
func New(log *zap.Logger, cfg Config) (*Proxies, error) {
	u, err := cfg.novaURL()
	if err != nil {
		return nil, err
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.NovaTimeout <= 0 {
		cfg.NovaTimeout = DefaultNovaTimeout
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &Proxies{cfg: cfg, nova: u, servers: map[string]*server{}, log: log.Named("metadata")}, nil
}

// server is the proxy of one namespace.
type server struct {
	p     *Proxies
	netns string // namespace name on this host
	nsID  string // identity of the namespace the listener is in (netns.NsHandle.UniqueId)
	log   *zap.Logger
	table atomic.Pointer[map[netip.Addr]plan.Instance]
	srv   *http.Server
	done  chan struct{} // closed when Serve returned
}

// Sync runs a proxy for each namespace of plan pl with a Metadata and no other: it
// starts the missing ones, gives running ones their new instance table, and shuts down
// those pl no longer has. A namespace whose proxy cannot start is reported in the error and
// the others are synced all the same; Sync again retries it.
func (p *Proxies) Sync(ctx context.Context, pl plan.Plan) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	want := map[string]*plan.Metadata{}
	for _, ns := range pl.Namespaces {
		if ns.Metadata != nil {
			want[p.cfg.NamePrefix+ns.Name] = ns.Metadata
		}
	}
	var stale []*server
	for name, s := range p.servers {
		if want[name] == nil {
			stale = append(stale, s)
			delete(p.servers, name)
		}
	}
	p.stop(ctx, stale, "no longer planned")

	var errs []error
	for _, name := range slices.Sorted(maps.Keys(want)) {
		md := want[name]
		table, err := instanceTable(md)
		if err != nil {
			errs = append(errs, fmt.Errorf("metadata: namespace %s: %w", name, err))
			continue
		}
		if s := p.servers[name]; s != nil {
			why := s.broken()
			if why == "" {
				s.setTable(table)
				continue
			}
			delete(p.servers, name)
			p.stop(ctx, []*server{s}, why)
		}
		s, err := p.start(ctx, name, md.Network, table)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.servers[name] = s
	}
	return errors.Join(errs...)
}

// Shutdown stops every proxy, as Sync of a plan without any. Requests in flight get
// ShutdownTimeout, or until ctx ends, to finish.
func (p *Proxies) Shutdown(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	all := slices.Collect(maps.Values(p.servers))
	clear(p.servers)
	p.stop(ctx, all, "shutdown")
}

func instanceTable(md *plan.Metadata) (map[netip.Addr]plan.Instance, error) {
	t := make(map[netip.Addr]plan.Instance, len(md.Instances))
	for _, in := range md.Instances {
		a, err := netip.ParseAddr(in.IP)
		if err != nil {
			return nil, fmt.Errorf("instance %s: address: %w", in.DeviceID, err)
		}
		t[a] = in
	}
	return t, nil
}

// start listens on MetadataAddr:80 inside namespace name and serves there.
func (p *Proxies) start(ctx context.Context, name, network string, table map[netip.Addr]plan.Instance) (*server, error) {
	var ln net.Listener
	var nsID string
	err := hostnet.InNamespace(name, func() error {
		h, err := netns.Get()
		if err != nil {
			return fmt.Errorf("current namespace: %w", err)
		}
		nsID = h.UniqueId()
		_ = h.Close()
		var lc net.ListenConfig
		ln, err = lc.Listen(ctx, "tcp4", net.JoinHostPort(plan.MetadataAddr, port))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("metadata: namespace %s: listen: %w", name, err)
	}
	s := &server{p: p, netns: name, nsID: nsID, done: make(chan struct{}),
		log: p.log.With(zap.String("network", network), zap.String("netns", name))}
	s.table.Store(&table)
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: readHeaderTimeout, IdleTimeout: idleTimeout,
		ErrorLog: zap.NewStdLog(s.log)}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("metadata proxy stopped serving", zap.Error(err))
		}
	}()
	s.log.Info("metadata proxy started", zap.String("listen", ln.Addr().String()), zap.Int("instances", len(table)),
		zap.String("nova", p.nova.Redacted()))
	return s, nil
}

// broken says why s must be started again ("" if it need not): its server stopped, or
// its namespace was deleted (and perhaps made again) since it started.
func (s *server) broken() string {
	select {
	case <-s.done:
		return "server stopped"
	default:
	}
	h, err := netns.GetFromName(s.netns)
	if err != nil {
		return "namespace gone"
	}
	defer h.Close()
	if h.UniqueId() != s.nsID {
		return "namespace replaced"
	}
	return ""
}

func (s *server) setTable(t map[netip.Addr]plan.Instance) {
	if old := s.table.Load(); maps.Equal(*old, t) {
		return
	}
	s.table.Store(&t)
	s.log.Info("metadata proxy instances updated", zap.Int("instances", len(t)))
}

func (s *server) instance(a netip.Addr) (plan.Instance, bool) {
	in, ok := (*s.table.Load())[a]
	return in, ok
}

// stop shuts the servers down together, each within ShutdownTimeout (or ctx), then
// closes what is still open.
func (p *Proxies) stop(ctx context.Context, servers []*server, why string) {
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(func() {
			sctx, cancel := context.WithTimeout(ctx, p.cfg.ShutdownTimeout)
			defer cancel()
			if err := s.srv.Shutdown(sctx); err != nil {
				s.log.Warn("metadata proxy shutdown timed out, closing its connections", zap.Error(err))
				_ = s.srv.Close()
			}
			<-s.done
			s.log.Info("metadata proxy stopped", zap.String("why", why))
		})
	}
	wg.Wait()
}
