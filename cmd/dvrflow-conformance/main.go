// Command dvrflow-conformance runs OpenStack's API test suites, tempest's network API
// tests and neutron-tempest-plugin's API tests (Debian's tempest and
// neutron-tempest-plugin), against dvrflow's Neutron API with a real Keystone: it starts
// a private PostgreSQL and Keystone (testbed/keystone), serves the API with Keystone
// validating tokens, registers it in the catalog, creates the public network (an IPv4 and
// an IPv6 subnet), writes tempest.conf with exactly the extensions dvrflow lists, runs the
// suites without the tests on the skip list and prints pass / fail / skip per suite. It exits 1 when a test
// that is not on the skip list fails. With -recheck it runs only the listed tests and
// prints those that pass now: they leave the list.
//
// It needs root (Keystone's key repositories, PostgreSQL run as postgres) and the Debian
// packages keystone, uwsgi-plugin-python3, tempest, neutron-tempest-plugin and
// python3-subunit; `make conformance` installs them and runs it.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apiclient"
	"github.com/dvrflow/dvrflow/conformance"
	"github.com/dvrflow/dvrflow/db"
	"github.com/dvrflow/dvrflow/db/pgtest"
	"github.com/dvrflow/dvrflow/keystone"
	"github.com/dvrflow/dvrflow/northbound"
	ksbed "github.com/dvrflow/dvrflow/testbed/keystone"
)

type options struct {
	skipList    string
	workDir     string
	regex       string
	concurrency int
	recheck     bool
	reportOnly  bool
	report      string
}

func main() {
	var o options
	flag.StringVar(&o.skipList, "skip-list", "conformance/skip-list.txt", "tests not run, each with the missing feature")
	flag.StringVar(&o.workDir, "work", "", "tempest workspace (default: a new temporary directory, removed on success)")
	flag.StringVar(&o.regex, "regex", conformance.Regex(), "tests to run (tempest run --regex)")
	flag.IntVar(&o.concurrency, "concurrency", 2, "tempest workers")
	flag.BoolVar(&o.recheck, "recheck", false, "run only the skip-listed tests and print those that pass")
	flag.BoolVar(&o.reportOnly, "report-only", false, "report the last run in -work again, without running anything")
	flag.StringVar(&o.report, "report", "", "also write the report to this file")
	flag.Parse()
	log, err := zap.NewDevelopment()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dvrflow-conformance:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	failed, err := run(ctx, o, log, os.Stdout)
	if err != nil {
		log.Error("conformance run", zap.Error(err))
		os.Exit(2)
	}
	if failed {
		os.Exit(1)
	}
}

