package api

import (
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// BenchmarkDashboardFirstRender: how long each dashboard page takes, in the
// browser, from the start of its navigation to its first complete render
// (the page's performance.mark("rendered"), set once every answer it waits
// for is drawn), with 10 million measurements stored over 30 days (as
// BenchmarkMeasurementsQueries). The target is under 1 s per page.
// Skipped unless UI_BENCH=1 (make ui-bench): loading the rows takes minutes.
// UI_BENCH_ROWS changes the row count.
func BenchmarkDashboardFirstRender(b *testing.B) {
	if os.Getenv("UI_BENCH") != "1" {
		b.Skip("set UI_BENCH=1 (make ui-bench) to load 10 M measurements and time the dashboard's pages")
	}
	n := 10_000_000
	if v, err := strconv.Atoi(os.Getenv("UI_BENCH_ROWS")); err == nil && v > 0 {
		n = v
	}
	s := newTestServer(b)
	generateMeasurements(b, s, n, 30, time.Time{})
	b.ReportMetric(float64(n), "rows")
	browser := newBrowser(b)

	pages := []struct{ name, path string }{
		{"overview", "/ui/"},
		{"measurements_day", "/ui/measurements"},
		{"measurements_week", "/ui/measurements?window=week"},
		{"measurements_hour_daily", "/ui/measurements?window=hour&bucket=1d"},
		{"measurements_endpoint", "/ui/measurements?ep=%2Fapi%2Fr7%2F%3Cid%3E&epm=GET"},
		{"devices", "/ui/devices"},
		{"flows", "/ui/flows"},
		{"runs", "/ui/runs"},
		{"collections", "/ui/collections"},
	}
	const loads = 3
	b.ResetTimer()
	for range b.N {
		for _, p := range pages {
			var ms []float64
			var detail string
			for range loads {
				tb := newTab(b, browser)
				tb.open(s.URL + p.path)
				ms = append(ms, eval[float64](tb, `performance.getEntriesByName("rendered")[0].startTime`))
				// Where the time went: the page and bundle, then each API call.
				detail = eval[string](tb, `(() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const parts = ["html " + Math.round(nav.responseEnd), "dom " + Math.round(nav.domInteractive)];
  for (const r of performance.getEntriesByType("resource"))
    parts.push(new URL(r.name).pathname + " " + Math.round(r.startTime) + "-" + Math.round(r.responseEnd));
  return parts.join(", ");
})()`)
				if strings.Contains(tb.text(), "Error") {
					b.Fatalf("%s: %s", p.path, tb.text())
				}
				tb.clean()
				// Close the tab before the next load.
				_ = chromedp.Cancel(tb.ctx)
			}
			sort.Float64s(ms)
			b.ReportMetric(ms[len(ms)/2], p.name+"_ms")
			b.ReportMetric(ms[len(ms)-1], p.name+"_max_ms")
			b.Logf("%s (%s): first render %v ms over %d loads; last load, ms from navigation: %s", p.name, p.path, ms, loads, detail)
		}
	}
	b.StopTimer()
}
