package store

import (
	"encoding/json"
	"time"
)

// SelfApp is the app of the service's own measurements (self-profiling):
// the rows a metrics collection's httpUrls count, which the API refuses from
// clients.
const SelfApp = "telemetry"

// Measurement is one request measurement. Args, Kwargs and Context are JSON
// texts (an array, an object, an object); empty stands for the empty one.
type Measurement struct {
	ID        int64
	StartedAt time.Time
	EndedAt   time.Time
	Elapsed   float64 // seconds
	Name      string
	Method    string
	Args      json.RawMessage
	Kwargs    json.RawMessage
	Context   json.RawMessage
	App       string
}

// MeasurementFilter selects measurements: started_at >= StartedAt and
// ended_at <= EndedAt, and each optional filter given.
type MeasurementFilter struct {
	StartedAt, EndedAt time.Time
	Name, App          *string
	Methods            []string // any of them; empty means every method
	MinElapsed         *float64 // elapsed >= MinElapsed
}

// MeasurementSort is the order of a list: a sort key, ascending unless Desc.
type MeasurementSort struct {
	Key  string
	Desc bool
}

// MeasurementSortKeys are the keys List sorts by.

// MeasurementGroupSortKeys are the keys Grouped sorts by.

// MeasurementGroup is the statistics of one (name, method) over a window.
type MeasurementGroup struct {
	Name, Method                       string
	Count                              int64
	AvgElapsed, MinElapsed, MaxElapsed float64
	// Nearest-rank percentiles of elapsed from the rollups' histograms:
	// within PercentileRelativeError of the exact percentile_disc value
	// (within 1 microsecond for values below that).
	P50Elapsed, P95Elapsed, P99Elapsed float64
}

// PercentileRelativeError bounds the relative error of the grouped
// percentiles: (1.05 - 1) / (1.05 + 1), the half-width of a histogram
// bucket (internal/store/postgres/measurements_percentiles.go).
const PercentileRelativeError = 0.05 / 2.05

// MeasurementBucket is one timeseries bucket: its UTC start and how many
// measurements started in it.
type MeasurementBucket struct {
	Start time.Time
	Count int64
}

// MeasurementSortKeys are the orders a measurement list takes, by API name.
func MeasurementSortKeys() []string {
	return []string{"startedAt", "endedAt", "elapsed", "name", "method"}
}

// MeasurementGroupSortKeys are the orders of the grouped statistics, by API name.
func MeasurementGroupSortKeys() []string {
	return []string{"count", "avgElapsed", "minElapsed", "maxElapsed", "name"}
}
