package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/telemetry/telemetry/internal/store"
)

// The load-test events API (seed: Metrics-Consumer). It accepts both the
// body the seed documents and the one the original's Locust client really
// sends (hostname instead of host, top-level targetHost/tags/state,
// startedAt as epoch seconds), so the existing integration works unchanged.

// EventTimestamp documents startedAt, which arrives as an RFC 3339 string or as
// Unix epoch seconds. Its schema is deliberately untyped: the check is made
// by hand (eventChecks) so that a failure names its rule like every other
// field error instead of huma's generic "matched none" of a oneOf.
type EventTimestamp struct{}

// Schema implements huma.SchemaProvider.
func (EventTimestamp) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{
		Description: "An RFC 3339 date-time string (2025-11-22T10:00:00Z) or a number of Unix epoch seconds " +
			"(1763805600, fractions allowed), at most MAX_TIME_AHEAD (default 1 day) ahead of the server's clock. " +
			"Absent or null: the time the server receives the request.",
		Examples: []any{"2025-11-22T10:00:00Z"},
		// Either form or null; generated clients get string | number | null.
		// parseStartedAt's items are the ones a client sees (problem.go
		// drops the schema's "matched none" where a hand check spoke).
		AnyOf: []*huma.Schema{
			{Type: huma.TypeString, Format: "date-time", Nullable: true},
			{Type: huma.TypeNumber, Format: "double", Minimum: &zero, Maximum: &maxEpoch, Nullable: true},
		},
	}
}

var zero, maxEpoch = 0.0, float64(eventsMaxEpochSeconds)

// UnmarshalJSON accepts anything: the raw value is checked by eventChecks.
func (*EventTimestamp) UnmarshalJSON([]byte) error { return nil }

// EventJSON is a JSON object passed through verbatim (requestStats and
// stored payloads).
type EventJSON []byte

// Schema implements huma.SchemaProvider.
func (EventJSON) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeObject, AdditionalProperties: true}
}

// MarshalJSON writes the object as stored.
func (o EventJSON) MarshalJSON() ([]byte, error) {
	if len(o) == 0 {
		return []byte("null"), nil
	}
	return o, nil
}

// UnmarshalJSON keeps a copy of the object (the decoder's buffer is reused).
func (o *EventJSON) UnmarshalJSON(b []byte) error {
	*o = bytes.Clone(b)
	return nil
}

// EventTags are the tags of a register or commit, at measurement.tags (the
// document) or at the top level (the Locust client).
type EventTags struct {
	_          struct{} `json:"-" additionalProperties:"true"`
	TargetHost *string  `json:"targetHost,omitempty" nullable:"true" maxLength:"2048" example:"http://10.10.10.1" doc:"The system under test."`
	Mode       *string  `json:"mode,omitempty" nullable:"true" enum:"single,cluster" example:"single" doc:"Locust mode."`
	Hostname   *string  `json:"hostname,omitempty" nullable:"true" maxLength:"2048" example:"http://10.10.10.1" doc:"The Locust client's name for the system under test (used when targetHost is absent)."`
}

func (t *EventTags) targetHost() *string {
	if t == nil {
		return nil
	}
	return eventsFirstNonBlank(t.TargetHost, t.Hostname)
}

func (t *EventTags) mode() *string {
	if t == nil {
		return nil
	}
	return eventsFirstNonBlank(t.Mode)
}

// EventRegisterFields are measurement.fields of a register.
type EventRegisterFields struct {
	_         struct{} `json:"-" additionalProperties:"true"`
	Clients   *int64   `json:"clients,omitempty" nullable:"true" minimum:"0" maximum:"2147483647" example:"10" doc:"Number of concurrent clients (users)."`
	HatchRate *float64 `json:"hatchRate,omitempty" nullable:"true" minimum:"0" maximum:"2147483647" example:"0.1" doc:"Clients spawned per second."`
	Requests  *int64   `json:"requests,omitempty" nullable:"true" minimum:"0" maximum:"9007199254740991" example:"1000" doc:"Number of requests to make; null or absent when unlimited."`
}

// EventRegisterMeasurement is the measurement of a register.
type EventRegisterMeasurement struct {
	_      struct{}            `json:"-" additionalProperties:"true"`
	Fields EventRegisterFields `json:"fields" doc:"The run's settings."`
	Tags   *EventTags          `json:"tags,omitempty" doc:"targetHost and mode (the document's place for them)."`
}

