package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"github.com/telemetry/telemetry/internal/config"
)

// fuzzServer is the fuzz targets' server (with the token endpoint on) over
// a database with a row of every resource: device dev1 with metric cpu, a
// flow of hour 1, a measurement, an events run (its uuid) and collection 0.
func fuzzServer(f *testing.F) (s *testServer, token, runUUID string) {
	s = newTestServer(f, func(c *config.Config) { c.JWTSecret = testSecret; c.EnableTokenEndpoint = true })
	token = validToken(f)
	auth := []string{"Authorization", "Bearer " + token}
	s.do("POST", "/mrd/devices", map[string]string{"id": "dev1", "name": "device dev1"}, auth...).wantStatus(f, http.StatusCreated)
	s.do("PUT", "/mrd/dev1/metrics", metricDoc("cpu", 1, "int8", 60), auth...).wantStatus(f, http.StatusOK)
	s.do("POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":1}]`).wantStatus(f, http.StatusCreated)
	s.do("POST", "/api/measurements", `[{"name":"/x","method":"GET","startedAt":1700000000,"endedAt":1700000001}]`).wantStatus(f, http.StatusCreated)
	var run struct{ UUID string }
	s.do("POST", "/apiv0.1/events/register", `{"host":"h","measurement":{"fields":{}}}`).wantStatus(f, http.StatusOK).decode(f, &run)
	s.do("POST", collectionsURL, nil).wantStatus(f, http.StatusCreated)
	return s, token, run.UUID
}

// fuzzSend sends req (label names it in failures) and checks what every
// fuzz target of this file checks: no 5xx; a 4xx is problem+json whose
// status is the answer's; and, for a request other than a GET, that a
// refusal changed no table. It returns the answer.
func fuzzSend(t *testing.T, s *testServer, req *http.Request, label string) response {
	t.Helper()
	write := req.Method != "GET"
	var before string
	if write {
		before = rowCounts(t, s)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	ct := res.Header.Get("Content-Type")
	switch {
	case res.StatusCode >= 500:
		t.Fatalf("%s: status %d; body %.300s", label, res.StatusCode, body)
	case res.StatusCode >= 400:
		var p Problem
		if ct != "application/problem+json" || json.Unmarshal(body, &p) != nil || p.Status != res.StatusCode {
			t.Fatalf("%s: status %d, Content-Type %q, body %.300s", label, res.StatusCode, ct, body)
		}
		if write {
			if after := rowCounts(t, s); after != before {
				t.Fatalf("%s: refused (%d) yet the tables changed:\n before %s\n after  %s", label, res.StatusCode, before, after)
			}
		}
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: body}
}

// FuzzReadQueries sends every GET operation of the document a query string
// the fuzzer writes (any bytes, any parameters, any combination of them;
// TestHostileParameters gives one parameter at a time a value from a
// list), over a database with a row of every resource. No answer is a 5xx
// (a panic is a 500 through the recoverer); a 4xx is problem+json whose
// status is the answer's; a 200 is JSON, CSV or NDJSON as its type says,
// and its JSON parses.
func FuzzReadQueries(f *testing.F) {
	s, token, runUUID := fuzzServer(f)
	auth := []string{"Authorization", "Bearer " + token}

	// Every GET path of the document, its path parameters naming the rows
	// above.
	ids := map[string]string{"{id}": "1", "{uuid}": runUUID, "{name}": "cpu", "{device_id}": "dev1"}
	var paths []string
	for tmpl, item := range Spec().Paths {
		if item.Get == nil {
			continue
		}
		p := tmpl
		if strings.HasPrefix(p, "/mrd/devices/{id}") {
			p = strings.Replace(p, "{id}", "dev1", 1)
		} else if strings.HasPrefix(p, collectionsURL+"/{id}") {
			p = strings.Replace(p, "{id}", "0", 1)
		}
		for k, v := range ids {
			p = strings.ReplaceAll(p, k, v)
		}
		paths = append(paths, p)
	}
	sort.Strings(paths)
	if len(paths) < 20 {
		f.Fatalf("only %d GET operations: the document's paths were not found", len(paths))
	}
	for i, q := range []string{"", "page=2&size=1", "startedAt=2&endedAt=1", "sort=elapsed,desc&elapsed=0.5",
		"hour=1&format=csv", "format=ndjson&size=0", "by=src_app&hour=-1", "bucket=1m&from=x", "a=%00&a=%ff",
		"page=1&page=2", "name=/x&method=GET&app=&elapsed=1e309", "%zz", "&&==&", "sort=name,asc,desc"} {
		f.Add(uint8(i), q)
	}
	f.Fuzz(func(t *testing.T, op uint8, query string) {
		if strings.ContainsFunc(query, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			// Go's client sends the query as it is: a space or a control
			// character breaks the request line, which net/http answers
			// with its own plain-text 400 before any handler (README.md,
			// "Security and timeouts").
			t.Skip("not a request line")
		}
		path := paths[int(op)%len(paths)] + "?" + query
		req, err := http.NewRequest("GET", s.URL+path, nil)
		if err != nil {
			t.Skip("not a URL a client can send")
		}
		req.Header.Set(auth[0], auth[1])
		r := fuzzSend(t, s, req, fmt.Sprintf("GET %q", path))
		ct := r.Header.Get("Content-Type")
		switch {
		case r.Status >= 400:
		case r.Status == http.StatusOK && strings.HasPrefix(ct, "application/json"):
			if !json.Valid(r.Body) {
				t.Fatalf("GET %q: 200 with a body that is not JSON: %.300s", path, r.Body)
			}
		case r.Status == http.StatusOK && (strings.HasPrefix(ct, "text/csv") || strings.HasPrefix(ct, "application/x-ndjson")):
		default:
			t.Fatalf("GET %q: status %d, Content-Type %q", path, r.Status, ct)
		}
	})
}

// FuzzPathParams gives one path parameter of any operation of the document
// (every method) a value the fuzzer writes, sent as it is or escaped
// (TestHostileParameters gives it values from a list), the other path
// parameters a well-formed id that names nothing, and a write its valid
// body, over a database with a row of every resource. No answer is a 5xx;
// a 4xx is problem+json whose status is the answer's, and a refused write
// changes no table.
func FuzzPathParams(f *testing.F) {
	s, token, _ := fuzzServer(f)
	auth := []string{"Authorization", "Bearer " + token}

	var cases []hostileCase // one per operation and path parameter
	seen := map[string]bool{}
	for _, c := range hostileCases(Spec()) {
		if c.in == "path" && !seen[c.method+c.template+c.param] {
			seen[c.method+c.template+c.param] = true
			cases = append(cases, c)
		}
	}
	if len(cases) < 12 {
		f.Fatalf("only %d path parameters: the document's operations were not found", len(cases))
	}
	bodies := hostileBodies()
	for i, v := range []string{"1", "0", "dev1", "cpu", "-1", "9223372036854775808", "1e3", "%2e%2e", "..", ".", "a b",
		"%00", "%ff", "é", "x/y", "%2F", "devices", strings.Repeat("9", 30), "0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f"} {
		f.Add(uint8(i), v, i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, op uint8, value string, escape bool) {
		c := cases[int(op)%len(cases)]
		if escape {
			value = url.PathEscape(value)
		} else if strings.ContainsFunc(value, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' || r == '?' || r == '#' }) {
			t.Skip("not one path segment as it is") // the escaped form is fuzzed too
		}
		path := strings.ReplaceAll(c.template, "{"+c.param+"}", value)
		for _, other := range []string{"{id}", "{uuid}", "{name}", "{device_id}"} {
			path = strings.ReplaceAll(path, other, "9")
		}
		req, err := http.NewRequest(c.method, s.URL+path, nil)
		if err != nil {
			t.Skip("not a URL a client can send")
		}
		if b, ok := bodies[c.method+" "+c.template]; ok {
			j, _ := json.Marshal(b)
			req.Body = io.NopCloser(strings.NewReader(string(j)))
			req.ContentLength = int64(len(j))
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set(auth[0], auth[1])
		fuzzSend(t, s, req, fmt.Sprintf("%s %q", c.method, path))
	})
}

// FuzzWriteBodies sends any body the fuzzer writes to any operation of the
// document that takes one (POST and PUT; path parameters naming a row of
// every resource), over a database with a row of every
// resource: no answer is a 5xx, a 4xx is problem+json whose status is the
// answer's, and a refused write changes no table. The decoders' own
// targets (FuzzFlowsDecode, FuzzMeasurementsDecode, FuzzParseReport,
// FuzzEventBodies) check what an accepted body holds; this one the whole
// way through the server, huma's bodies included.
func FuzzWriteBodies(f *testing.F) {
	s, token, runUUID := fuzzServer(f)
	auth := []string{"Authorization", "Bearer " + token}

	type writeOp struct{ method, path string }
	var ops []writeOp
	for tmpl, item := range Spec().Paths {
		for _, mo := range []struct {
			method string
			op     *huma.Operation
		}{{"PUT", item.Put}, {"POST", item.Post}} {
			if mo.op == nil {
				continue
			}
			p := strings.NewReplacer("{device_id}", "dev1", "{name}", "cpu", "{uuid}", runUUID).Replace(tmpl)
			if strings.HasPrefix(p, collectionsURL+"/{id}") {
				p = strings.Replace(p, "{id}", "0", 1)
			}
			ops = append(ops, writeOp{mo.method, strings.Replace(p, "{id}", "dev1", 1)})
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].method+ops[i].path < ops[j].method+ops[j].path })
	if len(ops) < 9 {
		f.Fatalf("only %d write operations: the document's paths were not found", len(ops))
	}
	for i, b := range []string{"", "{}", "[]", "null", `{"name":"x"}`, `[{"a":1,"a":2}]`, `{"a":"\u0000"}`, "\xff",
		`[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":1e400}]`,
		`[{"name":"/x","method":"GET","startedAt":1,"endedAt":0}]`, `{"expires_in":0}`, `{"id":"..","name":"n"}`,
		`{"name":"m","value":"x","units":"u","type":"int8","slope":"both","ttl":60}`,
		`{"host":"h","startedAt":-1,"measurement":{"fields":{}}}`, `{"uuid":"x","measurement":{"fields":{"requestStats":{}}}}`} {
		f.Add(uint8(i), []byte(b))
	}
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		o := ops[int(op)%len(ops)]
		req, err := http.NewRequest(o.method, s.URL+o.path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(auth[0], auth[1])
		label := fmt.Sprintf("%s %s %q", o.method, o.path, body)
		if r := fuzzSend(t, s, req, label); r.Status < 400 && len(r.Body) > 0 && !json.Valid(r.Body) {
			t.Fatalf("%s: status %d with a body that is not JSON: %.300s", label, r.Status, r.Body)
		}
	})
}

