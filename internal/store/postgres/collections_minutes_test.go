package postgres_test

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// selfRequest is one row of the service's own requests with the figures
// it must contribute, written out by hand (not derived by the code under
// test): its path, the requests it stands for and its longest elapsed.
type selfRequest struct {
	context string
	path    string
	hits    int64
	longest float64 // 0: its elapsed
}

var selfRequestKinds = []selfRequest{
	{`{"path": "/a", "status": 200}`, "/a", 1, 0},
	{`{"path": "/a", "url": "/ignored?x=1"}`, "/a", 1, 0},
	{`{"url": "/b?page=2"}`, "/b", 1, 0},
	{`{"url": "/b"}`, "/b", 1, 0},
	{`{}`, "name-fallback", 1, 0},
	{`{"path": "/a", "count": 7, "elapsedMax": 2.5}`, "/a", 7, 2.5},
	{`{"path": "/a", "count": "7", "elapsedMax": "2.5"}`, "/a", 1, 0},
	{`{"path": "/a", "count": 2.5}`, "/a", 1, 0},
	{`{"path": "/a", "count": -3}`, "/a", 1, 0},
	{`{"path": "/a", "count": 0}`, "/a", 1, 0},
	{`{"path": "/a", "count": 1e30, "elapsedMax": 1e400}`, "/a", 1, 0},
	{`{"path": "/c", "count": 3}`, "/c", 3, 0},
}

// sameURLs reports whether got holds want's figures in want's order:
// paths, methods, hits and longest exactly, means within rel of want's
// (their sums added in another order).
func sameURLs(got, want []store.CollectionURL, rel float64) bool {
	if len(got) != len(want) {
		return false
	}
	for i, w := range want {
		g := got[i]
		if g.Path != w.Path || g.Method != w.Method || g.Hits != w.Hits ||
			math.Abs(g.AvgSeconds-w.AvgSeconds) > rel*w.AvgSeconds || g.MaxSeconds != w.MaxSeconds {
			return false
		}
	}
	return true
}

