package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// rec is a measurement as a client posts it (map, so tests can leave
// fields out or send wrong types).
type rec map[string]any

// mrec builds a record that started at start (epoch seconds) and took d seconds.
func mrec(name, method string, start, d float64, extra ...any) rec {
	r := rec{"name": name, "method": method, "startedAt": start, "endedAt": start + d}
	for i := 0; i+1 < len(extra); i += 2 {
		r[extra[i].(string)] = extra[i+1]
	}
	return r
}

// postIDs posts records and returns the new ids.
func postIDs(t *testing.T, s *testServer, recs []rec) []int64 {
	t.Helper()
	var out struct{ IDs []int64 }
	s.do("POST", "/api/measurements", recs).wantStatus(t, http.StatusCreated).decode(t, &out)
	if len(out.IDs) != len(recs) {
		t.Fatalf("got %d ids for %d records", len(out.IDs), len(recs))
	}
	return out.IDs
}

type measurementPage struct {
	Items        []Measurement `json:"items"`
	Measurements []Measurement `json:"measurements"`
	Total        int64         `json:"total"`
	Page         int64         `json:"page"`
	Size         int64         `json:"size"`
}

type groupPage struct {
	Items        []MeasurementGroup `json:"items"`
	Measurements []MeasurementGroup `json:"measurements"`
	Total        int64              `json:"total"`
}

func list(t *testing.T, s *testServer, path string) measurementPage {
	t.Helper()
	var p measurementPage
	s.do("GET", path, nil).wantStatus(t, http.StatusOK).decode(t, &p)
	if !reflect.DeepEqual(p.Items, p.Measurements) {
		t.Fatalf("items and measurements differ: %+v / %+v", p.Items, p.Measurements)
	}
	return p
}

func ids(ms []Measurement) []int64 {
	out := []int64{}
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

// The seed's own records: stored and answered field for field.
const seedMeasurement = `{
  "args": [],
  "context": {"args": {}, "body": "", "form": {}, "func": "listProducts",
    "headers": {"Accept": "text/html", "Host": "127.0.0.1:5000"}, "url": "http://127.0.0.1:5000/products"},
  "elapsed": 3e-06, "endedAt": 1444991539.945816, "kwargs": {}, "method": "GET", "name": "/products",
  "startedAt": 1444991539.945813}`

func TestMeasurementsSeedExample(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	second := `{"method": "PUT", "name": "/api/product/<productId>/comments", "args": [1, "x"],
	  "kwargs": {"productId": 412}, "startedAt": 1444318633.24, "endedAt": 1444318633.291, "app": "shop",
	  "context": {"form": {"comment": "this is a value from a html form field"}, "func": "insertComment"}}`
	var out struct{ IDs []int64 }
	s.do("POST", "/api/measurements", "["+seedMeasurement+","+second+"]").wantStatus(t, http.StatusCreated).decode(t, &out)
	if len(out.IDs) != 2 || out.IDs[1] != out.IDs[0]+1 {
		t.Fatalf("ids = %v, want two ids in order", out.IDs)
	}

	p := list(t, s, "/api/measurements/?startedAt=1444300000&endedAt=1445000000")
	if p.Total != 2 || p.Page != 1 || p.Size != 50 || fmt.Sprint(ids(p.Items)) != fmt.Sprint([]int64{out.IDs[0], out.IDs[1]}) {
		t.Fatalf("list = %+v (want both, newest endedAt first)", p)
	}
	first := p.Items[0]
	if first.StartedAt != 1444991539.945813 || first.EndedAt != 1444991539.945816 || first.Elapsed != 3e-06 ||
		first.Name != "/products" || first.Method != "GET" || first.App != "" {
		t.Fatalf("first = %+v", first)
	}
	var ctx map[string]any
	if err := json.Unmarshal(first.Context, &ctx); err != nil || ctx["func"] != "listProducts" ||
		ctx["headers"].(map[string]any)["Host"] != "127.0.0.1:5000" {
		t.Fatalf("context = %s (%v)", first.Context, err)
	}

	// The single record, with every field, under "measurement".
	var got struct{ Measurement map[string]any }
	s.do("GET", fmt.Sprintf("/api/measurements/%d", out.IDs[1]), nil).wantStatus(t, http.StatusOK).decode(t, &got)
	m := got.Measurement
	want := map[string]any{"id": float64(out.IDs[1]), "method": "PUT", "name": "/api/product/<productId>/comments",
		"args": []any{float64(1), "x"}, "kwargs": map[string]any{"productId": float64(412)},
		"startedAt": 1444318633.24, "endedAt": 1444318633.291, "app": "shop",
		"context": map[string]any{"form": map[string]any{"comment": "this is a value from a html form field"}, "func": "insertComment"}}
	// elapsed was left out: derived from the two times.
	if e, _ := m["elapsed"].(float64); math.Abs(e-0.051) > 1e-9 {
		t.Fatalf("derived elapsed = %v, want 0.051", m["elapsed"])
	}
	delete(m, "elapsed")
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("measurement = %v\nwant          %v", m, want)
	}
}

func TestMeasurementsPostEmptyAndDefaults(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	r := s.do("POST", "/api/measurements", "[]").wantStatus(t, http.StatusCreated)
	if strings.TrimSpace(string(r.Body)) != `{"ids":[]}` {
		t.Fatalf("empty batch answered %s", r.Body)
	}
	// The trailing-slash path stores too; omitted args/kwargs/context are empty.
	var out struct{ IDs []int64 }
	s.do("POST", "/api/measurements/", `[{"name":"/x","method":"GET","startedAt":1000,"endedAt":1001}]`).
		wantStatus(t, http.StatusCreated).decode(t, &out)
	var got struct{ Measurement map[string]any }
	s.do("GET", fmt.Sprintf("/api/measurements/%d", out.IDs[0]), nil).wantStatus(t, http.StatusOK).decode(t, &got)
	if fmt.Sprint(got.Measurement["args"], got.Measurement["kwargs"], got.Measurement["context"], got.Measurement["elapsed"]) != "[] map[] map[] 1" {
		t.Fatalf("defaults: %v", got.Measurement)
	}
	if _, ok := got.Measurement["app"]; ok {
		t.Fatalf("app should be absent when not given: %v", got.Measurement)
	}
}

func TestMeasurementsGet(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	id := postIDs(t, s, []rec{mrec("/a/<id>", "DELETE", 2000, 0.5, "kwargs", map[string]any{"id": "7"})})[0]
	for _, path := range []string{"/api/measurements/%d", "/api/measurements/%d/", "/api/v1/measurements/%d", "/api/v1/measurements/%d/"} {
		var got struct{ Measurement Measurement }
		s.do("GET", fmt.Sprintf(path, id), nil).wantStatus(t, http.StatusOK).decode(t, &got)
		if got.Measurement.ID != id || got.Measurement.Method != "DELETE" || got.Measurement.Elapsed != 0.5 ||
			string(got.Measurement.Kwargs) != `{"id":"7"}` {
			t.Fatalf("%s: %+v (kwargs %s)", path, got.Measurement, got.Measurement.Kwargs)
		}
	}
	p := s.do("GET", fmt.Sprintf("/api/measurements/%d", id+1000), nil).problem(t, http.StatusNotFound)
	if !strings.Contains(p.Detail, "no measurement") {
		t.Fatalf("404 detail %q", p.Detail)
	}
	s.do("GET", "/api/v1/measurements/-5", nil).problem(t, http.StatusNotFound)
	for bad, title := range map[string]string{"abc": "type", "56168da96bb200684f92c117": "type", "1.5": "type",
		"99999999999999999999": "max"} {
		p := s.do("GET", "/api/measurements/"+bad, nil).problem(t, http.StatusUnprocessableEntity)
		if !p.hasError("path.id", title) {
			t.Fatalf("%s: errors %+v", bad, p.Errors)
		}
	}
}

