// Command dvrflow-bench-api measures port creation through dvrflow's real HTTP API: it
// creates a network with a large subnet, then N ports with C concurrent clients, and
// prints ports/s and latency percentiles.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dvrflow/dvrflow/apiclient"
	"github.com/dvrflow/dvrflow/internal/loadavg"
)

type options struct {
	url, token, cidr string
	n, c             int
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "http://127.0.0.1:9696", "dvrflow API base URL")
	flag.StringVar(&o.token, "token", os.Getenv("DVRFLOW_AUTH_TOKEN"), "admin token (env DVRFLOW_AUTH_TOKEN)")
	flag.StringVar(&o.cidr, "cidr", "10.128.0.0/16", "CIDR of the benchmark subnet (must hold N ports)")
	flag.IntVar(&o.n, "n", 5000, "ports to create")
	flag.IntVar(&o.c, "c", 16, "concurrent clients")
	flag.Parse()
	if o.n < 1 || o.c < 1 {
		fmt.Fprintln(os.Stderr, "dvrflow-bench-api: -n and -c must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dvrflow-bench-api:", err)
		os.Exit(1)
	}
}

// liftPortQuota sets the port quota of the network's project to unlimited, as an operator
// does for a project of N ports (Neutron's default is 500).
func liftPortQuota(ctx context.Context, c *apiclient.Client, netID string) error {
	var net struct {
		Network struct {
			ProjectID string `json:"project_id"`
		} `json:"network"`
	}
	if _, err := c.Do(ctx, http.MethodGet, "/v2.0/networks/"+netID, nil, &net); err != nil {
		return err
	}
	_, err := c.Do(ctx, http.MethodPut, "/v2.0/quotas/"+net.Network.ProjectID, map[string]any{"quota": map[string]any{"port": -1}}, nil)
	return err
}

func run(ctx context.Context, o options, out io.Writer) error {
	tr := &http.Transport{MaxIdleConns: o.c * 2, MaxIdleConnsPerHost: o.c * 2}
	defer tr.CloseIdleConnections()
	c := apiclient.New(o.url, o.token, &http.Client{Transport: tr, Timeout: 30 * time.Second})
	netID, err := c.Create(ctx, "networks", "network", map[string]any{"name": fmt.Sprintf("bench-%d", time.Now().Unix())})
	if err != nil {
		return err
	}
	if _, err := c.Create(ctx, "subnets", "subnet", map[string]any{"network_id": netID, "cidr": o.cidr, "ip_version": 4}); err != nil {
		return err
	}
	if err := liftPortQuota(ctx, c, netID); err != nil {
		return err
	}
	loadStart := loadavg.Now()
	lat := make([]time.Duration, o.n)
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < o.c; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= o.n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				_, err := c.Create(ctx, "ports", "port", map[string]any{"network_id": netID, "name": fmt.Sprintf("p%d", i),
					"device_owner": "compute:bench", "binding:host_id": fmt.Sprintf("host%d", i%10)})
				lat[i] = time.Since(t0)
				if err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	fmt.Fprintf(out, "port creates: %d with %d clients in %s\n", o.n, o.c, elapsed.Round(time.Millisecond))
	fmt.Fprintf(out, "load average: at start %s, at end %s\n", loadStart, loadavg.Now())
	fmt.Fprintf(out, "throughput:   %.0f ports/s\n", float64(o.n)/elapsed.Seconds())
	fmt.Fprintf(out, "latency:      p50 %s  p90 %s  p99 %s  max %s\n", pct(0.50).Round(10*time.Microsecond),
		pct(0.90).Round(10*time.Microsecond), pct(0.99).Round(10*time.Microsecond), lat[len(lat)-1].Round(10*time.Microsecond))
	if f := failed.Load(); f > 0 {
		return errors.Join(fmt.Errorf("%d of %d creates failed", f, o.n), firstErr)
	}
	return nil
}
