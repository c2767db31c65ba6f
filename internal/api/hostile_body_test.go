package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/telemetry/telemetry/internal/config"
)

// Hostile strings as they appear in a JSON body (quotes included), and
// what each one is answered.
var hostileStrings = []struct {
	name   string
	json   string
	status int
	title  string // the item's title; its location is the field's
}{
	{"NUL escaped", `"a\u0000b"`, http.StatusUnprocessableEntity, titleUnicode},
	{"invalid UTF-8", "\"a\xff\xfeb\"", http.StatusUnprocessableEntity, titleUnicode},
	{"lone high surrogate", `"a\ud800b"`, http.StatusUnprocessableEntity, titleUnicode},
	{"high surrogate then a letter", `"\ud800\u0041"`, http.StatusUnprocessableEntity, titleUnicode},
	{"lone low surrogate", `"\udc00"`, http.StatusUnprocessableEntity, titleUnicode},
	// A raw control character is not JSON: the body is malformed (400).
	{"NUL raw", "\"a\x00b\"", http.StatusBadRequest, ""},
}

// longString is a 70 KB string: more than any string field may hold.
var longString = `"` + strings.Repeat("x", 70_000) + `"`

// hostileEndpoint is a body endpoint and where a hostile string goes.
type hostileEndpoint struct {
	name, method, path string
	header             []string
	// body puts a string (JSON text) at each place; places lists the
	// locations of those places, as the 422's items name them.
	body   func(s string) string
	places []string
	// long and dup are a body with a 70 KB string and one with a
	// repeated name, and the item each must produce ("" when the endpoint
	// has no such case).
	long, longLoc, longTitle string
	dup, dupLoc              string
	// tables are the tables a write would change.
	tables []string
}