// A posted time is stored to the nearest microsecond of the number sent,
// its fraction rounded alone (as events' startedAt numbers are).
func TestMeasurementsPostedTimeNearestMicrosecond(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, c := range []struct{ sent, want string }{
		{"1444780800.0000014", "1444780800.000001"}, // 1.43 µs as a double; x * 1e6 rounded it to 2.5
		{"1444780800.0000004", "1444780800"},
		{"1444780800.0000016", "1444780800.000002"},
		{"1444780800.9999996", "1444780801"},
		{"0.0000004", "0"},
	} {
		id := postIDs(t, s, []rec{{"name": "/t", "method": "GET", "startedAt": json.Number(c.sent), "endedAt": json.Number(c.sent)}})[0]
		r := s.do("GET", fmt.Sprintf("/api/measurements/%d", id), nil).wantStatus(t, http.StatusOK)
		var got struct {
			Measurement struct{ StartedAt, EndedAt json.Number }
		}
		r.decode(t, &got)
		if got.Measurement.StartedAt.String() != c.want || got.Measurement.EndedAt.String() != c.want {
			t.Errorf("sent %s: stored startedAt %s, endedAt %s; want %s", c.sent, got.Measurement.StartedAt, got.Measurement.EndedAt, c.want)
		}
	}
}

// fixture posts a small, known set of measurements around 2015-10-15.
const day0 = 1444867200 // 2015-10-15T00:00:00Z

func fixture(t *testing.T, s *testServer) []int64 {
	t.Helper()
	return postIDs(t, s, []rec{
		mrec("/api/products", "GET", day0+100, 1.0),                      // 0
		mrec("/api/products", "GET", day0+200, 3.0),                      // 1
		mrec("/api/products", "POST", day0+300, 2.0),                     // 2
		mrec("/api/products", "PUT", day0+400, 4.0, "app", "shop"),       // 3
		mrec("/api/orders", "GET", day0+500, 0.5, "app", "shop"),         // 4
		mrec("/api/orders", "DELETE", day0+3700, 3.5),                    // 5
		mrec("/api/orders", "GET", day0+86400+10, 0.25),                  // 6 (next day)
		mrec("/api/products", "GET", day0+2*86400+7200, 5.0, "app", "x"), // 7 (day after)
	})
}

func TestMeasurementsListFilters(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	id := fixture(t, s)
	all := fmt.Sprintf("startedAt=%d&endedAt=%d", day0, day0+3*86400)
	cases := []struct {
		query string
		want  []int // fixture indexes, in the default order (endedAt desc)
	}{
		{all, []int{7, 6, 5, 4, 3, 2, 1, 0}},
		{fmt.Sprintf("startedAt=%d&endedAt=%d", day0+200, day0+86400), []int{5, 4, 3, 2, 1}},
		// endedAt bounds the end, not the start: #1 ends at day0+203.
		{fmt.Sprintf("startedAt=%d&endedAt=%d", day0, day0+202), []int{0}},
		{fmt.Sprintf("startedAt=%d&endedAt=%d", day0, day0+203), []int{1, 0}},
		{fmt.Sprintf("startedAt=%d.5&endedAt=%d", day0+100, day0+3*86400), []int{7, 6, 5, 4, 3, 2, 1}},
		{all + "&elapsed=3.5", []int{7, 5, 3}},
		{all + "&elapsed=3", []int{7, 5, 3, 1}},
		{all + "&method=GET", []int{7, 6, 4, 1, 0}},
		{all + "&method=PUT,POST", []int{3, 2}},
		{all + "&method=PUT,%20POST,", []int{3, 2}},
		{all + "&name=/api/orders", []int{6, 5, 4}},
		{all + "&name=/api/order", []int{}},
		{all + "&app=shop", []int{4, 3}},
		{all + "&name=/api/products&method=GET&elapsed=2", []int{7, 1}},
		{all + "&name=/api/products&method=GET&app=x", []int{7}},
		// A reversed window is empty.
		{fmt.Sprintf("startedAt=%d&endedAt=%d", day0+86400, day0), []int{}},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			for _, path := range []string{"/api/measurements/", "/api/measurements", "/api/measurements/filter/", "/api/measurements/filter"} {
				p := list(t, s, path+"?"+c.query)
				want := []int64{}
				for _, i := range c.want {
					want = append(want, id[i])
				}
				if fmt.Sprint(ids(p.Items)) != fmt.Sprint(want) || p.Total != int64(len(want)) {
					t.Fatalf("%s: ids %v total %d, want %v", path, ids(p.Items), p.Total, want)
				}
			}
		})
	}
}

// Without startedAt/endedAt the window is the last 7 days up to now.
func TestMeasurementsDefaultWindow(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	now := float64(time.Now().Unix())
	id := postIDs(t, s, []rec{
		mrec("/old", "GET", now-8*86400, 1), // before the window
		mrec("/in", "GET", now-6*86400, 1),  // inside
		mrec("/in", "GET", now-60, 1),       // inside
		mrec("/future", "GET", now+3600, 1), // ends after now
		mrec("/edge", "GET", now-7*86400+120, 1),
	})
	p := list(t, s, "/api/measurements/")
	if fmt.Sprint(ids(p.Items)) != fmt.Sprint([]int64{id[2], id[1], id[4]}) || p.Total != 3 {
		t.Fatalf("default window: %v total %d", ids(p.Items), p.Total)
	}
	// endedAt alone moves the end; startedAt alone the start.
	p = list(t, s, fmt.Sprintf("/api/measurements/?endedAt=%d", int64(now+7200)))
	if p.Total != 4 {
		t.Fatalf("endedAt only: total %d, want 4", p.Total)
	}
	p = list(t, s, fmt.Sprintf("/api/measurements/?startedAt=%d", int64(now-9*86400)))
	if p.Total != 4 {
		t.Fatalf("startedAt only: total %d, want 4", p.Total)
	}
	var g groupPage
	s.do("GET", "/api/measurements/grouped/", nil).wantStatus(t, http.StatusOK).decode(t, &g)
	if g.Total != 2 || g.Items[0].Name != "/in" || g.Items[0].Count != 2 {
		t.Fatalf("grouped default window: %+v", g)
	}
	var d struct{ Distribution map[string]int64 }
	s.do("GET", "/api/measurements/methodDistribution/", nil).wantStatus(t, http.StatusOK).decode(t, &d)
	if fmt.Sprint(d.Distribution) != "map[GET:3]" {
		t.Fatalf("distribution default window: %v", d.Distribution)
	}
	type series struct{ Serie, Series map[string]int64 }
	var daily, hourly series
	s.do("GET", "/api/measurements/timeseries/?interval=daily", nil).wantStatus(t, http.StatusOK).decode(t, &daily)
	if len(daily.Serie) != 8 { // the days holding now-7d .. now
		t.Fatalf("daily default window has %d buckets: %v", len(daily.Serie), daily.Serie)
	}
	s.do("GET", "/api/measurements/timeseries/", nil).wantStatus(t, http.StatusOK).decode(t, &hourly)
	if len(hourly.Serie) != 7*24+1 { // hourly is the default interval
		t.Fatalf("hourly default window has %d buckets", len(hourly.Serie))
	}
}

func TestMeasurementsListSort(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	id := fixture(t, s)
	// A tie on elapsed and on startedAt, broken by id.
	id = append(id, postIDs(t, s, []rec{mrec("/api/orders", "GET", day0+100, 3.0)})...) // 8
	all := fmt.Sprintf("startedAt=%d&endedAt=%d", day0, day0+3*86400)
	cases := []struct {
		sort string
		want []int
	}{
		{"endedAt,desc", []int{7, 6, 5, 4, 3, 2, 1, 8, 0}},
		{"endedAt,asc", []int{0, 8, 1, 2, 3, 4, 5, 6, 7}},
		{"endedAt", []int{7, 6, 5, 4, 3, 2, 1, 8, 0}},
		{"startedAt,asc", []int{0, 8, 1, 2, 3, 4, 5, 6, 7}},
		{"startedAt,DESC", []int{7, 6, 5, 4, 3, 2, 1, 8, 0}},
		{"elapsed,desc", []int{7, 3, 5, 8, 1, 2, 0, 4, 6}},
		{"elapsed,asc", []int{6, 4, 0, 2, 1, 8, 5, 3, 7}},
		// name, then endedAt, then id, all in the one direction.
		{"name,asc", []int{8, 4, 5, 6, 0, 1, 2, 3, 7}},
		{"name,desc", []int{7, 3, 2, 1, 0, 6, 5, 4, 8}},
		{"method,asc", []int{5, 0, 8, 1, 4, 6, 7, 2, 3}},
	}
	for _, c := range cases {
		p := list(t, s, "/api/measurements/?"+all+"&sort="+url.QueryEscape(c.sort))
		want := []int64{}
		for _, i := range c.want {
			want = append(want, id[i])
		}
		if fmt.Sprint(ids(p.Items)) != fmt.Sprint(want) {
			t.Errorf("sort %s: %v, want %v", c.sort, ids(p.Items), want)
		}
	}
}

