// Package novameta stands in for Nova's metadata API in tests: Nova cannot run here, so
// this small HTTP server answers as Nova's metadata handler (nova/api/metadata/handler.py)
// does behind Neutron's metadata proxy (service_metadata_proxy = true).
//
// It checks a request as Nova does, in Nova's order:
//   - X-Instance-ID, X-Instance-ID-Signature and X-Tenant-ID must each be there once,
//     else 400;
//   - X-Instance-ID-Signature must be the hex HMAC-SHA256 of the instance ID under the
//     shared secret, compared in constant time, else 403;
//   - the instance must be known, and X-Tenant-ID must be its project, else 404.
//
// It then serves what a metadata client asks first: "/" (the EC2 versions), the
// OpenStack document /openstack/latest/meta_data.json, and the EC2 items
// /latest/meta-data/{instance-id,hostname,local-ipv4}. Any other path is 404, as for
// Nova an unknown path is.
package novameta

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// ec2Versions are the EC2 metadata versions Nova lists at "/", then "latest".
var ec2Versions = []string{"1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10",
	"2007-12-15", "2008-02-01", "2008-09-01", "2009-04-04", "latest"}

// Instance is what the stand-in knows of one Nova instance.
type Instance struct {
	ProjectID string // its project: X-Tenant-ID must be this
	Name      string // display name
	Hostname  string
	// ID is Nova's integer instance ID; EC2's instance-id is "i-" and its 8 hex digits.
	ID               int
	AvailabilityZone string            // "nova" when empty, Nova's default zone
	LaunchIndex      int               // launch_index
	Meta             map[string]string // the instance's metadata ("meta"), if any
}

// Request is one request the stand-in answered, with the headers Neutron's proxy sets.
type Request struct {
	Method, Path string
	InstanceID   string // X-Instance-ID
	TenantID     string // X-Tenant-ID
	ForwardedFor string // X-Forwarded-For
	Signature    string // X-Instance-ID-Signature
	Status       int    // what the stand-in answered
}

// Nova is the stand-in metadata API: an http.Handler.
type Nova struct {
	secret    []byte
	instances map[string]Instance

	mu   sync.Mutex
	seen []Request
}

// New returns the stand-in with the shared secret (Nova's
// [neutron]/metadata_proxy_shared_secret) and the instances it knows, by UUID (the
// device_id of their ports).
func New(secret string, instances map[string]Instance) *Nova {
	m := make(map[string]Instance, len(instances))
	for id, in := range instances {
		m[id] = in
	}
	return &Nova{secret: []byte(secret), instances: m}
}

// Add makes instance id known (as Nova knows an instance once it is booted).
func (n *Nova) Add(id string, in Instance) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.instances[id] = in
}

// Requests returns every request answered so far, oldest first.
func (n *Nova) Requests() []Request {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Request(nil), n.seen...)
}

// ServeHTTP answers one metadata request as Nova does.
func (n *Nova) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Request{Method: r.Method, Path: r.URL.Path, InstanceID: r.Header.Get("X-Instance-ID"),
		TenantID: r.Header.Get("X-Tenant-ID"), ForwardedFor: r.Header.Get("X-Forwarded-For"),
		Signature: r.Header.Get("X-Instance-ID-Signature")}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	n.serve(sw, r)
	rec.Status = sw.status
	n.mu.Lock()
	n.seen = append(n.seen, rec)
	n.mu.Unlock()
}

