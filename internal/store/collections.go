package store

import (
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store/db"
)

// Collections is the store of TODO (stub: to be filled in).
type Collections struct {
	pool *pgxpool.Pool
	q    *db.Queries
}

func newCollections(pool *pgxpool.Pool, q *db.Queries) *Collections {
	return &Collections{pool: pool, q: q}
}
