// Package store is what the service needs of its storage, and nothing of
// how it is done: the service's own types (one file per resource), the
// interfaces each resource's store satisfies, pages with exact totals, and
// the few errors callers tell apart (errors.go). It imports no database
// driver: internal/store/postgres implements it on PostgreSQL (TimescaleDB
// when available) and is the only package that talks to the database;
// cmd/telemetry hands it to the API as a Store.
package store

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Store is every resource's store.
type Store struct {
	Flows        FlowStore
	Events       EventStore
	Devices      DeviceStore
	Measurements MeasurementStore
	Collections  CollectionStore
	Runtime      RuntimeSampleStore
	Idempotency  IdempotencyStore
	Health       Health
	// Export streams the lists whole (export.go).
	Export Exporter
}

// FlowStore keeps the hourly flow totals.
type FlowStore interface {
	// Add adds the flows to their hours' totals, all or nothing; nil means
	// committed. A total that would overflow is ErrTooLarge. Honours an
	// Idempotent in ctx (even for no flows).
	Add(ctx context.Context, flows []Flow) error
	// List is one page of the hourly totals the filter selects, in the
	// sort's order.
	List(ctx context.Context, f FlowFilter, s FlowSort, p PageRequest) (Page[Flow], error)
	// Summary is one page of the totals per by (one of FlowSummaryKeys)
	// over the filter's rows, largest bytes_tx + bytes_rx first, ties by
	// key. A total that would overflow 64 bits is ErrTooLarge.
	Summary(ctx context.Context, f FlowFilter, by string, p PageRequest) (Page[FlowTotal], error)
}

// EventStore keeps load-test runs and their register and commit events.
type EventStore interface {
	// Register stores a new running run and returns its id. Honours an
	// Idempotent in ctx.
	Register(ctx context.Context, r NewRun) (uuid.UUID, error)
	// Commit closes a running run: ErrNotFound for an unknown run,
	// ErrConflict (with a *CommittedError) for one no longer running.
	// Honours an Idempotent in ctx.
	Commit(ctx context.Context, c RunCommit) error
	// RunningKeys is at most limit (> 0) keys <host>-<uuid> of the runs
	// not yet committed, in bytewise order: those after after, the first
	// ones when after is "". Never nil.
	RunningKeys(ctx context.Context, after string, limit int) ([]string, error)
	Get(ctx context.Context, id uuid.UUID) (RunDetail, error)
	List(ctx context.Context, f RunFilter, p PageRequest) (Page[Run], error)
}

// DeviceStore keeps the device registry and the metrics devices report.
type DeviceStore interface {
	Create(ctx context.Context, id, name string) (Device, error)
	Get(ctx context.Context, id string) (Device, error)
	Rename(ctx context.Context, id, name string) (Device, error)
	Delete(ctx context.Context, id string) error
	List(ctx context.Context, p PageRequest) (Page[Device], error)
	Current(ctx context.Context, id string, now time.Time, p PageRequest) (Page[CurrentMetric], error)
	CurrentNames(ctx context.Context, now time.Time, p PageRequest) (Page[MetricSummary], error)
	History(ctx context.Context, h HistoryQuery, p PageRequest) (Page[HistoryPoint], error)
	HistoryBuckets(ctx context.Context, h HistoryQuery, width time.Duration, p PageRequest) (Page[HistoryBucket], error)
	// Report stores one metric report and returns once it is committed
	// (reports arriving together share commits): ErrNotFound for an
	// unregistered device, ErrClosed once the store is shutting down.
	// Honours an Idempotent in ctx.
	Report(ctx context.Context, r MetricRow) error
}

// MeasurementStore keeps request measurements and their rollups.
type MeasurementStore interface {
	// Insert stores the records, all or none, and returns their ids in
	// order. Honours an Idempotent in ctx (even for no records).
	Insert(ctx context.Context, recs []Measurement) ([]int64, error)
	Get(ctx context.Context, id int64) (Measurement, error)
	Count(ctx context.Context, f MeasurementFilter) (int64, error)
	List(ctx context.Context, f MeasurementFilter, s MeasurementSort, p PageRequest) (Page[Measurement], error)
	Grouped(ctx context.Context, f MeasurementFilter, s MeasurementSort, p PageRequest) (Page[MeasurementGroup], error)
	MethodDistribution(ctx context.Context, f MeasurementFilter) (map[string]int64, error)
	// Timeseries counts per bucket of started_at, width wide (a divisor of
	// a day in whole minutes, aligned on the epoch), every bucket present.
	Timeseries(ctx context.Context, f MeasurementFilter, width time.Duration) ([]MeasurementBucket, error)
}

// CollectionStore keeps the metrics collections and reads their figures.
type CollectionStore interface {
	IDs(ctx context.Context) ([]int64, error)
	// Create opens a collection unless limit exist already
	// (ErrTooManyCollections).
	Create(ctx context.Context, limit int) (int64, error)
	Window(ctx context.Context, id int64) (CollectionWindow, error)
	Runtime(ctx context.Context, since, until time.Time) (CollectionRuntime, error)
	// HTTPTotalsPage is at most limit entries of a collection's httpUrls
	// so far, from its running totals, in path then method order: the
	// first ones when after is nil, else those after after's path and
	// method.
	HTTPTotalsPage(ctx context.Context, id int64, after *CollectionURL, limit int) ([]CollectionURL, error)
	Clear(ctx context.Context, id int64) error
	Delete(ctx context.Context, id int64) error
}

// RuntimeSampleStore keeps each instance's runtime samples.
type RuntimeSampleStore interface {
	Insert(ctx context.Context, s RuntimeSample) error
}

// Health says whether the storage is ready to serve.
type Health interface {
	// Ready reports the applied schema version and the storage mode
	// ("timescaledb" or "postgresql"), or why it is not ready.
	Ready(ctx context.Context) (version int64, mode string, err error)
}
