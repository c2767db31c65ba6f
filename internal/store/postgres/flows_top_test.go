package postgres_test

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// The top talkers (the bytes order without a src_app or dest_app filter)
// read each hour's rows from its rank threshold on (migration 00032), not
// the whole hour: every page, both directions, with and without a vpc_id
// filter, equals the full sort of the rows computed here. The hours hold
// more rows than a page, many in one 10 % rank bucket, equal totals under
// different keys (ties by key), zero totals and totals past 64 bits; then
// upserts move keys across buckets (the trigger re-ranks them), and rows of
// an unknown (NULL) rank, as TimescaleDB chunks compressed before the
// migration keep, must still be found. It fails when the threshold keeps
// too few rows, when a bucket's order is taken for the total's, or when
// NULL ranks are left out.
func TestFlowsTopTalkersMatchFullSort(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := postgres.New(pool, postgres.Options{})
	t.Cleanup(st.Close)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(7, 11))
	type key struct {
		hour          int64
		src, dst, vpc string
	}
	totals := map[key][2]int64{}
	var batch []store.Flow
	add := func(k key, tx, rx int64) {
		batch = append(batch, store.Flow{SrcApp: k.src, DestApp: k.dst, VpcID: k.vpc, BytesTx: tx, BytesRx: rx, Hour: k.hour})
		have := totals[k]
		totals[k] = [2]int64{have[0] + tx, have[1] + rx}
	}
	flush := func() {
		t.Helper()
		if err := st.Flows.Add(ctx, batch); err != nil {
			t.Fatal(err)
		}
		batch = nil
	}
	for hour := int64(100); hour < 103; hour++ {
		for i := 0; i < 240; i++ {
			k := key{hour, fmt.Sprintf("app-%03d", i), fmt.Sprintf("db-%d", i%5), fmt.Sprintf("vpc-%d", i%3)}
			var tx, rx int64
			switch {
			case i < 80: // one bucket: 1,000,000 to 1,009,999
				tx, rx = 1_000_000+rng.Int64N(10_000), 0
			case i < 120: // equal totals, split differently
				tx = rng.Int64N(5_000)
				rx = 5_000 - tx
			case i < 130:
				tx, rx = 0, 0
			case i < 132 && hour == 101: // past 64 bits together
				tx, rx = math.MaxInt64, math.MaxInt64-int64(i)
			case i >= 200 && i < 220 && hour == 102: // a crowded bucket above every other hour's rows
				tx, rx = 1_000_000_000_000_000+rng.Int64N(1_000_000_000_000), 0
			default: // spread over many buckets
				tx, rx = int64(math.Exp(rng.Float64()*30)), rng.Int64N(1000)
			}
			add(k, tx, rx)
		}
	}
	flush()

	total := func(v [2]int64) *big.Int { return new(big.Int).Add(big.NewInt(v[0]), big.NewInt(v[1])) }
	check := func(stage string) {
		t.Helper()
		for _, vpc := range []*string{nil, ptr("vpc-1")} {
			for _, desc := range []bool{true, false} {
				var want []store.Flow
				for k, v := range totals {
					if k.hour >= 100 && k.hour < 103 && (vpc == nil || k.vpc == *vpc) {
						want = append(want, store.Flow{SrcApp: k.src, DestApp: k.dst, VpcID: k.vpc, BytesTx: v[0], BytesRx: v[1], Hour: k.hour})
					}
				}
				slices.SortFunc(want, func(a, b store.Flow) int {
					c := total([2]int64{a.BytesTx, a.BytesRx}).Cmp(total([2]int64{b.BytesTx, b.BytesRx}))
					if desc {
						c = -c
					}
					return cmp.Or(c, cmp.Compare(a.Hour, b.Hour), cmp.Compare(a.SrcApp, b.SrcApp),
						cmp.Compare(a.DestApp, b.DestApp), cmp.Compare(a.VpcID, b.VpcID))
				})
				for _, size := range []int64{7, 50, 100} {
					for off := int64(0); off < int64(len(want))+size; off += size {
						page, err := st.Flows.List(ctx, store.FlowFilter{FromHour: 100, ToHour: 103, VpcID: vpc},
							store.FlowSort{ByBytes: true, Desc: desc}, store.PageRequest{Limit: size, Offset: off})
						if err != nil {
							t.Fatalf("%s: %v", stage, err)
						}
						exp := want[min(off, int64(len(want))):min(off+size, int64(len(want)))]
						if page.Total != int64(len(want)) || !slices.Equal(page.Items, exp) {
							t.Fatalf("%s, vpc %v desc %v size %d offset %d: total %d, items\n%v\nwant total %d,\n%v",
								stage, vpc != nil, desc, size, off, page.Total, page.Items, len(want), exp)
						}
					}
				}
			}
		}
	}
	check("after the first batch")

	// Upserts: some keys of the crowded bucket grow past it, some small
	// ones by a little.
	for hour := int64(100); hour < 103; hour++ {
		for i := 0; i < 240; i += 3 {
			k := key{hour, fmt.Sprintf("app-%03d", i), fmt.Sprintf("db-%d", i%5), fmt.Sprintf("vpc-%d", i%3)}
			if hour == 101 && (i == 130 || i == 131) {
				continue // already past 64 bits
			}
			add(k, rng.Int64N(300_000), 1)
		}
	}
	flush()
	var stale int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM flows
		WHERE bytes_rank IS DISTINCT FROM telemetry_flow_bytes_rank(bytes_tx, bytes_rx)`).Scan(&stale); err != nil || stale != 0 {
		t.Fatalf("%d rows whose rank is not their total's (%v)", stale, err)
	}
	check("after the upserts")

	// Rows of an unknown rank (the trigger off for this one statement).
	if _, err := pool.Exec(ctx, `ALTER TABLE flows DISABLE TRIGGER flows_bytes_rank;
		UPDATE flows SET bytes_rank = NULL WHERE hour = to_timestamp(101 * 3600) AND src_app < 'app-120';
		ALTER TABLE flows ENABLE TRIGGER flows_bytes_rank`); err != nil {
		t.Fatal(err)
	}
	check("with NULL ranks")
}

func ptr[T any](v T) *T { return &v }