// EventCommon is what register and commit bodies share beyond the seed's
// document: the Locust client's fields and the raw body.
type EventCommon struct {
	StartedAt  EventTimestamp `json:"startedAt,omitempty"`
	Host       string         `json:"host,omitempty" maxLength:"255" example:"loadgen-1" doc:"The load generator sending the event (the document's name)."`
	Hostname   string         `json:"hostname,omitempty" maxLength:"255" example:"loadgen-1" doc:"The Locust client's name for host; used when host is absent."`
	TargetHost *string        `json:"targetHost,omitempty" nullable:"true" maxLength:"2048" example:"http://10.0.0.5:8089" doc:"The Locust client's place for the system under test; may be null."`
	Tags       *EventTags     `json:"tags,omitempty" doc:"The Locust client's place for mode and the target (as hostname)."`
	State      *string        `json:"state,omitempty" nullable:"true" maxLength:"64" example:"ready" doc:"The Locust runner state (informational, stored with the payload)."`
}

// eventBody is filled while decoding: the raw body (stored as the event's
// payload), startedAt (and its JSON text, sentAt) and the field errors
// that the schema cannot express.
type eventBody struct {
	raw       []byte
	startedAt *time.Time
	sentAt    json.RawMessage
	problems  []error
}

// decode keeps the raw body and runs the hand-made checks: the strings
// that cannot be stored and the repeated names (textcheck.go), startedAt,
// host. It never fails: huma reports wrong JSON and wrong types, this only
// adds to them.
func (e *eventBody) decode(data []byte, hostRequired bool) {
	e.raw, e.startedAt, e.sentAt, e.problems = nil, nil, nil, nil
	// First, so that a body of the wrong type lists them beside its 400.
	problems, err := checkBodyText(data)
	if err != nil {
		return // not JSON: huma's parse says so
	}
	e.problems = problems
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil || top == nil {
		return // not an object: huma's schema check says so
	}
	e.raw = bytes.Clone(data)
	if t, p := parseStartedAt(top["startedAt"]); p != nil {
		e.problems = append(e.problems, p)
	} else if t != nil {
		e.startedAt, e.sentAt = t, top["startedAt"]
	}
	if hostRequired && !eventsHostGiven(top["host"]) && !eventsHostGiven(top["hostname"]) {
		e.problems = append(e.problems, errEventsHostRequired())
	}
}

func errEventsHostRequired() *ProblemItem {
	return &ProblemItem{Title: "required", Source: "host", Location: "body.host",
		Detail: "host is a required field (the Locust client may send it as hostname)"}
}

// eventsHostGiven is false when a host field is absent, null or blank. A value of
// another type counts as given: the schema check reports its type.
func eventsHostGiven(raw json.RawMessage) bool {
	if len(raw) == 0 || string(raw) == "null" {
		return false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return true
	}
	return strings.TrimSpace(s) != ""
}

// problemsAt is the body's field errors with, when MAX_TIME_AHEAD is on
// (the operation's Metadata[timeAheadKey]), one for a startedAt past the
// server's clock at the request plus MAX_TIME_AHEAD: the register's is the
// run's start and the commit's its end, which EVENTS_RETENTION counts from
// (queries/lifecycle.sql, DeleteExpiredRuns), so a run dated ahead would
// outlive it. Checked here and not while decoding, which does not know
// the setting; huma lists these beside its own failures.
func (e *eventBody) problemsAt(ctx huma.Context) []error {
	if ctx == nil || ctx.Operation() == nil {
		return e.problems
	}
	d, _ := ctx.Operation().Metadata[timeAheadKey].(time.Duration)
	latest, on := aheadLimit(time.Now(), d)
	if !on {
		return e.problems
	}
	detail := aheadDetail("startedAt", d, latest)
	// A time past 9999-12-31 (parseStartedAt's max item) is past the
	// limit too: its item names the limit a client can use.
	for _, p := range e.problems {
		if it, ok := p.(*ProblemItem); ok && it.Source == "startedAt" && it.Title == "max" {
			it.Detail = detail
		}
	}
	if e.startedAt == nil || !e.startedAt.After(latest) {
		return e.problems
	}
	// The value as sent: the string, or the number (parseStartedAt read
	// either).
	var value any
	_ = json.Unmarshal(e.sentAt, &value)
	return append(e.problems, &ProblemItem{Title: "max", Source: "startedAt", Location: "body.startedAt", Value: value,
		Detail: detail})
}

