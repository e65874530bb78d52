package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"

	"go.uber.org/zap"
)

// profiler fetches dvrflowd's pprof profiles (served on --debug-listen) into a directory.
type profiler struct {
	log  *zap.Logger
	url  string // http://<debug-listen>
	dir  string
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

// fetch writes /debug/pprof/<what> to dir/<name>; a CPU profile runs in the background.
func (p *profiler) fetch(ctx context.Context, name, what string) {
	if p == nil {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		if err := p.get(ctx, name, what); err != nil {
			p.mu.Lock()
			p.errs = append(p.errs, err)
			p.mu.Unlock()
			p.log.Warn("profile", zap.String("name", name), zap.Error(err))
			return
		}
		p.log.Info("profile written", zap.String("file", filepath.Join(p.dir, name)))
	}()
}

func (p *profiler) get(ctx context.Context, name, what string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/debug/pprof/"+what, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", what, resp.Status)
	}
	f, err := os.Create(filepath.Join(p.dir, name))
	if err != nil {
		return fmt.Errorf("profile %s: %w", name, err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", name, err)
	}
	return f.Close()
}

// wait waits for the profiles under way.
func (p *profiler) wait() {
	if p != nil {
		p.wg.Wait()
	}
}
