package store

import (
	"errors"
)

// The few kinds of failure callers tell apart. Every error the store
// returns wraps one of them (errors.Is), or none when it is unexpected: a
// bug, which the API answers with a 500.
var (
	// ErrNotFound: the row asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the row exists already, or is not in a state that allows
	// the change.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: PostgreSQL refused a value the client sent (a NUL byte,
	// invalid UTF-8, a malformed value, a failed CHECK).
	ErrInvalid = errors.New("invalid input")
	// ErrTooLarge: a number is out of its column's range, such as a 64-bit
	// total that would overflow.
	ErrTooLarge = errors.New("value out of range")
	// ErrUnavailable: the database cannot be reached or refuses work for
	// now; the same request may succeed later.
	ErrUnavailable = errors.New("database unavailable")
)

// ErrReadOnly: the database refuses writes, being a replica (in recovery)
// or read-only. It is an ErrUnavailable too (errors.Is), as a retry may
// find the primary once a failover is done; callers that say more (the
// API's "the database is read-only" 503) check it first.
var ErrReadOnly error = readOnly{}

type readOnly struct{}

func (readOnly) Error() string { return "database is read-only" }

func (readOnly) Is(target error) bool { return target == ErrUnavailable }

// ErrClosed: the store is shutting down and takes no more writes (a device
// metric report after Devices.Close). It is an ErrUnavailable too, as the
// same request may succeed on a server that runs; callers that say more
// (the API's "shutting down" 503) check it first.
var ErrClosed error = &Error{Op: "write", Kind: ErrUnavailable, Detail: "the server is shutting down",
	Err: errors.New("the store is closed")}

// Error is a store failure: what the store was doing, the kind (one of the
// sentinels above, nil when unexpected) and the cause. Its text may carry
// the driver's message: log it, never show it to clients; Detail is what a
// client may be told.
type Error struct {
	Op     string
	Kind   error
	Rule   string // for ErrInvalid: "unicode" (a character PostgreSQL cannot store) or "invalid"
	Detail string
	// Items, when known, are the items of a batch the error is about.
	Items []ItemFault
	Err   error
}

// ItemFault names an item of a batch (by its index) and its field that a
// store error is about, so that the API's 422 names them as its decoders
// do (body[3].bytes_tx).
type ItemFault struct {
	Index         int
	Field, Detail string
}

// Faults are the items err names, if any.
func Faults(err error) []ItemFault {
	var e *Error
	if errors.As(err, &e) {
		return e.Items
	}
	return nil
}

func (e *Error) Error() string { return e.Op + ": " + e.Err.Error() }

// Unwrap gives errors.Is and errors.As both the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Err}
	}
	return []error{e.Kind, e.Err}
}

// Explain is what a client may be told of err: the rule that failed (for
// ErrInvalid) and an explanation; "" for both when there is none.
func Explain(err error) (rule, detail string) {
	var e *Error
	if errors.As(err, &e) {
		return e.Rule, e.Detail
	}
	return "", ""
}
