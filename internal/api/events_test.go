package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/config"
)

// The seed document's bodies, filled in.
const (
	eventsSeedRegister = `{
  "startedAt": "2025-11-22T10:00:00.000Z",
  "host": "loadgen-doc",
  "measurement": {
    "fields": {"clients": 10, "hatchRate": 0.1, "requests": 1000},
    "tags": {"targetHost": "http://10.10.10.1", "mode": "cluster"}
  }
}`
	eventsSeedCommit = `{
  "startedAt": "2025-11-22T10:05:00.000Z",
  "uuid": "%s",
  "host": "loadgen-doc",
  "measurement": {
    "fields": {"requestStats": {"stats": [{"method": "GET", "name": "/a", "num_requests": 7}]}},
    "tags": {"hostname": "http://10.10.10.1", "mode": "cluster"}
  }
}`
)

// The original Locust client's payloads, exactly as the Metrics-Consumer
// documented them (including the Total row's literal "...": "same fields").
const (
	eventsLocustRegister = `{"startedAt": 1763805600, "hostname": "loadgen-1", "targetHost": "http://10.0.0.5:8089",
 "tags": {"mode": "single", "hostname": "http://10.0.0.5:8089"},
 "measurement": {"fields": {"clients": 1, "hatchRate": 1, "requests": null}}, "state": "ready"}`
	eventsLocustCommit = `{"startedAt": 1763805660, "hostname": "loadgen-1", "targetHost": "http://10.0.0.5:8089", "user_count": 1,
 "tags": {"mode": "single", "hostname": "http://10.0.0.5:8089"},
 "measurement": {"fields": {"requestStats": {"stats": [{"method": "GET", "name": "/", "num_requests": 120,
   "num_failures": 2, "avg_response_time": 35.2, "min_response_time": 4, "max_response_time": 210,
   "current_rps": 11.5, "median_response_time": 30, "avg_content_length": 5120},
   {"method": null, "name": "Total", "...": "same fields"}],
   "errors": [{"method": "GET", "name": "/", "error": "ConnectionError()", "occurences": 2}],
   "total_rps": 11.5, "fail_ratio": 0.016, "state": "stopped", "user_count": 1}}},
 "uuid": "%s", "state": "stopped"}`
)

// registerRun registers body and returns the run's id, checking both
// places the answer carries it.
func (s *testServer) eventsRegister(t *testing.T, body string) string {
	t.Helper()
	var out struct {
		UUID string `json:"uuid"`
		Data struct {
			UUID string `json:"uuid"`
		} `json:"data"`
	}
	s.do("POST", "/apiv0.1/events/register", body).wantStatus(t, http.StatusOK).decode(t, &out)
	if out.UUID == "" || out.UUID != out.Data.UUID {
		t.Fatalf("register answered uuid %q and data.uuid %q", out.UUID, out.Data.UUID)
	}
	if _, ok := parseRunID(out.UUID); !ok {
		t.Fatalf("register answered a uuid that is not one: %q", out.UUID)
	}
	return out.UUID
}

func eventsRegisterBody(host, mode, startedAt string) string {
	return fmt.Sprintf(`{"startedAt": %q, "host": %q, "measurement": {"fields": {"clients": 2, "hatchRate": 1, "requests": 10}, "tags": {"mode": %q}}}`,
		startedAt, host, mode)
}

func eventsCommitBody(id string) string {
	return fmt.Sprintf(`{"uuid": %q, "host": "h", "measurement": {"fields": {"requestStats": {"stats": []}}}}`, id)
}

func (s *testServer) eventsRunning(t *testing.T) map[string]bool {
	t.Helper()
	var m map[string]bool
	s.do("GET", "/apiv0.1/events/isrunning", nil).wantStatus(t, http.StatusOK).decode(t, &m)
	return m
}

