package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

func newEventsStore(t *testing.T) *postgres.Events {
	t.Helper()
	return postgres.New(testdb.New(t), postgres.Options{}).Events
}

// eventsSameJSON fails unless got and want are the same JSON value (jsonb does
// not keep key order or spacing).
func eventsSameJSON(t *testing.T, what string, got, want json.RawMessage) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v in %s", what, err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: want: %v", what, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s = %s, want %s", what, got, want)
	}
}

func eventsRegister(t *testing.T, ev *postgres.Events, host, mode string, started time.Time) uuid.UUID {
	t.Helper()
	id, err := ev.Register(context.Background(), store.NewRun{Host: host,
		RunSettings: store.RunSettings{Mode: eventsOptional(mode), Clients: ptrTo(int64(2))},
		StartedAt:   &started, Payload: json.RawMessage(`{"host": "` + host + `"}`)})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	return id
}

func eventsOptional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func eventsCommit(ctx context.Context, ev *postgres.Events, id uuid.UUID) error {
	return ev.Commit(ctx, store.RunCommit{ID: id,
		Payload: json.RawMessage(`{"measurement": {"fields": {"requestStats": {"stats": []}}}}`)})
}

func TestEventsRegisterCommitGet(t *testing.T) {
	ctx := context.Background()
	ev := newEventsStore(t)
	started := time.Date(2025, 11, 22, 10, 0, 0, 0, time.UTC)
	ended := started.Add(90 * time.Second)
	regPayload := json.RawMessage(`{"hostname": "loadgen-1", "tags": {"mode": "single"},
		"measurement": {"fields": {"clients": 1, "hatchRate": 0.5, "requests": null}}, "extra": [1, "two"]}`)
	id, err := ev.Register(ctx, store.NewRun{Host: "loadgen-1",
		RunSettings: store.RunSettings{Mode: ptrTo("single"), Clients: ptrTo(int64(1)), HatchRate: ptrTo(0.5)},
		StartedAt:   &started, Payload: regPayload})
	if err != nil {
		t.Fatal(err)
	}

	d, err := ev.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != store.RunRunning || d.Commit != nil || d.RequestStats != nil || d.EndedAt != nil {
		t.Fatalf("running run = %+v", d)
	}
	running, err := ev.RunningKeys(ctx, "", 10)
	if err != nil || len(running) != 1 || running[0] != "loadgen-1-"+id.String() {
		t.Fatalf("running = %+v, %v", running, err)
	}

	stats := `{"stats": [{"name": "/", "num_requests": 120}, {"name": "Total", "num_requests": 120}], "total_rps": 11.5}`
	commitPayload := json.RawMessage(`{"uuid": "` + id.String() + `", "user_count": 1,
		"measurement": {"fields": {"requestStats": ` + stats + `, "other": true}, "tags": {"hostname": "http://t"}}}`)
	err = ev.Commit(ctx, store.RunCommit{ID: id, Host: ptrTo("loadgen-2"), TargetHost: ptrTo("http://t"),
		Mode: ptrTo("cluster"), EndedAt: &ended, Payload: commitPayload})
	if err != nil {
		t.Fatal(err)
	}

	d, err = ev.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := store.Run{ID: id, Host: "loadgen-1", State: store.RunCommitted, StartedAt: started, EndedAt: &ended,
		// The commit fills in the target the register left out, and never
		// replaces the mode it gave.
		RunSettings: store.RunSettings{TargetHost: ptrTo("http://t"), Mode: ptrTo("single"), Clients: ptrTo(int64(1)),
			HatchRate: ptrTo(0.5)}}
	if !reflect.DeepEqual(d.Run, want) {
		t.Fatalf("run = %+v, want %+v", d.Run, want)
	}
	if d.Register.Host != "loadgen-1" || !d.Register.Time.Equal(started) || d.Register.ReceivedAt.IsZero() {
		t.Fatalf("register event = %+v", d.Register)
	}
	eventsSameJSON(t, "register payload", d.Register.Payload, regPayload)
	if d.Commit == nil || d.Commit.Host != "loadgen-2" || !d.Commit.Time.Equal(ended) {
		t.Fatalf("commit event = %+v", d.Commit)
	}
	eventsSameJSON(t, "commit payload", d.Commit.Payload, commitPayload)
	eventsSameJSON(t, "requestStats", d.RequestStats, json.RawMessage(stats))

	if running, err := ev.RunningKeys(ctx, "", 10); err != nil || running == nil || len(running) != 0 {
		t.Fatalf("running after commit = %+v, %v", running, err)
	}
}

