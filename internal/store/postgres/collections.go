package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// Collections is the store of metrics collections (appmetrics): windows
// over the service's own runtime samples and self-profiled requests.
type Collections struct {
	pool  *pgxpool.Pool
	q     *db.Queries
	reads readers // the window's aggregates, on the replica when fresh
}

func newCollections(pool *pgxpool.Pool, q *db.Queries) *Collections {
	return &Collections{pool: pool, q: q}
}

// IDs lists the ids of the existing collections in creation order.
func (c *Collections) IDs(ctx context.Context) ([]int64, error) {
	ids, err := c.q.ListCollectionIDs(ctx)
	return ids, wrap("list collections", err)
}

// Create opens a collection whose window starts now and returns its id,
// or ErrTooManyCollections when limit collections exist already. The
// count and the insert run under a table lock in one transaction: the lock
// is PostgreSQL's, so the limit holds across every process sharing the
// database.
func (c *Collections) Create(ctx context.Context, limit int) (int64, error) {
	idem := store.IdempotentFrom(ctx) // a keyed create's
	var id int64
	err := inTx(ctx, c.pool, func(q *db.Queries) error {
		if err := q.LockCollections(ctx); err != nil {
			return err
		}
		n, err := q.CountCollections(ctx)
		if err != nil {
			return err
		}
		if n >= int64(limit) {
			// A keyed repeat that waited on the lock for the first
			// create with its key finds the limit that create reached:
			// it reads that create's answer instead (keyedWrite).
			if idem != nil {
				_, err := q.GetIdempotentAnswer(ctx, idem.Key)
				if err == nil {
					return store.ErrKeyInUse
				}
				if err = wrap("idempotency key", err); !errors.Is(err, store.ErrNotFound) {
					return err
				}
			}
			return &store.Error{Op: "create collection", Kind: store.ErrConflict, Err: store.ErrTooManyCollections,
				Detail: fmt.Sprintf("at most %d collections may exist at a time", limit)}
		}
		if id, err = q.CreateCollection(ctx); err != nil {
			return err
		}
		if err := q.StartCollectionHTTPTotals(ctx, &id); err != nil {
			return err
		}
		// A keyed create records its answer, which holds the new id, in
		// the same transaction.
		if idem != nil {
			return claimKey(ctx, q, idem, id)
		}
		return nil
	})
	return id, wrap("create collection", err)
}

// Window reads the window of collection id, ending now; ErrNotFound when
// there is no such collection.
func (c *Collections) Window(ctx context.Context, id int64) (store.CollectionWindow, error) {
	w, err := c.q.GetCollectionWindow(ctx, id)
	if err != nil {
		return store.CollectionWindow{}, wrap("get collection", err)
	}
	return store.CollectionWindow{ID: w.ID, Start: w.StartedAt, End: w.Now}, nil
}

// Runtime aggregates the runtime samples of every instance that end in
// (since, until]: those of the window's whole hours from their hourly cells
// (migration 00054), the others from the rows.
func (c *Collections) Runtime(ctx context.Context, since, until time.Time) (store.CollectionRuntime, error) {
	var r db.CollectionRuntimeRow
	err := c.reads.do(ctx, func(q *db.Queries) (err error) {
		r, err = q.CollectionRuntime(ctx, db.CollectionRuntimeParams{Since: since, Until: until})
		return err
	})
	if err != nil {
		return store.CollectionRuntime{}, wrap("collection runtime figures", err)
	}
	return store.CollectionRuntime{
		Samples:    r.Samples,
		SystemMean: r.SystemMean, SystemPeak: r.SystemPeak,
		ProcessMean: r.ProcessMean, ProcessPeak: r.ProcessPeak,
		GCTime:       r.GcTime,
		HeapLivePeak: r.HeapLivePeak, RSSPeak: r.RssPeak,
	}, nil
}

// HTTP aggregates the service's own requests started in [since, until],
// per path and method, in path then method order, from the rollup cells
// and rows (collection_http, which also starts the running totals). Never
// nil. The API reads the running totals (HTTPTotalsPage); the tests and
// BenchmarkCollectionsHTTP compare them with this read of the same window.
func (c *Collections) HTTP(ctx context.Context, since, until time.Time) ([]store.CollectionURL, error) {
	var rows []db.CollectionHTTPRow
	err := c.reads.do(ctx, func(q *db.Queries) (err error) {
		rows, err = q.CollectionHTTP(ctx, db.CollectionHTTPParams{Since: since, Until: until})
		return err
	})
	if err != nil {
		return nil, wrap("collection http figures", err)
	}
	return collectionURLs(rows), nil
}

