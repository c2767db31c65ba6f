package postgres

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// Flows keeps the hourly totals of network flows: one row per key and
// hour, to which every posted flow adds its bytes.
type Flows struct {
	q      *db.Queries
	reads  readers // the hour's totals, on the replica when fresh
	writer *flowWriter
}

func newFlows(pool *pgxpool.Pool, q *db.Queries, h *halt) *Flows {
	return &Flows{q: q, writer: newFlowWriter(pool, q, h)}
}

// Add adds the batch to the hourly totals, all or nothing: when it returns
// nil the batch is committed. Concurrent batches are combined into shared
// upserts (flows_writer.go), so ctx does not abort the write: the upsert
// may carry other callers' batches too. A batch holding a value the flows
// table refuses (store.MaxFlowName, store.MaxFlowHour, NUL or invalid
// UTF-8, a negative count) fails with ErrInvalid before it is written; a
// total that would overflow 64 bits fails it with ErrTooLarge. Either way
// only that batch fails, never the others written with it. A keyed batch
// (store.Idempotent in ctx, read here and nowhere else) has its answer
// recorded in the transaction that writes it, even when it is empty.
func (f *Flows) Add(ctx context.Context, flows []store.Flow) error {
	idem := store.IdempotentFrom(ctx)
	if len(flows) == 0 && idem == nil {
		return nil
	}
	return f.writer.write(flows, idem)
}

// List gives one page of the hourly totals the filter selects, in the
// sort's order, with the number of rows the filter matches. The page's
// statement reads the total too (queries/flows.sql), so both come from one
// snapshot: read apart, a batch committed between the two was in the page
// and not in the total (found by an audit: 12 items on a page of a total
// of 11). A page past the last has no row to carry the total, which is
// then counted apart.
func (f *Flows) List(ctx context.Context, fl store.FlowFilter, so store.FlowSort, p store.PageRequest) (page store.Page[store.Flow], err error) {
	err = f.reads.do(ctx, func(q *db.Queries) (err error) {
		page, err = f.list(ctx, q, fl, so, p)
		return err
	})
	return page, err
}

// flowPageRow is a row of any of the flows lists' page queries (they
// differ only in their order).
type flowPageRow = db.ListFlowsByKeyAscRow

// list is List on q's server.
func (f *Flows) list(ctx context.Context, q *db.Queries, fl store.FlowFilter, so store.FlowSort, p store.PageRequest) (store.Page[store.Flow], error) {
	arg := db.ListFlowsByKeyAscParams{FromHour: hourTime(fl.FromHour), ToHour: hourTime(fl.ToHour),
		SrcApp: fl.SrcApp, DestApp: fl.DestApp, VpcID: fl.VpcID, RowLimit: p.Limit, RowOffset: p.Offset}
	dim, key, rollup := rollupFilter(fl)
	if rollup {
		// No filter, or one: the rollup has the count per hour (and key).
		arg.RollupDim, arg.RollupKey = dim, key
	}
	// Without a src_app or dest_app filter the bytes order merges each
	// hour's first rows (a top-N sort per hour: at 2 M rows its p99 was
	// lower than one top-N sort of the range's rows); with one, the
	// filter's index holds few rows (an application's) and a top-N sort of
	// them is cheaper.
	perHour := so.ByBytes && fl.SrcApp == nil && fl.DestApp == nil
	top := db.ListFlowsTopByHourDescParams{FirstHour: fl.FromHour, LastHour: fl.ToHour - 1,
		SrcApp: fl.SrcApp, DestApp: fl.DestApp, VpcID: fl.VpcID, PerHour: p.Offset + p.Limit, RowOffset: p.Offset, RowLimit: p.Limit,
		RollupDim: arg.RollupDim, RollupKey: arg.RollupKey, FromHour: arg.FromHour, ToHour: arg.ToHour}
	list := func(ctx context.Context) ([]flowPageRow, error) { return flowPage(ctx, q, so, perHour, arg, top) }
	count := func(ctx context.Context) (int64, error) {
		if rollup {
			return q.CountFlowsRollup(ctx, db.CountFlowsRollupParams{Dim: dim, Key: key, FromHour: arg.FromHour, ToHour: arg.ToHour})
		}
		return q.CountFlows(ctx, db.CountFlowsParams{FromHour: arg.FromHour, ToHour: arg.ToHour,
			SrcApp: fl.SrcApp, DestApp: fl.DestApp, VpcID: fl.VpcID})
	}
	return listPage(ctx, "list flows", p, list,
		func(r flowPageRow) int64 { return r.Total },
		count,
		func(r flowPageRow) store.Flow {
			return store.Flow{SrcApp: r.SrcApp, DestApp: r.DestApp, VpcID: r.VpcID,
				BytesTx: r.BytesTx, BytesRx: r.BytesRx, Hour: r.Hour.Unix() / 3600}
		})
}

// flowPage runs the page query of the order so: with perHour, the bytes
// order's per-hour form (top; List says when), else arg's query.
func flowPage(ctx context.Context, q *db.Queries, so store.FlowSort, perHour bool,
	arg db.ListFlowsByKeyAscParams, top db.ListFlowsTopByHourDescParams) ([]flowPageRow, error) {
	switch {
	case perHour && so.Desc:
		return pageRows(q.ListFlowsTopByHourDesc(ctx, top))
	case perHour:
		return pageRows(q.ListFlowsTopByHourAsc(ctx, db.ListFlowsTopByHourAscParams(top)))
	case so.ByBytes && so.Desc:
		return pageRows(q.ListFlowsByBytesDesc(ctx, db.ListFlowsByBytesDescParams(arg)))
	case so.ByBytes:
		return pageRows(q.ListFlowsByBytesAsc(ctx, db.ListFlowsByBytesAscParams(arg)))
	case so.Desc:
		return pageRows(q.ListFlowsByKeyDesc(ctx, db.ListFlowsByKeyDescParams(arg)))
	}
	return q.ListFlowsByKeyAsc(ctx, arg)
}

