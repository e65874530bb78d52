// Command dvrflowd serves dvrflow's Neutron v2.0 API over the PostgreSQL topology store and,
// with --of-listen, runs the OpenFlow controller: the switch API and the status page
// (/status), Prometheus metrics (/metrics) and, with --debug-listen, pprof on its own address.
//
// Every flag can also be set by the environment variable DVRFLOW_<FLAG> (upper case, dashes
// as underscores, e.g. DVRFLOW_LOG_LEVEL=debug); a flag on the command line wins.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dvrflow/dvrflow/apps"
	"github.com/dvrflow/dvrflow/controller"
	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/engine"
	"github.com/dvrflow/dvrflow/failover"
	"github.com/dvrflow/dvrflow/internal/envflag"
	"github.com/dvrflow/dvrflow/keystone"
	"github.com/dvrflow/dvrflow/mastership"
	"github.com/dvrflow/dvrflow/metrics"
	"github.com/dvrflow/dvrflow/northbound"
	"github.com/dvrflow/dvrflow/status"
	"github.com/labstack/echo/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// config is everything dvrflowd is told on its command line.
type config struct {
	Listen       string
	DatabaseURL  string
	LogLevel     zapcore.Level
	LogJSON      bool
	DebugListen  string
	Store        db.Config
	API          northbound.Config
	Keystone     keystone.Config // AuthURL empty: no Keystone
	ShutdownWait time.Duration
	// OpenFlow controller.
	OFListen            string
	OFCert, OFKey, OFCA string
	Controller          controller.Config
	Engine              engine.Config
	Mastership          mastership.Config // ID empty until parseFlags defaults it
}

// quotaFlags declares --quota-<resource> for every resource db.QuotaResources limits
// (Neutron's [QUOTAS] quota_<resource>), defaulting to Neutron's defaults.
func quotaFlags(fs *flag.FlagSet) map[string]*int64 {
	out := make(map[string]*int64, len(db.QuotaResources))
	for _, r := range db.QuotaResources {
		out[r.Name] = fs.Int64("quota-"+strings.ReplaceAll(r.Name, "_", "-"), r.Default,
			fmt.Sprintf("default limit of a project's %ss; -1: unlimited (Neutron's quota_%s)", r.Name, r.Name))
	}
	return out
}

