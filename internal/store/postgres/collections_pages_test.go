package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// A collection's httpUrls read in pages (HTTPTotalsPage, as the API writes
// a large answer) is every entry once, in the order of one read of the
// whole table, whatever the page size: pages that end between two methods
// of one path, paths that are prefixes of others, an empty path and an
// empty method (the entry with both empty sorts first), and
// the totals of another collection interleaved in the key. Each page after
// the first is a range of the primary key: the plan the call runs reads
// the index from the cursor and returns no more rows than the page.
func TestCollectionsHTTPTotalsPages(t *testing.T) {
	t.Parallel()
	base := testdb.New(t)
	ctx := context.Background()
	st := postgres.New(base, postgres.Options{})
	a, err := st.Collections.Create(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Collections.Create(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{a, b} {
		if _, err := base.Exec(ctx, `INSERT INTO collection_http_totals (collection_id, path, method, hits, sum_elapsed, max_elapsed)
			SELECT $1::bigint, p, m, 1 + g % 5, 0.25 * (1 + g % 5), 0.5
			FROM generate_series(1, 6000) g,
			     LATERAL (VALUES ('/p/' || g), ('/p/' || g || '/x'), ('/P/' || g % 7), ('/é' || g % 3)) v(p),
			     LATERAL (VALUES ('GET'), ('POST')) w(m)
			ON CONFLICT DO NOTHING`, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := base.Exec(ctx, `INSERT INTO collection_http_totals (collection_id, path, method, hits, sum_elapsed, max_elapsed)
		VALUES ($1, '', '', 1, 1, 1), ($1, '', 'GET', 2, 1, 1), ($1, '/', '', 3, 1, 1)`, a); err != nil {
		t.Fatal(err)
	}
	if _, err := base.Exec(ctx, "ANALYZE collection_http_totals"); err != nil {
		t.Fatal(err)
	}
	var want []string
	rows, err := base.Query(ctx, `SELECT path || ' ' || method || ' ' || hits FROM collection_http_totals
		WHERE collection_id = $1 ORDER BY path, method`, a)
	if err != nil {
		t.Fatal(err)
	}
	if want, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if len(want) < 24_000 {
		t.Fatalf("%d entries written, want more than 24,000", len(want))
	}
	keys := func(urls []store.CollectionURL) []string {
		out := make([]string, len(urls))
		for i, u := range urls {
			out[i] = fmt.Sprintf("%s %s %d", u.Path, u.Method, u.Hits)
		}
		return out
	}
	whole, err := st.Collections.HTTPTotals(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(whole); !slices.Equal(got, want) {
		t.Fatalf("HTTPTotals: %d entries, want %d in the table's order (first %q, want %q)", len(got), len(want),
			got[:min(3, len(got))], want[:3])
	}
	for _, limit := range []int{1, 2, 7, 4999, 5000, len(want) - 1, len(want), len(want) + 1} {
		var got []string
		var after *store.CollectionURL
		pages := 0
		for {
			page, err := st.Collections.HTTPTotalsPage(ctx, a, after, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit {
				t.Fatalf("limit %d: a page of %d entries", limit, len(page))
			}
			pages++
			got = append(got, keys(page)...)
			if len(page) < limit {
				break
			}
			after = &page[len(page)-1]
			if limit == 1 && pages > 50 {
				break // the first pages are enough at one entry a page
			}
		}
		if limit == 1 {
			if !slices.Equal(got, want[:len(got)]) {
				t.Fatalf("pages of 1: %q, want %q", got, want[:len(got)])
			}
			continue
		}
		if !slices.Equal(got, want) {
			t.Fatalf("pages of %d: %d entries, want %d in the table's order", limit, len(got), len(want))
		}
	}
	// Past the last entry: empty, not nil; an unknown collection the same.
	last := whole[len(whole)-1]
	for _, c := range []struct {
		id    int64
		after *store.CollectionURL
	}{{a, &last}, {a + b + 100, nil}} {
		if page, err := st.Collections.HTTPTotalsPage(ctx, c.id, c.after, 10); err != nil || page == nil || len(page) != 0 {
			t.Fatalf("collection %d after %v: %v, %v; want an empty page", c.id, c.after, page, err)
		}
	}
	for _, limit := range []int{0, -1} {
		if _, err := st.Collections.HTTPTotalsPage(ctx, a, nil, limit); err == nil {
			t.Fatalf("a page of %d entries: no error", limit)
		}
	}

	// The plan of a page in the middle, as the store runs it.
	isTotals := relationAndChunks(t, base, "collection_http_totals")
	pool, received := explainedPool(t, base, true)
	explained := postgres.New(pool, postgres.Options{})
	mid := whole[len(whole)/2]
	page, err := explained.Collections.HTTPTotalsPage(ctx, a, &mid, 100)
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(page); !slices.Equal(got, want[len(want)/2+1:len(want)/2+101]) {
		t.Fatalf("the page after the middle: %q..., want %q...", got[:1], want[len(want)/2+1])
	}
	scans := scansOf(t, received(), isTotals)
	if len(scans) != 1 {
		t.Fatalf("%d scans of collection_http_totals in the page's plan, want 1: %v", len(scans), scans)
	}
	node := scans[0]
	kind, _ := node["Node Type"].(string)
	index, _ := node["Index Name"].(string)
	cond, _ := node["Index Cond"].(string)
	rowsOut, _ := node["Actual Rows"].(float64)
	removed, _ := node["Rows Removed by Filter"].(float64)
	if !strings.HasPrefix(kind, "Index") || index != "collection_http_totals_pkey" || !strings.Contains(cond, "ROW(path, method) >") ||
		rowsOut > 100 || removed != 0 {
		t.Fatalf("the page read collection_http_totals by %s %q (cond %q), %.0f rows out, %.0f removed by a filter; "+
			"want a scan of the primary key from the cursor returning the page's 100 rows: %v", kind, index, cond, rowsOut, removed, node)
	}
}
