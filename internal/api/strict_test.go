package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/telemetry/telemetry/internal/config"
)

// aliasIDs is the operation id of every alias in the route table.
func aliasIDs() map[string]bool {
	ids := map[string]bool{}
	for _, r := range (&server{}).routes() {
		for _, a := range r.aliases {
			ids[a.id] = true
		}
	}
	return ids
}

// samplePath fills a route's path parameters with values that parse.
func samplePath(p string) string {
	return strings.NewReplacer("{id}", "1", "{uuid}", "0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f",
		"{device_id}", "rack1-node3", "{name}", "cpu_temp").Replace(p)
}

// pathCase is one request to every route and alias: its method, its path
// with sample parameters, and an empty JSON object as the body of a write.
type pathCase struct {
	method, path string
	body         any
}

// everyPath is a request for every route of the table and every alias of
// each, so that a route added later is covered too.
func everyPath(t *testing.T) []pathCase {
	t.Helper()
	var cases []pathCase
	for _, r := range (&server{}).routes() {
		var body any
		if r.method == post || r.method == put {
			body = "{}"
		}
		cases = append(cases, pathCase{r.method, samplePath(r.path), body})
		for _, a := range r.aliases {
			cases = append(cases, pathCase{r.method, samplePath(a.path), body})
		}
	}
	if len(cases) < 40 {
		t.Fatalf("only %d paths in the route table", len(cases))
	}
	return cases
}

