package api

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/danielgtaylor/huma/v2"
)

// Examples for the OpenAPI document of the events API. The request bodies
// are the seed document's (filled in) and the original Locust client's, as
// the tests send them.

const eventsExampleRegisterDocumentJSON = `{
  "startedAt": "2025-11-22T10:00:00Z",
  "host": "loadgen-1",
  "measurement": {
    "fields": {"clients": 10, "hatchRate": 0.1, "requests": 1000},
    "tags": {"targetHost": "http://10.10.10.1", "mode": "single"}
  }
}`

const eventsExampleRegisterLocustJSON = `{"startedAt": 1763805600, "hostname": "loadgen-1", "targetHost": "http://10.0.0.5:8089",
 "tags": {"mode": "single", "hostname": "http://10.0.0.5:8089"},
 "measurement": {"fields": {"clients": 1, "hatchRate": 1, "requests": null}}, "state": "ready"}`

const eventsExampleCommitDocumentJSON = `{
  "startedAt": "2025-11-22T10:01:00Z",
  "uuid": "` + eventsExampleUUID + `",
  "host": "loadgen-1",
  "measurement": {
    "fields": {"requestStats": {"stats": [{"method": "GET", "name": "/", "num_requests": 120, "num_failures": 2}], "total_rps": 11.5}},
    "tags": {"hostname": "http://10.10.10.1", "mode": "single"}
  }
}`

const eventsExampleCommitLocustJSON = `{"startedAt": 1763805660, "hostname": "loadgen-1", "targetHost": "http://10.0.0.5:8089", "user_count": 1,
 "tags": {"mode": "single", "hostname": "http://10.0.0.5:8089"},
 "measurement": {"fields": {"requestStats": {"stats": [{"method": "GET", "name": "/", "num_requests": 120,
   "num_failures": 2, "avg_response_time": 35.2, "min_response_time": 4, "max_response_time": 210,
   "current_rps": 11.5, "median_response_time": 30, "avg_content_length": 5120},
   {"method": null, "name": "Total", "num_requests": 120, "num_failures": 2, "avg_response_time": 35.2,
   "min_response_time": 4, "max_response_time": 210, "current_rps": 11.5, "median_response_time": 30,
   "avg_content_length": 5120}],
   "errors": [{"method": "GET", "name": "/", "error": "ConnectionError()", "occurences": 2}],
   "total_rps": 11.5, "fail_ratio": 0.016, "state": "stopped", "user_count": 1}}},
 "uuid": "` + eventsExampleUUID + `", "state": "stopped"}`

var (
	eventsExampleRegisterDocument = eventsExampleJSON(eventsExampleRegisterDocumentJSON)
	eventsExampleRegisterLocust   = eventsExampleJSON(eventsExampleRegisterLocustJSON)
	eventsExampleCommitDocument   = eventsExampleJSON(eventsExampleCommitDocumentJSON)
	eventsExampleCommitLocust     = eventsExampleJSON(eventsExampleCommitLocustJSON)
)

func eventsExampleJSON(s string) any {
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		panic(err)
	}
	return v
}

func eventsExampleProblem(status int, detail string, items ...*ProblemItem) *Problem {
	p := &Problem{Title: http.StatusText(status), Status: status, Detail: detail, RequestID: "5f0c3a7e9b1d4c2a"}
	for _, it := range items {
		it.Status = status
		p.Errors = append(p.Errors, it)
	}
	return p
}

