package postgres_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// rollupDrift counts the flows_hourly rows that differ from flows_hourly
// recomputed from flows (migration 00014): 0 when the rollup is exact.
const rollupDrift = `
WITH want AS (
    SELECT d.dim, f.hour, d.key, count(*)::bigint AS flows, sum(f.bytes_tx)::numeric AS bytes_tx, sum(f.bytes_rx)::numeric AS bytes_rx
    FROM flows f
    CROSS JOIN LATERAL (VALUES ('all', ''), ('src_app', f.src_app), ('dest_app', f.dest_app), ('vpc_id', f.vpc_id)) AS d (dim, key)
    GROUP BY 1, 2, 3
), have AS (SELECT dim, hour, key, flows, bytes_tx, bytes_rx FROM flows_hourly)
SELECT (SELECT count(*) FROM (SELECT * FROM want EXCEPT SELECT * FROM have) a)
     + (SELECT count(*) FROM (SELECT * FROM have EXCEPT SELECT * FROM want) b)`

func checkRollup(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if n := countOf(t, pool, rollupDrift); n != 0 {
		t.Fatalf("flows_hourly: %d rows differ from flows summed", n)
	}
}

// randomFlows makes n flows over few keys and hours, with duplicates
// inside the batch, so that batches insert and update alike.
func randomFlows(rng *rand.Rand, n int) []store.Flow {
	fs := make([]store.Flow, n)
	for i := range fs {
		fs[i] = store.Flow{SrcApp: fmt.Sprintf("s%d", rng.IntN(5)), DestApp: fmt.Sprintf("d%d", rng.IntN(4)),
			VpcID: fmt.Sprintf("v%d", rng.IntN(3)), BytesTx: rng.Int64N(1000), BytesRx: rng.Int64N(3000), Hour: 500000 + rng.Int64N(6)}
	}
	return fs
}

