package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/migrate"
	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/migrations"
)

func TestFinite(t *testing.T) {
	for _, c := range []struct{ in, want float64 }{
		{1.5, 1.5}, {0, 0}, {-2, -2}, {math.MaxFloat64, math.MaxFloat64},
		{math.NaN(), 0}, {math.Inf(1), math.MaxFloat64}, {math.Inf(-1), -math.MaxFloat64},
	} {
		if got := finite(c.in); got != c.want {
			t.Errorf("finite(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// The fast path of POST /api/measurements refuses what the schema refuses:
// an elapsed past its maximum goes to the slow path, which explains it.
func TestMeasurementsFastPathElapsedBound(t *testing.T) {
	body := func(elapsed string) []byte {
		return []byte(`[{"name":"/x","method":"GET","startedAt":1,"endedAt":2,"elapsed":` + elapsed + `}]`)
	}
	if _, _, ok := fastDecodeMeasurements(body("253402300799"), math.MaxInt, maxEpochSeconds); !ok {
		t.Fatal("the largest elapsed is refused by the fast path")
	}
	for _, e := range []string{"253402300799.001", "1e306", "-0.5"} {
		if _, _, ok := fastDecodeMeasurements(body(e), math.MaxInt, maxEpochSeconds); ok {
			t.Fatalf("elapsed %s accepted by the fast path", e)
		}
	}
}

// Every numeric input outside its documented range is a 422 whose item
// names the rule (min, max or type) and where the value is.
func TestNumberRanges(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.EnableTokenEndpoint = true })
	s.createDevice(t, "d1")
	var reg struct{ UUID string }
	s.do("POST", "/apiv0.1/events/register", `{"host":"h","measurement":{"fields":{}}}`).wantStatus(t, http.StatusOK).decode(t, &reg)
	m := func(extra string) string {
		return `[{"name":"/x","method":"GET","startedAt":1,"endedAt":2` + extra + `}]`
	}
	const max = "253402300799"
	for _, c := range []struct {
		method, path, body string
		location, title    string
	}{
		{"POST", "/api/measurements", m(`,"elapsed":253402300800`), "body[0].elapsed", "max"},
		{"POST", "/api/measurements", m(`,"elapsed":1e306`), "body[0].elapsed", "max"},
		{"POST", "/api/measurements", m(`,"elapsed":-1`), "body[0].elapsed", "min"},
		{"POST", "/api/measurements", `[{"name":"/x","method":"GET","startedAt":253402300800,"endedAt":253402300800}]`, "body[0].startedAt", "max"},
		{"POST", "/api/measurements", `[{"name":"/x","method":"GET","startedAt":-1,"endedAt":2}]`, "body[0].startedAt", "min"},
		{"POST", "/api/measurements", `[{"name":"/x","method":"GET","startedAt":1,"endedAt":1e300}]`, "body[0].endedAt", "max"},
		{"GET", "/api/measurements/?elapsed=253402300800", "", "query.elapsed", "max"},
		{"GET", "/api/measurements/?elapsed=Infinity", "", "query.elapsed", "type"},
		{"GET", "/api/measurements/?elapsed=-1", "", "query.elapsed", "min"},
		{"GET", "/api/measurements/?elapsed=1e309", "", "query.elapsed", "type"},
		{"GET", "/api/measurements/?elapsed=NaN", "", "query.elapsed", "type"},
		{"GET", "/api/measurements/grouped/?elapsed=253402300800", "", "query.elapsed", "max"},
		{"GET", "/api/measurements/grouped/?startedAt=-Infinity", "", "query.startedAt", "type"},
		{"GET", "/api/measurements/methodDistribution/?endedAt=253402300800", "", "query.endedAt", "max"},
		{"GET", "/api/measurements/timeseries/?startedAt=99999999999999999999", "", "query.startedAt", "max"},
		{"GET", "/api/measurements/timeseries/?endedAt=-1e309", "", "query.endedAt", "type"},
		{"GET", "/api/measurements/99999999999999999999", "", "path.id", "max"},
		{"GET", "/api/measurements/-99999999999999999999", "", "path.id", "min"},
		{"GET", "/flows?hour=99999999999999999999", "", "query.hour", "max"},
		{"GET", "/mrd/devices?size=99999999999999999999", "", "query.size", "max"},
		// The hidden flask-profiler parameters as the documented ones.
		{"GET", "/api/measurements/?skip=99999999999999999999", "", "query.skip", "max"},
		{"GET", "/api/measurements/grouped/?limit=-99999999999999999999", "", "query.limit", "min"},
		{"GET", "/flows?hour=1x", "", "query.hour", "type"},
		{"GET", "/flows?hour=2147483648", "", "query.hour", "max"},
		{"GET", "/flows?hour=1&size=101", "", "query.size", "max"},
		{"GET", "/flows?hour=1&page=0", "", "query.page", "min"},
		{"POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":9223372036854775808,"bytes_rx":0,"hour":1}]`, "body[0].bytes_tx", "max"},
		{"POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":0,"bytes_rx":99999999999999999999999,"hour":1}]`, "body[0].bytes_rx", "max"},
		// Past the range of a JSON number (float64): valid JSON, a type
		// item where the number is.
		{"POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":0,"bytes_rx":1e309,"hour":1}]`, "body[0].bytes_rx", "type"},
		{"POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":-1e400,"bytes_rx":0,"hour":1}]`, "body[0].bytes_tx", "type"},
		{"POST", "/api/measurements", m(`,"elapsed":1e400`), "body[0].elapsed", "type"},
		{"POST", "/apiv0.1/events/register", `{"host":"h","measurement":{"fields":{"hatchRate":1e400}}}`, "body.measurement.fields.hatchRate", "type"},
		// A check of its own says more there: its max, the type item left out.
		{"POST", "/apiv0.1/events/register", `{"host":"h","startedAt":1e400,"measurement":{"fields":{}}}`, "body.startedAt", "max"},
		{"POST", "/mrd/token", `{"expires_in":1e400}`, "body.expires_in", "type"},
		{"POST", "/apiv0.1/events/register", `{"host":"h","measurement":{"fields":{"hatchRate":2147483648}}}`, "body.measurement.fields.hatchRate", "max"},
		{"POST", "/apiv0.1/events/register", `{"host":"h","measurement":{"fields":{"hatchRate":-0.5}}}`, "body.measurement.fields.hatchRate", "min"},
		{"POST", "/apiv0.1/events/register", `{"host":"h","measurement":{"fields":{"clients":2147483648}}}`, "body.measurement.fields.clients", "max"},
		{"POST", "/apiv0.1/events/register", `{"host":"h","measurement":{"fields":{"requests":9007199254740992}}}`, "body.measurement.fields.requests", "max"},
		{"POST", "/apiv0.1/events/register", `{"host":"h","startedAt":` + max + `0,"measurement":{"fields":{}}}`, "body.startedAt", "max"},
		{"POST", "/apiv0.1/events/commit", `{"uuid":"` + reg.UUID + `","user_count":2147483648,"measurement":{"fields":{"requestStats":{}}}}`, "body.user_count", "max"},
		{"POST", "/mrd/token", `{"expires_in":31622401}`, "body.expires_in", "max"},
		{"POST", "/mrd/token", `{"expires_in":0}`, "body.expires_in", "min"},
		{"GET", "/mrd/devices/d1/metrics/m/history?bucket=1e309s", "", "query.bucket", "format"},
		{"GET", "/mrd/devices/d1/metrics/m/history?bucket=8785h", "", "query.bucket", "format"},
	} {
		t.Run(c.method+" "+c.path+" "+c.body, func(t *testing.T) {
			var body any
			if c.body != "" {
				body = c.body
			}
			r := s.do(c.method, c.path, body)
			if c.location == "" { // not JSON that a 64-bit number can hold: refused, never a 500
				if r.Status != http.StatusBadRequest && r.Status != http.StatusUnprocessableEntity {
					t.Fatalf("status %d; body %s", r.Status, r.Body)
				}
				return
			}
			p := r.problem(t, http.StatusUnprocessableEntity)
			if !p.hasError(c.location, c.title) {
				t.Fatalf("no %s item at %s: %s", c.title, c.location, r.Body)
			}
		})
	}
	// An integer past 64 bits is told its documented bound, as one that
	// parses is; without one, 64 bits.
	for path, want := range map[string]string{
		"/flows?hour=99999999999999999999":         "hour must be 2147483647 or less",
		"/flows?hour=1&page=-99999999999999999999": "page must be 1 or greater",
		"/api/measurements/99999999999999999999":   "id must fit in a 64-bit integer",
	} {
		p := s.do("GET", path, nil).problem(t, http.StatusUnprocessableEntity)
		if len(p.Errors) != 1 || p.Errors[0].Detail != want {
			t.Errorf("%s: %+v, want %q", path, p.Errors, want)
		}
	}
	// Nothing of that was stored.
	var n int64
	if err := s.Pool.QueryRow(context.Background(),
		`SELECT (SELECT count(*) FROM measurements) + (SELECT count(*) FROM flows) + (SELECT count(*) FROM event_runs)`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 { // the run registered above
		t.Fatalf("%d rows stored", n)
	}
}

