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
// merge each hour's first offset + limit rows instead of sorting the range,
// and order by two bigint keys that make up the total (queries/flows.sql):
// every page, both directions, with and without a vpc_id filter, over three
// hours and over single hours, equals the full sort of the rows computed
// here. The hours hold more rows than a page, many with close totals (among
// the largest and among the smallest), equal totals under different keys
// (ties by key), zero totals and totals past 64 bits; then upserts reorder
// keys. It fails when an hour gives fewer rows than the page needs, when an
// hour's rows are not taken in the total's order (the carry or the low bit
// of the total left out, each tried), or when ties are not broken by key.
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
	keyOf := func(hour int64, i int) key {
		return key{hour, fmt.Sprintf("app-%03d", i), fmt.Sprintf("db-%d", i%5), fmt.Sprintf("vpc-%d", i%3)}
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
			k := keyOf(hour, i)
			var tx, rx int64
			switch {
			case i < 80: // close totals: 1,000,000 to 1,009,999
				tx, rx = 1_000_000+rng.Int64N(10_000), 0
			case i < 120: // equal totals, split differently
				tx = rng.Int64N(5_000)
				rx = 5_000 - tx
			case i < 130:
				tx, rx = 0, 0
			case i < 132 && hour == 101: // past 64 bits together
				tx, rx = math.MaxInt64, math.MaxInt64-int64(i)
			case i >= 200 && i < 230 && hour == 100: // close totals among the smallest rows
				tx, rx = 1_060+rng.Int64N(90), 0
			case i >= 200 && i < 220 && hour == 102: // close totals above every other hour's rows
				tx, rx = 1_000_000_000_000_000+rng.Int64N(1_000_000_000_000), 0
			default: // spread over many magnitudes
				tx, rx = int64(math.Exp(rng.Float64()*30)), rng.Int64N(1000)
			}
			add(k, tx, rx)
		}
	}
	flush()

	total := func(v [2]int64) *big.Int { return new(big.Int).Add(big.NewInt(v[0]), big.NewInt(v[1])) }
	check := func(stage string) {
		t.Helper()
		// The three hours, and single hours (where a page's cut falls
		// inside a run of close totals).
		for _, hours := range [][2]int64{{100, 103}, {100, 101}, {102, 103}} {
			for _, vpc := range []*string{nil, ptrTo("vpc-1")} {
				for _, desc := range []bool{true, false} {
					var want []store.Flow
					for k, v := range totals {
						if k.hour >= hours[0] && k.hour < hours[1] && (vpc == nil || k.vpc == *vpc) {
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
							page, err := st.Flows.List(ctx, store.FlowFilter{FromHour: hours[0], ToHour: hours[1], VpcID: vpc},
								store.FlowSort{ByBytes: true, Desc: desc}, store.PageRequest{Limit: size, Offset: off})
							if err != nil {
								t.Fatalf("%s: %v", stage, err)
							}
							exp := want[min(off, int64(len(want))):min(off+size, int64(len(want)))]
							if page.Total != int64(len(want)) || !slices.Equal(page.Items, exp) {
								t.Fatalf("%s, hours %v, vpc %v, desc %v, size %d, offset %d: total %d, items\n%v\nwant total %d,\n%v",
									stage, hours, vpc != nil, desc, size, off, page.Total, page.Items, len(want), exp)
							}
						}
					}
				}
			}
		}
	}
	check("after the first batch")

	// Upserts: some keys grow past others.
	for hour := int64(100); hour < 103; hour++ {
		for i := 0; i < 240; i += 3 {
			k := keyOf(hour, i)
			if hour == 101 && (i == 130 || i == 131) {
				continue // already past 64 bits
			}
			add(k, rng.Int64N(300_000), 1)
		}
	}
	flush()
	check("after the upserts")
}