// timeAheadKey is the key, in the register and commit operations'
// Metadata, of MAX_TIME_AHEAD (a time.Duration), which their Resolve
// reads.
const timeAheadKey = "maxTimeAhead"

// Epoch seconds up to the end of year 9999.
const eventsMaxEpochSeconds = 253402300799

// parseStartedAt reads startedAt: absent or null gives nil (the time of
// receipt), else an RFC 3339 string or a number of epoch seconds.
func parseStartedAt(raw json.RawMessage) (*time.Time, *ProblemItem) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	item := func(title, detail string, value any) *ProblemItem {
		return &ProblemItem{Title: title, Source: "startedAt", Location: "body.startedAt", Detail: detail, Value: value}
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, item("type", "startedAt must be a string or a number", nil)
		}
		t, ok := parseDateTime(s)
		if !ok {
			if len(s) > 64 {
				s = s[:64] + "..."
			}
			return nil, item("format", "startedAt must be an RFC 3339 date-time such as 2025-11-22T10:00:00Z, or Unix epoch seconds", s)
		}
		// The range of the numbers below, so that every stored time can
		// be answered (JSON times stop at year 9999: a run started in
		// 9999-12-31T23:59:59-01:00 broke every list that held it). A
		// time finer than the microsecond stored is rounded up, as the
		// states' from and to are: a run is then found by from=<the time
		// it was sent with>, and not by to=<that time> (the database used
		// to cut it down instead).
		t = ceilMicro(t.UTC())
		switch {
		case t.Unix() < 0:
			return nil, item("min", "startedAt must be 1970-01-01T00:00:00Z or later", s)
		case t.Unix() > eventsMaxEpochSeconds:
			return nil, item("max", "startedAt must be 9999-12-31T23:59:59Z or earlier", s)
		}
		return &t, nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		f, err := strconv.ParseFloat(string(raw), 64)
		switch {
		case err == nil && f < 0:
			return nil, item("min", "startedAt must be 0 or greater (Unix epoch seconds)", f)
		case err != nil || f > eventsMaxEpochSeconds:
			return nil, item("max", fmt.Sprintf("startedAt must be %d or less (Unix epoch seconds; milliseconds are not accepted)", eventsMaxEpochSeconds), json.Number(raw))
		}
		sec, frac := math.Modf(f)
		t := time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC()
		return &t, nil
	}
	var v any
	_ = json.Unmarshal(raw, &v)
	return nil, item("type", "startedAt must be a string or a number", v)
}

func (c *EventCommon) host() *string { return eventsFirstNonBlank(&c.Host, &c.Hostname) }

// EventRegisterBody is the body of POST /apiv0.1/events/register.
type EventRegisterBody struct {
	_ struct{} `json:"-" additionalProperties:"true"`
	EventCommon
	Measurement EventRegisterMeasurement `json:"measurement" doc:"The run's settings (fields) and tags."`

	eventBody `json:"-"`
}

// UnmarshalJSON decodes the body and keeps what the checks need.
func (b *EventRegisterBody) UnmarshalJSON(data []byte) error {
	type plain EventRegisterBody
	err := unmarshalBody(data, (*plain)(b))
	b.decode(data, true)
	// decode judges host by the exact names, and so does json v2 when it
	// fills Host and Hostname (encoding/json, used before, matched them
	// case-insensitively: {"host":"a","HOST":" "} passed the first and
	// left both blank). Should they ever disagree, refuse the body as
	// without a host rather than let registerEvent dereference no host.
	if err == nil && b.raw != nil && b.host() == nil && !slices.ContainsFunc(b.problems, isEventsHostProblem) {
		b.problems = append(b.problems, errEventsHostRequired())
	}
	return err
}

func isEventsHostProblem(err error) bool {
	p, ok := err.(*ProblemItem)
	return ok && p.Source == "host"
}

