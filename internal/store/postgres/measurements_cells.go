package postgres

import (
	"cmp"
	"container/list"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// The grouped view without an app, and without an elapsed filter or with
// one below the slow-row threshold, reads most of its window from the
// sealed units' cells (groupPage: GroupMeasurementsPageSealed,
// GroupMeasurementsAboveSealed): at 10 M rows a week is 1,500-2,400 cells,
// about half of the statement's time. A sealed unit's cells do not change while it stays
// sealed: a build writes them with its seal, and a late batch or the next
// build deletes or replaces the seal (measurements_sealed.go). So the
// service keeps the cells it has read, per tile, keyed by the seal they
// were read under (its sealed_at and the row's xmin), and asks PostgreSQL
// only for the tiles, their seals and what no sealed tile holds
// (GroupMeasurementsAboveParts, GroupMeasurementsParts); it adds the cells up, ranks the groups and
// cuts the page itself. docs/measurements.md, "The sealed cells kept in
// memory".

// DefaultKeptCellsBytes bounds the memory the kept cells take unless
// Options.KeptCellsBytes says otherwise (about 7 MB for a week's window at
// 10 M rows, 20 MB for 30 days, as sizes were counted before keptTile.finish
// counted the heap, 1.2 to 1.9 times that now; more for a week ending just after midnight
// UTC, whose last day is still tiled by quarters, hours and bins); the least
// recently used tiles go first. A call may read a quarter of it (tilesOf):
// with 32 MiB the week ending at 00:10 UTC read more and fell back to the
// function after paying for its parts, p50 45.9 ms against 13.4-14.8 with 64
// or 256 MiB (forty-fifth session, docs/performance.md).
const DefaultKeptCellsBytes = 64 << 20

// cellTileKey names a tile's cells as of one seal: a tile resealed or
// unsealed and sealed again has another key, so cells kept under an older
// seal are never read again (the LRU drops them).
type cellTileKey struct {
	secs            int32
	start, sealedAt int64 // Unix microseconds, as PostgreSQL keeps them
	xmin            int64
}

func tileKeyOf(secs int32, start, sealedAt time.Time, xmin int64) cellTileKey {
	return cellTileKey{secs: secs, start: start.UnixMicro(), sealedAt: sealedAt.UnixMicro(), xmin: xmin}
}

// keptCell is one sealed cell as measurements_sealed_cells holds it: the
// whole histogram and the suffix statistics of migration 00027 (for each
// occupied bucket, ascending, the count, sum and least elapsed of the rows
// in it and every higher bucket).
type keptCell struct {
	name, method string
	count        int64
	sum          float64
	minElapsed   float64
	maxElapsed   float64
	hist         []byte
	buckets      []int16
	counts       []int64
	sums, mins   []float64
}

// size is the heap a kept cell holds beside its place in its tile's slice
// (which keptTile.finish counts): its seven allocations (the two strings
// and five slices pgx decoded), each rounded up as Go's allocator rounds
// it. Until 2026-12-06 a cell counted 96 bytes for its 208-byte struct, the
// slices' bytes unrounded and not the tile slice's spare capacity: the heap
// the tiles held was 1.2 times the bound for cells of 20 buckets and 1.9
// times for cells of one (a name and method with few rows in an hour), so
// the 64 MiB default could hold about 120 MiB against GOMEMLIMIT's 128
// (TestKeptTileSizeIsTheHeapItHolds).
func (c *keptCell) size() int64 {
	return allocSize(len(c.name)) + allocSize(len(c.method)) + allocSize(cap(c.hist)) +
		allocSize(2*cap(c.buckets)) + allocSize(8*cap(c.counts)) + allocSize(8*cap(c.sums)) + allocSize(8*cap(c.mins))
}

// allocSize is about what the Go allocator takes for n bytes without
// pointers: below 16 bytes they share 16-byte blocks (n rounded up to 8
// here), then n is rounded up to a sixteenth of the power of two at or
// above it, about the spacing of its size classes (16 up to 256, 32 up to
// 512, 64 up to 1024, ...).
func allocSize(n int) int64 {
	if n <= 0 {
		return 0
	}
	if n < 16 {
		return int64((n + 7) &^ 7)
	}
	step := max(16, (1<<bits.Len(uint(n-1)))/16)
	return int64((n + step - 1) / step * step)
}

type keptTile struct {
	key   cellTileKey
	cells []keptCell
	size  int64
}

// finish sorts a tile read from the database by name and method (a
// group's sums are then added in one order at every call, whatever order
// the rows came in), gives back its slice's spare capacity when it is more
// than an eighth (append doubles it, and a kept tile keeps it) and sets its
// size: the tile, its slice and cells, and about 64 bytes for its map
// entry and list element.
func (t *keptTile) finish() {
	slices.SortFunc(t.cells, func(a, b keptCell) int {
		return cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.method, b.method))
	})
	if cap(t.cells)-len(t.cells) > len(t.cells)/8 {
		t.cells = slices.Clone(t.cells)
	}
	t.size = int64(unsafe.Sizeof(*t)) + 64 + allocSize(cap(t.cells)*int(unsafe.Sizeof(keptCell{})))
	for i := range t.cells {
		t.size += t.cells[i].size()
	}
}

