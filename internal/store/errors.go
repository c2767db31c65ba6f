package store

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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
	Err    error
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

// wrap interprets err, returned by the database while doing op. This and
// the helpers below are the only place that knows SQLSTATE codes and
// pgx.ErrNoRows.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var se *Error
	if errors.As(err, &se) {
		return err // already interpreted (a nested store call)
	}
	e := &Error{Op: op, Err: err}
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		e.Kind = ErrNotFound
	case errors.As(err, &pgErr):
		e.Kind, e.Rule, e.Detail = kindOf(pgErr)
	case errors.Is(err, context.Canceled):
		// The caller went away: nothing to interpret (errors.Is still sees it).
	case unreachable(err):
		e.Kind = ErrUnavailable
	}
	return e
}

// kindOf maps a SQLSTATE to a kind and what a client may be told of it.
func kindOf(pgErr *pgconn.PgError) (kind error, rule, detail string) {
	switch code := pgErr.Code; {
	case code == "23505": // unique_violation
		return ErrConflict, "", "already exists"
	case code == "22003": // numeric_value_out_of_range
		return ErrTooLarge, "", "a value is out of range: a 64-bit total would overflow"
	case code == "22P05", // untranslatable_character (\u0000 in jsonb)
		code == "22021": // character_not_in_repertoire (NUL or invalid UTF-8 in text)
		return ErrInvalid, "unicode", `a string in the request contains \u0000 or a character PostgreSQL cannot store`
	case code == "22P02", // invalid_text_representation
		code == "22007", code == "22008", // invalid datetime format, datetime field overflow
		code == "22001", // string_data_right_truncation
		code == "23514": // check_violation
		return ErrInvalid, "invalid", "a value in the request cannot be stored"
	case strings.HasPrefix(code, "08"), // connection exception
		code == "53300", // too_many_connections
		code == "57P01", // admin_shutdown
		code == "57P02", // crash_shutdown
		code == "57P03", // cannot_connect_now
		code == "57014", // query_canceled (statement_timeout)
		code == "55P03": // lock_not_available
		return ErrUnavailable, "", "the database is unavailable"
	}
	return nil, "", ""
}

// unreachable reports whether a non-PostgreSQL error means the server could
// not be reached or the connection broke.
func unreachable(err error) bool {
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) ||
		errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err)
}

// retryable reports whether PostgreSQL aborted a transaction that may
// simply be run again: a deadlock or a serialization failure.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// dataError reports whether a statement failed on what it was asked to
// store (classes 22 data exception and 23 integrity constraint violation),
// as opposed to the database failing: the same rows sent one by one would
// show which of them is at fault.
func dataError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23"))
}
