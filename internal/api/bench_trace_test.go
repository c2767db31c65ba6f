package api

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// pgSnapshot holds the server's background work counters that a benchmark
// round can pay for without asking: checkpoints, WAL and autovacuum.
type pgSnapshot struct {
	checkpoints int64
	walBytes    int64
	walFPI      int64
	autovacuum  map[string]int64 // per table: autovacuum_count + autoanalyze_count
}

func readPGSnapshot(pool *pgxpool.Pool) pgSnapshot {
	ctx := context.Background()
	s := pgSnapshot{autovacuum: map[string]int64{}}
	_ = pool.QueryRow(ctx, `SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter`).Scan(&s.checkpoints)
	_ = pool.QueryRow(ctx, `SELECT wal_bytes::bigint, wal_fpi FROM pg_stat_wal`).Scan(&s.walBytes, &s.walFPI)
	rows, err := pool.Query(ctx, `SELECT relname, autovacuum_count, autoanalyze_count FROM pg_stat_all_tables
		WHERE autovacuum_count + autoanalyze_count > 0`)
	if err == nil {
		for rows.Next() {
			var n string
			var v, a int64
			if rows.Scan(&n, &v, &a) == nil {
				s.autovacuum[n+" vacuum"] = v
				s.autovacuum[n+" analyze"] = a
			}
		}
		rows.Close()
	}
	return s
}

// since describes what happened in the server between two snapshots.
func (s pgSnapshot) since(before pgSnapshot) string {
	var av []string
	for k, v := range s.autovacuum {
		if d := v - before.autovacuum[k]; d > 0 {
			av = append(av, k)
		}
	}
	sort.Strings(av)
	return fmt.Sprintf("checkpoints +%d, WAL %.1f MB (%d full pages), autovacuum [%s]",
		s.checkpoints-before.checkpoints, float64(s.walBytes-before.walBytes)/1e6, s.walFPI-before.walFPI, strings.Join(av, ", "))
}

// benchTrace is whether BENCH_TRACE asks a benchmark to log each round.
func benchTrace() bool { return os.Getenv("BENCH_TRACE") != "" }
