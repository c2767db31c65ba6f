package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// Devices is the store of device metrics (the Concertim metric reporting
// daemon under /mrd): the device registry, metric reports written through
// a group-commit writer (devices_writer.go), and read-back of current and
// historic values.
type Devices struct {
	q      *db.Queries
	reads  readers // the lists, on the replica when fresh
	writer *deviceWriter
}

func newDevices(pool *pgxpool.Pool, q *db.Queries, opts Options, h *halt) *Devices {
	observe := opts.ObserveBatch
	return &Devices{q: q, writer: newDeviceWriter(pool, q, h, deviceWriterOptions{
		Writers:  opts.DeviceWriters,
		MaxBatch: opts.DeviceMaxBatch,
		Observe:  func(n int) { observe("device_metrics", n) },
	})}
}

// Close refuses new reports and waits until every queued one is committed.
// Safe to call twice.
func (d *Devices) Close() { d.writer.Close() }

func deviceOf(r db.Device) store.Device {
	return store.Device{ID: r.ID, Name: r.Name, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
}

// Create registers a device: ErrConflict when the id is taken.
func (d *Devices) Create(ctx context.Context, id, name string) (store.Device, error) {
	r, err := d.q.CreateDevice(ctx, db.CreateDeviceParams{ID: id, Name: name})
	if err = wrap("create device", err); errors.Is(err, store.ErrNotFound) {
		// The insert did nothing: ON CONFLICT DO NOTHING.
		return store.Device{}, &store.Error{Op: "create device", Kind: store.ErrConflict, Detail: "already exists",
			Err: fmt.Errorf("device %q already exists", id)}
	}
	if err != nil {
		return store.Device{}, err
	}
	return deviceOf(r), nil
}

// Get returns a device: ErrNotFound when it is not registered.
func (d *Devices) Get(ctx context.Context, id string) (store.Device, error) {
	r, err := d.q.GetDevice(ctx, id)
	if err != nil {
		return store.Device{}, wrap("get device", err)
	}
	return deviceOf(r), nil
}

// Rename changes a device's name: ErrNotFound when it is not registered.
func (d *Devices) Rename(ctx context.Context, id, name string) (store.Device, error) {
	r, err := d.q.UpdateDevice(ctx, db.UpdateDeviceParams{ID: id, Name: name})
	if err != nil {
		return store.Device{}, wrap("rename device", err)
	}
	return deviceOf(r), nil
}

// Delete removes a device and every metric it reported, in one statement
// (ON DELETE CASCADE): ErrNotFound when it is not registered.
func (d *Devices) Delete(ctx context.Context, id string) error {
	// Its metrics go with it (ON DELETE CASCADE), and the maintenance pass
	// may be deleting the same old history rows: run again after a deadlock
	// (the statement is atomic).
	var n int64
	err := withRetry(ctx, func() (err error) {
		n, err = d.q.DeleteDevice(ctx, id)
		return err
	})
	if err != nil {
		return wrap("delete device", err)
	}
	if n == 0 {
		return notFound("delete device", id)
	}
	return nil
}

// List gives a page of the devices, ordered by id.
func (d *Devices) List(ctx context.Context, p store.PageRequest) (page store.Page[store.Device], err error) {
	err = d.reads.do(ctx, func(q *db.Queries) error {
		page, err = listPage(ctx, "list devices", p,
			func(ctx context.Context) ([]db.ListDevicesRow, error) {
				return q.ListDevices(ctx, db.ListDevicesParams{RowLimit: p.Limit, RowOffset: p.Offset})
			},
			func(r db.ListDevicesRow) int64 { return r.Total },
			q.CountDevices,
			func(r db.ListDevicesRow) store.Device {
				return store.Device{ID: r.ID, Name: r.Name, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
			})
		return err
	})
	return page, err
}

// Current gives a page of a device's current metrics (the latest report of
// each name, unless stale at now), ordered by name: ErrNotFound when the
// device is not registered.
func (d *Devices) Current(ctx context.Context, id string, now time.Time, p store.PageRequest) (page store.Page[store.CurrentMetric], err error) {
	err = d.reads.do(ctx, func(q *db.Queries) error {
		page, err = listPage(ctx, "list current device metrics", p,
			func(ctx context.Context) ([]db.ListCurrentDeviceMetricsRow, error) {
				return q.ListCurrentDeviceMetrics(ctx, db.ListCurrentDeviceMetricsParams{
					DeviceID: id, Now: now, RowLimit: p.Limit, RowOffset: p.Offset})
			},
			func(r db.ListCurrentDeviceMetricsRow) int64 { return r.Total },
			func(ctx context.Context) (int64, error) {
				return q.CountCurrentDeviceMetrics(ctx, db.CountCurrentDeviceMetricsParams{DeviceID: id, Now: now})
			},
			func(r db.ListCurrentDeviceMetricsRow) store.CurrentMetric {
				m := store.CurrentMetric{Name: r.Name, Text: r.ValueText, Units: r.Units, Type: r.Type, Slope: r.Slope,
					TTL: r.TTL, ReportedAt: r.Time.UTC()}
				if r.ValueNum != nil {
					m.Num = *r.ValueNum
				}
				return m
			})
		return emptyOf(ctx, q, "list current device metrics", id, len(page.Items), err)
	})
	return page, err
}

// CurrentNames gives a page of the metric names with a current (not stale
// at now) report on some device, ordered by name.
func (d *Devices) CurrentNames(ctx context.Context, now time.Time, p store.PageRequest) (page store.Page[store.MetricSummary], err error) {
	err = d.reads.do(ctx, func(q *db.Queries) error {
		page, err = listPage(ctx, "list current metric names", p,
			func(ctx context.Context) ([]db.ListCurrentMetricNamesRow, error) {
				return q.ListCurrentMetricNames(ctx, db.ListCurrentMetricNamesParams{Now: now, RowLimit: p.Limit, RowOffset: p.Offset})
			},
			func(r db.ListCurrentMetricNamesRow) int64 { return r.Total },
			func(ctx context.Context) (int64, error) { return q.CountCurrentMetricNames(ctx, now) },
			func(r db.ListCurrentMetricNamesRow) store.MetricSummary {
				s := store.MetricSummary{Name: r.Name, Devices: r.Devices}
				if r.Numeric > 0 {
					s.Min, s.Max = &r.MinValue, &r.MaxValue
				}
				return s
			})
		return err
	})
	return page, err
}

// History gives a page of the numeric reports of one series, oldest first
// (string metrics have none): ErrNotFound when the device is not
// registered.
func (d *Devices) History(ctx context.Context, h store.HistoryQuery, p store.PageRequest) (page store.Page[store.HistoryPoint], err error) {
	err = d.reads.do(ctx, func(q *db.Queries) error {
		page, err = listPage(ctx, "metric history", p,
			func(ctx context.Context) ([]db.ListMetricHistoryRow, error) {
				return q.ListMetricHistory(ctx, db.ListMetricHistoryParams{DeviceID: h.DeviceID, Name: h.Name,
					FromTime: h.From, ToTime: h.To, RowLimit: p.Limit, RowOffset: p.Offset})
			},
			func(r db.ListMetricHistoryRow) int64 { return r.Total },
			func(ctx context.Context) (int64, error) {
				return q.CountMetricHistory(ctx, db.CountMetricHistoryParams{DeviceID: h.DeviceID, Name: h.Name,
					FromTime: h.From, ToTime: h.To})
			},
			func(r db.ListMetricHistoryRow) store.HistoryPoint {
				return store.HistoryPoint{Time: r.Time.UTC(), Value: r.Value}
			})
		return emptyOf(ctx, q, "metric history", h.DeviceID, len(page.Items), err)
	})
	return page, err
}

// HistoryBuckets gives a page of the buckets of one numeric series, each
// width wide and aligned to the Unix epoch, oldest first; empty buckets
// are left out. ErrNotFound when the device is not registered.
func (d *Devices) HistoryBuckets(ctx context.Context, h store.HistoryQuery, width time.Duration, p store.PageRequest) (page store.Page[store.HistoryBucket], err error) {
	err = d.reads.do(ctx, func(q *db.Queries) error {
		secs := width.Seconds()
		page, err = listPage(ctx, "metric history buckets", p,
			func(ctx context.Context) ([]db.ListMetricHistoryBucketsRow, error) {
				return q.ListMetricHistoryBuckets(ctx, db.ListMetricHistoryBucketsParams{WidthSeconds: secs,
					DeviceID: h.DeviceID, Name: h.Name, FromTime: h.From, ToTime: h.To, RowLimit: p.Limit, RowOffset: p.Offset})
			},
			func(r db.ListMetricHistoryBucketsRow) int64 { return r.Total },
			func(ctx context.Context) (int64, error) {
				return q.CountMetricHistoryBuckets(ctx, db.CountMetricHistoryBucketsParams{WidthSeconds: secs,
					DeviceID: h.DeviceID, Name: h.Name, FromTime: h.From, ToTime: h.To})
			},
			func(r db.ListMetricHistoryBucketsRow) store.HistoryBucket {
				return store.HistoryBucket{Start: r.Bucket.UTC(), Avg: r.AvgValue, Min: r.MinValue, Max: r.MaxValue, P95: r.P95Value, Count: r.Points}
			})
		return emptyOf(ctx, q, "metric history buckets", h.DeviceID, len(page.Items), err)
	})
	return page, err
}

// emptyOf completes a device's list: an empty page of a device that is
// not registered is ErrNotFound (the lists do not join the devices, so
// that a page costs one query).
func emptyOf(ctx context.Context, q *db.Queries, op, id string, items int, err error) error {
	if err != nil || items > 0 {
		return err
	}
	ok, err := q.DeviceExists(ctx, id)
	if err != nil {
		return wrap(op+": device exists", err)
	}
	if !ok {
		return notFound(op, id)
	}
	return nil
}

// Report stores a metric report and returns once it is committed, sharing
// the commit with concurrent reports. It fails with ErrNotFound when the
// device is not registered and ErrClosed after Close. It does not give up
// when ctx ends, because the row may already be on its way to a commit. A
// keyed report (store.Idempotent in ctx) has its answer recorded in the
// transaction of its batch.
func (d *Devices) Report(ctx context.Context, r store.MetricRow) error { return d.writer.Write(ctx, r) }

func notFound(op, id string) error {
	return &store.Error{Op: op, Kind: store.ErrNotFound, Detail: "unknown device", Err: fmt.Errorf("device %q is not registered", id)}
}