// Every operation, and every alias, refuses a query parameter it does not
// take with a 422 item titled unknown that names it: the table is the
// route table, so an operation added later is covered too.
func TestUnknownQueryParameterEveryOperation(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	auth := bearer(t)
	var pr Problem
	for _, c := range everyPath(t) {
		// A name with a dot and one given twice are named whole, once.
		res := s.do(c.method, c.path+"?bogus.param=1&bogus.param=2", c.body, auth...)
		// It comes first, beside whatever else the request fails (here
		// the required parameters and fields it lacks).
		pr = res.problem(t, http.StatusUnprocessableEntity)
		if len(pr.Errors) == 0 || !pr.hasError("query.bogus.param", "unknown") || pr.Errors[0].Source != "bogus.param" ||
			!strings.Contains(pr.Errors[0].Detail, "bogus.param") || pr.Errors[0].Value != "1" ||
			slices.ContainsFunc(pr.Errors[1:], func(e *ProblemItem) bool { return e.Title == "unknown" }) {
			t.Errorf("%s %s: %s", c.method, c.path, res.Body)
		}
	}
	// Listed with every other failure, at once, in any operation: before,
	// an unknown parameter was answered alone.
	for _, c := range []struct {
		path string
		want [][2]string
	}{
		{"/api/measurements/?size=0&bogus=1&startedAt=abc", [][2]string{{"query.bogus", "unknown"}, {"query.size", "min"}, {"query.startedAt", "type"}}},
		{"/flows?hour=1&sort=foo&size=0&bogus=1", [][2]string{{"query.bogus", "unknown"}, {"query.size", "min"}, {"query.sort", "oneof"}}},
	} {
		pr := s.do(get, c.path, nil).problem(t, http.StatusUnprocessableEntity)
		for _, w := range c.want {
			if !pr.hasError(w[0], w[1]) {
				t.Errorf("%s: errors %+v lack %s/%s", c.path, pr.Errors, w[0], w[1])
			}
		}
		if len(pr.Errors) != len(c.want) {
			t.Errorf("%s: %d errors %+v, want %d", c.path, len(pr.Errors), pr.Errors, len(c.want))
		}
	}
	// A valid write with an unknown parameter stores nothing.
	flow := `[{"src_app":"strict","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":7}]`
	pr = s.do(post, "/flows?bogus=1", flow).problem(t, http.StatusUnprocessableEntity)
	if len(pr.Errors) != 1 || !pr.hasError("query.bogus", "unknown") {
		t.Fatalf("POST /flows?bogus=1: %+v", pr.Errors)
	}
	var page Page[Flow]
	s.do(get, "/flows?hour=7", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 0 {
		t.Fatalf("a write refused for its parameters stored %d flows", page.Total)
	}
	// Every unknown parameter is listed, next to none of the known ones.
	pr = s.do(get, "/flows?hour=1&src_app=web&app=web&size=5&limit=1", nil).problem(t, http.StatusUnprocessableEntity)
	if len(pr.Errors) != 2 || !pr.hasError("query.app", "unknown") || !pr.hasError("query.limit", "unknown") {
		t.Fatalf("flows: %+v", pr.Errors)
	}
	// Authentication comes first: without a token the answer is 401.
	s.do(put, "/mrd/rack1-node3/metrics?bogus=1", "{}").problem(t, http.StatusUnauthorized)
}

// Every query parameter of every operation given twice is a 422 item
// titled duplicate that names it and shows both values, listed with the
// request's other failures; huma alone would take the first value and
// drop the second. The table is the document, so an operation added
// later is covered too.
// TestUnknownSecretQueryValueRedacted: an unknown query parameter whose
// name looks like it holds a secret has its value echoed as [redacted], as
// the self-profiler stores it: a 422 body a client or a proxy logs does not
// carry the token (found by an audit). Other values are echoed as they are.
func TestUnknownSecretQueryValueRedacted(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	r := s.do("GET", "/flows?hour=1&access_token=sk_live_SECRET123&password=hunter2&colour=red", nil)
	p := r.problem(t, http.StatusUnprocessableEntity)
	if strings.Contains(string(r.Body), "SECRET123") || strings.Contains(string(r.Body), "hunter2") {
		t.Fatalf("the answer carries the secret values: %s", r.Body)
	}
	got := map[string]any{}
	for _, it := range p.Errors {
		got[it.Source] = it.Value
	}
	if got["access_token"] != "[redacted]" || got["password"] != "[redacted]" || got["colour"] != "red" {
		t.Fatalf("items %s", r.Body)
	}
	r = s.do("GET", "/flows?hour=1&api_key=k1&api_key=k2", nil)
	r.problem(t, http.StatusUnprocessableEntity)
	if strings.Contains(string(r.Body), "k1") {
		t.Fatalf("the answer carries the secret values: %s", r.Body)
	}
	// A JWT is a secret whatever its key (a device token sent as ?t=...).
	jwt := validToken(t)
	r = s.do("GET", "/flows?hour=1&t="+jwt, nil)
	p = r.problem(t, http.StatusUnprocessableEntity)
	if strings.Contains(string(r.Body), jwt) || len(p.Errors) != 1 || p.Errors[0].Value != "[redacted]" {
		t.Fatalf("the answer carries the token: %s", r.Body)
	}
}

func TestRepeatedQueryParameterEveryOperation(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	auth := bearer(t)
	n := 0
	for path, item := range Spec().Paths {
		for method, op := range itemOperations(item) {
			for _, prm := range op.Parameters {
				if prm.In != "query" {
					continue
				}
				n++
				where := method + " " + path + " " + prm.Name
				// Two values that parse wherever a value of one of these
				// types does not matter: the repetition alone is the fault.
				res := s.do(method, samplePath(path)+"?"+prm.Name+"=1&"+prm.Name+"=2&bogus=1", "{}", auth...)
				pr := res.problem(t, http.StatusUnprocessableEntity)
				i := slices.IndexFunc(pr.Errors, func(e *ProblemItem) bool { return e.Location == "query."+prm.Name })
				if i < 0 || pr.Errors[i].Title != "duplicate" || pr.Errors[i].Source != prm.Name || pr.Errors[i].Value != "1,2" ||
					!strings.Contains(pr.Errors[i].Detail, prm.Name+" is given 2 times") || !pr.hasError("query.bogus", "unknown") {
					t.Errorf("%s: %s", where, res.Body)
				}
			}
		}
	}
	if n < 30 {
		t.Fatalf("only %d query parameters found", n)
	}
	// Beside huma's own failures, at once, and once each.
	pr := s.do(get, "/flows?hour=1&hour=2&size=0&sort=a&sort=b", nil).problem(t, http.StatusUnprocessableEntity)
	if len(pr.Errors) != 4 || !pr.hasError("query.hour", "duplicate") || !pr.hasError("query.sort", "duplicate") ||
		!pr.hasError("query.size", "min") || !pr.hasError("query.sort", "oneof") {
		t.Fatalf("flows: %+v", pr.Errors)
	}
	// A valid request whose only fault is a repetition answers it alone
	// (the handler's check, not huma's 422).
	pr = s.do(get, "/flows?hour=1&hour=1", nil).problem(t, http.StatusUnprocessableEntity)
	if len(pr.Errors) != 1 || !pr.hasError("query.hour", "duplicate") || pr.Errors[0].Value != "1,1" {
		t.Fatalf("flows: %+v", pr.Errors)
	}
	// Values are echoed as other items echo text: NUL and invalid bytes
	// as U+FFFD.
	pr = s.do(get, "/flows?hour=1&hour=%00&bogus=%ff", nil).problem(t, http.StatusUnprocessableEntity)
	if !pr.hasError("query.hour", "duplicate") || !pr.hasError("query.bogus", "unknown") ||
		!slices.ContainsFunc(pr.Errors, func(e *ProblemItem) bool { return e.Value == "1,\uFFFD" }) ||
		!slices.ContainsFunc(pr.Errors, func(e *ProblemItem) bool { return e.Value == "\uFFFD" }) {
		t.Fatalf("flows: %+v", pr.Errors)
	}
	// The flask-profiler dashboard's deepObject parameters are not
	// parameters of one value: they stay accepted.
	s.do(get, "/api/measurements/grouped?columns[0][data]=name&columns[1][data]=count", nil).wantStatus(t, http.StatusOK)
	// But each takes one value, holds text, and is named as DataTables
	// names them (found by an audit: all three taken).
	pr = s.do(get, "/api/measurements/grouped?order[0][dir]=asc&order[0][dir]=desc", nil).problem(t, http.StatusUnprocessableEntity)
	if !pr.hasError("query.order[0][dir]", "duplicate") || len(pr.Errors) != 1 {
		t.Fatalf("a DataTables parameter twice: %+v", pr.Errors)
	}
	pr = s.do(get, "/api/measurements/grouped?columns[0][data]=%00&search[value]=%ff&order[%00]=1", nil).problem(t, http.StatusUnprocessableEntity)
	if !pr.hasError("query.columns[0][data]", "unicode") || !pr.hasError("query.search[value]", "unicode") ||
		!slices.ContainsFunc(pr.Errors, func(e *ProblemItem) bool { return e.Title == "unicode" && strings.HasPrefix(e.Source, "order[") }) || len(pr.Errors) != 3 {
		t.Fatalf("DataTables parameters not text: %+v", pr.Errors)
	}
	pr = s.do(get, "/api/measurements/?draw=%00&_=%ff", nil).problem(t, http.StatusUnprocessableEntity)
	if !pr.hasError("query.draw", "unicode") || !pr.hasError("query._", "unicode") || len(pr.Errors) != 2 {
		t.Fatalf("hidden parameters not text: %+v", pr.Errors)
	}
	// A misnamed one is unknown, once, whatever its text.
	pr = s.do(get, "/api/measurements/grouped/?columns[=%00", nil).problem(t, http.StatusUnprocessableEntity)
	if len(pr.Errors) != 1 || !pr.hasError("query.columns[", "unknown") {
		t.Fatalf("a misnamed DataTables parameter holding a NUL: %+v", pr.Errors)
	}
	pr = s.do(get, "/api/measurements/?columns[=x&columns[0]data=y", nil).problem(t, http.StatusUnprocessableEntity)
	if !pr.hasError("query.columns[", "unknown") || !pr.hasError("query.columns[0]data", "unknown") {
		t.Fatalf("misnamed DataTables parameters: %+v", pr.Errors)
	}
}

// A query pair holding a raw ';' is a parameter like any other: huma reads
// it (it splits on '&' alone), so the strict checks and the page links must
// too. They used Go's url.Values, which leaves out every pair holding a ';'
// since Go 1.17: '?hour=1&bogus;=1' answered every flow of the hour, a
// second src_app 'a;b' was neither refused nor applied, and a page's Link
// dropped the src_app filter it had applied (found by a security audit).
func TestSemicolonQueryPairsAreParameters(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	flows := []map[string]any{}
	for _, src := range []string{"a;b", "other", "third"} {
		flows = append(flows, map[string]any{"src_app": src, "dest_app": "d", "vpc_id": "v", "bytes_tx": 1, "bytes_rx": 1, "hour": 5})
	}
	s.do(http.MethodPost, "/flows", flows).wantStatus(t, http.StatusCreated)

	pr := s.do(get, "/flows?hour=5&bogus;=1", nil).problem(t, http.StatusUnprocessableEntity)
	if len(pr.Errors) != 1 || !pr.hasError("query.bogus;", "unknown") || pr.Errors[0].Value != "1" {
		t.Errorf("an unknown parameter holding ';': %+v", pr.Errors)
	}
	pr = s.do(get, "/flows?hour=5&src_app=other&src_app=a;b", nil).problem(t, http.StatusUnprocessableEntity)
	if len(pr.Errors) != 1 || !pr.hasError("query.src_app", "duplicate") || pr.Errors[0].Value != "other,a;b" {
		t.Errorf("a repeated parameter whose second value holds ';': %+v", pr.Errors)
	}
	res := s.do(get, "/flows?hour=5&src_app=a;b&size=1", nil)
	res.wantStatus(t, http.StatusOK)
	var page struct {
		Items []struct {
			SrcApp string `json:"src_app"`
		}
		Total int64
	}
	res.decode(t, &page)
	if page.Total != 1 || len(page.Items) != 1 || page.Items[0].SrcApp != "a;b" {
		t.Fatalf("src_app=a;b: %s", res.Body)
	}
	if link := res.Header.Get("Link"); !strings.Contains(link, "src_app=a%3Bb") {
		t.Errorf("Link %q drops the src_app filter the page applied", link)
	}
}

// Every operation that takes a body refuses one over its limit with a 413
// that states the limit (one byte less is read: it fails, if at all, for
// what it holds) and a body that is not JSON with a 415. The table is the
// document, so an operation added later is covered too; the status audit of
// the test server checks that each documents both.
func TestEveryBodyOperationRefusesLargeAndForeignBodies(t *testing.T) {
	t.Parallel()
	limits := func(c *config.Config) {
		c.MaxBodyBytes, c.EventsMaxBodyBytes = 5000, 3000
		c.EnableTokenEndpoint = true
	}
	s := newDevicesServer(t, limits)
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.JWTSecret = testSecret
	limits(&cfg)
	_, api := New(Deps{Config: cfg})
	auth := bearer(t)
	n := 0
	for path, item := range api.OpenAPI().Paths {
		for method, op := range itemOperations(item) {
			if op.RequestBody == nil {
				continue
			}
			n++
			where := method + " " + path
			if op.MaxBodyBytes <= 0 || op.MaxBodyBytes > 1<<20 {
				t.Errorf("%s: MaxBodyBytes %d", where, op.MaxBodyBytes)
				continue
			}
			// JSON that is valid up to its last byte, so that only the
			// size can refuse it.
			body := func(size int64) string { return "[" + strings.Repeat(" ", int(size)-2) + "]" }
			p := s.do(method, samplePath(path), body(op.MaxBodyBytes), auth...).problem(t, http.StatusRequestEntityTooLarge)
			if want := fmt.Sprintf("request body is too large: at most %d bytes", op.MaxBodyBytes-1); p.Detail != want {
				t.Errorf("%s: detail %q, want %q", where, p.Detail, want)
			}
			if res := s.do(method, samplePath(path), body(op.MaxBodyBytes-1), auth...); res.Status == http.StatusRequestEntityTooLarge {
				t.Errorf("%s: a body of %d bytes: %s", where, op.MaxBodyBytes-1, res.Body)
			}
			s.do(method, samplePath(path), "{}", append([]string{"Content-Type", "text/plain"}, auth...)...).
				problem(t, http.StatusUnsupportedMediaType)
			// A Content-Length over the limit is a 413 at once, before
			// the body arrives (here it never does).
			if status := announceBody(t, s.URL, method, samplePath(path), op.MaxBodyBytes, auth); status != "413" {
				t.Errorf("%s: a Content-Length of %d with no body: status %s, want 413 at once", where, op.MaxBodyBytes, status)
			}
		}
	}
	if n < 8 {
		t.Fatalf("only %d operations with a body found", n)
	}
}

// Every operation, and every alias, answers 406 to an Accept that admits
// nothing it produces, before looking at its input.
func TestUnacceptableAcceptEveryOperation(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.EnableTokenEndpoint = true })
	auth := bearer(t)
	for _, c := range everyPath(t) {
		pr := s.do(c.method, c.path, c.body, append([]string{"Accept", "text/html"}, auth...)...).
			problem(t, http.StatusNotAcceptable)
		if !strings.Contains(pr.Detail, "Accept") {
			t.Errorf("%s %s: %q", c.method, c.path, pr.Detail)
		}
	}
}