func TestMeasurementsPagination(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	var recs []rec
	for i := 0; i < 25; i++ {
		recs = append(recs, mrec("/p", "GET", float64(day0+i), 0.1))
	}
	id := postIDs(t, s, recs)
	q := fmt.Sprintf("startedAt=%d&endedAt=%d&size=10", day0, day0+100)
	var seen []int64
	for page := 1; page <= 3; page++ {
		r := s.do("GET", fmt.Sprintf("/api/measurements/?%s&page=%d", q, page), nil).wantStatus(t, http.StatusOK)
		var p measurementPage
		r.decode(t, &p)
		if p.Total != 25 || p.Page != int64(page) || p.Size != 10 {
			t.Fatalf("page %d: %+v", page, p)
		}
		seen = append(seen, ids(p.Items)...)
		link := r.Header.Get("Link")
		if hasNext := strings.Contains(link, `rel="next"`); hasNext != (page < 3) {
			t.Fatalf("page %d Link %q", page, link)
		}
		if !strings.Contains(link, "startedAt=") || !strings.Contains(link, `page=3&size=10`) {
			t.Fatalf("Link keeps the filter and names the last page: %q", link)
		}
	}
	for i := range seen {
		if seen[i] != id[24-i] {
			t.Fatalf("pages = %v, want every id once, newest first", seen)
		}
	}
	p := list(t, s, "/api/measurements/?"+q+"&page=7")
	if len(p.Items) != 0 || p.Total != 25 {
		t.Fatalf("past the end: %+v", p)
	}
}

func TestMeasurementsGrouped(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	fixture(t, s)
	all := fmt.Sprintf("startedAt=%d&endedAt=%d", day0, day0+3*86400)
	var g groupPage
	for _, path := range []string{"/api/measurements/grouped/", "/api/measurements/grouped", "/api/v1/measurements/grouped/", "/api/v1/measurements/grouped"} {
		s.do("GET", path+"?"+all, nil).wantStatus(t, http.StatusOK).decode(t, &g)
		// Percentiles: nearest rank, from the histograms (the median of
		// 1, 3, 5 within 2.44 % of 3; the top ranks the exact max).
		if p50 := g.Items[0].P50Elapsed; math.Abs(p50-3) > 3*store.PercentileRelativeError {
			t.Fatalf("p50 of 1, 3, 5 = %v", p50)
		}
		g.Items[0].P50Elapsed = 3
		want := []MeasurementGroup{
			{Name: "/api/products", Method: "GET", Count: 3, AvgElapsed: 3, MinElapsed: 1, MaxElapsed: 5, P50Elapsed: 3, P95Elapsed: 5, P99Elapsed: 5},
			{Name: "/api/orders", Method: "GET", Count: 2, AvgElapsed: 0.375, MinElapsed: 0.25, MaxElapsed: 0.5, P50Elapsed: 0.25, P95Elapsed: 0.5, P99Elapsed: 0.5},
			{Name: "/api/orders", Method: "DELETE", Count: 1, AvgElapsed: 3.5, MinElapsed: 3.5, MaxElapsed: 3.5, P50Elapsed: 3.5, P95Elapsed: 3.5, P99Elapsed: 3.5},
			{Name: "/api/products", Method: "POST", Count: 1, AvgElapsed: 2, MinElapsed: 2, MaxElapsed: 2, P50Elapsed: 2, P95Elapsed: 2, P99Elapsed: 2},
			{Name: "/api/products", Method: "PUT", Count: 1, AvgElapsed: 4, MinElapsed: 4, MaxElapsed: 4, P50Elapsed: 4, P95Elapsed: 4, P99Elapsed: 4},
		}
		g.Measurements[0].P50Elapsed = 3
		if !reflect.DeepEqual(g.Items, want) || g.Total != 5 || !reflect.DeepEqual(g.Items, g.Measurements) {
			t.Fatalf("%s: %+v total %d", path, g.Items, g.Total)
		}
	}
	order := func(query string) string {
		s.do("GET", "/api/measurements/grouped/?"+all+"&"+query, nil).wantStatus(t, http.StatusOK).decode(t, &g)
		var out []string
		for _, it := range g.Items {
			out = append(out, it.Method+" "+it.Name)
		}
		return strings.Join(out, "|") + fmt.Sprintf(" (%d)", g.Total)
	}
	cases := []struct{ query, want string }{
		{"sort=count,asc", "DELETE /api/orders|POST /api/products|PUT /api/products|GET /api/orders|GET /api/products (5)"},
		{"sort=avgElapsed,asc", "GET /api/orders|POST /api/products|GET /api/products|DELETE /api/orders|PUT /api/products (5)"},
		{"sort=avgElapsed,desc", "PUT /api/products|DELETE /api/orders|GET /api/products|POST /api/products|GET /api/orders (5)"},
		{"sort=minElapsed,desc", "PUT /api/products|DELETE /api/orders|POST /api/products|GET /api/products|GET /api/orders (5)"},
		{"sort=maxElapsed,asc", "GET /api/orders|POST /api/products|DELETE /api/orders|PUT /api/products|GET /api/products (5)"},
		{"sort=name,asc", "DELETE /api/orders|GET /api/orders|GET /api/products|POST /api/products|PUT /api/products (5)"},
		{"sort=name,desc", "PUT /api/products|POST /api/products|GET /api/products|GET /api/orders|DELETE /api/orders (5)"},
		{"method=GET", "GET /api/products|GET /api/orders (2)"},
		{"method=GET,DELETE&name=/api/orders", "GET /api/orders|DELETE /api/orders (2)"},
		{"elapsed=3", "GET /api/products|DELETE /api/orders|PUT /api/products (3)"},
		{"app=shop", "GET /api/orders|PUT /api/products (2)"},
		{"size=2&page=2", "DELETE /api/orders|POST /api/products (5)"},
		{"size=2&page=9", " (5)"},
	}
	for _, c := range cases {
		if got := order(c.query); got != c.want {
			t.Errorf("%s: %s, want %s", c.query, got, c.want)
		}
	}
	// elapsed filter: the statistics are over the matching rows only.
	s.do("GET", "/api/measurements/grouped/?"+all+"&elapsed=3&name=/api/products&method=GET", nil).decode(t, &g)
	if len(g.Items) != 1 || g.Items[0].Count != 2 || g.Items[0].AvgElapsed != 4 || g.Items[0].MinElapsed != 3 {
		t.Fatalf("grouped with elapsed: %+v", g.Items)
	}
}