// run sets the cloud up, runs the suites and reports; failed is true when a test off the
// skip list failed (or, with recheck, never).
func run(ctx context.Context, o options, log *zap.Logger, out io.Writer) (failed bool, err error) {
	raw, err := os.ReadFile(o.skipList)
	if err != nil {
		return false, err
	}
	skips, err := conformance.ReadSkipList(bytes.NewReader(raw))
	if err != nil {
		return false, err
	}
	skipList, err := filepath.Abs(o.skipList)
	if err != nil {
		return false, err
	}
	work := o.workDir
	switch {
	case o.reportOnly && work == "":
		return false, errors.New("-report-only needs -work, the directory of an earlier run")
	case work != "":
		if err := os.MkdirAll(work, 0o755); err != nil {
			return false, err
		}
	default:
		if work, err = os.MkdirTemp("", "dvrflow-tempest-"); err != nil {
			return false, err
		}
		defer func() {
			if err == nil && !failed {
				os.RemoveAll(work)
			}
		}()
	}
	ws := filepath.Join(work, "workspace")
	conf := filepath.Join(ws, "etc", "tempest.conf")

	took := time.Duration(0)
	if !o.reportOnly {
		t0 := time.Now()
		cloud, closeCloud, err := startCloud(ctx, log)
		if err != nil {
			return false, err
		}
		defer closeCloud()
		log.Info("cloud up", zap.Duration("took", time.Since(t0)), zap.String("keystone", cloud.KeystoneURL),
			zap.Strings("extensions", cloud.Extensions))
		cloud.LogFile = filepath.Join(work, "tempest.log")
		cloud.LockPath = filepath.Join(ws, "tempest_lock")
		if err := writeWorkspace(ctx, ws, conf, cloud); err != nil {
			return false, err
		}
	}
	all, onList, err := listTests(ctx, ws, conf, o.regex, skips)
	if err != nil {
		return false, err
	}
	log.Info("tests", zap.Int("selected", len(all)), zap.Int("skip_listed", len(onList)))
	if !o.reportOnly {
		args := []string{"run", "--config-file", conf, "--concurrency", fmt.Sprint(o.concurrency)}
		if o.recheck {
			loadList := filepath.Join(work, "recheck.txt")
			if err := os.WriteFile(loadList, []byte(strings.Join(onList, "\n")+"\n"), 0o600); err != nil {
				return false, err
			}
			args = append(args, "--load-list", loadList)
		} else {
			args = append(args, "--regex", o.regex, "--exclude-list", skipList)
		}
		t1 := time.Now()
		if err := runTempest(ctx, work, ws, args, log); err != nil {
			return false, err
		}
		took = time.Since(t1)
	}
	results, err := lastResults(ctx, ws)
	if err != nil {
		return false, err
	}
	if o.recheck {
		return false, writeRecheck(out, results, skips)
	}
	rep := conformance.Summarize(all, results, skips)
	if took > 0 {
		fmt.Fprintf(out, "tempest run in %s (%d workers), work directory %s\n\n", took.Round(time.Second), o.concurrency, work)
	}
	if err := rep.Write(out); err != nil {
		return false, err
	}
	if o.report != "" {
		f, err := os.Create(o.report)
		if err != nil {
			return false, err
		}
		defer f.Close()
		if err := rep.Write(f); err != nil {
			return false, err
		}
	}
	return len(rep.Failed) > 0, nil
}

// writeWorkspace makes what `tempest init` makes, without registering it in
// ~/.tempest/workspace.yaml: stestr's configuration (tempest's test discovery, a worker
// per test class) and repository, tempest.conf for cloud and the lock directory.
func writeWorkspace(ctx context.Context, ws, conf string, cloud conformance.Cloud) error {
	// Debian's python3 (tempest's), not a python3 elsewhere on $PATH.
	pkg, err := command(ctx, "/", "/usr/bin/python3", "-c", "import os, tempest; print(os.path.dirname(tempest.__file__))").Output()
	if err != nil {
		return fmt.Errorf("find tempest: %w", err)
	}
	tempestDir := strings.TrimSpace(string(pkg))
	stestrConf := fmt.Sprintf("[DEFAULT]\ntest_path=%s\ntop_dir=%s\ngroup_regex=([^\\.]*\\.)*\n",
		filepath.Join(tempestDir, "test_discover"), tempestDir)
	for _, d := range []string{filepath.Dir(conf), cloud.LockPath} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(ws, ".stestr.conf"), []byte(stestrConf), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(conf, []byte(conformance.TempestConf(cloud)), 0o600); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(ws, ".stestr")); err != nil {
		if err := command(ctx, ws, "stestr", "init").Run(); err != nil {
			return fmt.Errorf("stestr init: %w", err)
		}
	}
	return nil
}

// listTests returns every test the regex selects and those of them the skip list names.
func listTests(ctx context.Context, ws, conf, regex string, skips []conformance.Skip) (all, onList []string, err error) {
	listed, err := command(ctx, ws, "tempest", "run", "--config-file", conf, "--list-tests", "--regex", regex).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("tempest run --list-tests: %w", err)
	}
	for _, l := range strings.Split(string(listed), "\n") {
		l = strings.TrimSpace(l)
		for _, s := range conformance.Suites {
			if strings.HasPrefix(l, s.Prefix) {
				all = append(all, l)
				if conformance.Skipped(skips, l) != nil {
					onList = append(onList, l)
				}
			}
		}
	}
	return all, onList, nil
}

