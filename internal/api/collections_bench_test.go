package api

import (
	"context"
	"io"
	"net/http"
	"os"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkCollectionRead: GET collections/{id} over HTTP for a collection
// whose running totals hold COLLECTIONS_READ_ENTRIES entries (default
// 22,000: the 30-minute mixed load's, one per raw path; see
// docs/performance-mixed.md), written straight into
// collection_http_totals. Reports the answer's size, the CPU per read of
// the test binary (the service and its client: run with -cpuprofile to
// split them) and of PostgreSQL, and the largest heap of the test binary
// during the reads (peak_heap_MB: live and not yet collected objects,
// sampled every millisecond; the client only counts the bytes), which
// grows with the answer when it is built whole.
func BenchmarkCollectionRead(b *testing.B) {
	entries := 22000
	if v, err := strconv.Atoi(os.Getenv("COLLECTIONS_READ_ENTRIES")); err == nil && v > 0 {
		entries = v
	}
	s := newTestServer(b)
	r := s.do("POST", collectionsURL, nil).wantStatus(b, http.StatusCreated)
	var created struct {
		URI string `json:"uri"`
	}
	r.decode(b, &created)
	id := strings.TrimPrefix(created.URI, "collections/")
	if _, err := s.Pool.Exec(context.Background(), `
INSERT INTO collection_http_totals (collection_id, path, method, hits, sum_elapsed, max_elapsed)
SELECT $1::bigint, '/apiv0.1/events/' || md5(i::text)::uuid, 'GET', 1 + i % 7, (1 + i % 50) / 1000.0, (1 + i % 50) / 1000.0
FROM generate_series(1, $2::int) AS i`, id, entries); err != nil {
		b.Fatal(err)
	}
	url := s.URL + collectionsURL + "/" + id
	var size int64
	b.ReportAllocs()
	b.ResetTimer()
	peak := sampleHeapPeak()
	startCPU, start := readCPU(b, s.Pool), time.Now()
	for b.Loop() {
		res, err := http.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d, %v", url, res.StatusCode, err)
		}
		size = n
	}
	elapsed, cpu := time.Since(start), readCPU(b, s.Pool)
	b.ReportMetric(float64(peak())/(1<<20), "peak_heap_MB")
	b.ReportMetric(float64(size)/1024, "answer_KiB")
	b.ReportMetric(float64((cpu.Go-startCPU.Go).Microseconds())/1000/float64(b.N), "go_cpu_ms/read")
	b.ReportMetric(float64((cpu.PG-startCPU.PG).Microseconds())/1000/float64(b.N), "pg_cpu_ms/read")
	b.ReportMetric(float64(elapsed.Microseconds())/1000/float64(b.N), "wall_ms/read")
	b.ReportMetric(0, "ns/op")
}

// sampleHeapPeak samples the heap's objects (runtime/metrics, no
// stop-the-world) every millisecond until the function it returns is
// called, which answers the largest sample.
func sampleHeapPeak() func() uint64 {
	done, result := make(chan struct{}), make(chan uint64)
	go func() {
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-done:
				result <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		return <-result
	}
}
