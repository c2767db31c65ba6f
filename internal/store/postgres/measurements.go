package postgres

import (
	"github.com/telemetry/telemetry/internal/store"

	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store/db"
)

// Measurements is the store of request measurements (flask-profiler): the
// one write path (rows and their rollups in one transaction) and the window
// queries, which read whole days and hours from the rollups and only the
// partial hours at the window's edges from the rows (see
// queries/measurements.sql). The API and the service's self-profiling both
// write through Insert.
type Measurements struct {
	pool *pgxpool.Pool
	halt *halt
	// reads runs every read query with a custom plan (see customPlans),
	// on the replica when it is fresh (New sets it).
	reads readers
	// cells keeps the sealed cells the grouped view has read
	// (measurements_cells.go); nil with Options.KeptCellsBytes < 0.
	cells *cellCache
}

func newMeasurements(pool *pgxpool.Pool, h *halt, keptCells int64) *Measurements {
	m := &Measurements{pool: pool, halt: h}
	switch {
	case keptCells == 0:
		m.cells = newCellCache(DefaultKeptCellsBytes)
	case keptCells > 0:
		m.cells = newCellCache(keptCells)
	}
	return m
}

// customPlans runs every query as an unnamed statement, planned with its
// actual parameters, whatever DATABASE_EXEC_MODE says. The window queries'
// best plan depends on the values (which index bounds the edge parts,
// whether the optional filters are null); a cached generic plan was
// measured picking a BitmapAnd over a week of start_idx for an edge of an
// hour (24 ms instead of 1 ms). pgx's cache_describe mode does that with
// binary results; its exec mode, used here before, has PostgreSQL write
// every value as text and pgx parse it back, which was 40 % of a grouped
// page's time at 10 M rows (its histograms as hex bytea[]).
type customPlans struct{ db.DBTX }

func (c customPlans) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return c.DBTX.Query(ctx, sql, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
}

func (c customPlans) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return c.DBTX.QueryRow(ctx, sql, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
}

func (c customPlans) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return c.DBTX.Exec(ctx, sql, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
}

// Insert stores the measurements, all or none, and returns their new ids in
// order (their ID fields are ignored). The ids are reserved first (COPY
// cannot return them), then the rows are copied (in started_at order,
// copyRows) and the batch's aggregates added to the four rollups, in one
// transaction. Their upserts go in one pipelined batch (one round trip),
// after the histograms', and the COMMIT with them. A keyed insert (store.Idempotent in
// ctx) also records its answer, which holds the ids, in that transaction,
// right after reserving them: a concurrent repeat waits there, before the
// copy. A keyed empty batch records its answer alone.
func (m *Measurements) Insert(ctx context.Context, recs []store.Measurement) ([]int64, error) {
	idem := store.IdempotentFrom(ctx)
	if len(recs) == 0 && idem == nil {
		return []int64{}, nil
	}
	ids, err := m.insert(ctx, recs, idem)
	if err != nil {
		return nil, wrap("insert measurements", err)
	}
	return ids, nil
}

