package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// Exports streams whole lists (store.Exporter). sqlc's :many methods
// collect every row into a slice, so each export takes its query text and
// arguments from the generated method (through captured, which runs
// nothing) and reads the rows itself, one at a time, from pgx.
//
// Flows, devices, runs and the history have their own queries (queries/):
// the list queries count every row in a window (count(*) OVER ()), which
// makes PostgreSQL read the whole result before it sends the first row.
// The measurement lists, the grouped statistics and the current metrics
// reuse their list query with no limit (LIMIT 9223372036854775807, OFFSET
// 0), so the order and filters are the list's by construction: the
// measurement lists have no window count, and the other two are as small
// as the number of names (their count is computed over the groups).
//
// An export reads where the list it exports reads (docs/scaling.md): on the
// replica while it is fresh, else on the primary (readers.route), the whole
// export on one server. A replica that fails before the first row is handed
// on runs the export again on the primary, as a list's read would; once a
// row is on its way to the client, the failure ends the export (answered).
type Exports struct {
	reads readers
}

// answered is an export's error after rows were handed on: route does not
// run it again on the primary (the client has part of the answer).
type answered struct{ error }

func (a answered) Unwrap() error { return a.error }

// onReaders runs an export (run, reading through pool) on the replica when
// it is fresh and on the primary otherwise, as described at Exports. run's
// ctx is also cancelled when the replica leaves service; run calls handed
// before it hands on its first row.
func (e *Exports) onReaders(ctx context.Context, run func(ctx context.Context, pool *pgxpool.Pool, handed func()) error) error {
	sent := false
	handed := func() { sent = true }
	err := e.reads.route(ctx, func(abort context.Context, pool *pgxpool.Pool, _ *db.Queries) error {
		c, release := withAbort(ctx, abort)
		defer release()
		sent = false
		err := run(c, pool, handed)
		if err != nil && sent {
			return answered{err}
		}
		return err
	})
	var a answered
	if errors.As(err, &a) {
		return a.error
	}
	return err
}

// stream is each, run by onReaders.
func stream[R, T any](ctx context.Context, e *Exports, op string, c *captured, custom bool,
	item func(R) T, fn func(T) error) error {
	return e.onReaders(ctx, func(ctx context.Context, pool *pgxpool.Pool, handed func()) error {
		_, err := each(ctx, pool, op, c, custom, item, func(t T) error { handed(); return fn(t) })
		return err
	})
}

// streamDevice is stream for a device's list: an empty export of a device
// not registered (on the server it read) is ErrNotFound (emptyOf); on the
// replica, the primary is asked again (it may have been registered a
// moment ago).
func streamDevice[R, T any](ctx context.Context, e *Exports, op, id string, c *captured,
	item func(R) T, fn func(T) error) error {
	return e.onReaders(ctx, func(ctx context.Context, pool *pgxpool.Pool, handed func()) error {
		n, err := each(ctx, pool, op, c, false, item, func(t T) error { handed(); return fn(t) })
		return emptyOf(ctx, db.New(pool), op, id, int(min(n, 1)), err)
	})
}

var _ store.Exporter = (*Exports)(nil)

// noLimit is the LIMIT of a list query reused whole.
const noLimit = math.MaxInt64

// errCaptured is what captured answers instead of running the query.
var errCaptured = errors.New("captured")

// captured is a db.DBTX that keeps the text and arguments of the query a
// generated method would run, in the order of its placeholders.
type captured struct {
	sql  string
	args []any
}

func (c *captured) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	c.sql, c.args = sql, args
	return nil, errCaptured
}

func (c *captured) QueryRow(context.Context, string, ...any) pgx.Row {
	panic("export: only :many queries are captured")
}

func (c *captured) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	panic("export: only :many queries are captured")
}

func (c *captured) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	panic("export: only :many queries are captured")
}

// capture runs call on a db.Queries that records its query instead.
func capture[R any](call func(q *db.Queries) ([]R, error)) *captured {
	c := &captured{}
	if _, err := call(db.New(c)); !errors.Is(err, errCaptured) {
		panic(fmt.Sprintf("export: the query was not captured: %v", err))
	}
	return c
}

