package api

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/selfprofile"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// profiledRequest is one kind of request the self-profiler is handed in a
// figure of BenchmarkDevicesTarget, as the HTTP layer hands it over.
type profiledRequest struct {
	method, target, route, op string
	param, values             string // a path parameter and the values it takes in turn ("" for none)
	variants                  int    // how many distinct paths the load spreads over
	headers                   map[string]string
}

var (
	profiledPut = profiledRequest{method: http.MethodPut, target: "/mrd/%s/metrics", route: "/mrd/{device_id}/metrics",
		op: "putDeviceMetric", param: "device_id", values: "bench%02d", variants: 64,
		headers: map[string]string{"Content-Type": "application/json", "Content-Length": "97", "Authorization": "Bearer x"}}
	profiledFlows = profiledRequest{method: http.MethodGet, target: "/flows?hour=1", route: "/flows", op: "listFlows", variants: 1}
)

// requests builds the kind's distinct requests, each with the chi route
// context the router would have given it (the profiler reads its path
// parameters from there).
func (k profiledRequest) requests() []*http.Request {
	out := make([]*http.Request, k.variants)
	for i := range out {
		target, rctx := k.target, chi.NewRouteContext()
		rctx.RoutePatterns = []string{k.route}
		if k.param != "" {
			v := fmt.Sprintf(k.values, i)
			target = fmt.Sprintf(k.target, v)
			rctx.URLParams.Add(k.param, v)
		}
		r := httptest.NewRequest(k.method, target, nil)
		r.Host = "127.0.0.1:40000"
		for h, v := range k.headers {
			r.Header.Set(h, v)
		}
		out[i] = r.WithContext(context.WithValue(r.Context(), chi.RouteCtxKey, rctx))
	}
	return out
}

// profilerCost is the self-profiler's own cost per request, measured
// directly: a profiler of its own (the service's default settings) is
// handed `rate` requests a second of kind k, for `seconds` simulated
// seconds, from 64 goroutines, and writes what it keeps into the
// measurements table through a store of one connection, once a second at
// mid-second, as its ticker would (WriteDue). It returns the CPU this
// process spent (Record, the writes, pgx), the CPU of that connection's
// PostgreSQL backend and the WAL written, each per request.
//
// It is what the self-profiling overhead is once the machine's drift is
// taken out: BenchmarkDevicesTarget's on-against-off figure moves by
// several points from run to run on these shared cores (its rounds by
// tens), while nothing here waits on the clock or on other tenants except
// for the CPU it reads. What it leaves out: the WAL writer's and the
// checkpointer's CPU for the records (their WAL is counted). Its
// goroutines do nothing but record, so they contend for the profiler's
// mutex more than the server's do: this process's figure errs high.
func profilerCost(b *testing.B, url string, k profiledRequest, rate float64, seconds int) profiledCost {
	b.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url+"&pool_max_conns=1")
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	var pid int
	if err := pool.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		b.Fatal(err)
	}
	st := postgres.New(pool, postgres.Options{})
	defer st.Close()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	prof := selfprofile.New(st.Measurements, slog.New(slog.DiscardHandler), nil, selfprofile.Config{
		Sample: cfg.SelfProfileSample, Exclude: cfg.SelfProfileExclude, Detail: cfg.SelfProfileDetail})
	reqs := k.requests()
	perSecond := max(int(math.Round(rate)), 2)
	half := perSecond / 2
	gap := time.Second / time.Duration(perSecond)
	const elapsed = 8 * time.Millisecond // about a PUT's p50 under this load
	base := time.Now().Truncate(time.Second).Add(-time.Duration(seconds+1) * time.Second)

	ids := make([]string, 1024) // made here, so that their cost is not counted
	for i := range ids {
		ids[i] = fmt.Sprintf("%016x", i)
	}
	const workers = 64
	// feed records the requests i0..i1-1 of second sec, spread over the
	// workers as concurrent requests would be.
	feed := func(sec, i0, i1 int) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := i0 + w; i < i1; i += workers {
					start := base.Add(time.Duration(sec)*time.Second + time.Duration(i)*gap)
					prof.Record(selfprofile.Served{Request: reqs[(sec*perSecond+i)%len(reqs)], Start: start,
						End: start.Add(elapsed), Status: http.StatusOK, Route: k.route, OperationID: k.op,
						RequestID: ids[i%len(ids)]})
				}
			})
		}
		wg.Wait()
	}
	go0, pg0, wal0 := processCPU(), procCPU(pid, false), walPosition(pool)
	for sec := range seconds {
		feed(sec, 0, half)
		if err := prof.WriteDue(ctx, base.Add(time.Duration(sec)*time.Second+time.Second/2)); err != nil {
			b.Fatal(err)
		}
		feed(sec, half, perSecond)
	}
	if err := prof.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	go1, pg1, wal1 := processCPU(), procCPU(pid, false), walPosition(pool)
	n := float64(seconds * perSecond)
	return profiledCost{goPer: (go1 - go0) / time.Duration(n), pgPer: time.Duration((pg1 - pg0) / n * float64(time.Second)),
		walPer: float64(wal1-wal0) / n}
}

// profiledCost is profilerCost's answer.
type profiledCost struct {
	goPer, pgPer time.Duration
	walPer       float64 // bytes
}

// walPosition is the cluster's WAL insert position in bytes (0 if it
// cannot be read): the difference of two is the WAL written between them,
// by every session.
func walPosition(pool *pgxpool.Pool) int64 {
	var n int64
	_ = pool.QueryRow(context.Background(), `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint`).Scan(&n)
	return n
}

// processCPU is this process's CPU time so far (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// standardError is the standard error of the mean of xs: their sample
// standard deviation over the square root of their number (0 for fewer
// than two).
func standardError(xs []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var mean, ss float64
	for _, x := range xs {
		mean += x / n
	}
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return math.Sqrt(ss/(n-1)) / math.Sqrt(n)
}
