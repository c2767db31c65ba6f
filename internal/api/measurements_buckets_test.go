package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/store"
)

// The timeseries bucket widths (issue 12, point 5): each keyed as
// documented, counting the fixture's rows where they started, and the
// seed's interval values answering as bucket=1h and bucket=1d.
func TestMeasurementsTimeseriesBucketWidths(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	fixture(t, s)
	window := fmt.Sprintf("startedAt=%d&endedAt=%d", day0-1800, day0+86400+1800)
	get := func(query string) map[string]int64 {
		t.Helper()
		var ts struct{ Serie, Series map[string]int64 }
		s.do("GET", "/api/measurements/timeseries/?"+query+"&"+window, nil).wantStatus(t, http.StatusOK).decode(t, &ts)
		if !reflect.DeepEqual(ts.Serie, ts.Series) {
			t.Fatalf("%s: serie %v series %v", query, ts.Serie, ts.Series)
		}
		return ts.Serie
	}
	cases := []struct {
		bucket string
		n      int              // buckets in the window
		want   map[string]int64 // some of them
	}{
		// day0 is 2015-10-15 00:00 UTC; rows at +100, +200, +300, +400, +500 s, +3700 s, and +1 day +10 s;
		// the window runs from 23:30 the day before to 00:30 the day after (25 hours).
		{"5m", 25*12 + 1, map[string]int64{"2015-10-15 00:00": 2, "2015-10-15 00:05": 3, "2015-10-15 01:00": 1, "2015-10-16 00:00": 1, "2015-10-14 23:30": 0}},
		{"15m", 25*4 + 1, map[string]int64{"2015-10-15 00:00": 5, "2015-10-15 01:00": 1, "2015-10-15 00:15": 0}},
		{"1h", 26, map[string]int64{"2015-10-15 00": 5, "2015-10-15 01": 1, "2015-10-16 00": 1}},
		{"6h", 6, map[string]int64{"2015-10-14 18": 0, "2015-10-15 00": 6, "2015-10-15 06": 0, "2015-10-16 00": 1}},
		{"1d", 3, map[string]int64{"2015-10-14": 0, "2015-10-15": 6, "2015-10-16": 1}},
	}
	for _, c := range cases {
		got := get("bucket=" + c.bucket)
		var sum int64
		for _, v := range got {
			sum += v
		}
		if len(got) != c.n || sum != 7 {
			t.Errorf("bucket=%s: %d buckets summing to %d, want %d summing to 7: %v", c.bucket, len(got), sum, c.n, got)
		}
		for k, v := range c.want {
			if n, ok := got[k]; !ok || n != v {
				t.Errorf("bucket=%s: %s = %d (present %v), want %d", c.bucket, k, n, ok, v)
			}
		}
	}
	// The seed's interval values are aliases; bucket wins when both are given.
	if h, b := get("interval=hourly"), get("bucket=1h"); !reflect.DeepEqual(h, b) {
		t.Fatalf("interval=hourly %v, bucket=1h %v", h, b)
	}
	if d, b := get("interval=daily"), get("bucket=1d"); !reflect.DeepEqual(d, b) {
		t.Fatalf("interval=daily %v, bucket=1d %v", d, b)
	}
	if b := get("interval=daily&bucket=6h"); len(b) != 6 {
		t.Fatalf("bucket=6h with interval=daily: %v", b)
	}
}

func TestMeasurementsTimeseriesBucketErrors(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	cases := []struct {
		query, location, title string
	}{
		{"bucket=2h", "query.bucket", "oneof"},
		{"bucket=1H", "query.bucket", "oneof"},
		// 5-minute buckets over a year: past the 50,000-bucket bound.
		{fmt.Sprintf("bucket=5m&startedAt=%d&endedAt=%d", day0, day0+365*86400), "query.startedAt", "max"},
	}
	for _, c := range cases {
		p := s.do("GET", "/api/measurements/timeseries/?"+c.query, nil).problem(t, http.StatusUnprocessableEntity)
		if !p.hasError(c.location, c.title) {
			t.Errorf("%s: errors %+v lack %s/%s", c.query, p.Errors, c.location, c.title)
		}
	}
	// The same year in 1-day buckets is fine.
	s.do("GET", fmt.Sprintf("/api/measurements/timeseries/?bucket=1d&startedAt=%d&endedAt=%d", day0, day0+365*86400), nil).
		wantStatus(t, http.StatusOK)
}

// bucketCounts writes the bytes encoding/json writes for the same
// map[string]int64 (keys sorted, the last count of a repeated key), with
// HTML escaping (json.Marshal) and without (as huma writes bodies), for
// every layout of timeseriesBuckets and for keys no layout gives.
func TestBucketCountsWriteAsTheMap(t *testing.T) {
	encode := func(v any, escapeHTML bool) string {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(escapeHTML)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	check := func(series []store.MeasurementBucket, layout string) {
		t.Helper()
		want := map[string]int64{}
		for _, b := range series {
			want[b.Start.UTC().Format(layout)] = b.Count
		}
		for _, escapeHTML := range []bool{true, false} {
			if got, w := encode(bucketCountsOf(series, layout), escapeHTML), encode(want, escapeHTML); got != w {
				t.Fatalf("layout %q, %d buckets, HTML escaped %v: %s, want %s", layout, len(series), escapeHTML, got, w)
			}
		}
	}
	start := time.Date(2026, 12, 1, 22, 50, 0, 0, time.UTC)
	for _, b := range timeseriesBuckets {
		var series []store.MeasurementBucket
		for i := range 300 {
			series = append(series, store.MeasurementBucket{Start: start.Add(time.Duration(i) * b.width).Truncate(b.width), Count: int64(i * i)})
		}
		check(series, b.layout)
	}
	check(nil, "2006-01-02")
	check([]store.MeasurementBucket{{Start: start, Count: 7}}, "2006-01-02")
	// Keys out of order, repeated, or to be escaped (no layout gives them).
	odd := []store.MeasurementBucket{{Count: 1}, {Start: start, Count: 2}, {Start: start, Count: 3}, {Start: start.Add(-time.Hour), Count: 4}}
	for _, layout := range []string{"15", `"Jan" 2 <15>\`, "Monday"} {
		check(odd, layout)
	}
}