func (m *Measurements) insert(ctx context.Context, recs []store.Measurement, idem *store.Idempotent) ([]int64, error) {
	// The transaction by hand rather than a pgx.Tx, so that its COMMIT goes
	// in the last round trip with the rollups (below).
	c, err := m.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Release()
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			// Rolled back even when ctx is done, so that the connection
			// goes back to the pool clean (pgxpool closes one left in a
			// transaction).
			_, _ = c.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	q := db.New(c)
	ids := []int64{}
	if len(recs) > 0 {
		if ids, err = q.ReserveMeasurementIDs(ctx, int32(len(recs))); err != nil {
			return nil, fmt.Errorf("reserve ids: %w", err)
		}
	}
	if idem != nil {
		if err := claimKey(ctx, q, idem, ids); err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			last, cancel := m.lastRoundTrip(ctx)
			defer cancel()
			err := committedBy(c.Exec(last, "COMMIT"))
			committed = err == nil
			return ids, err
		}
	}
	if _, err := q.CopyMeasurements(ctx, copyRows(recs, ids)); err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	// The percentiles' histograms first (their cells locked and read in
	// one round trip), then in one more round trip the histograms written
	// back, the rollups and the commit: the locks a batch takes are held
	// for as few round trips as can be, since concurrent batches of the
	// same routes (and, for the per-method cells, of every app) wait on
	// them. Same order in every transaction (histograms hourly then daily,
	// rollups hourly, daily, per method, 5-minute, then the minute cells of
	// the service's own requests; each in key order), so concurrent batches
	// cannot deadlock.
	r := rollupOf(recs)
	b := &batcher{}
	if err := writeHistograms(ctx, c, histOf(recs), &b.batch); err != nil {
		return nil, err
	}
	qb := db.New(b)
	_ = qb.AddMeasurementRollup(ctx, r.hourly)
	_ = qb.AddMeasurementDailyRollup(ctx, r.daily)
	_ = qb.AddMeasurementMethodRollup(ctx, r.methods)
	_ = qb.AddMeasurement5minRollup(ctx, r.bins)
	if len(r.requests.StartedAts) > 0 {
		_ = qb.AddCollectionHTTPCells(ctx, r.requests)
	}
	// Last, so that the shared locks are held for the shortest time: the
	// batch's hours and days unsealed (measurements_sealed.go).
	unseal(ctx, qb, recs)
	// The commit in the same round trip: the rollups' rows are locked from
	// their upsert to the commit, and the next batch of the same routes
	// waits for them; a round trip more (on a busy machine, two wake-ups)
	// would lengthen that wait. A statement that fails makes the server
	// skip the rest, COMMIT included, and the deferred ROLLBACK ends the
	// transaction.
	//
	// That round trip runs on its own deadline, not the request's: once it
	// is sent the server may commit before a cancellation reaches it, so a
	// request cut off there (DB_TIMEOUT, a client gone) would answer a
	// failure for a batch that is stored, and a client retrying without an
	// Idempotency-Key would store it twice. Only a broken connection leaves
	// the outcome unknown now, as with any COMMIT.
	b.batch.Queue("COMMIT")
	last, cancel := m.lastRoundTrip(ctx)
	defer cancel()
	br := c.SendBatch(last, &b.batch)
	var tag pgconn.CommandTag
	for i := 0; i < b.batch.Len() && err == nil; i++ {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err = committedBy(tag, err); err != nil {
		return nil, fmt.Errorf("histograms, rollup and commit: %w", err)
	}
	committed = true
	return ids, nil
}

// measurementCommitTimeout bounds a batch's last round trip (its rollups
// and COMMIT), which the request's own deadline does not cut (insert).
const measurementCommitTimeout = 30 * time.Second

// lastRoundTrip is the context of the round trip that carries a batch's
// COMMIT: ctx's values without its cancellation, on its own deadline (or
// until Store.Abort).
func (m *Measurements) lastRoundTrip(ctx context.Context) (context.Context, context.CancelFunc) {
	return m.halt.detach(ctx, measurementCommitTimeout)
}

// committedBy is the outcome of a COMMIT from its command tag: a COMMIT
// in a failed transaction answers ROLLBACK, without an error.
func committedBy(tag pgconn.CommandTag, err error) error {
	if err == nil && tag.String() != "COMMIT" {
		err = fmt.Errorf("the transaction was rolled back (%s)", tag)
	}
	return err
}

