package api

import (
	"context"
	"math"
	"testing"

	"github.com/telemetry/telemetry/internal/store/db"
	"github.com/telemetry/telemetry/internal/testdb"
)

// A round of combined batches: when a total would overflow, only the
// batch that overflows fails; the others are committed.
func TestFlowWriterIsolatesOverflowingBatches(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	q := db.New(pool)
	w := newFlowWriter(q)
	key := func(src string, tx int64) Flow {
		return Flow{SrcApp: src, DestApp: "d", VpcID: "v", BytesTx: tx, Hour: 7}
	}
	// The database already holds a total close to the limit.
	if err := w.write([]Flow{key("near", math.MaxInt64-10)}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		jobs [][]Flow
		fail []bool
	}{
		// Summing in Go already overflows.
		{"overflow in the batch sum", [][]Flow{{key("k", 1<<62)}, {key("k", 1<<62)}, {key("other", 1)}}, []bool{false, true, false}},
		// Only the database knows the stored total.
		{"overflow against the stored total", [][]Flow{{key("near", 20)}, {key("fine", 5)}}, []bool{true, false}},
	}
	for _, c := range cases {
		var jobs []*flowJob
		for _, fs := range c.jobs {
			jobs = append(jobs, &flowJob{flows: fs, done: make(chan error, 1)})
		}
		w.pending = jobs
		w.flushRound()
		for i, j := range jobs {
			err := <-j.done
			if (err != nil) != c.fail[i] || (err != nil && !isOverflow(err)) {
				t.Errorf("%s: job %d error %v, want failure %v", c.name, i, err, c.fail[i])
			}
		}
	}
	rows, err := q.ListFlowsByHour(context.Background(), db.ListFlowsByHourParams{Hour: hourTime(7), RowLimit: 10})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, r := range rows {
		got[r.SrcApp] = r.BytesTx
	}
	want := map[string]int64{"near": math.MaxInt64 - 10, "k": 1 << 62, "other": 1, "fine": 5}
	if len(got) != len(want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("stored %v, want %v", got, want)
		}
	}
}

// Batches combined in one round are summed per key before the upsert.
func TestFlowWriterCombinesBatches(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	q := db.New(pool)
	w := newFlowWriter(q)
	f := Flow{SrcApp: "s", DestApp: "d", VpcID: "v", BytesTx: 2, BytesRx: 3, Hour: 8}
	var jobs []*flowJob
	for i := 0; i < 5; i++ {
		jobs = append(jobs, &flowJob{flows: []Flow{f, f}, done: make(chan error, 1)})
	}
	w.pending = jobs
	w.flushRound()
	for _, j := range jobs {
		if err := <-j.done; err != nil {
			t.Fatal(err)
		}
	}
	rows, err := q.ListFlowsByHour(context.Background(), db.ListFlowsByHourParams{Hour: hourTime(8), RowLimit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].BytesTx != 20 || rows[0].BytesRx != 30 {
		t.Fatalf("rows %+v, want one with 20/30", rows)
	}
}
