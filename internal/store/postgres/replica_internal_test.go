package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/testdb"
)

// A write refused by a read-only server is ErrReadOnly, which is an
// ErrUnavailable (a 503), whichever way PostgreSQL words it; other errors
// of the same class are not.
func TestWrapReadOnly(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		&pgconn.PgError{Code: "25006", Message: "cannot execute INSERT in a read-only transaction"},
		&pgconn.PgError{Code: "P0001", Message: "cannot execute nextval() in a read-only transaction"},
		&pgconn.PgError{Code: "55000", Message: "recovery is in progress"},
	} {
		got := wrap("op", err)
		if !errors.Is(got, store.ErrReadOnly) || !errors.Is(got, store.ErrUnavailable) {
			t.Errorf("wrap(%v): %v, want ErrReadOnly and ErrUnavailable", err, got)
		}
		if _, detail := store.Explain(got); detail != "the database is read-only (a replica or in recovery)" {
			t.Errorf("wrap(%v): detail %q", err, detail)
		}
	}
	for _, err := range []error{
		&pgconn.PgError{Code: "55000", Message: "object not in prerequisite state"},
		&pgconn.PgError{Code: "25P02", Message: "current transaction is aborted"},
	} {
		if got := wrap("op", err); errors.Is(got, store.ErrReadOnly) {
			t.Errorf("wrap(%v) is ErrReadOnly", err)
		}
	}
	if errors.Is(store.ErrUnavailable, store.ErrReadOnly) {
		t.Error("every ErrUnavailable is an ErrReadOnly")
	}
}

// The same from a real server: a write in a read-only transaction.
func TestWrapReadOnlyFromTheServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO devices (id, name) VALUES ('d', 'd')`)
		return err
	})
	if got := wrap("insert", err); !errors.Is(got, store.ErrReadOnly) {
		t.Fatalf("insert in a read-only transaction: %v, want ErrReadOnly", got)
	}
}