func TestMeasurementsDistributionAndTimeseries(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	fixture(t, s)
	window := fmt.Sprintf("startedAt=%d&endedAt=%d", day0+150, day0+2*86400+3*3600)
	for _, path := range []string{"/api/measurements/methodDistribution/", "/api/measurements/methodDistribution", "/api/v1/methodDistribution/", "/api/v1/methodDistribution"} {
		var d struct{ Distribution map[string]int64 }
		s.do("GET", path+"?"+window, nil).wantStatus(t, http.StatusOK).decode(t, &d)
		if fmt.Sprint(d.Distribution) != "map[DELETE:1 GET:4 POST:1 PUT:1]" {
			t.Fatalf("%s: %v", path, d.Distribution)
		}
	}
	var d struct{ Distribution map[string]int64 }
	s.do("GET", "/api/v1/methodDistribution/?startedAt=1&endedAt=2", nil).wantStatus(t, http.StatusOK).decode(t, &d)
	if d.Distribution == nil || len(d.Distribution) != 0 {
		t.Fatalf("empty window: %v", d.Distribution)
	}

	for _, path := range []string{"/api/measurements/timeseries/", "/api/measurements/timeseries", "/api/v1/timeseries/", "/api/v1/timeseries"} {
		var ts struct{ Serie, Series map[string]int64 }
		s.do("GET", path+"?interval=daily&"+window, nil).wantStatus(t, http.StatusOK).decode(t, &ts)
		if fmt.Sprint(ts.Serie) != "map[2015-10-15:5 2015-10-16:1 2015-10-17:1]" || !reflect.DeepEqual(ts.Serie, ts.Series) {
			t.Fatalf("%s daily: %v / %v", path, ts.Serie, ts.Series)
		}
	}
	// Hourly over a day and a bit: every hour present, zero-filled.
	var ts struct{ Serie, Series map[string]int64 }
	s.do("GET", fmt.Sprintf("/api/measurements/timeseries/?interval=hourly&startedAt=%d&endedAt=%d", day0-1800, day0+86400+1800), nil).
		wantStatus(t, http.StatusOK).decode(t, &ts)
	if len(ts.Serie) != 26 || ts.Serie["2015-10-14 23"] != 0 || ts.Serie["2015-10-15 00"] != 5 ||
		ts.Serie["2015-10-15 01"] != 1 || ts.Serie["2015-10-15 02"] != 0 || ts.Serie["2015-10-16 00"] != 1 {
		t.Fatalf("hourly: %v", ts.Serie)
	}
	var sum int64
	for k, v := range ts.Serie {
		if len(k) != len("2015-10-15 00") {
			t.Fatalf("hourly key %q", k)
		}
		sum += v
	}
	if sum != 7 {
		t.Fatalf("hourly counts sum to %d, want 7", sum)
	}
	// Daily buckets are UTC days, from the one holding startedAt on.
	ts.Serie, ts.Series = nil, nil
	s.do("GET", fmt.Sprintf("/api/measurements/timeseries/?interval=daily&startedAt=%d&endedAt=%d", day0-1, day0+1), nil).decode(t, &ts)
	if fmt.Sprint(ts.Serie) != "map[2015-10-14:0 2015-10-15:0]" {
		t.Fatalf("daily edges: %v", ts.Serie)
	}
	ts.Serie, ts.Series = nil, nil
	s.do("GET", fmt.Sprintf("/api/measurements/timeseries/?startedAt=%d&endedAt=%d", day0+10, day0), nil).decode(t, &ts)
	if len(ts.Serie) != 0 || ts.Serie == nil {
		t.Fatalf("reversed window: %v", ts.Serie)
	}
	// Too many buckets is refused; the same window daily is fine.
	p := s.do("GET", "/api/measurements/timeseries/?interval=hourly&startedAt=0&endedAt=1700000000", nil).problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("query.startedAt", "max") {
		t.Fatalf("errors %+v", p.Errors)
	}
	s.do("GET", "/api/measurements/timeseries/?interval=daily&startedAt=0&endedAt=1700000000", nil).wantStatus(t, http.StatusOK)
}

// The rollup decomposition (raw rows at the window's partial hours, hourly
// cells at its partial days, daily cells for its whole days) must give
// exactly what the rows give, for any window, including measurements that
// span hours and days and windows that are not hour- or day-aligned:
// compare against a brute-force computation, with the rollups written by
// the API and again after rebuilding them from the rows.
func TestMeasurementsRollupMatchesRows(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	rng := rand.New(rand.NewPCG(1, 2))
	base := int64(day0)
	type row struct {
		name, method, app string
		start, end        int64 // microseconds
		elapsed           float64
	}
	var rows []row
	names, methods, apps := []string{"/a", "/b", "/c/{id}"}, []string{"GET", "POST", "PUT"}, []string{"", "shop"}
	const span = 120 // hours of data: five UTC days
	for batch := 0; batch < 6; batch++ {
		var recs []rec
		for i := 0; i < 150; i++ {
			start := base*1e6 + rng.Int64N(span*3600*1e6)
			var d int64
			switch x := rng.IntN(20); {
			case x < 14:
				d = rng.Int64N(1e6)
			case x < 18:
				d = rng.Int64N(1800 * 1e6)
			case x < 19:
				d = rng.Int64N(3 * 3600 * 1e6)
			default: // across a day boundary, often
				d = rng.Int64N(30 * 3600 * 1e6)
			}
			r := row{names[rng.IntN(3)], methods[rng.IntN(3)], apps[rng.IntN(2)], start, start + d, float64(d) / 1e6}
			rows = append(rows, r)
			recs = append(recs, rec{"name": r.name, "method": r.method, "app": r.app, "elapsed": r.elapsed,
				"startedAt": float64(r.start) / 1e6, "endedAt": float64(r.end) / 1e6})
		}
		postIDs(t, s, recs)
	}
	var lateWindows int // windows whose hour H2 has rows ending after them
	check := func(t *testing.T, w int) {
		x := base*1e6 - 3600*1e6 + rng.Int64N((span+4)*3600*1e6)
		y := x + rng.Int64N(100*3600*1e6)
		switch w % 6 {
		case 0: // hour-aligned edges too
			x, y = x/(3600*1e6)*(3600*1e6), y/(3600*1e6)*(3600*1e6)
		case 3: // and day-aligned ones
			x, y = x/(86400*1e6)*(86400*1e6), y/(86400*1e6)*(86400*1e6)
		case 5: // the whole data set, with days inside
			x, y = base*1e6-rng.Int64N(7200*1e6), (base+span*3600+30*3600)*1e6+rng.Int64N(7200*1e6)
		}
		// Edge B (rows started >= H1 that ended in [H2, endedAt]) is read as
		// the cells ending in hour H2 less the rows of those cells that ended
		// after endedAt. End some windows at the last row ending in its hour
		// (as the default window, endedAt = now, does: no such row, the cells
		// answer) and some just before a row ending in the same hour (the
		// correction is needed).
		switch w % 7 {
		case 2, 4:
			r := rows[rng.IntN(len(rows))]
			y = r.end
			for _, o := range rows {
				if o.end > y && o.end/(3600*1e6) == r.end/(3600*1e6) {
					y = o.end
				}
			}
			if w%7 == 2 && y-1 >= r.end/(3600*1e6)*(3600*1e6) {
				y-- // the hour's last row ends after the window
			}
			x = y - rng.Int64N(100*3600*1e6)
		}
		h1 := (x + 3600*1e6 - 1) / (3600 * 1e6) * (3600 * 1e6)
		h2 := y / (3600 * 1e6) * (3600 * 1e6)
		for _, r := range rows {
			if r.start >= h1 && r.end > y && r.end < h2+3600*1e6 {
				lateWindows++
				break
			}
		}
		q := fmt.Sprintf("startedAt=%.6f&endedAt=%.6f", float64(x)/1e6, float64(y)/1e6)
		var minEl float64
		if w%4 == 1 {
			minEl = 0.5
			q += "&elapsed=0.5"
		}
		name, method := "", ""
		if w%5 == 2 {
			name, method = "/b", "POST"
			q += "&name=/b&method=POST"
		}
		in := func(r row) bool {
			return r.start >= x && r.end <= y && r.elapsed >= minEl && (name == "" || r.name == name) && (method == "" || r.method == method)
		}
		// list total and grouped
		type agg struct {
			n             int64
			sum, min, max float64
		}
		groups := map[string]*agg{}
		var total int64
		dist := map[string]int64{}
		hourly := map[string]int64{}
		for _, r := range rows {
			if !in(r) {
				continue
			}
			total++
			k := r.method + " " + r.name
			g := groups[k]
			if g == nil {
				g = &agg{min: math.Inf(1), max: math.Inf(-1)}
				groups[k] = g
			}
			g.n++
			g.sum += r.elapsed
			g.min, g.max = math.Min(g.min, r.elapsed), math.Max(g.max, r.elapsed)
			dist[r.method]++
			hourly[time.UnixMicro(r.start).UTC().Format("2006-01-02 15")]++
		}
		if p := list(t, s, "/api/measurements/?"+q+"&size=1"); p.Total != total {
			t.Fatalf("window %d (%s): total %d, want %d", w, q, p.Total, total)
		}
		var g groupPage
		s.do("GET", "/api/measurements/grouped/?"+q+"&size=100", nil).wantStatus(t, http.StatusOK).decode(t, &g)
		if int(g.Total) != len(groups) {
			t.Fatalf("window %d: %d groups, want %d", w, g.Total, len(groups))
		}
		for _, it := range g.Items {
			want := groups[it.Method+" "+it.Name]
			if want == nil || it.Count != want.n || it.MinElapsed != want.min || it.MaxElapsed != want.max ||
				math.Abs(it.AvgElapsed-want.sum/float64(want.n)) > 1e-9 {
				t.Fatalf("window %d (%s): group %+v, want %+v", w, q, it, want)
			}
		}
		if minEl > 0 || name != "" {
			return // distribution and timeseries take the window only
		}
		var d struct{ Distribution map[string]int64 }
		s.do("GET", "/api/measurements/methodDistribution/?"+q, nil).wantStatus(t, http.StatusOK).decode(t, &d)
		if fmt.Sprint(d.Distribution) != fmt.Sprint(dist) {
			t.Fatalf("window %d: distribution %v, want %v", w, d.Distribution, dist)
		}
		var ts struct{ Serie map[string]int64 }
		s.do("GET", "/api/measurements/timeseries/?interval=hourly&"+q, nil).wantStatus(t, http.StatusOK).decode(t, &ts)
		for k, v := range ts.Serie {
			if hourly[k] != v {
				t.Fatalf("window %d: hour %s has %d, want %d", w, k, v, hourly[k])
			}
			delete(hourly, k)
		}
		if len(hourly) != 0 {
			t.Fatalf("window %d: hours missing from the series: %v", w, hourly)
		}
	}
	for w := 0; w < 60; w++ {
		check(t, w)
	}
	if lateWindows < 5 || lateWindows > 55 {
		t.Fatalf("%d of 60 windows have rows ending after them in their last hour: both cases should be common", lateWindows)
	}
	// Rows loaded around the API get their cells from RebuildRollup: the
	// rebuilt rollups answer the same.
	from, to := time.Unix(base-86400, 0), time.Unix(base+(span+48)*3600, 0)
	if err := postgres.New(s.Pool, postgres.Options{}).Measurements.RebuildRollup(context.Background(), from, to); err != nil {
		t.Fatal(err)
	}
	for w := 0; w < 30; w++ {
		check(t, w)
	}
}