func (s *testServer) eventsCount(t *testing.T, id, kind string) int {
	t.Helper()
	var n int
	err := s.Pool.QueryRow(context.Background(), "SELECT count(*) FROM events WHERE uuid = $1 AND kind = $2", id, kind).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEventsSeedExamples(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	id := s.eventsRegister(t, eventsSeedRegister)

	if m := s.eventsRunning(t); len(m) != 1 || !m["loadgen-doc-"+id] {
		t.Fatalf("isrunning = %v, want {loadgen-doc-%s: true}", m, id)
	}

	var commit struct {
		UUID string `json:"uuid"`
		Data struct {
			Description string `json:"description"`
		} `json:"data"`
	}
	s.do("POST", "/apiv0.1/events/commit", fmt.Sprintf(eventsSeedCommit, id)).wantStatus(t, http.StatusOK).decode(t, &commit)
	if commit.UUID != id || !strings.Contains(commit.Data.Description, id) {
		t.Fatalf("commit answered %+v", commit)
	}
	if m := s.eventsRunning(t); len(m) != 0 {
		t.Fatalf("isrunning after commit = %v, want {}", m)
	}

	var run EventRunDetail
	s.do("GET", "/apiv0.1/events/"+id, nil).wantStatus(t, http.StatusOK).decode(t, &run)
	start := time.Date(2025, 11, 22, 10, 0, 0, 0, time.UTC)
	end := start.Add(5 * time.Minute)
	if run.UUID != id || run.Host != "loadgen-doc" || eventsDeref(run.TargetHost) != "http://10.10.10.1" ||
		eventsDeref(run.Mode) != "cluster" || *run.Clients != 10 || *run.HatchRate != 0.1 || *run.Requests != 1000 ||
		run.State != "committed" || !run.StartedAt.Equal(start) || !run.EndedAt.Equal(end) || *run.Duration != 300 {
		t.Fatalf("run = %+v", run.EventRun)
	}
	if !run.Register.Time.Equal(start) || run.Register.Host != "loadgen-doc" || run.Commit == nil || !run.Commit.Time.Equal(end) {
		t.Fatalf("events = %+v / %+v", run.Register, run.Commit)
	}
	assertEventJSON(t, "register payload", run.Register.Payload, eventsSeedRegister)
	assertEventJSON(t, "commit payload", run.Commit.Payload, fmt.Sprintf(eventsSeedCommit, id))
	assertEventJSON(t, "requestStats", run.RequestStats, `{"stats": [{"method": "GET", "name": "/a", "num_requests": 7}]}`)
}

func TestEventsLocustClient(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	id := s.eventsRegister(t, eventsLocustRegister)
	if m := s.eventsRunning(t); !m["loadgen-1-"+id] {
		t.Fatalf("isrunning = %v", m)
	}
	s.do("POST", "/apiv0.1/events/commit", fmt.Sprintf(eventsLocustCommit, id)).wantStatus(t, http.StatusOK)

	var run EventRunDetail
	s.do("GET", "/apiv0.1/events/"+id, nil).wantStatus(t, http.StatusOK).decode(t, &run)
	if run.Host != "loadgen-1" || eventsDeref(run.TargetHost) != "http://10.0.0.5:8089" || eventsDeref(run.Mode) != "single" ||
		*run.Clients != 1 || *run.HatchRate != 1 || run.Requests != nil || run.State != "committed" ||
		run.StartedAt.Unix() != 1763805600 || run.EndedAt.Unix() != 1763805660 || *run.Duration != 60 {
		t.Fatalf("run = %+v", run.EventRun)
	}
	// Everything the client sent is kept, extras included.
	assertEventJSON(t, "register payload", run.Register.Payload, eventsLocustRegister)
	assertEventJSON(t, "commit payload", run.Commit.Payload, fmt.Sprintf(eventsLocustCommit, id))

	// The analysts' view: one row per stats[] item, numbers as columns.
	rows, err := s.Pool.Query(context.Background(), `
		SELECT position, coalesce(method, ''), name, is_total, host, target_host, mode,
		       num_requests, num_failures, avg_response_time, max_response_time, current_rps, avg_content_length, ninetieth_response_time
		FROM event_request_stats WHERE uuid = $1 ORDER BY position`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var pos int
		var method, name, host, target, mode string
		var total bool
		var numReq, numFail *int64
		var avg, maxRT, rps, length, p90 *float64
		if err := rows.Scan(&pos, &method, &name, &total, &host, &target, &mode, &numReq, &numFail, &avg, &maxRT, &rps, &length, &p90); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d %s %s %v %s %s %s %s %s %s %s %s %s %s", pos, method, name, total, host, target, mode,
			eventsStr(numReq), eventsStr(numFail), eventsStr(avg), eventsStr(maxRT), eventsStr(rps), eventsStr(length), eventsStr(p90)))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"1 GET / false loadgen-1 http://10.0.0.5:8089 single 120 2 35.2 210 11.5 5120 <nil>",
		"2  Total true loadgen-1 http://10.0.0.5:8089 single <nil> <nil> <nil> <nil> <nil> <nil> <nil>",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("event_request_stats =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func eventsStr[T any](p *T) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprint(*p)
}

func eventsDeref(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func assertEventJSON(t *testing.T, what string, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v in %s", what, err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gj, _ := json.Marshal(g)
	wj, _ := json.Marshal(w)
	if string(gj) != string(wj) {
		t.Fatalf("%s =\n%s\nwant\n%s", what, gj, wj)
	}
}

// Bodies the register accepts, with what the run records.
func TestEventsRegisterVariants(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	before := time.Now().Add(-time.Minute)
	cases := []struct {
		name, body                string
		host, target, mode, start string // start "" = the time of receipt
	}{
		{"document", eventsSeedRegister, "loadgen-doc", "http://10.10.10.1", "cluster", "2025-11-22T10:00:00Z"},
		{"locust", eventsLocustRegister, "loadgen-1", "http://10.0.0.5:8089", "single", "2025-11-22T10:00:00Z"},
		{"no startedAt", `{"host": "a", "measurement": {"fields": {}}}`, "a", "<nil>", "<nil>", ""},
		{"null startedAt and targetHost", `{"startedAt": null, "hostname": "b", "targetHost": null, "measurement": {"fields": {"requests": null}}}`, "b", "<nil>", "<nil>", ""},
		{"offset and fraction", `{"startedAt": "2025-11-22T12:00:00.25+02:00", "host": "c", "measurement": {"fields": {}}}`, "c", "<nil>", "<nil>", "2025-11-22T10:00:00.25Z"},
		{"fractional epoch", `{"startedAt": 1763805600.5, "host": "d", "measurement": {"fields": {}}}`, "d", "<nil>", "<nil>", "2025-11-22T10:00:00.5Z"},
		{"host wins over hostname", `{"host": "e", "hostname": "other", "measurement": {"fields": {}}}`, "e", "<nil>", "<nil>", ""},
		{"blank host, hostname given", `{"host": "", "hostname": "f", "measurement": {"fields": {}}}`, "f", "<nil>", "<nil>", ""},
		{"measurement tags win", `{"host": "g", "targetHost": "top", "tags": {"mode": "single", "hostname": "tag"}, "measurement": {"fields": {}, "tags": {"targetHost": "inner", "mode": "cluster"}}}`, "g", "inner", "cluster", ""},
		{"target from tags.hostname", `{"host": "h", "tags": {"hostname": "tag"}, "measurement": {"fields": {}}}`, "h", "tag", "<nil>", ""},
		{"unknown extras everywhere", `{"host": "i", "x": [1], "tags": {"y": 1}, "measurement": {"z": {}, "fields": {"clients": 0, "w": "v"}, "tags": {"v": true}}}`, "i", "<nil>", "<nil>", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := s.eventsRegister(t, c.body)
			var run EventRunDetail
			s.do("GET", "/apiv0.1/events/"+id, nil).wantStatus(t, http.StatusOK).decode(t, &run)
			if run.Host != c.host || eventsDeref(run.TargetHost) != c.target || eventsDeref(run.Mode) != c.mode || run.State != "running" {
				t.Fatalf("run = host %s target %s mode %s state %s", run.Host, eventsDeref(run.TargetHost), eventsDeref(run.Mode), run.State)
			}
			if c.start == "" {
				if run.StartedAt.Before(before) || run.StartedAt.After(time.Now().Add(time.Minute)) {
					t.Fatalf("startedAt %v is not the time of receipt", run.StartedAt)
				}
			} else if want, _ := time.Parse(time.RFC3339Nano, c.start); !run.StartedAt.Equal(want) {
				t.Fatalf("startedAt = %v, want %v", run.StartedAt, want)
			}
			if run.Commit != nil || run.RequestStats != nil || run.EndedAt != nil || run.Duration != nil {
				t.Fatalf("a running run has commit data: %+v", run)
			}
			assertEventJSON(t, "payload", run.Register.Payload, c.body)
		})
	}
}

func TestEventsRegisterValidation(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	// body builds a register body from a valid one with one part replaced.
	body := func(top, fields, tags string) string {
		if top == "" {
			top = `"host": "h", "startedAt": 1763805600`
		}
		if fields == "" {
			fields = `"clients": 1, "hatchRate": 1, "requests": 5`
		}
		if tags == "" {
			tags = `"mode": "single"`
		}
		return fmt.Sprintf(`{%s, "measurement": {"fields": {%s}, "tags": {%s}}}`, top, fields, tags)
	}
	cases := []struct {
		name, body, location, title string
	}{
		{"missing measurement", `{"host": "h"}`, "body.measurement", "required"},
		{"null measurement", `{"host": "h", "measurement": null}`, "body.measurement", "type"},
		{"missing fields", `{"host": "h", "measurement": {}}`, "body.measurement.fields", "required"},
		{"fields not an object", `{"host": "h", "measurement": {"fields": [1]}}`, "body.measurement.fields", "type"},
		{"negative clients", body("", `"clients": -1`, ""), "body.measurement.fields.clients", "min"},
		{"fractional clients", body("", `"clients": 1.5`, ""), "body.measurement.fields.clients", "type"},
		{"string clients", body("", `"clients": "3"`, ""), "body.measurement.fields.clients", "type"},
		{"huge clients", body("", `"clients": 99999999999`, ""), "body.measurement.fields.clients", "max"},
		{"clients with an exponent", body("", `"clients": 1e2`, ""), "body.measurement.fields.clients", "type"},
		{"negative requests", body("", `"requests": -1`, ""), "body.measurement.fields.requests", "min"},
		{"negative hatchRate", body("", `"hatchRate": -0.5`, ""), "body.measurement.fields.hatchRate", "min"},
		{"string hatchRate", body("", `"hatchRate": "fast"`, ""), "body.measurement.fields.hatchRate", "type"},
		{"bad mode", body("", "", `"mode": "solo"`), "body.measurement.tags.mode", "oneof"},
		{"empty mode", body("", "", `"mode": ""`), "body.measurement.tags.mode", "oneof"},
		{"bad mode in client tags", body(`"host": "h", "tags": {"mode": "solo"}`, "", ""), "body.tags.mode", "oneof"},
		{"no host", body(`"startedAt": 1`, "", ""), "body.host", "required"},
		{"null host", body(`"host": null`, "", ""), "body.host", "required"},
		{"empty host", body(`"host": ""`, "", ""), "body.host", "required"},
		{"blank hostname", body(`"hostname": "  "`, "", ""), "body.host", "required"},
		{"long host", body(`"host": "`+strings.Repeat("h", 256)+`"`, "", ""), "body.host", "max"},
		{"number host", body(`"host": 5`, "", ""), "body.host", "type"},
		{"number hostname", body(`"hostname": 5`, "", ""), "body.hostname", "type"},
		{"number targetHost", body(`"host": "h", "targetHost": 5`, "", ""), "body.targetHost", "type"},
		{"tags not an object", body(`"host": "h", "tags": "x"`, "", ""), "body.tags", "type"},
		{"startedAt not a date", body(`"host": "h", "startedAt": "yesterday"`, "", ""), "body.startedAt", "format"},
		{"startedAt date only", body(`"host": "h", "startedAt": "2025-11-22"`, "", ""), "body.startedAt", "format"},
		{"startedAt boolean", body(`"host": "h", "startedAt": true`, "", ""), "body.startedAt", "type"},
		{"startedAt object", body(`"host": "h", "startedAt": {}`, "", ""), "body.startedAt", "type"},
		{"startedAt negative", body(`"host": "h", "startedAt": -1`, "", ""), "body.startedAt", "min"},
		{"startedAt in milliseconds", body(`"host": "h", "startedAt": 1763805600000`, "", ""), "body.startedAt", "max"},
		// A string within the numbers' range: past year 9999 in UTC a time
		// cannot be answered in JSON (it broke every list holding it).
		{"startedAt past 9999 in UTC", body(`"host": "h", "startedAt": "9999-12-31T23:59:59-01:00"`, "", ""), "body.startedAt", "max"},
		{"startedAt before 1970", body(`"host": "h", "startedAt": "1969-12-31T23:59:59Z"`, "", ""), "body.startedAt", "min"},
		{"startedAt before year 0 in UTC", body(`"host": "h", "startedAt": "0000-01-01T00:00:00+01:00"`, "", ""), "body.startedAt", "min"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := s.do("POST", "/apiv0.1/events/register", c.body).problem(t, http.StatusUnprocessableEntity)
			if !p.hasError(c.location, c.title) || len(p.Errors) != 1 {
				t.Fatalf("errors %+v: want exactly %s/%s", p.Errors, c.location, c.title)
			}
			e := p.Errors[0]
			if want := c.location[strings.LastIndex(c.location, ".")+1:]; e.Source != want || e.Status != 422 || e.Detail == "" {
				t.Fatalf("error item %+v: want source %s, status 422, a detail", e, want)
			}
		})
	}
	if m := s.eventsRunning(t); len(m) != 0 {
		t.Fatalf("refused registers were stored: %v", m)
	}

	// Schema failures and hand-made checks are reported together.
	p := s.do("POST", "/apiv0.1/events/register",
		`{"startedAt": "soon", "measurement": {"fields": {"clients": -1, "hatchRate": "x"}, "tags": {"mode": "solo"}}}`).
		problem(t, http.StatusUnprocessableEntity)
	for _, want := range [][2]string{
		{"body.measurement.fields.clients", "min"}, {"body.measurement.fields.hatchRate", "type"},
		{"body.measurement.tags.mode", "oneof"}, {"body.startedAt", "format"}, {"body.host", "required"},
	} {
		if !p.hasError(want[0], want[1]) {
			t.Fatalf("errors %+v lack %s/%s", p.Errors, want[0], want[1])
		}
	}
	if len(p.Errors) != 5 {
		t.Fatalf("want 5 errors, got %+v", p.Errors)
	}
}

