package db

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// Class says what kind of failure an Error is; the REST layer maps it to an HTTP code.
type Class int

// Error classes.
const (
	ClassInvalid            Class = iota + 1 // bad input: 400
	ClassNotFound                            // unknown ID: 404
	ClassConflict                            // in use / already allocated: 409
	ClassForbidden                           // not allowed for this caller: 403
	ClassUnavailable                         // a pool is exhausted at the system level: 503
	ClassPreconditionFailed                  // a revision constraint does not hold: 412
)

// Error is a rejected request. Type is Neutron's exception name (e.g. "NetworkNotFound",
// "IpAddressAlreadyAllocated"), Message the human-readable text. A store method that
// returns an *Error has changed nothing.
type Error struct {
	Class   Class
	Type    string
	Message string
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

func newError(c Class, typ, format string, args ...any) *Error {
	return &Error{Class: c, Type: typ, Message: fmt.Sprintf(format, args...)}
}

func invalid(format string, args ...any) *Error {
	return newError(ClassInvalid, "InvalidInput", "Invalid input for operation: "+format, args...)
}

func badRequest(format string, args ...any) *Error {
	return newError(ClassInvalid, "BadRequest", format, args...)
}

func notFound(typ, format string, args ...any) *Error {
	return newError(ClassNotFound, typ, format, args...)
}

func conflict(typ, format string, args ...any) *Error {
	return newError(ClassConflict, typ, format, args...)
}

// AsError returns the *Error in err's chain, if any.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// IsNotFound reports whether err is a not-found rejection.
func IsNotFound(err error) bool {
	e, ok := AsError(err)
	return ok && e.Class == ClassNotFound
}

// readOnlySQLTransaction is SQLSTATE read_only_sql_transaction: a write on a standby.
const readOnlySQLTransaction = "25006"

// IsUnavailable reports whether err says PostgreSQL cannot be reached or is shutting
// down (connection refused or lost, admin shutdown, not accepting connections yet, no
// host of a multi-host URL accepting writes) or is a standby not promoted yet (a write
// refused as in a read-only transaction, SQLSTATE 25006): the request may succeed when
// retried, and the API answers 503.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") || pe.Code == readOnlySQLTransaction
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || pgconn.SafeToRetry(err)
}
