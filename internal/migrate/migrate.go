// Package migrate applies the embedded goose migrations. Concurrent
// migrators are safe, also through a transaction pooler such as PgBouncer:
// goose's table locker (a lease row in goose_lock, renewed while a migrator
// works) lets one of them migrate while the others wait and then find
// nothing to do. A session advisory lock would not do there: it stays on
// whichever server connection took it, which the pooler hands to other
// clients, and the unlock goes to another one.
package migrate

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/telemetry/telemetry/migrations"
)

// Migrator runs the embedded migrations against one database.
type Migrator struct {
	pool         *pgxpool.Pool
	db           *sql.DB
	provider     *goose.Provider
	lockTimedOut func(error) bool // RetryWhen
}

// New builds a Migrator on pool. Close it when done.
func New(pool *pgxpool.Pool) (*Migrator, error) {
	// A waiting migrator tries again every half second (goose's default, 5
	// s, would slow every concurrent start) for up to five minutes; the
	// holder renews its 30 s lease every 5 s, so a migrator that died
	// holding the lock delays the others by 30 s at most.
	locker, err := lock.NewPostgresTableLocker(
		lock.WithTableLockTimeout(lockRetry, uint64(lockWait/lockRetry)),
		lock.WithTableLeaseDuration(30*time.Second),
		lock.WithTableHeartbeatInterval(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("migration locker: %w", err)
	}
	db := sql.OpenDB(lockTimeoutConnector{stdlib.GetPoolConnector(pool)})
	// As stdlib.OpenDBFromPool does: the pool keeps the idle connections,
	// or the *sql.DB would hold some acquired and pool.Close would wait.
	db.SetMaxIdleConns(0)
	fsys := fs.FS(migrations.FS)
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithLocker(locker))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migration provider: %w", err)
	}
	return &Migrator{pool: pool, db: db, provider: p}, nil
}

// How often a migrator waiting for the lock tries again, and for how long.
const (
	lockRetry = 500 * time.Millisecond
	lockWait  = 5 * time.Minute
)

// migrationLockTimeout bounds how long a migration's statement waits for a
// table lock (lock_timeout, SET LOCAL in each migration's transaction).
// A migration that alters a table needs ACCESS EXCLUSIVE on it, which
// waits for every session using the table: behind a pg_dump under way
// (ACCESS SHARE on every table for its whole run, an hour for a large
// database) or a long export or analyst's transaction. PostgreSQL queues
// every later query of the table behind the waiting migration, so without
// a bound the API's reads and writes of that table waited as long as the
// dump and answered 503 at DB_TIMEOUT (found by a backup audit;
// TestMigrateBesideADumpLetsReadersThrough). With it the migration gives
// up (its transaction rolls back) and Up tries again after
// migrationLockPause (RetryWhen), so the queue drains in between.
const (
	migrationLockTimeout = 2 * time.Second
	migrationLockPause   = 3 * time.Second
)

// lockTimeoutConnector hands out connections whose transactions start
// with SET LOCAL lock_timeout: goose runs each migration in one (no
// migration here is NO TRANSACTION), and a transaction-local setting
// works through a transaction pooler, where a session SET would stay on
// a server connection other clients use.
type lockTimeoutConnector struct{ driver.Connector }

func (c lockTimeoutConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		return conn, nil
	}
	return lockTimeoutConn{sc}, nil
}

type lockTimeoutConn struct{ *stdlib.Conn }

func (c lockTimeoutConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	tx, err := c.Conn.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	if _, err := c.Conn.ExecContext(ctx, fmt.Sprintf("SET LOCAL lock_timeout = '%dms'", migrationLockTimeout.Milliseconds()), nil); err != nil {
		_ = tx.Rollback()
		return nil, err
	}
	return tx, nil
}

// RetryWhen makes Up try again, after migrationLockPause and for up to
// lockWait, when a migration failed with an error lockTimedOut reports as
// a lock wait that gave up (postgres.LockTimedOut: the store's errors.go
// is the one place that knows SQLSTATEs, and it imports this package).
// Without it Up fails at the first lock timeout.
func (m *Migrator) RetryWhen(lockTimedOut func(error) bool) { m.lockTimedOut = lockTimedOut }

