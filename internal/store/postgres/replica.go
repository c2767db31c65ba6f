package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// Reads on a streaming replica (DATABASE_READ_URL).
//
// The read-only GET endpoints that tolerate a little lag (see
// docs/scaling.md) run their queries through a readers, which sends them to
// the replica while it is fresh and to the primary otherwise. Everything
// else (writes, and the reads that must see the caller's own writes) uses
// the primary's queries directly.
//
// Freshness is measured by the store's own monitor goroutine, once per
// ReadProbeInterval, by positions in the WAL rather than by timestamps:
//
//  1. on the primary, pg_current_wal_insert_lsn(): every change visible on
//     the primary at that moment was inserted into the WAL before it;
//  2. on the replica, pg_last_wal_replay_lsn(): how far it has applied it.
//
// Each probe remembers (when it started, the primary's position). The
// replica holds everything the primary had at the start of the newest probe
// whose position it has replayed: that moment is its "fresh as of", and a
// read served by it at time t is at most t - freshAsOf behind. A replica a
// little short of the position just read is asked again for a moment
// (under a steady write load it always is, by a few milliseconds), so that
// the lag reported is the replay's, not the interval between probes. An idle
// primary is no problem (its position does not move, the replica has it,
// freshAsOf is the latest probe), unlike now() - pg_last_xact_replay_timestamp()
// on the replica, which grows while nothing is written. The times are this
// process's monotonic clock, so clock skew between the servers does not
// matter either. A heartbeat row written by the primary would measure the
// same, but costs a write per second per instance (through PgBouncer, in the
// WAL, on every replica) and a migration.
//
// A read goes to the replica while now - freshAsOf <= READ_MAX_LAG. Between
// probes that bound grows with time, so a replica whose probes stop
// answering is left within READ_MAX_LAG even before a probe fails; a failed
// probe, or a read that fails on the replica because it is unreachable,
// leaves it at once until a probe succeeds again. The reads already running
// on it then stop and run again on the primary: a replica that hangs (a
// stopped host, a network cut without a reset) answers nothing and fails
// nothing, so without this every read sent to it waited out its whole
// DB_TIMEOUT and answered 503 (found by the scale-out audit).

// ReadProbeInterval is how often the lag of the replica is measured.
const ReadProbeInterval = time.Second

// DefaultReadMaxLag is READ_MAX_LAG's default.
const DefaultReadMaxLag = 5 * time.Second

// readRouter decides which pool serves the lag-tolerant reads.
type readRouter struct {
	primary, replica *pgxpool.Pool
	maxLag, interval time.Duration
	log              *slog.Logger
	epoch            time.Time // origin of the monotonic times below

	// freshUntil is the monotonic time (since epoch) until which the
	// replica may serve reads: freshAsOf + maxLag, 0 when it may not.
	freshUntil atomic.Int64

	onPrimary, onReplica, fallbacks, probes atomic.Int64

	mu      sync.Mutex
	up      bool               // the last probe reached the replica, in recovery
	service context.Context    // done when the replica leaves service
	leave   context.CancelFunc // ends service
	state   string             // "up" or why not, logged when it changes
	// primaryFailing: the last probe could not read the primary's
	// position (logged when it changes).
	primaryFailing bool
	primaryID      serverIdentity // as the last probe that reached the primary read it
	lag            time.Duration  // measured by the last probe that reached it
	freshAsOf      time.Duration  // 0: unknown
	samples        []lsnSample    // the primary's positions, oldest first

	stop chan struct{}
	done chan struct{}
}

// serverIdentity is what a streaming replica has in common with its
// primary: the database (current_database(), whatever name a pooler gives
// it) and the cluster's system identifier (pg_control_system(): set by
// initdb, copied by pg_basebackup), read by identityColumns.
type serverIdentity struct {
	database string
	system   int64
}

const identityColumns = `current_database(), (SELECT system_identifier FROM pg_control_system())`

// insertedUpTo is the primary's WAL position up to which every record is
// inserted: pg_current_wal_insert_lsn(), except where that is the first
// byte after a page's header (nothing inserted on the page yet), where it is
// the page's start. That is where a replica's pg_last_wal_replay_lsn()
// stops once it has replayed the record before, which ended with the page
// before: after a WAL segment switch (pg_switch_wal(), archive_timeout, a
// base backup's start) the insert position is 40 bytes (a segment's long
// page header) past the replayed one, and on an idle primary it stays there.
// The replica then never had "everything", its lag grew without bound and
// it left service READ_MAX_LAG into the quiet (found by the scale-out
// audit). The headers are MAXALIGN(20) and MAXALIGN(36) bytes
// (XLogPageHeaderData, XLogLongPageHeaderData); pg_control_init() gives the
// server's alignment, page and segment sizes.
const insertedUpTo = `(SELECT CASE
		WHEN p.lsn % c.bytes_per_wal_segment = c.long_header THEN p.lsn - c.long_header
		WHEN p.lsn % c.wal_block_size = c.short_header THEN p.lsn - c.short_header
		ELSE p.lsn END
	FROM (SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint AS lsn) p,
		(SELECT wal_block_size, bytes_per_wal_segment,
			(20 + max_data_alignment - 1) / max_data_alignment * max_data_alignment AS short_header,
			(36 + max_data_alignment - 1) / max_data_alignment * max_data_alignment AS long_header
		FROM pg_control_init()) c)`

