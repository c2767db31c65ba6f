package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/migrate"
	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// DefaultMaintenanceBatch is how many rows one DELETE of the maintenance
// pass removes at most: a few tens of milliseconds of work, so each batch
// is a short transaction and concurrent writes wait on nothing for long.
const DefaultMaintenanceBatch = 5000

// leaseSeconds is how long the maintenance lease lasts unless renewed; the
// pass renews it well before (every leaseSeconds/4), so only a pass that
// died leaves it to lapse.
const leaseSeconds = 120

// errLeaseLost stops a pass whose lease lapsed and was taken by another
// pass (this one stalled for over leaseSeconds): two passes never work at
// once.
var errLeaseLost = errors.New("maintenance lease lost to another pass")

// Lifecycle runs the maintenance pass (docs/lifecycle.md): retention on
// every time-series table and the rollups, compression on TimescaleDB.
type Lifecycle struct {
	pool  *pgxpool.Pool
	q     *db.Queries
	batch int32
	// beforeTable, when set (tests), is called as the pass starts on each
	// table, lease held.
	beforeTable func(table string)
	// versions gives the database's schema version and this binary's
	// latest (Store.schemaVersions); nil skips the check.
	versions func(ctx context.Context) (current, latest int64, err error)

	// unreleased are the holders this process may still hold the lease
	// under, with when each pass ended: a pass whose release failed (the
	// database went down under it) or whose acquire got no answer (it may
	// have committed). The next pass releases them first, so that a
	// database restart does not leave this instance's own lease to lapse,
	// every pass skipped meanwhile (found by a crash audit).
	mu         sync.Mutex
	unreleased map[uuid.UUID]time.Time
}

func newLifecycle(pool *pgxpool.Pool, q *db.Queries, opts Options) *Lifecycle {
	batch := opts.MaintenanceBatch
	if batch <= 0 {
		batch = DefaultMaintenanceBatch
	}
	return &Lifecycle{pool: pool, q: q, batch: int32(batch)}
}

var _ store.Maintainer = (*Lifecycle)(nil)

// expiry is one table's retention work: on TimescaleDB a hypertable drops
// whole chunks; otherwise del removes one batch of expired rows.
type expiry struct {
	table      string
	keep       time.Duration
	hypertable bool
	del        batchDelete
}

// batchDelete deletes one batch of rows expired before `before`, from
// `after` on (keyset: where the previous batch stopped), and returns how
// many it deleted and the time of the last one (after when none).
type batchDelete func(ctx context.Context, after, before time.Time, batch int32) (int64, time.Time, error)

// Maintain runs one pass unless another one holds the lease.
func (l *Lifecycle) Maintain(ctx context.Context, r store.Retention, now time.Time) (store.MaintenanceResult, error) {
	return l.leased(ctx, func(renew func(context.Context) error) (store.MaintenanceResult, error) {
		return l.maintain(ctx, r, now, renew)
	})
}

// Seal runs the pass's sealing of the measurements' closed units and bins
// alone (measurements_sealed), under the same lease: serve runs it every
// SEAL_INTERVAL, so that a window's unsealed tail stays 15-20 minutes
// between the hourly passes. Nothing is deleted here: the units older than
// the retention marks are not sealed, and the full pass deletes them.
func (l *Lifecycle) Seal(ctx context.Context, r store.Retention, now time.Time) (store.MaintenanceResult, error) {
	return l.leased(ctx, func(renew func(context.Context) error) (store.MaintenanceResult, error) {
		var res store.MaintenanceResult
		sealed, err := (&Measurements{pool: l.pool}).Seal(ctx, now, rollupsCut(r, now), renew)
		if n := sealed.Units(); n > 0 {
			res.Tables = append(res.Tables, store.TableWork{Table: "measurements_sealed", Sealed: n})
		}
		if err != nil && !errors.Is(err, errLeaseLost) {
			err = wrap("maintenance measurements_sealed", err)
		}
		return res, err
	})
}