// TestHostileBodies sends every body endpoint strings that cannot be
// stored (NUL, invalid UTF-8, lone surrogates), repeated names and 70 KB
// strings: each is refused with a 4xx naming the field and the rule
// (every place at once), and no row of the resource changes.
func TestHostileBodies(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.EnableTokenEndpoint = true })
	s.createDevice(t, "n1")
	run := s.eventsRegister(t, eventsSeedRegister)
	auth := bearer(t)

	const flow = `{"src_app":"ok","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":1}`
	flowWith := func(app string) string {
		return `{"src_app":` + app + `,"dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":1}`
	}
	measWith := func(name, extra string) string {
		return `{"name":` + name + `,"method":"GET","startedAt":1444991539.9,"endedAt":1444991540` + extra + `}`
	}
	const meas = `{"name":"/ok","method":"GET","startedAt":1444991539.9,"endedAt":1444991540}`
	report := func(name, units, value string) string {
		return `{"name":` + name + `,"value":` + value + `,"units":` + units + `,"type":"string","slope":"both","ttl":60}`
	}

	endpoints := []hostileEndpoint{{
		name: "POST /flows", method: "POST", path: "/flows",
		body:   func(x string) string { return `[` + flow + `,` + flowWith(x) + `,` + flow + `,` + flowWith(x) + `]` },
		places: []string{"body[1].src_app", "body[3].src_app"},
		long:   `[` + flow + `,` + flowWith(longString) + `]`, longLoc: "body[1].src_app", longTitle: "max",
		dup:    `[` + flow + `,{"src_app":"a","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":1,"hour":2}]`,
		dupLoc: "body[1].hour",
		tables: []string{"flows"},
	}, {
		name: "POST /api/measurements", method: "POST", path: "/api/measurements",
		body: func(x string) string {
			return `[` + meas + `,` + measWith(x, `,"app":`+x+`,"args":[1,`+x+`],"kwargs":{"k":`+x+`},`+
				`"context":{"headers":{"h":[`+x+`]},"body":{"deep":{"deeper":`+x+`}}}`) + `]`
		},
		places: []string{"body[1].name", "body[1].app", "body[1].args[1]", "body[1].kwargs.k",
			"body[1].context.headers.h[0]", "body[1].context.body.deep.deeper"},
		long: `[` + measWith(longString, "") + `]`, longLoc: "body[0].name", longTitle: "max",
		dup:    `[` + meas + `,` + measWith(`"/a"`, `,"kwargs":{"k":1,"k":2}`) + `]`,
		dupLoc: "body[1].kwargs.k",
		tables: []string{"measurements"},
	}, {
		name: "PUT /mrd/n1/metrics", method: "PUT", path: "/mrd/n1/metrics", header: auth,
		body: func(x string) string {
			return strings.TrimSuffix(report(x, x, x), "}") + `,"extra":{"list":[` + x + `]}}`
		},
		places: []string{"body.name", "body.value", "body.units", "body.extra.list[0]"},
		long:   report(`"n"`, longString, `"v"`), longLoc: "body.units", longTitle: "max",
		dup:    `{"name":"n","value":"v","units":"u","type":"string","slope":"both","ttl":60,"name":"m"}`,
		dupLoc: "body.name",
		tables: []string{"device_metrics", "device_metrics_latest"},
	}, {
		name: "POST events/register", method: "POST", path: "/apiv0.1/events/register",
		body: func(x string) string {
			return `{"host":` + x + `,"note":{"a":[` + x + `]},"measurement":{"fields":{"x":` + x + `},"tags":{"mode":"single","targetHost":` + x + `}}}`
		},
		places: []string{"body.host", "body.note.a[0]", "body.measurement.fields.x", "body.measurement.tags.targetHost"},
		long:   `{"host":` + longString + `,"measurement":{"fields":{}}}`, longLoc: "body.host", longTitle: "max",
		dup:    `{"host":"h","measurement":{"fields":{"clients":1}},"measurement":{"fields":{"clients":2}}}`,
		dupLoc: "body.measurement",
		tables: []string{"event_runs", "events"},
	}, {
		name: "POST events/commit", method: "POST", path: "/apiv0.1/events/commit",
		body: func(x string) string {
			return fmt.Sprintf(`{"uuid":%q,"host":"h","measurement":{"fields":{"requestStats":{"stats":[{"name":%s}],"e":%s}}}}`, run, x, x)
		},
		places:  []string{"body.measurement.fields.requestStats.stats[0].name", "body.measurement.fields.requestStats.e"},
		long:    fmt.Sprintf(`{"uuid":%q,"hostname":%s,"measurement":{"fields":{"requestStats":{}}}}`, run, longString),
		longLoc: "body.hostname", longTitle: "max",
		dup:    fmt.Sprintf(`{"uuid":%q,"measurement":{"fields":{"requestStats":{"x":1,"x":2}}}}`, run),
		dupLoc: "body.measurement.fields.requestStats.x",
		tables: []string{"event_runs", "events"},
	}, {
		name: "POST /mrd/devices", method: "POST", path: "/mrd/devices", header: auth,
		body:   func(x string) string { return `{"id":"d2","name":` + x + `}` },
		places: []string{"body.name"},
		long:   `{"id":"d2","name":` + longString + `}`, longLoc: "body.name", longTitle: "max",
		dup:    `{"id":"d2","name":"a","id":"d3"}`,
		dupLoc: "body.id",
		tables: []string{"devices"},
	}, {
		name: "PUT /mrd/devices/n1", method: "PUT", path: "/mrd/devices/n1", header: auth,
		body:   func(x string) string { return `{"name":` + x + `}` },
		places: []string{"body.name"},
		long:   `{"name":` + longString + `}`, longLoc: "body.name", longTitle: "max",
		dup:    `{"name":"a","name":"b"}`,
		dupLoc: "body.name",
		tables: []string{"devices"},
	}, {
		name: "POST /mrd/token", method: "POST", path: "/mrd/token",
		body:   func(x string) string { return `{"expires_in":60,"note":` + x + `}` },
		places: []string{"body.note"},
		dup:    `{"expires_in":60,"expires_in":31622400}`, dupLoc: "body.expires_in",
	}}

	for _, e := range endpoints {
		before := s.counts(t, e.tables)
		check := func(t *testing.T, body string, status int, want []string, title string) {
			t.Helper()
			p := s.do(e.method, e.path, body, e.header...).problem(t, status)
			if status == http.StatusBadRequest {
				if len(p.Errors) != 1 || p.Errors[0].Location != "body" ||
					(p.Errors[0].Title != "json" && p.Errors[0].Title != "error parsing JSON body") {
					t.Fatalf("errors %+v, want one item about the body's JSON", p.Errors)
				}
			}
			for _, loc := range want {
				if !p.hasError(loc, title) {
					t.Fatalf("errors %+v lack %s/%s", p.Errors, loc, title)
				}
			}
			for _, it := range p.Errors {
				if it.Detail == "" || it.Status != status {
					t.Fatalf("item %+v: want a detail and status %d", it, status)
				}
				if v, ok := it.Value.(string); ok && len(v) > 1024 {
					t.Fatalf("item %s/%s echoes %d bytes", it.Location, it.Title, len(v))
				}
			}
			if after := s.counts(t, e.tables); after != before {
				t.Fatalf("rows %v after a refused write, %v before", after, before)
			}
		}
		for _, h := range hostileStrings {
			t.Run(e.name+" "+h.name, func(t *testing.T) {
				var want []string
				if h.status == http.StatusUnprocessableEntity {
					want = e.places // every place, in one answer
				}
				check(t, e.body(h.json), h.status, want, h.title)
			})
		}
		// A faulty member name: the item is at the object that holds it.
		t.Run(e.name+" NUL in a name", func(t *testing.T) {
			body := e.body(`"x"`)
			i := strings.LastIndex(body, "}")
			check(t, body[:i]+`,"bad\u0000name":1`+body[i:], http.StatusUnprocessableEntity,
				[]string{objectOf(body[:i])}, titleUnicode)
		})
		t.Run(e.name+" duplicate name", func(t *testing.T) {
			check(t, e.dup, http.StatusUnprocessableEntity, []string{e.dupLoc}, titleDuplicate)
		})
		if e.long != "" {
			t.Run(e.name+" 70 KB string", func(t *testing.T) {
				check(t, e.long, http.StatusUnprocessableEntity, []string{e.longLoc}, e.longTitle)
			})
		}
	}

	// The rename changed nothing either, and the run is still running:
	// it commits now.
	var name string
	if err := s.Pool.QueryRow(context.Background(), `SELECT name FROM devices WHERE id = 'n1'`).Scan(&name); err != nil || name != "device n1" {
		t.Fatalf("device n1 is named %q (%v)", name, err)
	}
	s.do("POST", "/apiv0.1/events/commit", eventsCommitBody(run)).wantStatus(t, http.StatusOK)
}