func parseFlags(args []string, getenv func(string) string) (*config, error) {
	fs := flag.NewFlagSet("dvrflowd", flag.ContinueOnError)
	envflag.SetUsage(fs, "DVRFLOW", "usage: dvrflowd [flags]")
	cfg := &config{Store: db.DefaultConfig(), API: northbound.DefaultConfig()}
	fs.StringVar(&cfg.Listen, "listen", "127.0.0.1:9696", "address of the Neutron API")
	fs.StringVar(&cfg.DatabaseURL, "db-url", "", "PostgreSQL URL (DVRFLOW_DATABASE_URL, the older name, is read too)")
	fs.StringVar(&cfg.API.AdminToken, "auth-token", "", "static admin token for X-Auth-Token")
	fs.BoolVar(&cfg.API.NoAuth, "noauth", false, "accept every request as admin (development only)")
	projectTokens := fs.String("project-tokens", "", "file of 'token project_id' lines: project-scoped tokens")
	cfg.Keystone = keystone.DefaultConfig()
	fs.StringVar(&cfg.Keystone.AuthURL, "keystone-url", "", "Keystone's identity URL (http://keystone:5000/v3): validate X-Auth-Token with it; empty: static tokens only")
	fs.StringVar(&cfg.Keystone.Username, "keystone-user", "", "dvrflowd's own user in Keystone (Neutron's [keystone_authtoken] username)")
	fs.StringVar(&cfg.Keystone.Password, "keystone-password", "", "password of --keystone-user")
	keystonePasswordFile := fs.String("keystone-password-file", "", "file holding the password of --keystone-user (instead of --keystone-password)")
	fs.StringVar(&cfg.Keystone.Project, "keystone-project", "", "project of --keystone-user (e.g. service)")
	fs.StringVar(&cfg.Keystone.UserDomain, "keystone-user-domain", cfg.Keystone.UserDomain, "domain name of --keystone-user")
	fs.StringVar(&cfg.Keystone.ProjectDomain, "keystone-project-domain", cfg.Keystone.ProjectDomain, "domain name of --keystone-project")
	fs.DurationVar(&cfg.Keystone.CacheTime, "keystone-token-cache", cfg.Keystone.CacheTime, "how long a validated token is trusted without asking Keystone (never past its expiry)")
	fs.StringVar(&cfg.API.AdminProject, "admin-project", cfg.API.AdminProject, "project of resources the admin creates without project_id")
	fs.DurationVar(&cfg.API.AgentDownTime, "agent-down-time", cfg.API.AgentDownTime, "a host's agents are dead this long after its last heartbeat")
	vni := fs.String("vni-range", fmt.Sprintf("%d:%d", cfg.Store.VNIMin, cfg.Store.VNIMax), "VXLAN IDs for tenant networks, MIN:MAX")
	baseMAC := fs.String("base-mac", cfg.Store.BaseMAC.String(), "base of port MACs")
	dvrBaseMAC := fs.String("dvr-base-mac", cfg.Store.DVRBaseMAC.String(), "base of DVR host MACs")
	fs.IntVar(&cfg.Store.GlobalPhysnetMTU, "global-physnet-mtu", cfg.Store.GlobalPhysnetMTU,
		"MTU of the physical network (Neutron's global_physnet_mtu): flat and VLAN networks get it, VXLAN networks 50 less")
	quotas := quotaFlags(fs)
	fs.DurationVar(&cfg.Store.PollInterval, "poll-interval", cfg.Store.PollInterval, "change-log poll interval behind LISTEN/NOTIFY")
	fs.StringVar(&cfg.OFListen, "of-listen", controller.DefaultAddr, "OpenFlow listen address for the switches; empty (--of-listen=): run the API only")
	fs.StringVar(&cfg.OFCert, "of-tls-cert", "", "PEM certificate: serve OpenFlow over TLS (with --of-tls-key)")
	fs.StringVar(&cfg.OFKey, "of-tls-key", "", "PEM key of --of-tls-cert")
	fs.StringVar(&cfg.OFCA, "of-tls-ca", "", "PEM CA: switches must present a client certificate it signed")
	cfg.Mastership = mastership.DefaultConfig()
	fs.StringVar(&cfg.Mastership.ID, "controller-id", "", "this controller's name among several against one database, stable across its restarts (default: the machine's hostname and the --of-listen port)")
	fs.DurationVar(&cfg.Mastership.Lease, "lease", cfg.Mastership.Lease, "mastership lease: a dead controller's switches get a new master about a lease and a renewal after its last renewal")
	fs.DurationVar(&cfg.Mastership.Renew, "lease-renew", cfg.Mastership.Renew, "how often the mastership lease is renewed (at most a third of --lease)")
	fs.DurationVar(&cfg.Mastership.MaxLease, "lease-max", cfg.Mastership.MaxLease, "the longest lease a controller whose renewals come back slowly asks for (at least --lease, which it is raised to): an overloaded controller is not declared dead, a dead one is replaced within the lease it last asked for")
	keeper := fs.Bool("lease-keeper", true, "renew the mastership lease in a small process of its own (dvrflowd lease-keeper), which no backlog of this process's goroutines delays; false: in this process")
	fs.DurationVar(&cfg.Mastership.Settle, "lease-settle", cfg.Mastership.Settle, "how long a controller whose lease expired must hold it again before hosts move back to it")
	fs.Float64Var(&cfg.Controller.PacketInRate, "packet-in-rate", 1000, "packet-ins per second each switch may send the controller")
	meterRate := fs.Uint("meter-rate", 1000, "rate in packets/s of the OpenFlow meter on every controller-bound flow")
	cfg.Engine.DHCP = apps.DefaultDHCPConfig()
	fs.DurationVar(&cfg.Engine.DHCP.LeaseTime, "dhcp-lease-duration", cfg.Engine.DHCP.LeaseTime, "DHCP lease time (and DHCPv6 address lifetime) handed to instances (Neutron's dhcp_lease_duration)")
	fs.StringVar(&cfg.Engine.DHCP.Domain, "dns-domain", cfg.Engine.DHCP.Domain, "domain name option of DHCP answers and domain search list of DHCPv6 answers (Neutron's dns_domain); empty: none")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "json", "json (one object a line) or console")
	logJSON := fs.Bool("log-json", false, "same as --log-format json (kept for old scripts)")
	fs.StringVar(&cfg.DebugListen, "debug-listen", "", "address serving net/http/pprof (/debug/pprof/); empty: off")
	fs.DurationVar(&cfg.ShutdownWait, "shutdown-wait", 10*time.Second, "how long to let requests finish on shutdown")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if err := envflag.Apply(fs, "DVRFLOW", getenv); err != nil {
		return nil, err
	}
	if cfg.DatabaseURL == "" {
		cfg.DatabaseURL = getenv("DVRFLOW_DATABASE_URL")
	}
	switch {
	case *logJSON || *logFormat == "json":
		cfg.LogJSON = true
	case *logFormat == "console":
	default:
		return nil, fmt.Errorf("--log-format %q: want json or console", *logFormat)
	}
	cfg.Engine.MeterRate = uint32(*meterRate)
	for name, v := range quotas {
		cfg.Store.QuotaDefaults[name] = *v
	}
	if cfg.Engine.DHCP.LeaseTime < 2*time.Minute || cfg.Engine.DHCP.LeaseTime > 0xffffffff*time.Second {
		return nil, fmt.Errorf("--dhcp-lease-duration %s: want 2m to 136 years", cfg.Engine.DHCP.LeaseTime)
	}
	if (cfg.OFCert == "") != (cfg.OFKey == "") || (cfg.OFCA != "" && cfg.OFCert == "") {
		return nil, errors.New("--of-tls-cert and --of-tls-key go together, and --of-tls-ca needs them")
	}
	var err error
	if cfg.Store.VNIMin, cfg.Store.VNIMax, err = db.ParseVNIRange(*vni); err != nil {
		return nil, err
	}
	if cfg.Store.BaseMAC, err = net.ParseMAC(*baseMAC); err != nil {
		return nil, fmt.Errorf("--base-mac: %w", err)
	}
	if cfg.Store.DVRBaseMAC, err = net.ParseMAC(*dvrBaseMAC); err != nil {
		return nil, fmt.Errorf("--dvr-base-mac: %w", err)
	}
	if cfg.LogLevel, err = zapcore.ParseLevel(*logLevel); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if *projectTokens != "" {
		if cfg.API.ProjectTokens, err = readProjectTokens(*projectTokens); err != nil {
			return nil, err
		}
	}
	if cfg.DatabaseURL == "" {
		return nil, errors.New("--db-url (or DVRFLOW_DATABASE_URL) is required")
	}
	if err := keystoneFlags(cfg, *keystonePasswordFile); err != nil {
		return nil, err
	}
	if cfg.OFListen != "" {
		if err := mastershipFlags(cfg); err != nil {
			return nil, err
		}
		if *keeper {
			format := "console"
			if cfg.LogJSON {
				format = "json"
			}
			if cfg.Mastership.Keeper, err = keeperCommand(cfg, *logLevel, format); err != nil {
				return nil, err
			}
		}
	}
	cfg.Store.AgentDownTime = cfg.API.AgentDownTime
	if err := cfg.Store.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.API.Validate(); err != nil {
		return nil, fmt.Errorf("%w (use --auth-token, --keystone-url or --noauth)", err)
	}
	return cfg, nil
}

