package api

import (
	"net/http"
	"testing"
)

// During a database outage the cause is logged once per kind and operation
// every warnlimit.Every, not once per request; every request still has its own
// line, and the readiness probe's line names its request.
func TestOutageWarningsAreThrottled(t *testing.T) {
	t.Parallel()
	s, logs := newLoggedServer(t)
	s.do("GET", "/flows?hour=1", nil).wantStatus(t, http.StatusOK)
	s.Pool.Close()
	const n = 20
	var first string
	for i := range n {
		p := s.do("GET", "/flows?hour=1", nil).problem(t, http.StatusServiceUnavailable)
		if i == 0 {
			first = p.RequestID
		}
	}
	warns := logs.lines("database unavailable")
	if len(warns) != 1 {
		t.Fatalf("%d lines of the cause for %d failed requests, want 1: %v", len(warns), n, warns)
	}
	if warns[0]["op"] != "list flows" || warns[0]["request_id"] != first || warns[0]["error"] == nil {
		t.Fatalf("cause line %v: want op, the first failed request's id (%s) and the error", warns[0], first)
	}
	failed := 0
	for _, l := range logs.lines("request") {
		if l["status"] == float64(http.StatusServiceUnavailable) {
			failed++
		}
	}
	if failed != n {
		t.Fatalf("%d request lines with status 503, want %d", failed, n)
	}
	// Another operation's failure has its own line.
	s.do("GET", "/api/measurements/", nil).problem(t, http.StatusServiceUnavailable)
	if got := len(logs.lines("database unavailable")); got != 2 {
		t.Fatalf("%d cause lines after another operation failed, want 2", got)
	}

	var ids []string
	for range 3 {
		ids = append(ids, s.do("GET", "/readyz", nil).problem(t, http.StatusServiceUnavailable).RequestID)
	}
	ready := logs.lines("not ready")
	if len(ready) != 1 || ready[0]["request_id"] != ids[0] {
		t.Fatalf("not-ready lines %v, want one naming request %s", ready, ids[0])
	}
}