// The rollup stays exact under concurrent batches of two writers (two
// stores on one pool: two processes' upserts running side by side), and
// every query it serves answers what flows itself gives: counts, summaries
// with and without filters, and the per-hour top talkers in both orders.
func TestFlowsRollupExactUnderConcurrentWriters(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	stores := []*postgres.Store{postgres.New(pool, postgres.Options{}), postgres.New(pool, postgres.Options{})}
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for range 6 {
				if err := stores[w%2].Flows.Add(ctx, randomFlows(rng, 1+rng.IntN(200))); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkRollup(t, pool)

	// Every stored row, to compute each answer by hand.
	rows, err := pool.Query(ctx, `SELECT src_app, dest_app, vpc_id, bytes_tx, bytes_rx, (extract(epoch FROM hour) / 3600)::bigint FROM flows`)
	if err != nil {
		t.Fatal(err)
	}
	var all []store.Flow
	for rows.Next() {
		var f store.Flow
		if err := rows.Scan(&f.SrcApp, &f.DestApp, &f.VpcID, &f.BytesTx, &f.BytesRx, &f.Hour); err != nil {
			t.Fatal(err)
		}
		all = append(all, f)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	st := stores[0]
	s1, d2, v0 := "s1", "d2", "v0"
	filters := []store.FlowFilter{
		{FromHour: 500000, ToHour: 500006},
		{FromHour: 500001, ToHour: 500004},
		{FromHour: 500000, ToHour: 500006, SrcApp: &s1},
		{FromHour: 500000, ToHour: 500006, DestApp: &d2},
		{FromHour: 500002, ToHour: 500006, VpcID: &v0},
		{FromHour: 500000, ToHour: 500006, SrcApp: &s1, VpcID: &v0},
		{FromHour: 499000, ToHour: 499010},
	}
	key := func(f store.Flow) []any { return []any{f.Hour, f.SrcApp, f.DestApp, f.VpcID} }
	byKey := func(a, b store.Flow) int {
		return cmp.Or(cmp.Compare(a.Hour, b.Hour), cmp.Compare(a.SrcApp, b.SrcApp), cmp.Compare(a.DestApp, b.DestApp), cmp.Compare(a.VpcID, b.VpcID))
	}
	for _, fl := range filters {
		var want []store.Flow
		for _, f := range all {
			if f.Hour >= fl.FromHour && f.Hour < fl.ToHour && (fl.SrcApp == nil || *fl.SrcApp == f.SrcApp) &&
				(fl.DestApp == nil || *fl.DestApp == f.DestApp) && (fl.VpcID == nil || *fl.VpcID == f.VpcID) {
				want = append(want, f)
			}
		}
		// Every order (each its own statement), and pages past the last,
		// whose total is counted apart: the last row alone (offset
		// total-1) and the first offset past it (total: no row).
		pages := []store.PageRequest{{Limit: 7}, {Limit: 5, Offset: 9}, {Limit: 1000}, {Limit: 5, Offset: 5000},
			{Limit: 3, Offset: int64(len(want))}, {Limit: 3, Offset: max(int64(len(want))-1, 0)}}
		for _, so := range []store.FlowSort{{ByBytes: true, Desc: true}, {ByBytes: true}, {Desc: true}, {}} {
			sorted := slices.Clone(want)
			slices.SortFunc(sorted, func(a, b store.Flow) int {
				if !so.ByBytes {
					return map[bool]int{false: 1, true: -1}[so.Desc] * byKey(a, b)
				}
				// Ties by key ascending, in either bytes order.
				c := cmp.Compare(a.BytesTx+a.BytesRx, b.BytesTx+b.BytesRx)
				if so.Desc {
					c = -c
				}
				return cmp.Or(c, byKey(a, b))
			})
			for _, p := range pages {
				page, err := st.Flows.List(ctx, fl, so, p)
				if err != nil {
					t.Fatal(err)
				}
				wantPage := sorted[min(int(p.Offset), len(sorted)):min(int(p.Offset+p.Limit), len(sorted))]
				if page.Total != int64(len(want)) {
					t.Errorf("%s %+v %+v: total %d, want %d", describe(fl), so, p, page.Total, len(want))
				}
				if len(page.Items) != len(wantPage) {
					t.Fatalf("%s %+v %+v: %d items, want %d", describe(fl), so, p, len(page.Items), len(wantPage))
				}
				for i := range wantPage {
					if page.Items[i] != wantPage[i] {
						t.Fatalf("%s %+v %+v: item %d is %v, want %v", describe(fl), so, p, i, key(page.Items[i]), key(wantPage[i]))
					}
				}
			}
		}
		for _, by := range store.FlowSummaryKeys() {
			sums := map[string]*[2]int64{}
			for _, f := range want {
				k := map[string]string{"src_app": f.SrcApp, "dest_app": f.DestApp, "vpc_id": f.VpcID}[by]
				if sums[k] == nil {
					sums[k] = &[2]int64{}
				}
				sums[k][0] += f.BytesTx
				sums[k][1] += f.BytesRx
			}
			var wantTotals []store.FlowTotal
			for k, s := range sums {
				wantTotals = append(wantTotals, store.FlowTotal{Key: k, BytesTx: s[0], BytesRx: s[1], Bytes: s[0] + s[1]})
			}
			slices.SortFunc(wantTotals, func(a, b store.FlowTotal) int {
				return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), cmp.Compare(a.Key, b.Key))
			})
			page, err := st.Flows.Summary(ctx, fl, by, store.PageRequest{Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if page.Total != int64(len(wantTotals)) || !slices.Equal(page.Items, wantTotals) {
				t.Errorf("%s summary by %s: %+v (total %d), want %+v", describe(fl), by, page.Items, page.Total, wantTotals)
			}
			// Pages past the last still count the keys, and the last key
			// alone (offset total-1) is a row of the page, not the total's.
			for _, off := range []int64{50, int64(len(wantTotals))} {
				past, err := st.Flows.Summary(ctx, fl, by, store.PageRequest{Limit: 10, Offset: off})
				if err != nil {
					t.Fatal(err)
				}
				if past.Total != int64(len(wantTotals)) || past.Items == nil || len(past.Items) != 0 {
					t.Errorf("%s summary by %s past the end (offset %d): %+v", describe(fl), by, off, past)
				}
			}
			if n := len(wantTotals); n > 1 {
				last, err := st.Flows.Summary(ctx, fl, by, store.PageRequest{Limit: 10, Offset: int64(n - 1)})
				if err != nil {
					t.Fatal(err)
				}
				if last.Total != int64(n) || !slices.Equal(last.Items, wantTotals[n-1:]) {
					t.Errorf("%s summary by %s, last key: %+v, want %+v", describe(fl), by, last, wantTotals[n-1:])
				}
			}
		}
	}
}

func describe(fl store.FlowFilter) string {
	s := fmt.Sprintf("[%d,%d)", fl.FromHour, fl.ToHour)
	for name, v := range map[string]*string{"src_app": fl.SrcApp, "dest_app": fl.DestApp, "vpc_id": fl.VpcID} {
		if v != nil {
			s += " " + name + "=" + *v
		}
	}
	return s
}

// An hour's total past 64 bits is kept exactly by the rollup (numeric),
// and the summary answers ErrTooLarge for it, as it does when read from
// flows.
func TestFlowsRollupSumPastInt64(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := postgres.New(pool, postgres.Options{})
	ctx := context.Background()
	big1 := int64(1) << 62
	for _, f := range []store.Flow{
		{SrcApp: "a", DestApp: "x", VpcID: "v", BytesTx: big1, Hour: 1000},
		{SrcApp: "a", DestApp: "y", VpcID: "v", BytesTx: big1, Hour: 1000},
		{SrcApp: "a", DestApp: "z", VpcID: "v", BytesTx: big1, Hour: 1000},
	} {
		if err := st.Flows.Add(ctx, []store.Flow{f}); err != nil {
			t.Fatal(err)
		}
	}
	// The same flows in one batch (hour 1001): the batch's own rollup sums
	// pass 64 bits before they reach the database (FlowUpsert sends them
	// in parts), bytes_rx too.
	one := []store.Flow{
		{SrcApp: "a", DestApp: "x", VpcID: "v", BytesTx: big1, BytesRx: math.MaxInt64, Hour: 1001},
		{SrcApp: "a", DestApp: "y", VpcID: "v", BytesTx: big1, BytesRx: math.MaxInt64, Hour: 1001},
		{SrcApp: "a", DestApp: "z", VpcID: "v", BytesTx: big1, BytesRx: 5, Hour: 1001},
	}
	if err := st.Flows.Add(ctx, one); err != nil {
		t.Fatal(err)
	}
	checkRollup(t, pool)
	three := new(big.Int).Mul(big.NewInt(big1), big.NewInt(3)).String()
	rx := new(big.Int).Add(new(big.Int).Mul(big.NewInt(math.MaxInt64), big.NewInt(2)), big.NewInt(5)).String()
	for _, c := range []struct {
		hour   int64
		tx, rx string
	}{{1000, three, "0"}, {1001, three, rx}} {
		var tx, rx string
		if err := pool.QueryRow(ctx, `SELECT bytes_tx::text, bytes_rx::text FROM flows_hourly WHERE dim = 'all' AND hour = $1`,
			time.Unix(c.hour*3600, 0)).Scan(&tx, &rx); err != nil {
			t.Fatal(err)
		}
		if tx != c.tx || rx != c.rx {
			t.Errorf("hour %d: rollup sums %s, %s, want %s, %s", c.hour, tx, rx, c.tx, c.rx)
		}
	}
	_, err := st.Flows.Summary(ctx, store.FlowFilter{FromHour: 1000, ToHour: 1001}, "src_app", store.PageRequest{Limit: 10})
	if !errors.Is(err, store.ErrTooLarge) {
		t.Errorf("summary past 64 bits: %v, want ErrTooLarge", err)
	}
	// Per dest_app each total fits.
	page, err := st.Flows.Summary(ctx, store.FlowFilter{FromHour: 1000, ToHour: 1001}, "dest_app", store.PageRequest{Limit: 10})
	if err != nil || page.Total != 3 {
		t.Errorf("summary by dest_app: %+v, %v", page, err)
	}
}

// The maintenance pass removes the rollup of the hours it expired from
// flows and keeps the rest exact.
func TestMaintainExpiresFlowsRollup(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := postgres.New(pool, postgres.Options{MaintenanceBatch: 2})
	ctx := context.Background()
	now := lifecycleNow
	hourOf := func(d time.Duration) int64 { return now.Add(-d).Unix() / 3600 }
	var fs []store.Flow
	for _, age := range []time.Duration{400 * day, 90 * day, 31 * day, 29 * day, time.Hour} {
		for _, src := range []string{"a", "b", "c"} {
			fs = append(fs, store.Flow{SrcApp: src, DestApp: "d", VpcID: "v", BytesTx: 10, BytesRx: 1, Hour: hourOf(age)})
		}
	}
	if err := st.Flows.Add(ctx, fs); err != nil {
		t.Fatal(err)
	}
	res, err := st.Lifecycle.Maintain(ctx, store.Retention{Flows: 30 * day}, now)
	if err != nil {
		t.Fatal(err)
	}
	checkRollup(t, pool)
	cutoff := now.Add(-30 * day)
	left := countOf(t, pool, `SELECT count(*) FROM flows WHERE hour < $1`, cutoff)
	if !timescaleEnabled(t, pool) && left != 0 {
		t.Errorf("%d expired flows left", left)
	}
	var rollupGone int64
	for _, w := range res.Tables {
		if w.Table == "flows_hourly" {
			rollupGone = w.Rows
		}
	}
	// Each expired hour had 1 + 3 + 1 + 1 rollup rows.
	expiredHours := 3 - left/3
	if rollupGone != expiredHours*6 {
		t.Errorf("pass removed %d rollup rows, want %d: %+v", rollupGone, expiredHours*6, res)
	}
	page, err := st.Flows.List(ctx, store.FlowFilter{FromHour: hourOf(29 * day), ToHour: hourOf(0)}, store.FlowSort{}, store.PageRequest{Limit: 10})
	if err != nil || page.Total != 6 {
		t.Errorf("kept hours: total %d, %v", page.Total, err)
	}
}
