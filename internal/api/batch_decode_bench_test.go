package api

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkBatchDecode decodes a 1,000-flow and a 1,000-measurement batch
// with the fast paths of POST /flows and POST /api/measurements (no HTTP,
// no database). docs/decoders.md has the figures.
//
//	go test ./internal/api -run '^$' -bench '^BenchmarkBatchDecode$' -benchmem
func BenchmarkBatchDecode(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	flows, err := json.Marshal(flowBatch(rng, 1000, 5000))
	if err != nil {
		b.Fatal(err)
	}
	in, _ := benchRecords(rng, 1000)
	meas, err := json.Marshal(in)
	if err != nil {
		b.Fatal(err)
	}
	// MAX_TIME_AHEAD at its default, as a request would decode them.
	now := time.Now()
	latest, _ := aheadLimit(now, 24*time.Hour)
	for _, c := range []struct {
		name   string
		body   []byte
		decode func([]byte) bool
	}{
		{"flows", flows, func(b []byte) bool {
			_, _, ok := fastDecode(b, math.MaxInt, flowHourLimit(now, 24*time.Hour).max)
			return ok
		}},
		{"measurements", meas, func(b []byte) bool {
			_, _, ok := fastDecodeMeasurements(b, math.MaxInt, float64(latest.Unix()))
			return ok
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(c.body)))
			cpu := cpuNanos()
			for b.Loop() {
				if !c.decode(c.body) {
					b.Fatal("refused")
				}
			}
			b.ReportMetric(float64(cpuNanos()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}