// The figures of a window are the minute cells of its whole minutes, the
// 10-second bins of the whole bins outside them and the rows of the rest
// (migrations 00020 and 00031): for windows of every shape (inside one bin,
// inside one minute, on minute and bin boundaries, across many minutes, at
// sub-second offsets), HTTP answers what the rows alone give, computed here
// from the requests' hand-written figures; after RebuildRollup too. Rows of
// other apps never count. It fails when any part is dropped or counted
// twice, when a partial minute or bin is read from the cells or a whole one
// from the rows, when a summary row's count or longest is misread, or when
// the read ignores the cells (they are inflated, and the answer must move).
func TestCollectionsHTTPMinuteCellsMatchRows(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := postgres.New(pool, postgres.Options{})
	ctx := context.Background()
	base := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(3, 4))
	type row struct {
		at      time.Time
		elapsed float64
		method  string
		kind    int
		app     string
	}
	var rows []row
	for batch := 0; batch < 6; batch++ {
		var recs []store.Measurement
		for i := 0; i < 60; i++ {
			r := row{at: base.Add(time.Duration(rng.Int64N(int64(6 * time.Minute)))).Truncate(time.Microsecond),
				elapsed: float64(1+rng.IntN(2000)) / 1000, method: []string{"GET", "POST"}[rng.IntN(2)],
				kind: rng.IntN(len(selfRequestKinds)), app: "telemetry"}
			if i%10 == 0 {
				r.app = "shop"
			}
			rows = append(rows, r)
			recs = append(recs, store.Measurement{StartedAt: r.at, EndedAt: r.at.Add(time.Duration(r.elapsed * float64(time.Second))),
				Elapsed: r.elapsed, Name: "name-fallback", Method: r.method, App: r.app,
				Context: json.RawMessage(selfRequestKinds[r.kind].context)})
		}
		// Rows exactly on a minute boundary and on a bin boundary, and one
		// just before each.
		for _, at := range []time.Time{base.Add(2 * time.Minute), base.Add(2*time.Minute - time.Microsecond),
			base.Add(70 * time.Second), base.Add(70*time.Second - time.Microsecond)} {
			r := row{at: at, elapsed: 0.5, method: "GET", kind: 0, app: "telemetry"}
			rows = append(rows, r)
			recs = append(recs, store.Measurement{StartedAt: at, EndedAt: at.Add(500 * time.Millisecond), Elapsed: 0.5,
				Name: "name-fallback", Method: "GET", App: "telemetry", Context: json.RawMessage(selfRequestKinds[0].context)})
		}
		if _, err := st.Measurements.Insert(ctx, recs); err != nil {
			t.Fatal(err)
		}
	}
	want := func(since, until time.Time) []store.CollectionURL {
		type acc struct {
			hits     int64
			sum, max float64
		}
		groups := map[[2]string]*acc{}
		for _, r := range rows {
			if r.app != "telemetry" || r.at.Before(since) || r.at.After(until) {
				continue
			}
			k := selfRequestKinds[r.kind]
			longest := k.longest
			if longest == 0 {
				longest = r.elapsed
			}
			key := [2]string{k.path, r.method}
			a := groups[key]
			if a == nil {
				a = &acc{max: math.Inf(-1)}
				groups[key] = a
			}
			a.hits += k.hits
			a.sum += r.elapsed * float64(k.hits)
			a.max = max(a.max, longest)
		}
		out := []store.CollectionURL{}
		for key, a := range groups {
			out = append(out, store.CollectionURL{Path: key[0], Method: key[1], Hits: a.hits, AvgSeconds: a.sum / float64(a.hits), MaxSeconds: a.max})
		}
		slices.SortFunc(out, func(a, b store.CollectionURL) int {
			return strings.Compare(a.Path+" "+a.Method, b.Path+" "+b.Method)
		})
		return out
	}
	windows := [][2]time.Duration{
		{0, 6 * time.Minute},                                                    // whole minutes only
		{-time.Hour, time.Hour},                                                 // around everything
		{90 * time.Second, 4*time.Minute + 10*time.Second},                      // partial at both ends
		{2 * time.Minute, 2 * time.Minute},                                      // one instant on a boundary
		{2*time.Minute - time.Microsecond, 2 * time.Minute},                     // across a boundary, inside no minute
		{65 * time.Second, 115 * time.Second},                                   // inside one minute
		{61500 * time.Millisecond, 3 * time.Minute},                             // sub-second start, whole end
		{time.Minute, 5*time.Minute + 999*time.Millisecond},                     // whole start, partial end
		{63*time.Second + 250*time.Millisecond, 4*time.Minute + 47*time.Second}, // partial bins and minutes at both ends
		{62 * time.Second, 68 * time.Second},                                    // inside one bin
		{65 * time.Second, 75 * time.Second},                                    // across a bin boundary, no whole bin
		{70 * time.Second, 110 * time.Second},                                   // whole bins inside one minute
		{70*time.Second - time.Microsecond, 70 * time.Second},                   // across a bin boundary, one instant each side
		{50 * time.Second, 2*time.Minute + 10*time.Second},                      // bins, a whole minute, bins
	}
	// Windows whose answer must move when the minute cells or the bins are
	// inflated: they hold whole minutes, and whole bins outside them.
	usesMinutes := [2]time.Duration{90 * time.Second, 4*time.Minute + 10*time.Second}
	usesBins := [2]time.Duration{70 * time.Second, 110 * time.Second}
	moved := func(table string, w [2]time.Duration) {
		t.Helper()
		if _, err := pool.Exec(ctx, `UPDATE `+table+` SET hits = hits * 100`); err != nil {
			t.Fatal(err)
		}
		since, until := base.Add(w[0]), base.Add(w[1])
		got, err := st.Collections.HTTP(ctx, since, until)
		if err != nil {
			t.Fatal(err)
		}
		var gotHits, wantHits int64
		for _, g := range got {
			gotHits += g.Hits
		}
		for _, e := range want(since, until) {
			wantHits += e.Hits
		}
		if wantHits == 0 || gotHits <= wantHits {
			t.Fatalf("window %v with %s inflated: %d hits, want more than %d (the cells are not read)", w, table, gotHits, wantHits)
		}
	}
	check := func(stage string) {
		t.Helper()
		kinds := 0
		for _, w := range windows {
			since, until := base.Add(w[0]), base.Add(w[1])
			got, err := st.Collections.HTTP(ctx, since, until)
			if err != nil {
				t.Fatalf("%s: %v", stage, err)
			}
			exp := want(since, until)
			if !sameURLs(got, exp, 1e-9) {
				t.Fatalf("%s, window %v:\n got %+v\nwant %+v", stage, w, got, exp)
			}
			kinds += len(exp)
		}
		if kinds == 0 {
			t.Fatalf("%s: no window saw a request", stage)
		}
	}
	check("after Insert")
	for _, table := range []string{"collection_http_minute", "collection_http_10s"} {
		var cells int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+table).Scan(&cells); err != nil || cells == 0 {
			t.Fatalf("%s: %d cells, %v", table, cells, err)
		}
	}
	moved("collection_http_minute", usesMinutes)
	moved("collection_http_10s", usesBins)
	if err := st.Measurements.RebuildRollup(ctx, base, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	check("after RebuildRollup")
}
