package api

import (
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/telemetry/telemetry/internal/config"
)

// FuzzReadQueries sends every GET operation of the document a query string
// the fuzzer writes (any bytes, any parameters, any combination of them;
// TestHostileParameters gives one parameter at a time a value from a
// list), over a database with a row of every resource. No answer is a 5xx
// (a panic is a 500 through the recoverer); a 4xx is problem+json whose
// status is the answer's; a 200 is JSON, CSV or NDJSON as its type says,
// and its JSON parses.
func FuzzReadQueries(f *testing.F) {
	s := newTestServer(f, func(c *config.Config) { c.JWTSecret = testSecret })
	auth := []string{"Authorization", "Bearer " + validToken(f)}
	s.do("POST", "/mrd/devices", map[string]string{"id": "dev1", "name": "device dev1"}, auth...).wantStatus(f, http.StatusCreated)
	s.do("PUT", "/mrd/dev1/metrics", metricDoc("cpu", 1, "int8", 60), auth...).wantStatus(f, http.StatusOK)
	s.do("POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":1}]`).wantStatus(f, http.StatusCreated)
	s.do("POST", "/api/measurements", `[{"name":"/x","method":"GET","startedAt":1700000000,"endedAt":1700000001}]`).wantStatus(f, http.StatusCreated)
	var run struct{ UUID string }
	s.do("POST", "/apiv0.1/events/register", `{"host":"h","measurement":{"fields":{}}}`).wantStatus(f, http.StatusOK).decode(f, &run)
	s.do("POST", collectionsURL, nil).wantStatus(f, http.StatusCreated)

	// Every GET path of the document, its path parameters naming the rows
	// above.
	ids := map[string]string{"{id}": "1", "{uuid}": run.UUID, "{name}": "cpu", "{device_id}": "dev1"}
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
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %q: %v", path, err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatalf("GET %q: %v", path, err)
		}
		r := response{Status: res.StatusCode, Header: res.Header, Body: body}
		ct := r.Header.Get("Content-Type")
		switch {
		case r.Status >= 500:
			t.Fatalf("GET %q: status %d; body %.300s", path, r.Status, r.Body)
		case r.Status >= 400:
			var p Problem
			if ct != "application/problem+json" || json.Unmarshal(r.Body, &p) != nil || p.Status != r.Status {
				t.Fatalf("GET %q: status %d, Content-Type %q, body %.300s", path, r.Status, ct, r.Body)
			}
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