// objectOf is the location of the object that a body of TestHostileBodies,
// cut just before its last closing brace, ends in: the body itself, or
// the last item of a batch.
func objectOf(prefix string) string {
	if strings.HasPrefix(prefix, "[") {
		return fmt.Sprintf("body[%d]", strings.Count(prefix, `"src_app"`)+strings.Count(prefix, `"method"`)-1)
	}
	return "body"
}

// counts is the number of rows of each table, in order.
func (s *testServer) counts(t *testing.T, tables []string) string {
	t.Helper()
	var out []string
	for _, table := range tables {
		var n int64
		if err := s.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s=%d", table, n))
	}
	return strings.Join(out, " ")
}

// PUT /mrd/{id}/metrics takes a JSON Content-Type or none (the Concertim
// daemon may send none); anything else, malformed included, is a 415. The
// batch endpoints refuse a malformed one too.
func TestHostileContentTypes(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "n1")
	const report = `{"name":"m","value":1,"units":"u","type":"int8","slope":"both","ttl":60}`
	before := s.counts(t, []string{"device_metrics", "flows", "measurements"})
	for _, c := range []struct{ path, method, body, contentType string }{
		{"/mrd/n1/metrics", "PUT", report, "text/plain"},
		{"/mrd/n1/metrics", "PUT", report, "application/x-www-form-urlencoded"},
		{"/mrd/n1/metrics", "PUT", report, ";;;"},
		{"/mrd/n1/metrics", "PUT", report, "application/json; charset"},
		{"/flows", "POST", `[]`, ";;;"},
		{"/api/measurements", "POST", `[]`, ";;;"},
	} {
		t.Run(c.path+" "+c.contentType, func(t *testing.T) {
			p := s.do(c.method, c.path, c.body, append(bearer(t), "Content-Type", c.contentType)...).
				problem(t, http.StatusUnsupportedMediaType)
			if !p.hasError("body", "contentType") {
				t.Fatalf("errors %+v", p.Errors)
			}
		})
	}
	if after := s.counts(t, []string{"device_metrics", "flows", "measurements"}); after != before {
		t.Fatalf("rows %v after refused writes, %v before", after, before)
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "application/merge-patch+json"} {
		s.do("PUT", "/mrd/n1/metrics", report, append(bearer(t), "Content-Type", ct)...).wantStatus(t, http.StatusOK)
	}
	// No Content-Type at all.
	req, err := http.NewRequest("PUT", s.URL+"/mrd/n1/metrics", strings.NewReader(report))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+validToken(t))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("no Content-Type: status %d, want 200", res.StatusCode)
	}
}

