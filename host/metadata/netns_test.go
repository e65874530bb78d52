package metadata

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/dvrflow/dvrflow/host/hostnet"
	"github.com/dvrflow/dvrflow/plan"
)

// bed is two throwaway namespaces: a qmeta- namespace as hostnet makes it from a plan
// (the DHCP port's tap holding 10.0.1.2/24 and 169.254.169.254/32) and a VM namespace
// whose eth0 is the other end of that veth, with 10.0.1.5 (vm1), 10.0.1.6 (vm2) and the
// route to 169.254.169.254 through the DHCP port that Neutron's DHCP option 121 gives.
// The test itself stays in its own namespace, where it runs the stand-in for Nova.
type bed struct {
	t      *testing.T
	prefix string // namespace prefix, as hostnet.Config.NamePrefix
	qmeta  string // the qmeta namespace's name on this host
	vm     string // the VM namespace's name
}

const network = "net1"

func newBed(t *testing.T) *bed {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip")
	}
	prefix := fmt.Sprintf("mdtest%d-", os.Getpid())
	b := &bed{t: t, prefix: prefix, qmeta: prefix + plan.PrefixMeta + network, vm: prefix + "vm"}
	t.Cleanup(func() {
		for _, ns := range []string{b.qmeta, b.vm} {
			if _, err := os.Stat("/run/netns/" + ns); err == nil {
				b.ip("netns", "del", ns)
			}
		}
	})
	b.ip("netns", "add", b.vm)
	b.ip("-n", b.vm, "link", "set", "lo", "up")
	b.plumb()
	return b
}

// plumb (re)makes the qmeta namespace and the veth between it and the VM.
func (b *bed) plumb() {
	b.ip("netns", "add", b.qmeta)
	b.ip("-n", b.vm, "link", "add", "eth0", "type", "veth", "peer", "name", "tap0", "netns", b.qmeta)
	b.ip("-n", b.qmeta, "addr", "add", "10.0.1.2/24", "dev", "tap0")
	b.ip("-n", b.qmeta, "addr", "add", plan.MetadataAddr+"/32", "dev", "tap0")
	b.ip("-n", b.qmeta, "link", "set", "tap0", "up")
	b.ip("-n", b.vm, "addr", "add", "10.0.1.5/24", "dev", "eth0")
	b.ip("-n", b.vm, "addr", "add", "10.0.1.6/24", "dev", "eth0")
	b.ip("-n", b.vm, "link", "set", "eth0", "up")
	b.ip("-n", b.vm, "route", "add", plan.MetadataAddr+"/32", "via", "10.0.1.2")
}

func (b *bed) ip(args ...string) {
	b.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		b.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// client is an HTTP client whose connections start in the VM namespace from src.
func (b *bed) client(src string) *http.Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := hostnet.InNamespace(b.vm, func() error {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}}
	b.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// get asks the metadata address for path; reused says whether the connection had
// served a request before.
func get(t *testing.T, c *http.Client, path string, hdr http.Header) (code int, body string, reused bool) {
	t.Helper()
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+plan.MetadataAddr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), reused
}

func metaPlan(rev int64, instances ...plan.Instance) plan.Plan {
	return plan.Plan{Host: "compute1", Revision: rev, Namespaces: []plan.Namespace{
		{Name: "qrouter-r1"}, // no proxy there
		{Name: plan.PrefixMeta + network, Metadata: &plan.Metadata{Network: network, Instances: instances}},
	}}
}