// EventCommitFields are measurement.fields of a commit.
type EventCommitFields struct {
	_            struct{}  `json:"-" additionalProperties:"true"`
	RequestStats EventJSON `json:"requestStats" doc:"The results of the run, any JSON object. Locust sends stats[] (one item per request name, and a Total), errors[], total_rps, fail_ratio, ..."`
}

// EventCommitMeasurement is the measurement of a commit.
type EventCommitMeasurement struct {
	_      struct{}          `json:"-" additionalProperties:"true"`
	Fields EventCommitFields `json:"fields" doc:"The results."`
	Tags   *EventTags        `json:"tags,omitempty" doc:"Tags; targetHost and mode fill in what the register left out."`
}

// EventCommitBody is the body of POST /apiv0.1/events/commit.
type EventCommitBody struct {
	_ struct{} `json:"-" additionalProperties:"true"`
	EventCommon
	UUID        string                 `json:"uuid" format:"uuid" example:"0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f" doc:"The run's id, as register answered it."`
	UserCount   *int64                 `json:"user_count,omitempty" nullable:"true" minimum:"0" maximum:"2147483647" example:"1" doc:"The Locust client's user count (informational)."`
	Measurement EventCommitMeasurement `json:"measurement" doc:"The results (fields.requestStats) and tags."`

	eventBody `json:"-"`
}

// UnmarshalJSON decodes the body and keeps what the checks need.
func (b *EventCommitBody) UnmarshalJSON(data []byte) error {
	type plain EventCommitBody
	err := unmarshalBody(data, (*plain)(b))
	b.decode(data, false)
	return err
}

type registerEventInput struct {
	Body EventRegisterBody
}

// Resolve adds the hand-made checks to huma's, so that every failure is
// reported at once.
func (in *registerEventInput) Resolve(ctx huma.Context) []error { return in.Body.problemsAt(ctx) }

type commitEventInput struct {
	Body EventCommitBody
}

// Resolve adds the hand-made checks to huma's.
func (in *commitEventInput) Resolve(ctx huma.Context) []error { return in.Body.problemsAt(ctx) }

// RegisterEventData is where the original's Locust client reads the id.
type RegisterEventData struct {
	UUID string `json:"uuid" format:"uuid" example:"0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f" doc:"The same id as uuid."`
}

type registerEventOutput struct {
	Body registerEventBody
}

// registerEventBody is an alias, not a type, so that the document keeps the
// body's schema name.
type registerEventBody = struct {
	UUID string            `json:"uuid" format:"uuid" example:"0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f" doc:"The new run's id: quote it on commit."`
	Data RegisterEventData `json:"data" doc:"The original's answer: data.uuid."`
}

// CommitEventData says what the commit did.
type CommitEventData struct {
	Description string `json:"description" example:"run 0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f committed" doc:"What happened, for people."`
}

type commitEventOutput struct {
	Body commitEventBody
}

// commitEventBody is an alias, not a type, so that the document keeps the
// body's schema name.
type commitEventBody = struct {
	UUID string          `json:"uuid" format:"uuid" example:"0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f" doc:"The committed run's id."`
	Data CommitEventData `json:"data"`
}

type isRunningOutput struct {
	Body RunningRuns `doc:"One key <host>-<uuid> per run registered and not yet committed, each true."`
}

type eventsPingOutput struct {
	Body struct {
		Res string `json:"res" example:"PONG!" doc:"Always PONG!"`
	}
}

// EventRun is one load-test run.
type EventRun struct {
	UUID       string     `json:"uuid" format:"uuid" example:"0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f" doc:"The run's id."`
	Host       string     `json:"host" example:"loadgen-1" doc:"The load generator."`
	TargetHost *string    `json:"targetHost" nullable:"true" example:"http://10.0.0.5:8089" doc:"The system under test; null when unknown."`
	Mode       *string    `json:"mode" nullable:"true" enum:"single,cluster" example:"single" doc:"Locust mode; null when unknown."`
	Clients    *int64     `json:"clients" nullable:"true" example:"10" doc:"Concurrent clients; null when not given."`
	HatchRate  *float64   `json:"hatchRate" nullable:"true" example:"0.1" doc:"Clients spawned per second; null when not given."`
	Requests   *int64     `json:"requests" nullable:"true" example:"1000" doc:"Requests asked for; null when unlimited or not given."`
	State      string     `json:"state" enum:"running,committed" example:"committed" doc:"running until committed."`
	StartedAt  time.Time  `json:"startedAt" example:"2025-11-22T10:00:00Z" doc:"Start of the run (RFC 3339, UTC)."`
	EndedAt    *time.Time `json:"endedAt" nullable:"true" example:"2025-11-22T10:01:00Z" doc:"End of the run: the commit's startedAt; null while running."`
	Duration   *float64   `json:"duration" nullable:"true" example:"60" doc:"endedAt - startedAt in seconds; null while running."`
}

