package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
)

// Reports that race with the delete of their device either commit first
// and are deleted with it, or answer ErrNotFound (docs/devices.md); the
// delete itself succeeds (migration 00043). These tests hold each side at
// the moment an audit found the two failing.

// A report sent while a DELETE of its device is not yet committed waits for
// it and then answers ErrNotFound, storing nothing. It used to see the
// device, write its rows, and fail its foreign key check once the DELETE
// committed (23503, a 500 for a lone report).
func TestDevicesReportDuringDeleteIsNotFound(t *testing.T) {
	t.Parallel()
	d, pool, _ := newDevices(t, 1, 64)
	ctx := context.Background()
	mustCreate(t, d, "gone", "kept")
	mustReport(t, d, numRow("gone", "temp", 1, time.Now(), 60))

	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `DELETE FROM devices WHERE id = 'gone'`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Report(ctx, numRow("gone", "temp", 2, time.Now(), 60)) }()
	waitForLockWait(t, pool)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("report of a device deleted meanwhile = %v, want ErrNotFound", err)
	}
	for _, table := range []string{"device_metrics", "device_metrics_latest"} {
		if n := countOf(t, pool, `SELECT count(*) FROM `+table+` WHERE device_id = 'gone'`); n != 0 {
			t.Errorf("%s holds %d rows of the deleted device", table, n)
		}
	}
	// The writer goes on with the other devices.
	mustReport(t, d, numRow("kept", "temp", 3, time.Now(), 60))
}

// A DELETE that arrives while a report is writing its device's latest value
// waits for that report to commit, then deletes its rows too. The report
// used to take the device's row lock only in its foreign key checks, after
// the latest row's: the DELETE, holding the device and waiting for that
// row, and the report, waiting for the device, deadlocked, and PostgreSQL
// aborted the DELETE (a 500). A trigger of the test's own database holds the
// report while it holds the latest row.
func TestDevicesDeleteWhileReportWritesLatest(t *testing.T) {
	t.Parallel()
	d, pool, _ := newDevices(t, 1, 64)
	ctx := context.Background()
	mustCreate(t, d, "busy")
	mustReport(t, d, numRow("busy", "slow", 1, time.Now(), 60))
	// Shorter than deadlock_timeout (1 s), so that the DELETE's own check
	// would find the cycle.
	if _, err := pool.Exec(ctx, `
		CREATE FUNCTION test_hold_latest() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.name = 'slow' THEN PERFORM pg_sleep(0.4); END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER test_hold_latest BEFORE UPDATE ON device_metrics_latest
			FOR EACH ROW EXECUTE FUNCTION test_hold_latest()`); err != nil {
		t.Fatal(err)
	}

	reported := make(chan error, 1)
	go func() { reported <- d.Report(ctx, numRow("busy", "slow", 2, time.Now(), 60)) }()
	waitFor(t, "the report to hold the latest row", func() bool {
		return countOf(t, pool, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event = 'PgSleep'`) > 0
	})
	// The report holds its device's row (FOR KEY SHARE) while it writes.
	var pgErr *pgconn.PgError
	if _, err := pool.Exec(ctx, `SELECT 1 FROM devices WHERE id = 'busy' FOR UPDATE NOWAIT`); !errors.As(err, &pgErr) ||
		pgErr.Code != "55P03" {
		t.Fatalf("locking the reporting device's row = %v, want 55P03 (lock_not_available): the report does not hold it", err)
	}

	deleted := make(chan error, 1)
	go func() { deleted <- d.Delete(ctx, "busy") }()
	if err := <-deleted; err != nil {
		t.Fatalf("delete while a report writes = %v", err)
	}
	if err := <-reported; err != nil {
		t.Fatalf("report that began before the delete = %v, want nil (committed first)", err)
	}
	for _, table := range []string{"device_metrics", "device_metrics_latest"} {
		if n := countOf(t, pool, `SELECT count(*) FROM `+table+` WHERE device_id = 'busy'`); n != 0 {
			t.Errorf("%s holds %d rows of the deleted device", table, n)
		}
	}
}

// waitForLockWait waits until a session of the test's database waits on a
// lock.
func waitForLockWait(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	waitFor(t, "a session to wait on a lock", func() bool {
		return countOf(t, pool, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`) > 0
	})
}