func TestMeasurementsQueryValidation(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	cases := []struct {
		path, query, location, title string
	}{
		{"/api/measurements/", "startedAt=yesterday", "query.startedAt", "type"},
		{"/api/measurements/", "endedAt=1e", "query.endedAt", "type"},
		{"/api/measurements/", "startedAt=NaN", "query.startedAt", "type"},
		{"/api/measurements/", "startedAt=-1", "query.startedAt", "min"},
		{"/api/measurements/", "endedAt=1e20", "query.endedAt", "max"},
		// Only decimal numbers: not Go's other syntaxes, which its parser
		// takes (found by an audit), nor Infinity (one item, not max too).
		{"/api/measurements/", "endedAt=Inf", "query.endedAt", "type"},
		{"/api/measurements/", "endedAt=Infinity", "query.endedAt", "type"},
		{"/api/measurements/", "startedAt=0x1p4", "query.startedAt", "type"},
		{"/api/measurements/", "startedAt=1_796_463_980", "query.startedAt", "type"},
		{"/api/measurements/grouped/", "elapsed=0x1p-2", "query.elapsed", "type"},
		{"/api/measurements/timeseries/", "endedAt=%2B5", "query.endedAt", "type"},
		// Filters no longer than what a measurement can hold: a longer
		// one matched nothing, and its page links were too long for
		// clients to read (found by an audit).
		{"/api/measurements/", "name=" + strings.Repeat("n", 1025), "query.name", "max"},
		{"/api/measurements/grouped/", "app=" + strings.Repeat("a", 256), "query.app", "max"},
		{"/api/measurements/filter/", "method=" + strings.Repeat("GET,", 64), "query.method", "max"},
		{"/api/measurements/", "elapsed=fast", "query.elapsed", "type"},
		{"/api/measurements/", "elapsed=-0.5", "query.elapsed", "min"},
		{"/api/measurements/filter/", "elapsed=NaN", "query.elapsed", "type"},
		{"/api/measurements/", "sort=id,desc", "query.sort", "oneof"},
		{"/api/measurements/", "sort=count,desc", "query.sort", "oneof"},
		{"/api/measurements/", "sort=endedAt,down", "query.sort", "oneof"},
		{"/api/measurements/", "page=0", "query.page", "min"},
		{"/api/measurements/", "size=101", "query.size", "max"},
		{"/api/measurements/grouped/", "sort=endedAt,desc", "query.sort", "oneof"},
		{"/api/measurements/grouped/", "sort=count,sideways", "query.sort", "oneof"},
		{"/api/v1/measurements/grouped/", "startedAt=x", "query.startedAt", "type"},
		{"/api/measurements/grouped/", "size=0", "query.size", "min"},
		{"/api/measurements/methodDistribution/", "endedAt=soon", "query.endedAt", "type"},
		{"/api/v1/methodDistribution/", "startedAt=NaN", "query.startedAt", "type"},
		{"/api/measurements/timeseries/", "interval=weekly", "query.interval", "oneof"},
		{"/api/v1/timeseries/", "startedAt=x&interval=daily", "query.startedAt", "type"},
	}
	for _, c := range cases {
		t.Run(c.path+"?"+c.query, func(t *testing.T) {
			p := s.do("GET", c.path+"?"+c.query, nil).problem(t, http.StatusUnprocessableEntity)
			if !p.hasError(c.location, c.title) || len(p.Errors) != 1 {
				t.Fatalf("errors %+v: want %s/%s alone", p.Errors, c.location, c.title)
			}
			for _, e := range p.Errors {
				if e.Status != 422 || e.Detail == "" || e.Source != strings.TrimPrefix(c.location, "query.") {
					t.Fatalf("error item %+v", e)
				}
			}
		})
	}
	// Every bad parameter at once.
	p := s.do("GET", "/api/measurements/?startedAt=x&elapsed=-1&sort=nope&size=0", nil).problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 4 {
		t.Fatalf("want 4 errors, got %+v", p.Errors)
	}
	p = s.do("GET", "/api/measurements/grouped/?startedAt=0x10&endedAt=Infinity&size=0", nil).problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 3 || !p.hasError("query.startedAt", "type") || !p.hasError("query.endedAt", "type") || !p.hasError("query.size", "min") {
		t.Fatalf("want 3 errors, got %+v", p.Errors)
	}
	// Given twice, each value's fault stays: huma's about the value it
	// read, decimalParams' about the other, beside the duplicate.
	p = s.do("GET", "/api/measurements/?startedAt=-1&startedAt=0x10", nil).problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("query.startedAt", "duplicate") || !p.hasError("query.startedAt", "min") {
		t.Fatalf("startedAt given twice: %+v", p.Errors)
	}
	// Decimal numbers in their forms.
	for _, q := range []string{"startedAt=1444780800.5&endedAt=5.", "elapsed=.5", "startedAt=1e3&endedAt=-0", "name=" + strings.Repeat("n", 1024)} {
		s.do("GET", "/api/measurements/?"+q, nil).wantStatus(t, http.StatusOK)
	}
}

