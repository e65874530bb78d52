package main

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/apiclient"
)

// agentDownTime is the benchmark dvrflowd's --agent-down-time. Loading 5,000 hosts takes
// longer than Neutron's 75 s, and the simulated helpers start polling once it is done.
const agentDownTime = 5 * time.Minute

// heartbeatEvery is how often each simulated host polls its plan (the real helper's
// long-poll returns every 30 s when nothing changes): under a quarter of agentDownTime,
// so that dvrflowd records every poll as a heartbeat.
const heartbeatEvery = time.Minute

// heartbeats polls the plan of every host once per period (GET
// /v2.0/dvr-hosts/{host}/plan, answered at once), spread evenly over the period, until
// ctx ends: the poll that keeps a real host helper alive in dvrflowd's eyes.
func heartbeats(ctx context.Context, log *zap.Logger, api *apiclient.Client, hosts []string, period time.Duration) {
	if len(hosts) == 0 {
		return
	}
	const workers = 4
	work := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range work {
				// While dvrflowd restarts every poll fails, as the helpers' do: they poll again.
				if _, err := api.Do(ctx, http.MethodGet, "/v2.0/dvr-hosts/"+url.PathEscape(h)+"/plan", nil, nil); err != nil && ctx.Err() == nil {
					log.Debug("heartbeat", zap.String("host", h), zap.Error(err))
				}
			}
		}()
	}
	defer wg.Wait()
	defer close(work)
	tick := time.NewTicker(period / time.Duration(len(hosts)))
	defer tick.Stop()
	for i := 0; ; i = (i + 1) % len(hosts) {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case work <- hosts[i]:
		case <-ctx.Done():
			return
		}
	}
}