// copyRows returns the batch's rows in started_at order (stable: ties keep
// the order given), each with its record's id: ids are given in the order
// posted. Rows in time order make most index insertions land next to the
// previous one (in measurements_start_idx, in each elapsed bucket's run of
// measurements_elapsed_bucket_idx, in each name's run of
// measurements_name_idx) instead of on a leaf page anywhere in each index.
// Batches already in time order are unchanged; for the benchmark's, spread
// at random over an hour, it was 14 % more records/s at 10,000 records and
// 7 % at 1,000 (docs/performance.md, "Ninth session"). The records'
// indexes are sorted, not the rows: 7.7 ms for 10,000 against 16 ms.
func copyRows(recs []store.Measurement, ids []int64) []db.CopyMeasurementsParams {
	order := make([]int, len(recs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return recs[a].StartedAt.Compare(recs[b].StartedAt) })
	rows := make([]db.CopyMeasurementsParams, len(recs))
	for k, i := range order {
		r := recs[i]
		rows[k] = db.CopyMeasurementsParams{
			ID: ids[i], StartedAt: r.StartedAt, EndedAt: r.EndedAt, Elapsed: r.Elapsed,
			Name: r.Name, Method: r.Method, App: r.App,
			Args: orEmpty(r.Args, "[]"), Kwargs: orEmpty(r.Kwargs, "{}"), Context: orEmpty(r.Context, "{}"),
		}
	}
	return rows
}

func orEmpty(b json.RawMessage, empty string) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage(empty)
	}
	return b
}

// Get returns one measurement; ErrNotFound when there is none.
func (m *Measurements) Get(ctx context.Context, id int64) (store.Measurement, error) {
	var r db.Measurement
	err := m.reads.do(ctx, func(q *db.Queries) (err error) {
		r, err = q.GetMeasurement(ctx, id)
		return err
	})
	if err != nil {
		return store.Measurement{}, wrap("get measurement", err)
	}
	return measurementOf(r), nil
}

func measurementOf(r db.Measurement) store.Measurement {
	return store.Measurement{ID: r.ID, StartedAt: r.StartedAt, EndedAt: r.EndedAt, Elapsed: r.Elapsed, Name: r.Name,
		Method: r.Method, Args: r.Args, Kwargs: r.Kwargs, Context: r.Context, App: r.App}
}

// slowElapsed is the elapsed, in seconds, from which rows are in
// measurements_slow_idx (its predicate, migration 00012; a test checks that
// both agree). An elapsed filter at or above it reads that small index
// alone; the list in elapsed-descending order reads it first.
const slowElapsed = 0.25

// bucketFloor is the elapsed filter of f when it is below slowElapsed (nil
// otherwise): the queries that count or group by an elapsed filter bound
// the rows' histogram bucket by it too, so that the filter can read
// measurements_elapsed_bucket_idx (migration 00024). At or above the
// threshold the slow-row indexes serve the filter better alone.
func bucketFloor(f store.MeasurementFilter) *float64 {
	if f.MinElapsed != nil && *f.MinElapsed < slowElapsed {
		return f.MinElapsed
	}
	return nil
}

// farFuture disables the rollup part of a window (see queries/measurements.sql).
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// bounds are the parts of a window (see queries/measurements.sql): h1 is
// StartedAt rounded up to the hour, h2 EndedAt rounded down, d1 and d2 the
// same to whole UTC days (h1 <= d1, d2 <= h2).
type bounds struct{ h1, h2, d1, d2 time.Time }

// Count is the exact number of measurements f matches.
func (m *Measurements) Count(ctx context.Context, f store.MeasurementFilter) (n int64, err error) {
	err = m.reads.do(ctx, func(q *db.Queries) error {
		n, err = count(ctx, q, f)
		return err
	})
	return n, err
}

func count(ctx context.Context, q *db.Queries, f store.MeasurementFilter) (int64, error) {
	if bucketFloor(f) != nil && f.App == nil {
		return countAboveSealed(ctx, q, f)
	}
	b := split(f)
	expired, err := edgeExpired(ctx, q, b.h1)
	if err != nil {
		return 0, wrap("count measurements", err)
	}
	n, err := q.CountMeasurements(ctx, db.CountMeasurementsParams{
		H1: b.h1, H2: b.h2, H2Next: b.h2.Add(time.Hour), D1: b.d1, D2: b.d2, StartedAt: f.StartedAt, EndedAt: f.EndedAt,
		Name: f.Name, Methods: methodsOf(f), App: f.App, MinElapsed: f.MinElapsed, BucketFloor: bucketFloor(f),
		Expired: expired,
	})
	return n, wrap("count measurements", err)
}

