package postgres_test

import (
	"errors"
	"math"
	"math/big"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// FlowUpsert sums a batch by key, in byte-wise key order, and gives the
// rollup's sums per dimension, hour and key; the caller's slice is left
// as it was.
func TestFlowUpsertSumsInKeyOrder(t *testing.T) {
	t.Parallel()
	in := []store.Flow{
		{Hour: 7, SrcApp: "b", DestApp: "d", VpcID: "v", BytesTx: 1, BytesRx: 10},
		{Hour: 6, SrcApp: "é", DestApp: "d", VpcID: "v", BytesTx: 2, BytesRx: 20},
		{Hour: 7, SrcApp: "B", DestApp: "d", VpcID: "v", BytesTx: 4, BytesRx: 40},
		{Hour: 7, SrcApp: "b", DestApp: "d", VpcID: "v", BytesTx: 8, BytesRx: 80},
		{Hour: 6, SrcApp: "z", DestApp: "d", VpcID: "w", BytesTx: 16, BytesRx: 160},
	}
	before := slices.Clone(in)
	p, err := postgres.FlowUpsert(in)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(in, before) {
		t.Errorf("the batch was changed: %v", in)
	}
	h := func(n int64) time.Time { return time.Unix(n*3600, 0).UTC() }
	if want := []time.Time{h(6), h(6), h(7), h(7)}; !slices.Equal(p.Hours, want) {
		t.Errorf("hours %v, want %v", p.Hours, want)
	}
	// Byte order: "B" < "b" < "z" < "é" (C collation, whatever the database's).
	if want := []string{"z", "é", "B", "b"}; !slices.Equal(p.SrcApps, want) {
		t.Errorf("src_apps %q, want %q", p.SrcApps, want)
	}
	if want := []string{"w", "v", "v", "v"}; !slices.Equal(p.VpcIds, want) {
		t.Errorf("vpc_ids %q, want %q", p.VpcIds, want)
	}
	if want := []int64{16, 2, 4, 9}; !slices.Equal(p.BytesTx, want) {
		t.Errorf("bytes_tx %v, want %v", p.BytesTx, want)
	}
	if want := []int64{160, 20, 40, 90}; !slices.Equal(p.BytesRx, want) {
		t.Errorf("bytes_rx %v, want %v", p.BytesRx, want)
	}
	type cell struct {
		dim  string
		hour time.Time
		key  string
		tx   int64
		rx   int64
	}
	var got []cell
	for i := range p.RDims {
		got = append(got, cell{p.RDims[i], p.RHours[i], p.RKeys[i], p.RBytesTx[i], p.RBytesRx[i]})
	}
	want := []cell{
		{"all", h(6), "", 18, 180}, {"all", h(7), "", 13, 130},
		{"dest_app", h(6), "d", 18, 180}, {"dest_app", h(7), "d", 13, 130},
		{"src_app", h(6), "z", 16, 160}, {"src_app", h(6), "é", 2, 20}, {"src_app", h(7), "B", 4, 40}, {"src_app", h(7), "b", 9, 90},
		{"vpc_id", h(6), "v", 2, 20}, {"vpc_id", h(6), "w", 16, 160}, {"vpc_id", h(7), "v", 13, 130},
	}
	if !slices.Equal(got, want) {
		t.Errorf("rollup\n%v\nwant\n%v", got, want)
	}
}

// A key's total past 64 bits inside the batch is refused as the database
// refuses a stored one (ErrTooLarge, the same explanation); a rollup sum
// past 64 bits is sent in parts that add up to it.
func TestFlowUpsertPast64Bits(t *testing.T) {
	t.Parallel()
	f := store.Flow{Hour: 1, SrcApp: "a", DestApp: "d", VpcID: "v", BytesTx: 1 << 62}
	for name, batch := range map[string][]store.Flow{
		"bytes_tx": {f, f},
		"bytes_rx": {{Hour: 1, SrcApp: "a", DestApp: "d", VpcID: "v", BytesRx: math.MaxInt64}, {Hour: 1, SrcApp: "a", DestApp: "d", VpcID: "v", BytesRx: 1}},
	} {
		_, err := postgres.FlowUpsert(batch)
		if !errors.Is(err, store.ErrTooLarge) {
			t.Fatalf("%s: %v, want ErrTooLarge", name, err)
		}
		if _, detail := store.Explain(err); detail != "a value is out of range: a 64-bit total would overflow" {
			t.Errorf("%s: explanation %q", name, detail)
		}
	}

	// Three keys of MaxInt64 bytes_tx in one hour: 'all', 'dest_app' d and
	// 'vpc_id' v pass 64 bits.
	var batch []store.Flow
	for _, src := range []string{"a", "b", "c"} {
		batch = append(batch, store.Flow{Hour: 1, SrcApp: src, DestApp: "d", VpcID: "v", BytesTx: math.MaxInt64, BytesRx: 1})
	}
	p, err := postgres.FlowUpsert(batch)
	if err != nil {
		t.Fatal(err)
	}
	sums := map[[2]string][2]*big.Int{}
	rows := map[[2]string]int{}
	for i := range p.RDims {
		k := [2]string{p.RDims[i], p.RKeys[i]}
		s, ok := sums[k]
		if !ok {
			s = [2]*big.Int{new(big.Int), new(big.Int)}
			sums[k] = s
		}
		s[0].Add(s[0], big.NewInt(p.RBytesTx[i]))
		s[1].Add(s[1], big.NewInt(p.RBytesRx[i]))
		rows[k]++
	}
	three := new(big.Int).Mul(big.NewInt(math.MaxInt64), big.NewInt(3))
	for _, k := range [][2]string{{"all", ""}, {"dest_app", "d"}, {"vpc_id", "v"}} {
		if sums[k][0].Cmp(three) != 0 || sums[k][1].Int64() != 3 || rows[k] < 2 {
			t.Errorf("%v: %d rows summing to %v, %v; want parts summing to %v, 3", k, rows[k], sums[k][0], sums[k][1], three)
		}
	}
	for _, src := range []string{"a", "b", "c"} {
		k := [2]string{"src_app", src}
		if rows[k] != 1 || sums[k][0].Int64() != math.MaxInt64 {
			t.Errorf("%v: %d rows, %v", k, rows[k], sums[k][0])
		}
	}
	// Rows in the statement's order (dim, hour, key), parts of one cell
	// side by side.
	for i := 1; i < len(p.RDims); i++ {
		if p.RDims[i] < p.RDims[i-1] || p.RDims[i] == p.RDims[i-1] && p.RKeys[i] < p.RKeys[i-1] {
			t.Fatalf("rollup rows out of order: %q %q", p.RDims, p.RKeys)
		}
	}
}

// BenchmarkFlowUpsert: the Go side of a round, a 1,000-flow batch of the
// mixed load's shape (docs/performance-mixed.md) summed and laid out.
func BenchmarkFlowUpsert(b *testing.B) {
	batch := make([]store.Flow, 1000)
	for i := range batch {
		batch[i] = store.Flow{Hour: 490000, SrcApp: "app-" + strconv.Itoa(300+i%100), DestApp: "db-" + strconv.Itoa(i%7),
			VpcID: "vpc-" + strconv.Itoa(i%3), BytesTx: int64(i + 1), BytesRx: int64(2*i + 1)}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := postgres.FlowUpsert(batch); err != nil {
			b.Fatal(err)
		}
	}
}