// each runs the captured query and hands every row, scanned by position
// into R (sqlc's row struct, whose fields follow the SELECT list), to fn
// as item converts it. fn's error is returned as is; others are wrapped.
// custom plans the query with its parameters, as the measurement reads do
// (see customPlans), and for its first rows. It returns the number of rows
// read.
func each[R, T any](ctx context.Context, pool *pgxpool.Pool, op string, c *captured, custom bool,
	item func(R) T, fn func(T) error) (int64, error) {
	args := c.args
	var q interface {
		Query(context.Context, string, ...any) (pgx.Rows, error)
	} = pool
	if custom {
		args = append([]any{pgx.QueryExecModeExec}, args...)
		// Planned for the first rows: with no limit, PostgreSQL would read
		// and sort the whole window before sending a row (a minute for 10 M
		// rows, past DB_TIMEOUT, the export's wait for its first row), where
		// the order's index streams from the start. enable_sort off, for
		// this read-only transaction alone, makes it take the index; an
		// order no index serves (method) still sorts.
		tx, err := pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
		if err != nil {
			return 0, wrap(op, err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) // nothing to keep: it only read
		if _, err := tx.Exec(ctx, "SET LOCAL enable_sort = off"); err != nil {
			return 0, wrap(op, err)
		}
		q = tx
	}
	// The query's own context: an export that ends before its last row (a
	// HEAD answered at the first, a client gone) cancels the query, for
	// Close would otherwise read every row left before it returns (found
	// by an audit: a HEAD read 400,000 rows, holding a connection and an
	// EXPORTS_MAX slot). Close drains nothing once it is cancelled: pgx
	// cancels the query and the connection goes back to the pool (or is
	// closed when it cannot be recovered).
	qctx, stop := context.WithCancel(ctx)
	defer stop()
	rows, err := q.Query(qctx, c.sql, args...)
	if err != nil {
		return 0, wrap(op, err)
	}
	defer rows.Close()
	var n int64
	for rows.Next() {
		r, err := pgx.RowToStructByPos[R](rows)
		if err != nil {
			stop()
			return n, wrap(op+": scan", err)
		}
		if err := fn(item(r)); err != nil {
			stop()
			return n, err
		}
		n++
	}
	return n, wrap(op, rows.Err())
}

// Flows streams the hourly totals f selects in the order of s, with the
// list's own queries and no page. Their total, unused here, is summed from
// the rollup's 'all' rows (a few per hour of the range): the page's gate
// (offset 0 < total) still holds exactly when the range has a row, where
// the filter's own count would read the filter's rows twice.
func (e *Exports) Flows(ctx context.Context, f store.FlowFilter, s store.FlowSort, fn func(store.Flow) error) error {
	arg := db.ListFlowsByKeyAscParams{FromHour: hourTime(f.FromHour), ToHour: hourTime(f.ToHour),
		SrcApp: f.SrcApp, DestApp: f.DestApp, VpcID: f.VpcID, RowLimit: math.MaxInt64, RollupDim: "all"}
	c := capture(func(q *db.Queries) ([]flowPageRow, error) {
		return flowPage(context.Background(), q, s, false, arg, db.ListFlowsTopByHourDescParams{})
	})
	return stream(ctx, e, "export flows", c, false, func(r flowPageRow) store.Flow {
		return store.Flow{SrcApp: r.SrcApp, DestApp: r.DestApp, VpcID: r.VpcID, BytesTx: r.BytesTx, BytesRx: r.BytesRx, Hour: r.Hour.Unix() / 3600}
	}, fn)
}

// FlowSummary streams the totals per key Flows.Summary pages, in its
// order (largest first), with its statements (from flows_hourly when the
// filter allows, as Summary) and no page.
func (e *Exports) FlowSummary(ctx context.Context, f store.FlowFilter, by string, fn func(store.FlowTotal) error) error {
	const op = "export flow summary"
	if !slices.Contains(store.FlowSummaryKeys(), by) {
		return fmt.Errorf("%s by %q: %w", op, by, store.ErrInvalid)
	}
	from, to := hourTime(f.FromHour), hourTime(f.ToHour)
	if key, ok := summaryRollupKey(f, by); ok {
		c := capture(func(q *db.Queries) ([]db.SummarizeFlowsRollupRow, error) {
			return q.SummarizeFlowsRollup(context.Background(), db.SummarizeFlowsRollupParams{By: by, Key: key,
				FromHour: from, ToHour: to, RowLimit: math.MaxInt64})
		})
		return stream(ctx, e, op, c, false, func(r db.SummarizeFlowsRollupRow) store.FlowTotal {
			return store.FlowTotal{Key: r.Key, BytesTx: r.BytesTx, BytesRx: r.BytesRx, Bytes: r.Bytes}
		}, fn)
	}
	c := capture(func(q *db.Queries) ([]db.SummarizeFlowsRow, error) {
		return q.SummarizeFlows(context.Background(), db.SummarizeFlowsParams{By: by, FromHour: from, ToHour: to,
			SrcApp: f.SrcApp, DestApp: f.DestApp, VpcID: f.VpcID, RowLimit: math.MaxInt64})
	})
	return stream(ctx, e, op, c, false, func(r db.SummarizeFlowsRow) store.FlowTotal {
		return store.FlowTotal{Key: r.Key, BytesTx: r.BytesTx, BytesRx: r.BytesRx, Bytes: r.Bytes}
	}, fn)
}

// Runs streams the runs f matches, newest first.
func (e *Exports) Runs(ctx context.Context, f store.RunFilter, fn func(store.Run) error) error {
	c := capture(func(q *db.Queries) ([]db.ExportRunsRow, error) {
		return q.ExportRuns(context.Background(), db.ExportRunsParams{State: runsMatch(string(f.State)),
			Host: runsMatch(f.Host), Mode: runsMatch(f.Mode), StartedFrom: f.StartedFrom, StartedTo: f.StartedTo})
	})
	return stream(ctx, e, "export runs", c, false, func(r db.ExportRunsRow) store.Run {
		return runOf(db.ListRunsRow{UUID: r.UUID, Host: r.Host, TargetHost: r.TargetHost, Mode: r.Mode,
			Clients: r.Clients, HatchRate: r.HatchRate, Requests: r.Requests, State: r.State,
			StartedAt: r.StartedAt, EndedAt: r.EndedAt})
	}, fn)
}

// Devices streams every device by id.
func (e *Exports) Devices(ctx context.Context, fn func(store.Device) error) error {
	c := capture(func(q *db.Queries) ([]db.Device, error) { return q.ExportDevices(context.Background()) })
	return stream(ctx, e, "export devices", c, false, func(r db.Device) store.Device {
		return store.Device{ID: r.ID, Name: r.Name, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
	}, fn)
}

// CurrentMetrics streams a device's current metrics by name.
func (e *Exports) CurrentMetrics(ctx context.Context, id string, now time.Time, fn func(store.CurrentMetric) error) error {
	c := capture(func(q *db.Queries) ([]db.ListCurrentDeviceMetricsRow, error) {
		return q.ListCurrentDeviceMetrics(context.Background(), db.ListCurrentDeviceMetricsParams{
			DeviceID: id, Now: now, RowLimit: noLimit})
	})
	const op = "export current device metrics"
	return streamDevice(ctx, e, op, id, c, func(r db.ListCurrentDeviceMetricsRow) store.CurrentMetric {
		m := store.CurrentMetric{Name: r.Name, Text: r.ValueText, Units: r.Units, Type: r.Type, Slope: r.Slope,
			TTL: r.TTL, ReportedAt: r.Time.UTC()}
		if r.ValueNum != nil {
			m.Num = *r.ValueNum
		}
		return m
	}, fn)
}

// CurrentNames streams the metric names reported now, by name.
func (e *Exports) CurrentNames(ctx context.Context, now time.Time, fn func(store.MetricSummary) error) error {
	c := capture(func(q *db.Queries) ([]db.ListCurrentMetricNamesRow, error) {
		return q.ListCurrentMetricNames(context.Background(), db.ListCurrentMetricNamesParams{Now: now, RowLimit: noLimit})
	})
	return stream(ctx, e, "export current metric names", c, false, func(r db.ListCurrentMetricNamesRow) store.MetricSummary {
		s := store.MetricSummary{Name: r.Name, Devices: r.Devices}
		if r.Numeric > 0 {
			s.Min, s.Max = &r.MinValue, &r.MaxValue
		}
		return s
	}, fn)
}

// History streams a series' raw points, oldest first.
func (e *Exports) History(ctx context.Context, h store.HistoryQuery, fn func(store.HistoryPoint) error) error {
	c := capture(func(q *db.Queries) ([]db.ExportMetricHistoryRow, error) {
		return q.ExportMetricHistory(context.Background(), db.ExportMetricHistoryParams{DeviceID: h.DeviceID,
			Name: h.Name, FromTime: h.From, ToTime: h.To})
	})
	const op = "export metric history"
	return streamDevice(ctx, e, op, h.DeviceID, c, func(r db.ExportMetricHistoryRow) store.HistoryPoint {
		return store.HistoryPoint{Time: r.Time.UTC(), Value: r.Value}
	}, fn)
}

// HistoryBuckets streams a series' buckets, oldest first.
func (e *Exports) HistoryBuckets(ctx context.Context, h store.HistoryQuery, width time.Duration, fn func(store.HistoryBucket) error) error {
	c := capture(func(q *db.Queries) ([]db.ExportMetricHistoryBucketsRow, error) {
		return q.ExportMetricHistoryBuckets(context.Background(), db.ExportMetricHistoryBucketsParams{
			WidthSeconds: width.Seconds(), DeviceID: h.DeviceID, Name: h.Name, FromTime: h.From, ToTime: h.To})
	})
	const op = "export metric history buckets"
	return streamDevice(ctx, e, op, h.DeviceID, c, func(r db.ExportMetricHistoryBucketsRow) store.HistoryBucket {
		return store.HistoryBucket{Start: r.Bucket.UTC(), Avg: r.AvgValue, Min: r.MinValue, Max: r.MaxValue, P95: r.P95Value, Count: r.Points}
	}, fn)
}

// Measurements streams the measurements f matches in the order s, through
// the list query of that order (the same index; for elapsed descending the
// one the list reads past the slow rows, which streams the whole order).
func (e *Exports) Measurements(ctx context.Context, f store.MeasurementFilter, s store.MeasurementSort, fn func(store.Measurement) error) error {
	list := listQueryOf(s)
	if list == nil {
		return fmt.Errorf("export measurements: unknown sort key %q", s.Key)
	}
	if s == (store.MeasurementSort{Key: "elapsed", Desc: true}) {
		list = listElapsedBucketsDesc
	}
	c := capture(func(q *db.Queries) ([]db.Measurement, error) {
		return list(context.Background(), q, listParams{StartedAt: f.StartedAt, EndedAt: f.EndedAt, Name: f.Name,
			Methods: methodsOf(f), App: f.App, MinElapsed: f.MinElapsed, RowLimit: noLimit})
	})
	return stream(ctx, e, "export measurements", c, true, func(r measurementRow) store.Measurement {
		return store.Measurement{ID: r.ID, StartedAt: r.StartedAt, EndedAt: r.EndedAt, Elapsed: r.Elapsed, Name: r.Name,
			Method: r.Method, Args: r.Args, Kwargs: r.Kwargs, Context: r.Context, App: r.App}
	}, fn)
}

// measurementRow is db.Measurement (the columns in the same order) with
// its jsonb columns as []byte: pgx copies those as they come, where it
// runs a json.RawMessage through json.Unmarshal, which validates the text
// and was a quarter of a measurement export's CPU. PostgreSQL sends jsonb
// valid by construction.
type measurementRow struct {
	ID                    int64
	StartedAt, EndedAt    time.Time
	Elapsed               float64
	Name, Method          string
	Args, Kwargs, Context []byte
	App                   string
}

// MeasurementGroups streams the per-(name, method) statistics in the
// order s, with their percentiles: the grouped page's statement
// (groupPage), exportGroupRun groups at a time, every page in
// one read-only transaction, so that they all see one snapshot.
func (e *Exports) MeasurementGroups(ctx context.Context, f store.MeasurementFilter, s store.MeasurementSort, fn func(store.MeasurementGroup) error) error {
	const op = "export measurement groups"
	return e.onReaders(ctx, func(ctx context.Context, pool *pgxpool.Pool, handed func()) error {
		params := groupPageParams(f, s)
		params.RowLimit = exportGroupRun
		tx, err := pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead})
		if err != nil {
			return wrap(op, err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) // nothing to keep: it only read
		q := db.New(customPlans{tx})
		for {
			rows, err := groupPage(ctx, q, f, params)
			if err != nil {
				return wrap(op, err)
			}
			for _, r := range rows {
				g, err := pageGroup(r)
				if err != nil {
					return wrap(op, err)
				}
				handed()
				if err := fn(g); err != nil {
					return err
				}
			}
			if len(rows) < exportGroupRun {
				return nil
			}
			params.RowOffset += exportGroupRun
		}
	})
}

// exportGroupRun is how many groups an export reads at once.
const exportGroupRun = 256