// A number past the range of a JSON number in a body that also repeats a
// name or holds a NUL: one 422 listing every fault, the number's item
// where the number is (the fuzzer found the measurements' answer without
// the repeated name).
func TestHugeNumberBesideOtherFaults(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, c := range []struct {
		path, body  string
		fault, item string // the other fault's location and title
		number      string // the number's location
	}{
		{"/api/measurements", `[{"name":"/x","name":"/y","method":"GET","startedAt":1,"endedAt":2,"elapsed":1e700}]`,
			"body[0].name", titleDuplicate, "body[0].elapsed"},
		{"/api/measurements", `[{"":0,"":1e700}]`, "body[0].", titleDuplicate, "body[0]."},
		{"/api/measurements", `[{"name":"/x\u0000","method":"GET","startedAt":1,"endedAt":1e700}]`,
			"body[0].name", titleUnicode, "body[0].endedAt"},
		{"/flows", `[{"src_app":"a","src_app":"b","dest_app":"c","vpc_id":"v","bytes_tx":1e700,"bytes_rx":0,"hour":1}]`,
			"body[0].src_app", titleDuplicate, "body[0].bytes_tx"},
		{"/flows", `[{"src_app":"a\u0000","dest_app":"c","vpc_id":"v","bytes_tx":0,"bytes_rx":-1e700,"hour":1}]`,
			"body[0].src_app", titleUnicode, "body[0].bytes_rx"},
		{"/apiv0.1/events/register", `{"host":"h","host":"i","measurement":{"fields":{"hatchRate":1e700}}}`,
			"body.host", titleDuplicate, "body.measurement.fields.hatchRate"},
		// A member named with digits is a name, not an index.
		{"/apiv0.1/events/register", `{"host":"h","host":"i","measurement":{"fields":{"0":[1,1e700]}}}`,
			"body.host", titleDuplicate, "body.measurement.fields.0[1]"},
		{"/api/measurements", `[{"name":"/x","name":"/y","method":"GET","startedAt":1,"endedAt":2,"7":1e700}]`,
			"body[0].name", titleDuplicate, "body[0].7"},
	} {
		p := s.do("POST", c.path, c.body).problem(t, http.StatusUnprocessableEntity)
		if !p.hasError(c.fault, c.item) || !p.hasError(c.number, "type") {
			t.Errorf("POST %s %s: want a %s item at %s and a type item at %s: %+v", c.path, c.body, c.item, c.fault, c.number, p.Errors)
		}
	}
}