// TestEventsBodyLimit: register and commit take bodies up to
// EVENTS_MAX_BODY_BYTES (a 413 beyond, before anything is parsed or
// stored), below MAX_BODY_BYTES, which the batches keep.
func TestEventsBodyLimit(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.EventsMaxBodyBytes = 4000 })
	pad := func(n int) string {
		return `{"host": "h", "measurement": {"fields": {}}, "pad": "` + strings.Repeat("x", n) + `"}`
	}
	fits := pad(4000 - len(pad(0)))
	var reg struct{ UUID string }
	s.do("POST", "/apiv0.1/events/register", fits).wantStatus(t, http.StatusOK).decode(t, &reg)
	runs := func() int {
		var n int
		if err := s.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM event_runs) + (SELECT count(*) FROM events)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := runs()
	for _, path := range []string{"/apiv0.1/events/register", "/apiv0.1/events/commit"} {
		p := s.do("POST", path, fits+" ").problem(t, http.StatusRequestEntityTooLarge)
		if p.Detail != "request body is too large: at most 4000 bytes" {
			t.Fatalf("%s: detail %q", path, p.Detail)
		}
	}
	if runs() != before {
		t.Fatal("a refused body was stored")
	}
	commit := `{"uuid": "` + reg.UUID + `", "measurement": {"fields": {"requestStats": {"pad": "` + strings.Repeat("x", 3000) + `"}}}}`
	s.do("POST", "/apiv0.1/events/commit", commit).wantStatus(t, http.StatusOK)
	// The batches keep MAX_BODY_BYTES.
	flows := `[{"src_app":"` + strings.Repeat("a", 200) + `","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":1}` +
		strings.Repeat(`,{"src_app":"`+strings.Repeat("a", 200)+`","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":1}`, 30) + `]`
	if len(flows) <= 4000 {
		t.Fatalf("the flows body has %d bytes, want more than the events' limit", len(flows))
	}
	s.do("POST", "/flows", flows).wantStatus(t, http.StatusCreated)
}

