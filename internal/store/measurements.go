package store

import (
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store/db"
)

// Measurements is the store of TODO (stub: to be filled in).
type Measurements struct {
	pool *pgxpool.Pool
	q    *db.Queries
}

func newMeasurements(pool *pgxpool.Pool, q *db.Queries, opts Options) *Measurements {
	return &Measurements{pool: pool, q: q}
}
