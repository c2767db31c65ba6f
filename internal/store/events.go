package store

import (
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store/db"
)

// Events is the store of TODO (stub: to be filled in).
type Events struct {
	pool *pgxpool.Pool
	q    *db.Queries
}

func newEvents(pool *pgxpool.Pool, q *db.Queries) *Events {
	return &Events{pool: pool, q: q}
}