// rollupsCut is where the rollups' retention cuts them at now (zero when
// they are kept forever): at a UTC day, so that the hourly and the daily
// cells always cover the same days (a window reads its whole days from one
// and its edge hours from the other).
func rollupsCut(r store.Retention, now time.Time) time.Time {
	if keep := r.RollupsKept(); keep > 0 {
		return dayOf(now.Add(-keep))
	}
	return time.Time{}
}

// leased runs fn under the maintenance lease, with the function that renews
// it, unless the schema is a later release's or another pass holds it
// (Skipped).
func (l *Lifecycle) leased(ctx context.Context, fn func(renew func(context.Context) error) (store.MaintenanceResult, error)) (store.MaintenanceResult, error) {
	// Asked before every pass, not once at start: a later release may
	// migrate the database while this instance serves on (a rolling
	// upgrade), and this binary's statements are not that schema's.
	if l.versions != nil {
		current, latest, err := l.versions(ctx)
		if err != nil {
			return store.MaintenanceResult{}, err
		}
		if current > latest {
			return store.MaintenanceResult{Skipped: true, SchemaAhead: true, SchemaVersion: current, BinaryVersion: latest}, nil
		}
	}
	if err := l.releaseUnreleased(ctx); err != nil {
		return store.MaintenanceResult{}, wrap("maintenance lease", err)
	}
	holder := uuid.New()
	_, err := l.q.AcquireMaintenanceLease(ctx, db.AcquireMaintenanceLeaseParams{Holder: holder, LeaseSeconds: leaseSeconds})
	// No row back: another pass holds the lease.
	if err = wrap("maintenance lease", err); errors.Is(err, store.ErrNotFound) {
		return store.MaintenanceResult{Skipped: true}, nil
	}
	if err != nil {
		l.remember(holder)
		return store.MaintenanceResult{}, err
	}
	defer func() {
		// Released even when ctx is cancelled (shutdown), so the next
		// pass need not wait for the lease to lapse.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if l.q.ReleaseMaintenanceLease(rctx, holder) != nil {
			l.remember(holder)
		}
	}()
	renewed := time.Now()
	renew := func(ctx context.Context) error {
		if time.Since(renewed) < leaseSeconds*time.Second/4 {
			return nil
		}
		n, err := l.q.RenewMaintenanceLease(ctx, db.RenewMaintenanceLeaseParams{Holder: holder, LeaseSeconds: leaseSeconds})
		if err != nil {
			return wrap("maintenance lease", err)
		}
		if n == 0 {
			return errLeaseLost
		}
		renewed = time.Now()
		return nil
	}
	return fn(renew)
}

// remember notes a holder whose lease may still be held (see
// Lifecycle.unreleased).
func (l *Lifecycle) remember(holder uuid.UUID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.unreleased == nil {
		l.unreleased = map[uuid.UUID]time.Time{}
	}
	l.unreleased[holder] = time.Now()
}

// releaseUnreleased releases the leases this process may still hold
// (Lifecycle.unreleased) and forgets them; those older than the lease have
// lapsed and are forgotten unasked. Each is ReleaseMaintenanceLease (the
// row's expires_at set to now, the row kept) if the row still names that
// holder: a no-op when the acquire never took it or another pass has since. A holder is remembered once its pass has ended, so none of
// these is a pass still at work.
func (l *Lifecycle) releaseUnreleased(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for holder, at := range l.unreleased {
		if time.Since(at) < leaseSeconds*time.Second {
			if err := l.q.ReleaseMaintenanceLease(ctx, holder); err != nil {
				return err
			}
		}
		delete(l.unreleased, holder)
	}
	return nil
}

