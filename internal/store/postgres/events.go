package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// Events is the store of load-test runs (Locust, through the events API):
// a run is registered (state running), then committed once with its
// results. Each register and commit is also kept as an event with the body
// it came with.
type Events struct {
	pool  *pgxpool.Pool
	q     *db.Queries
	reads readers // the list of runs, on the replica when fresh
}

func newEvents(pool *pgxpool.Pool, q *db.Queries) *Events {
	return &Events{pool: pool, q: q}
}

// Register stores a new running run and its register event (one
// statement: neither exists without the other) and returns its id. A keyed
// register (store.Idempotent in ctx) records its answer, which holds the id
// PostgreSQL generated, in the same transaction.
func (s *Events) Register(ctx context.Context, r store.NewRun) (uuid.UUID, error) {
	idem := store.IdempotentFrom(ctx)
	var id uuid.UUID
	err := inKeyedTx(ctx, s.pool, s.q, idem != nil, func(q *db.Queries) (err error) {
		id, err = q.RegisterRun(ctx, db.RegisterRunParams{
			Payload:    r.Payload,
			Host:       r.Host,
			TargetHost: r.TargetHost,
			Mode:       r.Mode,
			Clients:    r.Clients,
			HatchRate:  r.HatchRate,
			Requests:   r.Requests,
			StartedAt:  r.StartedAt,
		})
		if err != nil || idem == nil {
			return err
		}
		return claimKey(ctx, q, idem, id)
	})
	return id, wrap("register run", err)
}

// Commit marks a running run committed and stores its commit event, in
// one statement. The error wraps ErrNotFound when no such run exists, and
// ErrConflict (with a *CommittedError) when it is no longer running: of two
// concurrent commits exactly one succeeds. A refused commit stores nothing.
func (s *Events) Commit(ctx context.Context, c store.RunCommit) error {
	p := db.CommitRunParams{
		UUID:       c.ID,
		Host:       c.Host,
		Payload:    c.Payload,
		EndedAt:    c.EndedAt,
		TargetHost: c.TargetHost,
		Mode:       c.Mode,
	}
	// The UPDATE only matches a running run, and a concurrent commit holds
	// the row lock until it is done, so no row means the run was missing or
	// not running when the UPDATE ran. Its state read afterwards can only
	// have moved on from there (a run never goes back to running), so it
	// tells 404 from 409 without a race. The one way to read running is a
	// register of that id committed between the two statements: then the
	// commit is simply tried again.
	//
	// A keyed commit (store.Idempotent in ctx) runs in a transaction that
	// records its key first: a concurrent repeat waits there for this one
	// and then finds the key taken, instead of being refused as a second
	// commit. A refused commit rolls the key back with it.
	idem := store.IdempotentFrom(ctx)
	err := inKeyedTx(ctx, s.pool, s.q, idem != nil, func(q *db.Queries) error {
		if idem != nil {
			if err := claimKey(ctx, q, idem, nil); err != nil {
				return wrap("commit run", err)
			}
		}
		for attempt := 0; ; attempt++ {
			_, err := q.CommitRun(ctx, p)
			if err = wrap("commit run", err); !errors.Is(err, store.ErrNotFound) {
				return err
			}
			state, err := q.GetRunState(ctx, c.ID)
			if err != nil {
				return wrap("commit run: state", err) // ErrNotFound: no such run
			}
			if store.RunState(state) == store.RunRunning && attempt < 2 {
				continue
			}
			return &store.Error{Op: "commit run", Kind: store.ErrConflict, Detail: "the run is already " + state,
				Err: &store.CommittedError{ID: c.ID, State: store.RunState(state)}}
		}
	})
	return wrap("commit run", err)
}

// RunningKeys is at most limit (> 0) keys <host>-<uuid> of the runs not
// yet committed (the isrunning answer's keys), in bytewise order: those
// after after, the first ones when after is "". Each page is a range of a
// partial index of the running runs by that key (migration 00052): its cost
// is its own rows, wherever it starts. Never nil. Read from the primary:
// Locust polls right after its commit (docs/scaling.md).
func (s *Events) RunningKeys(ctx context.Context, after string, limit int) ([]string, error) {
	if limit <= 0 || limit > math.MaxInt32 {
		return nil, fmt.Errorf("list running runs: a page of %d runs", limit)
	}
	keys, err := s.q.ListRunningKeysAfter(ctx, db.ListRunningKeysAfterParams{After: after, N: int32(limit)})
	if err != nil {
		return nil, wrap("list running runs", err)
	}
	return keys, nil
}

// Get returns a run with its events, payloads whole (requestStats back in
// the commit's). The run and its events are read from one snapshot, so a
// concurrent commit is seen entirely or not at all. ErrNotFound when no
// such run exists.
func (s *Events) Get(ctx context.Context, id uuid.UUID) (store.RunDetail, error) {
	var out store.RunDetail
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			q := db.New(tx)
			r, err := q.GetRun(ctx, id)
			if err != nil {
				return wrap("get run", err)
			}
			out.Run = runOf(db.ListRunsRow{UUID: r.UUID, Host: r.Host, TargetHost: r.TargetHost, Mode: r.Mode,
				Clients: r.Clients, HatchRate: r.HatchRate, Requests: r.Requests, State: r.State,
				StartedAt: r.StartedAt, EndedAt: r.EndedAt})
			events, err := q.ListRunEvents(ctx, id)
			if err != nil {
				return wrap("list run events", err)
			}
			for _, e := range events {
				ev := store.RunEvent{Time: e.Time.UTC(), ReceivedAt: e.ReceivedAt.UTC(), Host: e.Host, Payload: e.Payload}
				switch e.Kind {
				case "register":
					out.Register = ev
				case "commit":
					out.Commit = &ev
					out.RequestStats = e.RequestStats
				}
			}
			return nil
		})
	if err != nil {
		return store.RunDetail{}, wrap("get run", err)
	}
	return out, nil
}

// List returns one page of the runs f matches, newest first (ties by id),
// with their exact total.
func (s *Events) List(ctx context.Context, f store.RunFilter, p store.PageRequest) (page store.Page[store.Run], err error) {
	state, host, mode := runsMatch(string(f.State)), runsMatch(f.Host), runsMatch(f.Mode)
	err = s.reads.do(ctx, func(q *db.Queries) error {
		page, err = listPage(ctx, "list runs", p,
			func(ctx context.Context) ([]db.ListRunsRow, error) {
				return q.ListRuns(ctx, db.ListRunsParams{State: state, Host: host, Mode: mode,
					StartedFrom: f.StartedFrom, StartedTo: f.StartedTo, RowLimit: p.Limit, RowOffset: p.Offset})
			},
			func(r db.ListRunsRow) int64 { return r.Total },
			func(ctx context.Context) (int64, error) {
				return q.CountRuns(ctx, db.CountRunsParams{State: state, Host: host, Mode: mode,
					StartedFrom: f.StartedFrom, StartedTo: f.StartedTo})
			},
			runOf)
		return err
	})
	return page, err
}

func runOf(r db.ListRunsRow) store.Run {
	run := store.Run{ID: r.UUID, Host: r.Host, State: store.RunState(r.State), StartedAt: r.StartedAt.UTC(),
		RunSettings: store.RunSettings{TargetHost: r.TargetHost, Mode: r.Mode, Clients: r.Clients,
			HatchRate: r.HatchRate, Requests: r.Requests}}
	if r.EndedAt != nil {
		end := r.EndedAt.UTC()
		run.EndedAt = &end
	}
	return run
}

// runsMatch is nil for "" (a filter that matches everything).
func runsMatch(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