func TestEventsBadBodies(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.MaxBodyBytes = 4000 })
	for _, path := range []string{"/apiv0.1/events/register", "/apiv0.1/events/commit"} {
		cases := []struct {
			name, body string
			status     int
		}{
			{"malformed JSON", `{"host": "h", "measurement": {`, http.StatusBadRequest},
			{"not JSON", `hello`, http.StatusBadRequest},
			{"array", `[{"host": "h"}]`, http.StatusBadRequest},
			{"string", `"register me"`, http.StatusBadRequest},
			{"too large", `{"host": "h", "pad": "` + strings.Repeat("x", 4000) + `"}`, http.StatusRequestEntityTooLarge},
		}
		for _, c := range cases {
			t.Run(path+" "+c.name, func(t *testing.T) {
				p := s.do("POST", path, c.body).problem(t, c.status)
				if c.status == http.StatusBadRequest {
					// Only the body's error (not JSON, or not an object): no
					// field errors about an empty body.
					if len(p.Errors) != 1 || (p.Errors[0].Title != "json" && p.Errors[0].Title != "type") {
						t.Fatalf("errors = %+v", p.Errors)
					}
				}
			})
		}
		t.Run(path+" no body", func(t *testing.T) {
			s.do("POST", path, nil).problem(t, http.StatusBadRequest)
		})
		t.Run(path+" wrong content type", func(t *testing.T) {
			s.do("POST", path, eventsSeedRegister, "Content-Type", "text/plain").problem(t, http.StatusUnsupportedMediaType)
		})
	}

	// PostgreSQL's jsonb cannot hold \u0000: a 422, not a 500.
	body := `{"host": "h", "note": "a\u0000b", "measurement": {"fields": {}}}`
	p := s.do("POST", "/apiv0.1/events/register", body).problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || p.Errors[0].Title != "unicode" {
		t.Fatalf("errors = %+v", p.Errors)
	}
	id := s.eventsRegister(t, eventsSeedRegister)
	p = s.do("POST", "/apiv0.1/events/commit", fmt.Sprintf(`{"uuid": %q, "measurement": {"fields": {"requestStats": {"e": "\u0000"}}}}`, id)).
		problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || p.Errors[0].Title != "unicode" {
		t.Fatalf("errors = %+v", p.Errors)
	}
	// Nothing of it was stored: the run is still running and commits fine.
	s.do("POST", "/apiv0.1/events/commit", eventsCommitBody(id)).wantStatus(t, http.StatusOK)
}

func TestEventsCommitStatuses(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	id := s.eventsRegister(t, eventsRegisterBody("h1", "single", "2025-11-22T10:00:00Z"))

	// Unknown run: 404, nothing stored.
	unknown := "7d444840-9dc0-11d1-b245-5ffdce74fad2"
	p := s.do("POST", "/apiv0.1/events/commit", eventsCommitBody(unknown)).problem(t, http.StatusNotFound)
	if !strings.Contains(p.Detail, unknown) {
		t.Fatalf("detail %q does not name the uuid", p.Detail)
	}

	// First commit: 200; second: 409, and it stores nothing.
	s.do("POST", "/apiv0.1/events/commit", eventsCommitBody(id)).wantStatus(t, http.StatusOK)
	p = s.do("POST", "/apiv0.1/events/commit", fmt.Sprintf(eventsLocustCommit, id)).problem(t, http.StatusConflict)
	if !strings.Contains(p.Detail, "already committed") {
		t.Fatalf("detail = %q", p.Detail)
	}
	if n := s.eventsCount(t, id, "commit"); n != 1 {
		t.Fatalf("%d commit events, want 1", n)
	}
	var run EventRunDetail
	s.do("GET", "/apiv0.1/events/"+id, nil).decode(t, &run)
	assertEventJSON(t, "requestStats after a refused second commit", run.RequestStats, `{"stats": []}`)

	// A commit's uuid in the other spellings huma's uuid format admits.
	for _, spelling := range []func(string) string{
		func(u string) string { return "urn:uuid:" + u },
		func(u string) string { return "{" + strings.ToUpper(u) + "}" },
		func(u string) string { return strings.ReplaceAll(u, "-", "") },
	} {
		other := s.eventsRegister(t, eventsRegisterBody("h2", "single", "2025-11-22T11:00:00Z"))
		s.do("POST", "/apiv0.1/events/commit", eventsCommitBody(spelling(other))).wantStatus(t, http.StatusOK)
	}
}

func TestEventsCommitValidation(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	id := s.eventsRegister(t, eventsRegisterBody("h", "single", "2025-11-22T10:00:00Z"))
	body := func(top, fields string) string {
		if top == "" {
			top = fmt.Sprintf(`"uuid": %q`, id)
		}
		if fields == "" {
			fields = `"requestStats": {}`
		}
		return fmt.Sprintf(`{%s, "measurement": {"fields": {%s}}}`, top, fields)
	}
	cases := []struct {
		name, body, location, title string
	}{
		{"missing uuid", body(`"host": "h"`, ""), "body.uuid", "required"},
		{"malformed uuid", body(`"uuid": "xkjpw-ajta-jwt"`, ""), "body.uuid", "format"},
		{"number uuid", body(`"uuid": 7`, ""), "body.uuid", "type"},
		{"missing measurement", fmt.Sprintf(`{"uuid": %q}`, id), "body.measurement", "required"},
		{"missing fields", fmt.Sprintf(`{"uuid": %q, "measurement": {}}`, id), "body.measurement.fields", "required"},
		{"missing requestStats", body("", `"other": 1`), "body.measurement.fields.requestStats", "required"},
		{"null requestStats", body("", `"requestStats": null`), "body.measurement.fields.requestStats", "type"},
		{"array requestStats", body("", `"requestStats": [1]`), "body.measurement.fields.requestStats", "type"},
		{"string requestStats", body("", `"requestStats": "ok"`), "body.measurement.fields.requestStats", "type"},
		{"bad mode", fmt.Sprintf(`{"uuid": %q, "measurement": {"fields": {"requestStats": {}}, "tags": {"mode": "x"}}}`, id), "body.measurement.tags.mode", "oneof"},
		{"negative user_count", body(fmt.Sprintf(`"uuid": %q, "user_count": -1`, id), ""), "body.user_count", "min"},
		{"long host", body(fmt.Sprintf(`"uuid": %q, "host": %q`, id, strings.Repeat("h", 256)), ""), "body.host", "max"},
		{"startedAt not a date", body(fmt.Sprintf(`"uuid": %q, "startedAt": "later"`, id), ""), "body.startedAt", "format"},
		{"startedAt array", body(fmt.Sprintf(`"uuid": %q, "startedAt": [1]`, id), ""), "body.startedAt", "type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := s.do("POST", "/apiv0.1/events/commit", c.body).problem(t, http.StatusUnprocessableEntity)
			if !p.hasError(c.location, c.title) || len(p.Errors) != 1 {
				t.Fatalf("errors %+v: want exactly %s/%s", p.Errors, c.location, c.title)
			}
			e := p.Errors[0]
			if want := c.location[strings.LastIndex(c.location, ".")+1:]; e.Source != want || e.Status != 422 || e.Detail == "" {
				t.Fatalf("error item %+v: want source %s, status 422, a detail", e, want)
			}
		})
	}
	// None of them committed the run; a host is optional on commit.
	if m := s.eventsRunning(t); !m["h-"+id] {
		t.Fatalf("a refused commit closed the run: %v", m)
	}
	s.do("POST", "/apiv0.1/events/commit", body("", "")).wantStatus(t, http.StatusOK)
	var run EventRunDetail
	s.do("GET", "/apiv0.1/events/"+id, nil).decode(t, &run)
	if run.Commit == nil || run.Commit.Host != "h" {
		t.Fatalf("commit without host: %+v", run.Commit)
	}
}

