package postgres_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// The keys of the running runs read in pages (RunningKeys, as GET
// isrunning writes its answer) are every running run's <host>-<uuid> once,
// no committed one's, sorted bytewise as Go sorts strings (the order the
// JSON encoder gave the answer's keys), whatever the page size: hosts that
// are prefixes of others, that hold '-', capitals, quotes, non-ASCII
// (U+E000 and an emoji: bytewise and UTF-16 orders differ there). Each page
// is a range of event_runs_running_key_idx: the plan the call runs reads
// the index from the cursor and returns no more rows than the page. The
// test clusters' collation is C: TESTDB_LOCALE=icu:en-US runs this test
// under a linguistic one, where the query's COLLATE "C" is what keeps the
// order (without it, the pages come in another order).
func TestEventsRunningPages(t *testing.T) {
	t.Parallel()
	base := testdb.New(t)
	ctx := context.Background()
	ev := postgres.New(base, postgres.Options{}).Events
	if _, err := base.Exec(ctx, `INSERT INTO event_runs (uuid, host, state, started_at, ended_at, committed_at)
		SELECT gen_random_uuid(), h, s, now() - g * interval '1 second',
		       CASE s WHEN 'committed' THEN now() END, CASE s WHEN 'committed' THEN now() END
		FROM generate_series(1, 1500) g,
		     LATERAL (VALUES ('gen-' || g % 40), ('gen-' || g % 40 || '-x'), ('Gen'), ('gen'), ('é' || g % 3),
		                     (E'\u2028a'), (E'\U0001F600'), (E'\uE000'), (E'a"b\\<&>')) v(h),
		     LATERAL (VALUES (CASE WHEN g % 4 = 0 THEN 'committed' ELSE 'running' END)) w(s)`); err != nil {
		t.Fatal(err)
	}
	if _, err := base.Exec(ctx, "ANALYZE event_runs"); err != nil {
		t.Fatal(err)
	}
	rows, err := base.Query(ctx, `SELECT host || '-' || uuid::text FROM event_runs WHERE state = 'running'`)
	if err != nil {
		t.Fatal(err)
	}
	want, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	if len(want) < 10_000 {
		t.Fatalf("%d running runs written, want more than 10,000", len(want))
	}
	for _, limit := range []int{1, 2, 7, 4999, len(want) - 1, len(want), len(want) + 1} {
		var got []string
		after := ""
		for pages := 1; ; pages++ {
			page, err := ev.RunningKeys(ctx, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit {
				t.Fatalf("limit %d: a page of %d runs", limit, len(page))
			}
			got = append(got, page...)
			if len(page) < limit || limit == 1 && pages > 50 {
				break // at one run a page, the first pages are enough
			}
			after = page[len(page)-1]
		}
		if limit == 1 {
			got, want := got, want[:len(got)]
			if !slices.Equal(got, want) {
				t.Fatalf("pages of 1: %q, want %q", got, want)
			}
			continue
		}
		if !slices.Equal(got, want) {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			t.Fatalf("pages of %d: %d runs, want %d in the keys' byte order; first difference at %d: %q, want %q",
				limit, len(got), len(want), i, got[i:min(len(got), i+2)], want[i:min(len(want), i+2)])
		}
	}
	// Past the last run: empty, not nil.
	if page, err := ev.RunningKeys(ctx, want[len(want)-1], 10); err != nil || page == nil || len(page) != 0 {
		t.Fatalf("after the last run: %v, %v; want an empty page", page, err)
	}
	for _, limit := range []int{0, -1} {
		if _, err := ev.RunningKeys(ctx, "", limit); err == nil {
			t.Fatalf("a page of %d runs: no error", limit)
		}
	}

	// The plan of a page in the middle, as the store runs it.
	pool, received := explainedPool(t, base, true)
	explained := postgres.New(pool, postgres.Options{}).Events
	page, err := explained.RunningKeys(ctx, want[len(want)/2], 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := page; !slices.Equal(got, want[len(want)/2+1:len(want)/2+101]) {
		t.Fatalf("the page after the middle: %q..., want %q...", got[:1], want[len(want)/2+1])
	}
	scans := scansOf(t, received(), map[string]bool{"event_runs": true})
	if len(scans) != 1 {
		t.Fatalf("%d scans of event_runs in the page's plan, want 1: %v", len(scans), scans)
	}
	node := scans[0]
	kind, _ := node["Node Type"].(string)
	index, _ := node["Index Name"].(string)
	cond, _ := node["Index Cond"].(string)
	rowsOut, _ := node["Actual Rows"].(float64)
	removed, _ := node["Rows Removed by Filter"].(float64)
	if !strings.HasPrefix(kind, "Index") || index != "event_runs_running_key_idx" || !strings.Contains(cond, `(uuid)::text))::text > `) ||
		rowsOut > 100 || removed != 0 {
		t.Fatalf("the page read event_runs by %s %q (cond %q), %.0f rows out, %.0f removed by a filter; "+
			"want a scan of event_runs_running_key_idx from the cursor returning the page's 100 rows: %v",
			kind, index, cond, rowsOut, removed, node)
	}
}