// RunEvent is one stored register or commit.
type RunEvent struct {
	Time       time.Time `json:"time" example:"2025-11-22T10:00:00Z" doc:"The event's startedAt (the end of the run for a commit)."`
	ReceivedAt time.Time `json:"receivedAt" example:"2025-11-22T10:00:00.123Z" doc:"When the server stored it."`
	Host       string    `json:"host" example:"loadgen-1" doc:"The host that sent it."`
	Payload    EventJSON `json:"payload" doc:"The body as received (JSON-normalised: key order and duplicate keys are not kept)."`
}

// EventRunDetail is a run with its register and commit.
type EventRunDetail struct {
	EventRun
	Register     RunEvent  `json:"register" doc:"The register event."`
	Commit       *RunEvent `json:"commit,omitempty" doc:"The commit event; absent while running."`
	RequestStats EventJSON `json:"requestStats,omitempty" doc:"The commit's measurement.fields.requestStats; absent while running."`
}

type getEventInput struct {
	UUID string `path:"uuid" example:"0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f" doc:"The run's id. An id that is not a UUID names no run (404); one holding a NUL byte or invalid UTF-8 is a 422."`
}

type getEventOutput struct {
	Body EventRunDetail
}

type listStatesInput struct {
	State string `query:"state" enum:"running,committed" doc:"Only runs in this state."`
	Host  string `query:"host" maxLength:"255" example:"loadgen-1" doc:"Only runs of this load generator (exact match)."`
	Mode  string `query:"mode" enum:"single,cluster" doc:"Only runs in this Locust mode."`
	From  string `query:"from" format:"date-time" example:"2025-11-22T00:00:00Z" doc:"Only runs started at or after this time (RFC 3339; escape + as %2B)."`
	To    string `query:"to" format:"date-time" example:"2025-11-23T00:00:00Z" doc:"Only runs started before this time (RFC 3339; escape + as %2B)."`
	PageQuery

	filter store.RunFilter // set by Resolve
}

const (
	eventsPrefix = "/apiv0.1"
	// eventsExampleUUID is the id the documented examples use.
	eventsExampleUUID = "0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f"
)

// eventsBodyErrors are the answers of an operation with a JSON body.
func eventsBodyErrors() []int {
	return []int{http.StatusBadRequest, http.StatusNotAcceptable, http.StatusRequestEntityTooLarge,
		http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity, http.StatusInternalServerError,
		http.StatusServiceUnavailable}
}