// The parameters flask-profiler's dashboard and the seed's document send
// beyond the contract stay accepted; skip and limit page as they did.
func TestSeedClientParamsAccepted(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	now := time.Now().Unix()
	var recs []map[string]any
	for i := range 3 {
		recs = append(recs, map[string]any{"name": fmt.Sprintf("/r%d", i), "method": "GET",
			"startedAt": now - 60 + int64(i), "endedAt": now - 59 + int64(i), "context": map[string]any{}})
	}
	s.do(post, "/api/measurements", recs).wantStatus(t, http.StatusCreated)
	window := fmt.Sprintf("startedAt=%d&endedAt=%d", now-3600, now+60)

	// The dashboard's grouped table: DataTables' server-side parameters, the
	// dashboard's own, and jQuery's cache buster.
	dt := url.Values{}
	dt.Set("draw", "1")
	for i := range 6 {
		c := fmt.Sprintf("columns[%d]", i)
		dt.Set(c+"[data]", fmt.Sprint(i))
		dt.Set(c+"[name]", "")
		dt.Set(c+"[searchable]", "true")
		dt.Set(c+"[orderable]", "false")
		dt.Set(c+"[search][value]", "")
		dt.Set(c+"[search][regex]", "false")
	}
	dt.Set("order[0][column]", "2")
	dt.Set("order[0][dir]", "desc")
	dt.Set("start", "0")
	dt.Set("length", "-1")
	dt.Set("search[value]", "")
	dt.Set("search[regex]", "false")
	dt.Set("sort", "count,desc")
	dt.Set("skip", "0")
	dt.Set("limit", "-1")
	dt.Set("_", "1763805600000")

	for _, path := range []string{
		"/api/measurements/grouped?" + dt.Encode() + "&" + window,
		"/api/measurements/?method=&name=&elapsed=0&sort=startedAt,desc&skip=0&limit=100&" + window,
		"/api/measurements/grouped/?sort=count%2Cdesc&skip=0&limit=-1&" + window, // the seed's document
		"/api/v1/measurements/grouped/?sort=avgElapsed,asc&" + window,
		"/api/measurements/filter/?elapsed=3.5&method=PUT,POST",
		"/api/measurements/methodDistribution/?" + window,
		"/api/measurements/timeseries/?interval=daily&" + window,
		"/flows?hour=1&page=1&size=50",
	} {
		s.do(get, path, nil).wantStatus(t, http.StatusOK)
	}

	// limit is the page size; skip selects the page holding row skip+1.
	var page struct {
		Items []Measurement `json:"items"`
		Total int64         `json:"total"`
		Page  int64         `json:"page"`
		Size  int64         `json:"size"`
	}
	res := s.do(get, "/api/measurements/?limit=1&skip=2&sort=startedAt,asc&"+window, nil).wantStatus(t, http.StatusOK)
	res.decode(t, &page)
	if len(page.Items) != 1 || page.Items[0].Name != "/r2" || page.Total != 3 || page.Page != 3 || page.Size != 1 {
		t.Fatalf("skip=2&limit=1: %s", res.Body)
	}
	if link := res.Header.Get("Link"); strings.Contains(link, "skip=") || strings.Contains(link, "limit=") ||
		!strings.Contains(link, "page=2") {
		t.Fatalf("Link keeps skip/limit or lacks prev: %s", link)
	}
	res = s.do(get, "/api/measurements/grouped?limit=-1&"+window, nil).wantStatus(t, http.StatusOK)
	res.decode(t, &page)
	if page.Size != 100 || page.Total != 3 {
		t.Fatalf("limit=-1: %s", res.Body)
	}
	pr := s.do(get, "/api/measurements/?limit=-2&skip=-1", nil).problem(t, http.StatusUnprocessableEntity)
	if !pr.hasError("query.limit", "min") || !pr.hasError("query.skip", "min") {
		t.Fatalf("bad skip/limit: %+v", pr.Errors)
	}
}

