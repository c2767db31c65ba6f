package postgres

import (
	"context"
	"fmt"
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

// afterFirstQueryRow runs hook once, right after the first single-row
// query sent through it (a count) has answered.
type afterFirstQueryRow struct {
	db.DBTX
	once *sync.Once
	hook func()
}

func (a afterFirstQueryRow) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	row := a.DBTX.QueryRow(ctx, sql, args...)
	var scanned rowScanned
	scanned.err = row.Scan(&scanned.n)
	a.once.Do(a.hook)
	return scanned
}

// afterFirstRead runs hook once, right after the first query (of many
// rows, as afterFirstQuery, or of one, as afterFirstQueryRow) sent through
// it: whichever a list sends first, its page's or its total's.
type afterFirstRead struct{ afterFirstQuery }

func (a afterFirstRead) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return afterFirstQueryRow{a.DBTX, a.once, a.hook}.QueryRow(ctx, sql, args...)
}

type rowScanned struct {
	n   int64
	err error
}

func (r rowScanned) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	*dest[0].(*int64) = r.n
	return nil
}

// A flows page and its total come from one snapshot: a batch committed
// once the list's first query has answered (its page's or its total's) is
// in neither (found by an audit: a page of 12 items with a total of 11,
// under concurrent posts, when the two were read apart).
func TestFlowsListPageAndTotalAgree(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := New(pool, Options{})
	ctx := context.Background()
	flow := func(src string) []store.Flow {
		return []store.Flow{{SrcApp: src, DestApp: "d", VpcID: "v", BytesTx: 1, BytesRx: 1, Hour: 490000}}
	}
	for _, src := range []string{"a", "b", "c"} {
		if err := st.Flows.Add(ctx, flow(src)); err != nil {
			t.Fatal(err)
		}
	}
	d, v := "d", "v"
	for i, filter := range []store.FlowFilter{
		{FromHour: 490000, ToHour: 490001},                         // the count from the rollup
		{FromHour: 490000, ToHour: 490001, DestApp: &d, VpcID: &v}, // from the rows
	} {
		var once sync.Once
		var hookErr error
		hooked := false
		added := fmt.Sprintf("added%d", i)
		st.Flows.reads = st.reads.readersOf(func(d db.DBTX) db.DBTX {
			return afterFirstRead{afterFirstQuery{d, &once, func() { hooked, hookErr = true, st.Flows.Add(ctx, flow(added)) }}}
		})
		page, err := st.Flows.List(ctx, filter, store.FlowSort{}, store.PageRequest{Limit: 50})
		if err != nil || hookErr != nil || !hooked {
			t.Fatal(err, hookErr, hooked)
		}
		if page.Total != int64(len(page.Items)) {
			t.Fatalf("%+v: a page of %d items with a total of %d", filter, len(page.Items), page.Total)
		}
		st.Flows.reads = st.reads.readersOf(nil)
		page, err = st.Flows.List(ctx, filter, store.FlowSort{}, store.PageRequest{Limit: 50})
		if err != nil || page.Total != int64(len(page.Items)) {
			t.Fatalf("next read: %d items, total %d, %v", len(page.Items), page.Total, err)
		}
	}
}