// maintain is Maintain's pass, the lease held.
func (l *Lifecycle) maintain(ctx context.Context, r store.Retention, now time.Time, renew func(context.Context) error) (store.MaintenanceResult, error) {

	// Chunks are dropped and compressed on the tables that are hypertables,
	// not wherever the extension is: a database migrated before it was
	// created in it keeps plain tables, whose rows are deleted in batches
	// (migrate.Mode). The pass used to fail on each of them (TS001).
	hyper, err := migrate.Hypertables(ctx, l.pool)
	if err != nil {
		return store.MaintenanceResult{}, wrap("maintenance", err)
	}
	res := store.MaintenanceResult{Mode: migrate.ModeOf(hyper)}
	ts := len(hyper) > 0
	var errs []error
	// work is the entry of table in res, added on first use; the pointer
	// is good until the next table is added.
	work := func(table string) *store.TableWork {
		for i := range res.Tables {
			if res.Tables[i].Table == table {
				return &res.Tables[i]
			}
		}
		res.Tables = append(res.Tables, store.TableWork{Table: table})
		return &res.Tables[len(res.Tables)-1]
	}
	q := l.q
	expiries := []expiry{
		{"measurements", r.Measurements, true, func(ctx context.Context, a, b time.Time, n int32) (int64, time.Time, error) {
			r, err := q.DeleteExpiredMeasurements(ctx, db.DeleteExpiredMeasurementsParams{After: a, Before: b, Batch: n})
			return r.Deleted, r.Last, err
		}},
		{"device_metrics", r.DeviceMetrics, true, func(ctx context.Context, a, b time.Time, n int32) (int64, time.Time, error) {
			r, err := q.DeleteExpiredDeviceMetrics(ctx, db.DeleteExpiredDeviceMetricsParams{After: a, Before: b, Batch: n})
			return r.Deleted, r.Last, err
		}},
		{"runtime_samples", r.RuntimeSamples, true, func(ctx context.Context, a, b time.Time, n int32) (int64, time.Time, error) {
			r, err := q.DeleteExpiredRuntimeSamples(ctx, db.DeleteExpiredRuntimeSamplesParams{After: a, Before: b, Batch: n})
			return r.Deleted, r.Last, err
		}},
		{"flows", r.Flows, true, func(ctx context.Context, a, b time.Time, n int32) (int64, time.Time, error) {
			r, err := q.DeleteExpiredFlows(ctx, db.DeleteExpiredFlowsParams{After: a, Before: b, Batch: n})
			return r.Deleted, r.Last, err
		}},
		// After flows: it removes the rollup of the hours flows no longer has.
		{"flows_hourly", r.Flows, false, func(ctx context.Context, a, b time.Time, n int32) (int64, time.Time, error) {
			r, err := q.DeleteExpiredFlowsHourly(ctx, db.DeleteExpiredFlowsHourlyParams{After: a, Before: b, Batch: n})
			return r.Deleted, r.Last, err
		}},
	}
	rollupsBefore := rollupsCut(r, now)
	rollups := []expiry{
		{"measurements_hourly", r.RollupsKept(), false, func(ctx context.Context, a, _ time.Time, n int32) (int64, time.Time, error) {
			r, err := q.DeleteExpiredHourlyRollup(ctx, db.DeleteExpiredHourlyRollupParams{After: a, Before: rollupsBefore, Batch: n})
			return r.Deleted, r.Last, err
		}},
		{"measurements_daily", r.RollupsKept(), false, func(ctx context.Context, a, _ time.Time, n int32) (int64, time.Time, error) {
			r, err := q.DeleteExpiredDailyRollup(ctx, db.DeleteExpiredDailyRollupParams{After: a, Before: rollupsBefore, Batch: n})
			return r.Deleted, r.Last, err
		}},
		{"measurements_method_hourly", r.RollupsKept(), false, func(ctx context.Context, a, _ time.Time, n int32) (int64, time.Time, error) {
			r, err := q.DeleteExpiredMethodRollup(ctx, db.DeleteExpiredMethodRollupParams{After: a, Before: rollupsBefore, Batch: n})
			return r.Deleted, r.Last, err
		}},
		{"measurements_5min", r.RollupsKept(), false, func(ctx context.Context, a, _ time.Time, n int32) (int64, time.Time, error) {
			r, err := q.DeleteExpired5minRollup(ctx, db.DeleteExpired5minRollupParams{After: a, Before: rollupsBefore, Batch: n})
			return r.Deleted, r.Last, err
		}},
		{"collection_http_minute", r.RollupsKept(), false, func(ctx context.Context, a, _ time.Time, n int32) (int64, time.Time, error) {
			r, err := q.DeleteExpiredCollectionHTTPMinutes(ctx, db.DeleteExpiredCollectionHTTPMinutesParams{After: a, Before: rollupsBefore, Batch: n})
			return r.Deleted, r.Last, err
		}},
		// The runtime samples' hourly cells (migration 00054) go with the
		// samples: every cell whose hour is wholly before their cutoff.
		{"runtime_samples_hourly", r.RuntimeSamples, false, func(ctx context.Context, a, b time.Time, n int32) (int64, time.Time, error) {
			r, err := q.DeleteExpiredRuntimeSamplesHourly(ctx, db.DeleteExpiredRuntimeSamplesHourlyParams{After: a, Before: b.Add(-time.Hour), Batch: n})
			return r.Deleted, r.Last, err
		}},
		// The collections' 10-second bins stand in for the rows, so they go
		// with them (MEASUREMENTS_RETENTION): every bin whose 10 s are all
		// before the rows' cutoff. (In this list, not in expiries, since
		// they are a plain table in both modes.)
		{"collection_http_10s", r.Measurements, false, func(ctx context.Context, a, b time.Time, n int32) (int64, time.Time, error) {
			r, err := q.DeleteExpiredCollectionHTTPBins(ctx, db.DeleteExpiredCollectionHTTPBinsParams{After: a, Before: b.Add(-10 * time.Second), Batch: n})
			return r.Deleted, r.Last, err
		}},
		{"measurements_hourly_hist", r.RollupsKept(), false, func(ctx context.Context, a, _ time.Time, n int32) (int64, time.Time, error) {
			r, err := q.DeleteExpiredHourlyHistogram(ctx, db.DeleteExpiredHourlyHistogramParams{After: a, Before: rollupsBefore, Batch: n})
			return r.Deleted, r.Last, err
		}},
		{"measurements_daily_hist", r.RollupsKept(), false, func(ctx context.Context, a, _ time.Time, n int32) (int64, time.Time, error) {
			r, err := q.DeleteExpiredDailyHistogram(ctx, db.DeleteExpiredDailyHistogramParams{After: a, Before: rollupsBefore, Batch: n})
			return r.Deleted, r.Last, err
		}},
	}
	for _, e := range append(expiries, rollups...) {
		if e.keep <= 0 {
			continue
		}
		if err := l.enter(ctx, e.table, renew); err != nil {
			return res, errors.Join(append(errs, err)...)
		}
		w := work(e.table)
		before := now.Add(-e.keep)
		if e.table == "measurements" {
			// Raised before the first row goes, so that a pass stopped
			// halfway leaves it where rows may be missing: the rollups
			// still count them (migration 00021).
			if err := q.RaiseRetentionWatermark(ctx, db.RaiseRetentionWatermarkParams{TableName: e.table, Before: before}); err != nil {
				errs = append(errs, wrap("maintenance "+e.table, err))
				continue
			}
		}
		if e.hypertable && hyper[e.table] {
			w.Chunks, w.Deferred, err = l.dropChunks(ctx, e.table, before, renew)
		} else {
			w.Rows, err = l.batches(ctx, e.del, before, renew)
		}
		if errors.Is(err, errLeaseLost) {
			return res, errors.Join(append(errs, err)...)
		}
		if err != nil {
			errs = append(errs, wrap("maintenance "+e.table, err))
		}
	}
	// The grouped measurements' sealed units (measurements_sealed.go): those
	// past the rollups' retention go with them (their 5-minute bins with the
	// raw rows), the closed ones not sealed yet are built.
	if err := l.enter(ctx, "measurements_sealed", renew); err != nil {
		return res, errors.Join(append(errs, err)...)
	}
	if !rollupsBefore.IsZero() {
		if err := q.DeleteMeasurementSealed(ctx, db.DeleteMeasurementSealedParams{Since: time.Time{}, Until: rollupsBefore}); err != nil {
			errs = append(errs, wrap("maintenance measurements_sealed", err))
		}
	}
	if r.Measurements > 0 {
		n, err := q.DeleteExpiredSealedBins(ctx, now.Add(-r.Measurements))
		if n > 0 {
			work("measurements_sealed_cells").Rows += n
		}
		if err != nil {
			errs = append(errs, wrap("maintenance measurements_sealed_cells", err))
		}
	}
	sealed, err := (&Measurements{pool: l.pool}).Seal(ctx, now, rollupsBefore, renew)
	if n := sealed.Units(); n > 0 {
		work("measurements_sealed").Sealed += n
	}
	if errors.Is(err, errLeaseLost) {
		return res, errors.Join(append(errs, err)...)
	}
	if err != nil {
		errs = append(errs, wrap("maintenance measurements_sealed", err))
	}
	if r.Events > 0 {
		if err := l.enter(ctx, "events", renew); err != nil {
			return res, errors.Join(append(errs, err)...)
		}
		before := now.Add(-r.Events)
		for {
			n, err := q.DeleteExpiredRuns(ctx, db.DeleteExpiredRunsParams{Before: before, Batch: l.batch})
			// (work's pointers last until the next new table: look up again.)
			work("event_runs").Rows += n.Runs
			work("events").Rows += n.Events
			if err == nil && n.Runs == int64(l.batch) {
				err = renew(ctx)
				if err == nil {
					continue
				}
			}
			if errors.Is(err, errLeaseLost) {
				return res, errors.Join(append(errs, err)...)
			}
			if err != nil {
				errs = append(errs, wrap("maintenance events", err))
			}
			break
		}
	}
	// Expired answers of keyed writes (IDEMPOTENCY_TTL, by the database's
	// clock like their lookup). Each keyed request deletes up to 10 of
	// them; without this sweep the ones left stayed for good once keyed
	// writes stopped (found by the operations audit). Whatever the
	// retention settings: an expired row answers nothing.
	// In batches like the tables above (l.batches: the lease renewed and a
	// rest between two batches); the statement takes the oldest expired
	// rows itself, so it needs no keyset.
	if err := l.enter(ctx, "idempotency_keys", renew); err != nil {
		return res, errors.Join(append(errs, err)...)
	}
	keys, err := l.batches(ctx, func(ctx context.Context, after, _ time.Time, n int32) (int64, time.Time, error) {
		deleted, err := q.DeleteExpiredIdempotencyKeys(ctx, n)
		return deleted, after, err
	}, time.Time{}, renew)
	if keys > 0 {
		work("idempotency_keys").Rows += keys
	}
	if errors.Is(err, errLeaseLost) {
		return res, errors.Join(append(errs, err)...)
	}
	if err != nil {
		errs = append(errs, wrap("maintenance idempotency_keys", err))
	}
	if ts && r.CompressAfter > 0 {
		for _, e := range expiries {
			if !e.hypertable || !hyper[e.table] {
				continue
			}
			if err := l.enter(ctx, e.table, renew); err != nil {
				return res, errors.Join(append(errs, err)...)
			}
			// Not the chunks due to be dropped: those the drop above
			// left (in use past chunkLockTimeout) would be tried again,
			// waited for and counted as deferred a second time, or
			// compressed only to be dropped by the next pass.
			var dropBefore *time.Time
			if e.keep > 0 {
				b := now.Add(-e.keep)
				dropBefore = &b
			}
			n, deferred, err := l.compress(ctx, e.table, dropBefore, now.Add(-r.CompressAfter), renew)
			if n > 0 {
				work(e.table).Compressed += n
			}
			if deferred > 0 {
				work(e.table).Deferred += deferred
			}
			if errors.Is(err, errLeaseLost) {
				return res, errors.Join(append(errs, err)...)
			}
			if err != nil {
				errs = append(errs, wrap("compress "+e.table, err))
			}
		}
	}
	return res, errors.Join(errs...)
}