// The document gives generated clients exact types: every number has a
// format (no float32 epoch times), no array is nullable, and each
// operation appears once (the aliases are served but not documented).
func TestDocumentIsExact(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"3.1", "3.0"} {
		var raw []byte
		var err error
		if version == "3.1" {
			raw, err = json.Marshal(Spec())
		} else {
			raw, err = downgrade30(Spec())
		}
		if err != nil {
			t.Fatal(err)
		}
		var doc any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		var numbers, nullableEnums int
		walkSchemas(doc, "", func(where string, m map[string]any) {
			types := schemaTypes(m)
			if slices.Contains(types, "number") || slices.Contains(types, "integer") {
				numbers++
				if f, _ := m["format"].(string); f != "double" && f != "int64" && f != "int32" {
					t.Errorf("%s %s: number without an exact format: %v", version, where, m)
				}
			}
			if slices.Contains(types, "array") && (m["nullable"] == true || slices.Contains(types, "null")) {
				t.Errorf("%s %s: nullable array", version, where)
			}
			// A nullable enum: in 3.1 (JSON Schema) null must be in the
			// enum for null to pass; in 3.0 nullable says it, and null in
			// the enum gives a Go client a constant "<nil>".
			if enum, ok := m["enum"].([]any); ok && (m["nullable"] == true || slices.Contains(types, "null")) {
				nullableEnums++
				if slices.Contains(enum, nil) != (version == "3.1") {
					t.Errorf("%s %s: nullable enum %v", version, where, enum)
				}
			}
			// ProblemItem.value is any JSON value: {} is its exact schema.
			if _, ok := m["$ref"]; !ok && len(types) == 0 && !strings.HasSuffix(where, "/ProblemItem/properties/value") && m["anyOf"] == nil && m["oneOf"] == nil && m["allOf"] == nil &&
				m["additionalProperties"] == nil && m["properties"] == nil && strings.Contains(where, "/properties/") {
				t.Errorf("%s %s: property without a schema: %v", version, where, m)
			}
		})
		if numbers < 50 || nullableEnums == 0 {
			t.Fatalf("%s: only %d numbers and %d nullable enums seen", version, numbers, nullableEnums)
		}
	}

	spec := Spec()
	aliases := aliasIDs()
	for path, item := range spec.Paths {
		for _, op := range []*huma.Operation{item.Get, item.Post, item.Put, item.Delete, item.Patch} {
			if op != nil && aliases[op.OperationID] {
				t.Errorf("alias %s documented at %s", op.OperationID, path)
			}
		}
	}
	for _, r := range (&server{}).routes() {
		for _, a := range r.aliases {
			if item := spec.Paths[a.path]; item != nil && itemOperations(item)[r.method] != nil {
				t.Errorf("alias %s %s is in the document", r.method, a.path)
			}
		}
	}
	// The events' startedAt is a string or a number (or null).
	body := spec.Components.Schemas.Map()["EventRegisterBody"]
	if st := body.Properties["startedAt"]; st == nil || len(st.AnyOf) != 2 {
		t.Fatalf("events startedAt has no schema: %+v", st)
	}
}