// edgeExpired reports whether rows started at or after h1 may have been
// expired (retention_watermarks): a window's last partial hour is then
// counted from what is left of its rows, not from its cells less the rows
// that ended after the window (queries/measurements.sql, docs/lifecycle.md).
// No question is asked when the rollups are not read (h1 far in the future).
func edgeExpired(ctx context.Context, q *db.Queries, h1 time.Time) (bool, error) {
	if !h1.Before(farFuture) {
		return false, nil
	}
	return q.MeasurementsExpiredSince(ctx, h1)
}

// countAboveSealed is count for an elapsed filter below slowElapsed and no
// app (the sealed units have none): the rows of the filter's own histogram
// bucket and those of the higher buckets in the gaps between the window's
// sealed units are counted from the rows, the higher buckets inside the
// units from their histograms (CountMeasurementsAboveSealedWindow without a
// name or methods, CountMeasurementsAboveSealed with them). At 10 M rows
// the filter elapsed >= 0.1 matches 14 % of a week's rows, its bucket 1.3 %.
func countAboveSealed(ctx context.Context, q *db.Queries, f store.MeasurementFilter) (int64, error) {
	var r db.CountMeasurementsAboveSealedRow
	var err error
	if f.Name == nil && len(f.Methods) == 0 {
		// From the units' totals, in a function that keeps its plan
		// (migration 00050): planning the statement took 1.8-2.4 ms a call
		// at 10 M rows. With a name or methods the statement reads cells.
		var w db.CountMeasurementsAboveSealedWindowRow
		w, err = q.CountMeasurementsAboveSealedWindow(ctx, db.CountMeasurementsAboveSealedWindowParams{
			StartedAt: f.StartedAt, EndedAt: f.EndedAt, MinElapsed: *f.MinElapsed})
		r = db.CountMeasurementsAboveSealedRow(w)
	} else {
		r, err = q.CountMeasurementsAboveSealed(ctx, db.CountMeasurementsAboveSealedParams{
			MinElapsed: *f.MinElapsed, StartedAt: f.StartedAt, EndedAt: f.EndedAt, Name: f.Name, Methods: methodsOf(f),
		})
	}
	if err != nil {
		return 0, wrap("count measurements", err)
	}
	h, err := histogramAbove(r.Hists, int(r.Bucket))
	if err != nil {
		return 0, wrap("count measurements", err)
	}
	n := r.RowsBelow + r.RowsAbove
	for _, c := range h.counts {
		n += c
	}
	return n, nil
}

// listParams are the parameters of every list query (sqlc generates one
// struct per query; all have these fields).
type listParams = db.ListMeasurementsByStartedAtAscParams

type listQuery func(context.Context, *db.Queries, listParams) ([]db.Measurement, error)