// Clock is the database server's current time.
func (l *Lifecycle) Clock(ctx context.Context) (time.Time, error) {
	var now time.Time
	err := l.pool.QueryRow(ctx, `SELECT now()`).Scan(&now)
	return now, wrap("database clock", err)
}

// enter is called before each table's work: it stops a cancelled pass and
// keeps the lease.
func (l *Lifecycle) enter(ctx context.Context, table string, renew func(context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.beforeTable != nil {
		l.beforeTable(table)
	}
	return renew(ctx)
}

// batches deletes expired rows batch by batch (each DELETE its own
// transaction), oldest first, each batch starting at the time the previous
// one stopped, until a batch comes back short.
func (l *Lifecycle) batches(ctx context.Context, del batchDelete, before time.Time, renew func(context.Context) error) (int64, error) {
	var total int64
	after := time.Time{} // year 1: before any time the API stores
	for {
		t0 := time.Now()
		n, last, err := del(ctx, after, before, l.batch)
		total += n
		if err != nil || n < int64(l.batch) {
			return total, err
		}
		after = last
		if err := renew(ctx); err != nil {
			return total, err
		}
		// Rest as long as the batch took (at most a second): the pass uses
		// at most about half of a connection's time, leaving the server to
		// the writes (docs/lifecycle.md, the benchmark).
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(min(time.Since(t0), time.Second)):
		}
	}
}

