package api

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// The events bodies (POST /apiv0.1/events/register and /commit) have no fast
// path: huma validates the generic parse against the schema, decodes the
// body (EventRegisterBody/EventCommitBody.UnmarshalJSON: json v2, names
// matched exactly, plus the checks the schema cannot make, checkBodyText's
// among them), then runs Resolve; the handler runs only when all three
// found nothing. FuzzEventBodies replays that sequence on any input and
// checks what the handlers rely on.

// eventsFuzzSpec is the server's OpenAPI document (no database needed).
var eventsFuzzSpec = sync.OnceValue(Spec)

// eventsHumaAccepts runs huma's sequence for the body of the POST at path:
// validate the generic parse, decode into v (always, as huma does, to
// collect every error), then the hand-made checks (problems). It reports
// whether the handler would run, and the generic parse.
func eventsHumaAccepts(path string, body []byte, v any, problems func() []error) (parsed any, ok bool) {
	if len(body) == 0 || json.Unmarshal(body, &parsed) != nil {
		return nil, false // 400 before decoding
	}
	oapi := eventsFuzzSpec()
	res := &huma.ValidateResult{}
	pb := huma.NewPathBuffer([]byte{}, 0)
	pb.Push("body")
	huma.Validate(oapi.Components.Schemas, oapi.Paths[path].Post.RequestBody.Content["application/json"].Schema,
		pb, huma.ModeWriteToServer, parsed, res)
	err := json.Unmarshal(body, v)
	return parsed, len(res.Errors) == 0 && err == nil && len(problems()) == 0
}