// cellCache is the kept tiles, least recently used last.
type cellCache struct {
	mu    sync.Mutex
	limit int64
	size  int64
	order list.List // of *keptTile, most recently used first
	tiles map[cellTileKey]*list.Element
	// byteOrder: 0 not known yet, 1 the database compares text as bytes
	// (the page can be ranked here), 2 it does not.
	byteOrder atomic.Int32
	// tileCap is the most tiles a call may use (maxKeptTiles, less for
	// tileCapFor after a call read more than its budget: see tilesOf);
	// cappedAt is when it was lowered (Unix nanoseconds).
	tileCap  atomic.Int32
	cappedAt atomic.Int64
}

// A call uses kept cells for at most maxKeptTiles tiles (a 30-day window
// has about 55, plus up to 11 bins sealed on their own at its end; a
// longer one is answered by the functions, which return only the page, not
// every cell). It reads the tiles it lacks
// tileReadChunk at a time, and gives up once it has read more than a
// quarter of the cache's bound with more still to read: the window's cells
// would not stay (many names and methods), and reading them every call
// would cost more than the functions. The tiles a call may then use are
// lowered to half of those it had reached, for tileCapFor, so that later
// calls of such windows go straight to the functions.
const (
	maxKeptTiles  = 80
	tileReadChunk = 8
	tileCapFor    = 10 * time.Minute
)

func newCellCache(limit int64) *cellCache {
	c := &cellCache{limit: limit, tiles: map[cellTileKey]*list.Element{}}
	c.tileCap.Store(maxKeptTiles)
	return c
}

// usableTiles is how many tiles a call may use now.
func (c *cellCache) usableTiles() int {
	if n := c.tileCap.Load(); n < maxKeptTiles {
		if time.Since(time.Unix(0, c.cappedAt.Load())) < tileCapFor {
			return int(n)
		}
		c.tileCap.Store(maxKeptTiles)
	}
	return maxKeptTiles
}

func (c *cellCache) get(k cellTileKey) (*keptTile, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.tiles[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*keptTile), true
}

func (c *cellCache) put(t *keptTile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.tiles[t.key]; ok || t.size > c.limit {
		return
	}
	c.tiles[t.key] = c.order.PushFront(t)
	c.size += t.size
	for c.size > c.limit {
		last := c.order.Back()
		old := last.Value.(*keptTile)
		c.order.Remove(last)
		delete(c.tiles, old.key)
		c.size -= old.size
	}
}

// len is the number of kept tiles (for the tests).
func (c *cellCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.tiles)
}

