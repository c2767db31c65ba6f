package postgres_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/migrate"
	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// These tests share one primary and replica (testdb.Replicated): none of
// them runs in parallel.

// replicated opens a store on a fresh database of the test pair, reading
// from its replica, and waits until the replica serves reads (unless
// opts.ReadPool says to use another read pool).
func replicated(t *testing.T, opts postgres.Options) (*postgres.Store, *testdb.Pair, string, string) {
	t.Helper()
	pair, primaryURL, replicaURL := testdb.Replicated(t)
	primary := replicaTestPool(t, primaryURL)
	if opts.ReadPool == nil {
		opts.ReadPool = replicaTestPool(t, replicaURL)
	}
	st := postgres.New(primary, opts)
	t.Cleanup(st.Close)
	return st, pair, primaryURL, replicaURL
}

func replicaTestPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// eventually polls cond until it holds, failing the test after a generous
// deadline (a condition that never comes is the failure, not a slow one).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func inUse(st *postgres.Store) func() bool { return func() bool { return st.ReplicaStats().InUse } }

// probedInUse is inUse for a store whose probes are the test's (one an
// hour otherwise): each check lets the replica catch up and probes it.
func probedInUse(t *testing.T, st *postgres.Store, pair *testdb.Pair) func() bool {
	return func() bool {
		if err := pair.CatchUp(context.Background()); err != nil {
			t.Fatal(err)
		}
		postgres.ProbeReplica(st)
		return st.ReplicaStats().InUse
	}
}

func keyFlow(src string, hour int64) store.Flow {
	return store.Flow{SrcApp: src, DestApp: "b", VpcID: "v", BytesTx: 1, BytesRx: 2, Hour: hour}
}

