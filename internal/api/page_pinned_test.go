package api

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// linkRel is the target of rel in a Link header, "" when absent.
func linkRel(link, rel string) string {
	m := regexp.MustCompile(`<([^>]*)>; rel="` + rel + `"`).FindStringSubmatch(link)
	if m == nil {
		return ""
	}
	return m[1]
}

// A list whose window defaults to one ending now pages the rows of the
// first page's window: its links carry the window's bounds, so that a
// row added meanwhile neither repeats the last row of a page on the next
// nor changes the total.
func TestMeasurementsDefaultWindowPinnedInLinks(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	now := float64(time.Now().UnixMicro()) / 1e6
	postIDs(t, s, []rec{mrec("/pin", "GET", now-60, 0.5, "app", "pin"), mrec("/pin", "GET", now-50, 0.5, "app", "pin"),
		mrec("/pin", "GET", now-40, 0.5, "app", "pin")})
	for _, c := range []struct{ path, want string }{
		{"/api/measurements/?app=pin&size=2", "startedAt=&endedAt="},
		{"/api/measurements/grouped?app=pin&size=1&endedAt=" + fmt.Sprintf("%.6f", now+1), "startedAt="},
		{"/api/measurements/?app=pin&size=2&startedAt=" + fmt.Sprintf("%.6f", now-3600), "endedAt="},
	} {
		r := s.do(get, c.path, nil).wantStatus(t, http.StatusOK)
		link := r.Header.Get("Link")
		for _, rel := range []string{"first", "last"} {
			target := linkRel(link, rel)
			for _, name := range strings.Split(strings.TrimSuffix(c.want, "="), "=&") {
				if strings.Count(target, name+"=") != 1 {
					t.Fatalf("%s: %s link %q lacks %s once", c.path, rel, target, name)
				}
			}
		}
	}
	var first measurementPage
	r := s.do(get, "/api/measurements/?app=pin&size=2", nil).wantStatus(t, http.StatusOK)
	r.decode(t, &first)
	next := linkRel(r.Header.Get("Link"), "next")
	if first.Total != 3 || len(first.Items) != 2 || next == "" {
		t.Fatalf("page 1: %+v, Link %q", first, r.Header.Get("Link"))
	}
	// A measurement that ends after page 1 was read: at the top of the
	// default order, and in a window that ends at the next request's now.
	time.Sleep(2 * time.Millisecond)
	late := float64(time.Now().UnixMicro()) / 1e6
	postIDs(t, s, []rec{mrec("/pin", "GET", late-0.001, 0.001, "app", "pin")})
	if p := list(t, s, "/api/measurements/?app=pin&size=2"); p.Total != 4 {
		t.Fatalf("the late row is not in a new window: %+v", p)
	}
	second := list(t, s, next)
	if second.Total != 3 || len(second.Items) != 1 || slices.Contains(ids(first.Items), second.Items[0].ID) {
		t.Fatalf("page 2 by the link: %+v after page 1 %v", second, ids(first.Items))
	}
}

// The device history's default window is carried by its links too, and
// bounds finer than the microsecond the times are stored in are rounded
// up, so that [from, to) holds.
func TestDevicesHistoryWindowPinnedAndRounded(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "pin1")
	at := time.Now().Add(-time.Minute).Truncate(time.Microsecond).UTC()
	for i := range 3 {
		if _, err := s.Pool.Exec(context.Background(), `INSERT INTO device_metrics (time, device_id, name, type, value_num, units, slope, ttl)
			VALUES ($1, 'pin1', 'load', 'double', $2, 'u', 'both', 60)`, at.Add(time.Duration(i)*time.Second), float64(i)); err != nil {
			t.Fatal(err)
		}
	}
	const path = "/mrd/devices/pin1/metrics/load/history"
	var page Page[HistoryPoint]
	r := s.do(get, path+"?size=2", nil).wantStatus(t, http.StatusOK)
	r.decode(t, &page)
	next := linkRel(r.Header.Get("Link"), "next")
	if page.Total != 3 || !strings.Contains(next, "from=") || !strings.Contains(next, "to=") {
		t.Fatalf("page 1 %+v, Link %q", page, r.Header.Get("Link"))
	}
	// A bound given is kept as given, not pinned a second time.
	r = s.do(get, path+"?size=2&from="+at.Format(time.RFC3339Nano), nil).wantStatus(t, http.StatusOK)
	if n := linkRel(r.Header.Get("Link"), "next"); strings.Count(n, "from=") != 1 || !strings.Contains(n, "to=") {
		t.Fatalf("Link %q", r.Header.Get("Link"))
	}
	// A point reported after page 1 (the newest is last: history is
	// oldest first) is not in the pinned window.
	if _, err := s.Pool.Exec(context.Background(), `INSERT INTO device_metrics (time, device_id, name, type, value_num, units, slope, ttl)
		VALUES (now(), 'pin1', 'load', 'double', 9, 'u', 'both', 60)`); err != nil {
		t.Fatal(err)
	}
	s.do(get, next, nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 3 || len(page.Items) != 1 || *page.Items[0].Value != 2 {
		t.Fatalf("page 2 by the link: %+v", page)
	}
	// 100 ns after the first point: from excludes it, to includes it.
	finer := strings.Replace(at.Add(time.Microsecond/10).Format(time.RFC3339Nano), "+", "%2B", 1)
	if !strings.HasSuffix(at.Add(time.Microsecond/10).Format(time.RFC3339Nano), "00Z") &&
		!strings.Contains(finer, "Z") {
		t.Fatalf("bound %q", finer)
	}
	s.do(get, path+"?from="+finer, nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 3 || *page.Items[0].Value != 1 {
		t.Fatalf("from=%s: %+v", finer, page)
	}
	s.do(get, path+"?from="+at.Add(-time.Hour).Format(time.RFC3339Nano)+"&to="+finer, nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 1 || *page.Items[0].Value != 0 {
		t.Fatalf("to=%s: %+v", finer, page)
	}
	s.do(get, path+"?from="+finer+"&bucket=1h", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	var n int64
	for _, b := range page.Items {
		n += *b.Count
	}
	if n != 3 {
		t.Fatalf("from=%s bucket=1h: %d points, want 3", finer, n)
	}
}
