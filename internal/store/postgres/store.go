// Package postgres implements the store (internal/store) on PostgreSQL,
// with TimescaleDB hypertables where the server has it: one file per
// resource. It is the only package that talks to the database (pgx and the
// sqlc code in internal/store/db); errors.go is the one place that knows
// SQLSTATE codes and turns them into the store's errors, page.go gives a
// list page with its exact total, withRetry (store.go) retries deadlocks
// and serialization failures.
package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// URLVar names the variable Open's url came from in its messages
	// (empty: DATABASE_URL; `migrate` may use MIGRATE_DATABASE_URL).
	URLVar string

	// ExecMode is how Open's pool sends queries (DATABASE_EXEC_MODE, see
	// execmode.go); empty means DefaultExecMode.
	ExecMode string

	// ReadURL (DATABASE_READ_URL), when set, names a streaming replica of
	// the database for the reads that tolerate a little lag (replica.go);
	// Open opens ReadPool on it. New takes ReadPool as it is (tests), and
	// the store closes it.
	ReadURL  string
	ReadPool *pgxpool.Pool
	// ReadMaxLag (READ_MAX_LAG) is how far behind the replica may be and
	// still serve reads; DefaultReadMaxLag when 0.
	ReadMaxLag time.Duration
	// ReadProbeInterval is how often the replica's lag is measured;
	// ReadProbeInterval when 0.
	ReadProbeInterval time.Duration
	// Log hears when the replica goes in or out of service (nowhere when nil).
	Log *slog.Logger

	// MaintenanceBatch is the most rows one DELETE of the maintenance pass
	// removes (0: DefaultMaintenanceBatch).
	MaintenanceBatch int

	// KeptCellsBytes bounds the memory of the sealed cells the grouped
	// measurements keep (measurements_cells.go): 0 means
	// DefaultKeptCellsBytes, a negative value keeps none (every call reads
	// its cells from PostgreSQL, as before; the benchmarks compare both).
	KeptCellsBytes int64
}

// Store holds one store per resource, all on one pool.
type Store struct {
	pool  *pgxpool.Pool
	reads *readRouter // the replica, when there is one
	halt  *halt       // cancelled by Abort

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
	pool, err := openPool(ctx, url, cmp.Or(opts.URLVar, "DATABASE_URL"), opts.ExecMode)
	if err != nil {
		return nil, err
	}
	if opts.ReadURL != "" {
		if opts.ReadPool, err = openPool(ctx, opts.ReadURL, "DATABASE_READ_URL", opts.ExecMode); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return New(pool, opts), nil
}

// openPool opens a pool on url, named by the variable it came from in
// messages, sending queries in execMode (both pools may go through
// PgBouncer).
func openPool(ctx context.Context, url, variable, execMode string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", variable, err)
	}
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	if !strings.Contains(url, "pool_max_conns") {
		pc.MaxConns = DefaultMaxConns
	}
	if err := applyExecMode(pc.ConnConfig, url, execMode); err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("database (%s): %w", variable, err)
	}
	return pool, nil
}

// New builds the stores on an open pool (tests bring their own).
func New(pool *pgxpool.Pool, opts Options) *Store {
	if opts.ObserveBatch == nil {
		opts.ObserveBatch = func(string, int) {}
	}
	q := db.New(pool)
	h := newHalt()
	s := &Store{
		pool:         pool,
		halt:         h,
		Flows:        newFlows(pool, q, h),
		Events:       newEvents(pool, q),
		Devices:      newDevices(pool, q, opts, h),
		Measurements: newMeasurements(pool, h, opts.KeptCellsBytes),
		Collections:  newCollections(pool, q),
		Runtime:      newRuntimeSamples(pool, q),
		Idempotency:  newIdempotency(pool, q),
		Lifecycle:    newLifecycle(pool, q, opts),
	}
	// The lag-tolerant reads of each store go through the router
	// (replica.go); with no replica it sends them all to the primary.
	s.reads = newReadRouter(pool, opts.ReadPool, opts.ReadMaxLag, opts.ReadProbeInterval, opts.Log)
	s.Flows.reads = s.reads.readersOf(nil)
	s.Events.reads = s.reads.readersOf(nil)
	s.Devices.reads = s.reads.readersOf(nil)
	s.Measurements.reads = s.reads.readersOf(func(d db.DBTX) db.DBTX { return customPlans{d} })
	s.Collections.reads = s.reads.readersOf(nil)
	s.Lifecycle.versions = s.schemaVersions
	return s
}