func TestEventsCommitRefused(t *testing.T) {
	ctx := context.Background()
	ev := newEventsStore(t)

	err := eventsCommit(ctx, ev, uuid.New())
	if !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		t.Fatalf("commit of an unknown run: %v", err)
	}
	if _, err := ev.Get(ctx, uuid.New()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get of an unknown run: %v", err)
	}

	id := eventsRegister(t, ev, "h", "", time.Now())
	if err := eventsCommit(ctx, ev, id); err != nil {
		t.Fatal(err)
	}
	err = ev.Commit(ctx, store.RunCommit{ID: id, Payload: json.RawMessage(`{"second": true}`)})
	var committed *store.CommittedError
	if !errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) || !errors.As(err, &committed) ||
		committed.State != store.RunCommitted || committed.ID != id {
		t.Fatalf("second commit: %v", err)
	}
	// The refused commit stored nothing.
	d, err := ev.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	eventsSameJSON(t, "commit payload", d.Commit.Payload, json.RawMessage(`{"measurement": {"fields": {"requestStats": {"stats": []}}}}`))

	// jsonb cannot hold \u0000: the store says so, and stores nothing.
	id = eventsRegister(t, ev, "h", "", time.Now())
	err = ev.Commit(ctx, store.RunCommit{ID: id, Payload: json.RawMessage(`{"measurement": {"fields": {"requestStats": {"e": "\u0000"}}}}`)})
	if rule, _ := store.Explain(err); !errors.Is(err, store.ErrInvalid) || rule != "unicode" {
		t.Fatalf("commit with \\u0000: %v (rule %q)", err, rule)
	}
	_, err = ev.Register(ctx, store.NewRun{Host: "h", Payload: json.RawMessage(`{"note": "a\u0000b"}`)})
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("register with \\u0000: %v", err)
	}
	if err := eventsCommit(ctx, ev, id); err != nil {
		t.Fatalf("commit after a refused one: %v", err)
	}
}

func TestEventsConcurrentCommits(t *testing.T) {
	ctx := context.Background()
	ev := newEventsStore(t)
	const runs, committers = 5, 8
	for r := 0; r < runs; r++ {
		id := eventsRegister(t, ev, "h", "", time.Now())
		errs := make([]error, committers)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = eventsCommit(ctx, ev, id)
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("run %d: a concurrent commit failed otherwise: %v", r, err)
			}
		}
		if ok != 1 {
			t.Fatalf("run %d: %d of %d concurrent commits succeeded, want exactly 1 (%v)", r, ok, committers, errs)
		}
	}
}