func (n *Nova) serve(w http.ResponseWriter, r *http.Request) {
	p := path.Clean("/" + r.URL.Path)
	if p == "/" { // before any header check, as Nova
		writeText(w, "text/plain", strings.Join(ec2Versions, "\n"))
		return
	}
	in, status, msg := n.check(r.Header)
	if status != http.StatusOK {
		http.Error(w, msg, status)
		return
	}
	id := r.Header.Get("X-Instance-ID")
	switch p {
	case "/openstack/latest/meta_data.json":
		n.metaData(w, id, in)
	case "/latest/meta-data/instance-id":
		writeText(w, "text/plain", fmt.Sprintf("i-%08x", in.ID))
	case "/latest/meta-data/hostname":
		writeText(w, "text/plain", in.Hostname)
	case "/latest/meta-data/local-ipv4":
		// Nova answers the instance's first fixed IP, or else the requester's address
		// (X-Forwarded-For); the stand-in knows no fixed IPs.
		writeText(w, "text/plain", r.Header.Get("X-Forwarded-For"))
	default:
		http.Error(w, "404 Not Found: the resource could not be found.", http.StatusNotFound)
	}
}

// check validates the proxy's headers as Nova's _handle_instance_id_request: it returns
// the instance, or the status and message Nova answers.
func (n *Nova) check(h http.Header) (Instance, int, string) {
	ids, sigs, tenants := h.Values("X-Instance-ID"), h.Values("X-Instance-ID-Signature"), h.Values("X-Tenant-ID")
	switch {
	case len(ids) == 0:
		return Instance{}, http.StatusBadRequest, "X-Instance-ID header is missing from request."
	case len(sigs) == 0:
		return Instance{}, http.StatusBadRequest, "X-Instance-ID-Signature header is missing from request."
	case len(tenants) == 0:
		return Instance{}, http.StatusBadRequest, "X-Tenant-ID header is missing from request."
	case len(ids) > 1:
		return Instance{}, http.StatusBadRequest, "Multiple X-Instance-ID headers found within request."
	case len(tenants) > 1:
		return Instance{}, http.StatusBadRequest, "Multiple X-Tenant-ID headers found within request."
	}
	mac := hmac.New(sha256.New, n.secret)
	mac.Write([]byte(ids[0]))
	want := hex.EncodeToString(mac.Sum(nil))
	if sigs[0] == "" || !hmac.Equal([]byte(want), []byte(sigs[0])) {
		return Instance{}, http.StatusForbidden, "Invalid proxy request signature."
	}
	n.mu.Lock()
	in, ok := n.instances[ids[0]]
	n.mu.Unlock()
	if !ok || in.ProjectID != tenants[0] {
		return Instance{}, http.StatusNotFound, "404 Not Found: the resource could not be found."
	}
	return in, http.StatusOK, ""
}

// metaData is what Nova's _metadata_as_json gives for an instance without keys, files,
// vendor data or devices.
func (n *Nova) metaData(w http.ResponseWriter, id string, in Instance) {
	seed := make([]byte, 512)
	_, _ = rand.Read(seed) // crypto/rand.Read never fails
	az := in.AvailabilityZone
	if az == "" {
		az = "nova"
	}
	doc := struct {
		UUID             string            `json:"uuid"`
		Meta             map[string]string `json:"meta,omitempty"`
		Hostname         string            `json:"hostname"`
		Name             string            `json:"name"`
		LaunchIndex      int               `json:"launch_index"`
		AvailabilityZone string            `json:"availability_zone"`
		RandomSeed       string            `json:"random_seed"`
		ProjectID        string            `json:"project_id"`
		Devices          []any             `json:"devices"`
	}{UUID: id, Meta: in.Meta, Hostname: in.Hostname, Name: in.Name, LaunchIndex: in.LaunchIndex,
		AvailabilityZone: az, RandomSeed: base64.StdEncoding.EncodeToString(seed), ProjectID: in.ProjectID,
		Devices: []any{}}
	b, err := json.Marshal(doc)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeText(w, "application/json", string(b))
}

func writeText(w http.ResponseWriter, contentType, body string) {
	w.Header().Set("Content-Type", contentType)
	_, _ = w.Write([]byte(body))
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Serve answers on ln with h (a Nova from New) until ctx ends, then shuts the server
// down, giving requests in flight up to five seconds. It returns nil after ctx ended, or
// why serving failed. The caller chooses ln, e.g. a listener opened in a bed namespace.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("novameta: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("novameta: serve on %s: %w", ln.Addr(), err)
	}
	return nil
}
