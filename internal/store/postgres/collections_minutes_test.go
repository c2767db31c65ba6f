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

// The figures of a window are the minute cells of its whole minutes plus
// the rows of its partial ones (migration 00020): for windows of every
// shape (inside one minute, on minute boundaries, across many minutes, at
// sub-second offsets), HTTP answers what the rows alone give, computed here
// from the requests' hand-written figures; after RebuildRollup too. Rows of
// other apps never count. It fails when either part is dropped, when a
// partial minute is read from the cells or a whole one from the rows, or
// when a summary row's count or longest is misread.
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
		// A row exactly on a minute boundary and one just before it.
		for _, at := range []time.Time{base.Add(2 * time.Minute), base.Add(2*time.Minute - time.Microsecond)} {
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
		{0, 6 * time.Minute},                                // whole minutes only
		{-time.Hour, time.Hour},                             // around everything
		{90 * time.Second, 4*time.Minute + 10*time.Second},  // partial at both ends
		{2 * time.Minute, 2 * time.Minute},                  // one instant on a boundary
		{2*time.Minute - time.Microsecond, 2 * time.Minute}, // across a boundary, inside no minute
		{65 * time.Second, 115 * time.Second},               // inside one minute
		{61500 * time.Millisecond, 3 * time.Minute},         // sub-second start, whole end
		{time.Minute, 5*time.Minute + 999*time.Millisecond}, // whole start, partial end
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
			if len(got) != len(exp) {
				t.Fatalf("%s, window %v: %d figures, want %d:\n got %+v\nwant %+v", stage, w, len(got), len(exp), got, exp)
			}
			for i := range exp {
				g, e := got[i], exp[i]
				if g.Path != e.Path || g.Method != e.Method || g.Hits != e.Hits ||
					math.Abs(g.AvgSeconds-e.AvgSeconds) > 1e-9*e.AvgSeconds || g.MaxSeconds != e.MaxSeconds {
					t.Fatalf("%s, window %v, figure %d: %+v, want %+v", stage, w, i, g, e)
				}
			}
			kinds += len(exp)
		}
		if kinds == 0 {
			t.Fatalf("%s: no window saw a request", stage)
		}
	}
	check("after Insert")
	var cells int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM collection_http_minute`).Scan(&cells); err != nil || cells == 0 {
		t.Fatalf("minute cells: %d, %v", cells, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE collection_http_minute SET hits = hits * 100`); err != nil {
		t.Fatal(err)
	}
	if err := st.Measurements.RebuildRollup(ctx, base, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	check("after RebuildRollup")
}