func TestMeasurementsPostValidation(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	good := `{"name":"/a","method":"GET","startedAt":100,"endedAt":101}`
	cases := []struct {
		name, item, field, title string
	}{
		{"missing name", `{"method":"GET","startedAt":100,"endedAt":101}`, "name", "required"},
		{"empty name", `{"name":"","method":"GET","startedAt":100,"endedAt":101}`, "name", "min"},
		{"long name", `{"name":"` + strings.Repeat("n", 1025) + `","method":"GET","startedAt":100,"endedAt":101}`, "name", "max"},
		{"missing method", `{"name":"/a","startedAt":100,"endedAt":101}`, "method", "required"},
		{"unknown method", `{"name":"/a","method":"FETCH","startedAt":100,"endedAt":101}`, "method", "oneof"},
		{"missing startedAt", `{"name":"/a","method":"GET","endedAt":101}`, "startedAt", "required"},
		{"string startedAt", `{"name":"/a","method":"GET","startedAt":"100","endedAt":101}`, "startedAt", "type"},
		{"negative startedAt", `{"name":"/a","method":"GET","startedAt":-1,"endedAt":101}`, "startedAt", "min"},
		{"huge endedAt", `{"name":"/a","method":"GET","startedAt":100,"endedAt":1e12}`, "endedAt", "max"},
		{"missing endedAt", `{"name":"/a","method":"GET","startedAt":100}`, "endedAt", "required"},
		{"endedAt before startedAt", `{"name":"/a","method":"GET","startedAt":100,"endedAt":99.5}`, "endedAt", "gtefield"},
		{"endedAt 0 before startedAt", `{"name":"/a","method":"GET","startedAt":5,"endedAt":0}`, "endedAt", "gtefield"},
		{"negative elapsed", `{"name":"/a","method":"GET","startedAt":100,"endedAt":101,"elapsed":-0.1}`, "elapsed", "min"},
		{"string elapsed", `{"name":"/a","method":"GET","startedAt":100,"endedAt":101,"elapsed":"0.051"}`, "elapsed", "type"},
		{"args object", `{"name":"/a","method":"GET","startedAt":100,"endedAt":101,"args":{}}`, "args", "type"},
		{"kwargs array", `{"name":"/a","method":"GET","startedAt":100,"endedAt":101,"kwargs":[]}`, "kwargs", "type"},
		{"context string", `{"name":"/a","method":"GET","startedAt":100,"endedAt":101,"context":"x"}`, "context", "type"},
		{"context null", `{"name":"/a","method":"GET","startedAt":100,"endedAt":101,"context":null}`, "context", "type"},
		{"long app", `{"name":"/a","method":"GET","startedAt":100,"endedAt":101,"app":"` + strings.Repeat("a", 256) + `"}`, "app", "max"},
		{"unknown field", `{"name":"/a","method":"GET","startedAt":100,"endedAt":101,"id":5}`, "id", "unknown"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := "[" + good + "," + good + "," + c.item + "]"
			p := s.do("POST", "/api/measurements", body).problem(t, http.StatusUnprocessableEntity)
			loc := "body[2]." + c.field
			if !p.hasError(loc, c.title) {
				t.Fatalf("errors %+v lack %s/%s", p.Errors, loc, c.title)
			}
			for _, e := range p.Errors {
				if e.Source != c.field || e.Status != 422 || e.Detail == "" {
					t.Fatalf("error item %+v: want source %s", e, c.field)
				}
			}
		})
	}
	// Nothing of the refused batches was stored.
	if p := list(t, s, "/api/measurements/?startedAt=0&endedAt=1000"); p.Total != 0 {
		t.Fatalf("invalid batches stored %d rows", p.Total)
	}
	// Every failing record is named at once, cross-field rule included.
	body := "[" + good + `,{"name":"","method":"GET","startedAt":100,"endedAt":101},` + good +
		`,{"name":"/a","method":"GET","startedAt":100,"endedAt":50}]`
	p := s.do("POST", "/api/measurements", body).problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("body[1].name", "min") || !p.hasError("body[3].endedAt", "gtefield") || len(p.Errors) != 2 {
		t.Fatalf("errors = %+v", p.Errors)
	}
	// An endedAt of 0 before startedAt is named beside another record's
	// failure too (an audit found it listed only when it was the batch's
	// one fault: the other failure sent the batch down the slow path,
	// where the check was made only for a batch that had no other).
	body = "[" + good + `,{"name":"","method":"GET","startedAt":100,"endedAt":101},` +
		`{"name":"/a","method":"GET","startedAt":100,"endedAt":0}]`
	p = s.do("POST", "/api/measurements", body).problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("body[1].name", "min") || !p.hasError("body[2].endedAt", "gtefield") || len(p.Errors) != 2 {
		t.Fatalf("errors = %+v", p.Errors)
	}
}

// TestBatchBodyOfTheWrongKind: a batch body that is JSON but not an array
// is a 400 with one type item at body that does not echo the body (its
// strings that cannot be stored listed before it, for measurements), and
// null is an empty measurements batch but no flows batch.
func TestBatchBodyOfTheWrongKind(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, c := range []struct {
		path, body, detail string
		faults             int
	}{
		{"/api/measurements", `{"name":"/a","method":"GET","startedAt":100,"endedAt":101}`, "the body must be an array", 0},
		{"/api/measurements", `{"name":"/a\u0000"}`, "the body must be an array", 1},
		{"/api/measurements", `"x"`, "the body must be an array", 0},
		{"/api/measurements", `12`, "the body must be an array", 0},
		{"/flows", `{"src_app":"a"}`, "the body must be a JSON array of flows", 0},
		{"/flows", `null`, "the body must be a JSON array of flows", 0},
		{"/flows", `true`, "the body must be a JSON array of flows", 0},
	} {
		p := s.do("POST", c.path, c.body).problem(t, http.StatusBadRequest)
		if len(p.Errors) != c.faults+1 {
			t.Fatalf("%s %s: %d items, want %d: %+v", c.path, c.body, len(p.Errors), c.faults+1, p.Errors)
		}
		it := p.Errors[c.faults]
		if it.Title != "type" || it.Location != "body" || it.Detail != c.detail || it.Value != nil {
			t.Fatalf("%s %s: item %+v", c.path, c.body, it)
		}
		for _, f := range p.Errors[:c.faults] {
			if f.Title != "unicode" {
				t.Fatalf("%s %s: item %+v, want unicode", c.path, c.body, f)
			}
		}
	}
	var out struct{ IDs []int64 }
	s.do("POST", "/api/measurements", `null`).wantStatus(t, http.StatusCreated).decode(t, &out)
	if out.IDs == nil || len(out.IDs) != 0 {
		t.Fatalf("null batch: %+v", out)
	}
}

// TestMeasurementsValueSize: args, kwargs and context take at most
// maxMeasurementValue bytes of JSON each; over it a record is a 422 item
// max at the field, told before the batch's other rules, and nothing is
// stored.
func TestMeasurementsValueSize(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	big := `{"k":"` + strings.Repeat("x", maxMeasurementValue-7) + `"}` // one byte over
	body := `[{"name":"/a","method":"GET","startedAt":100,"endedAt":101,"kwargs":` + big + `},` +
		`{"name":"/b","method":"get","startedAt":100,"endedAt":101}]`
	p := s.do("POST", "/api/measurements", body).problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 {
		t.Fatalf("items %+v", p.Errors)
	}
	it := p.Errors[0]
	want := fmt.Sprintf("kwargs must be at most %d bytes of JSON (%d given)", maxMeasurementValue, maxMeasurementValue+1)
	if it.Title != "max" || it.Location != "body[0].kwargs" || it.Source != "kwargs" || it.Detail != want || it.Value != nil {
		t.Fatalf("item %+v", it)
	}
	if l := list(t, s, "/api/measurements/?startedAt=0&endedAt=1000"); l.Total != 0 {
		t.Fatal("a refused batch was stored")
	}
	// The schema's descriptions say the same limit.
	for _, f := range []string{"Args", "Kwargs", "Context"} {
		sf, _ := reflect.TypeOf(MeasurementInput{}).FieldByName(f)
		if !strings.Contains(sf.Tag.Get("doc"), fmt.Sprintf("(%d bytes)", maxMeasurementValue)) {
			t.Fatalf("%s's doc does not give the limit: %q", f, sf.Tag.Get("doc"))
		}
	}
	// At the limit, the fast path takes it.
	atLimit := []byte(`[{"name":"/a","method":"GET","startedAt":100,"endedAt":101,"args":["` +
		strings.Repeat("x", maxMeasurementValue-4) + `"]}]`)
	if recs, _, ok := fastDecodeMeasurements(atLimit, 1, maxEpochSeconds); !ok || len(recs[0].Args) != maxMeasurementValue {
		t.Fatalf("a value of %d bytes refused", maxMeasurementValue)
	}
}

