package postgres

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// randomHists is n encoded histograms (each width, first buckets from 80
// to 130, up to 300 buckets long), as the sealed cells hold them.
func randomHists(rng *rand.Rand, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		var h histogram
		lo := 80 + rng.IntN(50)
		most := []int64{200, 60000, 1 << 31, 1 << 40}[rng.IntN(4)]
		for b, end := lo, lo+1+rng.IntN(300); b < end; b++ {
			if rng.IntN(4) > 0 || b == lo {
				h.add(b, 1+rng.Int64N(most))
			}
		}
		out[i] = h.encode()
	}
	return out
}

// decodeBuckets reads an encoded histogram bucket by bucket, apart from
// addEncoded: the reference histogramAbove is checked against.
func decodeBuckets(t *testing.T, e []byte) map[int]int64 {
	t.Helper()
	w, lo := int(e[0]), int(binary.BigEndian.Uint16(e[1:]))
	out := map[int]int64{}
	for i := 0; 3+i*w < len(e); i++ {
		var buf [8]byte
		copy(buf[8-w:], e[3+i*w:3+(i+1)*w])
		out[lo+i] = int64(binary.BigEndian.Uint64(buf[:]))
	}
	return out
}

// histogramAbove is the sum of the histograms' buckets above floor, for
// floors below, inside and above their buckets.
func TestHistogramAbove(t *testing.T) {
	rng := rand.New(rand.NewPCG(20261202, 1))
	for round := range 300 {
		hists := randomHists(rng, rng.IntN(20))
		floor := 60 + rng.IntN(400)
		want := histogram{}
		for _, e := range hists {
			for b, n := range decodeBuckets(t, e) {
				if b > floor && n != 0 {
					want.add(b, n)
				}
			}
		}
		got, err := histogramAbove(hists, floor)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.encode(), want.encode()) {
			t.Fatalf("round %d, floor %d, %d histograms: got %v, want %v", round, floor, len(hists), got.encode(), want.encode())
		}
	}
	if _, err := histogramAbove([][]byte{{1, 0}}, 0); err == nil {
		t.Fatal("a truncated histogram was accepted")
	}
}

// BenchmarkHistogramAbove: one group of the grouped view with an elapsed
// filter below 0.25 s at 10 M rows (a week: about 15 sealed cells, each a
// histogram of about 250 buckets; the filter's bucket in their middle).
func BenchmarkHistogramAbove(b *testing.B) {
	hists := randomHists(rand.New(rand.NewPCG(1, 2)), 15)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := histogramAbove(hists, 236); err != nil {
			b.Fatal(err)
		}
	}
}