// FuzzEventBodies checks, for the register and the commit body:
//
//   - decoding never panics, whatever the input;
//   - when huma would run the handler: the body has no string that cannot
//     be stored and no repeated name (checkBodyText); the payload kept is
//     the body as received; startedAt is nil exactly when the body's
//     startedAt is absent or null, else the time it names (RFC 3339 or
//     epoch seconds, UTC, within 0..year 9999); a register has a host that
//     is not blank (registerEvent dereferences it); and every value the
//     handlers read (host, hostname, targetHost, state, tags, mode,
//     clients, hatchRate, requests, uuid, user_count, requestStats) is the
//     one the schema checked in the generic parse.
//
// The last point failed with encoding/json as the decoder (docs/decoders.md,
// "Findings"): it matched names case-insensitively and merged repeated
// objects, so {"measurement":{"fields":{"clients":1,"CLIENTS":-5}}}
// reached the handler with clients -5. json v2 matches names exactly and
// checkBodyText refuses repeated names; the seeds keep those bodies.
//
// Run it with: go test ./internal/api -run '^$' -fuzz '^FuzzEventBodies$' -fuzztime 25s
func FuzzEventBodies(f *testing.F) {
	for _, s := range []string{
		eventsExampleRegisterDocumentJSON, eventsExampleRegisterLocustJSON,
		eventsExampleCommitDocumentJSON, eventsExampleCommitLocustJSON,
		`{"host":"h","measurement":{"fields":{}}}`,
		`{"hostname":"h","startedAt":-0,"measurement":{"fields":{"clients":0,"hatchRate":0,"requests":9007199254740991}}}`,
		`{"host":"h","startedAt":253402300799.9999999,"measurement":{"fields":{}}}`,
		`{"host":"h","startedAt":1e309,"measurement":{"fields":{}}}`,
		`{"host":"h","startedAt":"2025-11-22T10:00:00+01:00","measurement":{"fields":{}}}`,
		`{"host":"h","host":" ","measurement":{"fields":{}}}`,
		`{"host":"h","HOST":" ","measurement":{"fields":{}}}`,
		`{"host":"\u0000","hostname":"\ud800","measurement":{"fields":{},"tags":{"mode":"single","MODE":"x"}}}`,
		"{\"host\":\"\xff\",\"measurement\":{\"fields\":{}}}",
		"{\"host\":\"a\x00\",\"measurement\":{\"fields\":{}}}",
		`{"host":"h","measurement":{"fields":{"clients":1}},"measurement":{"fields":{}}}`,
		`{"uuid":"0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f","user_count":9223372036854775807,"measurement":{"fields":{"requestStats":{"a":[[[[[[[[[[[[[[[[[[[[{}]]]]]]]]]]]]]]]]]]]}}}}`,
		`{"uuid":"0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f","measurement":{"fields":{"requestStats":{"x":1,"x":2}}}}`,
		`{}`, `[]`, `null`, `"x"`, ``, `{"host":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var reg EventRegisterBody
		if parsed, ok := eventsHumaAccepts(eventsPrefix+"/events/register", body, &reg, func() []error { return reg.problems }); ok {
			h := reg.host()
			if h == nil || strings.TrimSpace(*h) == "" {
				t.Fatalf("register accepted %q without a host (registerEvent dereferences it)", body)
			}
			checkEventBody(t, body, &reg.eventBody, parsed)
			m := reg.Measurement
			checkEventValues(t, body, parsed, &reg.EventCommon, m.Tags, map[string]any{
				"measurement.fields.clients":   fuzzNum(m.Fields.Clients),
				"measurement.fields.hatchRate": fuzzNum(m.Fields.HatchRate),
				"measurement.fields.requests":  fuzzNum(m.Fields.Requests),
			})
		}

		var com EventCommitBody
		if parsed, ok := eventsHumaAccepts(eventsPrefix+"/events/commit", body, &com, func() []error { return com.problems }); ok {
			checkEventBody(t, body, &com.eventBody, parsed)
			var stats any
			if len(com.Measurement.Fields.RequestStats) > 0 {
				if err := json.Unmarshal(com.Measurement.Fields.RequestStats, &stats); err != nil {
					t.Fatalf("%q: requestStats kept as %q: %v", body, com.Measurement.Fields.RequestStats, err)
				}
			}
			checkEventValues(t, body, parsed, &com.EventCommon, com.Measurement.Tags, map[string]any{
				"uuid":                            com.UUID,
				"user_count":                      fuzzNum(com.UserCount),
				"measurement.fields.requestStats": stats,
			})
		}
	})
}

// checkEventBody checks the raw payload and startedAt of an accepted body.
func checkEventBody(t *testing.T, body []byte, e *eventBody, parsed any) {
	t.Helper()
	checkNoFaults(t, body)
	if !bytes.Equal(e.raw, body) {
		t.Fatalf("%q: payload kept as %q", body, e.raw)
	}
	raw := eventsAt(parsed, "startedAt")
	if raw == nil {
		if e.startedAt != nil {
			t.Fatalf("%q: startedAt %v without one in the body", body, e.startedAt)
		}
		return
	}
	if e.startedAt == nil {
		t.Fatalf("%q: startedAt %v in the body, none decoded", body, raw)
	}
	at := *e.startedAt
	if at.Location() != time.UTC || at.Unix() < 0 || at.Unix() > eventsMaxEpochSeconds {
		t.Fatalf("%q: startedAt %v", body, at)
	}
	switch v := raw.(type) {
	case string:
		want, err := time.Parse(time.RFC3339Nano, v)
		if err != nil || !want.Equal(at) {
			t.Fatalf("%q: startedAt %v, the body says %q", body, at, v)
		}
	case float64:
		// Microseconds are kept: the time to the nearest microsecond, so
		// a fraction that rounds up to a whole second carries into the
		// seconds (0.9999997 is 1.000000).
		sec, frac := math.Modf(v)
		off := float64(at.Unix()-int64(sec)) + float64(at.Nanosecond())/1e9 - frac
		if at.Nanosecond()%1000 != 0 || math.Abs(off) > 0.5e-6+1e-9 {
			t.Fatalf("%q: startedAt %v, the body says %v", body, at, v)
		}
	default:
		t.Fatalf("%q: startedAt %v (%T) accepted", body, raw, raw)
	}
}

// checkEventValues compares what the handlers read with the generic parse
// the schema checked (exact names).
func checkEventValues(t *testing.T, body []byte, parsed any, c *EventCommon, mtags *EventTags, more map[string]any) {
	t.Helper()
	got := map[string]any{
		"host": c.Host, "hostname": c.Hostname, "targetHost": fuzzStr(c.TargetHost), "state": fuzzStr(c.State),
		"tags.targetHost": fuzzStr(tagField(c.Tags, "targetHost")), "tags.mode": fuzzStr(tagField(c.Tags, "mode")),
		"tags.hostname":               fuzzStr(tagField(c.Tags, "hostname")),
		"measurement.tags.targetHost": fuzzStr(tagField(mtags, "targetHost")),
		"measurement.tags.mode":       fuzzStr(tagField(mtags, "mode")),
		"measurement.tags.hostname":   fuzzStr(tagField(mtags, "hostname")),
	}
	for k, v := range more {
		got[k] = v
	}
	for path, g := range got {
		want := eventsAt(parsed, strings.Split(path, ".")...)
		if want == nil && (path == "host" || path == "hostname" || path == "uuid") {
			want = "" // plain strings: absent is ""
		}
		if !reflect.DeepEqual(g, want) {
			t.Fatalf("%q: %s decoded as %#v, the schema checked %#v", body, path, g, want)
		}
	}
}

func tagField(t *EventTags, name string) *string {
	switch {
	case t == nil:
		return nil
	case name == "targetHost":
		return t.TargetHost
	case name == "mode":
		return t.Mode
	}
	return t.Hostname
}

// fuzzStr and fuzzNum give a decoded field as the generic parse has it.
func fuzzStr(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func fuzzNum[T int64 | float64](p *T) any {
	if p == nil {
		return nil
	}
	return float64(*p)
}

// eventsAt is the value at path in a generic parse (exact names); nil when
// absent or null.
func eventsAt(v any, path ...string) any {
	for _, name := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[name]
	}
	return v
}
