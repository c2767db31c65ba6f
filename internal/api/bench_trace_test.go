package api

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// pgSnapshot holds what a benchmark round can pay for without asking: the
// server's background work (checkpoints, WAL, autovacuum) and the machine's
// CPU time that went elsewhere (iowait, and steal: the hypervisor's other
// guests).
type pgSnapshot struct {
	checkpoints int64
	walBytes    int64
	walFPI      int64
	lsn         string           // pg_current_wal_lsn(), for pg_waldump --start/--end
	autovacuum  map[string]int64 // per table: autovacuum_count + autoanalyze_count
	cpu         [8]int64         // the machine's /proc/stat cpu line: user nice system idle iowait irq softirq steal
}

func readPGSnapshot(pool *pgxpool.Pool) pgSnapshot {
	ctx := context.Background()
	s := pgSnapshot{autovacuum: map[string]int64{}}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		if f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0]); len(f) >= 9 && f[0] == "cpu" {
			for i := range s.cpu {
				s.cpu[i], _ = strconv.ParseInt(f[i+1], 10, 64)
			}
		}
	}
	_ = pool.QueryRow(ctx, `SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter`).Scan(&s.checkpoints)
	_ = pool.QueryRow(ctx, `SELECT wal_bytes::bigint, wal_fpi, pg_current_wal_lsn()::text FROM pg_stat_wal`).Scan(&s.walBytes, &s.walFPI, &s.lsn)
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
	var total int64
	for i := range s.cpu {
		total += s.cpu[i] - before.cpu[i]
	}
	share := func(i int) float64 {
		if total == 0 {
			return 0
		}
		return 100 * float64(s.cpu[i]-before.cpu[i]) / float64(total)
	}
	return fmt.Sprintf("machine idle %.1f%%, iowait %.1f%%, steal %.1f%%; checkpoints +%d, WAL %.1f MB (%d full pages, %s-%s), autovacuum [%s]",
		share(3), share(4), share(7), s.checkpoints-before.checkpoints, float64(s.walBytes-before.walBytes)/1e6, s.walFPI-before.walFPI, before.lsn, s.lsn, strings.Join(av, ", "))
}

// benchTrace is whether BENCH_TRACE asks a benchmark to log each round.
func benchTrace() bool { return os.Getenv("BENCH_TRACE") != "" }

// traceStart is the snapshot and time a traced round starts from; without
// BENCH_TRACE it asks the server nothing.
func traceStart(pool *pgxpool.Pool) (pgSnapshot, time.Time) {
	if !benchTrace() {
		return pgSnapshot{}, time.Now()
	}
	return readPGSnapshot(pool), time.Now()
}