// eventsDocs documents the events operations by id (routes.go lists them).
func (s *server) eventsDocs() map[string]huma.Operation {
	tags := []string{"events"}
	return map[string]huma.Operation{
		"registerEvent": {
			Summary: "Register the start of a load-test run",
			Description: "Stores a new run (state running) with its settings and answers its id, both as `uuid` and " +
				"as `data.uuid` (where the original's Locust client reads it). Accepts the documented body " +
				"(`host`, `measurement.tags.{targetHost,mode}`) and the Locust client's (`hostname`, top-level " +
				"`targetHost`, `tags.{mode,hostname}`, `state`); unknown extra fields are accepted and stored. " +
				"`startedAt` is an RFC 3339 string or epoch seconds; absent, the time of receipt.",
			Tags:         tags,
			MaxBodyBytes: s.eventsBodyLimit(),
			Metadata:     map[string]any{bodyWeightKey: eventsBodyWeight, timeAheadKey: s.cfg.MaxTimeAhead},
			RequestBody: &huma.RequestBody{Content: map[string]*huma.MediaType{"application/json": {
				Examples: map[string]*huma.Example{
					"document": {Summary: "The body the seed documents", Value: eventsExampleRegisterDocument},
					"locust":   {Summary: "What the original's Locust client sends", Value: eventsExampleRegisterLocust},
				},
			}}},
			Errors: eventsBodyErrors(),
		},
		"commitEvent": {
			Summary: "Commit the results of a load-test run",
			Description: "Stores the results (`measurement.fields.requestStats`, any JSON object) of a running run " +
				"and marks it committed; `startedAt` is the end of the run (absent: the time of receipt). A run is " +
				"committed once: an unknown uuid is a 404, a committed one a 409, and of two concurrent commits " +
				"exactly one succeeds. Accepts the Locust client's body as well (`hostname`, `user_count`, `state`, ...).",
			Tags:         tags,
			MaxBodyBytes: s.eventsBodyLimit(),
			Metadata:     map[string]any{bodyWeightKey: eventsBodyWeight, timeAheadKey: s.cfg.MaxTimeAhead},
			RequestBody: &huma.RequestBody{Content: map[string]*huma.MediaType{"application/json": {
				Examples: map[string]*huma.Example{
					"document": {Summary: "The body the seed documents", Value: eventsExampleCommitDocument},
					"locust":   {Summary: "What the original's Locust client sends", Value: eventsExampleCommitLocust},
				},
			}}},
			Errors: append(eventsBodyErrors(), http.StatusNotFound, http.StatusConflict),
		},
		"listRunningEvents": {
			Summary:     "Runs registered and not yet committed",
			Description: "An object with one key `<host>-<uuid>` per running run, each `true` (the original's format).",
			Tags:        tags,
			Errors:      []int{http.StatusNotAcceptable, http.StatusInternalServerError, http.StatusServiceUnavailable},
		},
		"getEvent": {
			Summary: "One run with its register and commit payloads",
			Description: "The run's state and settings, the register and commit events with their payloads as " +
				"received, and the commit's requestStats. An unknown or malformed id is a 404.",
			Tags: tags,
			Errors: []int{http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotAcceptable,
				http.StatusInternalServerError, http.StatusServiceUnavailable},
		},
		"listStates": {
			Summary: "Load-test runs, newest first",
			Description: "The runs ordered by startedAt, newest first (ties by uuid), filtered by state, host, mode " +
				"and a startedAt window [from, to). Paginated: `{items, total, page, size}` and a Link header.",
			Tags:   tags,
			Errors: []int{http.StatusNotAcceptable, http.StatusUnprocessableEntity, http.StatusInternalServerError, http.StatusServiceUnavailable},
		},
		"eventsPing": {
			Summary: "Ping: answers PONG!",
			Tags:    tags,
			Errors:  []int{http.StatusNotAcceptable},
		},
	}
}

// registerEvents is the events API's setup step: it has none (the routes
// are in routes.go).
func (s *server) registerEvents(huma.API) {}

// documentEvents puts named example answers on the events operations.
func (s *server) documentEvents(api huma.API) { addEventExamples(api.OpenAPI()) }

func (s *server) eventsPing(context.Context, *struct{}) (*eventsPingOutput, error) {
	out := &eventsPingOutput{}
	out.Body.Res = "PONG!"
	return out, nil
}

func (s *server) registerEvent(ctx context.Context, in *registerEventInput) (*registerEventOutput, error) {
	b := &in.Body
	f := b.Measurement.Fields
	run := store.NewRun{
		Host: strings.TrimSpace(*b.host()),
		RunSettings: store.RunSettings{
			TargetHost: eventsFirstNonBlank(b.Measurement.Tags.targetHost(), b.TargetHost, b.Tags.targetHost()),
			Mode:       eventsFirstNonBlank(b.Measurement.Tags.mode(), b.Tags.mode()),
			Clients:    f.Clients,
			HatchRate:  f.HatchRate,
			Requests:   f.Requests,
		},
		StartedAt: b.startedAt,
		Payload:   b.raw,
	}
	body, _, err := keyedWrite(ctx, s, b.raw, http.StatusOK,
		func(ctx context.Context) (any, error) { return s.st.Events.Register(ctx, run) },
		func(id any) registerEventBody {
			u := id.(uuid.UUID).String()
			return registerEventBody{UUID: u, Data: RegisterEventData{UUID: u}}
		})
	if err != nil {
		return nil, s.storeError(ctx, "register run", err)
	}
	return &registerEventOutput{Body: body}, nil
}