// The TimescaleDB calls. The table is a parameter cast to regclass, not
// text spliced into the statement.
const (
	// The chunks wholly older than $2, those drop_chunks(table,
	// older_than => $2) drops, oldest first, with their time ranges.
	expiredChunksSQL = `
SELECT format('%I.%I', c.chunk_schema, c.chunk_name), c.range_start, c.range_end
FROM timescaledb_information.chunks c
WHERE c.hypertable_schema = current_schema() AND c.hypertable_name = $1 AND c.range_end <= $2::timestamptz
ORDER BY c.range_start`
	// One of those chunks: drop_chunks drops the chunks whose range lies
	// within [newer_than, older_than], and a hypertable's chunks do not
	// overlap in time (one dimension, time), so given a chunk's own range
	// it drops that chunk alone.
	dropChunkSQL = `SELECT count(*) FROM drop_chunks($1::text::regclass, older_than => $2::timestamptz, newer_than => $3::timestamptz)`
	// Chunks wholly older than the cutoff that are not compressed yet, or
	// only partly: a late write into a compressed chunk (a flows upsert
	// into an old hour, a late device report) leaves the rows it touched
	// uncompressed, and the chunk's catalog status gets the partial bit
	// (8) while is_compressed stays true. Such chunks used to be skipped
	// for good (found by an audit); compress_chunk compresses their
	// uncompressed rows again. $3, when not null, is the retention's
	// cutoff: the chunks drop_chunks drops (range_end <= $3) are left out.
	uncompressedChunksSQL = `
SELECT format('%I.%I', c.chunk_schema, c.chunk_name)
FROM timescaledb_information.chunks c
JOIN _timescaledb_catalog.chunk k ON k.schema_name = c.chunk_schema AND k.table_name = c.chunk_name
WHERE c.hypertable_schema = current_schema() AND c.hypertable_name = $1
  AND (NOT c.is_compressed OR k.status & 8 <> 0) AND c.range_end <= $2::timestamptz
  AND ($3::timestamptz IS NULL OR c.range_end > $3::timestamptz)
ORDER BY c.range_start`
	compressChunkSQL = `SELECT compress_chunk($1::text::regclass, if_not_compressed => true)`
)

