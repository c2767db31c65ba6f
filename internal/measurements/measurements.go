// Package measurements is the store of request measurements: the one write
// path (rows and their hourly rollup in one transaction) and the window
// queries, which read whole hours from the rollup and only the partial
// hours at the window's edges from the rows. The HTTP API and the service's
// self-profiling both write through Insert.
package measurements

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/telemetry/telemetry/internal/store/db"
)

// Record is one measurement. Args, Kwargs and Context are JSON texts (an
// array, an object, an object); nil stands for the empty one.
type Record struct {
	ID        int64
	StartedAt time.Time
	EndedAt   time.Time
	Elapsed   float64
	Name      string
	Method    string
	Args      []byte
	Kwargs    []byte
	Context   []byte
	App       string
}

// DB is what the store needs of a pool or a connection.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error)
	Begin(ctx context.Context) (pgx.Tx, error)
}

// customPlans runs every query as an unnamed statement, planned with its
// actual parameters. The window queries' best plan depends on the values
// (which index bounds the edge parts, whether the optional filters are
// null); a cached generic plan was measured picking a BitmapAnd over a
// week of start_idx for an edge of an hour (24 ms instead of 1 ms).
type customPlans struct{ DB }

func (c customPlans) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return c.DB.Query(ctx, sql, append([]any{pgx.QueryExecModeExec}, args...)...)
}

func (c customPlans) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return c.DB.QueryRow(ctx, sql, append([]any{pgx.QueryExecModeExec}, args...)...)
}

func (c customPlans) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return c.DB.Exec(ctx, sql, append([]any{pgx.QueryExecModeExec}, args...)...)
}

// Insert stores the records, all or none, and returns their new ids in
// order. The ids are reserved first (COPY cannot return them), then the rows
// are copied and the batch's aggregates added to the three rollups, in one
// transaction. The three upserts go in one pipelined batch (one round trip).
func Insert(ctx context.Context, pool DB, recs []Record) ([]int64, error) {
	if len(recs) == 0 {
		return []int64{}, nil
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("insert measurements: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	q := db.New(tx)
	ids, err := q.ReserveMeasurementIDs(ctx, int32(len(recs)))
	if err != nil {
		return nil, fmt.Errorf("reserve measurement ids: %w", err)
	}
	rows := make([]db.CopyMeasurementsParams, len(recs))
	for i, r := range recs {
		rows[i] = db.CopyMeasurementsParams{
			ID: ids[i], StartedAt: r.StartedAt, EndedAt: r.EndedAt, Elapsed: r.Elapsed,
			Name: r.Name, Method: r.Method, App: r.App,
			Args: orEmpty(r.Args, "[]"), Kwargs: orEmpty(r.Kwargs, "{}"), Context: orEmpty(r.Context, "{}"),
		}
	}
	if _, err := q.CopyMeasurements(ctx, rows); err != nil {
		return nil, fmt.Errorf("copy measurements: %w", err)
	}
	r := rollupOf(recs)
	b := &batcher{}
	qb := db.New(b)
	// Same order in every transaction (hourly, daily, per method; each in
	// key order), so concurrent batches cannot deadlock.
	_ = qb.AddMeasurementRollup(ctx, r.hourly)
	_ = qb.AddMeasurementDailyRollup(ctx, r.daily)
	_ = qb.AddMeasurementMethodRollup(ctx, r.methods)
	if err := tx.SendBatch(ctx, &b.batch).Close(); err != nil {
		return nil, fmt.Errorf("measurements rollup: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit measurements: %w", err)
	}
	return ids, nil
}

// batcher is a db.DBTX that queues the :exec queries it is given into a
// pgx.Batch instead of running them, so that sqlc's queries can be
// pipelined. Only Exec is meant to be used.
type batcher struct{ batch pgx.Batch }

func (b *batcher) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	b.batch.Queue(sql, args...)
	return pgconn.CommandTag{}, nil
}

func (b *batcher) Query(context.Context, string, ...any) (pgx.Rows, error) {
	return nil, errors.New("batcher: only Exec is queued")
}

func (b *batcher) QueryRow(context.Context, string, ...any) pgx.Row { return errRow{} }

func (b *batcher) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, errors.New("batcher: only Exec is queued")
}

type errRow struct{}

func (errRow) Scan(...any) error { return errors.New("batcher: only Exec is queued") }

func orEmpty(b []byte, empty string) []byte {
	if len(b) == 0 {
		return []byte(empty)
	}
	return b
}

type cellKey struct {
	start, end        int64 // Unix hours or days
	app, name, method string
}

