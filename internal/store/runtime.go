package store

import (
	"time"

	"github.com/google/uuid"
)

// RuntimeSample is the figures of one instance (server process) over the
// interval that ends at Time.
type RuntimeSample struct {
	InstanceID uuid.UUID
	Time       time.Time
	Interval   time.Duration
	// ProcessCPU and SystemCPU are fractions 0..1 of the machine's CPU
	// capacity; nil when they could not be measured.
	ProcessCPU, SystemCPU *float64
	GCCPUSeconds          float64 // GC CPU time during the interval
	GCPauseSeconds        float64 // stop-the-world GC pauses during the interval (estimate)
	GCCycles              int64   // GC cycles completed during the interval
	GOMAXPROCS            int32
	HeapLiveBytes         int64  // heap live after the last GC
	GoMemoryBytes         int64  // all memory mapped by the Go runtime
	RSSBytes              *int64 // resident set size; nil when it could not be measured
	Goroutines            int64
}