// listQueryOf is the list query of an order (queries/measurements.sql has
// one per sort key and direction, each served by its index); nil for an
// unknown sort key.
func listQueryOf(s store.MeasurementSort) listQuery {
	switch s {
	case store.MeasurementSort{Key: "startedAt"}:
		return func(ctx context.Context, q *db.Queries, p listParams) ([]db.Measurement, error) {
			return q.ListMeasurementsByStartedAtAsc(ctx, p)
		}
	case store.MeasurementSort{Key: "startedAt", Desc: true}:
		return func(ctx context.Context, q *db.Queries, p listParams) ([]db.Measurement, error) {
			return q.ListMeasurementsByStartedAtDesc(ctx, db.ListMeasurementsByStartedAtDescParams(p))
		}
	case store.MeasurementSort{Key: "endedAt"}:
		return func(ctx context.Context, q *db.Queries, p listParams) ([]db.Measurement, error) {
			return q.ListMeasurementsByEndedAtAsc(ctx, db.ListMeasurementsByEndedAtAscParams(p))
		}
	case store.MeasurementSort{Key: "endedAt", Desc: true}:
		return func(ctx context.Context, q *db.Queries, p listParams) ([]db.Measurement, error) {
			return q.ListMeasurementsByEndedAtDesc(ctx, db.ListMeasurementsByEndedAtDescParams(p))
		}
	case store.MeasurementSort{Key: "elapsed"}:
		return func(ctx context.Context, q *db.Queries, p listParams) ([]db.Measurement, error) {
			return q.ListMeasurementsByElapsedAsc(ctx, db.ListMeasurementsByElapsedAscParams(p))
		}
	case store.MeasurementSort{Key: "elapsed", Desc: true}:
		return func(ctx context.Context, q *db.Queries, p listParams) ([]db.Measurement, error) {
			return q.ListMeasurementsByElapsedDesc(ctx, db.ListMeasurementsByElapsedDescParams(p))
		}
	case store.MeasurementSort{Key: "name"}:
		return func(ctx context.Context, q *db.Queries, p listParams) ([]db.Measurement, error) {
			return q.ListMeasurementsByNameAsc(ctx, db.ListMeasurementsByNameAscParams(p))
		}
	case store.MeasurementSort{Key: "name", Desc: true}:
		return func(ctx context.Context, q *db.Queries, p listParams) ([]db.Measurement, error) {
			return q.ListMeasurementsByNameDesc(ctx, db.ListMeasurementsByNameDescParams(p))
		}
	case store.MeasurementSort{Key: "method"}:
		return func(ctx context.Context, q *db.Queries, p listParams) ([]db.Measurement, error) {
			return q.ListMeasurementsByMethodAsc(ctx, db.ListMeasurementsByMethodAscParams(p))
		}
	case store.MeasurementSort{Key: "method", Desc: true}:
		return func(ctx context.Context, q *db.Queries, p listParams) ([]db.Measurement, error) {
			return q.ListMeasurementsByMethodDesc(ctx, db.ListMeasurementsByMethodDescParams(p))
		}
	}
	return nil
}

// List answers one page of the measurements f matches in the order s (a
// key of MeasurementSortKeys), ties broken by id, with the exact number of
// measurements f matches. The page is read from the rows through the
// order's index, the total from the rollups (Count), both in one snapshot
// (rows committed between the two reads would make them disagree).
func (m *Measurements) List(ctx context.Context, f store.MeasurementFilter, s store.MeasurementSort, p store.PageRequest) (store.Page[store.Measurement], error) {
	list := listQueryOf(s)
	if list == nil {
		return store.Page[store.Measurement]{}, fmt.Errorf("list measurements: unknown sort key %q", s.Key)
	}
	var out store.Page[store.Measurement]
	err := m.reads.snapshot(ctx, func(q *db.Queries) error {
		params := listParams{StartedAt: f.StartedAt, EndedAt: f.EndedAt, Name: f.Name,
			Methods: methodsOf(f), App: f.App, MinElapsed: f.MinElapsed, RowLimit: p.Limit, RowOffset: p.Offset}
		var rows []db.Measurement
		var err error
		total := int64(-1) // not known yet
		if f.MinElapsed != nil && *f.MinElapsed >= slowElapsed {
			// Few rows, all in measurements_slow_idx: read them and sort
			// them in memory, whatever the order.
			rows, err = q.ListSlowMeasurements(ctx, db.ListSlowMeasurementsParams{StartedAt: f.StartedAt, EndedAt: f.EndedAt,
				Name: f.Name, Methods: methodsOf(f), App: f.App, MinElapsed: *f.MinElapsed, Descending: s.Desc, SortKey: s.Key,
				RowLimit: p.Limit, RowOffset: p.Offset})
		} else if s.Key == "method" && f.Name == nil && f.App == nil && f.MinElapsed == nil {
			rows, total, err = listByMethod(ctx, q, f, s.Desc, p)
		} else if s == (store.MeasurementSort{Key: "elapsed", Desc: true}) {
			// The slowest rows come first in this order
			// (measurements_slow_idx holds them in it): when they fill the
			// page it is the page of the whole order; otherwise the rows
			// are read from the top of measurements_elapsed_bucket_idx.
			slow := params
			slow.MinElapsed = new(slowElapsed)
			if rows, err = list(ctx, q, slow); err == nil && int64(len(rows)) < p.Limit {
				rows, err = listElapsedBucketsDesc(ctx, q, params)
			}
		} else {
			rows, err = list(ctx, q, params)
		}
		if err != nil {
			return wrap("list measurements", err)
		}
		out = store.Page[store.Measurement]{Items: make([]store.Measurement, len(rows))}
		for i, r := range rows {
			out.Items[i] = measurementOf(r)
		}
		if out.Total = total; total < 0 {
			out.Total, err = count(ctx, q, f)
		}
		return err
	})
	if err != nil {
		// Beginning or ending the snapshot fails as a read would.
		return store.Page[store.Measurement]{}, wrap("list measurements", err)
	}
	return out, nil
}