// Names match exactly in every body (json v2): a name that differs from a
// field only by case does not fill it. It used to for the bodies huma
// decoded with encoding/json, after huma had validated the exact names, so
// an events handler received clients -5 that the schema never saw
// (docs/decoders.md, "Findings").
func TestBodyNamesAreExact(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.EnableTokenEndpoint = true })
	s.createDevice(t, "n1")

	id := s.eventsRegister(t, `{"host":"h","HOST":" ","measurement":{"fields":{"clients":1,"CLIENTS":-5},`+
		`"tags":{"mode":"single","Mode":"bogus"}}}`)
	var run EventRunDetail
	s.do("GET", "/apiv0.1/events/"+id, nil).wantStatus(t, http.StatusOK).decode(t, &run)
	if run.Host != "h" || run.Clients == nil || *run.Clients != 1 || run.Mode == nil || *run.Mode != "single" {
		t.Fatalf("run %+v: want host h, clients 1, mode single", run.EventRun)
	}

	p := s.do("POST", "/mrd/devices", `{"id":"d2","name":"n","NAME":"x"}`, bearer(t)...).problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("body.NAME", "unknown") {
		t.Fatalf("errors %+v", p.Errors)
	}
	p = s.do("POST", "/mrd/token", `{"EXPIRES_IN":60}`).problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("body.EXPIRES_IN", "unknown") {
		t.Fatalf("errors %+v", p.Errors)
	}
	p = s.do("PUT", "/mrd/n1/metrics", `{"NAME":"m","value":1,"units":"u","type":"int8","slope":"both","ttl":60}`, bearer(t)...).
		problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || !p.hasError("body.name", "required") {
		t.Fatalf("errors %+v", p.Errors)
	}
	p = s.do("POST", "/flows", `[{"SRC_APP":"a","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":1}]`).
		problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("body[0].src_app", "required") || !p.hasError("body[0].SRC_APP", "unknown") {
		t.Fatalf("errors %+v", p.Errors)
	}
}

// A body of the wrong JSON type as a whole is a 400 that still lists the
// strings that cannot be stored and the repeated names inside it, as every
// other answer lists every fault at once. The flows batch and the events
// bodies used to answer the type alone.
func TestWrongBodyTypeListsTheOtherFaults(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.EnableTokenEndpoint = true })
	s.createDevice(t, "n1")
	object := []struct{ method, path string }{
		{"POST", "/apiv0.1/events/register"}, {"POST", "/apiv0.1/events/commit"}, {"POST", "/mrd/token"},
		{"POST", "/mrd/devices"}, {"PUT", "/mrd/devices/n1"},
	}
	type fault struct{ location, title string }
	type kase struct {
		method, path, body string
		faults             []fault
	}
	var cases []kase
	for _, batch := range []string{"/flows", "/api/measurements"} {
		cases = append(cases,
			kase{"POST", batch, `{"a":1,"a":2}`, []fault{{"body.a", titleDuplicate}}},
			kase{"POST", batch, `{"a":"x\u0000","b":{"c":1,"c":2}}`, []fault{{"body.a", titleUnicode}, {"body.b.c", titleDuplicate}}})
	}
	for _, op := range object {
		cases = append(cases,
			kase{op.method, op.path, `[{"a":1,"a":2}]`, []fault{{"body[0].a", titleDuplicate}}},
			kase{op.method, op.path, `["x\u0000",{"b":{"c":1,"c":2}}]`, []fault{{"body[0]", titleUnicode}, {"body[1].b.c", titleDuplicate}}})
	}
	for _, c := range cases {
		p := s.do(c.method, c.path, c.body, bearer(t)...).problem(t, http.StatusBadRequest)
		ok := p.hasError("body", "type") && len(p.Errors) == len(c.faults)+1
		for _, it := range p.Errors {
			// The body is not echoed back as the type item's value.
			ok = ok && !(it.Location == "body" && it.Value != nil)
		}
		for _, f := range c.faults {
			ok = ok && p.hasError(f.location, f.title)
		}
		if !ok {
			t.Errorf("%s %s %s: want the body's type item and %v: %+v", c.method, c.path, c.body, c.faults, p.Errors)
		}
	}
}