// Of concurrent commits of one run exactly one succeeds; the rest are 409s
// and store nothing.
func TestEventsConcurrentCommits(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	const runs, clients = 5, 8
	for r := 0; r < runs; r++ {
		id := s.eventsRegister(t, eventsRegisterBody("h", "cluster", "2025-11-22T10:00:00Z"))
		statuses := make(chan int, clients)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				<-start
				body := fmt.Sprintf(`{"uuid": %q, "host": "client-%d", "measurement": {"fields": {"requestStats": {"client": %d}}}}`, id, c, c)
				statuses <- s.do("POST", "/apiv0.1/events/commit", body).Status
			}(c)
		}
		close(start)
		wg.Wait()
		close(statuses)
		counts := map[int]int{}
		for st := range statuses {
			counts[st]++
		}
		if counts[http.StatusOK] != 1 || counts[http.StatusConflict] != clients-1 {
			t.Fatalf("run %d: statuses %v, want one 200 and %d 409", r, counts, clients-1)
		}
		if n := s.eventsCount(t, id, "commit"); n != 1 {
			t.Fatalf("run %d: %d commit events", r, n)
		}
		// The stored commit is the winner's, whole.
		var run EventRunDetail
		s.do("GET", "/apiv0.1/events/"+id, nil).decode(t, &run)
		var stats struct{ Client int }
		if err := json.Unmarshal(run.RequestStats, &stats); err != nil || run.Commit.Host != fmt.Sprintf("client-%d", stats.Client) {
			t.Fatalf("run %d: commit host %s with requestStats %s", r, run.Commit.Host, run.RequestStats)
		}
	}
}

func TestEventsGet(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	s.eventsRegister(t, eventsSeedRegister)
	for _, id := range []string{
		"7d444840-9dc0-11d1-b245-5ffdce74fad2", // well formed, unknown
		"nope", "1234", "7d444840-9dc0-11d1-b245-5ffdce74fad", "zd444840-9dc0-11d1-b245-5ffdce74fad2",
		strings.Repeat("9", 300),
	} {
		t.Run(id[:min(len(id), 20)], func(t *testing.T) {
			s.do("GET", "/apiv0.1/events/"+id, nil).problem(t, http.StatusNotFound)
		})
	}
	// The POST-only paths under /events answer 405 to GET, as the router does elsewhere.
	// Every other method's 405 names the same single method: GET reaches
	// the {uuid} route there, but is not allowed (an Allow of "GET, HEAD,
	// POST" sent clients to a 405).
	for _, path := range []string{"/apiv0.1/events/register", "/apiv0.1/events/commit"} {
		for _, method := range []string{"GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"} {
			r := s.do(method, path, nil)
			if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "POST" {
				t.Fatalf("%s %s = %d, Allow %q; want 405, Allow POST", method, path, r.Status, r.Header.Get("Allow"))
			}
			if method != "HEAD" {
				if p := r.problem(t, http.StatusMethodNotAllowed); !strings.HasSuffix(p.Detail, "allowed: POST") {
					t.Fatalf("%s %s: detail %q", method, path, p.Detail)
				}
			}
		}
	}
	r := s.do("POST", "/apiv0.1/events/isrunning", "{}")
	r.problem(t, http.StatusMethodNotAllowed)
	if !strings.Contains(r.Header.Get("Allow"), "GET") {
		t.Fatalf("Allow = %q", r.Header.Get("Allow"))
	}
	s.do("GET", "/apiv0.1/events/isrunning", nil, "Accept", "text/html").problem(t, http.StatusNotAcceptable)
}

func TestEventsPing(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	r := s.do("GET", "/apiv0.1/ping", nil).wantStatus(t, http.StatusOK)
	if strings.TrimSpace(string(r.Body)) != `{"res":"PONG!"}` {
		t.Fatalf("ping = %s", r.Body)
	}
}

func TestEventsIsRunning(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	if m := s.eventsRunning(t); m == nil || len(m) != 0 {
		t.Fatalf("fresh isrunning = %v, want {}", m)
	}
	a := s.eventsRegister(t, eventsRegisterBody("gen-a", "single", "2025-11-22T10:00:00Z"))
	b := s.eventsRegister(t, eventsLocustRegister)
	c := s.eventsRegister(t, eventsRegisterBody("gen-a", "cluster", "2025-11-22T11:00:00Z"))
	s.do("POST", "/apiv0.1/events/commit", eventsCommitBody(b)).wantStatus(t, http.StatusOK)
	m := s.eventsRunning(t)
	if len(m) != 2 || !m["gen-a-"+a] || !m["gen-a-"+c] {
		t.Fatalf("isrunning = %v", m)
	}
}