func (a cellKey) less(b cellKey) bool {
	if a.start != b.start {
		return a.start < b.start
	}
	if a.end != b.end {
		return a.end < b.end
	}
	if a.app != b.app {
		return a.app < b.app
	}
	if a.name != b.name {
		return a.name < b.name
	}
	return a.method < b.method
}

type cell struct {
	count         int64
	sum, min, max float64
}

func (c *cell) add(o cell) {
	c.count += o.count
	c.sum += o.sum
	c.min = min(c.min, o.min)
	c.max = max(c.max, o.max)
}

// HourOf is the start of t's UTC hour.
func HourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// DayOf is the start of t's UTC day.
func DayOf(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

type rollups struct {
	hourly  db.AddMeasurementRollupParams
	daily   db.AddMeasurementDailyRollupParams
	methods db.AddMeasurementMethodRollupParams
}

// sortedCells aggregates cells into a map and returns its keys in order.
func sortedKeys(cells map[cellKey]*cell) []cellKey {
	keys := make([]cellKey, 0, len(cells))
	for k := range cells {
		keys = append(keys, k)
	}
	// The SQL orders the cells again; sorting here keeps the arrays (and so
	// any error message) deterministic.
	sort.Slice(keys, func(i, j int) bool { return keys[i].less(keys[j]) })
	return keys
}

func addCell(cells map[cellKey]*cell, k cellKey, c cell) {
	if have := cells[k]; have != nil {
		have.add(c)
		return
	}
	cells[k] = &c
}

// rollupOf aggregates a batch into the cells of the three rollups: the
// hourly cells from the records, the daily and per-method ones from the
// hourly cells (a few hundred per batch).
func rollupOf(recs []Record) rollups {
	hourly := make(map[cellKey]*cell)
	for i := range recs {
		r := &recs[i]
		k := cellKey{HourOf(r.StartedAt).Unix(), HourOf(r.EndedAt).Unix(), r.App, r.Name, r.Method}
		addCell(hourly, k, cell{count: 1, sum: r.Elapsed, min: r.Elapsed, max: r.Elapsed})
	}
	daily := make(map[cellKey]*cell)
	methods := make(map[cellKey]*cell)
	for k, c := range hourly {
		const day = 86400
		addCell(daily, cellKey{k.start - k.start%day, k.end - k.end%day, k.app, k.name, k.method}, *c)
		addCell(methods, cellKey{start: k.start, end: k.end, method: k.method}, *c)
	}
	var out rollups
	keys := sortedKeys(hourly)
	n := len(keys)
	h := db.AddMeasurementRollupParams{
		StartHours: make([]time.Time, n), EndHours: make([]time.Time, n),
		Apps: make([]string, n), Names: make([]string, n), Methods: make([]string, n),
		Counts: make([]int64, n), Sums: make([]float64, n), Mins: make([]float64, n), Maxes: make([]float64, n),
	}
	for i, k := range keys {
		c := hourly[k]
		h.StartHours[i], h.EndHours[i] = time.Unix(k.start, 0).UTC(), time.Unix(k.end, 0).UTC()
		h.Apps[i], h.Names[i], h.Methods[i] = k.app, k.name, k.method
		h.Counts[i], h.Sums[i], h.Mins[i], h.Maxes[i] = c.count, c.sum, c.min, c.max
	}
	out.hourly = h
	keys = sortedKeys(daily)
	n = len(keys)
	d := db.AddMeasurementDailyRollupParams{
		StartDays: make([]time.Time, n), EndDays: make([]time.Time, n),
		Apps: make([]string, n), Names: make([]string, n), Methods: make([]string, n),
		Counts: make([]int64, n), Sums: make([]float64, n), Mins: make([]float64, n), Maxes: make([]float64, n),
	}
	for i, k := range keys {
		c := daily[k]
		d.StartDays[i], d.EndDays[i] = time.Unix(k.start, 0).UTC(), time.Unix(k.end, 0).UTC()
		d.Apps[i], d.Names[i], d.Methods[i] = k.app, k.name, k.method
		d.Counts[i], d.Sums[i], d.Mins[i], d.Maxes[i] = c.count, c.sum, c.min, c.max
	}
	out.daily = d
	keys = sortedKeys(methods)
	n = len(keys)
	m := db.AddMeasurementMethodRollupParams{
		StartHours: make([]time.Time, n), EndHours: make([]time.Time, n), Methods: make([]string, n), Counts: make([]int64, n),
	}
	for i, k := range keys {
		m.StartHours[i], m.EndHours[i] = time.Unix(k.start, 0).UTC(), time.Unix(k.end, 0).UTC()
		m.Methods[i], m.Counts[i] = k.method, methods[k].count
	}
	out.methods = m
	return out
}

// RebuildRollup recomputes the rollup cells of every row started in
// [since, until) (widened to whole UTC days) from the rows themselves: for
// rows loaded straight into the table, bypassing Insert.
func RebuildRollup(ctx context.Context, pool DB, since, until time.Time) error {
	since = DayOf(since)
	if d := DayOf(until); !d.Equal(until) {
		until = d.Add(24 * time.Hour)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	q := db.New(tx)
	if err := q.DeleteMeasurementRollup(ctx, db.DeleteMeasurementRollupParams{Since: since, Until: until}); err != nil {
		return fmt.Errorf("rebuild rollup: %w", err)
	}
	if err := q.FillMeasurementRollup(ctx, db.FillMeasurementRollupParams{Since: since, Until: until}); err != nil {
		return fmt.Errorf("rebuild rollup: %w", err)
	}
	if err := q.FillMeasurementCoarseRollups(ctx, db.FillMeasurementCoarseRollupsParams{Since: since, Until: until}); err != nil {
		return fmt.Errorf("rebuild rollup: %w", err)
	}
	return tx.Commit(ctx)
}

// Filter selects measurements: started_at >= StartedAt and ended_at <=
// EndedAt, and each optional filter given.
type Filter struct {
	StartedAt, EndedAt time.Time
	Name, App          *string
	Methods            []string // any of them; empty means every method
	MinElapsed         *float64 // elapsed >= MinElapsed
}

// farFuture disables the rollup part of a window (see queries/measurements.sql).
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// bounds are the parts of a window (see queries/measurements.sql): h1 is
// StartedAt rounded up to the hour, h2 EndedAt rounded down, d1 and d2 the
// same to whole UTC days (h1 <= d1, d2 <= h2).
type bounds struct{ h1, h2, d1, d2 time.Time }

// split returns the rollup bounds of the window. With a filter the rollups
// cannot answer, h1 and d1 are far in the future so the rows answer alone.
func (f Filter) split() bounds {
	var b bounds
	b.h1, b.h2 = HourOf(f.StartedAt), HourOf(f.EndedAt)
	if b.h1.Before(f.StartedAt) {
		b.h1 = b.h1.Add(time.Hour)
	}
	b.d1, b.d2 = DayOf(f.StartedAt), DayOf(f.EndedAt)
	if b.d1.Before(f.StartedAt) {
		b.d1 = b.d1.Add(24 * time.Hour)
	}
	if f.MinElapsed != nil {
		b.h1, b.d1 = farFuture, farFuture
	}
	return b
}

func (f Filter) methods() []string {
	if f.Methods == nil {
		return []string{}
	}
	return f.Methods
}

// Count is the exact number of measurements f matches.
func Count(ctx context.Context, pool DB, f Filter) (int64, error) {
	b := f.split()
	return db.New(customPlans{pool}).CountMeasurements(ctx, db.CountMeasurementsParams{
		H1: b.h1, H2: b.h2, H2Next: b.h2.Add(time.Hour), D1: b.d1, D2: b.d2, StartedAt: f.StartedAt, EndedAt: f.EndedAt,
		Name: f.Name, Methods: f.methods(), App: f.App, MinElapsed: f.MinElapsed,
	})
}

// Group is the statistics of one (name, method).
type Group = db.GroupMeasurementsRow

// Grouped answers one page of per-(name, method) statistics ordered by
// sortKey (count, avgElapsed, minElapsed, maxElapsed or name), and the
// number of groups.
func Grouped(ctx context.Context, pool DB, f Filter, sortKey string, desc bool, limit, offset int64) ([]Group, int64, error) {
	b := f.split()
	p := db.GroupMeasurementsParams{
		Descending: desc, SortKey: sortKey, RowLimit: limit, RowOffset: offset,
		H1: b.h1, H2: b.h2, H2Next: b.h2.Add(time.Hour), D1: b.d1, D2: b.d2, StartedAt: f.StartedAt, EndedAt: f.EndedAt,
		Name: f.Name, Methods: f.methods(), App: f.App, MinElapsed: f.MinElapsed,
	}
	q := db.New(customPlans{pool})
	rows, err := q.GroupMeasurements(ctx, p)
	if err != nil {
		return nil, 0, err
	}
	if len(rows) > 0 || offset == 0 {
		var total int64
		if len(rows) > 0 {
			total = rows[0].Total
		}
		return rows, total, nil
	}
	// Past the last page the window function has no row to ride on: ask
	// for the first row only to learn the total.
	p.RowLimit, p.RowOffset = 1, 0
	first, err := q.GroupMeasurements(ctx, p)
	if err != nil || len(first) == 0 {
		return rows, 0, err
	}
	return rows, first[0].Total, nil
}

// MethodDistribution counts the measurements of the window by method.
func MethodDistribution(ctx context.Context, pool DB, f Filter) (map[string]int64, error) {
	b := f.split()
	rows, err := db.New(customPlans{pool}).MeasurementMethodDistribution(ctx, db.MeasurementMethodDistributionParams{
		H1: b.h1, H2: b.h2, H2Next: b.h2.Add(time.Hour), StartedAt: f.StartedAt, EndedAt: f.EndedAt,
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(rows))
	for _, r := range rows {
		out[r.Method] = r.Count
	}
	return out, nil
}

// Bucket is one timeseries bucket: its UTC start and how many measurements
// started in it.
type Bucket = db.MeasurementTimeseriesRow

// Timeseries counts the measurements of the window per UTC hour (daily
// false) or day, every bucket of the window present.
func Timeseries(ctx context.Context, pool DB, f Filter, daily bool) ([]Bucket, error) {
	b := f.split()
	p := db.MeasurementTimeseriesParams{Unit: "hour", StepHours: 1, H1: b.h1, H2: b.h2, H2Next: b.h2.Add(time.Hour),
		StartedAt: f.StartedAt, EndedAt: f.EndedAt}
	if daily {
		p.Unit, p.StepHours = "day", 24
	}
	return db.New(customPlans{pool}).MeasurementTimeseries(ctx, p)
}

// Get returns one measurement; pgx.ErrNoRows when there is none.
func Get(ctx context.Context, pool DB, id int64) (Record, error) {
	m, err := db.New(customPlans{pool}).GetMeasurement(ctx, id)
	if err != nil {
		return Record{}, err
	}
	return Record{ID: m.ID, StartedAt: m.StartedAt, EndedAt: m.EndedAt, Elapsed: m.Elapsed, Name: m.Name,
		Method: m.Method, Args: m.Args, Kwargs: m.Kwargs, Context: m.Context, App: m.App}, nil
}

// SortKeys are the orders List accepts, by API name.
var SortKeys = []string{"startedAt", "endedAt", "elapsed", "name", "method"}

// listOrder is the ORDER BY of each sort key; ties are broken by id (and
// for name and method by ended_at first, matching measurements_name_idx).
// These constants are the only text spliced into the list query: sqlc cannot
// vary ORDER BY without CASE expressions, which no index can serve.
var listOrder = map[string]string{
	"startedAt": "started_at %[1]s, id %[1]s",
	"endedAt":   "ended_at %[1]s, id %[1]s",
	"elapsed":   "elapsed %[1]s, id %[1]s",
	"name":      "name %[1]s, ended_at %[1]s, id %[1]s",
	"method":    "method %[1]s, ended_at %[1]s, id %[1]s",
}

// listSQL is the list query; its WHERE clause is CountMeasurements' edge A
// over the whole window.
const listSQL = `SELECT id, started_at, ended_at, elapsed, name, method, args, kwargs, context, app
FROM measurements
WHERE started_at >= $1 AND started_at <= $2 AND ended_at <= $2 AND ended_at >= $1
  AND ($3::text IS NULL OR name = $3::text)
  AND (cardinality($4::text[]) = 0 OR method = ANY($4::text[]))
  AND ($5::text IS NULL OR app = $5::text)
  AND ($6::float8 IS NULL OR elapsed >= $6::float8)
ORDER BY %s
LIMIT $7 OFFSET $8`

// List answers one page of the measurements f matches, ordered by sortKey
// (one of SortKeys), newest or largest first when desc.
func List(ctx context.Context, pool DB, f Filter, sortKey string, desc bool, limit, offset int64) ([]Record, error) {
	order, ok := listOrder[sortKey]
	if !ok {
		return nil, fmt.Errorf("list measurements: unknown sort key %q", sortKey)
	}
	dir := "ASC"
	if desc {
		dir = "DESC"
	}
	sql := fmt.Sprintf(listSQL, fmt.Sprintf(order, dir))
	rows, err := customPlans{pool}.Query(ctx, sql, f.StartedAt, f.EndedAt, f.Name, f.methods(), f.App, f.MinElapsed, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("list measurements: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Record, error) {
		var r Record
		err := row.Scan(&r.ID, &r.StartedAt, &r.EndedAt, &r.Elapsed, &r.Name, &r.Method, &r.Args, &r.Kwargs, &r.Context, &r.App)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list measurements: %w", err)
	}
	return out, nil
}

// ParseMethods splits a comma list of methods ("PUT,POST"), dropping blanks.
func ParseMethods(s string) []string {
	var out []string
	for _, m := range strings.Split(s, ",") {
		if m = strings.TrimSpace(m); m != "" {
			out = append(out, m)
		}
	}
	return out
}
