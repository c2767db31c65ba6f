package postgres_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// sameGroups reports where got differs from want: the same groups in the
// same order and the same total, every figure equal but the averages, to
// the last digits (sums added in another order).
func sameGroups(t *testing.T, label string, got, want store.Page[store.MeasurementGroup]) {
	t.Helper()
	if got.Total != want.Total || len(got.Items) != len(want.Items) {
		t.Errorf("%s: %d groups (total %d), want %d (total %d)", label, len(got.Items), got.Total, len(want.Items), want.Total)
		return
	}
	for i, g := range got.Items {
		w := want.Items[i]
		if math.Abs(g.AvgElapsed-w.AvgElapsed) <= 1e-12*w.AvgElapsed {
			g.AvgElapsed = w.AvgElapsed
		}
		if g != w {
			t.Errorf("%s, #%d: %+v; want %+v", label, i, g, w)
		}
	}
}

// elapsedOf is an elapsed filter for a message: "none" when unset.
func elapsedOf(el *float64) string {
	if el == nil {
		return "none"
	}
	return fmt.Sprint(*el)
}

// sealedMeasurements is a store whose two days of measurements are sealed
// (every closed hour, quarter and day), with its pool.
func sealedMeasurements(t *testing.T, seed uint64) (*postgres.Measurements, *pgxpool.Pool, *rand.Rand) {
	t.Helper()
	ms, pool := newMeasurements(t)
	rng := rand.New(rand.NewPCG(percentileSeed, seed))
	recs := randomMeasurements(rng, 3000)
	spreadElapsed(rng, recs)
	insertInBatches(t, ms, recs, 500)
	if _, err := ms.Seal(context.Background(), time.Date(2024, 3, 20, 0, 0, 0, 0, time.UTC), time.Time{},
		func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	return ms, pool, rng
}

// The grouped view without an app, and without an elapsed filter or with
// one below the slow-row threshold, answers from the sealed cells it keeps
// (measurements_cells.go) exactly as the functions that read them from
// PostgreSQL each time: in
// every order, both directions, on pages inside, across and past the end
// of the groups, with a name and with methods, over every window shape of
// the sealed tests, with filters at a bucket's bottom and inside one. The
// second round answers from the kept tiles alone.
func TestGroupedKeptCellsAnswerAsTheFunction(t *testing.T) {
	t.Parallel()
	ms, _, rng := sealedMeasurements(t, 46)
	ctx := context.Background()
	if n := ms.KeptCellTiles(); n != 0 {
		t.Fatalf("%d tiles kept before any call", n)
	}
	low := []float64{0.001, 0.1, 1e-6 * math.Pow(1.05, 200), 0.0123}
	filters := []*float64{nil}
	for i := range low {
		filters = append(filters, &low[i])
	}
	pages := []store.PageRequest{{Limit: 1000}, {Limit: 2, Offset: 1}, {Limit: 4, Offset: 6}, {Limit: 3, Offset: 100}}
	windows := sealedWindows(rng)
	// The first round reads the tiles, the second finds them kept: the same
	// answers, averages to the last digits: Go adds a group's cells in one
	// order, but the rows' part is summed by PostgreSQL in its plan's
	// order, which an ANALYZE between the rounds may change.
	first := map[string]store.Page[store.MeasurementGroup]{}
	for round := range 2 {
		for label, w := range windows {
			for _, el := range filters {
				f := w
				f.MinElapsed = el
				for _, key := range store.MeasurementGroupSortKeys() {
					for _, desc := range []bool{true, false} {
						s := store.MeasurementSort{Key: key, Desc: desc}
						for _, p := range pages {
							got, err := ms.Grouped(ctx, f, s, p)
							if err != nil {
								t.Fatal(err)
							}
							want, err := ms.GroupedUnkept(ctx, f, s, p)
							if err != nil {
								t.Fatal(err)
							}
							call := fmt.Sprintf("%s, elapsed >= %v, by %s desc %v, page %+v", label, elapsedOf(el), key, desc, p)
							sameGroups(t, fmt.Sprintf("round %d, %s", round, call), got, want)
							if round == 0 {
								first[call] = got
							} else {
								sameGroups(t, call+", from kept tiles against the first time", got, first[call])
							}
						}
					}
				}
			}
		}
		if round == 0 && ms.KeptCellTiles() == 0 {
			t.Fatal("no tile kept after the first round")
		}
	}
}

// A tile whose seal changes between the grouped view's two statements (a
// late batch unsealed it, or the maintenance pass built it again) is not
// kept, and the call answers from the function instead, which sees the
// unit as it is now; the next call reads the tile again. A store on a database that does not compare text as
// bytes keeps nothing and answers from the function.
func TestGroupedKeptCellsSealMoved(t *testing.T) {
	_, pool, _ := sealedMeasurements(t, 47)
	ctx := context.Background()
	el := 0.01
	f := store.MeasurementFilter{StartedAt: time.Date(2024, 3, 10, 22, 31, 7, 0, time.UTC),
		EndedAt: time.Date(2024, 3, 12, 21, 0, 0, 0, time.UTC), MinElapsed: &el}
	s := store.MeasurementSort{Key: "count", Desc: true}
	p := store.PageRequest{Limit: 1000}
	const day = "2024-03-11Z"
	for _, c := range []struct {
		label, change string
		elapsed       *float64
	}{
		{"unsealed", `DELETE FROM measurements_sealed WHERE unit_secs = 86400 AND unit_start = $1`, &el},
		{"resealed", `UPDATE measurements_sealed SET sealed_at = clock_timestamp() WHERE unit_secs = 86400 AND unit_start = $1`, &el},
		{"unsealed, no elapsed filter", `DELETE FROM measurements_sealed WHERE unit_secs = 86400 AND unit_start = $1`, nil},
		{"resealed, no elapsed filter", `UPDATE measurements_sealed SET sealed_at = clock_timestamp() WHERE unit_secs = 86400 AND unit_start = $1`, nil},
	} {
		label, change := c.label, c.change
		f.MinElapsed = c.elapsed
		fresh := postgres.New(pool, postgres.Options{}).Measurements
		changed := 0
		postgres.SetKeptCellsGap(t, func() {
			if changed++; changed > 1 {
				return
			}
			if tag, err := pool.Exec(ctx, change, day); err != nil || tag.RowsAffected() != 1 {
				t.Errorf("%s: %v, %v", label, tag, err)
			}
		})
		got, err := fresh.Grouped(ctx, f, s, p)
		if err != nil {
			t.Fatal(err)
		}
		if changed != 1 {
			t.Fatalf("%s: the gap between the statements ran %d times", label, changed)
		}
		// The tiles read before the moved one (they are read 8 at a time,
		// each under its own seal) may be kept, not the moved one: the next
		// call reads it again.
		keptBefore := fresh.KeptCellTiles()
		want, err := fresh.GroupedFromRows(ctx, f, s, p)
		if err != nil {
			t.Fatal(err)
		}
		sameGroups(t, label, got, want)
		// The next call keeps the tiles as they are sealed now.
		if got, err = fresh.Grouped(ctx, f, s, p); err != nil {
			t.Fatal(err)
		}
		sameGroups(t, label+", next call", got, want)
		if n := fresh.KeptCellTiles(); n <= keptBefore {
			t.Errorf("%s: %d tiles kept after the next call, %d before it: want the moved one read again", label, n, keptBefore)
		}
		if _, err := fresh.Seal(ctx, time.Date(2024, 3, 20, 0, 0, 0, 0, time.UTC), time.Time{}, func(context.Context) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}

	bytewise := postgres.New(pool, postgres.Options{}).Measurements
	bytewise.RankKeptCellsInDatabase()
	got, err := bytewise.Grouped(ctx, f, s, p)
	if err != nil {
		t.Fatal(err)
	}
	want, err := bytewise.GroupedFromRows(ctx, f, s, p)
	if err != nil {
		t.Fatal(err)
	}
	sameGroups(t, "ranked in the database", got, want)
	if n := bytewise.KeptCellTiles(); n != 0 {
		t.Errorf("ranked in the database: %d tiles kept", n)
	}
	if n := postgres.New(pool, postgres.Options{KeptCellsBytes: -1}).Measurements.KeptCellTiles(); n != -1 {
		t.Errorf("KeptCellsBytes -1: %d tiles kept, want none", n)
	}
}

// The kept cells are ranked in Go only on a database whose collation
// compares text as bytes, as Go does: C and POSIX with the libc provider.
// Every other collation (C.UTF-8, a linguistic one, ICU) leaves the
// ranking to PostgreSQL.
func TestDatabaseComparesBytes(t *testing.T) {
	t.Parallel()
	_, pool := newMeasurements(t)
	ctx := context.Background()
	for _, c := range []struct {
		create string
		bytes  bool
	}{
		{"LOCALE 'C'", true},
		{"LOCALE 'POSIX'", true},
		{"LOCALE 'C.UTF-8'", false},
		{"LOCALE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'", false},
	} {
		name := fmt.Sprintf("collation_%d_%d", time.Now().UnixNano(), len(c.create))
		if _, err := pool.Exec(ctx, "CREATE DATABASE "+name+" TEMPLATE template0 ENCODING 'UTF8' "+c.create); err != nil {
			t.Fatalf("%s: %v", c.create, err)
		}
		t.Cleanup(func() { _, _ = pool.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name) })
		cfg := pool.Config().ConnConfig.Copy()
		cfg.Database = name
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.New(conn).DatabaseComparesBytes(ctx)
		conn.Close(ctx)
		if err != nil || got != c.bytes {
			t.Errorf("%s: %v, %v; want %v", c.create, got, err, c.bytes)
		}
	}
}

// A window whose missing cells are more than a quarter of the cache's bound
// (many names and methods, or a bound this small) is answered by the
// function once the call has read that much: its cells would not stay. The
// tiles a call may use are then lowered, so that the next call of that
// window goes straight to the function, reading no cell.
func TestGroupedKeptCellsOverBudget(t *testing.T) {
	t.Parallel()
	_, pool, rng := sealedMeasurements(t, 48)
	ctx := context.Background()
	small := postgres.New(pool, postgres.Options{KeptCellsBytes: 40_000}).Measurements
	f := sealedWindows(rng)["two days and edges"]
	s := store.MeasurementSort{Key: "avgElapsed", Desc: true}
	p := store.PageRequest{Limit: 5, Offset: 2}
	want, err := small.GroupedUnkept(ctx, f, s, p)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := small.Grouped(ctx, f, s, p); err != nil {
		t.Fatal(err)
	} else {
		sameGroups(t, "first call", got, want)
	}
	capped, kept := small.KeptTileCap(), small.KeptCellTiles()
	if capped >= 64 || kept == 0 {
		t.Fatalf("after the first call: %d tiles usable, %d kept; want fewer than 64 usable and the first ones read kept", capped, kept)
	}
	got, err := small.Grouped(ctx, f, s, p)
	if err != nil {
		t.Fatal(err)
	}
	sameGroups(t, "second call", got, want)
	if n := small.KeptCellTiles(); n != kept {
		t.Errorf("the second call kept %d tiles, the first %d: want it answered by the function", n, kept)
	}
}

// /metrics' kept cells gauges read Store.KeptCells: nothing kept before a
// grouped call, the tiles' heap after one, within the bound; a store that
// keeps none answers 0 and 0.
func TestStoreKeptCells(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := postgres.New(pool, postgres.Options{KeptCellsBytes: 8 << 20})
	t.Cleanup(st.Close)
	if size, limit := st.KeptCells(); size != 0 || limit != 8<<20 {
		t.Fatalf("before any call: %d of %d bytes, want 0 of %d", size, limit, 8<<20)
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(percentileSeed, 47))
	recs := randomMeasurements(rng, 3000)
	spreadElapsed(rng, recs)
	insertInBatches(t, st.Measurements, recs, 500)
	if _, err := st.Measurements.Seal(ctx, time.Date(2024, 3, 20, 0, 0, 0, 0, time.UTC), time.Time{},
		func(context.Context) error { return nil }); err != nil {
		t.Fatal(err)
	}
	for _, w := range sealedWindows(rng) {
		if _, err := st.Measurements.Grouped(ctx, w, store.MeasurementSort{Key: store.MeasurementGroupSortKeys()[0], Desc: true},
			store.PageRequest{Limit: 10}); err != nil {
			t.Fatal(err)
		}
	}
	size, limit := st.KeptCells()
	if st.Measurements.KeptCellTiles() == 0 || size <= 0 || size > limit || limit != 8<<20 {
		t.Fatalf("after grouped calls: %d tiles, %d of %d bytes", st.Measurements.KeptCellTiles(), size, limit)
	}
	none := postgres.New(pool, postgres.Options{KeptCellsBytes: -1})
	t.Cleanup(none.Close)
	if size, limit := none.KeptCells(); size != 0 || limit != 0 {
		t.Fatalf("no cells kept: %d of %d bytes", size, limit)
	}
}