// listElapsedBucketsDesc is the list in elapsed-descending order read from
// the top of measurements_elapsed_bucket_idx, every row (the order's list
// query reads measurements_slow_idx, which holds only the slow ones).
func listElapsedBucketsDesc(ctx context.Context, q *db.Queries, p listParams) ([]db.Measurement, error) {
	return q.ListMeasurementsByElapsedBucketsDesc(ctx, db.ListMeasurementsByElapsedBucketsDescParams(p))
}

// listByMethod is one page of the list in method order (then ended_at,
// then id, all in the same direction) for a filter on the window and
// methods only. No index has the method first (migration 00012 kept the
// raw table's indexes few, for ingest), so the query of that order sorts
// the window's rows: 4.9 s for 2.3 M rows. Instead the methods' counts in
// the window come from the rollups (MeasurementMethodDistribution) and the
// page is read method by method in ended_at order, each part a backward or
// forward walk of measurements_end_idx keeping that method's rows. The
// counts are those of the rows while none of the window has expired
// (retention_watermarks, migration 00021); otherwise the order's query
// answers. total is the filter's number of rows when the counts gave it
// (the sum of the asked methods' counts: the list's total without a read
// of its own, a third of the call at 10 M rows), else -1.
func listByMethod(ctx context.Context, q *db.Queries, f store.MeasurementFilter, desc bool, p store.PageRequest) (rows []db.Measurement, total int64, err error) {
	params := listParams{StartedAt: f.StartedAt, EndedAt: f.EndedAt, Methods: methodsOf(f), RowLimit: p.Limit, RowOffset: p.Offset}
	expired, err := q.MeasurementsExpiredSince(ctx, f.StartedAt)
	if err != nil {
		return nil, -1, err
	}
	if expired {
		rows, err = listQueryOf(store.MeasurementSort{Key: "method", Desc: desc})(ctx, q, params)
		return rows, -1, err
	}
	// Not expired since the window's start, so not since its first whole
	// hour either.
	counts, err := q.MeasurementMethodDistribution(ctx, distributionParams(store.MeasurementFilter{StartedAt: f.StartedAt, EndedAt: f.EndedAt}, false))
	if err != nil {
		return nil, -1, err
	}
	for _, c := range counts {
		if len(f.Methods) == 0 || slices.Contains(f.Methods, c.Method) {
			total += c.Count
		}
	}
	byEndedAt := listQueryOf(store.MeasurementSort{Key: "endedAt", Desc: desc})
	if desc {
		slices.Reverse(counts) // they come in method order
	}
	out := []db.Measurement{}
	offset, limit := p.Offset, p.Limit
	for _, c := range counts {
		if limit <= 0 {
			break
		}
		if len(f.Methods) > 0 && !slices.Contains(f.Methods, c.Method) {
			continue
		}
		if offset >= c.Count {
			offset -= c.Count
			continue
		}
		part := params
		part.Methods, part.RowOffset, part.RowLimit = []string{c.Method}, offset, limit
		rows, err := byEndedAt(ctx, q, part)
		if err != nil {
			return nil, -1, err
		}
		out = append(out, rows...)
		offset, limit = 0, limit-int64(len(rows))
	}
	return out, total, nil
}

