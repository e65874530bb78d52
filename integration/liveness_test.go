//go:build integration

package integration

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// agentsAlive returns each host's liveness as `openstack network agent list` shows it.
func agentsAlive(ctx context.Context, api string) (map[string]bool, error) {
	var out struct {
		Agents []struct {
			Host  string `json:"host"`
			Alive bool   `json:"alive"`
		} `json:"agents"`
	}
	if err := apiGet(ctx, api, "/v2.0/agents", &out); err != nil {
		return nil, err
	}
	alive := map[string]bool{}
	for _, a := range out.Agents {
		if v, ok := alive[a.Host]; ok && v != a.Alive {
			return nil, fmt.Errorf("host %s: its agents disagree on alive", a.Host)
		}
		alive[a.Host] = a.Alive
	}
	return alive, nil
}

// testLiveness: with agent-down-time 3 s and plan polls of 1 s, every agent stays alive
// for 3 x agent-down-time while nothing changes (its polls are its heartbeat); compute2's
// helper stopped, its agents are dead within agent-down-time + one poll, the others stay
// alive; started again, alive again. Before: every agent dead 75 s after its host's last
// plan change, while the helpers kept polling.
func testLiveness(t *testing.T, d *dvrBed) {
	ctx := context.Background()
	end := time.Now().Add(3 * agentDownTime)
	for time.Now().Before(end) {
		alive, err := agentsAlive(ctx, d.api)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range d.b.Hosts() {
			if !alive[h.Name] {
				t.Fatalf("%s's agents dead while its helper runs: %v", h.Name, alive)
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	p := d.s.Helpers["compute2"]
	p.Kill()
	killed := time.Now()
	var dead time.Duration
	for dead == 0 {
		alive, err := agentsAlive(ctx, d.api)
		if err != nil {
			t.Fatal(err)
		}
		if !alive["compute1"] || !alive["network"] {
			t.Fatalf("another host died with compute2's helper: %v", alive)
		}
		if !alive["compute2"] {
			dead = time.Since(killed)
			break
		}
		if time.Since(killed) > 2*agentDownTime+helperPoll {
			t.Fatalf("compute2 still alive %v after its helper was killed", time.Since(killed))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("compute2's agents dead %v after its helper was killed (agent-down-time %v, poll %v)", dead.Round(10*time.Millisecond), agentDownTime, helperPoll)
	if dead > agentDownTime+helperPoll+500*time.Millisecond {
		t.Errorf("dead after %v: want within agent-down-time + one poll (%v)", dead, agentDownTime+helperPoll)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "compute2 alive again", 15*time.Second, func() (bool, string) {
		alive, err := agentsAlive(ctx, d.api)
		return err == nil && alive["compute2"], fmt.Sprint(alive, err)
	})
}