// The largest values every numeric input allows, stored and read back
// through every aggregate: 200 with finite figures. 10,000 records of the
// largest elapsed share one hourly cell (one batch), and the records at
// both ends of the epoch range fill the first and last cells there are.
func TestLargestValuesStayFinite(t *testing.T) {
	t.Parallel()
	// MAX_TIME_AHEAD off: the records below are dated up to the documented
	// bound, 253402300799 (9999-12-31T23:59:59Z).
	s := newTestServer(t, func(c *config.Config) { c.MaxTimeAhead = 0 })
	const maxE = float64(maxElapsedSeconds)
	const hour = 1700000000.0 // 2023-11-14T22:13:20Z
	batch := make([]rec, 10000)
	for i := range batch {
		batch[i] = rec{"name": "/max", "method": "GET", "startedAt": hour + float64(i)/1000, "endedAt": hour + float64(i)/1000, "elapsed": maxE, "app": "big"}
	}
	postIDs(t, s, batch)
	ids := postIDs(t, s, []rec{
		{"name": "/span", "method": "POST", "startedAt": 0, "endedAt": maxE}, // elapsed computed: the largest
		{"name": "/end", "method": "PUT", "startedAt": maxE, "endedAt": maxE, "elapsed": maxE},
		{"name": "/start", "method": "PUT", "startedAt": 0, "endedAt": 0, "elapsed": maxE},
	})

	// The service's own requests (the collections' source) with the largest
	// elapsed, written as the self-profiler writes them.
	uri := createCollection(t, s)
	now := time.Now()
	own := make([]store.Measurement, 3)
	for i := range own {
		own[i] = store.Measurement{Name: "/flows", Method: "POST", App: "telemetry", StartedAt: now, EndedAt: now,
			Elapsed: maxE, Args: json.RawMessage(`[]`), Kwargs: json.RawMessage(`{}`), Context: json.RawMessage(`{"path":"/flows"}`)}
	}
	if _, err := postgres.New(s.Pool, postgres.Options{}).Stores().Measurements.Insert(context.Background(), own); err != nil {
		t.Fatal(err)
	}

	all := fmt.Sprintf("startedAt=0&endedAt=%d", maxElapsedSeconds)
	checkGroups := func(path string) {
		t.Helper()
		var g groupPage
		s.do("GET", path, nil).wantStatus(t, http.StatusOK).decode(t, &g)
		found := false
		for _, it := range g.Items {
			for _, v := range []float64{it.AvgElapsed, it.MinElapsed, it.MaxElapsed} {
				if math.IsInf(v, 0) || math.IsNaN(v) || v < 0 || v > maxE {
					t.Fatalf("%s: %+v", path, it)
				}
			}
			if it.Name == "/max" {
				found = true
				if it.Count != 10000 || it.AvgElapsed != maxE || it.MinElapsed != maxE || it.MaxElapsed != maxE {
					t.Fatalf("%s: /max = %+v", path, it)
				}
			}
		}
		if !found {
			t.Fatalf("%s: no /max group in %+v", path, g.Items)
		}
	}
	checkGroups("/api/measurements/grouped/?" + all)                                                      // rollups
	checkGroups("/api/measurements/grouped/?" + all + "&elapsed=" + fmt.Sprint(maxElapsedSeconds))        // rows
	checkGroups(fmt.Sprintf("/api/measurements/grouped/?startedAt=%.1f&endedAt=%.1f", hour-0.5, hour+20)) // edges
	checkGroups("/api/measurements/grouped/?" + all + "&sort=avgElapsed,desc&app=big")

	p := list(t, s, "/api/measurements/?"+all+"&sort=elapsed,desc&size=100")
	if p.Total != 10006 || p.Items[0].Elapsed != maxE {
		t.Fatalf("list: total %d, first %+v", p.Total, p.Items[0])
	}
	var one getMeasurementOutput
	s.do("GET", fmt.Sprintf("/api/measurements/%d", ids[0]), nil).wantStatus(t, http.StatusOK).decode(t, &one.Body)
	if m := one.Body.Measurement; m.Elapsed != maxE || m.StartedAt != 0 || m.EndedAt != maxE {
		t.Fatalf("measurement %+v", m)
	}
	var d distributionOutput
	s.do("GET", "/api/measurements/methodDistribution/?"+all, nil).wantStatus(t, http.StatusOK).decode(t, &d.Body)
	if d.Body.Distribution["GET"] != 10000 || d.Body.Distribution["PUT"] != 2 || d.Body.Distribution["POST"] != 4 {
		t.Fatalf("distribution %v", d.Body.Distribution)
	}
	for _, q := range []string{
		fmt.Sprintf("interval=hourly&startedAt=%.0f&endedAt=%.0f", hour-7200, hour+7200),
		fmt.Sprintf("interval=daily&startedAt=%d&endedAt=%d", maxElapsedSeconds-10*86400, maxElapsedSeconds),
		fmt.Sprintf("interval=daily&startedAt=0&endedAt=%d", 40000*86400),
	} {
		var ts struct{ Serie map[string]int64 }
		s.do("GET", "/api/measurements/timeseries/?"+q, nil).wantStatus(t, http.StatusOK).decode(t, &ts)
		var sum int64
		for _, n := range ts.Serie {
			sum += n
		}
		if sum == 0 {
			t.Fatalf("timeseries %s: %v", q, ts.Serie)
		}
	}

	c := getCollection(t, s, uri)
	if len(c.HTTPURLs.Data) != 1 {
		t.Fatalf("collection urls %+v", c.HTTPURLs.Data)
	}
	if u := c.HTTPURLs.Data[0]; u.Hits != 3 || u.AverageResponseTime != maxE*1000 || u.LongestResponseTime != maxE*1000 {
		t.Fatalf("collection url %+v", u)
	}
}

