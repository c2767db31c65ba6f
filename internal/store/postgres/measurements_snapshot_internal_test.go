package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
	"github.com/telemetry/telemetry/internal/testdb"
)

// afterFirstQuery runs hook once, right after the first query sent through
// it has started.
type afterFirstQuery struct {
	db.DBTX
	once *sync.Once
	hook func()
}

func (a afterFirstQuery) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := a.DBTX.Query(ctx, sql, args...)
	a.once.Do(a.hook)
	return rows, err
}

// A measurements page and its total come from one snapshot: a batch
// committed between the page's read and the total's does not make the
// total count rows the page could not show.
func TestMeasurementsListPageAndTotalAgree(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := New(pool, Options{})
	ctx := context.Background()
	base := time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)
	rec := func(i int) store.Measurement {
		at := base.Add(time.Duration(i) * time.Minute)
		return store.Measurement{StartedAt: at, EndedAt: at.Add(time.Second), Elapsed: 1, Name: "/a", Method: "GET", App: "shop"}
	}
	if _, err := st.Measurements.Insert(ctx, []store.Measurement{rec(1), rec(2), rec(3)}); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	var hookErr error
	st.Measurements.reads = st.reads.readersOf(func(d db.DBTX) db.DBTX {
		return afterFirstQuery{customPlans{d}, &once, func() {
			_, hookErr = st.Measurements.Insert(ctx, []store.Measurement{rec(4)})
		}}
	})
	window := store.MeasurementFilter{StartedAt: base, EndedAt: base.Add(time.Hour)}
	page, err := st.Measurements.List(ctx, window, store.MeasurementSort{Key: "endedAt", Desc: true}, store.PageRequest{Limit: 50})
	if err != nil || hookErr != nil {
		t.Fatal(err, hookErr)
	}
	if page.Total != int64(len(page.Items)) || len(page.Items) != 3 {
		t.Fatalf("page of %d items with a total of %d: the total saw a batch the page did not", len(page.Items), page.Total)
	}
	// The batch is there for the next read.
	page, err = st.Measurements.List(ctx, window, store.MeasurementSort{Key: "endedAt", Desc: true}, store.PageRequest{Limit: 50})
	if err != nil || page.Total != 4 || len(page.Items) != 4 {
		t.Fatalf("next read: %d items, total %d, %v", len(page.Items), page.Total, err)
	}
}