// Grouped answers one page of per-(name, method) statistics ordered by s
// (a key of MeasurementGroupSortKeys; ties broken by name, method), with
// the number of groups.
func (m *Measurements) Grouped(ctx context.Context, f store.MeasurementFilter, s store.MeasurementSort, p store.PageRequest) (store.Page[store.MeasurementGroup], error) {
	if !slices.Contains(store.MeasurementGroupSortKeys(), s.Key) {
		return store.Page[store.MeasurementGroup]{}, fmt.Errorf("group measurements: unknown sort key %q", s.Key)
	}
	params := groupPageParams(f, s)
	params.RowLimit, params.RowOffset = p.Limit, p.Offset
	// One statement gives the page, the number of groups and the page's
	// histograms (queries/measurements_percentiles.sql, GroupMeasurementsPage).
	type row struct {
		group store.MeasurementGroup
		total int64
	}
	read := func(ctx context.Context, q *db.Queries, params db.GroupMeasurementsPageParams) ([]row, error) {
		rows, err := m.groupPage(ctx, q, f, params)
		if err != nil {
			return nil, err
		}
		out := make([]row, len(rows))
		for i, r := range rows {
			if out[i].group, err = pageGroup(r); err != nil {
				return nil, err
			}
			out[i].total = r.Total
		}
		return out, nil
	}
	var page store.Page[store.MeasurementGroup]
	err := m.reads.do(ctx, func(q *db.Queries) (err error) {
		page, err = listPage(ctx, "group measurements", p,
			func(ctx context.Context) ([]row, error) { return read(ctx, q, params) },
			func(r row) int64 { return r.total },
			func(ctx context.Context) (int64, error) {
				// The groups are computed whatever the page: the first one
				// carries their number.
				first := params
				first.RowLimit, first.RowOffset = 1, 0
				rows, err := read(ctx, q, first)
				if err != nil || len(rows) == 0 {
					return 0, err
				}
				return rows[0].total, nil
			},
			func(r row) store.MeasurementGroup { return r.group })
		return err
	})
	if err != nil {
		return store.Page[store.MeasurementGroup]{}, err
	}
	return page, nil
}

// MethodDistribution counts the measurements of the window by method; a
// method with none is absent. Only the window of f is used.
func (m *Measurements) MethodDistribution(ctx context.Context, f store.MeasurementFilter) (map[string]int64, error) {
	var rows []db.MeasurementMethodDistributionRow
	err := m.reads.do(ctx, func(q *db.Queries) (err error) {
		expired, err := edgeExpired(ctx, q, split(f).h1)
		if err != nil {
			return err
		}
		rows, err = q.MeasurementMethodDistribution(ctx, distributionParams(f, expired))
		return err
	})
	if err != nil {
		return nil, wrap("measurements by method", err)
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.Method] = r.Count
	}
	return out, nil
}

// distributionParams is MeasurementMethodDistribution's parameters for the
// window of f (expired: edgeExpired of its first whole hour).
func distributionParams(f store.MeasurementFilter, expired bool) db.MeasurementMethodDistributionParams {
	b := split(f)
	return db.MeasurementMethodDistributionParams{
		H1: b.h1, H2: b.h2, H2Next: b.h2.Add(time.Hour), StartedAt: f.StartedAt, EndedAt: f.EndedAt, Expired: expired,
	}
}