func TestMeasurementsPostBadBodies(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.MaxBodyBytes = 2000 })
	item := `{"name":"/a","method":"GET","startedAt":100,"endedAt":101},`
	cases := []struct {
		name, body string
		status     int
	}{
		{"malformed JSON", `[{"name":`, http.StatusBadRequest},
		{"not JSON", `hello`, http.StatusBadRequest},
		{"object instead of array", `{"name":"/a","method":"GET","startedAt":100,"endedAt":101}`, http.StatusBadRequest},
		{"array of numbers", `[1,2]`, http.StatusUnprocessableEntity},
		{"too large", "[" + strings.Repeat(item, 40) + "]", http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s.do("POST", "/api/measurements", c.body).problem(t, c.status)
		})
	}
	s.do("POST", "/api/measurements", nil).problem(t, http.StatusBadRequest)
	s.do("POST", "/api/measurements", `[]`, "Content-Type", "text/plain").problem(t, http.StatusUnsupportedMediaType)
}

func TestMeasurementsTooMany(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.MeasurementsMaxBatch = 3 })
	recs := []rec{mrec("/a", "GET", 100, 1), mrec("/a", "GET", 100, 1), mrec("/a", "GET", 100, 1), mrec("/a", "GET", 100, 1)}
	p := s.do("POST", "/api/measurements", recs).problem(t, http.StatusNotAcceptable)
	if !strings.HasPrefix(p.Detail, TooManyMeasurements) {
		t.Fatalf("detail %q", p.Detail)
	}
	if l := list(t, s, "/api/measurements/?startedAt=0&endedAt=1000"); l.Total != 0 {
		t.Fatal("a refused batch was stored")
	}
	// Over the limit is a 406 whatever the records hold: counted before
	// they are checked.
	for _, body := range []string{`[1,2,3,4,5]`, `[{},{},{},{},{"method":"get"}]`} {
		p := s.do("POST", "/api/measurements", body).problem(t, http.StatusNotAcceptable)
		if want := TooManyMeasurements + ": 5 in this batch, at most 3 (MEASUREMENTS_MAX_BATCH)"; p.Detail != want {
			t.Fatalf("%s: detail %q, want %q", body, p.Detail, want)
		}
	}
	s.do("POST", "/api/measurements", `[{},{},{}]`).problem(t, http.StatusUnprocessableEntity)
	s.do("POST", "/api/measurements", `[1,2,3,4`).problem(t, http.StatusBadRequest)
	postIDs(t, s, recs[:3])
}

// With the database unreachable every endpoint answers 503 with Retry-After.
func TestMeasurementsDatabaseDown(t *testing.T) {
	t.Parallel()
	s := newTestServerOnDeadDatabase(t)
	for _, c := range []struct{ method, path string }{
		{"POST", "/api/measurements"}, {"GET", "/api/measurements/"}, {"GET", "/api/measurements/grouped/"},
		{"GET", "/api/measurements/1"}, {"GET", "/api/measurements/methodDistribution/"}, {"GET", "/api/measurements/timeseries/"},
	} {
		var body any
		if c.method == "POST" {
			body = []rec{mrec("/a", "GET", 100, 1)}
		}
		r := s.do(c.method, c.path, body)
		r.problem(t, http.StatusServiceUnavailable)
		if r.Header.Get("Retry-After") == "" {
			t.Fatalf("%s %s: no Retry-After", c.method, c.path)
		}
	}
}

// The longest name and app the API takes are stored, even when nothing in
// them compresses, for a slow row too (measurements_slow_idx holds both,
// and PostgreSQL bounds an index entry at 2,704 bytes: names of 1,024
// three- or four-byte characters were an error 500). A name of 1,536 bytes
// or less within 1,024 characters is taken, a longer one is a 422.
func TestMeasurementsLongestNamesStored(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	rng := rand.New(rand.NewPCG(9, 9))
	app := randomRunes(rng, 255, 4)
	for _, name := range []string{randomRunes(rng, 384, 4), randomRunes(rng, 512, 3)} {
		ids := postIDs(t, s, []rec{mrec(name, "DELETE", 100, 2, "app", app)})
		var got struct{ Measurement Measurement }
		s.do("GET", fmt.Sprintf("/api/measurements/%d", ids[0]), nil).wantStatus(t, http.StatusOK).decode(t, &got)
		if m := got.Measurement; m.Name != name || m.App != app {
			t.Fatalf("stored name of %d bytes, app of %d; want %d and %d", len(got.Measurement.Name), len(got.Measurement.App), len(name), len(app))
		}
	}
	for _, name := range []string{randomRunes(rng, 385, 4), randomRunes(rng, 1024, 3)} {
		p := s.do("POST", "/api/measurements", []rec{mrec(name, "GET", 100, 2, "app", app)}).problem(t, http.StatusUnprocessableEntity)
		if !p.hasError("body[0].name", "max") || len(p.Errors) != 1 {
			t.Fatalf("name of %d bytes: errors %+v, want body[0].name/max alone", len(name), p.Errors)
		}
	}
}

// The body is decoded by a fast path that accepts only what the schema
// accepts and hands every other body to huma's validator: bodies at the
// border of the two get the same answer as ever.
func TestMeasurementsPostDecodeEdges(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	cases := []struct {
		name, body string
		status     int
		location   string // an expected error (location, title), if any
		title      string
	}{
		{"null elapsed is left out", `[{"name":"/a","method":"GET","startedAt":100,"endedAt":101,"elapsed":null}]`, 201, "", ""},
		{"null app is left out", `[{"name":"/a","method":"GET","startedAt":100,"endedAt":101,"app":null}]`, 201, "", ""},
		{"nulls inside context", `[{"name":"/a","method":"GET","startedAt":100,"endedAt":101,"context":{"form":null,"NAME":[null]}}]`, 201, "", ""},
		{"escaped key", `[{"na\u006de":"/a","method":"GET","startedAt":100,"endedAt":101}]`, 201, "", ""},
		{"key in another case", `[{"NAME":"/a","name":"/a","method":"GET","startedAt":100,"endedAt":101}]`, 422, "body[0].NAME", "unknown"},
		{"name of 1024 characters", `[{"name":"` + strings.Repeat("a", 1024) + `","method":"GET","startedAt":100,"endedAt":101}]`, 201, "", ""},
		{"name of 1536 bytes", `[{"name":"` + strings.Repeat("é", 768) + `","method":"GET","startedAt":100,"endedAt":101}]`, 201, "", ""},
		{"name of 1024 characters, 2048 bytes", `[{"name":"` + strings.Repeat("é", 1024) + `","method":"GET","startedAt":100,"endedAt":101}]`, 422, "body[0].name", "max"},
		{"name of 1025 characters", `[{"name":"` + strings.Repeat("é", 1025) + `","method":"GET","startedAt":100,"endedAt":101}]`, 422, "body[0].name", "max"},
		{"lower-case method", `[{"name":"/a","method":"get","startedAt":100,"endedAt":101}]`, 422, "body[0].method", "oneof"},
		{"args null", `[{"name":"/a","method":"GET","startedAt":100,"endedAt":101,"args":null}]`, 422, "body[0].args", "type"},
		{"null record", `[null]`, 422, "", ""},
		{"trailing data", `[] []`, 400, "", ""},
		{"null body", `null`, 201, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.do("POST", "/api/measurements", c.body)
			if c.status == 201 {
				r.wantStatus(t, http.StatusCreated)
				return
			}
			p := r.problem(t, c.status)
			if c.location != "" && !p.hasError(c.location, c.title) {
				t.Fatalf("errors %+v lack %s/%s", p.Errors, c.location, c.title)
			}
		})
	}
}