// rankable reports whether the database compares text as bytes, as Go's
// strings do, so that the groups can be ranked here in PostgreSQL's order
// (the tests', the benchmarks' and make run's clusters are created with
// --locale=C; a linguistic collation leaves the ranking to the function).
// Asked once; an error is not remembered.
func (c *cellCache) rankable(ctx context.Context, q *db.Queries) (bool, error) {
	switch c.byteOrder.Load() {
	case 1:
		return true, nil
	case 2:
		return false, nil
	}
	ok, err := q.DatabaseComparesBytes(ctx)
	if err != nil {
		return false, err
	}
	if ok {
		c.byteOrder.Store(1)
	} else {
		c.byteOrder.Store(2)
	}
	return ok, nil
}

// keptCellsGap, when set (tests), runs between a kept-cells call's parts
// statement and its first read of cells (tilesOf).
var keptCellsGap atomic.Pointer[func()]

// errUseFunction says the kept cells cannot answer a call (a tile's seal
// changed between the statements, or its window has too many tiles or
// cells to keep): the caller answers from the function instead.
var errUseFunction = errors.New("the kept sealed cells cannot answer")

// keptPart is what PostgreSQL answered for one (name, method) besides the
// sealed cells: its other parts added up, with their histograms (none with
// an elapsed filter) and the buckets of its rows read from the table.
type keptPart struct {
	name, method string
	count        int64
	sum          float64
	min, max     float64
	hists        [][]byte
	buckets      []int16
}

// keptTileRef is a tile named by a parts statement, with its seal.
type keptTileRef struct {
	secs            int32
	start, sealedAt time.Time
	xmin            int64
}

// tilesOf is the kept tiles named in refs, those not kept yet read from
// PostgreSQL and kept; errUseFunction when one's seal is no longer the one
// named, when refs are more than usableTiles, or when the tiles lacking
// are more than a call may read (see maxKeptTiles).
func (c *cellCache) tilesOf(ctx context.Context, q *db.Queries, refs []keptTileRef) ([]*keptTile, error) {
	if len(refs) > c.usableTiles() {
		return nil, errUseFunction
	}
	// In time order, whatever order the statement gave them in.
	slices.SortFunc(refs, func(a, b keptTileRef) int {
		return cmp.Or(a.start.Compare(b.start), cmp.Compare(a.secs, b.secs))
	})
	// The tiles in time order, whether kept or read now, so that a group's
	// cells are added in the same order at every call (on the primary as on
	// a replica); the rows' part is one sum per group, PostgreSQL's.
	tiles := make([]*keptTile, len(refs))
	var missing db.MeasurementSealedTileCellsParams
	var at []int // missing tile i is tiles[at[i]]
	for i, r := range refs {
		if t, ok := c.get(tileKeyOf(r.secs, r.start, r.sealedAt, r.xmin)); ok {
			tiles[i] = t
			continue
		}
		at = append(at, i)
		missing.TileSecs = append(missing.TileSecs, r.secs)
		missing.TileStarts = append(missing.TileStarts, r.start)
		missing.SealedAts = append(missing.SealedAts, r.sealedAt)
		missing.SealXmins = append(missing.SealXmins, r.xmin)
	}
	if len(at) == 0 {
		return tiles, nil
	}
	if gap := keptCellsGap.Load(); gap != nil {
		(*gap)()
	}
	var read int64
	for i := 0; i < len(at); i += tileReadChunk {
		j := min(i+tileReadChunk, len(at))
		chunk, size, err := c.readTiles(ctx, q, db.MeasurementSealedTileCellsParams{
			TileSecs: missing.TileSecs[i:j], TileStarts: missing.TileStarts[i:j],
			SealedAts: missing.SealedAts[i:j], SealXmins: missing.SealXmins[i:j]})
		if err != nil {
			return nil, err
		}
		for k, t := range chunk {
			tiles[at[i+k]] = t
		}
		read += size
		if read > c.limit/4 && j < len(at) {
			c.tileCap.Store(int32(max(1, (len(refs)-len(at)+j)/2)))
			c.cappedAt.Store(time.Now().UnixNano())
			return nil, errUseFunction
		}
	}
	return tiles, nil
}

