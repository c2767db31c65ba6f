package lifecycle

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// A pass that finds the lease held tries again (heldRetries): another
// instance's sealing pass holds it for milliseconds, and the loops keep
// their phase, so a pass skipped once by it was skipped every hour (an
// audit reproduced it with two runners). A lease that is let go between
// the tries: the pass runs, counted once as done. One held at every try:
// skipped, counted once, after 1 + heldRetries tries.
func TestRunnerRetriesAHeldLease(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	expired := func() int64 {
		t.Helper()
		var n int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM measurements`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := pool.Exec(ctx, `INSERT INTO measurements (started_at, ended_at, elapsed, name, method)
		VALUES (now() - interval '60 days', now() - interval '60 days', 0, '/x', 'GET')`); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	r := New(postgres.New(pool, postgres.Options{}).Lifecycle,
		store.Retention{Measurements: 30 * 24 * time.Hour, Rollups: 400 * 24 * time.Hour},
		slog.New(slog.NewJSONHandler(&logs, nil)), reg)
	r.heldWait = 400 * time.Millisecond // tries at 0, then 0.4-0.8, 0.8-1.6 and 1.2-2.4 s

	// Another holder's lease, let go a second from now.
	if _, err := pool.Exec(ctx, `INSERT INTO maintenance_lease VALUES ('maintenance', gen_random_uuid(), now(), now() + interval '1 second') ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at`); err != nil {
		t.Fatal(err)
	}
	res, err := r.RunOnce(ctx)
	if err != nil || res.Skipped {
		t.Fatalf("with a lease let go between the tries: %+v %v, want the pass done", res, err)
	}
	if n := expired(); n != 0 {
		t.Fatalf("the pass ran but left the expired row (%d rows)", n)
	}
	count := func(outcome string) float64 {
		t.Helper()
		var m dto.Metric
		if err := r.passes.WithLabelValues(outcome).Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	if count("done") != 1 || count("skipped") != 0 {
		t.Errorf("passes after a retried pass: %v done, %v skipped, want one done and no skip", count("done"), count("skipped"))
	}

	// Held at every try.
	r.heldWait = 20 * time.Millisecond
	if _, err := pool.Exec(ctx, `INSERT INTO maintenance_lease VALUES ('maintenance', gen_random_uuid(), now(), now() + interval '1 hour') ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at, expires_at = excluded.expires_at`); err != nil {
		t.Fatal(err)
	}
	if res, err := r.RunOnce(ctx); err != nil || !res.Skipped {
		t.Fatalf("with the lease held at every try: %+v %v, want skipped", res, err)
	}
	if count("skipped") != 1 {
		t.Errorf("%v passes skipped, want one counted for the four tries", count("skipped"))
	}
	if !strings.Contains(logs.String(), `"msg":"maintenance pass skipped: another pass holds the lease"`) ||
		!strings.Contains(logs.String(), `"tries":4`) {
		t.Errorf("log: %s", logs.String())
	}

	// A shutdown during the wait ends the pass at once.
	r.heldWait = time.Hour
	stop, cancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	done := make(chan error, 1)
	go func() { _, err := r.RunOnce(stop); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a pass cancelled while it waited for the lease returned no error")
		}
	case <-time.After(time.Minute):
		t.Fatal("a pass cancelled while it waited for the lease did not return")
	}
}

// Within one process a pass and a sealing pass take turns (Runner.one):
// started together, neither is skipped for the other's lease, round after
// round. (Without the turns the sealing pass, which does not retry, met
// the pass's lease in most rounds.)
func TestRunnerPassesTakeTurns(t *testing.T) {
	pool := testdb.New(t)
	ctx := context.Background()
	r := New(postgres.New(pool, postgres.Options{}).Lifecycle,
		store.Retention{Measurements: 30 * 24 * time.Hour, Rollups: 400 * 24 * time.Hour},
		slog.New(slog.DiscardHandler), nil)
	r.heldRetries = 0 // a held lease shows at once
	for round := range 10 {
		type outcome struct {
			kind string
			res  store.MaintenanceResult
			err  error
		}
		out := make(chan outcome, 2)
		go func() { res, err := r.RunOnce(ctx); out <- outcome{"pass", res, err} }()
		go func() { res, err := r.SealOnce(ctx); out <- outcome{"sealing pass", res, err} }()
		for range 2 {
			o := <-out
			if o.err != nil || o.res.Skipped {
				t.Fatalf("round %d: the %s: %+v %v, want it run", round, o.kind, o.res, o.err)
			}
		}
	}
}