type lsnSample struct {
	at  time.Duration // since epoch
	lsn int64
}

// newReadRouter starts the monitor of replica; a nil replica makes a
// router that sends every read to the primary.
func newReadRouter(primary, replica *pgxpool.Pool, maxLag, interval time.Duration, log *slog.Logger) *readRouter {
	r := &readRouter{primary: primary, replica: replica, maxLag: maxLag, interval: interval, log: log,
		epoch: time.Now()}
	if replica == nil {
		return r
	}
	if r.maxLag <= 0 {
		r.maxLag = DefaultReadMaxLag
	}
	if r.interval <= 0 {
		// A few probes within the limit, so that a caught-up replica
		// stays in service from one probe to the next.
		r.interval = min(ReadProbeInterval, r.maxLag/4)
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.service, r.leave = context.WithCancel(context.Background())
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go r.monitor()
	return r
}

func (r *readRouter) now() time.Duration { return time.Since(r.epoch) }

// close stops the monitor (the pools are closed by the store).
func (r *readRouter) close() {
	if r.stop == nil {
		return
	}
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
	r.mu.Lock()
	r.leave()
	r.mu.Unlock()
}

func (r *readRouter) monitor() {
	defer close(r.done)
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		r.probe()
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
	}
}

// probe measures the replica's lag once (see the comment at the top).
func (r *readRouter) probe() {
	stopping, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		// Close must not wait for a probe stuck on an unreachable server.
		select {
		case <-r.stop:
			stop()
		case <-stopping.Done():
		}
	}()
	// Each server has its own deadline: a primary slow to answer (a
	// paused PgBouncer, a pool with no connection free) used to spend the
	// deadline the replica's check then failed on at once, and a replica
	// that answered was taken out of service as unreachable, its reads
	// sent to the primary that was not answering (found by the scale-out
	// audit). The primary's failure only means no new sample: the replica
	// keeps serving within READ_MAX_LAG of the last one it has replayed.
	start := r.now()
	var primaryLSN int64
	var primaryID serverIdentity
	primaryCtx, cancelPrimary := context.WithTimeout(stopping, r.interval+time.Second)
	primaryErr := r.primary.QueryRow(primaryCtx, `SELECT `+insertedUpTo+`, `+identityColumns).
		Scan(&primaryLSN, &primaryID.database, &primaryID.system)
	cancelPrimary()
	ctx, cancel := context.WithTimeout(stopping, r.interval+time.Second)
	defer cancel()
	var inRecovery bool
	var replayed *int64
	var replicaID serverIdentity
	check := func() error {
		return r.replica.QueryRow(ctx,
			`SELECT pg_is_in_recovery(), (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, `+identityColumns).
			Scan(&inRecovery, &replayed, &replicaID.database, &replicaID.system)
	}
	replicaErr := check()
	checked := r.now()
	behind := func() bool {
		return primaryErr == nil && replicaErr == nil && inRecovery && replayed != nil && *replayed < primaryLSN
	}
	// Had it all at once: no lag at all.
	caughtUp := primaryErr == nil && replicaErr == nil && replayed != nil && *replayed >= primaryLSN
	// Under a steady write load the replica is usually a few milliseconds
	// short of the position just read: look again for a short while, so
	// that the lag measured is the replay's, not the probe interval.
	for window := min(r.interval/2, 250*time.Millisecond); behind() && checked-start < window; {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
		replicaErr, checked = check(), r.now()
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if primaryErr == nil {
		r.samples = append(r.samples, lsnSample{at: start, lsn: primaryLSN})
		r.primaryID = primaryID
	}
	if failing := primaryErr != nil && stopping.Err() == nil; failing != r.primaryFailing {
		if failing {
			r.log.Warn("read replica's lag not measured: the primary did not answer; the replica serves reads "+
				"until READ_MAX_LAG past the last position it is known to have", "error", primaryErr.Error())
		} else {
			r.log.Info("read replica's lag measured again: the primary answers")
		}
		r.primaryFailing = failing
	}
	state := "up"
	switch {
	case replicaErr != nil:
		state = "unreachable"
	case !inRecovery || replayed == nil:
		// A promoted replica, or DATABASE_READ_URL naming a primary: its
		// data may differ from the primary's, so it serves no reads.
		state = "not a replica (not in recovery)"
	case r.primaryID != (serverIdentity{}) && replicaID != r.primaryID:
		// A standby of another cluster, or another database of this one
		// (DATABASE_READ_URL naming the wrong host or database): its
		// positions in the WAL say nothing of the primary's, and its
		// answers would be another database's rows, or errors for tables
		// it does not have. Found by the scale-out audit: a read URL
		// naming the replica's postgres database made every lag-tolerant
		// read a 500, one naming another migrated database answered its
		// (empty) lists as this one's.
		state = fmt.Sprintf("not a replica of DATABASE_URL's database (it is database %q of system %d, "+
			"the primary's is database %q of system %d)", replicaID.database, replicaID.system,
			r.primaryID.database, r.primaryID.system)
	}
	if state != r.state {
		if state == "up" {
			r.log.Info("read replica in service", "replayed_lsn", *replayed)
		} else if stopping.Err() == nil {
			attrs := []any{"state", state}
			if replicaErr != nil {
				attrs = append(attrs, "error", replicaErr.Error())
			}
			r.log.Warn("read replica out of service: reads go to the primary", attrs...)
		}
		r.state = state
	}
	r.up = state == "up"
	switch {
	case !r.up:
		r.leave()
	case r.service.Err() != nil:
		r.service, r.leave = context.WithCancel(context.Background())
	}
	if r.up {
		// The newest sample the replica has replayed: it holds everything
		// the primary had then. Replay never goes back, so an older
		// freshAsOf stays true when none qualifies.
		for i := len(r.samples) - 1; i >= 0; i-- {
			if r.samples[i].lsn <= *replayed {
				r.freshAsOf = max(r.freshAsOf, r.samples[i].at)
				break
			}
		}
		switch {
		case caughtUp:
			r.lag = 0
		case r.freshAsOf > 0:
			r.lag = max(0, checked-r.freshAsOf)
		case len(r.samples) > 0:
			r.lag = checked - r.samples[0].at // behind every sample kept: at least that
		}
	}
	// Samples older than freshAsOf are of no more use, nor those too old to
	// make the replica fresh again; the newest always stays.
	keep := 0
	for keep < len(r.samples)-1 && (r.samples[keep+1].at <= r.freshAsOf || start-r.samples[keep].at > 2*r.maxLag+2*r.interval) {
		keep++
	}
	r.samples = r.samples[keep:]
	if r.up && r.freshAsOf > 0 {
		r.freshUntil.Store(int64(r.freshAsOf + r.maxLag))
	} else {
		r.freshUntil.Store(0)
	}
	r.probes.Add(1)
}