// TestProxyInNamespace runs a proxy in a real qmeta namespace and asks it from a VM's
// namespace. Nova is novameta, which stands in for Nova's metadata API (Nova cannot run
// here) and checks the signature as Nova does. It listens on 127.0.0.1 of the test's
// namespace: the proxy reaches it only because its connections to Nova leave from the
// helper's namespace, not the qmeta one (whose loopback is down).
func TestProxyInNamespace(t *testing.T) {
	b := newBed(t)
	nova := httptest.NewServer(newNova())
	defer nova.Close()
	ctx := context.Background()
	p, err := New(zaptest.NewLogger(t), Config{NovaURL: nova.URL, Secret: secret, NamePrefix: b.prefix,
		ShutdownTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(ctx)
	if err := p.Sync(ctx, metaPlan(1, inst1)); err != nil {
		t.Fatal(err)
	}
	first := p.servers[b.qmeta]
	if first == nil || len(p.servers) != 1 {
		t.Fatalf("servers after Sync: %v, want one in %s", p.servers, b.qmeta)
	}
	c1, c2 := b.client("10.0.1.5"), b.client("10.0.1.6")

	// A known address gets its instance's meta_data.json.
	code, body, _ := get(t, c1, "/openstack/latest/meta_data.json", nil)
	var doc struct {
		UUID      string `json:"uuid"`
		ProjectID string `json:"project_id"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &doc) != nil || doc.UUID != vm1 || doc.ProjectID != "p1" {
		t.Fatalf("vm1's meta_data.json: %d %s", code, body)
	}
	// A forged X-Instance-ID is replaced: vm1 still gets its own instance ID.
	forged := http.Header{"X-Instance-Id": {vm2}, "X-Tenant-Id": {"p2"}, "X-Instance-Id-Signature": {sign(secret, vm2)}}
	if code, body, _ := get(t, c1, "/latest/meta-data/instance-id", forged); code != http.StatusOK || body != "i-00000001" {
		t.Errorf("forged X-Instance-ID: %d %q, want vm1's i-00000001", code, body)
	}
	// An unknown address gets 404.
	if code, body, _ := get(t, c2, "/openstack/latest/meta_data.json", nil); code != http.StatusNotFound {
		t.Errorf("from 10.0.1.6 (no instance yet): %d %q, want 404", code, body)
	}

	// A new instance table is served by the same server, on vm1's open connection.
	if err := p.Sync(ctx, metaPlan(2, inst1, inst2)); err != nil {
		t.Fatal(err)
	}
	if p.servers[b.qmeta] != first {
		t.Error("Sync with new instances restarted the server")
	}
	if code, body, reused := get(t, c1, "/latest/meta-data/instance-id", nil); code != http.StatusOK || body != "i-00000001" || !reused {
		t.Errorf("vm1 after the update: %d %q, connection reused %v; want 200, i-00000001 on its old connection", code, body, reused)
	}
	if code, body, _ := get(t, c2, "/latest/meta-data/instance-id", nil); code != http.StatusOK || body != "i-00000002" {
		t.Errorf("vm2 after the update: %d %q, want i-00000002", code, body)
	}

	// A namespace made anew (deleted and planned again) gets a new listener. The old
	// one lives on while the old listener holds it, with the veth: its VM end goes as
	// hostnet deletes the orphan OVS end of a DHCP port.
	b.ip("netns", "del", b.qmeta)
	b.ip("-n", b.vm, "link", "del", "eth0")
	b.plumb()
	c1.CloseIdleConnections()
	if err := p.Sync(ctx, metaPlan(3, inst1, inst2)); err != nil {
		t.Fatal(err)
	}
	if s := p.servers[b.qmeta]; s == nil || s == first {
		t.Fatal("the proxy of a replaced namespace was not started again")
	}
	if code, body, _ := get(t, c1, "/latest/meta-data/instance-id", nil); code != http.StatusOK || body != "i-00000001" {
		t.Errorf("vm1 in the new namespace: %d %q", code, body)
	}

	// A plan without the namespace stops its server: nothing listens any more.
	if err := p.Sync(ctx, plan.Plan{Host: "compute1", Revision: 4}); err != nil {
		t.Fatal(err)
	}
	if len(p.servers) != 0 {
		t.Errorf("servers after a plan without qmeta: %v", p.servers)
	}
	c1.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "http://"+plan.MetadataAddr+"/", nil)
	if resp, err := c1.Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("metadata still answered (%d) after its namespace left the plan", resp.StatusCode)
	}

	// A proxy with another secret than Nova's: Nova refuses it, 403.
	bad, err := New(zaptest.NewLogger(t), Config{NovaURL: nova.URL, Secret: "not-" + secret, NamePrefix: b.prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Shutdown(ctx)
	if err := bad.Sync(ctx, metaPlan(5, inst1)); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := get(t, c1, "/openstack/latest/meta_data.json", nil); code != http.StatusForbidden {
		t.Errorf("wrong secret: %d %q, want 403", code, body)
	}
}

// TestSyncMissingNamespace: a planned namespace that is not there is an error naming
// it, and the other namespaces are synced all the same.
func TestSyncMissingNamespace(t *testing.T) {
	b := newBed(t)
	p, err := New(zaptest.NewLogger(t), Config{NovaURL: "http://127.0.0.1:1", NamePrefix: b.prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	defer p.Shutdown(ctx)
	pl := metaPlan(1, inst1)
	pl.Namespaces = append(pl.Namespaces, plan.Namespace{Name: plan.PrefixMeta + "absent",
		Metadata: &plan.Metadata{Network: "absent"}})
	err = p.Sync(ctx, pl)
	if err == nil || !strings.Contains(err.Error(), b.prefix+plan.PrefixMeta+"absent") {
		t.Errorf("Sync with a missing namespace: %v", err)
	}
	if p.servers[b.qmeta] == nil || len(p.servers) != 1 {
		t.Errorf("servers %v, want the one of %s", p.servers, b.qmeta)
	}
}