// mastershipFlags defaults the controller id to the hostname and OpenFlow port (two
// dvrflowd on one machine differ by port; a restarted one keeps its id) and checks the
// lease flags.
func mastershipFlags(cfg *config) error {
	_, port, err := net.SplitHostPort(cfg.OFListen)
	if err != nil {
		return fmt.Errorf("--of-listen %q: %w", cfg.OFListen, err)
	}
	cfg.Mastership.OFAddr, cfg.Mastership.APIURL = cfg.OFListen, "http://"+cfg.Listen
	if cfg.Mastership.ID == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("--controller-id not given and no hostname: %w", err)
		}
		cfg.Mastership.ID = host + ":" + port
	}
	cfg.Mastership.MaxLease = max(cfg.Mastership.MaxLease, cfg.Mastership.Lease)
	if err := cfg.Mastership.Validate(); err != nil {
		return fmt.Errorf("--controller-id, --lease, --lease-renew, --lease-max, --lease-settle: %w", err)
	}
	return nil
}

// keystoneFlags reads the Keystone password file and, with --keystone-url, builds the
// token validator of the API.
func keystoneFlags(cfg *config, passwordFile string) error {
	if passwordFile != "" {
		if cfg.Keystone.Password != "" {
			return errors.New("both --keystone-password and --keystone-password-file: give one")
		}
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			return fmt.Errorf("keystone password: %w", err)
		}
		cfg.Keystone.Password = strings.TrimRight(string(b), "\r\n")
	}
	if cfg.Keystone.AuthURL == "" {
		if cfg.Keystone.Username != "" || cfg.Keystone.Password != "" || cfg.Keystone.Project != "" {
			return errors.New("--keystone-user, --keystone-password and --keystone-project need --keystone-url")
		}
		return nil
	}
	v, err := keystone.New(cfg.Keystone)
	if err != nil {
		return fmt.Errorf("--keystone-*: %w", err)
	}
	cfg.API.Keystone = v
	return nil
}