func TestEventsStates(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	// 12 runs an hour apart from 10:00, on two hosts and two modes; every
	// third is committed.
	base := time.Date(2025, 11, 22, 10, 0, 0, 0, time.UTC)
	ids := make([]string, 12)
	for i := range ids {
		host, mode := "gen-a", "single"
		if i%2 == 1 {
			host = "gen-b"
		}
		if i >= 6 {
			mode = "cluster"
		}
		ids[i] = s.eventsRegister(t, eventsRegisterBody(host, mode, base.Add(time.Duration(i)*time.Hour).Format(time.RFC3339)))
		if i%3 == 0 {
			s.do("POST", "/apiv0.1/events/commit", fmt.Sprintf(`{"uuid": %q, "startedAt": %q, "measurement": {"fields": {"requestStats": {}}}}`,
				ids[i], base.Add(time.Duration(i)*time.Hour+90*time.Second).Format(time.RFC3339))).wantStatus(t, http.StatusOK)
		}
	}
	list := func(query string) (Page[EventRun], response) {
		t.Helper()
		var p Page[EventRun]
		r := s.do("GET", "/apiv0.1/states?"+query, nil).wantStatus(t, http.StatusOK)
		r.decode(t, &p)
		return p, r
	}
	// uuids of the runs with these indexes, newest first.
	want := func(idx ...int) []string {
		var out []string
		for i := len(ids) - 1; i >= 0; i-- {
			for _, j := range idx {
				if i == j {
					out = append(out, ids[i])
				}
			}
		}
		return out
	}
	uuids := func(p Page[EventRun]) []string {
		var out []string
		for _, r := range p.Items {
			out = append(out, r.UUID)
		}
		return out
	}

	all, _ := list("")
	if all.Total != 12 || all.Page != 1 || all.Size != 50 || fmt.Sprint(uuids(all)) != fmt.Sprint(want(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)) {
		t.Fatalf("all = %+v", all)
	}
	first := all.Items[len(all.Items)-1] // run 0: committed after 90 s
	if first.State != "committed" || *first.Duration != 90 || first.EndedAt == nil || first.Host != "gen-a" || *first.Clients != 2 {
		t.Fatalf("run 0 = %+v", first)
	}
	if r := all.Items[0]; r.State != "running" || r.EndedAt != nil || r.Duration != nil {
		t.Fatalf("run 11 = %+v", r)
	}

	cases := []struct {
		query string
		idx   []int
	}{
		{"state=committed", []int{0, 3, 6, 9}},
		{"state=running", []int{1, 2, 4, 5, 7, 8, 10, 11}},
		{"host=gen-b", []int{1, 3, 5, 7, 9, 11}},
		{"host=nobody", nil},
		{"mode=cluster", []int{6, 7, 8, 9, 10, 11}},
		{"mode=single&host=gen-a&state=committed", []int{0}},
		{"from=2025-11-22T15:00:00Z", []int{5, 6, 7, 8, 9, 10, 11}},
		{"to=2025-11-22T12:00:00Z", []int{0, 1}},
		{"from=2025-11-22T12:00:00%2B01:00&to=2025-11-22T14:00:00Z", []int{1, 2, 3}},
		// Bounds between two microseconds (times are stored to the
		// microsecond): [from, to) still holds.
		{"from=2025-11-22T10:00:00.0000001Z&to=2025-11-22T11:00:00.0000001Z", []int{1}},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			p, _ := list(c.query)
			if p.Total != int64(len(c.idx)) || fmt.Sprint(uuids(p)) != fmt.Sprint(want(c.idx...)) {
				t.Fatalf("%s: total %d items %v, want %v", c.query, p.Total, uuids(p), want(c.idx...))
			}
		})
	}

	// Pages of 5: no overlap, no gap, Link header with the filters kept.
	var paged []string
	for page := 1; page <= 3; page++ {
		p, r := list(fmt.Sprintf("size=5&page=%d&mode=single", page))
		if p.Total != 6 || p.Page != int64(page) || p.Size != 5 {
			t.Fatalf("page %d: %+v", page, p)
		}
		paged = append(paged, uuids(p)...)
		link := r.Header.Get("Link")
		if !strings.Contains(link, "mode=single") || !strings.Contains(link, `rel="first"`) {
			t.Fatalf("page %d Link = %q", page, link)
		}
		if page == 3 && len(p.Items) != 0 {
			t.Fatalf("past the end: %+v", p)
		}
	}
	if fmt.Sprint(paged) != fmt.Sprint(want(0, 1, 2, 3, 4, 5)) {
		t.Fatalf("pages = %v", paged)
	}
}

// A run's duration is exact over the whole range of startedAt (a
// time.Duration stops at 292 years).
func TestEventsLongRunDuration(t *testing.T) {
	t.Parallel()
	// MAX_TIME_AHEAD off: the run ends in 2470, the range's far side.
	s := newTestServer(t, func(c *config.Config) { c.MaxTimeAhead = 0 })
	id := s.eventsRegister(t, eventsRegisterBody("long", "single", "1970-01-01T00:00:00Z"))
	s.do("POST", "/apiv0.1/events/commit", fmt.Sprintf(`{"uuid": %q, "startedAt": "2470-01-01T00:00:00.5Z", "measurement": {"fields": {"requestStats": {}}}}`,
		id)).wantStatus(t, http.StatusOK)
	var run EventRunDetail
	s.do("GET", "/apiv0.1/events/"+id, nil).wantStatus(t, http.StatusOK).decode(t, &run)
	want := float64(time.Date(2470, 1, 1, 0, 0, 0, 0, time.UTC).Unix()) + 0.5
	if run.Duration == nil || *run.Duration != want {
		t.Fatalf("duration %v, want %v", run.Duration, want)
	}
}

