package postgres

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// The measurements' write side: a batch's aggregates for the four rollups
// (hourly, daily, per method, 5-minute), and the batcher that pipelines
// their upserts.

// batcher is a db.DBTX that queues the :exec queries it is given into a
// pgx.Batch instead of running them, so that sqlc's queries can be
// pipelined. Only Exec is meant to be used.
type batcher struct{ batch pgx.Batch }

var errOnlyExec = errors.New("batcher: only Exec is queued")

func (b *batcher) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	b.batch.Queue(sql, args...)
	return pgconn.CommandTag{}, nil
}

func (b *batcher) Query(context.Context, string, ...any) (pgx.Rows, error) { return nil, errOnlyExec }

func (b *batcher) QueryRow(context.Context, string, ...any) pgx.Row { return errRow{} }

func (b *batcher) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, errOnlyExec
}

type errRow struct{}

func (errRow) Scan(...any) error { return errOnlyExec }

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

// hourOf is the start of t's UTC hour.
func hourOf(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// dayOf is the start of t's UTC day.
func dayOf(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour) }

// binWidth is the width of measurements_5min's bins (migration 00019).
const binWidth = 5 * time.Minute

// binOf is the start of t's 5-minute bin (aligned on the Unix epoch).
func binOf(t time.Time) time.Time { return t.UTC().Truncate(binWidth) }

type rollups struct {
	hourly  db.AddMeasurementRollupParams
	daily   db.AddMeasurementDailyRollupParams
	methods db.AddMeasurementMethodRollupParams
	bins    db.AddMeasurement5minRollupParams
	// requests are the batch's rows of app store.SelfApp, for the metrics
	// collections' minute cells and 10-second bins (migrations 00020 and
	// 00031); empty for most batches.
	requests db.AddCollectionHTTPCellsParams
}

// sortedKeys returns the cells' keys in order.
func sortedKeys[V any](cells map[cellKey]V) []cellKey {
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

// rollupOf aggregates a batch into the cells of the four rollups: the
// hourly and 5-minute cells from the records, the daily and per-method ones
// from the hourly cells (a few hundred per batch); and it picks the rows of
// the service's own requests, which the database adds to their minute cells.
func rollupOf(recs []store.Measurement) rollups {
	var out rollups
	hourly := make(map[cellKey]*cell)
	bins := make(map[[2]int64]int64)
	for i := range recs {
		r := &recs[i]
		k := cellKey{hourOf(r.StartedAt).Unix(), hourOf(r.EndedAt).Unix(), r.App, r.Name, r.Method}
		addCell(hourly, k, cell{count: 1, sum: r.Elapsed, min: r.Elapsed, max: r.Elapsed})
		bins[[2]int64{binOf(r.StartedAt).Unix(), binOf(r.EndedAt).Unix()}]++
		if r.App == store.SelfApp {
			q := &out.requests
			q.StartedAts, q.Names, q.Methods = append(q.StartedAts, r.StartedAt), append(q.Names, r.Name), append(q.Methods, r.Method)
			q.Elapsed, q.Contexts = append(q.Elapsed, r.Elapsed), append(q.Contexts, orEmpty(r.Context, "{}"))
		}
	}
	daily := make(map[cellKey]*cell)
	methods := make(map[cellKey]*cell)
	for k, c := range hourly {
		const day = 86400
		addCell(daily, cellKey{k.start - k.start%day, k.end - k.end%day, k.app, k.name, k.method}, *c)
		addCell(methods, cellKey{start: k.start, end: k.end, method: k.method}, *c)
	}
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
	binKeys := make([][2]int64, 0, len(bins))
	for k := range bins {
		binKeys = append(binKeys, k)
	}
	slices.SortFunc(binKeys, func(a, b [2]int64) int { return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1])) })
	n = len(binKeys)
	out.bins = db.AddMeasurement5minRollupParams{
		StartBins: make([]time.Time, n), EndBins: make([]time.Time, n), Counts: make([]int64, n),
	}
	for i, k := range binKeys {
		out.bins.StartBins[i], out.bins.EndBins[i] = time.Unix(k[0], 0).UTC(), time.Unix(k[1], 0).UTC()
		out.bins.Counts[i] = bins[k]
	}
	return out
}

// RebuildRollup recomputes the rollup cells of every row started in
// [since, until) (widened to whole UTC days) from the rows themselves: for
// rows loaded straight into the table, bypassing Insert.
func (m *Measurements) RebuildRollup(ctx context.Context, since, until time.Time) error {
	since = dayOf(since)
	if d := dayOf(until); !d.Equal(until) {
		until = d.Add(24 * time.Hour)
	}
	err := inTx(ctx, m.pool, func(q *db.Queries) error {
		if err := q.DeleteMeasurementRollup(ctx, db.DeleteMeasurementRollupParams{Since: since, Until: until}); err != nil {
			return err
		}
		if err := q.DeleteMeasurementHist(ctx, db.DeleteMeasurementHistParams{Since: since, Until: until}); err != nil {
			return err
		}
		// Built again from the rows by the next maintenance pass.
		if err := q.DeleteMeasurementSealed(ctx, db.DeleteMeasurementSealedParams{Since: since, Until: until}); err != nil {
			return err
		}
		if err := q.FillMeasurementHist(ctx, db.FillMeasurementHistParams{Since: since, Until: until}); err != nil {
			return err
		}
		if err := q.FillMeasurementRollup(ctx, db.FillMeasurementRollupParams{Since: since, Until: until}); err != nil {
			return err
		}
		return q.FillMeasurementCoarseRollups(ctx, db.FillMeasurementCoarseRollupsParams{Since: since, Until: until})
	})
	if err != nil {
		return wrap("rebuild measurements rollup", err)
	}
	// The collections' running totals (migration 00038) from the rebuilt
	// cells, in a transaction of its own: it takes the collections lock,
	// which the writes of the service's requests take after their rollup
	// rows, so taking it while holding the rebuilt cells could deadlock.
	err = inTx(ctx, m.pool, func(q *db.Queries) error {
		if err := q.LockCollections(ctx); err != nil {
			return err
		}
		return restartHTTPTotals(ctx, q, nil)
	})
	return wrap("rebuild collections' http totals", err)
}
