package db

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/dvrflow/dvrflow/topology"
)

// Tags (Neutron's standard-attr-tag) are kept in the obj of the resource they tag, so they
// go with it everywhere it is read. Changing them is an update of the resource: its
// revision_number and updated_at move, and the change log gets its new state. A change
// that leaves the tags as they were writes nothing.

// TaggedKinds are the kinds of resource that have tags.
var TaggedKinds = []topology.Kind{topology.KindNetwork, topology.KindSubnet, topology.KindSubnetPool, topology.KindPort,
	topology.KindRouter, topology.KindFloatingIP, topology.KindSecurityGroup}

// ReplaceTags sets the tags of resource kind/id to tags (distinct strings) and returns
// them.
func (s *Store) ReplaceTags(ctx context.Context, kind topology.Kind, id string, tags []string) ([]string, error) {
	return s.retag(ctx, kind, id, func([]string) ([]string, error) { return slices.Clone(tags), nil })
}

// AddTag adds tag to the tags of resource kind/id (a tag it has already is no change).
func (s *Store) AddTag(ctx context.Context, kind topology.Kind, id, tag string) error {
	_, err := s.retag(ctx, kind, id, func(cur []string) ([]string, error) {
		if slices.Contains(cur, tag) {
			return cur, nil
		}
		return append(cur, tag), nil
	})
	return err
}

// RemoveTag removes tag from the tags of resource kind/id: TagNotFound when it has no
// such tag.
func (s *Store) RemoveTag(ctx context.Context, kind topology.Kind, id, tag string) error {
	_, err := s.retag(ctx, kind, id, func(cur []string) ([]string, error) {
		i := slices.Index(cur, tag)
		if i < 0 {
			return nil, TagNotFound(tag)
		}
		return slices.Delete(cur, i, i+1), nil
	})
	return err
}

// TagNotFound is Neutron's TagNotFound (404).
func TagNotFound(tag string) *Error {
	return notFound("TagNotFound", "Tag %s could not be found.", tag)
}

// tagged is the part of a loaded resource a tag change touches.
type tagged struct {
	table   string
	tags    *[]string
	updated *time.Time
	rev     *int64
	obj     any // the resource, as saved and recorded
}

// retag runs change on the current tags of resource kind/id in one write and saves what
// it returns when that differs (as a set) from them; it returns the resource's tags.
// The resource is loaded as its other writes load it, so a revision constraint on it
// is checked even when nothing changes.
func (s *Store) retag(ctx context.Context, kind topology.Kind, id string, change func(cur []string) ([]string, error)) ([]string, error) {
	var out []string
	_, err := s.write(ctx, func(ctx context.Context, w *wtx) error {
		t, err := w.loadTagged(ctx, kind, id)
		if err != nil {
			return err
		}
		next, err := change(slices.Clone(*t.tags))
		if err != nil {
			return err
		}
		if sameTags(*t.tags, next) {
			out = *t.tags
			return nil
		}
		if len(next) == 0 {
			next = nil
		}
		*t.tags, *t.updated = next, w.now
		*t.rev++
		w.exec(`UPDATE `+t.table+` SET obj = $2 WHERE id = $1`, id, mustJSON(t.obj))
		w.record(kind, id, topology.OpUpdate, t.obj)
		out = next
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// loadTagged loads resource kind/id for a tag change.
func (w *wtx) loadTagged(ctx context.Context, kind topology.Kind, id string) (tagged, error) {
	switch kind {
	case topology.KindNetwork:
		var n topology.Network
		err := w.network(ctx, id, &n)
		return tagged{"networks", &n.Tags, &n.UpdatedAt, &n.RevisionNumber, &n}, err
	case topology.KindSubnet:
		var sn topology.Subnet
		err := w.subnet(ctx, id, &sn)
		return tagged{"subnets", &sn.Tags, &sn.UpdatedAt, &sn.RevisionNumber, &sn}, err
	case topology.KindSubnetPool:
		var p topology.SubnetPool
		err := w.subnetPool(ctx, id, &p)
		return tagged{"subnetpools", &p.Tags, &p.UpdatedAt, &p.RevisionNumber, &p}, err
	case topology.KindPort:
		var p topology.Port
		err := w.port(ctx, id, &p)
		return tagged{"ports", &p.Tags, &p.UpdatedAt, &p.RevisionNumber, &p}, err
	case topology.KindRouter:
		var r topology.Router
		err := w.router(ctx, id, &r)
		return tagged{"routers", &r.Tags, &r.UpdatedAt, &r.RevisionNumber, &r}, err
	case topology.KindFloatingIP:
		var f topology.FloatingIP
		err := w.floatingIP(ctx, id, &f)
		return tagged{"floatingips", &f.Tags, &f.UpdatedAt, &f.RevisionNumber, &f}, err
	case topology.KindSecurityGroup:
		g, err := w.securityGroup(ctx, id)
		if err != nil {
			return tagged{}, err
		}
		return tagged{"security_groups", &g.Tags, &g.UpdatedAt, &g.RevisionNumber, g}, nil
	}
	return tagged{}, fmt.Errorf("tags of %s %s: kind has no tags", kind, id)
}

// sameTags reports whether a and b hold the same tags.
func sameTags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, t := range b {
		if !slices.Contains(a, t) {
			return false
		}
	}
	return true
}
