package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/telemetry/telemetry/internal/store"
)

// wrap interprets err, returned by the database while doing op. This and
// the helpers below are the only place that knows SQLSTATE codes and
// pgx.ErrNoRows.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var se *store.Error
	if errors.As(err, &se) {
		return err // already interpreted (a nested store call)
	}
	e := &store.Error{Op: op, Err: err}
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		e.Kind = store.ErrNotFound
	case errors.As(err, &pgErr):
		e.Rule, e.Detail, e.Kind = kindOf(pgErr)
	case errors.Is(err, context.Canceled):
		// The caller went away: nothing to interpret (errors.Is still sees it).
	case unreachable(err):
		e.Kind = store.ErrUnavailable
	}
	return e
}

// detailOverflow explains a total past 64 bits (22003, or FlowUpsert's
// sums).
const detailOverflow = "a value is out of range: a 64-bit total would overflow"

// detailDiskFull explains disk_full (53100).
const detailDiskFull = "the database server's disk is full"

// kindOf maps a SQLSTATE to a kind and what a client may be told of it.
func kindOf(pgErr *pgconn.PgError) (rule, detail string, kind error) {
	switch code := pgErr.Code; {
	case code == "23505": // unique_violation
		return "", "already exists", store.ErrConflict
	case code == "22003" && pgErr.Message == "value overflows numeric format":
		// A JSON number stored in jsonb (measurements' args, an event's
		// fields) that numeric cannot hold: 1e1000000, 1e-20000.
		return "max", "a number in the request is beyond what PostgreSQL stores in JSON (at most 131072 digits " +
			"before the decimal point and 16383 after)", store.ErrInvalid
	case code == "22003": // numeric_value_out_of_range
		return "", detailOverflow, store.ErrTooLarge
	case code == "22P05", // untranslatable_character (\u0000 in jsonb)
		code == "22021": // character_not_in_repertoire (NUL or invalid UTF-8 in text)
		return "unicode", `a string in the request contains \u0000 or a character PostgreSQL cannot store`, store.ErrInvalid
	case code == "54000" && strings.HasPrefix(pgErr.Message, "index row size"):
		// program_limit_exceeded: an index entry over 2,704 bytes. The
		// API's byte bounds on the indexed strings keep a request under
		// it; a value that passes them anyway is the request's fault.
		return "max", "a value in the request is too long to be stored (an index entry would pass 2704 bytes)", store.ErrInvalid
	case code == "22P02", // invalid_text_representation
		code == "22007", code == "22008", // invalid datetime format, datetime field overflow
		code == "22001", // string_data_right_truncation
		code == "23514": // check_violation
		return "invalid", "a value in the request cannot be stored", store.ErrInvalid
	case code == "25006", // read_only_sql_transaction: a hot standby, default_transaction_read_only
		strings.Contains(pgErr.Message, "read-only transaction"),                      // the same, raised under another code
		code == "55000" && strings.Contains(pgErr.Message, "recovery is in progress"): // WAL functions on a standby
		return "", "the database is read-only (a replica or in recovery)", store.ErrReadOnly
	case code == "53100": // disk_full: "could not extend file ...: No space left on device"
		// The server answers (reads go on) but cannot store anything new
		// until space is freed: "unavailable" alone sent operators looking
		// for a server that was up (found by a disk-full audit,
		// cmd/telemetry/diskfull_test.go).
		return "", detailDiskFull, store.ErrUnavailable
	case strings.HasPrefix(code, "08"), // connection exception
		strings.HasPrefix(code, "53"), // insufficient resources: too many connections, disk full, out of memory
		// Operator intervention: admin_shutdown (pg_terminate_backend,
		// a fast shutdown), crash_shutdown, cannot_connect_now (starting
		// up or in recovery), database_dropped, idle_session_timeout and
		// query_canceled (statement_timeout).
		strings.HasPrefix(code, "57"),
		strings.HasPrefix(code, "58"), // system error: an I/O error on the server
		code == "55P03":               // lock_not_available
		return "", "the database is unavailable", store.ErrUnavailable
	}
	return "", "", nil
}

// unreachable reports whether a non-PostgreSQL error means the server could
// not be reached, the connection broke (the server died or was restarted
// mid-request, a proxy cut it) or the pool cannot hand out a connection:
// failures of the database, not of the request, so the same request may
// succeed later. pgx reports these as values of several kinds, depending on
// when the connection went away:
//   - connecting failed: *pgconn.ConnectError;
//   - the socket failed: a net.Error (*net.OpError: connection refused or
//     reset, broken pipe, a timeout), or the bare syscall error, or
//     net.ErrClosed;
//   - the server closed it: io.ErrUnexpectedEOF ("unexpected EOF"), io.EOF;
//   - pgx closed it after an earlier failure: pgconn.ErrConnClosed ("conn
//     closed");
//   - nothing was sent at all (pgconn.SafeToRetry): "conn busy", a context
//     done before the query started;
//   - the pool is closed (puddle.ErrClosedPool, during shutdown) or could
//     not connect in time (context.DeadlineExceeded, pgconn.Timeout).
func unreachable(err error) bool {
	var connErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connErr), errors.As(err, &netErr),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, net.ErrClosed),
		errors.Is(err, puddle.ErrClosedPool),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return true
	}
	return false
}

// retryable reports whether PostgreSQL aborted a transaction that may
// simply be run again: a deadlock or a serialization failure.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// lockTimedOut reports whether a statement gave up waiting for a lock
// (lock_not_available: lock_timeout, or NOWAIT).
func lockTimedOut(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}

// LockTimedOut is lockTimedOut for `telemetry migrate`, whose migrations
// run with a lock_timeout and are tried again when it expires
// (migrate.Migrator.RetryWhen).
func LockTimedOut(err error) bool { return lockTimedOut(err) }

// dataError reports whether a statement failed on what it was asked to
// store (classes 22 data exception and 23 integrity constraint violation),
// as opposed to the database failing: the same rows sent one by one would
// show which of them is at fault.
func dataError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23"))
}

// refused reports whether PostgreSQL itself answered a statement with an
// error other than being unavailable: the statement took no effect, so
// running its parts again apart cannot apply anything twice (after a broken
// connection, a commit may or may not have happened).
func refused(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && !errors.Is(err, store.ErrUnavailable)
}
