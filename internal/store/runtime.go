package store

import (
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store/db"
)

// RuntimeSamples is the store of TODO (stub: to be filled in).
type RuntimeSamples struct {
	pool *pgxpool.Pool
	q    *db.Queries
}

func newRuntimeSamples(pool *pgxpool.Pool, q *db.Queries) *RuntimeSamples {
	return &RuntimeSamples{pool: pool, q: q}
}