// runTempest runs `tempest args` in the workspace, its output in work/run.log.
func runTempest(ctx context.Context, work, ws string, args []string, log *zap.Logger) error {
	site := filepath.Join(work, "site")
	if err := os.MkdirAll(site, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(site, "sitecustomize.py"), []byte(upstreamDeleteSubnet), 0o644); err != nil {
		return err
	}
	runLog, err := os.Create(filepath.Join(work, "run.log"))
	if err != nil {
		return err
	}
	defer runLog.Close()
	t0 := time.Now()
	tr := command(ctx, ws, "tempest", args...)
	tr.Stdout, tr.Stderr = runLog, runLog
	tr.Env = append(os.Environ(), "PYTHONPATH="+site)
	runErr := tr.Run() // non-zero when any test failed: the results say which
	log.Info("tempest run over", zap.Duration("took", time.Since(t0)), zap.NamedError("exit", runErr),
		zap.String("log", runLog.Name()))
	return ctx.Err()
}

// lastResults reads the workspace's last run from stestr's repository.
func lastResults(ctx context.Context, ws string) ([]conformance.Result, error) {
	sub, err := command(ctx, ws, "stestr", "last", "--subunit").Output()
	if err != nil {
		return nil, fmt.Errorf("stestr last --subunit (see run.log): %w", err)
	}
	conv := command(ctx, ws, "subunit2csv")
	conv.Stdin = bytes.NewReader(sub)
	csv, err := conv.Output()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1 && len(csv) > 0) {
		return nil, fmt.Errorf("subunit2csv: %w", err) // 1: a test failed, the CSV says which
	}
	return conformance.ReadResults(bytes.NewReader(csv))
}

