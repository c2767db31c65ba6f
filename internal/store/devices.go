package store

import (
	"time"
)

// Device is a registered device.
type Device struct {
	ID        string
	Name      string
	CreatedAt time.Time // UTC
	UpdatedAt time.Time // UTC
}

// MetricRow is one metric report. Num holds numeric values, Text string
// values (Type "string").
type MetricRow struct {
	Time     time.Time
	DeviceID string
	Name     string
	Type     string
	Num      float64
	Text     string
	Units    string
	Slope    string
	TTL      int32
}

// CurrentMetric is a device's latest report of one metric. Text is set for
// string metrics, Num otherwise.
type CurrentMetric struct {
	Name       string
	Num        float64
	Text       *string
	Units      string
	Type       string
	Slope      string
	TTL        int32
	ReportedAt time.Time // UTC
}

// MetricSummary is one metric name reported now, across devices. Min and
// Max are nil when the current values are strings.
type MetricSummary struct {
	Name     string
	Devices  int64
	Min, Max *float64
}

// HistoryQuery selects one numeric series of a device in [From, To).
type HistoryQuery struct {
	DeviceID, Name string
	From, To       time.Time
}

// HistoryPoint is one raw numeric report.
type HistoryPoint struct {
	Time  time.Time // UTC
	Value float64
}

// HistoryBucket aggregates the reports of one bucket.
type HistoryBucket struct {
	Start         time.Time // UTC
	Avg, Min, Max float64
	P95           float64 // exact, nearest rank (percentile_disc)
	Count         int64
}
