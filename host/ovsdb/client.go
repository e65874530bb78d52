// Package ovsdb sets up a host's Open vSwitch bridges and ports over OVSDB (libovsdb):
// bridges with their datapath type, fail mode, protocols, controllers and datapath ID,
// patch pairs, the flow-based VXLAN port, and VM ports plugged the way Nova does.
//
// Every Ensure function converges: it reads the monitored cache, computes the OVSDB
// operations that would make the database match, sends them in one transaction, then
// waits until the cache shows the result. Calling it again when nothing changed sends
// nothing and reports changed == false. Bad input is rejected before any write.
package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/zapr"
	"github.com/ovn-kubernetes/libovsdb/cache"
	"github.com/ovn-kubernetes/libovsdb/client"
	"github.com/ovn-kubernetes/libovsdb/model"
	libovsdb "github.com/ovn-kubernetes/libovsdb/ovsdb"
	"go.uber.org/zap"

	"github.com/dvrflow/dvrflow/host/ovsdb/vswitch"
)

// settleTimeout bounds the wait for the monitor to show a committed transaction.
const settleTimeout = 10 * time.Second

// Client is a connection to one Open_vSwitch database with a monitored cache of it.
// Its methods are safe for concurrent use; writes are serialized.
type Client struct {
	cl  client.Client
	log *zap.Logger

	writeMu sync.Mutex // one converge at a time: compute, transact, settle

	mu      sync.Mutex
	changed chan struct{} // closed (and replaced) on every cache change
}

// Dial connects to the OVSDB server at endpoint ("unix:/path/db.sock" or
// "tcp:IP:PORT") and monitors the whole Open_vSwitch database.
func Dial(ctx context.Context, log *zap.Logger, endpoint string) (*Client, error) {
	dbModel, err := vswitch.FullDatabaseModel()
	if err != nil {
		return nil, fmt.Errorf("ovsdb: database model: %w", err)
	}
	c := &Client{log: log.Named("ovsdb").With(zap.String("endpoint", endpoint)), changed: make(chan struct{})}
	lr := zapr.NewLogger(c.log.Named("libovsdb"))
	cl, err := client.NewOVSDBClient(dbModel, client.WithEndpoint(endpoint), client.WithLogger(&lr))
	if err != nil {
		return nil, fmt.Errorf("ovsdb: client for %s: %w", endpoint, err)
	}
	if err := cl.Connect(ctx); err != nil {
		return nil, fmt.Errorf("ovsdb: connect %s: %w", endpoint, err)
	}
	notify := func(string, model.Model) { c.notify() }
	cl.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc:    notify,
		UpdateFunc: func(table string, _, m model.Model) { c.notify() },
		DeleteFunc: notify,
	})
	if _, err := cl.MonitorAll(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("ovsdb: monitor %s: %w", endpoint, err)
	}
	c.cl = cl
	return c, nil
}

// Close disconnects from the server.
func (c *Client) Close() { c.cl.Close() }

func (c *Client) notify() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// changes returns a channel closed at the next cache change.
func (c *Client) changes() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// plan computes the operations that would make the database match what a caller
// wants; an empty result means it already does.
type plan func(ctx context.Context) ([]libovsdb.Operation, error)

// converge runs plan, commits its operations in one transaction and waits until the
// cache shows them (plan returns nothing). It reports whether it wrote anything.
func (c *Client) converge(ctx context.Context, what string, p plan) (bool, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	ops, err := p(ctx)
	if err != nil {
		return false, err
	}
	if len(ops) == 0 {
		return false, nil
	}
	if err := c.transact(ctx, what, ops); err != nil {
		return false, err
	}
	settle, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	for {
		ch := c.changes()
		ops, err := p(settle)
		if err != nil {
			return true, err
		}
		if len(ops) == 0 {
			c.log.Info("ovsdb changed", zap.String("what", what))
			return true, nil
		}
		select {
		case <-ch:
		case <-settle.Done():
			return true, fmt.Errorf("ovsdb: %s: committed but the monitor never showed it: %w", what, settle.Err())
		}
	}
}

func (c *Client) transact(ctx context.Context, what string, ops []libovsdb.Operation) error {
	res, err := c.cl.Transact(ctx, ops...)
	if err != nil {
		return fmt.Errorf("ovsdb: %s: transact: %w", what, err)
	}
	if _, err := libovsdb.CheckOperationResults(res, ops); err != nil {
		return fmt.Errorf("ovsdb: %s: %w", what, err)
	}
	return nil
}

// rootRow returns the single Open_vSwitch row.
func (c *Client) rootRow(ctx context.Context) (*vswitch.OpenvSwitch, error) {
	var rows []vswitch.OpenvSwitch
	if err := c.cl.List(ctx, &rows); err != nil {
		return nil, fmt.Errorf("ovsdb: list Open_vSwitch: %w", err)
	}
	if len(rows) != 1 {
		return nil, fmt.Errorf("ovsdb: %d Open_vSwitch rows (want 1: was the database initialized?)", len(rows))
	}
	return &rows[0], nil
}

func (c *Client) bridgeByName(ctx context.Context, name string) (*vswitch.Bridge, error) {
	br := &vswitch.Bridge{Name: name}
	err := c.cl.Get(ctx, br)
	if errors.Is(err, client.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ovsdb: get bridge %s: %w", name, err)
	}
	return br, nil
}

func (c *Client) portByName(ctx context.Context, name string) (*vswitch.Port, error) {
	p := &vswitch.Port{Name: name}
	err := c.cl.Get(ctx, p)
	if errors.Is(err, client.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ovsdb: get port %s: %w", name, err)
	}
	return p, nil
}

func (c *Client) ifaceByName(ctx context.Context, name string) (*vswitch.Interface, error) {
	i := &vswitch.Interface{Name: name}
	err := c.cl.Get(ctx, i)
	if errors.Is(err, client.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ovsdb: get interface %s: %w", name, err)
	}
	return i, nil
}

func (c *Client) ifaceByUUID(ctx context.Context, uuid string) (*vswitch.Interface, error) {
	i := &vswitch.Interface{UUID: uuid}
	if err := c.cl.Get(ctx, i); err != nil {
		return nil, fmt.Errorf("ovsdb: get interface %s: %w", uuid, err)
	}
	return i, nil
}

// bridgeOfPort returns the bridge holding the port row uuid, or nil.
func (c *Client) bridgeOfPort(ctx context.Context, portUUID string) (*vswitch.Bridge, error) {
	var brs []vswitch.Bridge
	if err := c.cl.List(ctx, &brs); err != nil {
		return nil, fmt.Errorf("ovsdb: list bridges: %w", err)
	}
	for i := range brs {
		for _, p := range brs[i].Ports {
			if p == portUUID {
				return &brs[i], nil
			}
		}
	}
	return nil, nil
}

// create returns insert operations for models of different tables, in order.
func (c *Client) create(models ...model.Model) ([]libovsdb.Operation, error) {
	var ops []libovsdb.Operation
	for _, m := range models {
		o, err := c.cl.Create(m)
		if err != nil {
			return nil, err
		}
		ops = append(ops, o...)
	}
	return ops, nil
}
