package api

import (
	"context"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// Every bad parameter of a request is listed at once, each named with where
// it is.
func TestParamsAllFailuresAtOnce(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	for _, c := range []struct {
		path string
		want []string // locations
	}{
		{"/api/measurements/?name=%ff&app=a%00&method=GET&startedAt=1", []string{"query.name", "query.app"}},
		{"/mrd/devices/a%00b/metrics/%ED%A0%80/history?from=%ff&bucket=5m", []string{"path.id", "path.name", "query.from"}},
		{"/apiv0.1/states?host=%00&state=running", []string{"query.host"}},
		{"/flows?hour=1&page=%ff", []string{"query.page"}},
	} {
		t.Run(c.path, func(t *testing.T) {
			p := s.do("GET", c.path, nil).problem(t, http.StatusUnprocessableEntity)
			if len(p.Errors) != len(c.want) {
				t.Fatalf("%d items, want %d: %+v", len(p.Errors), len(c.want), p.Errors)
			}
			for _, loc := range c.want {
				if !p.hasError(loc, "unicode") {
					t.Fatalf("no unicode item at %s: %+v", loc, p.Errors)
				}
			}
			for _, e := range p.Errors {
				if e.Source == "" || e.Detail == "" {
					t.Fatalf("item without source or detail: %+v", e)
				}
			}
		})
	}
	// A repeated parameter is a fault of its own, and each of its values
	// is checked, not only the first one huma reads.
	p := s.do("GET", "/api/measurements/?name=ok&name=%00", nil).problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 2 || !p.hasError("query.name", "unicode") || !p.hasError("query.name", "duplicate") {
		t.Fatalf("a repeated name: %+v", p.Errors)
	}
}

// Well-formed ids keep their answers: an unknown device is the seed's 404,
// and a request without a token is a 401 whatever its parameters (the
// check runs after authentication, as huma's own validation does).
func TestParamsKeepOtherAnswers(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	for _, path := range []string{"/mrd/devices/nosuch", "/mrd/devices/nosuch/metrics"} {
		p := s.do("GET", path, nil).problem(t, http.StatusNotFound)
		if len(p.Errors) != 1 || p.Errors[0].Title != "Host Not Found" {
			t.Fatalf("GET %s: %+v", path, p)
		}
	}
	s.do("PUT", "/mrd/nosuch/metrics", metricDoc("x", 1, "int8", 5), bearer(t)...).problem(t, http.StatusNotFound)
	s.do("DELETE", "/mrd/devices/a%00b", nil).problem(t, http.StatusUnauthorized)
	s.do("PUT", "/mrd/a%00b/metrics", metricDoc("x", 1, "int8", 5)).problem(t, http.StatusUnauthorized)
	// With a token, the id is judged.
	p := s.do("DELETE", "/mrd/devices/a%00b", nil, bearer(t)...).problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("path.id", "unicode") {
		t.Fatalf("DELETE: %+v", p.Errors)
	}
	// Paths no operation serves stay the router's 404 and 405.
	s.do("GET", "/nosuch/%00", nil).problem(t, http.StatusNotFound)
	r := s.do("PATCH", "/mrd/devices/a%00b", nil)
	r.problem(t, http.StatusMethodNotAllowed)
	if r.Header.Get("Allow") == "" {
		t.Fatal("405 without Allow")
	}
	// Collections and runs: a malformed but valid-text id is still a 404.
	s.do("GET", collectionsURL+"/abc", nil).problem(t, http.StatusNotFound)
	s.do("GET", "/apiv0.1/events/abc", nil).problem(t, http.StatusNotFound)
}

// The check answers before the handler: on a server whose database does not
// answer, every request of the hostile table with text that is not valid is
// still its 422, never the 503 of a database that was asked.
func TestParamsNeverAskTheDatabase(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.JWTSecret = testSecret
	pc, err := pgxpool.ParseConfig("postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	h, _ := New(Deps{Store: postgres.New(pool, postgres.Options{}).Stores(), Config: cfg})
	srv := newHTTPTest(t, h)
	s := &testServer{Server: srv, Pool: pool, t: t}

	// Control: a well-formed request does reach the (dead) database.
	s.do("GET", "/api/measurements/?name=ok", nil).problem(t, http.StatusServiceUnavailable)

	bodies := hostileBodies()
	n := 0
	for _, c := range hostileCases(Spec()) {
		if !badText[c.value] {
			continue
		}
		n++
		p := s.do(c.method, c.path, bodies[c.method+" "+c.template], bearer(t)...).problem(t, http.StatusUnprocessableEntity)
		if !p.hasError(c.in+"."+c.param, "unicode") {
			t.Errorf("%s %s: %+v", c.method, c.path, p.Errors)
		}
	}
	if n < 100 {
		t.Fatalf("only %d cases", n)
	}
}