// FuzzRequestHeaders gives the headers the service reads (Accept,
// Content-Type, Idempotency-Key, X-Request-Id, Authorization, Cookie,
// Accept-Encoding, If-None-Match) values the fuzzer writes, on any
// operation of the document with a valid request otherwise (a write with
// its valid body) and on the paths outside the document, over a database with a row of every resource: no answer
// is a 5xx, a 4xx is problem+json whose status is the answer's, and a
// refused write changes no table.
func FuzzRequestHeaders(f *testing.F) {
	s, token, runUUID := fuzzServer(f)
	auth := []string{"Authorization", "Bearer " + token}

	bodies := map[string]string{
		"POST /flows":                     `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":1}]`,
		"POST /api/measurements":          `[{"name":"/x","method":"GET","startedAt":1700000000,"endedAt":1700000001}]`,
		"POST /apiv0.1/events/register":   `{"host":"h","measurement":{"fields":{}}}`,
		"POST /apiv0.1/events/commit":     `{"uuid":"` + runUUID + `","measurement":{"fields":{"requestStats":{}}}}`,
		"PUT /mrd/{device_id}/metrics":    `{"name":"cpu","value":2,"units":"u","type":"int8","slope":"both","ttl":60}`,
		"POST /mrd/token":                 `{}`,
		"POST /mrd/devices":               `{"id":"dev2","name":"n"}`,
		"PUT /mrd/devices/{id}":           `{"name":"renamed"}`,
		"POST " + collectionsURL:          ``,
		"PUT " + collectionsURL + "/{id}": ``,
	}
	type operation struct{ method, template, path string }
	var ops []operation
	for tmpl, item := range Spec().Paths {
		for _, mo := range []struct {
			method string
			op     *huma.Operation
		}{{"GET", item.Get}, {"PUT", item.Put}, {"POST", item.Post}} {
			if mo.op == nil {
				continue
			}
			p := strings.NewReplacer("{device_id}", "dev1", "{name}", "cpu", "{uuid}", runUUID).Replace(tmpl)
			if strings.HasPrefix(p, collectionsURL+"/{id}") {
				p = strings.Replace(p, "{id}", "0", 1)
			}
			ops = append(ops, operation{mo.method, tmpl, strings.Replace(strings.Replace(p, "{id}", "dev1", 1), "{id}", "1", 1)})
		}
	}
	// And what the document does not list: its own pages, the dashboard,
	// the metrics, an unknown path, a method a path does not take, and a
	// DELETE of a row that does not exist.
	ops = append(ops, []operation{{"GET", "", "/docs"}, {"GET", "", "/ui/"}, {"GET", "", "/metrics"},
		{"GET", "", "/openapi.json"}, {"GET", "", "/openapi-3.0.yaml"}, {"GET", "", "/nope"}, {"DELETE", "", "/flows"},
		{"DELETE", "", "/mrd/devices/dev9"}, {"DELETE", "", collectionsURL + "/9"}}...)
	sort.Slice(ops, func(i, j int) bool { return ops[i].method+ops[i].path < ops[j].method+ops[j].path })
	if len(ops) < 30 {
		f.Fatalf("only %d operations: the document's paths were not found", len(ops))
	}
	headers := []string{"Accept", "Content-Type", "Idempotency-Key", "X-Request-Id", "Authorization", "Cookie",
		"Accept-Encoding", "If-None-Match"}
	for i, v := range []string{"text/csv", "application/x-ndjson;q=0.5, text/csv;q=0.9", "*/*;q=0", "application/json; charset=latin1",
		`"k\"1"`, "k 1", strings.Repeat("x", 300), "Bearer " + token, "Bearer", "jwt=" + token, "jwt=x; jwt=y", "gzip;q=0, identity;q=0",
		"W/\"x\"", "application/problem+json", "text/*", "multipart/form-data; boundary=x", "é", "a\tb"} {
		f.Add(uint8(i), uint8(i), v)
	}
	f.Fuzz(func(t *testing.T, op, header uint8, value string) {
		o := ops[int(op)%len(ops)]
		name := headers[int(header)%len(headers)]
		body, hasBody := bodies[o.method+" "+o.template]
		req, err := http.NewRequest(o.method, s.URL+o.path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if hasBody && body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set(auth[0], auth[1])
		if strings.ContainsFunc(value, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			t.Skip("not a header value a client can send")
		}
		req.Header.Set(name, value)
		fuzzSend(t, s, req, fmt.Sprintf("%s %s %s: %q", o.method, o.path, name, value))
	})
}

// FuzzIdempotencyKeys sends each write that takes an Idempotency-Key twice
// with a key the fuzzer writes, then once more with another body. Whatever
// the key: the repeat gets the first answer again (status and body, a
// problem's requestId aside), marked Idempotency-Replayed when the first
// succeeded, and writes nothing; after a success the other body under the
// same key is a 422 titled "idempotency". The keys stay in the database
// from one input to the next, so a key may arrive already taken.
func FuzzIdempotencyKeys(f *testing.F) {
	s, token, runUUID := fuzzServer(f)
	auth := []string{"Authorization", "Bearer " + token}
	ops := []struct{ method, path, body, other string }{
		{"POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":1}]`,
			`[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":2,"bytes_rx":2,"hour":1}]`},
		{"POST", "/api/measurements", `[{"name":"/x","method":"GET","startedAt":1700000000,"endedAt":1700000001}]`,
			`[{"name":"/y","method":"GET","startedAt":1700000000,"endedAt":1700000001}]`},
		{"POST", "/apiv0.1/events/register", `{"host":"h","measurement":{"fields":{}}}`, `{"host":"i","measurement":{"fields":{}}}`},
		{"POST", "/apiv0.1/events/commit", `{"uuid":"` + runUUID + `","measurement":{"fields":{"requestStats":{}}}}`,
			`{"uuid":"` + runUUID + `","measurement":{"fields":{"requestStats":{"x":1}}}}`},
		{"PUT", "/mrd/dev1/metrics", `{"name":"cpu","value":2,"units":"u","type":"int8","slope":"both","ttl":60}`,
			`{"name":"cpu","value":3,"units":"u","type":"int8","slope":"both","ttl":60}`},
	}
	// What a write changes: the rows of every table, and the contents of
	// those an upsert or an update changes in place.
	state := func(t *testing.T) string {
		var sum string
		err := s.Pool.QueryRow(context.Background(), `SELECT concat_ws(' ',
			(SELECT md5(string_agg(f::text, ',' ORDER BY f::text)) FROM flows f),
			(SELECT md5(string_agg(r::text, ',' ORDER BY r::text)) FROM event_runs r),
			(SELECT md5(string_agg(l::text, ',' ORDER BY l::text)) FROM device_metrics_latest l))`).Scan(&sum)
		if err != nil {
			t.Fatal(err)
		}
		return rowCounts(t, s) + sum
	}
	for i, k := range []string{"k1", `"k1"`, `"a\"b"`, `"a\\b"`, " k ", "", `"`, `""`, strings.Repeat("k", 255),
		strings.Repeat("k", 256), "é", "k\x7f"} {
		f.Add(uint8(i), k)
	}
	f.Fuzz(func(t *testing.T, op uint8, key string) {
		if strings.ContainsFunc(key, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			t.Skip("not a header value a client can send")
		}
		o := ops[int(op)%len(ops)]
		send := func(body string) response {
			req, err := http.NewRequest(o.method, s.URL+o.path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(auth[0], auth[1])
			req.Header.Set(IdempotencyKeyHeader, key)
			return fuzzSend(t, s, req, fmt.Sprintf("%s %s, key %q", o.method, o.path, key))
		}
		first := send(o.body)
		before := state(t)
		again := send(o.body)
		if after := state(t); after != before {
			t.Fatalf("%s %s, key %q: the repeat wrote (%d then %d):\n before %s\n after  %s", o.method, o.path, key, first.Status, again.Status, before, after)
		}
		withoutID := func(r response) string {
			return regexp.MustCompile(`"requestId":"[^"]*"`).ReplaceAllString(string(r.Body), "")
		}
		if again.Status != first.Status || withoutID(again) != withoutID(first) {
			t.Fatalf("%s %s, key %q: %d %s, then %d %s", o.method, o.path, key, first.Status, first.Body, again.Status, again.Body)
		}
		if first.Status >= 400 {
			return
		}
		if again.Header.Get(ReplayedHeader) != "true" {
			t.Fatalf("%s %s, key %q: the repeat is not marked %s", o.method, o.path, key, ReplayedHeader)
		}
		p := send(o.other).problem(t, http.StatusUnprocessableEntity)
		if !p.hasError("header."+IdempotencyKeyHeader, "idempotency") {
			t.Fatalf("%s %s, key %q: another body: %+v", o.method, o.path, key, p.Errors)
		}
	})
}