// chunkLockTimeout bounds how long dropping or compressing a chunk waits
// for its lock. Both take a lock that conflicts with every read of the
// chunk, and PostgreSQL queues the reads that come after a waiting lock
// behind it: without a bound, a pass waiting for another session's long
// query or open transaction on an old chunk (an analyst, an export) held
// every API read planned over that chunk for as long as that session
// lasted, and they answered 503 at DB_TIMEOUT (found by an operations
// audit). Past it the chunk is left for the next pass.
const chunkLockTimeout = 2 * time.Second

// withChunkLock runs fn in a transaction whose lock waits end after
// chunkLockTimeout (SQLSTATE 55P03, lockTimedOut). SET LOCAL, not a
// session setting: through a transaction pooler the next transaction may
// run on another server connection.
func (l *Lifecycle) withChunkLock(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`,
			fmt.Sprintf("%dms", chunkLockTimeout.Milliseconds())); err != nil {
			return err
		}
		return fn(tx)
	})
}

// dropChunks drops the chunks of table whose whole range is older than
// before, one statement (and transaction) per chunk: rows in the chunk
// holding the cutoff wait for the next pass after the chunk's end passes
// it. A chunk in use past chunkLockTimeout (or whose drop met a deadlock)
// is left for the next pass and counted as deferred, and the other chunks
// are dropped. It used to be one drop_chunks for the whole table, so one
// chunk held by a long reader left all of the table's expired chunks for
// the next pass (found by an audit).
func (l *Lifecycle) dropChunks(ctx context.Context, table string, before time.Time, renew func(context.Context) error) (dropped, deferred int64, err error) {
	type chunk struct {
		name       string
		start, end time.Time
	}
	rows, err := l.pool.Query(ctx, expiredChunksSQL, table, before)
	if err != nil {
		return 0, 0, err
	}
	chunks, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (chunk, error) {
		var c chunk
		err := row.Scan(&c.name, &c.start, &c.end)
		return c, err
	})
	if err != nil {
		return 0, 0, err
	}
	for _, c := range chunks {
		var n int64
		err := l.withChunkLock(ctx, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, dropChunkSQL, table, c.end, c.start).Scan(&n)
		})
		switch {
		case retryable(err), lockTimedOut(err):
			deferred++
		case err != nil:
			return dropped, deferred, fmt.Errorf("chunk %s: %w", c.name, err)
		default:
			// 0 when the chunk went meanwhile.
			dropped += n
		}
		if err := renew(ctx); err != nil {
			return dropped, deferred, err
		}
	}
	return dropped, deferred, nil
}

// compress compresses table's chunks older than before and not due to be
// dropped (wholly older than dropBefore, when not nil), one statement (and
// transaction) per chunk so that each holds its locks briefly, and returns
// how many it compressed and how many it left for the next pass.
//
// Compressing a chunk again after late writes (a partly compressed chunk)
// is aborted by TimescaleDB with 40001 ("aborting recompression due to
// concurrent DML on uncompressed data") when writes into that chunk are
// under way, after waiting about 5 s for them here. Such a chunk (or one
// whose compression met a deadlock, or whose lock another session held
// past chunkLockTimeout) is left for the next pass, as
// TimescaleDB's own policy does, and the pass goes on with the other
// chunks; trying again at once would mostly wait the 5 s again under a
// steady trickle of late writes. It used to fail the pass and skip the
// table's later chunks, at every pass while late writes went on (found by
// an audit).
func (l *Lifecycle) compress(ctx context.Context, table string, dropBefore *time.Time, before time.Time, renew func(context.Context) error) (compressed, deferred int64, err error) {
	rows, err := l.pool.Query(ctx, uncompressedChunksSQL, table, before, dropBefore)
	if err != nil {
		return 0, 0, err
	}
	chunks, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, 0, err
	}
	for _, c := range chunks {
		err := l.withChunkLock(ctx, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, compressChunkSQL, c)
			return err
		})
		switch {
		case retryable(err), lockTimedOut(err):
			deferred++
		case err != nil:
			return compressed, deferred, fmt.Errorf("chunk %s: %w", c, err)
		default:
			compressed++
		}
		if err := renew(ctx); err != nil {
			return compressed, deferred, err
		}
	}
	return compressed, deferred, nil
}
