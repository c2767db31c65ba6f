package postgres_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// A series' history (the raw page, its total, and the buckets) is read from
// device_metrics_values_idx alone once autovacuum has been over the table
// (migration 00039): the reports of all devices arrive interleaved, so
// fetching a series' rows from the table read a page per row or two. Every
// scan of device_metrics in the plans the store's calls really run
// (auto_explain of their statements, with row counts) must be an index-only
// scan of that index that fetched no table row, and the answers must be
// the rows written.
func TestDeviceHistoryIndexOnly(t *testing.T) {
	t.Parallel()
	base := testdb.New(t)
	ctx := context.Background()
	const devices, points = 64, 600
	start := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	if _, err := base.Exec(ctx, `INSERT INTO devices (id, name) SELECT 'd' || i, 'd' || i FROM generate_series(1, $1::int) i`,
		devices); err != nil {
		t.Fatal(err)
	}
	// A report of every device each second, in time order: interleaved.
	// The commit is flushed before VACUUM (the test clusters commit
	// asynchronously), else VACUUM cannot set the rows' hint bits and
	// leaves every page not all visible.
	tx, err := base.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = on"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO device_metrics (time, device_id, name, type, value_num, units, slope, ttl)
		SELECT $1::timestamptz + s * interval '1 s', 'd' || d, 'cpu', 'float', s % 100, 'percent', 'both', 60
		FROM generate_series(0, $2::int - 1) s, generate_series(1, $3::int) d ORDER BY s, d`,
		start, points, devices); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// What autovacuum does to an insert-only table: the pages all visible.
	// FREEZE makes the pass aggressive, so that it waits for a page some
	// other process has pinned (the checkpointer writing it out) instead
	// of skipping it: under a loaded CI run a plain VACUUM once left a
	// quarter of the series' pages not all visible (150 heap fetches).
	// It can still leave pages not all visible while another session of
	// the cluster (a parallel test) holds back the oldest transaction a
	// row must be visible to: a loaded CI run saw 151 heap fetches and
	// bitmap heap scans. So VACUUM again, a little later, until every page
	// of the table (and its chunks) is all visible, as autovacuum's next
	// pass would make it.
	for try := 0; ; try++ {
		if _, err := base.Exec(ctx, "VACUUM (FREEZE, ANALYZE) device_metrics"); err != nil {
			t.Fatal(err)
		}
		var notVisible int64
		if err := base.QueryRow(ctx, `SELECT coalesce(sum(relpages - relallvisible), 0) FROM pg_class
			WHERE oid = 'device_metrics'::regclass OR oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'device_metrics'::regclass)`).
			Scan(&notVisible); err != nil {
			t.Fatal(err)
		}
		if notVisible == 0 {
			break
		}
		if try == 50 {
			t.Fatalf("%d pages of device_metrics not all visible after %d VACUUMs", notVisible, try+1)
		}
		time.Sleep(200 * time.Millisecond)
	}
	isTable := relationAndChunks(t, base, "device_metrics")

	pool, received := explainedPool(t, base, true)
	st := postgres.New(pool, postgres.Options{})
	defer st.Devices.Close()

	h := store.HistoryQuery{DeviceID: "d3", Name: "cpu", From: start, To: start.Add(points * time.Second)}
	raw, err := st.Devices.History(ctx, h, store.PageRequest{Limit: 50, Offset: 100})
	if err != nil {
		t.Fatal(err)
	}
	if raw.Total != points || len(raw.Items) != 50 || !raw.Items[0].Time.Equal(start.Add(100*time.Second)) || raw.Items[0].Value != 0 {
		t.Fatalf("raw history: total %d, %d items, first %+v; want %d, 50, 100 s in, value 0", raw.Total, len(raw.Items),
			raw.Items[0], points)
	}
	buckets, err := st.Devices.HistoryBuckets(ctx, h, time.Minute, store.PageRequest{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	if buckets.Total != points/60 || len(buckets.Items) != points/60 || buckets.Items[0].Count != 60 || buckets.Items[0].Max != 59 {
		t.Fatalf("buckets: total %d, %d items, first %+v; want %d of 60 points, max 59", buckets.Total, len(buckets.Items),
			buckets.Items[0], points/60)
	}

	notices := received()
	scans := scansOf(t, notices, isTable)
	// The raw page, its total, the buckets: three scans at least.
	if len(scans) < 3 {
		t.Fatalf("%d scans of device_metrics in the plans (%d notices): %q", len(scans), len(notices), notices)
	}
	for _, node := range scans {
		kind, _ := node["Node Type"].(string)
		index, _ := node["Index Name"].(string)
		fetches, _ := node["Heap Fetches"].(float64)
		if kind != "Index Only Scan" || !strings.HasSuffix(index, "device_metrics_values_idx") || fetches != 0 {
			t.Errorf("history read device_metrics by %s %q with %.0f rows fetched from the table; want an index-only "+
				"scan of device_metrics_values_idx fetching none: %v", kind, index, fetches, node)
		}
	}
}

// A page of buckets aggregates the page's buckets only, and answers what
// aggregating every point of the window and cutting that to the page
// would: each bucket's count, min, max, average and nearest-rank p95, and
// the total of non-empty buckets, on a window whose bounds fall inside
// buckets, with an empty stretch, points that share a time, another
// series' points in between and pages past the last. Until 2026-12-06 the
// statement aggregated every bucket of the window for every page
// (docs/devices.md, "At volume"): the plan's aggregate then emitted every
// bucket, which the check of the plans below refuses.
func TestDeviceHistoryBucketsAggregateThePageOnly(t *testing.T) {
	t.Parallel()
	base := testdb.New(t)
	ctx := context.Background()
	if _, err := base.Exec(ctx, `INSERT INTO devices (id, name) VALUES ('d1', 'd1'), ('d2', 'd2')`); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 6, 1, 10, 0, 3, 0, time.UTC)
	type point struct {
		at    time.Time
		value float64
	}
	var points []point
	for i := range 500 {
		at := start.Add(time.Duration(i) * 7 * time.Second)
		if m := at.Sub(start); m >= 20*time.Minute && m < 31*time.Minute {
			continue // no report: empty buckets
		}
		points = append(points, point{at, float64((i*37)%101 - 50)})
		if i%10 == 0 { // a second report of the same time
			points = append(points, point{at, float64(i % 7)})
		}
	}
	for _, p := range points {
		if _, err := base.Exec(ctx, `INSERT INTO device_metrics (time, device_id, name, type, value_num, units, slope, ttl)
			VALUES ($1, 'd1', 'cpu', 'float', $2::float8, 'percent', 'both', 60), ($1, 'd2', 'cpu', 'float', -$2::float8, 'percent', 'both', 60)`,
			p.at, p.value); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := base.Exec(ctx, "ANALYZE device_metrics"); err != nil {
		t.Fatal(err)
	}

	// What the page must answer: 90-second buckets from the Unix epoch,
	// over the window's points.
	const width = 90 * time.Second
	from, to := start.Add(95*time.Second), start.Add(55*time.Minute+3*time.Second)
	var want []store.HistoryBucket
	values := map[time.Time][]float64{}
	for _, p := range points {
		if p.at.Before(from) || !p.at.Before(to) {
			continue
		}
		b := time.Unix(p.at.Unix()/int64(width.Seconds())*int64(width.Seconds()), 0).UTC()
		if len(values[b]) == 0 {
			want = append(want, store.HistoryBucket{Start: b})
		}
		values[b] = append(values[b], p.value)
	}
	for i, b := range want {
		vs := slices.Clone(values[b.Start])
		slices.Sort(vs)
		sum := 0.0
		for _, v := range vs {
			sum += v
		}
		want[i] = store.HistoryBucket{Start: b.Start, Avg: sum / float64(len(vs)), Min: vs[0], Max: vs[len(vs)-1],
			P95: vs[(95*len(vs)+99)/100-1], Count: int64(len(vs))}
	}

	pool, received := explainedPool(t, base, true)
	st := postgres.New(pool, postgres.Options{})
	defer st.Devices.Close()
	h := store.HistoryQuery{DeviceID: "d1", Name: "cpu", From: from, To: to}
	const size = 7
	for offset := 0; offset < len(want)+2*size; offset += size {
		before := len(received())
		page, err := st.Devices.HistoryBuckets(ctx, h, width, store.PageRequest{Limit: size, Offset: int64(offset)})
		if err != nil {
			t.Fatal(err)
		}
		wantPage := want[min(offset, len(want)):min(offset+size, len(want))]
		if page.Total != int64(len(want)) || !slices.Equal(page.Items, wantPage) {
			t.Fatalf("offset %d: total %d, %+v; want %d, %+v", offset, page.Total, page.Items, len(want), wantPage)
		}
		// The statement's aggregates emit the page's buckets, no more.
		plans := plansOf(t, received()[before:], "percentile_disc")
		for _, plan := range plans {
			walkPlan(plan, func(node map[string]any) {
				rows, _ := node["Actual Rows"].(float64)
				if kind, _ := node["Node Type"].(string); kind == "Aggregate" && rows > size {
					t.Errorf("offset %d: an aggregate emitted %.0f rows for a page of %d buckets (of %d): %v",
						offset, rows, size, len(want), node)
				}
			})
		}
		if len(plans) == 0 {
			t.Fatalf("offset %d: no plan of the buckets' statement among the notices", offset)
		}
	}
	if len(want) < 4*size {
		t.Fatalf("only %d buckets: the test needs pages", len(want))
	}
}
