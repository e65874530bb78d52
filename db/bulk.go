// Limits of bulk creates, and the errors that name the item that failed.

package db

import (
	"fmt"
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
func itemError(i int, err error) error {
	if e, ok := AsError(err); ok {
		return &Error{Class: e.Class, Type: e.Type, Message: fmt.Sprintf("Item %d: %s", i, e.Message)}
	}
	return fmt.Errorf("item %d: %w", i, err)
}