// A number in args, kwargs or context that jsonb cannot hold (numeric's
// range: 131072 digits before the point, 16383 after) is a 422 item saying
// so, not the overflow of a 64-bit total it used to be described as.
func TestMeasurementsNumberBeyondJSONB(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, body := range []string{
		`[{"name":"/a","method":"GET","startedAt":100,"endedAt":101,"args":[1e1000000]}]`,
		`[{"name":"/a","method":"GET","startedAt":100,"endedAt":101,"kwargs":{"x":1e-20000}}]`,
	} {
		p := s.do("POST", "/api/measurements", body).problem(t, http.StatusUnprocessableEntity)
		if len(p.Errors) != 1 || !p.hasError("body", "max") ||
			!strings.Contains(p.Errors[0].Detail, "beyond what PostgreSQL stores in JSON") {
			t.Fatalf("%s: errors %+v", body, p.Errors)
		}
	}
	var n int64
	if err := s.Pool.QueryRow(context.Background(), "SELECT count(*) FROM measurements").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d stored (%v)", n, err)
	}
}

// elapsed=0, which flask-profiler's dashboard sends with every request,
// selects every row (elapsed is never negative), zero-elapsed ones
// included: each view answers exactly as without it. (It is read as no
// filter, so it takes the unfiltered paths: BenchmarkMeasurementsQueries'
// *_elapsed_0 cases.)
func TestMeasurementsElapsedZeroIsEveryRow(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	fixture(t, s)
	postIDs(t, s, []rec{mrec("/api/instant", "GET", day0+100, 0), mrec("/api/instant", "GET", day0+200, 0)})
	all := fmt.Sprintf("startedAt=%d&endedAt=%d", day0, day0+3*86400)
	for _, path := range []string{"/api/measurements/?", "/api/measurements/grouped/?", "/api/measurements/grouped/?sort=avgElapsed,asc&",
		"/api/measurements/?sort=elapsed,asc&", "/api/measurements/?name=/api/instant&"} {
		plain := s.do("GET", path+all, nil).wantStatus(t, http.StatusOK)
		for _, zero := range []string{"elapsed=0", "elapsed=0.0", "elapsed=-0"} {
			z := s.do("GET", path+all+"&"+zero, nil).wantStatus(t, http.StatusOK)
			if !bytes.Equal(plain.Body, z.Body) {
				t.Fatalf("%s%s answered\n%s\nwithout it\n%s", path, zero, z.Body, plain.Body)
			}
		}
		if !bytes.Contains(plain.Body, []byte("/api/instant")) {
			t.Fatalf("%s: the zero-elapsed rows are missing: %s", path, plain.Body)
		}
	}
	csv := func(q string) []byte {
		return s.do("GET", "/api/measurements/?"+all+q, nil, "Accept", "text/csv").wantStatus(t, http.StatusOK).Body
	}
	if a, b := csv(""), csv("&elapsed=0"); !bytes.Equal(a, b) {
		t.Fatalf("the export with elapsed=0 differs:\n%s\nwithout it\n%s", b, a)
	}
}

// A window bound between two microseconds (times are stored to the
// microsecond) is rounded inward: startedAt up, endedAt down, both ends
// being inclusive, so the window holds exactly the rows the bounds hold.
// Rounded to the nearest microsecond (the float huma parses is too coarse
// for anything better), startedAt=X.0000004 took in a row started at X and
// endedAt=X.0000026 one ended at X.000003; on the list, the grouped counts,
// the NDJSON export, the method distribution and the timeseries alike.
func TestMeasurementsWindowSubMicrosecond(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	const x = day0 + 7200
	id := postIDs(t, s, []rec{
		{"name": "/edge", "method": "GET", "startedAt": json.Number(fmt.Sprintf("%d.000000", x)), "endedAt": json.Number(fmt.Sprintf("%d.000002", x))}, // 0
		{"name": "/edge", "method": "GET", "startedAt": json.Number(fmt.Sprintf("%d.000001", x)), "endedAt": json.Number(fmt.Sprintf("%d.000003", x))}, // 1
	})
	for _, c := range []struct {
		startedAt, endedAt string
		want               []int // fixture indexes, endedAt desc
	}{
		{fmt.Sprint(x), fmt.Sprint(x + 1), []int{1, 0}},
		{fmt.Sprintf("%d.0000004", x), fmt.Sprint(x + 1), []int{1}},
		{fmt.Sprintf("%d.0000005", x), fmt.Sprint(x + 1), []int{1}},
		{fmt.Sprintf("%d.000000999", x), fmt.Sprint(x + 1), []int{1}},
		{fmt.Sprintf("%d.000001", x), fmt.Sprint(x + 1), []int{1}},
		{fmt.Sprintf("%d.0000010001", x), fmt.Sprint(x + 1), []int{}},
		{fmt.Sprint(x), fmt.Sprintf("%d.0000026", x), []int{0}},
		{fmt.Sprint(x), fmt.Sprintf("%d.0000025", x), []int{0}},
		{fmt.Sprint(x), fmt.Sprintf("%d.0000029999", x), []int{0}},
		{fmt.Sprint(x), fmt.Sprintf("%d.000003", x), []int{1, 0}},
		{fmt.Sprint(x), fmt.Sprintf("%d.0000019", x), []int{}},
		{fmt.Sprint(x), fmt.Sprintf("%d.000002", x), []int{0}},
		{fmt.Sprintf("%d.0000005", x), fmt.Sprintf("%d.0000025", x), []int{}},
		// Exponents: the same values.
		{fmt.Sprintf("%d0000004e-7", x), fmt.Sprintf("%d0000026E-7", x), []int{}},
		{fmt.Sprintf("%d0000004e-7", x), fmt.Sprintf("%d000003e-6", x), []int{1}},
	} {
		q := "startedAt=" + c.startedAt + "&endedAt=" + c.endedAt
		want := []int64{}
		for _, i := range c.want {
			want = append(want, id[i])
		}
		if p := list(t, s, "/api/measurements/?"+q); fmt.Sprint(ids(p.Items)) != fmt.Sprint(want) || p.Total != int64(len(want)) {
			t.Errorf("%s: ids %v total %d, want %v", q, ids(p.Items), p.Total, want)
		}
		nd := s.do("GET", "/api/measurements/?"+q, nil, "Accept", "application/x-ndjson").wantStatus(t, http.StatusOK)
		if lines := strings.Count(string(nd.Body), "\n"); lines != len(want) {
			t.Errorf("%s: NDJSON export has %d lines, want %d", q, lines, len(want))
		}
		var g groupPage
		s.do("GET", "/api/measurements/grouped/?"+q, nil).wantStatus(t, http.StatusOK).decode(t, &g)
		var n int64
		for _, it := range g.Items {
			n += it.Count
		}
		if n != int64(len(want)) {
			t.Errorf("%s: grouped counts %d, want %d", q, n, len(want))
		}
		var d struct{ Distribution map[string]int64 }
		s.do("GET", "/api/measurements/methodDistribution/?"+q, nil).wantStatus(t, http.StatusOK).decode(t, &d)
		if d.Distribution["GET"] != int64(len(want)) {
			t.Errorf("%s: distribution %v, want %d GET", q, d.Distribution, len(want))
		}
		var ts struct{ Serie map[string]int64 }
		s.do("GET", "/api/measurements/timeseries/?interval=hourly&"+q, nil).wantStatus(t, http.StatusOK).decode(t, &ts)
		n = 0
		for _, v := range ts.Serie {
			n += v
		}
		if n != int64(len(want)) {
			t.Errorf("%s: timeseries %v, want %d in all", q, ts.Serie, len(want))
		}
	}
}