// HTTPTotals is collection id's httpUrls from its running totals
// (migration 00038): the requests started in its window so far, per path
// and method, in path then method order, read in pages of HTTPTotalsPage
// (so not one snapshot when there are more than a page's). Never nil;
// empty for an unknown id. The API reads the pages as it writes them; the
// tests read them whole with this.
func (c *Collections) HTTPTotals(ctx context.Context, id int64) ([]store.CollectionURL, error) {
	const page = 10000
	out := []store.CollectionURL{}
	var after *store.CollectionURL
	for {
		urls, err := c.HTTPTotalsPage(ctx, id, after, page)
		if err != nil {
			return nil, err
		}
		out = append(out, urls...)
		if len(urls) < page {
			return out, nil
		}
		after = &out[len(out)-1]
	}
}

// HTTPTotalsPage is at most limit (> 0) entries of collection id's
// httpUrls from its running totals, in path then method order: the first
// ones when after is nil, else those after the entry of after's path and
// method. Each page is a range of the primary key: its cost is its own
// entries, wherever it starts. Never nil.
//
// Read from the primary, as the window is: the totals are not bounded by
// the window's start, so a replica that has not yet replayed a clear
// would pair the new window with the old totals, and the answer's check
// of its window (read again on the primary after the figures) could not
// see it (found by the scale-out audit).
func (c *Collections) HTTPTotalsPage(ctx context.Context, id int64, after *store.CollectionURL, limit int) ([]store.CollectionURL, error) {
	if limit <= 0 || limit > math.MaxInt32 {
		return nil, fmt.Errorf("collection http figures: a page of %d entries", limit)
	}
	var out []store.CollectionURL
	var err error
	if after == nil {
		var rows []db.CollectionHTTPTotalsRow
		rows, err = c.q.CollectionHTTPTotals(ctx, db.CollectionHTTPTotalsParams{ID: id, N: int32(limit)})
		out = collectionURLs(rows)
	} else {
		var rows []db.CollectionHTTPTotalsAfterRow
		rows, err = c.q.CollectionHTTPTotalsAfter(ctx, db.CollectionHTTPTotalsAfterParams{
			ID: id, AfterPath: after.Path, AfterMethod: after.Method, N: int32(limit)})
		out = collectionURLs(rows)
	}
	if err != nil {
		return nil, wrap("collection http figures", err)
	}
	return out, nil
}

// collectionURLs is the store's form of rows of a collection's httpUrls,
// from any of the queries that read them (sqlc gives each its own row
// type, all of the same fields). Never nil.
func collectionURLs[R db.CollectionHTTPRow | db.CollectionHTTPTotalsRow | db.CollectionHTTPTotalsAfterRow](rows []R) []store.CollectionURL {
	out := make([]store.CollectionURL, len(rows))
	for i, row := range rows {
		r := db.CollectionHTTPRow(row)
		out[i] = store.CollectionURL{Path: r.Path, Method: r.Method, Hits: r.Hits, AvgSeconds: r.AvgElapsed, MaxSeconds: r.MaxElapsed}
	}
	return out
}

// Clear restarts the window of collection id now, its running totals with
// it; ErrNotFound when there is no such collection. Under the collections
// lock, so that no write of the service's requests runs meanwhile.
func (c *Collections) Clear(ctx context.Context, id int64) error {
	var n int64
	err := inTx(ctx, c.pool, func(q *db.Queries) (err error) {
		if err = q.LockCollections(ctx); err != nil {
			return err
		}
		if n, err = q.ClearCollection(ctx, id); err != nil || n == 0 {
			return err
		}
		return restartHTTPTotals(ctx, q, &id)
	})
	return collectionChanged("clear collection", id, n, err)
}

// restartHTTPTotals starts collection *id's running totals again from its
// window so far, or with a nil id every collection's; the caller holds
// LockCollections.
func restartHTTPTotals(ctx context.Context, q *db.Queries, id *int64) error {
	if err := q.DeleteCollectionHTTPTotals(ctx, id); err != nil {
		return err
	}
	return q.StartCollectionHTTPTotals(ctx, id)
}

// Delete deletes collection id (its id is never given again) and its
// running totals; ErrNotFound when there is no such collection. Under the
// collections lock: a write of the service's requests adding to the totals
// meanwhile could otherwise deadlock with the delete of its rows.
func (c *Collections) Delete(ctx context.Context, id int64) error {
	var n int64
	err := inTx(ctx, c.pool, func(q *db.Queries) (err error) {
		if err = q.LockCollections(ctx); err != nil {
			return err
		}
		n, err = q.DeleteCollection(ctx, id)
		return err
	})
	return collectionChanged("delete collection", id, n, err)
}

// collectionChanged turns the outcome of an update or delete of one collection into
// an error: ErrNotFound when it touched no row.
func collectionChanged(op string, id, rows int64, err error) error {
	if err != nil {
		return wrap(op, err)
	}
	if rows == 0 {
		return &store.Error{Op: op, Kind: store.ErrNotFound, Err: fmt.Errorf("no collection %d", id)}
	}
	return nil
}
