package api

import (
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/config"
)

// flowAt is a valid flow of hour, as a JSON object.
func flowAt(src string, hour int64) string {
	return fmt.Sprintf(`{"src_app":%q,"dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":%d}`, src, hour)
}

// limitHour is the last hour a flow may have under MAX_TIME_AHEAD ahead,
// the server's clock reading now: floor((now + ahead) / 1h).
func limitHour(now time.Time, ahead time.Duration) int64 {
	return now.Add(ahead).Unix() / 3600
}

// POST /flows under MAX_TIME_AHEAD (default 1d): an hour up to the one that
// holds the server's clock + 1 day is stored, the next one is a 422 "max"
// item beside every other failure of the body, and nothing of a refused
// batch is stored.
func TestFlowsHourAhead(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	tables := []string{"flows", "flows_hourly"}
	inAnHour := time.Now().Add(time.Hour).Unix() / 3600
	s.do("POST", "/flows", "["+flowAt("soon", inAnHour)+"]").wantStatus(t, http.StatusCreated)

	// The limit's hour is stored, the next is refused. Away from the turn
	// of the limit's hour, so that the server reads the same limit.
	now := time.Now()
	if rest := time.Hour - time.Duration(now.Add(24*time.Hour).UnixNano()%int64(time.Hour)); rest < 10*time.Second {
		time.Sleep(rest + 100*time.Millisecond)
		now = time.Now()
	}
	last := limitHour(now, 24*time.Hour)
	stored := s.counts(t, tables)
	p := s.do("POST", "/flows", "["+flowAt("edge", last)+","+flowAt("past", last+1)+"]").problem(t, http.StatusUnprocessableEntity)
	if after := s.counts(t, tables); after != stored {
		t.Fatalf("a refused batch stored rows: %s, then %s", stored, after)
	}
	want := ProblemItem{Status: 422, Title: "max", Source: "hour", Location: "body[1].hour", Value: float64(last + 1),
		Detail: fmt.Sprintf("hour must be at most %d, the hour MAX_TIME_AHEAD (1d) ahead of the server's clock (%s)",
			last, time.Unix(last*3600, 0).UTC().Format(time.RFC3339))}
	if len(p.Errors) != 1 || !reflect.DeepEqual(*p.Errors[0], want) {
		t.Fatalf("errors = %+v, want %+v", p.Errors, want)
	}
	s.do("POST", "/flows", "["+flowAt("edge", last)+"]").wantStatus(t, http.StatusCreated)

	// Three days ahead, with another failure in the body and the hours
	// that break another rule: every failure is listed, once per field
	// (an hour past 2147483647 or written with an exponent has its own
	// item, not a second one for MAX_TIME_AHEAD).
	far := time.Now().Add(72*time.Hour).Unix() / 3600
	stored = s.counts(t, tables)
	body := "[" + flowAt("ok", inAnHour) + "," + flowAt("far", far) + "," + flowAt("", inAnHour) + "," +
		flowAt("huge", 2147483648) + "," + flowAt("ahead too", far) + "]"
	p = s.do("POST", "/flows", body).problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("body[1].hour", "max") || !p.hasError("body[2].src_app", "min") ||
		!p.hasError("body[3].hour", "max") || !p.hasError("body[4].hour", "max") || len(p.Errors) != 4 {
		t.Fatalf("errors = %+v", p.Errors)
	}
	for _, e := range p.Errors {
		if e.Location == "body[3].hour" && e.Detail != "hour must be 2147483647 or less" {
			t.Fatalf("hour past 2147483647: %+v", e)
		}
		if e.Location == "body[1].hour" && e.Value != float64(far) {
			t.Fatalf("hour ahead: %+v", e)
		}
	}
	p = s.do("POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":1e7}]`).
		problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || !p.hasError("body[0].hour", "type") {
		t.Fatalf("hour 1e7: errors = %+v", p.Errors)
	}
	if after := s.counts(t, tables); after != stored {
		t.Fatalf("refused batches stored rows: %s, then %s", stored, after)
	}
}

// The detail writes MAX_TIME_AHEAD as the operator did, and the limit
// follows it; MAX_TIME_AHEAD=0 takes every hour up to 2147483647, as
// before the setting.
func TestFlowsHourAheadSettings(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.MaxTimeAhead = 90 * time.Minute })
	far := time.Now().Add(3*time.Hour).Unix() / 3600
	p := s.do("POST", "/flows", "["+flowAt("a", far)+"]").problem(t, http.StatusUnprocessableEntity)
	last := limitHour(time.Now(), 90*time.Minute)
	want := fmt.Sprintf("hour must be at most %d, the hour MAX_TIME_AHEAD (90m) ahead of the server's clock (%s)",
		last, time.Unix(last*3600, 0).UTC().Format(time.RFC3339))
	if len(p.Errors) != 1 || p.Errors[0].Detail != want {
		t.Fatalf("errors = %+v, want one with detail %q", p.Errors, want)
	}

	off := newTestServer(t, func(c *config.Config) { c.MaxTimeAhead = 0 })
	off.do("POST", "/flows", "["+flowAt("a", far)+","+flowAt("b", 2147483647)+"]").wantStatus(t, http.StatusCreated)
	var page Page[Flow]
	off.do("GET", "/flows?hour=2147483647", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 1 {
		t.Fatalf("hour 2147483647 with MAX_TIME_AHEAD=0: %+v", page)
	}
	p = off.do("POST", "/flows", "["+flowAt("a", 2147483648)+"]").problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || !p.hasError("body[0].hour", "max") {
		t.Fatalf("errors = %+v", p.Errors)
	}
}

// TestFlowHourLimit: the flows' limit is the hour that holds now + 1d,
// whatever the zone of now; off at 0.
func TestFlowHourLimit(t *testing.T) {
	t.Parallel()
	// 14:41:21Z + 1d is in 2026-12-07T14:00Z.
	now := time.Date(2026, 12, 6, 15, 41, 21, 5, time.FixedZone("x", 3600))
	if got, want := flowHourLimit(now, 24*time.Hour), (hourLimit{max: time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC).Unix() / 3600, ahead: 24 * time.Hour}); got != want {
		t.Errorf("flowHourLimit = %+v, want %+v", got, want)
	}
	if got := flowHourLimit(now, 0); got != (hourLimit{max: maxHour}) {
		t.Errorf("flowHourLimit off = %+v", got)
	}
}
