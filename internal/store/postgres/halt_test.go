package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// Abort cuts the writes that run on deadlines of their own (a measurement
// batch's COMMIT round trip here) from then on; Resume lets the ones
// started after it run again (the shutdown's final self-profiling write,
// which Abort alone failed: found by an audit), and a second Abort cuts
// them again.
func TestAbortThenResume(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	st := postgres.New(pool, postgres.Options{})
	t.Cleanup(st.Close)
	ctx := context.Background()
	insert := func() error {
		now := time.Now().Truncate(time.Microsecond)
		_, err := st.Measurements.Insert(ctx, []store.Measurement{{StartedAt: now, EndedAt: now.Add(time.Millisecond),
			Elapsed: 0.001, Name: "/a", Method: "GET", Args: []byte("[]"), Kwargs: []byte("{}"), Context: []byte("{}")}})
		return err
	}
	count := func() (n int) {
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM measurements").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := insert(); err != nil {
		t.Fatal(err)
	}
	st.Abort()
	if err := insert(); err == nil {
		t.Fatal("a batch written after Abort was committed")
	}
	st.Resume()
	if err := insert(); err != nil {
		t.Fatalf("after Resume: %v", err)
	}
	st.Abort()
	if err := insert(); err == nil {
		t.Fatal("a batch written after the second Abort was committed")
	}
	if n := count(); n != 2 {
		t.Errorf("%d measurements stored, want 2 (nothing half-stored by the cut batches)", n)
	}
}