// fresh reports whether the replica may serve a read now.
func (r *readRouter) fresh() bool {
	return r.replica != nil && int64(r.now()) <= r.freshUntil.Load()
}

// replicaFailed takes the replica out of service until a probe reaches it
// again.
func (r *readRouter) replicaFailed() {
	r.mu.Lock()
	r.up = false
	r.freshUntil.Store(0)
	r.leave()
	r.mu.Unlock()
}

// inService is done when the replica leaves service: a read running on
// it then stops, to run again on the primary.
func (r *readRouter) inService() context.Context {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.service
}

// stats are the router's figures, for /metrics.
func (r *readRouter) stats() metrics.ReplicaStats {
	r.mu.Lock()
	up, lag := r.up, r.lag
	r.mu.Unlock()
	return metrics.ReplicaStats{Up: up, Lag: lag, InUse: r.fresh(),
		PrimaryReads: r.onPrimary.Load(), ReplicaReads: r.onReplica.Load(), Fallbacks: r.fallbacks.Load(),
		Probes: r.probes.Load()}
}

// readers runs a store's lag-tolerant reads: on the replica's queries when
// it is fresh, else on the primary's.
type readers struct {
	router  *readRouter
	primary *db.Queries
	replica db.DBTX               // the replica's pool, wrapped by through; nil without one
	through func(db.DBTX) db.DBTX // what readersOf wraps the pools' queries in
}

// readersOf builds the readers of a store; through wraps each pool's
// queries (Measurements plans every read with its parameters).
func (r *readRouter) readersOf(through func(db.DBTX) db.DBTX) readers {
	if through == nil {
		through = func(d db.DBTX) db.DBTX { return d }
	}
	rs := readers{router: r, primary: db.New(through(r.primary)), through: through}
	if r.replica != nil {
		rs.replica = through(r.replica)
	}
	return rs
}