// Stores is the store as the API takes it.
func (s *Store) Stores() *store.Store {
	return &store.Store{Flows: s.Flows, Events: s.Events, Devices: s.Devices, Measurements: s.Measurements,
		Collections: s.Collections, Runtime: s.Runtime, Idempotency: s.Idempotency, Health: s,
		Export: &Exports{reads: s.reads.readersOf(nil)}}
}

// PoolStats are the pool's figures, for /metrics.
func (s *Store) PoolStats() metrics.PoolStats { return poolStats(s.pool) }

// ReplicaPoolStats are the read replica's pool's figures, for /metrics
// (zero without a replica).
func (s *Store) ReplicaPoolStats() metrics.PoolStats {
	if s.reads.replica == nil {
		return metrics.PoolStats{}
	}
	return poolStats(s.reads.replica)
}

func poolStats(pool *pgxpool.Pool) metrics.PoolStats {
	st := pool.Stat()
	return metrics.PoolStats{MaxConns: st.MaxConns(), Acquired: st.AcquiredConns(), Idle: st.IdleConns(),
		Constructing: st.ConstructingConns(), Acquires: st.AcquireCount(), EmptyAcquires: st.EmptyAcquireCount(),
		AcquireTime: st.AcquireDuration()}
}

// Replicated reports whether a replica (DATABASE_READ_URL) serves reads.
func (s *Store) Replicated() bool { return s.reads.replica != nil }

// ReplicaStats are the replica's figures (lag, reads served by each pool),
// for /metrics.
func (s *Store) ReplicaStats() metrics.ReplicaStats { return s.reads.stats() }

// Pool is the connection pool, for migrations.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return wrap("ping", s.pool.Ping(ctx)) }

// Ready reports the applied schema version and the storage mode
// ("timescaledb" or "postgresql"), or why the service is not ready: the
// database does not answer or the schema is not at the latest migration.
// The migration provider is built once, not on every probe.
func (s *Store) Ready(ctx context.Context) (version int64, mode string, err error) {
	// A primary pool on a server in recovery answers reads but no write:
	// not ready, so that a load balancer sends requests elsewhere.
	recovering, err := migrate.InRecovery(ctx, s.pool)
	if err != nil {
		return 0, "", wrap("ready", err) // InRecovery's error says "recovery state"
	}
	if recovering {
		return 0, "", &store.Error{Op: "ready", Kind: store.ErrReadOnly, Detail: "the database is a replica in recovery (read-only)",
			Err: errors.New("DATABASE_URL names a server in recovery (pg_is_in_recovery): a replica, or a primary not yet promoted")}
	}
	current, latest, err := s.schemaVersions(ctx)
	if err != nil {
		return 0, "", err
	}
	// A schema ahead of the binary is a later release's, migrated before
	// its instances start: this one keeps serving (docs/scaling.md).
	if current < latest {
		return current, "", fmt.Errorf("schema at version %d, latest is %d", current, latest)
	}
	mode, err = migrate.Mode(ctx, s.pool)
	return current, mode, wrap("storage mode", err)
}

// schemaVersions gives the database's schema version and the latest
// embedded migration's. The migration provider is built once.
func (s *Store) schemaVersions(ctx context.Context) (current, latest int64, err error) {
	s.readyOnce.Do(func() { s.migrator, s.readyErr = migrate.New(s.pool) })
	if s.readyErr != nil {
		return 0, 0, s.readyErr
	}
	current, latest, err = s.migrator.Versions(ctx)
	return current, latest, wrap("schema version", err)
}

// Close stops the stores' background work (the device metric writer
// commits what is queued) and closes the pool.
func (s *Store) Close() {
	s.Devices.Close()
	s.reads.close()
	if s.migrator != nil {
		s.migrator.Close()
	}
	s.pool.Close()
	if s.reads.replica != nil {
		s.reads.replica.Close()
	}
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
