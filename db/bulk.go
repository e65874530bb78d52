// Limits of bulk creates, the errors that name the item that failed, and single creates
// made through a bulk one.

package db

import (
	"context"
	"fmt"
	"strings"
)

// Bulk creates (Neutron's POST with a list body) create every object of a batch in one
// write: all or nothing, one revision, one change-log row per object. They check every
// item as the single create does, against the store and against the items before it in
// the batch, and make a fixed number of queries per batch whatever its size: the
// allocation state a batch needs (used VNIs, free address ranges, taken MACs and
// addresses) is loaded once and allocated from in memory, and rows are written with one
// statement per table (arrays through unnest).

// MaxBulk bounds the objects of one bulk create.
const MaxBulk = 10000

func checkBulk(kind string, n int) error {
	if n == 0 {
		return badRequest("Bulk create of %s needs at least one item.", kind)
	}
	if n > MaxBulk {
		return newError(ClassInvalid, "BulkTooLarge", "Bulk create of %d %s exceeds the limit of %d per request.", n, kind, MaxBulk)
	}
	return nil
}

// itemError says which item of a batch err is about.
// createOne creates one resource through many, its bulk create, and answers a refusal
// as a single create does: without the bulk's "Item 0: ".
func createOne[S, R any](ctx context.Context, spec S, many func(context.Context, []S) ([]R, error)) (*R, error) {
	rs, err := many(ctx, []S{spec})
	if err != nil {
		if e, ok := AsError(err); ok {
			return nil, &Error{Class: e.Class, Type: e.Type, Message: strings.TrimPrefix(e.Message, "Item 0: ")}
		}
		return nil, err
	}
	return &rs[0], nil
}

func itemError(i int, err error) error {
	if e, ok := AsError(err); ok {
		return &Error{Class: e.Class, Type: e.Type, Message: fmt.Sprintf("Item %d: %s", i, e.Message)}
	}
	return fmt.Errorf("item %d: %w", i, err)
}