func (s *server) commitEvent(ctx context.Context, in *commitEventInput) (*commitEventOutput, error) {
	b := &in.Body
	id, ok := parseRunID(b.UUID)
	if !ok { // huma's uuid format accepts a few spellings uuid.Parse does not
		return nil, NewProblem(http.StatusUnprocessableEntity, "validation failed", &ProblemItem{
			Title: "format", Source: "uuid", Location: "body.uuid", Value: b.UUID,
			Detail: "uuid must be a UUID such as " + eventsExampleUUID})
	}
	host := b.host()
	if host != nil {
		*host = strings.TrimSpace(*host)
	}
	commit := store.RunCommit{
		ID:         id,
		Host:       host,
		TargetHost: eventsFirstNonBlank(b.Measurement.Tags.targetHost(), b.TargetHost, b.Tags.targetHost()),
		Mode:       eventsFirstNonBlank(b.Measurement.Tags.mode(), b.Tags.mode()),
		EndedAt:    b.startedAt,
		Payload:    b.raw,
	}
	body, _, err := keyedWrite(ctx, s, b.raw, http.StatusOK,
		func(ctx context.Context) (any, error) { return nil, s.st.Events.Commit(ctx, commit) },
		func(any) commitEventBody {
			return commitEventBody{UUID: id.String(), Data: CommitEventData{Description: fmt.Sprintf("run %s committed", id)}}
		})
	var committed *store.CommittedError
	switch {
	case errors.As(err, &committed):
		return nil, NewProblem(http.StatusConflict, fmt.Sprintf("run %s is already %s: a run is committed once", id, committed.State))
	case errors.Is(err, store.ErrNotFound):
		return nil, NewProblem(http.StatusNotFound, fmt.Sprintf("no run with uuid %s: register it first", id))
	case err != nil:
		return nil, s.storeError(ctx, "commit run", err)
	}
	return &commitEventOutput{Body: body}, nil
}

func (s *server) listRunningEvents(ctx context.Context, _ *struct{}) (*isRunningOutput, error) {
	runs, err := s.st.Events.RunningKeys(ctx, "", runningPage)
	if err != nil {
		return nil, s.storeError(ctx, "list running runs", err)
	}
	// The later pages, if any, are read as the answer is written
	// (events_running.go); a HEAD's would be discarded.
	out := &isRunningOutput{Body: RunningRuns{first: runs}}
	if len(runs) == runningPage && !isHead(ctx) {
		out.Body.rest = s.runningRest(ctx)
	}
	return out, nil
}

func (s *server) getEvent(ctx context.Context, in *getEventInput) (*getEventOutput, error) {
	if eventsPostOnly(eventsPrefix + "/events/" + in.UUID) {
		// GET on a POST-only path lands on this route: answer like the router does.
		return nil, NewProblem(http.StatusMethodNotAllowed,
			fmt.Sprintf("GET is not supported on %s/events/%s; allowed: POST", eventsPrefix, in.UUID)).WithHeader("Allow", "POST")
	}
	id, ok := parseRunID(in.UUID)
	if !ok {
		return nil, NewProblem(http.StatusNotFound, fmt.Sprintf("no run with uuid %q: run ids are UUIDs", eventsTruncate(in.UUID, 64)))
	}
	run, err := s.st.Events.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, NewProblem(http.StatusNotFound, fmt.Sprintf("no run with uuid %s", id))
	}
	if err != nil {
		return nil, s.storeError(ctx, "get run", err)
	}
	out := &getEventOutput{}
	out.Body.EventRun = eventRun(run.Run)
	out.Body.Register = runEvent(run.Register)
	if run.Commit != nil {
		c := runEvent(*run.Commit)
		out.Body.Commit = &c
		out.Body.RequestStats = EventJSON(run.RequestStats)
	}
	return out, nil
}

// eventsPostOnly tells the POST-only paths that the route of GET
// /apiv0.1/events/{uuid} also matches: GET (and so HEAD) is not allowed
// there, although the router finds a GET route.
func eventsPostOnly(path string) bool {
	return path == eventsPrefix+"/events/register" || path == eventsPrefix+"/events/commit"
}

func runEvent(e store.RunEvent) RunEvent {
	return RunEvent{Time: e.Time, ReceivedAt: e.ReceivedAt, Host: e.Host, Payload: EventJSON(e.Payload)}
}