// addEventExamples puts named examples on the events operations' answers
// (huma documents schemas, not whole example answers).
func addEventExamples(oapi *huma.OpenAPI) {
	set := func(op *huma.Operation, status int, name, summary string, value any) {
		if op == nil {
			return
		}
		r := op.Responses[strconv.Itoa(status)]
		if r == nil {
			return
		}
		for ct, mt := range r.Content {
			if ct != "application/json" && ct != "application/problem+json" {
				continue // an export's media type: the JSON answer is not its example
			}
			if mt.Examples == nil {
				mt.Examples = map[string]*huma.Example{}
			}
			mt.Examples[name] = &huma.Example{Summary: summary, Value: value}
			mt.Example = nil // the two are mutually exclusive (OpenAPI 3.0 and 3.1)
		}
	}
	path := func(p string) *huma.PathItem {
		if item := oapi.Paths[eventsPrefix+p]; item != nil {
			return item
		}
		return &huma.PathItem{}
	}

	reg := path("/events/register").Post
	set(reg, 200, "registered", "The new run's id", map[string]any{"uuid": eventsExampleUUID, "data": map[string]any{"uuid": eventsExampleUUID}})
	set(reg, 400, "malformed", "Malformed JSON", eventsExampleProblem(400, "the body is not valid JSON: unexpected end of JSON input",
		&ProblemItem{Title: "json", Location: "body", Detail: "the body is not valid JSON: unexpected end of JSON input"}))
	set(reg, 422, "invalid", "Every failed rule at once", eventsExampleProblem(422, "validation failed",
		&ProblemItem{Title: "min", Source: "clients", Location: "body.measurement.fields.clients", Value: -1, Detail: "clients must be 0 or greater"},
		&ProblemItem{Title: "oneof", Source: "mode", Location: "body.measurement.tags.mode", Value: "solo", Detail: "mode must be one of single, cluster"},
		&ProblemItem{Title: "required", Source: "host", Location: "body.host", Detail: "host is a required field (the Locust client may send it as hostname)"}))

	commit := path("/events/commit").Post
	set(commit, 200, "committed", "The run is committed", map[string]any{"uuid": eventsExampleUUID,
		"data": map[string]any{"description": "run " + eventsExampleUUID + " committed"}})
	set(commit, 404, "unknown", "No such run", eventsExampleProblem(404, "no run with uuid "+eventsExampleUUID+": register it first"))
	set(commit, 409, "committed", "Committed before", eventsExampleProblem(409, "run "+eventsExampleUUID+" is already committed: a run is committed once"))
	set(commit, 422, "invalid", "Every failed rule at once", eventsExampleProblem(422, "validation failed",
		&ProblemItem{Title: "format", Source: "uuid", Location: "body.uuid", Value: "xkjpw-ajta-jwt", Detail: "uuid must be a UUID such as " + exampleUUID},
		&ProblemItem{Title: "required", Source: "requestStats", Location: "body.measurement.fields.requestStats", Detail: "requestStats is a required field"},
		&ProblemItem{Title: "format", Source: "startedAt", Location: "body.startedAt", Value: "yesterday", Detail: "startedAt must be an RFC 3339 date-time such as 2025-11-22T10:00:00Z, or Unix epoch seconds"}))

	set(path("/events/isrunning").Get, 200, "running", "One run running", map[string]bool{"loadgen-1-" + eventsExampleUUID: true})

	get := path("/events/{uuid}").Get
	registered := eventsExampleRegisterLocust
	committed := eventsExampleCommitLocust
	stats := committed.(map[string]any)["measurement"].(map[string]any)["fields"].(map[string]any)["requestStats"]
	set(get, 200, "committed", "A committed run (Locust client)", map[string]any{
		"uuid": eventsExampleUUID, "host": "loadgen-1", "targetHost": "http://10.0.0.5:8089", "mode": "single",
		"clients": 1, "hatchRate": 1, "requests": nil, "state": "committed",
		"startedAt": "2025-11-22T10:00:00Z", "endedAt": "2025-11-22T10:01:00Z", "duration": 60,
		"register":     map[string]any{"time": "2025-11-22T10:00:00Z", "receivedAt": "2025-11-22T10:00:00.021Z", "host": "loadgen-1", "payload": registered},
		"commit":       map[string]any{"time": "2025-11-22T10:01:00Z", "receivedAt": "2025-11-22T10:01:00.017Z", "host": "loadgen-1", "payload": committed},
		"requestStats": stats,
	})
	set(get, 404, "unknown", "No such run", eventsExampleProblem(404, "no run with uuid "+eventsExampleUUID))

	states := path("/states").Get
	set(states, 200, "page", "First page", map[string]any{"items": []any{map[string]any{
		"uuid": eventsExampleUUID, "host": "loadgen-1", "targetHost": "http://10.0.0.5:8089", "mode": "single",
		"clients": 1, "hatchRate": 1, "requests": nil, "state": "committed",
		"startedAt": "2025-11-22T10:00:00Z", "endedAt": "2025-11-22T10:01:00Z", "duration": 60,
	}}, "total": 1, "page": 1, "size": 50})
	set(states, 422, "invalid", "Bad filters", eventsExampleProblem(422, "validation failed",
		&ProblemItem{Title: "oneof", Source: "state", Location: "query.state", Value: "done", Detail: "state must be one of running, committed"},
		&ProblemItem{Title: "format", Source: "from", Location: "query.from", Value: "yesterday", Detail: "from must be an RFC 3339 date-time such as 2025-11-22T10:00:00Z (in a URL, write a + offset as %2B)"}))

	set(path("/ping").Get, 200, "pong", "PONG!", map[string]string{"res": "PONG!"})
}
