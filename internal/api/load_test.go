package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loadStats is what a bounded load run measured.
type loadStats struct {
	Requests int64
	Errors   int64
	Elapsed  time.Duration
	P50, P99 time.Duration
	// Quantiles, when known (wrk and pgbench runs), are the latencies at
	// latencyGrid's percentiles, for pooledQuantile.
	Quantiles []time.Duration
}

// PerSecond is successful operations per second.
func (s loadStats) PerSecond() float64 {
	return float64(s.Requests-s.Errors) / s.Elapsed.Seconds()
}

func (s loadStats) String() string {
	return fmt.Sprintf("%d ops (%d errors) in %s: %.0f/s, p50 %s, p99 %s",
		s.Requests, s.Errors, s.Elapsed.Round(time.Millisecond), s.PerSecond(), s.P50, s.P99)
}

// runLoad calls op from `clients` goroutines until `duration` has passed
// or `maxOps` calls were made (whichever comes first: the load is bounded
// in both count and time), and measures each call's latency. op returns an
// error for a failed operation; failures are counted, not fatal.
func runLoad(clients int, duration time.Duration, maxOps int64, op func(ctx context.Context, client int) error) loadStats {
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var issued, errs atomic.Int64
	lat := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for ctx.Err() == nil && issued.Add(1) <= maxOps {
				t0 := time.Now()
				if err := op(context.Background(), c); err != nil {
					errs.Add(1)
				}
				lat[c] = append(lat[c], time.Since(t0))
			}
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	st := loadStats{Requests: int64(len(all)), Errors: errs.Load(), Elapsed: elapsed}
	if len(all) > 0 {
		st.P50 = all[len(all)*50/100]
		st.P99 = all[min(len(all)-1, len(all)*99/100)]
	}
	return st
}

// report publishes a load run's figures on b, prefixed by name.
func report(b *testing.B, name string, s loadStats) {
	b.ReportMetric(s.PerSecond(), name+"/s")
	b.ReportMetric(float64(s.P50.Microseconds())/1000, name+"_p50_ms")
	b.ReportMetric(float64(s.P99.Microseconds())/1000, name+"_p99_ms")
	b.Logf("%s: %s", name, s)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// drain reads and closes a response body so the connection is reused.
func drain(res *http.Response) {
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
}
