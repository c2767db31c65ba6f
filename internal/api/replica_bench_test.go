package api

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// BenchmarkReplicaReads measures GET /api/measurements/grouped/ and GET
// /flows throughput under a concurrent write load (POST /flows and POST
// /api/measurements), with the reads on a streaming replica
// (DATABASE_READ_URL) and with every query on the primary, in one run: the
// two configurations take turns, REPLICA_BENCH_SECONDS (default 15) each,
// twice. It starts its own primary and replica (testdb.Replicated), so it
// runs only when named: go test -run '^$' -bench BenchmarkReplicaReads
// ./internal/api (or make bench BENCH=ReplicaReads).
func BenchmarkReplicaReads(b *testing.B) {
	if f := flag.Lookup("test.bench"); f == nil || !strings.Contains(f.Value.String(), "Replica") {
		b.Skip("starts a primary and a replica: run it by name (-bench BenchmarkReplicaReads)")
	}
	seconds := 15
	if v := os.Getenv("REPLICA_BENCH_SECONDS"); v != "" {
		seconds, _ = strconv.Atoi(v)
	}
	ctx := context.Background()
	pair, primaryURL, replicaURL := testdb.Replicated(b)
	open := func(url string) *pgxpool.Pool {
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(pool.Close)
		return pool
	}

	// The data read: 100,000 measurements over the last 6 days (the
	// grouped window is the default 7 days), 1,000 flow keys in one hour.
	seed := postgres.New(open(primaryURL), postgres.Options{})
	defer seed.Close()
	now := time.Now()
	rng := rand.New(rand.NewPCG(1, 2))
	methods := []string{"GET", "POST", "PUT", "DELETE"}
	for range 10 {
		recs := make([]store.Measurement, 10000)
		for i := range recs {
			start := now.Add(-time.Duration(rng.Int64N(int64(6 * 24 * time.Hour))))
			recs[i] = store.Measurement{StartedAt: start, EndedAt: start.Add(50 * time.Millisecond), Elapsed: 0.05,
				Name: fmt.Sprintf("/api/r%d", rng.IntN(50)), Method: methods[rng.IntN(4)], App: "bench"}
		}
		if _, err := seed.Measurements.Insert(ctx, recs); err != nil {
			b.Fatal(err)
		}
	}
	const readHour = 480000
	flows := make([]store.Flow, 1000)
	for i := range flows {
		flows[i] = store.Flow{SrcApp: fmt.Sprintf("src%d", i), DestApp: "dst", VpcID: "vpc", BytesTx: 1, BytesRx: 1, Hour: readHour}
	}
	if err := seed.Flows.Add(ctx, flows); err != nil {
		b.Fatal(err)
	}
	if err := pair.CatchUp(ctx); err != nil {
		b.Fatal(err)
	}

	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	serverOn := func(opts postgres.Options) (string, *postgres.Store) {
		st := postgres.New(open(primaryURL), opts)
		b.Cleanup(st.Close)
		h, _ := New(Deps{Store: st.Stores(), Config: cfg, Metrics: metrics.New()})
		return newHTTPTest(b, h).URL, st
	}
	primaryOnly, _ := serverOn(postgres.Options{})
	withReplica, replicated := serverOn(postgres.Options{ReadPool: open(replicaURL), ReadMaxLag: postgres.DefaultReadMaxLag})
	deadline := time.Now().Add(time.Minute)
	for !replicated.ReplicaStats().InUse {
		if time.Now().After(deadline) {
			b.Fatal("the replica never came into service")
		}
		time.Sleep(10 * time.Millisecond)
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	type counts struct{ grouped, flows, writes, errors atomic.Int64 }
	totals := map[string]*counts{"replica": {}, "primary": {}}
	elapsed := map[string]time.Duration{}
	var seq atomic.Int64
	round := func(name, base string) {
		c := totals[name]
		stop := make(chan struct{})
		var wg sync.WaitGroup
		call := func(method, path, body string, n *atomic.Int64) {
			req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			res, err := client.Do(req)
			if err != nil || res.StatusCode >= 300 {
				c.errors.Add(1)
			} else {
				n.Add(1)
			}
			if res != nil {
				drain(res)
			}
		}
		loop := func(f func()) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
						f()
					}
				}
			}()
		}
		// Writers: 100 flows into hours of their own, 100 measurements.
		for range 2 {
			loop(func() {
				h := 490000 + seq.Add(1)%1000
				var sb strings.Builder
				sb.WriteByte('[')
				for i := range 100 {
					if i > 0 {
						sb.WriteByte(',')
					}
					fmt.Fprintf(&sb, `{"src_app":"w%d","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":%d}`, i, h)
				}
				sb.WriteByte(']')
				call(http.MethodPost, "/flows", sb.String(), &c.writes)
			})
			loop(func() {
				t := float64(time.Now().Unix())
				var sb strings.Builder
				sb.WriteByte('[')
				for i := range 100 {
					if i > 0 {
						sb.WriteByte(',')
					}
					fmt.Fprintf(&sb, `{"startedAt":%f,"endedAt":%f,"name":"/w%d","method":"GET","args":[],"kwargs":{},"context":{}}`, t-1, t, i%10)
				}
				sb.WriteByte(']')
				call(http.MethodPost, "/api/measurements", sb.String(), &c.writes)
			})
		}
		// Readers.
		for range 4 {
			loop(func() { call(http.MethodGet, "/api/measurements/grouped/?size=50", "", &c.grouped) })
			loop(func() { call(http.MethodGet, fmt.Sprintf("/flows?hour=%d&size=50", readHour), "", &c.flows) })
		}
		start := time.Now()
		time.Sleep(time.Duration(seconds) * time.Second)
		close(stop)
		wg.Wait()
		elapsed[name] += time.Since(start)
	}
	b.ResetTimer()
	before := replicated.ReplicaStats()
	for range 2 {
		round("replica", withReplica)
		round("primary", primaryOnly)
	}
	b.StopTimer()
	after := replicated.ReplicaStats()
	for _, name := range []string{"replica", "primary"} {
		c, secs := totals[name], elapsed[name].Seconds()
		b.ReportMetric(float64(c.grouped.Load())/secs, "grouped/s_"+name)
		b.ReportMetric(float64(c.flows.Load())/secs, "flows_gets/s_"+name)
		b.ReportMetric(float64(c.writes.Load())/secs, "writes/s_"+name)
		if n := c.errors.Load(); n > 0 {
			b.Errorf("%s: %d requests failed", name, n)
		}
	}
	served := after.ReplicaReads - before.ReplicaReads
	all := served + after.PrimaryReads - before.PrimaryReads
	if all > 0 {
		b.ReportMetric(100*float64(served)/float64(all), "%reads_on_replica")
	}
	b.ReportMetric(after.Lag.Seconds(), "lag_s_at_end")
}
