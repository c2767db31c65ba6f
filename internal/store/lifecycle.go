package store

import (
	"context"
	"time"
)

// Retention says how long each kind of data is kept (0: forever) and when
// TimescaleDB chunks are compressed. docs/lifecycle.md gives each table's
// policy.
type Retention struct {
	Measurements   time.Duration
	DeviceMetrics  time.Duration
	RuntimeSamples time.Duration
	Events         time.Duration
	Flows          time.Duration
	// Rollups is how long the measurement rollups (hourly, daily, per
	// method) are kept. They never expire before the rows they summarise:
	// a pass keeps them at least Measurements, and forever when
	// Measurements is 0.
	Rollups time.Duration
	// CompressAfter is the age past which TimescaleDB chunks are
	// compressed (0: never); ignored on plain PostgreSQL.
	CompressAfter time.Duration
}

// RollupsKept is the rollups' effective retention: Rollups, but never
// shorter than Measurements, and forever (0) when either is.
func (r Retention) RollupsKept() time.Duration {
	if r.Rollups == 0 || r.Measurements == 0 {
		return 0
	}
	return max(r.Rollups, r.Measurements)
}

// TableWork is what one pass did to one table.
type TableWork struct {
	Table string
	// Rows is the number of rows deleted (plain tables, batch by batch).
	Rows int64
	// Chunks is the number of TimescaleDB chunks dropped; their rows are
	// not counted.
	Chunks int64
	// Compressed is the number of TimescaleDB chunks compressed.
	Compressed int64
	// Deferred is the number of TimescaleDB chunks left for the next pass:
	// compressed in part, and written to while the pass compressed them
	// again (TimescaleDB aborts such a recompression), or in use by another
	// session (a long query, an open transaction) past the pass's lock
	// timeout, to drop or to compress.
	Deferred int64
	// Sealed is the number of units (closed hours, quarters and days, and
	// 5-minute bins of the hour not closed yet) whose grouped
	// statistics the pass built (measurements_sealed).
	Sealed int64
}

// MaintenanceResult is what one maintenance pass did.
type MaintenanceResult struct {
	// Skipped is true when another pass (another instance, say) was
	// running, or when SchemaAhead: this one did nothing.
	Skipped bool
	// SchemaAhead is true when the database's schema (SchemaVersion) is a
	// later release's than this binary's (BinaryVersion): a later release
	// migrated it while this one serves on, and the pass is that
	// release's to run (docs/scaling.md).
	SchemaAhead                  bool
	SchemaVersion, BinaryVersion int64
	// Mode is the storage mode the pass ran on: "timescaledb" or
	// "postgresql".
	Mode string
	// Tables lists the tables the pass worked on, in the order it did.
	Tables []TableWork
}

// Maintainer runs the data lifecycle work: expired rows or chunks removed,
// old TimescaleDB chunks compressed.
type Maintainer interface {
	// Maintain runs one pass with now as the current time, unless another
	// pass holds the lease (Skipped). A table that fails does not stop
	// the others: the error joins every failure, and the result still
	// says what was done.
	Maintain(ctx context.Context, r Retention, now time.Time) (MaintenanceResult, error)
	// Seal runs only the pass's sealing of the measurements' closed units
	// (Tables has measurements_sealed when it sealed any), under the same
	// lease: Skipped while another pass holds it.
	Seal(ctx context.Context, r Retention, now time.Time) (MaintenanceResult, error)
	// Clock is the database server's current time, which the runner
	// compares with its own before a pass.
	Clock(ctx context.Context) (time.Time, error)
}
