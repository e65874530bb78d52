package db

import (
	"context"
	"fmt"

	"github.com/dvrflow/dvrflow/topology"
)

// RevisionConstraint is a compare-and-swap condition on a write: the resource Kind/ID
// must be at revision_number Revision when the write changes it (Neutron's
// If-Match: revision_number=N). It is checked inside the write's transaction, where the
// resource is loaded for the change, so no other write can come between the check and
// the change.
type RevisionConstraint struct {
	Kind     topology.Kind
	ID       string
	Revision int64
}

type revisionConstraintKey struct{}

// WithRevisionConstraint returns a context whose store writes (updates and deletes of
// c.Kind, and router interface changes) are made only if the resource is at c.Revision;
// otherwise they change nothing and fail with a ClassPreconditionFailed error
// (RevisionNumberConstraintFailed).
func WithRevisionConstraint(ctx context.Context, c RevisionConstraint) context.Context {
	return context.WithValue(ctx, revisionConstraintKey{}, c)
}

func revisionConstraintOf(ctx context.Context) *RevisionConstraint {
	if c, ok := ctx.Value(revisionConstraintKey{}).(RevisionConstraint); ok {
		return &c
	}
	return nil
}

// constrain enforces the write's revision constraint when kind/id is its resource,
// loaded for the write at revision current; the first load of it decides.
func (w *wtx) constrain(kind topology.Kind, id string, current int64) error {
	c := w.constraint
	if c == nil || w.constraintChecked || c.Kind != kind || c.ID != id {
		return nil
	}
	w.constraintChecked = true
	if current != c.Revision {
		return newError(ClassPreconditionFailed, "RevisionNumberConstraintFailed",
			"Constrained to %d, but current revision is %d", c.Revision, current)
	}
	return nil
}

// constraintUnchecked fails a write that had a revision constraint its resource was
// never loaded for: the store method does not enforce it, and must not ignore it.
func (w *wtx) constraintUnchecked() error {
	if c := w.constraint; c != nil && !w.constraintChecked {
		return fmt.Errorf("revision constraint on %s %s: the write does not check it", c.Kind, c.ID)
	}
	return nil
}