// do runs fn, a read, on the replica when it is fresh and on the primary
// otherwise. A read the replica could not answer runs again on the
// primary: the replica unreachable or shutting down (it is then left until
// a probe reaches it again), a query cancelled by a conflict with the
// replay, or a row not found (written on the primary less than the lag ago:
// a client that gets an id back from a write and reads it at once finds
// it). fn may run twice, so it must only read.
func (rs readers) do(ctx context.Context, fn func(q *db.Queries) error) error {
	return rs.route(ctx, func(_ context.Context, _ *pgxpool.Pool, q *db.Queries) error { return fn(q) })
}

// snapshot is do with fn's reads in one read-only repeatable-read
// transaction: they see one snapshot, so that a page and the total read
// after it agree even while rows are being written.
func (rs readers) snapshot(ctx context.Context, fn func(q *db.Queries) error) error {
	return rs.route(ctx, func(abort context.Context, pool *pgxpool.Pool, _ *db.Queries) error {
		c, release := withAbort(ctx, abort)
		defer release()
		return pgx.BeginTxFunc(c, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
			func(tx pgx.Tx) error { return fn(db.New(abortableDB{rs.through(tx), abort})) })
	})
}

// route runs run with the replica's pool and queries when it is fresh, else
// with the primary's, as do describes. On the replica, every query run
// makes stops when the replica leaves service (abort, abortableDB); on
// the primary abort never ends.
func (rs readers) route(ctx context.Context, run func(abort context.Context, pool *pgxpool.Pool, q *db.Queries) error) error {
	r := rs.router
	if !r.fresh() {
		r.onPrimary.Add(1)
		return run(context.Background(), r.primary, rs.primary)
	}
	service := r.inService()
	err := run(service, r.replica, db.New(abortableDB{rs.replica, service}))
	left := err != nil && service.Err() != nil
	if err == nil || ctx.Err() != nil || !(left || replicaMissed(err)) {
		r.onReplica.Add(1)
		return err
	}
	if errors.As(err, new(answered)) {
		// An export that handed rows on: not run again (export.go), and
		// its error may be its client's (a broken pipe is not the
		// replica's); the probe finds a replica that failed meanwhile.
		r.onReplica.Add(1)
		return err
	}
	// Classified as replicaMissed does (a raw driver error has no kind
	// until wrapped); a read stopped because the replica left service
	// has nothing more to say.
	if !left && (errors.Is(wrap("replica read", err), store.ErrUnavailable) || unreachable(err)) {
		r.replicaFailed()
		r.log.Warn("read replica failed: reads go to the primary", "error", err.Error())
	}
	r.fallbacks.Add(1)
	r.onPrimary.Add(1)
	return run(context.Background(), r.primary, rs.primary)
}

// errReplicaLeft is why a read on the replica was stopped.
var errReplicaLeft = errors.New("the read replica left service")

// abortableDB runs each query of DBTX with its context also cancelled when
// abort is done (the replica left service).
type abortableDB struct {
	db.DBTX
	abort context.Context
}

func (a abortableDB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	ctx, cancel := withAbort(ctx, a.abort)
	defer cancel()
	return a.DBTX.Exec(ctx, sql, args...)
}

func (a abortableDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	ctx, cancel := withAbort(ctx, a.abort)
	rows, err := a.DBTX.Query(ctx, sql, args...)
	if err != nil {
		cancel()
		return rows, err
	}
	return abortableRows{rows, cancel}, nil
}

func (a abortableDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	ctx, cancel := withAbort(ctx, a.abort)
	return abortableRow{a.DBTX.QueryRow(ctx, sql, args...), cancel}
}

func (a abortableDB) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	ctx, cancel := withAbort(ctx, a.abort)
	defer cancel()
	return a.DBTX.CopyFrom(ctx, table, columns, src)
}

// withAbort is ctx, also cancelled when abort is done, and what releases it.
func withAbort(ctx, abort context.Context) (context.Context, context.CancelFunc) {
	if abort.Done() == nil {
		return ctx, func() {}
	}
	c, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(abort, func() { cancel(errReplicaLeft) })
	return c, func() { stop(); cancel(nil) }
}

// abortableRows releases its query's context when closed.
type abortableRows struct {
	pgx.Rows
	release context.CancelFunc
}

func (r abortableRows) Close() {
	r.Rows.Close()
	r.release()
}

// abortableRow releases its query's context once scanned.
type abortableRow struct {
	pgx.Row
	release context.CancelFunc
}

func (r abortableRow) Scan(dest ...any) error {
	defer r.release()
	return r.Row.Scan(dest...)
}

// replicaMissed reports whether the primary may answer a read the replica
// failed.
func replicaMissed(err error) bool {
	err = wrap("replica read", err) // the kind of a raw driver error
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable) || retryable(err) ||
		unreachable(err)
}
