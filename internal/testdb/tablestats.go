package testdb

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// TableStats are a table's statistics (pg_stat_all_tables) summed with
// those of its inheritance children: on TimescaleDB a hypertable's rows are
// in its chunks.
type TableStats struct {
	Updates, HOTUpdates, Live, Dead int64
	Bytes                           int64 // pg_total_relation_size: heap, indexes and TOAST
}

// ReadTableStats reads table's TableStats on q (a pool or one connection).
// A backend's own counts reach them when it is next idle; one that calls
// pg_stat_force_next_flush() first sees its counts in its next statement.
func ReadTableStats(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, table string) (TableStats, error) {
	var s TableStats
	err := q.QueryRow(ctx, `
		SELECT coalesce(sum(n_tup_upd), 0)::bigint, coalesce(sum(n_tup_hot_upd), 0)::bigint,
		       coalesce(sum(n_live_tup), 0)::bigint, coalesce(sum(n_dead_tup), 0)::bigint,
		       coalesce(sum(pg_total_relation_size(relid)), 0)::bigint
		FROM pg_stat_all_tables
		WHERE relid = $1::regclass
		   OR relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::regclass)`, table).
		Scan(&s.Updates, &s.HOTUpdates, &s.Live, &s.Dead, &s.Bytes)
	return s, err
}
