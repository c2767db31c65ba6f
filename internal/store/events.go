package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// RunState is where a run is in its life: running, then committed. A run
// never goes back to running.
type RunState string

// The states of a run.
const (
	RunRunning   RunState = "running"
	RunCommitted RunState = "committed"
)

// RunSettings are what a run was registered with; nil where not given.
type RunSettings struct {
	TargetHost *string // the system under test
	Mode       *string // Locust mode: single or cluster
	Clients    *int64
	HatchRate  *float64
	Requests   *int64 // nil: unlimited
}

// NewRun is a run to register.
type NewRun struct {
	Host string // the load generator
	RunSettings
	StartedAt *time.Time // nil: the time the database receives it
	// Payload is the register body, a JSON object, stored as received.
	Payload json.RawMessage
}

// RunCommit closes a running run with its results.
type RunCommit struct {
	ID   uuid.UUID
	Host *string // the commit event's host; nil: the run's
	// TargetHost and Mode fill in what the register left out; they never
	// replace a value the run has.
	TargetHost, Mode *string
	EndedAt          *time.Time // nil: the time the database receives it
	// Payload is the commit body, a JSON object. Its
	// measurement.fields.requestStats is stored apart (it is the results)
	// and put back by Get.
	Payload json.RawMessage
}

// Run is one load-test run.
type Run struct {
	ID   uuid.UUID
	Host string
	RunSettings
	State     RunState
	StartedAt time.Time  // UTC
	EndedAt   *time.Time // UTC; nil while running
}

// RunEvent is one stored register or commit.
type RunEvent struct {
	Time       time.Time // the event's startedAt (the end of the run for a commit), UTC
	ReceivedAt time.Time // when it was stored, UTC
	Host       string
	Payload    json.RawMessage // the body whole (as jsonb gives it back)
}

// RunDetail is a run with its register and, once committed, its commit.
type RunDetail struct {
	Run
	Register     RunEvent
	Commit       *RunEvent       // nil while running
	RequestStats json.RawMessage // the commit's requestStats; nil while running
}

// RunFilter selects runs; a zero field matches every run.
type RunFilter struct {
	State       RunState
	Host        string
	Mode        string
	StartedFrom *time.Time // started at or after
	StartedTo   *time.Time // started before
}

// CommittedError is the cause of a commit refused because the run is no
// longer running (it wraps ErrConflict in the store's Error): State says
// what it is instead.
type CommittedError struct {
	ID    uuid.UUID
	State RunState
}

func (e *CommittedError) Error() string { return fmt.Sprintf("run %s is already %s", e.ID, e.State) }