// TestEventsStartedAtFinerThanMicrosecond: a startedAt string with a
// fraction finer than the stored microsecond is rounded up, as the states'
// from and to are, so that the run is in from=<the time sent> and not in
// to=<the time sent>; a number of epoch seconds rounds to the nearest
// microsecond, here the same one. The string used to be cut down when
// stored (found by an audit). Rounded up past 9999-12-31T23:59:59Z is max.
func TestEventsStartedAtFinerThanMicrosecond(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	body := func(host, startedAt string) string {
		return fmt.Sprintf(`{"startedAt": %s, "host": %q, "measurement": {"fields": {"clients": 2}}}`, startedAt, host)
	}
	ids := []string{
		s.eventsRegister(t, body("string", `"2025-11-22T10:00:00.0000009Z"`)),
		s.eventsRegister(t, body("offset", `"2025-11-22T15:30:00.0000009+05:30"`)),
		s.eventsRegister(t, body("number", `1763805600.0000009`)),
		// Beyond the nanosecond, which Go's parse keeps and cuts the rest.
		s.eventsRegister(t, body("tenth", `"2025-11-22T10:00:00.0000000000001Z"`)),
		// An hour of one digit, which Go's parse (and huma's date-time
		// check) takes: the fraction is not where a two-digit hour puts it.
		s.eventsRegister(t, body("short hour", `"2025-11-22T9:00:00.0000000000001-01:00"`)),
	}
	want := time.Date(2025, 11, 22, 10, 0, 0, 1000, time.UTC)
	for _, id := range ids {
		var run EventRunDetail
		s.do("GET", "/apiv0.1/events/"+id, nil).wantStatus(t, http.StatusOK).decode(t, &run)
		if !run.StartedAt.Equal(want) {
			t.Errorf("run %s: startedAt %s, want %s", id, run.StartedAt.Format(time.RFC3339Nano), want.Format(time.RFC3339Nano))
		}
	}
	states := func(q string) map[string]bool {
		var page struct {
			Items []struct {
				UUID string `json:"uuid"`
			} `json:"items"`
		}
		s.do("GET", "/apiv0.1/states?"+q, nil).wantStatus(t, http.StatusOK).decode(t, &page)
		found := map[string]bool{}
		for _, it := range page.Items {
			found[it.UUID] = true
		}
		return found
	}
	from := states("from=2025-11-22T10:00:00.0000009Z&to=2025-11-22T10:00:01Z")
	before := states("from=2025-11-22T09:00:00Z&to=2025-11-22T10:00:00.0000009Z")
	after := states("from=2025-11-22T10:00:00.0000010000001Z&to=2025-11-22T10:00:01Z")
	through := states("from=2025-11-22T09:00:00Z&to=2025-11-22T10:00:00.0000010000001Z")
	afterShort := states("from=2025-11-22T9:00:00.0000010000001-01:00&to=2025-11-22T10:00:01Z")
	for _, id := range ids {
		if !from[id] {
			t.Errorf("run %s is not in from=<its startedAt> (inclusive)", id)
		}
		if before[id] {
			t.Errorf("run %s is in to=<its startedAt> (exclusive)", id)
		}
		if after[id] || !through[id] {
			t.Errorf("run %s at .000001: in from=.0000010000001 %v (want false), in to=.0000010000001 %v (want true)", id, after[id], through[id])
		}
		if afterShort[id] {
			t.Errorf("run %s at .000001 is in from=T9:00:00.0000010000001-01:00", id)
		}
	}
	p := s.do("POST", "/apiv0.1/events/register", body("late", `"9999-12-31T23:59:59.9999999Z"`)).problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || p.Errors[0].Title != "max" {
		t.Fatalf("a startedAt rounded up past year 9999: %+v", p.Errors)
	}
}

func TestEventsStatesValidation(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	cases := []struct {
		query, location, title string
	}{
		{"state=done", "query.state", "oneof"},
		{"mode=solo", "query.mode", "oneof"},
		{"from=yesterday", "query.from", "format"},
		{"to=2025-11-22", "query.to", "format"},
		{"from=2025-11-22T10:00:00+01:00", "query.from", "format"}, // unescaped + is a space
		{"host=" + strings.Repeat("h", 256), "query.host", "max"},
		{"page=0", "query.page", "min"},
		{"size=101", "query.size", "max"},
		{"size=x", "query.size", "type"},
	}
	for _, c := range cases {
		t.Run(c.query[:min(len(c.query), 40)], func(t *testing.T) {
			p := s.do("GET", "/apiv0.1/states?"+c.query, nil).problem(t, http.StatusUnprocessableEntity)
			if !p.hasError(c.location, c.title) || len(p.Errors) != 1 {
				t.Fatalf("errors %+v: want exactly %s/%s", p.Errors, c.location, c.title)
			}
			if e := p.Errors[0]; e.Source == "" || e.Status != 422 || e.Detail == "" {
				t.Fatalf("incomplete error item %+v", e)
			}
		})
	}
	p := s.do("GET", "/apiv0.1/states?state=x&mode=y&from=z&page=0", nil).problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 4 {
		t.Fatalf("want 4 errors, got %+v", p.Errors)
	}
}

// A commit fills in the target host and mode the register left out, and
// never overrides them.
func TestEventsCommitFillsInTags(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	bare := s.eventsRegister(t, `{"host": "h", "measurement": {"fields": {}}}`)
	tagged := s.eventsRegister(t, eventsSeedRegister)
	for _, id := range []string{bare, tagged} {
		s.do("POST", "/apiv0.1/events/commit", fmt.Sprintf(eventsLocustCommit, id)).wantStatus(t, http.StatusOK)
	}
	var run EventRunDetail
	s.do("GET", "/apiv0.1/events/"+bare, nil).decode(t, &run)
	if eventsDeref(run.TargetHost) != "http://10.0.0.5:8089" || eventsDeref(run.Mode) != "single" {
		t.Fatalf("bare run after commit: target %s mode %s", eventsDeref(run.TargetHost), eventsDeref(run.Mode))
	}
	s.do("GET", "/apiv0.1/events/"+tagged, nil).decode(t, &run)
	if eventsDeref(run.TargetHost) != "http://10.10.10.1" || eventsDeref(run.Mode) != "cluster" {
		t.Fatalf("tagged run after commit: target %s mode %s", eventsDeref(run.TargetHost), eventsDeref(run.Mode))
	}
}

// The analysts' view copes with whatever requestStats holds: it is any
// JSON object, so odd shapes give NULLs or no rows, never an error.
func TestEventsRequestStatsViewOddShapes(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	cases := []struct {
		stats string
		want  []string // name num_requests avg_response_time
	}{
		{`{}`, nil},
		{`{"stats": "none"}`, nil},
		{`{"stats": {"name": "/"}}`, nil},
		{`{"stats": [1, "x", null, []]}`, nil},
		{`{"stats": [{"name": "/a", "num_requests": 1.5, "avg_response_time": "fast"}]}`, []string{"/a <nil> <nil>"}},
		{`{"stats": [{"name": "/b", "num_requests": 12345678901234567890123, "avg_response_time": 1e-320}]}`, []string{"/b <nil> <nil>"}},
		{`{"stats": [{"name": "/c", "num_requests": 1e3, "avg_response_time": -2.5}, {"name": "Aggregated"}]}`, []string{"/c 1000 -2.5", "Aggregated <nil> <nil>"}},
	}
	for _, c := range cases {
		t.Run(c.stats, func(t *testing.T) {
			id := s.eventsRegister(t, `{"host": "h", "measurement": {"fields": {}}}`)
			s.do("POST", "/apiv0.1/events/commit", fmt.Sprintf(`{"uuid": %q, "measurement": {"fields": {"requestStats": %s}}}`, id, c.stats)).
				wantStatus(t, http.StatusOK)
			rows, err := s.Pool.Query(context.Background(),
				`SELECT name, num_requests, avg_response_time FROM event_request_stats WHERE uuid = $1 ORDER BY position`, id)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var got []string
			for rows.Next() {
				var name *string
				var n *int64
				var avg *float64
				if err := rows.Scan(&name, &n, &avg); err != nil {
					t.Fatal(err)
				}
				got = append(got, fmt.Sprintf("%s %s %s", eventsStr(name), eventsStr(n), eventsStr(avg)))
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Fatalf("rows = %v, want %v", got, c.want)
			}
		})
	}
}

