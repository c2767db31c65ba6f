// Package migrate applies the embedded goose migrations. Concurrent
// migrators are safe: goose's PostgreSQL session locker (an advisory lock)
// lets one of them migrate while the others wait and then find nothing to do.
package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/telemetry/telemetry/migrations"
)

// Migrator runs the embedded migrations against one database.
type Migrator struct {
	pool     *pgxpool.Pool
	db       *sql.DB
	provider *goose.Provider
}

// New builds a Migrator on pool. Close it when done.
func New(pool *pgxpool.Pool) (*Migrator, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("migration locker: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	fsys := fs.FS(migrations.FS)
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("migration provider: %w", err)
	}
	return &Migrator{pool: pool, db: db, provider: p}, nil
}

// Close releases the database handle (the pool itself stays open).
func (m *Migrator) Close() error { return m.db.Close() }

// Up applies every pending migration and logs each one, then the storage
// mode the schema ended up in.
func (m *Migrator) Up(ctx context.Context, log *slog.Logger) error {
	if err := m.refuseReplica(ctx, "migrate up"); err != nil {
		return err
	}
	results, err := m.provider.Up(ctx)
	for _, r := range results {
		log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration.String())
	}
	if err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	current, _, err := m.provider.GetVersions(ctx)
	if err != nil {
		return fmt.Errorf("migrate up: %w", err)
	}
	mode, err := Mode(ctx, m.pool)
	if err != nil {
		return err
	}
	log.Info("schema up to date", "version", current, "applied", len(results), "mode", mode)
	return nil
}

// Down rolls back the most recent migration.
// DownTo rolls back every migration after version (tests that need the
// schema as it was).
func (m *Migrator) DownTo(ctx context.Context, log *slog.Logger, version int64) error {
	if err := m.refuseReplica(ctx, "migrate down"); err != nil {
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

func (m *Migrator) Down(ctx context.Context, log *slog.Logger) error {
	if err := m.refuseReplica(ctx, "migrate down"); err != nil {
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

// CheckCurrent fails unless the schema is at the latest embedded migration.
func (m *Migrator) CheckCurrent(ctx context.Context) error {
	current, latest, err := m.Versions(ctx)
	if err != nil {
		return err
	}
	if current != latest {
		return fmt.Errorf("database schema is at version %d, this binary needs %d: run `telemetry migrate` (or `make migrate`) first", current, latest)
	}
	return nil
}

// InRecovery reports whether the server is in recovery: a streaming
// replica (hot standby) or a primary still replaying its WAL, which takes
// no writes.
func InRecovery(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	var recovering bool
	if err := pool.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&recovering); err != nil {
		return false, fmt.Errorf("recovery state: %w", err)
	}
	return recovering, nil
}

// refuseReplica fails when the server is in recovery: a migration there
// cannot write, and "up to date" would be a lie when the primary is behind.
func (m *Migrator) refuseReplica(ctx context.Context, what string) error {
	recovering, err := InRecovery(ctx, m.pool)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if recovering {
		return fmt.Errorf("%s: the database is a read-only replica (in recovery); run migrations against the primary", what)
	}
	return nil
}

// Mode says whether the time-series tables are TimescaleDB hypertables
// ("timescaledb") or plain tables ("postgresql").
func Mode(ctx context.Context, pool *pgxpool.Pool) (string, error) {
	var enabled bool
	err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')`).Scan(&enabled)
	if err != nil {
		return "", fmt.Errorf("storage mode: %w", err)
	}
	if enabled {
		return "timescaledb", nil
	}
	return "postgresql", nil
}