// ErrReadOnly is returned by Up and Down on a server in recovery (a
// streaming replica), which cannot be migrated: migrate the primary.
var ErrReadOnly = errors.New("the database server is in recovery (a read-only replica): migrate the primary instead (set MIGRATE_DATABASE_URL or DATABASE_URL to it)")

// refuseReplica fails with ErrReadOnly on a server in recovery. Without it,
// goose on a replica finds the schema current (it only reads the version
// table) and reports "up to date", or fails on its first write.
func (m *Migrator) refuseReplica(ctx context.Context) error {
	inRecovery, err := InRecovery(ctx, m.pool)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if inRecovery {
		return ErrReadOnly
	}
	return nil
}

// Close releases the database handle (the pool itself stays open).
func (m *Migrator) Close() error { return m.db.Close() }

// Up applies every pending migration and logs each one, then the storage
// mode the schema ended up in.
func (m *Migrator) Up(ctx context.Context, log *slog.Logger) error {
	if err := m.refuseReplica(ctx); err != nil {
		return err
	}
	var applied int
	deadline := time.Now().Add(lockWait)
	for {
		results, err := m.provider.Up(ctx)
		for _, r := range results {
			log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration.String())
		}
		applied += len(results)
		if err == nil {
			break
		}
		if m.lockTimedOut == nil || !m.lockTimedOut(err) {
			return fmt.Errorf("migrate up: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("migrate up: for %s a migration could not lock a table another session holds (a pg_dump under way, a long transaction: pg_stat_activity shows it); that migration was rolled back (those logged as applied stay): run migrate again once that session is done: %w", lockWait, err)
		}
		log.Warn("a migration waited more than its lock_timeout for a table another session holds (a pg_dump under way, a long transaction): rolled back, retrying",
			"lock_timeout", migrationLockTimeout.String(), "retry_in", migrationLockPause.String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return fmt.Errorf("migrate up: %w", ctx.Err())
		case <-time.After(migrationLockPause):
		}
	}
	current, _, err := m.provider.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	if current >= jitOffVersion {
		if err := m.keepJITOff(ctx, log); err != nil {
			return err
		}
	}
	mode, err := Mode(ctx, m.pool)
	if err != nil {
		return err
	}
	log.Info("schema up to date", "version", current, "applied", applied, "mode", mode)
	return nil
}

// jitOffVersion is the migration that turns JIT off for the migrating
// role (migrations/00022_jit_off.sql).
const jitOffVersion = 22

// keepJITOff gives the migrating role migration 00022's jit = off again
// when it has no jit setting at all, for every database or this one. The
// setting belongs to the role, which is cluster-wide: a database restored
// from pg_dump into another cluster, or migrated by a new role, has every
// migration applied, so 00022 never runs again, and its role was left
// with JIT on (a grouped call 157 ms of CPU instead of 27, README). A jit
// setting the role has, on or off, is left as it is.
func (m *Migrator) keepJITOff(ctx context.Context, log *slog.Logger) error {
	var missing bool
	var role string
	if err := m.pool.QueryRow(ctx, `SELECT current_user, NOT EXISTS (
		SELECT 1 FROM pg_db_role_setting s, unnest(s.setconfig) AS c
		WHERE s.setrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)
		  AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
		  AND c LIKE 'jit=%')`).Scan(&role, &missing); err != nil {
		return fmt.Errorf("migrate up: the role's jit setting: %w", err)
	}
	if !missing {
		return nil
	}
	if _, err := m.pool.Exec(ctx, `ALTER ROLE CURRENT_USER SET jit = off`); err != nil {
		return fmt.Errorf("migrate up: ALTER ROLE CURRENT_USER SET jit = off (migration 00022's setting, which this role lacks): %w", err)
	}
	log.Info("jit turned off for the role, as migration 00022 does (the role had no jit setting: a role setting is not in a pg_dump)", "role", role)
	return nil
}

// DownTo rolls back every migration after version (tests that need the
// schema as it was).
func (m *Migrator) DownTo(ctx context.Context, log *slog.Logger, version int64) error {
	if err := m.refuseReplica(ctx); err != nil {
		return err
	}
	rs, err := m.provider.DownTo(ctx, version)
	for _, r := range rs {
		log.Info("migration rolled back", "version", r.Source.Version, "file", r.Source.Path)
	}
	if err != nil {
		return fmt.Errorf("migrate down to %d: %w", version, err)
	}
	return nil
}