// writeRecheck prints the skip-listed tests that passed, with the line that lists them.
func writeRecheck(out io.Writer, results []conformance.Result, skips []conformance.Skip) error {
	n := 0
	for _, r := range results {
		if r.Status != conformance.StatusPass {
			continue
		}
		sk := conformance.Skipped(skips, r.Test)
		if sk == nil {
			continue
		}
		n++
		if _, err := fmt.Fprintf(out, "passes, listed on line %d (%s): %s\n", sk.Line, sk.Cause, r.Test); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(out, "%d of %d listed tests pass\n", n, len(results))
	return err
}

// command runs name in dir in a process group of its own: stestr's workers are killed
// with it when ctx ends.
func command(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// upstreamDeleteSubnet is a sitecustomize module for tempest's processes. Debian's
// tempest 33 patches SubnetsClient.delete_subnet to sleep 10 s before every subnet delete
// ("when it takes time to teardown some ports": Neutron's agents); upstream tempest does
// not sleep. dvrflow deletes a subnet synchronously, and the sleep would add about an hour
// to a run, so the tests get upstream's method back.
const upstreamDeleteSubnet = `from tempest.lib.services.network import subnets_client


def _delete_subnet(self, subnet_id):
    return self.delete_resource('/subnets/%s' % subnet_id)


subnets_client.SubnetsClient.delete_subnet = _delete_subnet
`

// startCloud starts PostgreSQL, Keystone and dvrflow's API with Keystone validating its
// tokens, registers the API as the network endpoint and creates the public network.
func startCloud(ctx context.Context, log *zap.Logger) (conformance.Cloud, func(), error) {
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	cloud, err := func() (conformance.Cloud, error) {
		pg, err := pgtest.Start(ctx, pgtest.Options{})
		if err != nil {
			return conformance.Cloud{}, err
		}
		closers = append(closers, func() { _ = pg.Stop() })
		_, dsn, err := pg.CreateDatabase(ctx)
		if err != nil {
			return conformance.Cloud{}, err
		}
		ks, err := ksbed.Start(ctx)
		if err != nil {
			return conformance.Cloud{}, err
		}
		closers = append(closers, func() { _ = ks.Close() })
		adm, err := ks.Admin(ctx)
		if err != nil {
			return conformance.Cloud{}, err
		}
		service, err := adm.CreateProject(ctx, "service")
		if err != nil {
			return conformance.Cloud{}, err
		}
		if _, err := adm.CreateUser(ctx, "dvrflow", "dvrflow-pw", service, "service"); err != nil {
			return conformance.Cloud{}, err
		}

		store, err := db.Open(ctx, dsn, db.DefaultConfig(), log)
		if err != nil {
			return conformance.Cloud{}, err
		}
		closers = append(closers, store.Close)
		kcfg := keystone.DefaultConfig()
		kcfg.AuthURL, kcfg.Username, kcfg.Password, kcfg.Project = ks.URL, "dvrflow", "dvrflow-pw", "service"
		cfg := northbound.DefaultConfig()
		if cfg.Keystone, err = keystone.New(kcfg); err != nil {
			return conformance.Cloud{}, err
		}
		api, err := northbound.New(store, cfg, zap.NewNop())
		if err != nil {
			return conformance.Cloud{}, err
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return conformance.Cloud{}, err
		}
		srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		closers = append(closers, func() { _ = srv.Close() })
		apiURL := "http://" + ln.Addr().String()
		if err := adm.RegisterService(ctx, "network", "neutron", apiURL); err != nil {
			return conformance.Cloud{}, err
		}

		token, err := ks.Token(ctx, ksbed.AdminUser, ks.AdminPassword, ksbed.AdminProject)
		if err != nil {
			return conformance.Cloud{}, err
		}
		c := apiclient.New(apiURL, token, &http.Client{Timeout: 30 * time.Second})
		cloud := conformance.Cloud{KeystoneURL: ks.URL, Region: ksbed.Region, AdminUser: ksbed.AdminUser,
			AdminPassword: ks.AdminPassword, AdminProject: ksbed.AdminProject, Domain: ksbed.Domain,
			PublicNetwork: "public"}
		cloud.PublicNetworkID, err = c.Create(ctx, "networks", "network",
			map[string]any{"name": cloud.PublicNetwork, "router:external": true})
		if err != nil {
			return conformance.Cloud{}, err
		}
		if _, err := c.Create(ctx, "subnets", "subnet", map[string]any{"name": "public-subnet",
			"network_id": cloud.PublicNetworkID, "cidr": "172.24.4.0/24", "ip_version": 4}); err != nil {
			return conformance.Cloud{}, err
		}
		// Dual stack, as devstack makes the public network: an IPv6 subnet without DHCP,
		// outside the projects' 2001:db8::/48 (a router's subnets may not overlap its
		// gateway's).
		if _, err := c.Create(ctx, "subnets", "subnet", map[string]any{"name": "public-subnet-ipv6",
			"network_id": cloud.PublicNetworkID, "cidr": "2001:db8:ffff::/64", "ip_version": 6, "enable_dhcp": false}); err != nil {
			return conformance.Cloud{}, err
		}
		// No bed runs here: two hosts are registered as their helpers register them (a
		// network node and a compute node), so the agent API has the agents a cloud has.
		for _, h := range []struct{ name, tunnelIP, mode string }{
			{"network1", "192.0.2.1", "dvr_snat"}, {"compute1", "192.0.2.2", "dvr"},
		} {
			body := map[string]any{"dvr_host": map[string]any{"tunnel_ip": h.tunnelIP, "mode": h.mode}}
			if _, err := c.Do(ctx, http.MethodPut, "/v2.0/dvr-hosts/"+h.name, body, nil); err != nil {
				return conformance.Cloud{}, fmt.Errorf("register host %s: %w", h.name, err)
			}
		}
		var exts struct {
			Extensions []struct{ Alias string }
		}
		if _, err := c.Do(ctx, http.MethodGet, "/v2.0/extensions", nil, &exts); err != nil {
			return conformance.Cloud{}, fmt.Errorf("list extensions: %w", err)
		}
		for _, x := range exts.Extensions {
			cloud.Extensions = append(cloud.Extensions, x.Alias)
		}
		return cloud, nil
	}()
	if err != nil {
		closeAll()
		return conformance.Cloud{}, nil, err
	}
	return cloud, closeAll, nil
}
