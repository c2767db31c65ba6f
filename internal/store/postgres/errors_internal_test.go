package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/puddle/v2"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/testdb"
)

// safeToRetry is an error of the kind pgx marks as sent before anything
// reached the server.
type safeToRetry struct{}

func (safeToRetry) Error() string     { return "nothing sent" }
func (safeToRetry) SafeToRetry() bool { return true }

// wrap's verdict on the error values a broken connection produces, as pgx
// returns them (bare or wrapped in its own messages), and on errors that
// must not pass for an unavailable database.
func TestWrapConnectionErrors(t *testing.T) {
	t.Parallel()
	unavailable := []error{
		io.ErrUnexpectedEOF,
		fmt.Errorf("receive message failed: %w", io.ErrUnexpectedEOF),
		io.EOF,
		pgconn.ErrConnClosed,
		fmt.Errorf("failed to deallocate cached statement(s): %w", pgconn.ErrConnClosed),
		&net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)},
		&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)},
		syscall.EPIPE,
		syscall.ECONNRESET,
		syscall.ECONNREFUSED,
		syscall.ECONNABORTED,
		net.ErrClosed,
		puddle.ErrClosedPool,
		fmt.Errorf("acquire: %w", puddle.ErrClosedPool),
		safeToRetry{},
		context.DeadlineExceeded,
		&pgconn.ConnectError{},
		&pgconn.PgError{Code: "08006"}, // connection_failure
		&pgconn.PgError{Code: "53300"}, // too_many_connections
		&pgconn.PgError{Code: "53100"}, // disk_full
		&pgconn.PgError{Code: "57P01"}, // admin_shutdown
		&pgconn.PgError{Code: "57P02"}, // crash_shutdown
		&pgconn.PgError{Code: "57P03"}, // cannot_connect_now
		&pgconn.PgError{Code: "57P04"}, // database_dropped
		&pgconn.PgError{Code: "57P05"}, // idle_session_timeout
		&pgconn.PgError{Code: "57014"}, // query_canceled
		&pgconn.PgError{Code: "58030"}, // io_error
		&pgconn.PgError{Code: "55P03"}, // lock_not_available
	}
	for _, err := range unavailable {
		got := wrap("op", err)
		if !errors.Is(got, store.ErrUnavailable) {
			t.Errorf("wrap(%T %v) is not ErrUnavailable", err, err)
		}
		if !errors.Is(got, err) {
			t.Errorf("wrap(%v) lost its cause", err)
		}
	}
	for _, c := range []struct {
		err  error
		kind error // nil: unexpected (a 500)
	}{
		{errors.New("boom"), nil},
		{pgx.ErrTxCommitRollback, nil},
		{&pgconn.PgError{Code: "42P01"}, nil}, // undefined_table: a bug, not an outage
		{&pgconn.PgError{Code: "23505"}, store.ErrConflict},
		{&pgconn.PgError{Code: "22P02"}, store.ErrInvalid},
		{&pgconn.PgError{Code: "54000", Message: `index row size 2832 exceeds btree version 4 maximum 2704 for index "measurements_name_idx"`}, store.ErrInvalid},
		{&pgconn.PgError{Code: "54000", Message: "stack depth limit exceeded"}, nil},
		{&pgconn.PgError{Code: "22003", Message: "value overflows numeric format"}, store.ErrInvalid},
		{&pgconn.PgError{Code: "22003", Message: "bigint out of range"}, store.ErrTooLarge},
		{pgx.ErrNoRows, store.ErrNotFound},
		{context.Canceled, nil},
	} {
		got := wrap("op", c.err)
		var se *store.Error
		if !errors.As(got, &se) || se.Kind != c.kind {
			t.Errorf("wrap(%v): kind %v, want %v", c.err, se.Kind, c.kind)
		}
		if errors.Is(got, store.ErrUnavailable) {
			t.Errorf("wrap(%v) is ErrUnavailable", c.err)
		}
	}
	if wrap("op", nil) != nil {
		t.Error("wrap(nil) is not nil")
	}
}

// The same, on the values a real server and pool produce: a connection
// refused, a backend terminated under an open connection (then the same
// connection used again: "conn closed"), a connection used while busy
// ("conn busy"), a closed pool.
func TestWrapRealConnectionErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	check := func(what string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		if !errors.Is(wrap(what, err), store.ErrUnavailable) {
			t.Errorf("%s: %T %v is not ErrUnavailable", what, err, err)
		}
	}

	_, err := pgx.Connect(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	check("connection refused", err)

	url := testdb.URL(t)
	victim, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close(ctx)
	killer, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer killer.Close(ctx)
	var ok bool
	if err := killer.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, victim.PgConn().PID()).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend: %v %v", ok, err)
	}
	// The backend may take a moment to go; until then the query succeeds.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = victim.Exec(ctx, `SELECT 1`)
		if err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	check("terminated backend", err)
	_, err = victim.Exec(ctx, `SELECT 1`)
	check("closed connection", err)
	if !errors.Is(err, pgconn.ErrConnClosed) {
		t.Errorf("second use of a dead connection: %v, want conn closed", err)
	}

	busy, err := pgconn.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close(ctx)
	rr := busy.ExecParams(ctx, `SELECT 1`, nil, nil, nil, nil) // results not read yet
	_, err = busy.Exec(ctx, `SELECT 1`).ReadAll()
	check("busy connection", err)
	_, _ = rr.Close()

	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	pool.Close()
	_, err = pool.Exec(ctx, `SELECT 1`)
	check("closed pool", err)
}
