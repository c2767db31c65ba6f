package api

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// flowBatch makes n flows over `keys` distinct keys per hour, spread over
// a few hours, so batches overlap each other as real traffic does.
func flowBatch(rng *rand.Rand, n, keys int) []Flow {
	fs := make([]Flow, n)
	for i := range fs {
		k := rng.IntN(keys)
		fs[i] = Flow{
			SrcApp:  "src-" + strconv.Itoa(k/50),
			DestApp: "dst-" + strconv.Itoa(k%50),
			VpcID:   "vpc-" + strconv.Itoa(k%3),
			BytesTx: rng.Int64N(1 << 20),
			BytesRx: rng.Int64N(1 << 20),
			Hour:    490000 + rng.Int64N(24),
		}
	}
	return fs
}

// BenchmarkFlowsIngest: flows/s through POST /flows beside the same upsert
// statement run straight against the database, same batches, same clients.
func BenchmarkFlowsIngest(b *testing.B) {
	for _, size := range []int{1000, 10000} {
		for _, clients := range []int{1, 4} {
			b.Run(fmt.Sprintf("batch=%d/clients=%d", size, clients), func(b *testing.B) {
				// Each side starts from an empty database of its own: upserts
				// into existing keys cost more than inserts of new ones.
				s, sqlSide := newTestServer(b), testdb.New(b)
				const batches = 8 // pre-built per client, reused round robin
				bodies := make([][][]byte, clients)
				flows := make([][][]Flow, clients)
				for c := range clients {
					rng := rand.New(rand.NewPCG(uint64(c), 1))
					for range batches {
						fs := flowBatch(rng, size, 20000)
						bodies[c] = append(bodies[c], mustJSON(b, fs))
						flows[c] = append(flows[c], fs)
					}
				}
				q := db.New(sqlSide)
				seq := make([]int, clients)
				// The upsert is the batch summed in Go (postgres.FlowUpsert)
				// and the statement: both run here for each batch, as the
				// store runs them for a request.
				directOp := func(ctx context.Context, c int) error {
					seq[c]++
					return q.UpsertFlows(ctx, upsertParams(flows[c][seq[c]%batches]))
				}
				apiOp := func(ctx context.Context, c int) error {
					seq[c]++
					res, err := http.Post(s.URL+"/flows", "application/json", bytesReader(bodies[c][seq[c]%batches]))
					if err != nil {
						return err
					}
					drain(res)
					if res.StatusCode != http.StatusCreated {
						return fmt.Errorf("status %d", res.StatusCode)
					}
					return nil
				}
				// Four rounds of 2 s a side, the side that goes first
				// alternating (direct, API, API, direct, ...): the machine's
				// pace drifts over seconds (it is shared), and back-to-back
				// 8 s runs let that drift fall on one side only.
				const rounds = 4
				maxOps := int64(400 * 1000 / size / rounds)
				var direct, api loadStats
				for round := range rounds {
					sides := []func(){
						func() { direct = addStats(direct, runLoad(clients, 2*time.Second, maxOps, directOp)) },
						func() { api = addStats(api, runLoad(clients, 2*time.Second, maxOps, apiOp)) },
					}
					if round%2 == 1 {
						slices.Reverse(sides)
					}
					for _, run := range sides {
						run()
					}
				}
				if api.Errors > 0 || direct.Errors > 0 {
					b.Fatalf("errors: api %d, direct %d", api.Errors, direct.Errors)
				}
				apiRate := api.PerSecond() * float64(size)
				directRate := direct.PerSecond() * float64(size)
				b.ReportMetric(apiRate, "api_flows/s")
				b.ReportMetric(directRate, "sql_flows/s")
				b.ReportMetric(apiRate/directRate, "ratio")
				b.ReportMetric(float64(api.P99.Microseconds())/1000, "api_batch_p99_ms")
				b.Logf("api %s; sql %s", api, direct)
			})
		}
	}
}

// benchFlowRows is how many flows the storage benchmark stores (10 M by
// default; FLOWS_BENCH_ROWS overrides it for a quicker run).
func benchFlowRows(b *testing.B) int {
	if v := os.Getenv("FLOWS_BENCH_ROWS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10000 {
			b.Fatalf("FLOWS_BENCH_ROWS=%q", v)
		}
		return n
	}
	return 10_000_000
}

