package store

import (
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store/db"
)

// Flows is the store of TODO (stub: to be filled in).
type Flows struct {
	pool *pgxpool.Pool
	q    *db.Queries
}

func newFlows(pool *pgxpool.Pool, q *db.Queries, opts Options) *Flows {
	return &Flows{pool: pool, q: q}
}