func (s *server) listStates(ctx context.Context, in *listStatesInput) (*PageOutput[EventRun], error) {
	page, err := s.st.Events.List(ctx, in.filter, store.PageRequest{Limit: in.Size, Offset: in.Offset()})
	if err != nil {
		return nil, s.storeError(ctx, "list runs", err)
	}
	items := make([]EventRun, len(page.Items))
	for i, r := range page.Items {
		items[i] = eventRun(r)
	}
	return newPage(ctx, in.PageQuery, items, page.Total), nil
}

// Resolve sets the runs a listStates request selects (its from and to
// are checked by their date-time format, with the request's other
// failures).
func (in *listStatesInput) Resolve(huma.Context) []error {
	f := store.RunFilter{State: store.RunState(in.State), Host: in.Host, Mode: in.Mode}
	for _, t := range []struct {
		value string
		dst   **time.Time
	}{{in.From, &f.StartedFrom}, {in.To, &f.StartedTo}} {
		if t.value == "" {
			continue
		}
		v, ok := parseDateTime(t.value)
		if !ok { // huma's date-time check has its item
			continue
		}
		v = ceilMicro(v)
		*t.dst = &v
	}
	in.filter = f
	return nil
}

// ceilMicro rounds a bound up to the microsecond. Times are stored to the
// microsecond, and pgx would cut a finer bound down: [from, to) keeps its
// meaning only rounded up (cut, a run started at 10:00:00 was in
// from=10:00:00.0000001, and not in to=10:00:00.0000001).
func ceilMicro(t time.Time) time.Time {
	if c := t.Truncate(time.Microsecond); !c.Equal(t) {
		return c.Add(time.Microsecond)
	}
	return t
}

// parseDateTime reads a parameter of format date-time as huma's check of
// that format does (RFC 3339, with or without a fraction of a second):
// false means huma has already listed it. A fraction finer than the
// nanosecond is rounded up to the next one: Go keeps nine digits and drops
// the rest, so ceilMicro would have cut .0000010001 down to .000001.
func parseDateTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339} {
		if t, err := time.Parse(layout, s); err == nil {
			if finerThanNanos(s) {
				t = t.Add(time.Nanosecond)
			}
			return t, true
		}
	}
	return time.Time{}, false
}

// finerThanNanos reports whether the RFC 3339 date-time s (one time.Parse
// took) has a fraction of a second with a non-zero digit after the ninth.
func finerThanNanos(s string) bool {
	// The fraction follows the seconds after a dot or a comma, the first
	// in s: the date, the time and the offset hold neither. Not at a fixed
	// place: Go (and huma's date-time check) takes an hour of one digit,
	// T9:00:00.
	dot := strings.IndexAny(s, ".,")
	if dot < 0 {
		return false
	}
	for i := dot + 1; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if i > dot+9 && s[i] != '0' {
			return true
		}
	}
	return false
}

func eventRun(r store.Run) EventRun {
	run := EventRun{UUID: r.ID.String(), Host: r.Host, TargetHost: r.TargetHost, Mode: r.Mode, Clients: r.Clients,
		HatchRate: r.HatchRate, Requests: r.Requests, State: string(r.State), StartedAt: r.StartedAt}
	if r.EndedAt != nil {
		end := *r.EndedAt
		// In seconds from the Unix times: a time.Duration stops at 292
		// years.
		d := float64(end.Unix()-run.StartedAt.Unix()) + float64(end.Nanosecond()-run.StartedAt.Nanosecond())/1e9
		run.EndedAt, run.Duration = &end, &d
	}
	return run
}

// parseRunID reads a run id in the spellings huma's uuid format admits:
// plain, without hyphens, in braces or as a urn:uuid: URN.
func parseRunID(s string) (uuid.UUID, bool) {
	if len(s) == 45 && strings.EqualFold(s[:9], "urn:uuid:") {
		s = s[9:]
	} else if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	if len(s) != 36 && len(s) != 32 {
		return uuid.UUID{}, false
	}
	id, err := uuid.Parse(s)
	return id, err == nil
}

func eventsFirstNonBlank(vs ...*string) *string {
	for _, v := range vs {
		if v != nil && strings.TrimSpace(*v) != "" {
			return v
		}
	}
	return nil
}

func eventsTruncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