// TestEventsStartedAtAhead: MAX_TIME_AHEAD (default 1d) bounds the
// startedAt of a register (the run's start) and of a commit (its end), the
// times EVENTS_RETENTION counts from: a run dated further ahead of the
// server's clock would outlive every retention. Past it is a 422 max item
// with the value sent, beside the body's other failures, and nothing is
// stored; within it the run is stored. 0 takes any time up to 9999.
func TestEventsStartedAtAhead(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	tables := []string{"event_runs", "events"}
	rfc := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	epoch := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
	register := func(startedAt, clients string) string {
		return fmt.Sprintf(`{"startedAt": %s, "host": "h", "measurement": {"fields": {"clients": %s}}}`, startedAt, clients)
	}
	commit := func(id, startedAt, userCount string) string {
		return fmt.Sprintf(`{"uuid": %q, "startedAt": %s, "user_count": %s, "measurement": {"fields": {"requestStats": {}}}}`,
			id, startedAt, userCount)
	}
	// checkAhead checks the answer's startedAt item (the only one with
	// others=0) and that the limit it names is now+1d to the second.
	checkAhead := func(t *testing.T, p Problem, sent time.Time, value any, ahead string, others int) {
		t.Helper()
		var item *ProblemItem
		for i, e := range p.Errors {
			if e.Location == "body.startedAt" {
				item = p.Errors[i]
			}
		}
		if item == nil || item.Title != "max" || item.Source != "startedAt" || item.Status != 422 || item.Value != value ||
			len(p.Errors) != others+1 {
			t.Fatalf("errors %+v (value %#v): want a body.startedAt max item with value %#v (and %d others)", p.Errors, item, value, others)
		}
		prefix := "startedAt must be at most MAX_TIME_AHEAD (" + ahead + ") ahead of the server's clock: "
		at, ok := strings.CutPrefix(item.Detail, prefix)
		at, ok2 := strings.CutSuffix(at, " or earlier")
		latest, err := time.Parse(time.RFC3339, at)
		if !ok || !ok2 || err != nil || !strings.HasSuffix(at, "Z") || latest.Nanosecond() != 0 {
			t.Fatalf("detail %q: want %q<RFC 3339 UTC, seconds> or earlier", item.Detail, prefix)
		}
		if d := map[string]time.Duration{"1d": 24 * time.Hour, "36h": 36 * time.Hour}[ahead]; latest.Before(time.Now().Add(d-time.Minute)) || latest.After(time.Now().Add(d)) || !latest.Before(sent) {
			t.Fatalf("detail %q: the latest time is not now+%s (and before %s)", item.Detail, ahead, rfc(sent))
		}
	}

	now := time.Now()
	soon, late := now.Add(time.Hour), now.Add(72*time.Hour)
	// Within the limit: stored, as a string and as epoch seconds.
	id := s.eventsRegister(t, register(strconv.Quote(rfc(soon)), "1"))
	s.eventsRegister(t, register(epoch(soon), "1"))
	before := s.counts(t, tables)

	t.Run("register", func(t *testing.T) {
		p := s.do("POST", "/apiv0.1/events/register", register(strconv.Quote(rfc(late)), "1")).problem(t, http.StatusUnprocessableEntity)
		checkAhead(t, p, late, rfc(late), "1d", 0)
		p = s.do("POST", "/apiv0.1/events/register", register(epoch(late), "1")).problem(t, http.StatusUnprocessableEntity)
		checkAhead(t, p, late.Truncate(time.Second), float64(late.Unix()), "1d", 0)
		// With an offset: the limit is on the instant.
		offset := late.In(time.FixedZone("", -11*3600)).Format(time.RFC3339)
		p = s.do("POST", "/apiv0.1/events/register", register(strconv.Quote(offset), "1")).problem(t, http.StatusUnprocessableEntity)
		checkAhead(t, p, late.Truncate(time.Second), offset, "1d", 0)
		// Past 9999-12-31 too (parseStartedAt's own max item): the item
		// names the limit a client can use, not the year 9999.
		past := "9999-12-31T23:59:59-01:00"
		p = s.do("POST", "/apiv0.1/events/register", register(strconv.Quote(past), "1")).problem(t, http.StatusUnprocessableEntity)
		checkAhead(t, p, time.Date(10000, 1, 1, 0, 59, 59, 0, time.UTC), past, "1d", 0)
		// Beside the body's other failures, in one answer.
		p = s.do("POST", "/apiv0.1/events/register", register(epoch(late), "-1")).problem(t, http.StatusUnprocessableEntity)
		checkAhead(t, p, late.Truncate(time.Second), float64(late.Unix()), "1d", 1)
		if !p.hasError("body.measurement.fields.clients", "min") {
			t.Fatalf("errors %+v lack body.measurement.fields.clients/min", p.Errors)
		}
	})
	t.Run("commit", func(t *testing.T) {
		p := s.do("POST", "/apiv0.1/events/commit", commit(id, strconv.Quote(rfc(late)), "1")).problem(t, http.StatusUnprocessableEntity)
		checkAhead(t, p, late, rfc(late), "1d", 0)
		p = s.do("POST", "/apiv0.1/events/commit", commit(id, epoch(late), "-1")).problem(t, http.StatusUnprocessableEntity)
		checkAhead(t, p, late.Truncate(time.Second), float64(late.Unix()), "1d", 1)
		if !p.hasError("body.user_count", "min") {
			t.Fatalf("errors %+v lack body.user_count/min", p.Errors)
		}
	})
	if after := s.counts(t, tables); after != before {
		t.Fatalf("refused bodies stored rows: %s, then %s", before, after)
	}
	if !s.eventsRunning(t)["h-"+id] {
		t.Fatalf("run %s is no longer running after refused commits", id)
	}
	// The run ends within the limit.
	s.do("POST", "/apiv0.1/events/commit", commit(id, epoch(soon.Add(time.Minute)), "1")).wantStatus(t, http.StatusOK)

	t.Run("36h", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, func(c *config.Config) { c.MaxTimeAhead = 36 * time.Hour })
		s.eventsRegister(t, register(epoch(time.Now().Add(30*time.Hour)), "1"))
		late := time.Now().Add(40 * time.Hour)
		p := s.do("POST", "/apiv0.1/events/register", register(strconv.Quote(rfc(late)), "1")).problem(t, http.StatusUnprocessableEntity)
		checkAhead(t, p, late, rfc(late), "36h", 0)
	})
	t.Run("off", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, func(c *config.Config) { c.MaxTimeAhead = 0 })
		id := s.eventsRegister(t, register(`"9999-12-31T23:59:58Z"`, "1"))
		s.do("POST", "/apiv0.1/events/commit", commit(id, "253402300799", "1")).wantStatus(t, http.StatusOK)
	})
}