func TestEventsList(t *testing.T) {
	ctx := context.Background()
	ev := newEventsStore(t)
	base := time.Date(2025, 11, 22, 0, 0, 0, 0, time.UTC)
	// Runs i = 0..9 start an hour apart; even ones on host a in single mode,
	// odd ones on host b in cluster mode; the first four are committed.
	ids := make([]uuid.UUID, 10)
	for i := range ids {
		host, mode := "a", "single"
		if i%2 == 1 {
			host, mode = "b", "cluster"
		}
		ids[i] = eventsRegister(t, ev, host, mode, base.Add(time.Duration(i)*time.Hour))
		if i < 4 {
			if err := eventsCommit(ctx, ev, ids[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	at := func(h int) *time.Time { v := base.Add(time.Duration(h) * time.Hour); return &v }

	for _, c := range []struct {
		name  string
		f     store.RunFilter
		p     store.PageRequest
		want  []int // indexes into ids, in order
		total int64
	}{
		{"all, newest first", store.RunFilter{}, store.PageRequest{Limit: 50}, []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, 10},
		{"second page", store.RunFilter{}, store.PageRequest{Limit: 3, Offset: 3}, []int{6, 5, 4}, 10},
		{"last partial page", store.RunFilter{}, store.PageRequest{Limit: 3, Offset: 9}, []int{0}, 10},
		{"past the last page", store.RunFilter{}, store.PageRequest{Limit: 3, Offset: 12}, nil, 10},
		{"far past, filtered", store.RunFilter{Host: "b"}, store.PageRequest{Limit: 5, Offset: 100}, nil, 5},
		{"state committed", store.RunFilter{State: store.RunCommitted}, store.PageRequest{Limit: 50}, []int{3, 2, 1, 0}, 4},
		{"state running", store.RunFilter{State: store.RunRunning}, store.PageRequest{Limit: 2}, []int{9, 8}, 6},
		{"host", store.RunFilter{Host: "a"}, store.PageRequest{Limit: 50}, []int{8, 6, 4, 2, 0}, 5},
		{"mode", store.RunFilter{Mode: "cluster"}, store.PageRequest{Limit: 50}, []int{9, 7, 5, 3, 1}, 5},
		{"from inclusive, to exclusive", store.RunFilter{StartedFrom: at(2), StartedTo: at(5)}, store.PageRequest{Limit: 50}, []int{4, 3, 2}, 3},
		{"everything at once", store.RunFilter{State: store.RunCommitted, Host: "b", Mode: "cluster", StartedFrom: at(2)},
			store.PageRequest{Limit: 50}, []int{3}, 1},
		{"nothing matches", store.RunFilter{Host: "nobody"}, store.PageRequest{Limit: 50}, nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			page, err := ev.List(ctx, c.f, c.p)
			if err != nil {
				t.Fatal(err)
			}
			if page.Items == nil {
				t.Fatal("items is nil")
			}
			got := make([]uuid.UUID, len(page.Items))
			for i, r := range page.Items {
				got[i] = r.ID
			}
			want := make([]uuid.UUID, len(c.want))
			for i, w := range c.want {
				want[i] = ids[w]
			}
			if fmt.Sprint(got) != fmt.Sprint(want) || page.Total != c.total {
				t.Fatalf("got %v total %d, want %v total %d", got, page.Total, want, c.total)
			}
		})
	}

	// An item carries the run's settings and state.
	page, err := ev.List(ctx, store.RunFilter{StartedTo: at(1)}, store.PageRequest{Limit: 1})
	if err != nil || len(page.Items) != 1 {
		t.Fatalf("page = %+v, %v", page, err)
	}
	r := page.Items[0]
	if r.ID != ids[0] || r.Host != "a" || r.Mode == nil || *r.Mode != "single" || r.Clients == nil || *r.Clients != 2 ||
		r.State != store.RunCommitted || !r.StartedAt.Equal(base) || r.EndedAt == nil || r.StartedAt.Location() != time.UTC {
		t.Fatalf("item = %+v", r)
	}
}

// On TimescaleDB the first event of a time range creates its chunk. While
// events had a foreign key to event_runs (until migration 00025), the
// chunk's copy of it took SHARE ROW EXCLUSIVE on event_runs, so a commit
// creating a chunk waited for every transaction writing another run, and
// deadlocked with those that waited for it (docs/events.md). Here another
// run's row is held written while a commit creates the chunk of its end
// time: the commit must not wait for it.
func TestEventsCommitCreatingAChunkDoesNotWaitForOtherRuns(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	ctx := context.Background()
	if !timescaleEnabled(t, pool) {
		t.Skip("SKIPPED: this PostgreSQL server has no TimescaleDB (extension not available or not preloaded); plain tables have no chunks to create")
	}
	ev := postgres.New(pool, postgres.Options{}).Events
	start := time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)
	a, err := ev.Register(ctx, store.NewRun{Host: "a", StartedAt: &start, Payload: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ev.Register(ctx, store.NewRun{Host: "b", StartedAt: &start, Payload: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `UPDATE event_runs SET host = host WHERE uuid = $1`, b); err != nil {
		t.Fatal(err)
	}
	// Ten years on: a range no event has touched, so a new chunk.
	end := start.AddDate(10, 0, 0)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := ev.Commit(cctx, store.RunCommit{ID: a, EndedAt: &end, Payload: json.RawMessage(`{}`)}); err != nil {
		t.Fatalf("commit creating a chunk while another run's row is written: %v", err)
	}
	var chunks int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM timescaledb_information.chunks
		WHERE hypertable_name = 'events' AND range_start <= $1 AND range_end > $1`, end).Scan(&chunks); err != nil || chunks != 1 {
		t.Fatalf("chunk of the commit's time: %d, %v", chunks, err)
	}
}
