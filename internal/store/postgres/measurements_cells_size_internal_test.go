package postgres

import (
	"fmt"
	"runtime"
	"testing"
)

// The size a kept tile counts against MEASUREMENTS_KEPT_CELLS_BYTES is the
// heap it holds: a tile of cells as pgx decodes them (a fresh allocation
// for each string and slice, appended one by one as readTiles does) is
// measured with the runtime's figures. Not parallel, so that no other test
// allocates meanwhile. Before the fix the tiles held 1.2 (20 buckets a
// cell) to 1.9 (one bucket) times the size they counted; now 0.94 to 1.0,
// and up to 1.16 for one bucket under -race (which packs no small
// allocations together).
func TestKeptTileSizeIsTheHeapItHolds(t *testing.T) {
	for _, buckets := range []int{1, 3, 20, 60} {
		const cells = 50_000
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tile := &keptTile{}
		for i := range cells {
			tile.cells = append(tile.cells, keptCell{
				name:    fmt.Sprintf("/api/product/%d/comments", i),
				method:  string([]byte("GET")),
				hist:    make([]byte, 3+buckets),
				buckets: make([]int16, buckets),
				counts:  make([]int64, buckets),
				sums:    make([]float64, buckets),
				mins:    make([]float64, buckets),
			})
		}
		tile.finish()
		runtime.GC()
		runtime.ReadMemStats(&after)
		held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		runtime.KeepAlive(tile)
		ratio := float64(held) / float64(tile.size)
		t.Logf("%d buckets a cell: counted %d bytes, heap %d (%.2f)", buckets, tile.size, held, ratio)
		if ratio > 1.2 || ratio < 0.8 {
			t.Errorf("%d buckets a cell: the tile counts %d bytes and holds %d (%.2f times)", buckets, tile.size, held, ratio)
		}
	}
}