// groupAboveKept answers groupAboveSealed's page from the kept cells and
// GroupMeasurementsAboveParts, or reports ok false when it cannot (the
// database does not compare text as bytes, or a tile's seal moved between
// the parts and its cells): the caller then runs groupAboveSealed.
func (c *cellCache) groupAboveKept(ctx context.Context, q *db.Queries, f store.MeasurementFilter, p db.GroupMeasurementsPageParams) (rows []db.GroupMeasurementsPageRow, ok bool, err error) {
	if ok, err := c.rankable(ctx, q); err != nil || !ok {
		return nil, false, err
	}
	parts, err := q.GroupMeasurementsAboveParts(ctx, db.GroupMeasurementsAbovePartsParams{
		StartedAt: f.StartedAt, EndedAt: f.EndedAt, MinElapsed: *f.MinElapsed, Name: p.Name, Methods: p.Methods,
	})
	if err != nil {
		return nil, false, err
	}
	var s partsOf
	floor := 0
	for _, r := range parts {
		floor = int(r.FloorBucket)
		s.add(keptTileRef{r.TileSecs, r.TileStart, r.SealedAt, r.SealXmin}, keptPart{name: r.Name, method: r.Method,
			count: r.Count, sum: r.SumElapsed, min: r.MinElapsed, max: r.MaxElapsed, buckets: r.Buckets})
	}
	return c.page(ctx, q, s.refs, s.others, p, floor)
}

// groupKept answers GroupMeasurementsPageSealed's page (no elapsed filter,
// no app) from the kept cells and GroupMeasurementsParts, or reports ok
// false when it cannot, as groupAboveKept does.
func (c *cellCache) groupKept(ctx context.Context, q *db.Queries, f store.MeasurementFilter, p db.GroupMeasurementsPageParams) (rows []db.GroupMeasurementsPageRow, ok bool, err error) {
	if ok, err := c.rankable(ctx, q); err != nil || !ok {
		return nil, false, err
	}
	parts, err := q.GroupMeasurementsParts(ctx, db.GroupMeasurementsPartsParams{
		H1: p.H1, H2: p.H2, H2Next: p.H2Next, D1: p.D1, D2: p.D2, A5: binCeil(f.StartedAt),
		StartedAt: p.StartedAt, EndedAt: p.EndedAt, Name: p.Name, Methods: p.Methods,
	})
	if err != nil {
		return nil, false, err
	}
	var s partsOf
	for _, r := range parts {
		s.add(keptTileRef{r.TileSecs, r.TileStart, r.SealedAt, r.SealXmin}, keptPart{name: r.Name, method: r.Method,
			count: r.Count, sum: r.SumElapsed, min: r.MinElapsed, max: r.MaxElapsed, hists: r.Hists, buckets: r.Buckets})
	}
	return c.page(ctx, q, s.refs, s.others, p, noFloor)
}

// partsOf sorts a parts statement's rows: a row naming a tile (tile secs
// not 0) is a sealed tile whose cells are kept or read, any other with
// rows is a (name, method)'s other parts.
type partsOf struct {
	refs   []keptTileRef
	others []keptPart
}

func (s *partsOf) add(tile keptTileRef, other keptPart) {
	if tile.secs != 0 {
		s.refs = append(s.refs, tile)
	} else if other.count > 0 {
		s.others = append(s.others, other)
	}
}

