package api

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/config"
)

// aheadRecord is a measurement that started at start and ended at end, as
// JSON.
func aheadRecord(name string, start, end time.Time) string {
	return fmt.Sprintf(`{"name":%q,"method":"GET","startedAt":%s,"endedAt":%s}`, name, epochText(start), epochText(end))
}

// checkAheadItem fails unless p lists, at location, the max item of a
// time past MAX_TIME_AHEAD (written ahead) with the value sent, its detail
// naming the latest time accepted for a request made between before and
// after.
func checkAheadItem(t *testing.T, p Problem, location string, sent time.Time, ahead string, d time.Duration, before, after time.Time) {
	t.Helper()
	field := location[strings.LastIndex(location, ".")+1:]
	for _, it := range p.Errors {
		if it.Location != location || it.Title != "max" {
			continue
		}
		prefix := field + " must be at most MAX_TIME_AHEAD (" + ahead + ") ahead of the server's clock: "
		stamp, ok := strings.CutSuffix(strings.TrimPrefix(it.Detail, prefix), " or earlier")
		latest, err := time.Parse(time.RFC3339, stamp)
		if !strings.HasPrefix(it.Detail, prefix) || !ok || err != nil || len(stamp) != len("2006-01-02T15:04:05Z") ||
			latest.Before(before.Add(d).Truncate(time.Second)) || latest.After(after.Add(d)) {
			t.Fatalf("%s: detail %q, want %q + a time between %v and %v", location, it.Detail, prefix, before.Add(d), after.Add(d))
		}
		if v, _ := it.Value.(float64); it.Source != field || it.Status != http.StatusUnprocessableEntity ||
			strconv.FormatFloat(v, 'f', 6, 64) != epochText(sent) {
			t.Fatalf("%s: item %+v, want source %s and value %s", location, it, field, epochText(sent))
		}
		return
	}
	t.Fatalf("errors %+v lack %s/max", p.Errors, location)
}

// TestMeasurementsTimeAhead: under MAX_TIME_AHEAD (default 1d) a startedAt
// or endedAt later than the server's clock + 1d is a 422 max item at each
// such field, listed beside the body's other failures, and nothing of the
// batch is stored; a time an hour ahead is stored. The check is in both
// decoding paths: a body whose only fault is a time ahead is refused (the
// fast path falls to the slow one, which names it).
func TestMeasurementsTimeAhead(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	tables := []string{"measurements", "measurements_hourly"}
	now := time.Now().Truncate(time.Microsecond)
	soon, far := now.Add(time.Hour), now.Add(3*24*time.Hour)
	s.do("POST", "/api/measurements", "["+aheadRecord("/soon", soon, soon.Add(time.Second))+"]").wantStatus(t, http.StatusCreated)
	stored := s.counts(t, tables)

	post := func(path, body string) (Problem, time.Time, time.Time) {
		t.Helper()
		before := time.Now()
		p := s.do("POST", path, body).problem(t, http.StatusUnprocessableEntity)
		return p, before, time.Now()
	}
	// Only a time ahead: startedAt and endedAt, endedAt alone.
	for _, c := range []struct {
		record    string
		locations []string
		sent      []time.Time
	}{
		{aheadRecord("/far", far, far.Add(time.Second)), []string{"body[1].startedAt", "body[1].endedAt"}, []time.Time{far, far.Add(time.Second)}},
		{aheadRecord("/far", now, far), []string{"body[1].endedAt"}, []time.Time{far}},
	} {
		for _, path := range []string{"/api/measurements", "/api/measurements/"} {
			p, before, after := post(path, "["+aheadRecord("/now", now, now)+","+c.record+"]")
			if len(p.Errors) != len(c.locations) {
				t.Fatalf("%s %s: errors %+v, want %v", path, c.record, p.Errors, c.locations)
			}
			for i, loc := range c.locations {
				checkAheadItem(t, p, loc, c.sent[i], "1d", 24*time.Hour, before, after)
			}
		}
	}
	// Beside the other failures of the body, each listed once.
	body := "[" + aheadRecord("", now, now) + "," + aheadRecord("/far", far, far) + "," +
		aheadRecord("/back", soon, now) + "," + aheadRecord("/far", far.Add(time.Hour), far) + "]"
	p, before, after := post("/api/measurements", body)
	for _, want := range []struct{ location, title string }{
		{"body[0].name", "min"}, {"body[2].endedAt", "gtefield"}, {"body[3].endedAt", "gtefield"},
	} {
		if !p.hasError(want.location, want.title) {
			t.Fatalf("errors %+v lack %s/%s", p.Errors, want.location, want.title)
		}
	}
	checkAheadItem(t, p, "body[1].startedAt", far, "1d", 24*time.Hour, before, after)
	checkAheadItem(t, p, "body[1].endedAt", far, "1d", 24*time.Hour, before, after)
	checkAheadItem(t, p, "body[3].startedAt", far.Add(time.Hour), "1d", 24*time.Hour, before, after)
	checkAheadItem(t, p, "body[3].endedAt", far, "1d", 24*time.Hour, before, after)
	if len(p.Errors) != 7 {
		t.Fatalf("errors %+v, want 7", p.Errors)
	}
	// Past 9999-12-31 the schema's max item alone says it.
	p, _, _ = post("/api/measurements", `[{"name":"/x","method":"GET","startedAt":1,"endedAt":253402300800}]`)
	if len(p.Errors) != 1 || !p.hasError("body[0].endedAt", "max") || !strings.Contains(p.Errors[0].Detail, "253402300799") {
		t.Fatalf("errors %+v, want the schema's max item alone", p.Errors)
	}
	if got := s.counts(t, tables); got != stored {
		t.Fatalf("refused batches stored rows: %s, was %s", got, stored)
	}
}

// TestMeasurementsTimeAheadSetting: MAX_TIME_AHEAD as configured, named in
// the item as the operator would write it; 0 takes any time up to
// 9999-12-31 as before the setting.
func TestMeasurementsTimeAheadSetting(t *testing.T) {
	t.Parallel()
	now := time.Now().Truncate(time.Microsecond)
	s := newTestServer(t, func(c *config.Config) { c.MaxTimeAhead = 36 * time.Hour })
	s.do("POST", "/api/measurements", "["+aheadRecord("/a", now, now.Add(30*time.Hour))+"]").wantStatus(t, http.StatusCreated)
	before := time.Now()
	p := s.do("POST", "/api/measurements", "["+aheadRecord("/a", now, now.Add(40*time.Hour))+"]").problem(t, http.StatusUnprocessableEntity)
	checkAheadItem(t, p, "body[0].endedAt", now.Add(40*time.Hour), "36h", 36*time.Hour, before, time.Now())

	off := newTestServer(t, func(c *config.Config) { c.MaxTimeAhead = 0 })
	off.do("POST", "/api/measurements", `[{"name":"/a","method":"GET","startedAt":253402300799,"endedAt":253402300799},`+
		aheadRecord("/b", now.Add(3*24*time.Hour), now.Add(3*24*time.Hour))+"]").wantStatus(t, http.StatusCreated)
	if got := off.counts(t, []string{"measurements"}); got != "measurements=2" {
		t.Fatalf("MAX_TIME_AHEAD=0: %s", got)
	}
}