// pageRows gives the rows of a flows list's page query as flowPageRow:
// the page queries' row types have the same fields.
func pageRows[R db.ListFlowsTopByHourDescRow | db.ListFlowsTopByHourAscRow | db.ListFlowsByBytesDescRow |
	db.ListFlowsByBytesAscRow | db.ListFlowsByKeyDescRow](rows []R, err error) ([]flowPageRow, error) {
	if err != nil {
		return nil, err
	}
	out := make([]flowPageRow, len(rows))
	for i, r := range rows {
		out[i] = flowPageRow(r)
	}
	return out, nil
}

// Summary gives one page of the totals per by over the filter's rows,
// largest first, with the number of keys.
func (f *Flows) Summary(ctx context.Context, fl store.FlowFilter, by string, p store.PageRequest) (store.Page[store.FlowTotal], error) {
	if !slices.Contains(store.FlowSummaryKeys(), by) {
		return store.Page[store.FlowTotal]{}, fmt.Errorf("summarize flows by %q: %w", by, store.ErrInvalid)
	}
	from, to := hourTime(fl.FromHour), hourTime(fl.ToHour)
	var page store.Page[store.FlowTotal]
	err := f.reads.do(ctx, func(q *db.Queries) (err error) {
		if key, ok := summaryRollupKey(fl, by); ok {
			page, err = summaryFromRollup(ctx, q, by, key, from, to, p)
			return err
		}
		page, err = listPage(ctx, "summarize flows", p,
			func(ctx context.Context) ([]db.SummarizeFlowsRow, error) {
				return q.SummarizeFlows(ctx, db.SummarizeFlowsParams{By: by, FromHour: from, ToHour: to,
					SrcApp: fl.SrcApp, DestApp: fl.DestApp, VpcID: fl.VpcID, RowLimit: p.Limit, RowOffset: p.Offset})
			},
			func(r db.SummarizeFlowsRow) int64 { return r.Total },
			func(ctx context.Context) (int64, error) {
				return q.CountFlowKeys(ctx, db.CountFlowKeysParams{By: by, FromHour: from, ToHour: to,
					SrcApp: fl.SrcApp, DestApp: fl.DestApp, VpcID: fl.VpcID})
			},
			func(r db.SummarizeFlowsRow) store.FlowTotal {
				return store.FlowTotal{Key: r.Key, BytesTx: r.BytesTx, BytesRx: r.BytesRx, Bytes: r.Bytes}
			})
		return err
	})
	return page, err
}

// summaryFromRollup is Summary read from flows_hourly.
func summaryFromRollup(ctx context.Context, q *db.Queries, by string, key *string, from, to time.Time, p store.PageRequest) (store.Page[store.FlowTotal], error) {
	return listPage(ctx, "summarize flows", p,
		func(ctx context.Context) ([]db.SummarizeFlowsRollupRow, error) {
			return q.SummarizeFlowsRollup(ctx, db.SummarizeFlowsRollupParams{By: by, Key: key, FromHour: from, ToHour: to,
				RowLimit: p.Limit, RowOffset: p.Offset})
		},
		func(r db.SummarizeFlowsRollupRow) int64 { return r.Total },
		func(ctx context.Context) (int64, error) {
			return q.CountFlowKeysRollup(ctx, db.CountFlowKeysRollupParams{By: by, Key: key, FromHour: from, ToHour: to})
		},
		func(r db.SummarizeFlowsRollupRow) store.FlowTotal {
			return store.FlowTotal{Key: r.Key, BytesTx: r.BytesTx, BytesRx: r.BytesRx, Bytes: r.Bytes}
		})
}

// rollupFilter gives the flows_hourly rows that count the filter's flows
// rows: the hour's ('all', ”) without a filter, the key's with one; ok
// is false with two or more filters (the rollup has no pairs).
func rollupFilter(fl store.FlowFilter) (dim, key string, ok bool) {
	dim, key = "all", ""
	n := 0
	for _, f := range []struct {
		dim string
		v   *string
	}{{"src_app", fl.SrcApp}, {"dest_app", fl.DestApp}, {"vpc_id", fl.VpcID}} {
		if f.v != nil {
			dim, key = f.dim, *f.v
			n++
		}
	}
	return dim, key, n <= 1
}

// summaryRollupKey reports whether a summary by `by` can be read from
// flows_hourly: when no filter names another column (the rollup keeps each
// column apart); key is by's own filter, if any.
func summaryRollupKey(fl store.FlowFilter, by string) (key *string, ok bool) {
	for _, f := range []struct {
		dim string
		v   *string
	}{{"src_app", fl.SrcApp}, {"dest_app", fl.DestApp}, {"vpc_id", fl.VpcID}} {
		if f.v == nil {
			continue
		}
		if f.dim != by {
			return nil, false
		}
		key = f.v
	}
	return key, true
}

// hourTime is the start of an hour given in hours since the epoch.
func hourTime(h int64) time.Time { return time.Unix(h*3600, 0).UTC() }