// page is groupAboveKept's and groupKept's answer from their parts: the
// tiles named in refs (kept or read now) added to the other parts, ranked
// and cut (addUpKept); ok false when the kept cells cannot answer.
func (c *cellCache) page(ctx context.Context, q *db.Queries, refs []keptTileRef, others []keptPart, p db.GroupMeasurementsPageParams, floor int) (rows []db.GroupMeasurementsPageRow, ok bool, err error) {
	tiles, err := c.tilesOf(ctx, q, refs)
	if err == errUseFunction {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	rows, err = addUpKept(tiles, others, p, floor)
	return rows, err == nil, err
}

// readTiles reads the cells of the tiles named in m under the seals named
// there and keeps them, with the bytes they take; errUseFunction when a
// tile is no longer sealed so.
func (c *cellCache) readTiles(ctx context.Context, q *db.Queries, m db.MeasurementSealedTileCellsParams) ([]*keptTile, int64, error) {
	rows, err := q.MeasurementSealedTileCells(ctx, m)
	if err != nil {
		return nil, 0, err
	}
	type at struct {
		secs  int32
		start int64
	}
	// The tiles in m's order (tilesOf places them by it).
	out := make([]*keptTile, len(m.TileSecs))
	index := make(map[at]int, len(m.TileSecs))
	for i := range m.TileSecs {
		index[at{m.TileSecs[i], m.TileStarts[i].UnixMicro()}] = i
		out[i] = &keptTile{key: tileKeyOf(m.TileSecs[i], m.TileStarts[i], m.SealedAts[i], m.SealXmins[i])}
	}
	seen := make([]bool, len(out))
	for _, r := range rows {
		i, ok := index[at{r.TileSecs, r.TileStart.UnixMicro()}]
		if !ok {
			return nil, 0, fmt.Errorf("sealed cells: tile %d s at %s not asked for", r.TileSecs, r.TileStart)
		}
		seen[i] = true
		if r.Name == nil {
			continue // sealed, without a cell
		}
		n := len(r.AboveBuckets)
		if r.Method == nil || r.Count == nil || r.SumElapsed == nil || r.MinElapsed == nil || r.MaxElapsed == nil ||
			n == 0 || len(r.AboveCounts) != n || len(r.AboveSums) != n || len(r.AboveMins) != n {
			return nil, 0, fmt.Errorf("sealed cell %s %s of tile %d s at %s: malformed", deref(r.Name), deref(r.Method), r.TileSecs, r.TileStart)
		}
		out[i].cells = append(out[i].cells, keptCell{name: *r.Name, method: *r.Method, count: *r.Count, sum: *r.SumElapsed,
			minElapsed: *r.MinElapsed, maxElapsed: *r.MaxElapsed, hist: r.Hist,
			buckets: r.AboveBuckets, counts: r.AboveCounts, sums: r.AboveSums, mins: r.AboveMins})
	}
	if slices.Contains(seen, false) {
		return nil, 0, errUseFunction
	}
	var size int64
	for _, t := range out {
		t.finish()
		c.put(t)
		size += t.size
	}
	return out, size, nil
}

func deref(s *string) string {
	if s == nil {
		return "<NULL>"
	}
	return *s
}

// keptGroup is one (name, method) of the page being added up.
type keptGroup struct {
	name, method string
	count        int64
	sum          float64
	min, max     float64
	hists        [][]byte // its cells' whole histograms
	edgeBuckets  []int16  // the buckets of its rows read from the table
}

// noFloor is addUpKept's floor without an elapsed filter: every cell
// counts whole.
const noFloor = -1

// addUpKept is the grouping, ranking and page of
// telemetry_measurements_grouped_above (floor: the filter's bucket B) or
// of telemetry_measurements_grouped (floor noFloor), over the kept tiles'
// cells and the other parts: with a floor each cell counts from its first
// occupied bucket above it on, as the function's width_bucket finds it,
// without one it counts whole. The groups are ranked by the page's sort
// key, then by name and method (descending for the name key descending),
// as PostgreSQL ranks them with a byte-order collation.
func addUpKept(tiles []*keptTile, parts []keptPart, p db.GroupMeasurementsPageParams, floor int) ([]db.GroupMeasurementsPageRow, error) {
	type gk struct{ name, method string }
	byKey := map[gk]*keptGroup{}
	groupOf := func(name, method string) *keptGroup {
		g := byKey[gk{name, method}]
		if g == nil {
			g = &keptGroup{name: name, method: method}
			byKey[gk{name, method}] = g
		}
		return g
	}
	add := func(g *keptGroup, n int64, sum, lo, hi float64) {
		if g.count == 0 {
			g.min, g.max = lo, hi
		} else {
			g.min, g.max = min(g.min, lo), max(g.max, hi)
		}
		g.count += n
		g.sum += sum
	}
	for _, t := range tiles {
		for i := range t.cells {
			c := &t.cells[i]
			if (p.Name != nil && c.name != *p.Name) || (len(p.Methods) > 0 && !slices.Contains(p.Methods, c.method)) {
				continue
			}
			if floor == noFloor {
				g := groupOf(c.name, c.method)
				add(g, c.count, c.sum, c.minElapsed, c.maxElapsed)
				g.hists = append(g.hists, c.hist)
				continue
			}
			k, _ := slices.BinarySearch(c.buckets, int16(floor+1))
			if k == len(c.buckets) {
				continue // no row of the cell above bucket B
			}
			g := groupOf(c.name, c.method)
			add(g, c.counts[k], c.sums[k], c.mins[k], c.maxElapsed)
			g.hists = append(g.hists, c.hist)
		}
	}
	for _, r := range parts {
		g := groupOf(r.name, r.method)
		add(g, r.count, r.sum, r.min, r.max)
		g.hists = append(g.hists, r.hists...)
		g.edgeBuckets = r.buckets
	}
	groups := make([]*keptGroup, 0, len(byKey))
	for _, g := range byKey {
		groups = append(groups, g)
	}
	value := func(g *keptGroup) float64 {
		switch p.SortKey {
		case "count":
			return float64(g.count)
		case "avgElapsed":
			return g.sum / float64(g.count)
		case "minElapsed":
			return g.min
		case "maxElapsed":
			return g.max
		}
		return 0
	}
	slices.SortFunc(groups, func(a, b *keptGroup) int {
		c := cmp.Compare(value(a), value(b))
		if p.SortKey == "name" && p.Descending {
			c = cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.method, b.method))
		}
		if p.Descending {
			c = -c
		}
		return cmp.Or(c, cmp.Compare(a.name, b.name), cmp.Compare(a.method, b.method))
	})
	total := int64(len(groups))
	lo := min(max(p.RowOffset, 0), total)
	hi := min(lo+max(p.RowLimit, 0), total)
	out := make([]db.GroupMeasurementsPageRow, 0, hi-lo)
	for _, g := range groups[lo:hi] {
		hists := g.hists
		if floor != noFloor {
			// The cells' buckets up to B count rows below the filter or
			// read from the table: one histogram of those above it.
			h, err := histogramAbove(g.hists, floor)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", g.name, g.method, err)
			}
			hists = nil
			if e := h.encode(); e != nil {
				hists = [][]byte{e}
			}
		}
		edges := g.edgeBuckets
		if edges == nil {
			edges = []int16{}
		}
		out = append(out, db.GroupMeasurementsPageRow{Name: g.name, Method: g.method, Count: g.count,
			AvgElapsed: g.sum / float64(g.count), MinElapsed: g.min, MaxElapsed: g.max, Total: total,
			Hists: hists, EdgeBuckets: edges})
	}
	return out, nil
}

// KeptCells is the heap the kept sealed cells hold now and their bound
// (MEASUREMENTS_KEPT_CELLS_BYTES), for /metrics; both 0 when none are kept.
func (s *Store) KeptCells() (size, limit int64) {
	c := s.Measurements.cells
	if c == nil {
		return 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size, c.limit
}
