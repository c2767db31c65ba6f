package store

import (
	"context"
	"time"
)

// Exporter streams whole lists, for the API's CSV and NDJSON exports: the
// same filters and order as the paginated lists, without a page, each row
// handed to fn as soon as it is read from the database (never a slice of
// all rows), so that memory stays constant whatever the number of rows.
//
// fn's error stops the export and is returned as is (not wrapped); any
// other failure is a store error as elsewhere. When ctx ends (the client
// went away) the query is cancelled and its connection goes back to the
// pool. The read is one plain SELECT outside any explicit transaction: it
// blocks no write, but keeps its snapshot (and so vacuum's horizon) while
// it runs.
type Exporter interface {
	Flows(ctx context.Context, f FlowFilter, s FlowSort, fn func(Flow) error) error
	// FlowSummary streams Flows.Summary's totals per key, largest first.
	FlowSummary(ctx context.Context, f FlowFilter, by string, fn func(FlowTotal) error) error
	Runs(ctx context.Context, f RunFilter, fn func(Run) error) error
	Devices(ctx context.Context, fn func(Device) error) error
	// CurrentMetrics, History and HistoryBuckets return ErrNotFound, before
	// any call of fn, for a device that is not registered.
	CurrentMetrics(ctx context.Context, deviceID string, now time.Time, fn func(CurrentMetric) error) error
	CurrentNames(ctx context.Context, now time.Time, fn func(MetricSummary) error) error
	History(ctx context.Context, h HistoryQuery, fn func(HistoryPoint) error) error
	HistoryBuckets(ctx context.Context, h HistoryQuery, width time.Duration, fn func(HistoryBucket) error) error
	Measurements(ctx context.Context, f MeasurementFilter, s MeasurementSort, fn func(Measurement) error) error
	MeasurementGroups(ctx context.Context, f MeasurementFilter, s MeasurementSort, fn func(MeasurementGroup) error) error
}
