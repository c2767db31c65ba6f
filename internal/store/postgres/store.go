// Package postgres implements the store (internal/store) on PostgreSQL,
// with TimescaleDB hypertables where the server has it: one file per
// resource. It is the only package that talks to the database (pgx and the
// sqlc code in internal/store/db); errors.go is the one place that knows
// SQLSTATE codes and turns them into the store's errors, page.go gives a
// list page with its exact total, withRetry (store.go) retries deadlocks
// and serialization failures.
package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/migrate"
	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// Options tunes the stores.
type Options struct {
	// DeviceWriters is how many device metric commits may run at once.
	DeviceWriters int
	// DeviceMaxBatch is the most device metric reports in one commit.
	DeviceMaxBatch int
	// ObserveBatch, when set, learns the size of every ingest batch
	// committed, by resource ("flows", "device_metrics", ...).
	ObserveBatch func(resource string, items int)
	// MaintenanceBatch is the most rows one DELETE of the maintenance pass
	// removes (0: DefaultMaintenanceBatch).
	MaintenanceBatch int
}

// Store holds one store per resource, all on one pool.
type Store struct {
	pool *pgxpool.Pool

	Flows        *Flows
	Events       *Events
	Devices      *Devices
	Measurements *Measurements
	Collections  *Collections
	Runtime      *RuntimeSamples
	Idempotency  *Idempotency
	Lifecycle    *Lifecycle

	readyOnce sync.Once
	migrator  *migrate.Migrator
	readyErr  error
}

// DefaultMaxConns is the pool size when the URL sets no pool_max_conns.
const DefaultMaxConns = 16

// Open connects to the database at url. A short connect timeout keeps
// requests from hanging when the database is down (they fail with
// ErrUnavailable instead).
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	if !strings.Contains(url, "pool_max_conns") {
		pc.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	return New(pool, opts), nil
}

// New builds the stores on an open pool (tests bring their own).
func New(pool *pgxpool.Pool, opts Options) *Store {
	if opts.ObserveBatch == nil {
		opts.ObserveBatch = func(string, int) {}
	}
	q := db.New(pool)
	return &Store{
		pool:         pool,
		Flows:        newFlows(pool, q, opts),
		Events:       newEvents(pool, q),
		Devices:      newDevices(pool, q, opts),
		Measurements: newMeasurements(pool, q, opts),
		Collections:  newCollections(pool, q),
		Runtime:      newRuntimeSamples(pool, q),
		Idempotency:  newIdempotency(pool, q),
		Lifecycle:    newLifecycle(pool, q, opts),
	}
}

// Stores is the store as the API takes it.
func (s *Store) Stores() *store.Store {
	return &store.Store{Flows: s.Flows, Events: s.Events, Devices: s.Devices, Measurements: s.Measurements,
		Collections: s.Collections, Runtime: s.Runtime, Idempotency: s.Idempotency, Health: s}
}

// PoolStats are the pool's figures, for /metrics.
func (s *Store) PoolStats() metrics.PoolStats {
	st := s.pool.Stat()
	return metrics.PoolStats{MaxConns: st.MaxConns(), Acquired: st.AcquiredConns(), Idle: st.IdleConns(),
		Constructing: st.ConstructingConns(), Acquires: st.AcquireCount(), EmptyAcquires: st.EmptyAcquireCount(),
		AcquireTime: st.AcquireDuration()}
}

// Pool is the connection pool, for migrations.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return wrap("ping", s.pool.Ping(ctx)) }

// Ready reports the applied schema version and the storage mode
// ("timescaledb" or "postgresql"), or why the service is not ready: the
// database does not answer or the schema is not at the latest migration.
// The migration provider is built once, not on every probe.
func (s *Store) Ready(ctx context.Context) (version int64, mode string, err error) {
	s.readyOnce.Do(func() { s.migrator, s.readyErr = migrate.New(s.pool) })
	if s.readyErr != nil {
		return 0, "", s.readyErr
	}
	current, latest, err := s.migrator.Versions(ctx)
	if err != nil {
		return 0, "", wrap("schema version", err)
	}
	if current != latest {
		return current, "", fmt.Errorf("schema at version %d, latest is %d", current, latest)
	}
	mode, err = migrate.Mode(ctx, s.pool)
	return current, mode, wrap("storage mode", err)
}

// Close stops the stores' background work (the device metric writer
// commits what is queued) and closes the pool.
func (s *Store) Close() {
	s.Devices.Close()
	if s.migrator != nil {
		s.migrator.Close()
	}
	s.pool.Close()
}

// inTx runs fn in a transaction, committed when fn returns nil.
func inTx(ctx context.Context, pool *pgxpool.Pool, fn func(q *db.Queries) error) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return fn(db.New(tx)) })
}

// withRetry runs fn again, a few times, when PostgreSQL aborted it for a
// deadlock or a serialization failure (concurrent upserts of the same keys
// can meet one). fn must be atomic, so that a retry never doubles a write.
func withRetry(ctx context.Context, fn func() error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if err = fn(); err == nil || !retryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 10 * time.Millisecond):
		}
	}
	return err
}
