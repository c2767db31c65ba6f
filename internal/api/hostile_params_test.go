package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"github.com/telemetry/telemetry/internal/config"
)

// The parameters of every operation of the document, given hostile values:
// no answer is a 500 (nor a panic, which the recoverer turns into one),
// every 4xx is problem+json, text that is not valid UTF-8 or holds NUL is
// the 422 of params.go naming the parameter, and a refused write changes no
// table. The operations are read from the document, so a new one is covered
// without touching this test.

// hostilePathValues replace one path parameter at a time (already escaped).
var hostilePathValues = []string{"a%00b", "%ff", "%ED%A0%80", strings.Repeat("x", 10<<10), "..%2F..", "%20"}

// hostileQueryValues are given to one query parameter at a time (escaped).
var hostileQueryValues = []string{"%00", "%ff", "%ED%A0%80", "1e309", "-1e309", "NaN", "Infinity",
	"99999999999999999999", strings.Repeat("y", 10<<10)}

// badText are the values params.go must refuse itself.
var badText = map[string]bool{"a%00b": true, "%ff": true, "%ED%A0%80": true, "%00": true}

// hostileBodies are valid bodies for the write operations that have
// parameters, so that the parameter, not the body, is what is judged. Any
// other operation is sent without a body.
func hostileBodies() map[string]any {
	return map[string]any{
		"PUT /mrd/{device_id}/metrics": metricDoc("cpu", 1, "int8", 60),
		"PUT /mrd/devices/{id}":        map[string]string{"name": "renamed"},
	}
}

// resourceTables are every table a request may write.
var resourceTables = []string{"flows", "event_runs", "events", "devices", "device_metrics", "device_metrics_latest",
	"measurements", "measurements_hourly", "measurements_daily", "measurements_method_hourly", "measurements_5min", "collections"}

func rowCounts(t *testing.T, s *testServer) string {
	t.Helper()
	parts := make([]string, len(resourceTables))
	for i, tb := range resourceTables {
		parts[i] = fmt.Sprintf("(SELECT count(*) FROM %s)", tb)
	}
	var counts []int64
	if err := s.Pool.QueryRow(context.Background(), "SELECT ARRAY["+strings.Join(parts, ", ")+"]::bigint[]").Scan(&counts); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for i, tb := range resourceTables {
		fmt.Fprintf(&b, "%s=%d ", tb, counts[i])
	}
	return b.String()
}

// hostileCase is one request of the table.
type hostileCase struct {
	method, template, path string
	param, in, value       string // the parameter given a hostile value, if any
}

// hostileCases builds the requests for every operation of the document.
func hostileCases(oapi *huma.OpenAPI) []hostileCase {
	var cases []hostileCase
	paths := make([]string, 0, len(oapi.Paths))
	for p := range oapi.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, tmpl := range paths {
		item := oapi.Paths[tmpl]
		for _, mo := range []struct {
			method string
			op     *huma.Operation
		}{{"GET", item.Get}, {"PUT", item.Put}, {"POST", item.Post}, {"DELETE", item.Delete}, {"PATCH", item.Patch}} {
			if mo.op == nil {
				continue
			}
			var pathParams, queryParams []string
			for _, p := range mo.op.Parameters {
				switch p.In {
				case "path":
					pathParams = append(pathParams, p.Name)
				case "query":
					queryParams = append(queryParams, p.Name)
				}
			}
			// A benign value for every other path parameter: "9" is a
			// well-formed id of every kind that names nothing, so that no
			// write succeeds and the fixtures stay.
			fill := func(hostile, value string) string {
				path := tmpl
				for _, name := range pathParams {
					v := "9"
					if name == hostile {
						v = value
					}
					path = strings.ReplaceAll(path, "{"+name+"}", v)
				}
				return path
			}
			for _, name := range pathParams {
				for _, v := range hostilePathValues {
					cases = append(cases, hostileCase{mo.method, tmpl, fill(name, v), name, "path", v})
				}
			}
			for _, name := range queryParams {
				for _, v := range hostileQueryValues {
					cases = append(cases, hostileCase{mo.method, tmpl, fill("", "") + "?" + url.QueryEscape(name) + "=" + v, name, "query", v})
				}
			}
			// Undeclared parameters are ignored, whatever they hold.
			cases = append(cases, hostileCase{method: mo.method, template: tmpl,
				path: fill("", "") + "?zz=%00&yy=%ff&xx=%ED%A0%80"})
		}
	}
	return cases
}

func TestHostileParameters(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.EnableTokenEndpoint = true })
	// Something in every table, so that a write that should not happen shows.
	s.createDevice(t, "dev1")
	s.do("PUT", "/mrd/dev1/metrics", metricDoc("cpu", 1, "int8", 60), bearer(t)...).wantStatus(t, http.StatusOK)
	s.do("POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":1}]`).wantStatus(t, http.StatusCreated)
	s.do("POST", "/api/measurements", `[{"name":"/x","method":"GET","startedAt":1700000000,"endedAt":1700000001}]`).wantStatus(t, http.StatusCreated)
	s.eventsRegister(t, `{"host":"h","measurement":{"fields":{}}}`)
	s.do("POST", collectionsURL, nil).wantStatus(t, http.StatusCreated)

	if counts := rowCounts(t, s); strings.Contains(counts, "=0 ") {
		t.Fatalf("a table is empty, so a stray write to it could go unseen: %s", counts)
	}

	cases := hostileCases(Spec())
	if len(cases) < 500 {
		t.Fatalf("only %d cases: the document's operations were not found", len(cases))
	}
	t.Logf("%d requests", len(cases))
	bodies := hostileBodies()
	auth := bearer(t)
	for _, c := range cases {
		name := c.method + " " + c.template + " " + c.in + "." + c.param + "=" + c.value
		if len(name) > 120 {
			name = name[:120]
		}
		write := c.method != "GET"
		var before string
		if write {
			before = rowCounts(t, s)
		}
		r := s.do(c.method, c.path, bodies[c.method+" "+c.template], auth...)
		if r.Status >= 500 {
			t.Errorf("%s: status %d; body %.300s", name, r.Status, r.Body)
			continue
		}
		if r.Status >= 400 {
			if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("%s: status %d with Content-Type %q", name, r.Status, ct)
			}
			if write {
				if after := rowCounts(t, s); after != before {
					t.Errorf("%s: refused (%d) yet the tables changed:\n before %s\n after  %s", name, r.Status, before, after)
				}
			}
		}
		if badText[c.value] {
			// Refused by params.go, before the handler: the item names the parameter.
			if r.Status != http.StatusUnprocessableEntity {
				t.Errorf("%s: status %d, want 422; body %.300s", name, r.Status, r.Body)
				continue
			}
			var p Problem
			r.decode(t, &p)
			if !p.hasError(c.in+"."+c.param, "unicode") {
				t.Errorf("%s: no unicode item at %s.%s: %s", name, c.in, c.param, r.Body)
			}
		}
	}
}