// walkSchemas calls f on every object of the document that has a type,
// with its JSON pointer.
func walkSchemas(n any, where string, f func(string, map[string]any)) {
	switch v := n.(type) {
	case map[string]any:
		parent := where[:max(strings.LastIndex(where, "/"), 0)]
		_, typed := v["type"].(string)
		_, typeList := v["type"].([]any)
		if typed || typeList || strings.HasSuffix(where, "/schema") || strings.HasSuffix(parent, "/properties") {
			f(where, v)
		}
		for k, c := range v {
			if k == "example" || k == "examples" {
				continue // values, not schemas
			}
			walkSchemas(c, where+"/"+k, f)
		}
	case []any:
		for i, c := range v {
			walkSchemas(c, fmt.Sprintf("%s/%d", where, i), f)
		}
	}
}

// schemaTypes is a schema's type, as a list (3.1 allows several).
func schemaTypes(m map[string]any) []string {
	switch t := m["type"].(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, x := range t {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// The aliases are out of the document but still served.
func TestAliasesAnswer(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, r := range (&server{}).routes() {
		for _, a := range r.aliases {
			switch {
			case r.method == post:
				s.do(post, a.path, "[]").wantStatus(t, http.StatusCreated)
			case strings.Contains(a.path, "{id}"):
				pr := s.do(get, samplePath(a.path), nil).problem(t, http.StatusNotFound)
				if !strings.Contains(pr.Detail, "no measurement with id 1") {
					t.Errorf("%s: %+v", a.path, pr)
				}
			default:
				s.do(r.method, a.path, nil).wantStatus(t, http.StatusOK)
			}
		}
	}
}

// announceBody sends a request whose headers announce a body of length
// bytes, sends one byte of it, and returns the status of the answer read
// within 10 seconds ("" when none came).
func announceBody(t *testing.T, base, method, path string, length int64, header []string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n",
		method, path, u.Host, length)
	for i := 0; i+1 < len(header); i += 2 {
		req += header[i] + ": " + header[i+1] + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n[")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return ""
	}
	if f := strings.Fields(line); len(f) >= 2 {
		return f[1]
	}
	return ""
}

// TestEmptyQueryValueIsAbsent: a parameter given with an empty value is
// taken as absent, its default or no filter (README, "API at a glance"),
// as flask-profiler's dashboard sends its unused filters.
func TestEmptyQueryValueIsAbsent(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, c := range []struct {
		path       string
		page, size int
	}{
		{"/flows?hour=1&page=&size=", 1, 50},
		{"/api/measurements/?method=&name=&app=&page=", 1, 50},
		{"/apiv0.1/states?state=&page=", 1, 50},
		{"/mrd/devices?size=", 1, 50},
	} {
		var got struct{ Page, Size int }
		s.do("GET", c.path, nil).wantStatus(t, http.StatusOK).decode(t, &got)
		if got.Page != c.page || got.Size != c.size {
			t.Errorf("%s: page %d size %d, want %d and %d", c.path, got.Page, got.Size, c.page, c.size)
		}
	}
	s.do("GET", "/flows?hour=1&page=0", nil).wantStatus(t, http.StatusUnprocessableEntity)
}

// TestBareQueryKeyIsAbsent: a parameter written without "=" (`?src_app`)
// has the empty value (url.ParseQuery's reading, and the strict check's),
// so it is absent too. huma's query reader took it as the value "true": an
// audit found /flows?hour=1&src_app answering no flows (the filter
// src_app="true"), /api/measurements/?size=1&name none, and
// /flows?hour=1&page a 422 "page must be an integer" echoing "true".
func TestBareQueryKeyIsAbsent(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	s.do("POST", "/flows", `[{"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":1,"bytes_rx":2,"hour":1}]`).
		wantStatus(t, http.StatusCreated)
	now := time.Now().Unix()
	s.do("POST", "/api/measurements", fmt.Sprintf(`[{"name":"/a","method":"GET","app":"shop","startedAt":%d,"endedAt":%d}]`,
		now-10, now-9)).wantStatus(t, http.StatusCreated)
	for _, c := range []struct {
		path        string
		total, page int
	}{
		{"/flows?hour=1&src_app", 1, 1},
		{"/flows?hour=1&page", 1, 1},
		{"/flows?hour=1&size&vpc_id", 1, 1},
		{"/api/measurements/?app=shop&name", 1, 1},
		{"/api/measurements/grouped/?app=shop&method&sort", 1, 1},
		{"/api/measurements/?app=shop&skip&limit", 1, 1},
	} {
		var got struct{ Total, Page, Size int }
		s.do("GET", c.path, nil).wantStatus(t, http.StatusOK).decode(t, &got)
		if got.Total != c.total || got.Page != c.page || got.Size != 50 {
			t.Errorf("%s: total %d page %d size %d, want %d, %d and 50", c.path, got.Total, got.Page, got.Size, c.total, c.page)
		}
	}
	var ts struct{ Series map[string]int64 }
	s.do("GET", fmt.Sprintf("/api/measurements/timeseries/?startedAt=%d&endedAt=%d&interval", now-3600, now), nil).
		wantStatus(t, http.StatusOK).decode(t, &ts)
	if len(ts.Series) != 2 { // hourly, the default: the two hours the window touches
		t.Errorf("timeseries with a bare interval: %v, want two hourly buckets", ts.Series)
	}
	// A required parameter written bare is missing, not "true".
	p := s.do("GET", "/flows?hour", nil).problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("query.hour", "required") || len(p.Errors) != 1 {
		t.Errorf("/flows?hour: %+v, want one required item at query.hour", p.Errors)
	}
}