func listFlows(t *testing.T, st *postgres.Store, hour int64) []string {
	t.Helper()
	page, err := st.Flows.List(context.Background(), store.FlowFilter{FromHour: hour, ToHour: hour + 1}, store.FlowSort{}, store.PageRequest{Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	var srcs []string
	for _, f := range page.Items {
		srcs = append(srcs, f.SrcApp)
	}
	return srcs
}

// reads is the change in the number of reads each pool served since before.
func reads(before, after metrics.ReplicaStats) (primary, replica, fallbacks int64) {
	return after.PrimaryReads - before.PrimaryReads, after.ReplicaReads - before.ReplicaReads, after.Fallbacks - before.Fallbacks
}

// A fresh replica serves the reads: with replay paused, a flow added on the
// primary is not in the answer (the primary would have it) while the lag is
// under READ_MAX_LAG, and is once replay resumes.
func TestReadsOnAFreshReplica(t *testing.T) {
	ctx := context.Background()
	st, pair, _, _ := replicated(t, postgres.Options{ReadMaxLag: time.Hour})
	eventually(t, "the replica in use", inUse(st))
	if err := st.Flows.Add(ctx, []store.Flow{keyFlow("first", 1)}); err != nil {
		t.Fatal(err)
	}
	if err := pair.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	before := st.ReplicaStats()
	if got := listFlows(t, st, 1); len(got) != 1 {
		t.Fatalf("caught-up replica: flows %v, want [first]", got)
	}
	if p, r, _ := reads(before, st.ReplicaStats()); p != 0 || r != 1 {
		t.Fatalf("reads on primary %d, on replica %d; want 0 and 1", p, r)
	}

	if err := pair.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Flows.Add(ctx, []store.Flow{keyFlow("second", 1)}); err != nil {
		t.Fatal(err)
	}
	// The probes see the replica fall behind, and keep it in service.
	eventually(t, "a lag measured", func() bool { return st.ReplicaStats().Lag > 0 })
	if !st.ReplicaStats().InUse {
		t.Fatal("a replica an hour within READ_MAX_LAG is out of service")
	}
	before = st.ReplicaStats()
	if got := listFlows(t, st, 1); len(got) != 1 {
		t.Fatalf("paused replica: flows %v, want only [first] (the read went to the primary)", got)
	}
	if p, r, _ := reads(before, st.ReplicaStats()); p != 0 || r != 1 {
		t.Fatalf("reads on primary %d, on replica %d; want 0 and 1", p, r)
	}

	if err := pair.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second flow on the replica", func() bool { return len(listFlows(t, st, 1)) == 2 })
	eventually(t, "the lag back to 0", func() bool { return st.ReplicaStats().Lag == 0 })
}

// A primary idle after a WAL segment switch (pg_switch_wal(), as
// archive_timeout and a base backup's start do) is no lag either: its
// insert position is then past the new segment's page header, where the
// replica, having replayed the switch, stops at the segment's start. The
// replica was never found complete again until the next write: its lag grew
// and it left service READ_MAX_LAG into the quiet (found by the scale-out
// audit).
func TestAnIdlePrimaryAfterAWALSwitchIsNoLag(t *testing.T) {
	ctx := context.Background()
	st, pair, primaryURL, _ := replicated(t, postgres.Options{ReadMaxLag: 300 * time.Millisecond,
		ReadProbeInterval: 50 * time.Millisecond})
	if err := pair.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replica in use", inUse(st))
	primary := replicaTestPool(t, primaryURL)
	if _, err := primary.Exec(ctx, `SELECT pg_switch_wal()`); err != nil {
		t.Fatal(err)
	}
	// Past READ_MAX_LAG with nothing written: a replica found behind the
	// switch would be out of service by now.
	probes := st.ReplicaStats().Probes
	eventually(t, "a second of probes", func() bool { return st.ReplicaStats().Probes >= probes+20 })
	if s := st.ReplicaStats(); !s.Up || !s.InUse || s.Lag >= 300*time.Millisecond {
		t.Fatalf("after a WAL switch on an idle primary: up %v, in use %v, lag %v; want in use, lag under READ_MAX_LAG",
			s.Up, s.InUse, s.Lag)
	}
}

// Past READ_MAX_LAG the reads go to the primary, and see what it has; an
// idle primary with a caught-up replica is no lag at all (a lag taken from
// the replica's last replayed transaction would grow while nothing is
// written).
func TestReadsGoToThePrimaryPastReadMaxLag(t *testing.T) {
	ctx := context.Background()
	const maxLag = 300 * time.Millisecond
	st, pair, _, _ := replicated(t, postgres.Options{ReadMaxLag: maxLag})
	eventually(t, "the replica in use", inUse(st))

	// Idle: nothing written for several times READ_MAX_LAG.
	probes := st.ReplicaStats().Probes
	eventually(t, "probes over 4 times READ_MAX_LAG", func() bool { return st.ReplicaStats().Probes >= probes+16 })
	// One more probe now: a replica counts as in use for READ_MAX_LAG after
	// its last probe, which a stalled test process could outlive. The lag
	// it takes is still that of an idle primary.
	postgres.ProbeReplica(st)
	if s := st.ReplicaStats(); !s.InUse || s.Lag >= maxLag {
		t.Fatalf("idle primary, caught-up replica: in use %v, lag %v; want in use, lag under %v", s.InUse, s.Lag, maxLag)
	}
	postgres.ProbeReplica(st)
	before := st.ReplicaStats()
	listFlows(t, st, 2)
	if p, r, _ := reads(before, st.ReplicaStats()); p != 0 || r != 1 {
		t.Fatalf("idle: reads on primary %d, on replica %d; want 0 and 1", p, r)
	}

	if err := pair.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Flows.Add(ctx, []store.Flow{keyFlow("late", 2)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replica out of service", func() bool { return !st.ReplicaStats().InUse })
	eventually(t, "a lag of READ_MAX_LAG measured", func() bool { return st.ReplicaStats().Lag >= maxLag })
	before = st.ReplicaStats()
	if got := listFlows(t, st, 2); len(got) != 1 || got[0] != "late" {
		t.Fatalf("lagging replica: flows %v, want [late] from the primary", got)
	}
	if p, r, _ := reads(before, st.ReplicaStats()); p != 1 || r != 0 {
		t.Fatalf("lagging: reads on primary %d, on replica %d; want 1 and 0", p, r)
	}

	if err := pair.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replica back in service", inUse(st))
}

// A replica that stops answering leaves service at the first read it
// fails, which the primary answers instead; a store that starts with the
// replica down never uses it.
func TestReadsFallBackWhenTheReplicaStops(t *testing.T) {
	ctx := context.Background()
	// The probes are the test's (one an hour otherwise): only the failed
	// read can take the replica out of service.
	st, pair, primaryURL, replicaURL := replicated(t, postgres.Options{ReadMaxLag: 2 * time.Hour, ReadProbeInterval: time.Hour})
	if err := st.Flows.Add(ctx, []store.Flow{keyFlow("kept", 3)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replica in use", probedInUse(t, st, pair))
	listFlows(t, st, 3) // a replica connection in the pool, now to be cut
	if err := pair.StopReplica(ctx); err != nil {
		t.Fatal(err)
	}
	before := st.ReplicaStats()
	if got := listFlows(t, st, 3); len(got) != 1 {
		t.Fatalf("replica stopped: flows %v, want [kept]", got)
	}
	p, r, f := reads(before, st.ReplicaStats())
	if f != 1 || p != 1 || r != 0 {
		t.Fatalf("replica stopped: %d fallbacks, %d reads on primary, %d on replica; want 1, 1, 0", f, p, r)
	}
	if st.ReplicaStats().InUse {
		t.Fatal("the replica is still in use after a read failed on it")
	}
	before = st.ReplicaStats()
	listFlows(t, st, 3)
	if p, r, f := reads(before, st.ReplicaStats()); p != 1 || r != 0 || f != 0 {
		t.Fatalf("next read: %d on primary, %d on replica, %d fallbacks; want 1, 0, 0", p, r, f)
	}

	st2 := postgres.New(replicaTestPool(t, primaryURL), postgres.Options{ReadPool: replicaTestPool(t, replicaURL),
		ReadProbeInterval: 20 * time.Millisecond})
	defer st2.Close()
	eventually(t, "probes of the stopped replica", func() bool { return st2.ReplicaStats().Probes >= 3 })
	if s := st2.ReplicaStats(); s.Up || s.InUse {
		t.Fatalf("stopped replica: up %v, in use %v", s.Up, s.InUse)
	}
	if got := listFlows(t, st2, 3); len(got) != 1 {
		t.Fatalf("with the replica down from the start: flows %v, want [kept]", got)
	}
}

// A row written on the primary less than the lag ago is found: the
// replica's "not found" is asked again of the primary.
func TestRowsNotYetOnTheReplicaComeFromThePrimary(t *testing.T) {
	ctx := context.Background()
	st, pair, _, _ := replicated(t, postgres.Options{ReadMaxLag: time.Hour})
	eventually(t, "the replica in use", inUse(st))
	if err := pair.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	ids, err := st.Measurements.Insert(ctx, []store.Measurement{{StartedAt: time.Unix(1, 0), EndedAt: time.Unix(2, 0), Elapsed: 1,
		Name: "/x", Method: "GET", App: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Devices.Create(ctx, "new-device", "New"); err != nil {
		t.Fatal(err)
	}
	before := st.ReplicaStats()
	if m, err := st.Measurements.Get(ctx, ids[0]); err != nil || m.Name != "/x" {
		t.Fatalf("measurement %d written on the primary: %+v, %v", ids[0], m, err)
	}
	if _, err := st.Devices.Current(ctx, "new-device", time.Now(), store.PageRequest{Limit: 10}); err != nil {
		t.Fatalf("current metrics of a device registered on the primary: %v", err)
	}
	_, err = st.Devices.Current(ctx, "no-such-device", time.Now(), store.PageRequest{Limit: 10})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown device: %v, want ErrNotFound", err)
	}
	if _, _, f := reads(before, st.ReplicaStats()); f != 3 {
		t.Fatalf("%d fallbacks, want 3 (each read missed on the replica)", f)
	}
	if !st.ReplicaStats().InUse {
		t.Fatal("a row not found took the replica out of service")
	}
}

// DATABASE_READ_URL naming a server that is not in recovery (here the
// primary itself; a promoted replica is the same) serves no reads.
func TestAReadURLThatIsNotAReplicaIsNotUsed(t *testing.T) {
	_, primaryURL, _ := testdb.Replicated(t)
	st := postgres.New(replicaTestPool(t, primaryURL), postgres.Options{ReadPool: replicaTestPool(t, primaryURL),
		ReadProbeInterval: 20 * time.Millisecond})
	defer st.Close()
	eventually(t, "probes", func() bool { return st.ReplicaStats().Probes >= 3 })
	if s := st.ReplicaStats(); s.Up || s.InUse {
		t.Fatalf("a primary as read replica: up %v, in use %v", s.Up, s.InUse)
	}
	before := st.ReplicaStats()
	listFlows(t, st, 1)
	if p, r, _ := reads(before, st.ReplicaStats()); p != 1 || r != 0 {
		t.Fatalf("reads on primary %d, on replica %d; want 1 and 0", p, r)
	}
}

// DATABASE_READ_URL naming a standby that is not the primary's database's
// (the replica's postgres database, another database on it, a standby of
// another cluster) serves no reads, and the log says why. The first made
// every lag-tolerant read fail (relation does not exist: a 500) and the
// second answered the other database's rows, both with the replica in
// service (found by the scale-out audit).
func TestAReadURLOfAnotherDatabaseIsNotUsed(t *testing.T) {
	ctx := context.Background()
	pair, primaryURL, replicaURL := testdb.Replicated(t)
	_, _, otherURL := testdb.Replicated(t)
	replicaDB := replicaURL[strings.LastIndex(replicaURL, "/")+1:]
	replicaDB = replicaDB[:strings.Index(replicaDB, "?")]
	// A database of the same name on another cluster, as the primary: the
	// standby has the name, not the system.
	admin, err := pgx.Connect(ctx, testdb.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{replicaDB}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{replicaDB}.Sanitize()+" WITH (FORCE)")
	})
	u, err := url.Parse(testdb.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + replicaDB
	for _, c := range []struct{ name, primary, replica, want string }{
		{"the replica's postgres database", primaryURL, pair.Replica.URL("postgres"), `it is database \"postgres\"`},
		{"another database of the replica", primaryURL, otherURL, "not a replica of DATABASE_URL's database"},
		{"a standby of another cluster", u.String(), replicaURL, "of system"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logged lockedLog
			st := postgres.New(replicaTestPool(t, c.primary), postgres.Options{ReadPool: replicaTestPool(t, c.replica),
				ReadMaxLag: time.Hour, ReadProbeInterval: 20 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&logged, nil))})
			defer st.Close()
			eventually(t, "probes", func() bool { return st.ReplicaStats().Probes >= 3 })
			if s := st.ReplicaStats(); s.Up || s.InUse {
				t.Fatalf("up %v, in use %v; want neither", s.Up, s.InUse)
			}
			if out := logged.String(); !strings.Contains(out, "read replica out of service") || !strings.Contains(out, c.want) {
				t.Fatalf("log:\n%s\nwant the replica out of service, saying %q", out, c.want)
			}
			if c.primary != primaryURL {
				return // no schema there to read from
			}
			if err := st.Flows.Add(ctx, []store.Flow{keyFlow("mine", 5)}); err != nil {
				t.Fatal(err)
			}
			before := st.ReplicaStats()
			if got := listFlows(t, st, 5); len(got) != 1 || got[0] != "mine" {
				t.Fatalf("flows %v, want [mine] (read on the primary)", got)
			}
			if p, r, _ := reads(before, st.ReplicaStats()); p != 1 || r != 0 {
				t.Fatalf("reads on primary %d, on replica %d; want 1 and 0", p, r)
			}
		})
	}
}

// A store whose primary pool reaches a replica: not ready, and every write
// is ErrReadOnly (an ErrUnavailable: a 503), never an unexpected error; a
// migration refuses to run there.
func TestStoreOnAReadOnlyServer(t *testing.T) {
	ctx := context.Background()
	pair, primaryURL, replicaURL := testdb.Replicated(t)
	primary := postgres.New(replicaTestPool(t, primaryURL), postgres.Options{})
	defer primary.Close()
	if _, err := primary.Devices.Create(ctx, "dev", "Dev"); err != nil {
		t.Fatal(err)
	}
	if err := pair.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}

	replicaPool := replicaTestPool(t, replicaURL)
	st := postgres.New(replicaPool, postgres.Options{})
	defer st.Close()
	if _, _, err := st.Ready(ctx); !errors.Is(err, store.ErrReadOnly) {
		t.Fatalf("Ready on a replica: %v, want ErrReadOnly", err)
	}
	if _, _, err := primary.Ready(ctx); err != nil {
		t.Fatalf("Ready on the primary: %v", err)
	}
	writes := map[string]func() error{
		"flows": func() error { return st.Flows.Add(ctx, []store.Flow{keyFlow("a", 1)}) },
		"measurements": func() error {
			_, err := st.Measurements.Insert(ctx, []store.Measurement{{StartedAt: time.Unix(1, 0), EndedAt: time.Unix(2, 0), Name: "/", Method: "GET", App: "a"}})
			return err
		},
		"device": func() error { _, err := st.Devices.Create(ctx, "other", "Other"); return err },
		"device report": func() error {
			return st.Devices.Report(ctx, store.MetricRow{DeviceID: "dev", Name: "m", Type: "int32", Slope: "both", Text: "1", TTL: 60, Time: time.Now()})
		},
		"collection": func() error { _, err := st.Collections.Create(ctx, 10); return err },
	}
	for name, write := range writes {
		err := write()
		if !errors.Is(err, store.ErrReadOnly) || !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s on a replica: %v, want ErrReadOnly (an ErrUnavailable)", name, err)
		}
	}

	m, err := migrate.New(replicaPool)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	err = m.Up(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "read-only replica") {
		t.Fatalf("migrate up on a replica: %v", err)
	}
	if err := m.Down(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil || !strings.Contains(err.Error(), "read-only replica") {
		t.Fatalf("migrate down on a replica: %v", err)
	}
}

// A collection's httpUrls are running totals that a clear restarts, not
// bounded by its window: they are read from the primary, as the window
// is, so that a replica behind a clear never pairs the new window with
// the old totals (hits started before the window's start).
func TestCollectionTotalsAfterAClearComeFromThePrimary(t *testing.T) {
	ctx := context.Background()
	st, pair, primaryURL, _ := replicated(t, postgres.Options{ReadMaxLag: time.Hour})
	eventually(t, "the replica in use", inUse(st))
	id, err := st.Collections.Create(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	primary := replicaTestPool(t, primaryURL)
	if _, err := primary.Exec(ctx, `INSERT INTO collection_http_totals (collection_id, path, method, hits, sum_elapsed, max_elapsed)
		VALUES ($1, '/before-clear', 'GET', 5, 1, 0.5)`, id); err != nil {
		t.Fatal(err)
	}
	if err := pair.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pair.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pair.ResumeReplay(context.Background()) })
	if err := st.Collections.Clear(ctx, id); err != nil {
		t.Fatal(err)
	}
	if !st.ReplicaStats().InUse {
		t.Fatal("the replica is out of service: the test would not tell where the totals came from")
	}
	urls, err := st.Collections.HTTPTotals(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(urls) != 0 {
		t.Fatalf("after a clear the replica has not replayed: httpUrls %+v, want none", urls)
	}
}

// A replica that hangs (its processes stopped: a frozen host, a network
// cut without a reset) answers nothing and refuses nothing. The reads
// already sent to it stop when the probe takes it out of service and run
// again on the primary, instead of waiting out their whole deadline
// (DB_TIMEOUT, 10 s here) and failing; the reads sent after go to the
// primary.
func TestReadsOnAHungReplicaRunAgainOnThePrimary(t *testing.T) {
	ctx := context.Background()
	st, pair, _, _ := replicated(t, postgres.Options{})
	if err := st.Flows.Add(ctx, []store.Flow{keyFlow("kept", 4)}); err != nil {
		t.Fatal(err)
	}
	if err := pair.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replica in use", inUse(st))
	for range 8 { // connections to the replica in its pool
		listFlows(t, st, 4)
	}
	thaw, err := pair.FreezeReplica()
	if err != nil {
		t.Fatal(err)
	}
	thawed := false
	defer func() {
		if !thawed {
			thaw()
		}
	}()
	before := st.ReplicaStats()
	type result struct {
		n   int
		err error
	}
	results := make(chan result, 30)
	for range 30 {
		go func() {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			page, err := st.Flows.List(rctx, store.FlowFilter{FromHour: 4, ToHour: 5}, store.FlowSort{}, store.PageRequest{Limit: 50})
			results <- result{len(page.Items), err}
		}()
		time.Sleep(100 * time.Millisecond)
	}
	for range 30 {
		if r := <-results; r.err != nil || r.n != 1 {
			t.Errorf("a read with the replica hung: %d flows, %v; want the primary's answer", r.n, r.err)
		}
	}
	thaw()
	thawed = true
	if _, _, f := reads(before, st.ReplicaStats()); f == 0 {
		t.Error("no read fell back: none was sent to the hung replica, the test tells nothing")
	}
}

// A replica whose server ends its sessions (pg_terminate_backend, a fast
// shutdown: SQLSTATE 57P01, raw from pgx) leaves service at once, as an
// unreachable one does, and the read is answered by the primary.
func TestATerminatedReplicaSessionTakesItOutOfService(t *testing.T) {
	ctx := context.Background()
	st, pair, _, replicaURL := replicated(t, postgres.Options{ReadMaxLag: 2 * time.Hour, ReadProbeInterval: time.Hour})
	ids, err := st.Measurements.Insert(ctx, []store.Measurement{{StartedAt: time.Now(), EndedAt: time.Now(), Name: "/t", Method: "GET"}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replica in use", probedInUse(t, st, pair))
	if _, err := st.Measurements.Get(ctx, ids[0]); err != nil { // a replica connection in the pool
		t.Fatal(err)
	}
	admin := replicaTestPool(t, replicaURL)
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`); err != nil {
		t.Fatal(err)
	}
	before := st.ReplicaStats()
	if m, err := st.Measurements.Get(ctx, ids[0]); err != nil || m.Name != "/t" {
		t.Fatalf("a read on a terminated session: %+v %v", m, err)
	}
	if _, _, f := reads(before, st.ReplicaStats()); f != 1 {
		t.Fatalf("%d fallbacks, want 1: the read did not meet the terminated session", f)
	}
	if st.ReplicaStats().InUse {
		t.Fatal("the replica is still in service after its session was terminated")
	}
}

// A primary slow to answer the probe (a paused PgBouncer, a pool with no
// connection free) leaves a replica that answers in service: its lag is not
// measured meanwhile, so it serves reads until READ_MAX_LAG past the last
// position it is known to have, and the log says so. The probe used to
// spend its one deadline on the primary and then fail the replica's check
// at once: the replica was reported down and its reads sent to the primary
// that was not answering (found by the scale-out audit).
func TestASlowPrimaryLeavesTheReplicaInService(t *testing.T) {
	pair, primaryURL, replicaURL := testdb.Replicated(t)
	cfg, err := pgxpool.ParseConfig(primaryURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	primary, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(primary.Close)
	var logged lockedLog
	st := postgres.New(primary, postgres.Options{ReadPool: replicaTestPool(t, replicaURL), ReadMaxLag: time.Hour,
		ReadProbeInterval: 100 * time.Millisecond, Log: slog.New(slog.NewTextHandler(&logged, nil))})
	t.Cleanup(st.Close)
	if err := pair.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the replica in use", inUse(st))

	// The primary's one connection taken: each probe waits its deadline
	// (the interval and a second) for it.
	conn, err := primary.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			conn.Release()
		}
	}()
	probes := st.ReplicaStats().Probes
	eventually(t, "two probes with the primary busy", func() bool { return st.ReplicaStats().Probes >= probes+2 })
	if s := st.ReplicaStats(); !s.Up || !s.InUse {
		t.Fatalf("replica up %v, in use %v with the primary slow to answer the probe; want both (it answers, "+
			"and its last measure is well within READ_MAX_LAG)", s.Up, s.InUse)
	}
	if out := logged.String(); !strings.Contains(out, "lag not measured: the primary did not answer") ||
		strings.Contains(out, "read replica out of service") {
		t.Fatalf("log:\n%s\nwant the primary's failure, not the replica's", out)
	}
	conn.Release()
	released = true
	eventually(t, "the lag measured again", func() bool { return strings.Contains(logged.String(), "lag measured again") })
	if !st.ReplicaStats().InUse {
		t.Fatal("replica out of service once the primary answers again")
	}
}

// lockedLog is a log's output, written and read from several goroutines.
type lockedLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