// Down rolls back the most recent migration.
func (m *Migrator) Down(ctx context.Context, log *slog.Logger) error {
	if err := m.refuseReplica(ctx); err != nil {
		return err
	}
	r, err := m.provider.Down(ctx)
	if r != nil {
		log.Info("migration rolled back", "version", r.Source.Version, "file", r.Source.Path)
	}
	if err != nil {
		return fmt.Errorf("migrate down: %w", err)
	}
	return nil
}

// Status writes one line per migration: applied time or "pending".
func (m *Migrator) Status(ctx context.Context, w io.Writer) error {
	st, err := m.provider.Status(ctx)
	if err != nil {
		return fmt.Errorf("migrate status: %w", err)
	}
	for _, s := range st {
		applied := "pending"
		if s.State == goose.StateApplied {
			applied = "applied " + s.AppliedAt.UTC().Format("2006-01-02T15:04:05Z")
		}
		fmt.Fprintf(w, "%05d  %-28s %s\n", s.Source.Version, s.Source.Path, applied)
	}
	return nil
}

// Versions reports the database's schema version and the latest embedded one.
func (m *Migrator) Versions(ctx context.Context) (current, latest int64, err error) {
	current, latest, err = m.provider.GetVersions(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("schema version: %w", err)
	}
	return current, latest, nil
}

// SchemaAhead is CheckCurrent's error for a schema newer than the binary:
// a later release has migrated it. The binary can serve (migrations keep
// the release before them working, docs/scaling.md) but should not run
// the maintenance pass, which the later release may do differently.
type SchemaAhead struct{ Current, Latest int64 }

func (e *SchemaAhead) Error() string {
	return fmt.Sprintf("database schema is at version %d, newer than this binary's %d: a later release migrated it; upgrade this binary",
		e.Current, e.Latest)
}

// CheckCurrent fails when the schema is behind the latest embedded
// migration, and answers a *SchemaAhead when it is ahead of it.
func (m *Migrator) CheckCurrent(ctx context.Context) error {
	current, latest, err := m.Versions(ctx)
	if err != nil {
		return err
	}
	if current < latest {
		return fmt.Errorf("database schema is at version %d, this binary needs %d: run `telemetry migrate` (or `make migrate`) first", current, latest)
	}
	if current > latest {
		return &SchemaAhead{Current: current, Latest: latest}
	}
	return nil
}

// InRecovery reports whether the server is in recovery: a streaming
// replica (hot standby) or a primary still replaying its WAL, which takes
// no writes (the store's readiness asks it too).
func InRecovery(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var recovering bool
	if err := pool.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&recovering); err != nil {
		return false, fmt.Errorf("recovery state: %w", err)
	}
	return recovering, nil
}

// Mode says whether the time-series tables are TimescaleDB hypertables
// ("timescaledb") or plain tables ("postgresql"). The extension alone does
// not make them hypertables: a database migrated by a user that could not
// create it, where a superuser created it afterwards, keeps plain tables.
func Mode(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	hyper, err := Hypertables(ctx, pool)
	if err != nil {
		return "", fmt.Errorf("storage mode: %w", err)
	}
	return ModeOf(hyper), nil
}

// ModeOf is Mode given the schema's hypertables: "timescaledb" when
// measurements is one.
func ModeOf(hypertables map[string]bool) string {
	if hypertables["measurements"] {
		return "timescaledb"
	}
	return "postgresql"
}

// Hypertables is the set of this schema's TimescaleDB hypertables (none
// without the extension).
func Hypertables(ctx context.Context, pool *pgxpool.Pool) (map[string]bool, error) {
	var ext bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')`).Scan(&ext); err != nil || !ext {
		return nil, err
	}
	// (A separate statement: timescaledb_information exists only with the
	// extension.)
	rows, err := pool.Query(ctx, `SELECT hypertable_name::text FROM timescaledb_information.hypertables
		WHERE hypertable_schema = current_schema()`)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return set, nil
}
