package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
	"github.com/telemetry/telemetry/internal/testdb"
)

// A 5-minute bin's own seal beside its hour's, as an hour built by an
// instance from before migration 00048 leaves them (a rolling upgrade: its
// build rewrote the bins' cells and totals but deleted no seal). The count
// (the tiling) skipped the bin's own seal, but the grouped view's parts
// named both seals of the bin, and the kept cells added its cells twice
// (found by an audit: 332 rows for 232). Since migration 00049 a bin's own
// seal counts only while its hour has none, and every answer is the rows'.
func TestMeasurementsBinSealBesideItsHour(t *testing.T) {
	pool := testdb.New(t)
	ms := New(pool, Options{}).Measurements
	ctx := context.Background()
	hour := time.Date(2024, 5, 6, 10, 0, 0, 0, time.UTC)
	var recs []store.Measurement
	for i := 0; i < 240; i++ {
		s := hour.Add(time.Duration(i) * 15 * time.Second)
		el := 0.002 + float64(i%50)*0.004
		recs = append(recs, store.Measurement{StartedAt: s, EndedAt: s.Add(time.Duration(el * float64(time.Second))), Elapsed: el, Name: "/a", Method: "GET"})
	}
	if _, err := ms.Insert(ctx, recs); err != nil {
		t.Fatal(err)
	}
	noRenew := func(context.Context) error { return nil }
	if res, err := ms.Seal(ctx, hour.Add(47*time.Minute), time.Time{}, noRenew); err != nil || res.Bins != 6 {
		t.Fatalf("seal at 10:47: %+v %v, want the six closed bins sealed on their own", res, err)
	}
	el := 0.001
	byCount := store.MeasurementSort{Key: "count", Desc: true}
	group := func(f store.MeasurementFilter) (int64, int64) {
		got, err := ms.Grouped(ctx, f, byCount, store.PageRequest{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		want, err := ms.GroupedFromRows(ctx, f, byCount, store.PageRequest{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		return got.Items[0].Count, want.Items[0].Count
	}
	// The bins' cells kept under their own seals.
	if g, w := group(store.MeasurementFilter{StartedAt: hour.Add(2 * time.Minute), EndedAt: hour.Add(40 * time.Minute), MinElapsed: &el}); g != w {
		t.Fatalf("the bins sealed on their own: grouped %d, rows %d", g, w)
	}

	// The hour built as a pre-00048 binary built it: cells and totals
	// replaced, seals of the bins left.
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		q := db.New(customPlans{tx})
		if err := q.LockMeasurementUnit(ctx, db.LockMeasurementUnitParams{Class: sealHourClass, ID: lockKey(hour.Unix() / 3600)}); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `WITH totals AS (DELETE FROM measurements_sealed_totals WHERE unit_secs = ANY('{300,3600}') AND unit_start >= $1 AND unit_start < $2)
			DELETE FROM measurements_sealed_cells WHERE unit_secs = ANY('{300,3600}') AND unit_start >= $1 AND unit_start < $2`, hour, hour.Add(time.Hour)); err != nil {
			return err
		}
		rows, err := q.MeasurementUnitBuckets(ctx, db.MeasurementUnitBucketsParams{BinWidth: 300, Width: 3600, UnitStart: hour})
		if err != nil {
			return err
		}
		cells, totals, last := sealedCellsOf(rows, 300, 3600, hour)
		if _, err := q.InsertMeasurementSealedCells(ctx, cells); err != nil {
			return err
		}
		if err := q.InsertMeasurementSealedTotals(ctx, totals); err != nil {
			return err
		}
		return q.SealMeasurementUnit(ctx, db.SealMeasurementUnitParams{Width: 3600, UnitStart: hour, MaxEndedAt: last})
	})
	if err != nil {
		t.Fatal(err)
	}
	var own int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM measurements_sealed WHERE unit_secs = 300`).Scan(&own); err != nil || own != 6 {
		t.Fatalf("%d bins' own seals beside the hour's (%v), want the six left", own, err)
	}
	f := store.MeasurementFilter{StartedAt: hour.Add(2 * time.Minute), EndedAt: hour.Add(65 * time.Minute), MinElapsed: &el}
	n, err := ms.Count(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	var rows int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM measurements
		WHERE started_at >= $1 AND started_at <= $2 AND ended_at <= $2 AND elapsed >= $3`,
		f.StartedAt, f.EndedAt, *f.MinElapsed).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if n != rows {
		t.Errorf("count %d, rows %d", n, rows)
	}
	// Twice: the first call reads the tiles' cells, the second finds them kept.
	for _, call := range []string{"first", "second"} {
		if g, w := group(f); g != w {
			t.Errorf("grouped, %s call: %d, rows %d", call, g, w)
		}
	}
}