// Timeseries counts the measurements of the window per bucket of started_at
// width wide (buckets aligned on the Unix epoch: a day is the UTC day),
// every bucket of the window present, in order. Only the window of f is
// used. Widths of whole hours read the window's whole hours from the
// per-method rollup, widths of whole 5 minutes its whole 5-minute bins from
// measurements_5min; other widths (1 to 4 minutes, ...) count the rows, so
// they see only rows that have not expired.
func (m *Measurements) Timeseries(ctx context.Context, f store.MeasurementFilter, width time.Duration) ([]store.MeasurementBucket, error) {
	if width < time.Minute || width%time.Minute != 0 || (24*time.Hour)%width != 0 {
		return nil, fmt.Errorf("measurement timeseries: width %s does not divide a day in whole minutes: %w", width, store.ErrInvalid)
	}
	b := split(f)
	p := db.MeasurementTimeseriesParams{WidthSeconds: int32(width / time.Second), H1: b.h1, H2: b.h2, H2Next: b.h2.Add(time.Hour),
		StartedAt: f.StartedAt, EndedAt: f.EndedAt}
	switch {
	case width%time.Hour == 0:
	case width%binWidth == 0:
		// The window's whole 5-minute bins from measurements_5min, the
		// edges on that grid from the rows.
		p.Bins = true
		p.H1, p.H2 = binOf(f.StartedAt), binOf(f.EndedAt)
		if p.H1.Before(f.StartedAt) {
			p.H1 = p.H1.Add(binWidth)
		}
		p.H2Next = p.H2.Add(binWidth)
	default:
		p.H1 = farFuture
	}
	var rows []db.MeasurementTimeseriesRow
	err := m.reads.do(ctx, func(q *db.Queries) (err error) {
		if p.Expired, err = edgeExpired(ctx, q, p.H1); err != nil {
			return err
		}
		rows, err = q.MeasurementTimeseries(ctx, p)
		return err
	})
	if err != nil {
		return nil, wrap("measurement timeseries", err)
	}
	// Every bucket of the window, from the one holding its start to the one
	// holding its end (widths divide a day, so truncating from Go's zero
	// time is aligning on the Unix epoch, as date_bin does), then the counts
	// laid on them; the query gives the buckets that hold measurements.
	first, last := f.StartedAt.UTC().Truncate(width), f.EndedAt.UTC().Truncate(width)
	if last.Before(first) {
		return []store.MeasurementBucket{}, nil
	}
	out := make([]store.MeasurementBucket, last.Sub(first)/width+1)
	for i := range out {
		out[i].Start = first.Add(time.Duration(i) * width)
	}
	for _, r := range rows {
		d := r.Bucket.Sub(first)
		if i := d / width; d >= 0 && d%width == 0 && int(i) < len(out) {
			out[i].Count = r.Count
		}
	}
	return out, nil
}

// split returns the rollup bounds of the window. With a filter the rollups
// cannot answer, h1 and d1 are far in the future so the rows answer alone.
func split(f store.MeasurementFilter) bounds {
	var b bounds
	b.h1, b.h2 = hourOf(f.StartedAt), hourOf(f.EndedAt)
	if b.h1.Before(f.StartedAt) {
		b.h1 = b.h1.Add(time.Hour)
	}
	b.d1, b.d2 = dayOf(f.StartedAt), dayOf(f.EndedAt)
	if b.d1.Before(f.StartedAt) {
		b.d1 = b.d1.Add(24 * time.Hour)
	}
	if f.MinElapsed != nil {
		b.h1, b.d1 = farFuture, farFuture
	}
	return b
}

// methods is never nil: the queries take an empty array for "every method"
// (a NULL array would match nothing).
func methodsOf(f store.MeasurementFilter) []string {
	if f.Methods == nil {
		return []string{}
	}
	return f.Methods
}
