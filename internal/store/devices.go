package store

import (
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store/db"
)

// Devices is the store of TODO (stub: to be filled in).
type Devices struct {
	pool *pgxpool.Pool
	q    *db.Queries
}

func newDevices(pool *pgxpool.Pool, q *db.Queries, opts Options) *Devices {
	return &Devices{pool: pool, q: q}
}

// Close refuses new reports and waits until every queued one is committed.
// Safe to call twice.
func (d *Devices) Close() {}