// readProjectTokens reads "token project_id" lines ('#' comments, blank lines skipped).
func readProjectTokens(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("project tokens: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Fields(line)
		if len(parts) != 2 {
			return nil, fmt.Errorf("project tokens %s:%d: want 'token project_id'", path, n)
		}
		if _, dup := out[parts[0]]; dup {
			return nil, fmt.Errorf("project tokens %s:%d: duplicate token", path, n)
		}
		out[parts[0]] = parts[1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("project tokens: %w", err)
	}
	return out, nil
}

// newLogger builds the process's logger. JSON lines carry "ts" (ISO 8601), "level", "logger"
// (the component: ofserver, reconciler, engine, northbound, status, metrics) and "msg", and
// the components add the fields host, bridge, dpid, app and rev where they know them.
func newLogger(cfg *config) (*zap.Logger, error) {
	zc := zap.NewProductionConfig()
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	zc.Sampling = nil // never drop lines silently; per-packet logs are at debug level
	if !cfg.LogJSON {
		zc = zap.NewDevelopmentConfig()
		zc.Development = false
		zc.DisableStacktrace = true
	}
	zc.Level = zap.NewAtomicLevelAt(cfg.LogLevel)
	log, err := zc.Build()
	if err != nil {
		return nil, fmt.Errorf("building the logger: %w", err)
	}
	return log.With(zap.String("service", "dvrflowd")), nil
}

// run serves the API and, with --of-listen, the OpenFlow controller, until ctx ends.
func run(ctx context.Context, cfg *config, log *zap.Logger) error {
	store, err := db.Open(ctx, cfg.DatabaseURL, cfg.Store, log)
	if err != nil {
		return err
	}
	defer store.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 5)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// Wiring, in one direction: the controller and the engine over the store, the status
	// server reading them, the metrics reading the status server; then the controller is
	// told to report to the metrics, before it serves any switch.
	var (
		ofs   *controller.Server
		lease *mastership.Loop
		eng   *engine.Engine
		stat  *status.Server
		src   metrics.Sources
	)
	if cfg.OFListen != "" {
		cfg.Controller.Reconciler.CookieMask, cfg.Controller.Reconciler.CookieValue = apps.CookieOwnerMask, apps.CookieOwner
		ofs = controller.NewServer(log, cfg.Controller)
		if lease, err = mastership.New(log, cfg.Mastership, store, ofs); err != nil {
			return err
		}
		ofs.EnableRoles(lease.Stale)
		eng = engine.New(log, cfg.Engine, store, ofs)
		if stat, err = status.New(log, status.Config{Switches: ofs, Engine: eng, Store: store,
			AgentDownTime: cfg.API.AgentDownTime, Mastership: lease}); err != nil {
			return err
		}
		src = metrics.Sources{BridgeOf: stat.BridgeOf, Sessions: stat.Sessions, Revision: stat.Revision, HostLag: stat.HostLag,
			Mastership: lease.Status}
	}
	mx := metrics.New(log, src)
	cfg.API.Middleware = append(cfg.API.Middleware, mx.Middleware())
	cfg.API.Mount = func(e *echo.Echo, v2 *echo.Group) {
		if stat != nil {
			stat.Mount(e, v2)
		}
		e.GET("/metrics", echo.WrapHandler(mx.Handler()))
	}
	if cfg.OFListen != "" {
		ofs.SetObserver(mx)
		var tlsCfg *tls.Config
		if cfg.OFCert != "" {
			if tlsCfg, err = controller.TLSConfig(cfg.OFCert, cfg.OFKey, cfg.OFCA); err != nil {
				return err
			}
		}
		cfg.API.Plans = eng
		ln, err := net.Listen("tcp", cfg.OFListen)
		if err != nil {
			return fmt.Errorf("OpenFlow listen on %s: %w", cfg.OFListen, err)
		}
		if tlsCfg != nil {
			ln = tls.NewListener(ln, tlsCfg)
		}
		log.Info("serving OpenFlow", zap.String("listen", ln.Addr().String()), zap.Bool("tls", tlsCfg != nil))
		wg.Add(3)
		go func() { defer wg.Done(); errc <- lease.Run(ctx) }()
		go func() { defer wg.Done(); errc <- ofs.Serve(ctx, ln) }()
		go func() { defer wg.Done(); errc <- eng.Run(ctx) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		errc <- failover.Run(ctx, log, store, failover.Config{AgentDownTime: cfg.Store.AgentDownTime})
	}()
	api, err := northbound.New(store, cfg.API, log)
	if err != nil {
		return err
	}
	if cfg.DebugListen != "" {
		dbg, err := debugServer(ctx, cfg.DebugListen, log)
		if err != nil {
			return err
		}
		defer dbg.Close()
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	go func() { errc <- srv.Serve(ln) }()
	log.Info("serving Neutron API", zap.String("listen", ln.Addr().String()), zap.Bool("noauth", cfg.API.NoAuth),
		zap.String("keystone", cfg.Keystone.AuthURL))
	select {
	case err := <-errc:
		return fmt.Errorf("dvrflowd stopped: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownWait)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down API: %w", err)
	}
	return nil
}

// debugServer serves net/http/pprof on its own mux at addr (never on the API's address).
func debugServer(ctx context.Context, addr string, log *zap.Logger) (*http.Server, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug server stopped", zap.Error(err))
		}
	}()
	log.Info("serving pprof", zap.String("listen", ln.Addr().String()))
	return srv, nil
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == keeperArg {
		os.Exit(keeperMain(os.Args[2:]))
	}
	cfg, err := parseFlags(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dvrflowd:", err)
		os.Exit(2)
	}
	log, err := newLogger(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dvrflowd: logger:", err)
		os.Exit(2)
	}
	defer log.Sync() //nolint:errcheck // best effort at exit
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("dvrflowd failed", zap.Error(err))
		os.Exit(1)
	}
}
