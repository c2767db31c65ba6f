package store

import (
	"errors"
	"time"
)

// ErrTooManyCollections is what Create returns (wrapped, with ErrConflict)
// when the limit of collections is reached.
var ErrTooManyCollections = errors.New("too many collections")

// CollectionWindow is a collection's window: from Start (its creation or
// last clear) to End, the database's clock when it was read.
type CollectionWindow struct {
	ID         int64
	Start, End time.Time
}

// CollectionRuntime aggregates the runtime samples of every instance in a
// window. Every figure is 0 while the window holds no sample.
type CollectionRuntime struct {
	Samples int64
	// Fractions 0..1 of the machine's CPU capacity: time-weighted means and
	// the largest value of one sample.
	SystemMean, SystemPeak   float64
	ProcessMean, ProcessPeak float64
	// GCTime is GC CPU time over the CPU time available to Go in the window.
	GCTime float64
	// The largest of one process in the window, bytes.
	HeapLivePeak, RSSPeak int64
}

// CollectionURL is the self-profiled traffic of one (path, method) in a window.
type CollectionURL struct {
	Path, Method string
	Hits         int64
	// Mean and longest response times, in seconds.
	AvgSeconds, MaxSeconds float64
}