// Rows stored before elapsed had a range (1e306, 1.7e308: one batch whose
// hourly cell summed to +Inf, and a row in another cell) are brought into it
// by migration 00007, after which every answer built from them is 200 with
// finite figures, and the range is a CHECK that no writer can pass.
func TestElapsedMigrationRepairsOldRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newTestServer(t)
	uri := createCollection(t, s)
	m, err := migrate.New(s.Pool)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.DownTo(ctx, slog.New(slog.DiscardHandler), 6); err != nil { // before 00007: the range is gone
		t.Fatal(err)
	}
	st := postgres.New(s.Pool, postgres.Options{}).Stores().Measurements
	now := time.Now()
	old := func(at time.Time, elapsed ...float64) []store.Measurement {
		recs := make([]store.Measurement, len(elapsed))
		for i, e := range elapsed {
			recs[i] = store.Measurement{Name: "/old", Method: "GET", App: "telemetry", StartedAt: at, EndedAt: at, Elapsed: e,
				Args: json.RawMessage(`[]`), Kwargs: json.RawMessage(`{}`), Context: json.RawMessage(`{"path":"/old"}`)}
		}
		return recs
	}
	// Today's Insert also writes the elapsed histograms (migrations 00010, 00013, 00016):
	// give it their tables while the schema is older, and drop them before
	// migrating up (00010 creates them and backfills them from the rows).
	for _, table := range []string{"measurements_hourly_hist", "measurements_daily_hist"} {
		if _, err := s.Pool.Exec(ctx, `CREATE TABLE `+table+` (start_hour timestamptz, end_hour timestamptz, app text,
			name text, method text, part smallint, hist bytea, PRIMARY KEY (start_hour, end_hour, app, name, method, part))`); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Pool.Exec(ctx, `ALTER TABLE measurements_daily_hist RENAME start_hour TO start_day;
		ALTER TABLE measurements_daily_hist RENAME end_hour TO end_day`); err != nil {
		t.Fatal(err)
	}
	// And the 5-minute counts (migration 00019, which fills them from the
	// rows), the collections' minute cells with their field function
	// (migration 00020, which does too; this stand-in counts no request, so
	// that the sum of these unbounded elapsed values cannot overflow), and
	// the sealed units the ingest unseals (migration 00023).
	if _, err := s.Pool.Exec(ctx, `CREATE TABLE measurements_5min (start_bin timestamptz, end_bin timestamptz,
		count bigint, PRIMARY KEY (start_bin, end_bin));
		CREATE TABLE measurements_sealed (unit_secs integer, unit_start timestamptz, PRIMARY KEY (unit_secs, unit_start));
		CREATE TABLE collection_http_minute (minute timestamptz, path text, method text, hits bigint,
		sum_elapsed float8, max_elapsed float8, PRIMARY KEY (minute, path, method));
		CREATE TABLE collection_http_10s (bin timestamptz, path text, method text, hits bigint,
		sum_elapsed float8, max_elapsed float8, PRIMARY KEY (bin, path, method));
		CREATE FUNCTION collection_http_fields(context jsonb, name text, elapsed float8)
		RETURNS TABLE (path text, hits bigint, longest float8) LANGUAGE sql AS $$ SELECT name, 0::bigint, 0::float8 $$`); err != nil {
		t.Fatal(err)
	}
	// And the write path's functions (migration 00034), created from the
	// migration itself and dropped by its own Down section.
	up, down := migrationSections(t, "00034_measurements_write_functions.sql")
	// With the unseal function's form of migration 00048 (the bins too), a
	// stand-in of it: that migration's other statements need tables this
	// schema has not.
	up += `;
		CREATE FUNCTION telemetry_unseal_measurement_units(timestamptz[], timestamptz[], timestamptz[], timestamptz[])
		RETURNS void LANGUAGE sql AS $$ DELETE FROM measurements_sealed
			WHERE (unit_secs = 3600 AND unit_start = ANY($1)) OR (unit_secs = 21600 AND unit_start = ANY($2))
			   OR (unit_secs = 86400 AND unit_start = ANY($3)) OR (unit_secs = 300 AND unit_start = ANY($4)) $$`
	down += `;
		DROP FUNCTION telemetry_unseal_measurement_units(timestamptz[], timestamptz[], timestamptz[], timestamptz[])`
	if _, err := s.Pool.Exec(ctx, up); err != nil {
		t.Fatal(err)
	}
	for _, batch := range [][]store.Measurement{old(now, 1.7e308, 1.7e308), old(now.Add(-2*time.Hour), 1e306)} {
		if _, err := st.Insert(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Pool.Exec(ctx, down+`;
		DROP TABLE measurements_hourly_hist, measurements_daily_hist, measurements_5min, collection_http_minute, collection_http_10s, measurements_sealed;
		DROP FUNCTION collection_http_fields(jsonb, text, float8)`); err != nil {
		t.Fatal(err)
	}
	if err := m.Up(ctx, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}

	const maxE = float64(maxElapsedSeconds)
	var over int64
	if err := s.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM measurements WHERE elapsed > 253402300799)
		+ (SELECT count(*) FROM measurements_hourly WHERE sum_elapsed > count * 253402300799::float8 OR max_elapsed > 253402300799)
		+ (SELECT count(*) FROM measurements_daily WHERE sum_elapsed > count * 253402300799::float8 OR max_elapsed > 253402300799)`).Scan(&over); err != nil {
		t.Fatal(err)
	}
	if over != 0 {
		t.Fatalf("%d rows or cells still out of range", over)
	}
	window := fmt.Sprintf("startedAt=%d&endedAt=%d", now.Add(-72*time.Hour).Unix(), now.Add(time.Minute).Unix())
	var g groupPage
	s.do("GET", "/api/measurements/grouped/?app=telemetry&"+window, nil).wantStatus(t, http.StatusOK).decode(t, &g)
	if len(g.Items) != 1 || g.Items[0].Count != 3 || g.Items[0].AvgElapsed != maxE || g.Items[0].MaxElapsed != maxE {
		t.Fatalf("grouped %+v", g.Items)
	}
	c := getCollection(t, s, uri)
	if len(c.HTTPURLs.Data) != 1 || c.HTTPURLs.Data[0].LongestResponseTime != maxE*1000 {
		t.Fatalf("collection urls %+v", c.HTTPURLs.Data)
	}
	// The CHECK: past the range is refused even around the API.
	if _, err := st.Insert(ctx, old(now, 1e306)); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("insert past the range: %v", err)
	}
}

// A device's double metric may be any finite number: the bucket average of
// two values near the largest double is that value, not an overflow refused
// to every reader of the series.
func TestDeviceHistoryAverageOfLargestDoubles(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "d1")
	for _, v := range []float64{1.7e308, 1.7e308, -math.MaxFloat64, -math.MaxFloat64} {
		name := "hi"
		if v < 0 {
			name = "lo"
		}
		s.do("PUT", "/mrd/d1/metrics", metricDoc(name, v, "double", 600), bearer(t)...).wantStatus(t, http.StatusOK)
	}
	for name, want := range map[string]float64{"hi": 1.7e308, "lo": -math.MaxFloat64} {
		var p struct{ Items []HistoryPoint }
		s.do("GET", "/mrd/devices/d1/metrics/"+name+"/history?bucket=1h", nil).wantStatus(t, http.StatusOK).decode(t, &p)
		if len(p.Items) != 1 || *p.Items[0].Avg != want || *p.Items[0].Count != 2 {
			t.Fatalf("%s: %+v", name, p.Items)
		}
	}
}

// migrationSections returns the Up and Down SQL of one of migrations/ (goose
// annotations are comments to PostgreSQL), for a test that needs a later
// migration's objects on an older schema.
func migrationSections(t *testing.T, name string) (up, down string) {
	t.Helper()
	b, err := migrations.FS.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	up, down, ok := strings.Cut(string(b), "-- +goose Down")
	if !ok {
		t.Fatalf("%s: no Down section", name)
	}
	return up, down
}
