package postgres

import (
	"context"
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

func newFlows(pool *pgxpool.Pool, q *db.Queries, _ Options) *Flows {
	return &Flows{q: q, writer: newFlowWriter(pool, q)}
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

// ListHour gives one page of the hour's totals, ordered by src_app,
// dest_app, vpc_id, with the number of keys in that hour.
func (f *Flows) ListHour(ctx context.Context, hour int64, p store.PageRequest) (page store.Page[store.Flow], err error) {
	at := hourTime(hour)
	err = f.reads.do(ctx, func(q *db.Queries) error {
		page, err = listPage(ctx, "list flows", p,
			func(ctx context.Context) ([]db.ListFlowsByHourRow, error) {
				return q.ListFlowsByHour(ctx, db.ListFlowsByHourParams{Hour: at, RowLimit: p.Limit, RowOffset: p.Offset})
			},
			func(r db.ListFlowsByHourRow) int64 { return r.Total },
			func(ctx context.Context) (int64, error) { return q.CountFlowsByHour(ctx, at) },
			func(r db.ListFlowsByHourRow) store.Flow {
				return store.Flow{SrcApp: r.SrcApp, DestApp: r.DestApp, VpcID: r.VpcID, BytesTx: r.BytesTx, BytesRx: r.BytesRx, Hour: hour}
			})
		return err
	})
	return page, err
}

// hourTime is the start of an hour given in hours since the epoch.
func hourTime(h int64) time.Time { return time.Unix(h*3600, 0).UTC() }