// BenchmarkFlowsStorage compares the two designs with the same flows
// stored: aggregate on write (the flows table: one upserted row per key
// and hour) and raw rows aggregated on read (a flows_raw table made here,
// with an index covering the query). It reports, for each, the query
// latency of an hour's first page with its exact total, the ingest rate on
// top of the stored rows, and the table size; then GET /flows latency
// through the API on the 10 M flows.
func BenchmarkFlowsStorage(b *testing.B) {
	rows := benchFlowRows(b)
	const perHour, keysPerHour = 10000, 2500 // each key posted 4 times an hour
	hours := rows / perHour
	s := newTestServer(b)
	ctx := context.Background()
	exec := func(sql string, args ...any) {
		b.Helper()
		if _, err := s.Pool.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`CREATE TABLE flows_raw (LIKE flows)`)
	exec(`ALTER TABLE flows_raw DROP CONSTRAINT IF EXISTS flows_raw_pkey`)
	exec(`CREATE INDEX flows_raw_key_idx ON flows_raw (hour, src_app, dest_app, vpc_id) INCLUDE (bytes_tx, bytes_rx)`)
	// The same generated flows feed both tables: g-th flow, key g % 2500.
	gen := fmt.Sprintf(`SELECT to_timestamp((400000 + g / %[1]d) * 3600) AS hour,
	       'src-' || (g %% %[2]d) / 50 AS src_app, 'dst-' || (g %% %[2]d) %% 50 AS dest_app,
	       'vpc-' || (g %% %[2]d) %% 3 AS vpc_id, (g * 7919) %% 1000000 AS bytes_tx, (g * 104729) %% 1000000 AS bytes_rx
	FROM generate_series(0::bigint, %[3]d - 1) AS g`, perHour, keysPerHour, rows)
	t0 := time.Now()
	exec(`INSERT INTO flows_raw ` + gen)
	b.Logf("loaded %d raw flows in %s", rows, time.Since(t0).Round(time.Second))
	t0 = time.Now()
	exec(`INSERT INTO flows SELECT hour, src_app, dest_app, vpc_id, sum(bytes_tx)::bigint, sum(bytes_rx)::bigint FROM (` + gen + `) f GROUP BY 1, 2, 3, 4`)
	b.Logf("loaded the same flows aggregated in %s", time.Since(t0).Round(time.Second))
	exec(`VACUUM ANALYZE flows`)
	exec(`VACUUM ANALYZE flows_raw`)

	rawQuery := `SELECT src_app, dest_app, vpc_id, sum(bytes_tx)::bigint, sum(bytes_rx)::bigint, count(*) OVER ()
		FROM flows_raw WHERE hour = $1 GROUP BY src_app, dest_app, vpc_id
		ORDER BY src_app, dest_app, vpc_id LIMIT 50 OFFSET $2`
	q := db.New(s.Pool)
	randomHour := func(rng *rand.Rand) time.Time { return hourTime(400000 + rng.Int64N(int64(hours))) }

	queryLoad := func(fn func(ctx context.Context, rng *rand.Rand) error) loadStats {
		rngs := []*rand.Rand{rand.New(rand.NewPCG(1, 2)), rand.New(rand.NewPCG(3, 4)), rand.New(rand.NewPCG(5, 6)), rand.New(rand.NewPCG(7, 8))}
		return runLoad(4, 5*time.Second, 5000, func(ctx context.Context, c int) error { return fn(ctx, rngs[c]) })
	}
	agg := queryLoad(func(ctx context.Context, rng *rand.Rand) error {
		h := randomHour(rng)
		_, err := q.ListFlowsByKeyAsc(ctx, db.ListFlowsByKeyAscParams{FromHour: h, ToHour: h.Add(time.Hour), RowLimit: 50, RowOffset: rng.Int64N(50) * 50, RollupDim: "all"})
		return err
	})
	raw := queryLoad(func(ctx context.Context, rng *rand.Rand) error {
		rows, err := s.Pool.Query(ctx, rawQuery, randomHour(rng), rng.Int64N(50)*50)
		if err != nil {
			return err
		}
		rows.Close()
		return rows.Err()
	})
	report(b, "agg_query", agg)
	report(b, "raw_query", raw)

	// Ingest on top of the stored rows: the upsert vs COPY into flows_raw.
	rng := rand.New(rand.NewPCG(9, 9))
	var batches [][]Flow
	for range 20 {
		fs := flowBatch(rng, 10000, 20000)
		for i := range fs {
			fs[i].Hour = 400000 + int64(hours) - 1 - rng.Int64N(24)
		}
		batches = append(batches, fs)
	}
	t0 = time.Now()
	for _, fs := range batches {
		if err := q.UpsertFlows(ctx, upsertParams(fs)); err != nil {
			b.Fatal(err)
		}
	}
	upsertRate := float64(len(batches)*10000) / time.Since(t0).Seconds()
	t0 = time.Now()
	for _, fs := range batches {
		if err := copyRaw(ctx, s.Pool, fs); err != nil {
			b.Fatal(err)
		}
	}
	copyRate := float64(len(batches)*10000) / time.Since(t0).Seconds()
	b.ReportMetric(upsertRate, "agg_ingest_flows/s")
	b.ReportMetric(copyRate, "raw_ingest_flows/s")

	var aggSize, rawSize int64
	_ = s.Pool.QueryRow(ctx, `SELECT pg_total_relation_size('flows'), pg_total_relation_size('flows_raw')`).Scan(&aggSize, &rawSize)
	if n := hypertableSize(ctx, s.Pool); n > 0 {
		aggSize = n
	}
	b.ReportMetric(float64(aggSize)/(1<<20), "agg_MiB")
	b.ReportMetric(float64(rawSize)/(1<<20), "raw_MiB")

	// GET /flows through the API on the aggregated 10 M flows.
	apiRngs := []*rand.Rand{rand.New(rand.NewPCG(11, 1)), rand.New(rand.NewPCG(12, 1)), rand.New(rand.NewPCG(13, 1)), rand.New(rand.NewPCG(14, 1))}
	api := runLoad(4, 5*time.Second, 5000, func(ctx context.Context, c int) error {
		h := 400000 + apiRngs[c].Int64N(int64(hours))
		res, err := http.Get(fmt.Sprintf("%s/flows?hour=%d&page=%d&size=50", s.URL, h, 1+apiRngs[c].Int64N(50)))
		if err != nil {
			return err
		}
		drain(res)
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	})
	report(b, "api_get", api)
	if api.Errors > 0 || agg.Errors > 0 || raw.Errors > 0 {
		b.Fatalf("errors: api %d agg %d raw %d", api.Errors, agg.Errors, raw.Errors)
	}
}

// hypertableSize is the flows size across chunks when it is a hypertable.
func hypertableSize(ctx context.Context, pool *pgxpool.Pool) int64 {
	var n int64
	if err := pool.QueryRow(ctx, `SELECT hypertable_size('flows')`).Scan(&n); err != nil {
		return 0
	}
	return n
}

func copyRaw(ctx context.Context, pool *pgxpool.Pool, fs []Flow) error {
	sort.Slice(fs, func(i, j int) bool { return fs[i].Hour < fs[j].Hour })
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"flows_raw"},
		[]string{"hour", "src_app", "dest_app", "vpc_id", "bytes_tx", "bytes_rx"},
		pgx.CopyFromSlice(len(fs), func(i int) ([]any, error) {
			f := fs[i]
			return []any{hourTime(f.Hour), f.SrcApp, f.DestApp, f.VpcID, f.BytesTx, f.BytesRx}, nil
		}))
	return err
}

// upsertParams lays flows out as the upsert's arguments, as the store does
// (postgres.FlowUpsert: summed by key, in key order, with the rollup's
// sums), for the statement the benchmarks run directly.
func upsertParams(flows []Flow) db.UpsertFlowsParams {
	fs := make([]store.Flow, len(flows))
	for i, f := range flows {
		fs[i] = store.Flow{Hour: f.Hour, SrcApp: f.SrcApp, DestApp: f.DestApp, VpcID: f.VpcID, BytesTx: f.BytesTx, BytesRx: f.BytesRx}
	}
	p, err := postgres.FlowUpsert(fs)
	if err != nil {
		panic(err) // the benchmarks' batches are far from 64 bits
	}
	return p
}

// hourTime is the start of an hour given in hours since the Unix epoch.
func hourTime(h int64) time.Time { return time.Unix(h*3600, 0).UTC() }
