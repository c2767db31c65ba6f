package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// Sealed units (migration 00023, queries/measurements_sealed.sql): the
// maintenance pass builds, for every closed UTC hour (with its twelve
// 5-minute bins), quarter of a UTC day and UTC day, the grouped view's
// statistics per (name, method) with their histogram, and the grouped
// measurements read a window's sealed units from them. The ingest never
// writes them: it takes the shared advisory lock of each hour, quarter and
// day its rows start in and deletes their seals, and a build holds the
// unit's exclusive lock, so a seal always matches the rows (the migration's
// comment has the argument).

// The advisory lock classes (the first key of the two-key form) of the
// sealed hours, days and quarters; the second key is the unit's number since
// the Unix epoch.
const (
	sealHourClass    int32 = 0x5e_a1_01
	sealDayClass     int32 = 0x5e_a1_02
	sealQuarterClass int32 = 0x5e_a1_03
)

// sealWidth is a kind of unit: its width in seconds, its lock class and
// the width of the unit that lock is of (a bin takes its hour's), and the
// widths of the cells a build of one writes, its bins' width first (an
// hour also its 5-minute bins).
type sealWidth struct {
	secs, class, lockSecs int32
	cells                 []int32
}

// sealWidths are the kinds of unit: hours, quarters, days.
var sealWidths = []sealWidth{
	{3600, sealHourClass, 3600, []int32{300, 3600}},
	{21600, sealQuarterClass, 21600, []int32{21600}},
	{86400, sealDayClass, 86400, []int32{86400}},
}

// sealBin is a 5-minute bin sealed on its own while its hour is not
// (migration 00048), so that a window's unsealed tail is SealDelay plus
// at most 5 minutes instead of up to an hour more. It is built under its
// hour's lock, which the ingest takes for the bin's rows already; a build
// of the hour deletes the bin's own seal.
var sealBin = sealWidth{300, sealHourClass, 3600, []int32{300}}

// SealDelay is how long after its end a unit is sealed: batches that arrive
// later than that for it unseal it again (it is then read from
// the rollups until the next pass seals it anew).
const SealDelay = 15 * time.Minute

// maxSealsPerPass bounds a pass's work on the seals (a first pass on a
// large table catches up over several passes).
const maxSealsPerPass = 2000

// sealUnits is the hours, quarters and days records start in, ascending,
// as their lock keys and start times, and their 5-minute bins' starts.
type sealUnits struct {
	keys   [3][]int32
	starts [3][]time.Time
	bins   []time.Time
}

func unitsOf(recs []store.Measurement) sealUnits {
	var u sealUnits
	for i, w := range sealWidths {
		for _, n := range unitNumbers(recs, int64(w.secs)) {
			u.keys[i] = append(u.keys[i], lockKey(n))
			u.starts[i] = append(u.starts[i], time.Unix(n*int64(w.secs), 0).UTC())
		}
	}
	for _, n := range unitNumbers(recs, int64(sealBin.secs)) {
		u.bins = append(u.bins, time.Unix(n*int64(sealBin.secs), 0).UTC())
	}
	return u
}

// unitNumbers is the distinct units of secs seconds (numbered from the Unix
// epoch) that records start in, ascending.
func unitNumbers(recs []store.Measurement, secs int64) []int64 {
	// A batch's records mostly come in time order: only the changes of
	// unit are kept before sorting.
	var ns []int64
	for j := range recs {
		if n := floorDiv(recs[j].StartedAt.Unix(), secs); len(ns) == 0 || ns[len(ns)-1] != n {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return slices.Compact(ns)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// lockKey is a unit number as the int4 second key of the lock: exact for
// hours within 245,000 years of 1970; beyond, units share keys, which only
// makes a batch and a build wait for each other.
func lockKey(n int64) int32 {
	return int32(min(max(n, math.MinInt32), math.MaxInt32))
}

// unseal queues, into the ingest transaction's last batch, the shared locks
// on the batch's units and the deletion of their seals.
func unseal(ctx context.Context, q *db.Queries, recs []store.Measurement) {
	if len(recs) == 0 {
		return
	}
	u := unitsOf(recs)
	_ = q.LockMeasurementUnitsShared(ctx, db.LockMeasurementUnitsSharedParams{
		HourClass: sealHourClass, Hours: u.keys[0], QuarterClass: sealQuarterClass, Quarters: u.keys[1],
		DayClass: sealDayClass, Days: u.keys[2]})
	_ = q.UnsealMeasurementUnits(ctx, db.UnsealMeasurementUnitsParams{Hours: u.starts[0], Quarters: u.starts[1], Days: u.starts[2], Bins: u.bins})
}

// SealResult is what a call of Seal did: the units it sealed (Bins: the
// 5-minute bins sealed on their own).
type SealResult struct {
	Hours, Quarters, Days, Bins int64
}

// Units is the number of units sealed, bins included.
func (r SealResult) Units() int64 { return r.Hours + r.Quarters + r.Days + r.Bins }

// Seal builds the seals of the closed hours, quarters and days (ended
// SealDelay before now) from the first hour of the hourly rollup or from keepFrom on,
// whichever is later, and not before the first row that may have been
// expired, then those of the closed 5-minute bins of the hour that is not
// closed yet: at most maxSealsPerPass units, each in its own transaction.
// renew is called between units (the maintenance lease).
func (m *Measurements) Seal(ctx context.Context, now, keepFrom time.Time, renew func(context.Context) error) (SealResult, error) {
	var res SealResult
	q := db.New(customPlans{m.pool})
	first, err := q.FirstMeasurementHour(ctx)
	// No row back: no measurements.
	if err = wrap("seal measurements", err); errors.Is(err, store.ErrNotFound) {
		return res, nil
	}
	if err != nil {
		return res, err
	}
	kept, err := q.MeasurementRowsKeptSince(ctx)
	if err != nil {
		return res, err
	}
	// build seals the units of kind u starting at starts, counting those
	// built in count.
	build := func(u sealWidth, starts []time.Time, count *int64) error {
		for _, s := range starts {
			if err := renew(ctx); err != nil {
				return err
			}
			built, err := m.sealUnit(ctx, u, s)
			if err != nil {
				return fmt.Errorf("seal %s (%d s): %w", s.Format(time.RFC3339), u.secs, err)
			}
			if built {
				*count++
			}
		}
		return nil
	}
	counts := []*int64{&res.Hours, &res.Quarters, &res.Days}
	for i, u := range sealWidths {
		// From the first unit with rows, but only whole units after the
		// rollups' and the rows' retention marks.
		w := time.Duration(u.secs) * time.Second
		from := wholeAfter(first.UTC().Truncate(w), w, keepFrom, kept)
		until := now.Add(-SealDelay).UTC().Truncate(w)
		if !from.Before(until) {
			continue
		}
		left := maxSealsPerPass - int32(res.Units())
		if left <= 0 {
			break
		}
		starts, err := q.MeasurementUnitsToSeal(ctx, db.MeasurementUnitsToSealParams{Since: from, Until: until, Width: u.secs, MaxUnits: left})
		if err != nil {
			return res, err
		}
		if err := build(u, starts, counts[i]); err != nil {
			return res, err
		}
	}
	// The bins of the hour that ended less than SealDelay ago, or has not
	// ended: every hour before it is closed and sealed above (or read from
	// the rollups when the pass ran out of units).
	until := now.Add(-SealDelay).UTC().Truncate(5 * time.Minute)
	from := wholeAfter(until.Truncate(time.Hour), 5*time.Minute, first, keepFrom, kept)
	left := maxSealsPerPass - int32(res.Units())
	if !from.Before(until) || left <= 0 {
		return res, nil
	}
	starts, err := q.MeasurementBinsToSeal(ctx, db.MeasurementBinsToSealParams{Since: from, Until: until, MaxUnits: left})
	if err != nil {
		return res, err
	}
	err = build(sealBin, starts, &res.Bins)
	return res, err
}

// wholeAfter is from, or the start of the first whole unit of w after the
// latest of marks when that is later (a zero mark is none).
func wholeAfter(from time.Time, w time.Duration, marks ...time.Time) time.Time {
	for _, mark := range marks {
		if m := mark.UTC().Truncate(w); m.Before(mark) {
			mark = m.Add(w)
		}
		if mark.After(from) {
			from = mark
		}
	}
	return from
}

// sealUnit builds one unit in one transaction: its exclusive lock, then
// (in statements after it, so that every batch that held the shared lock
// has committed and is seen) its cells from one read of its rows and its
// seal. An hour also gets the cells of its 5-minute bins (and drops their
// own seals). A bin whose hour is sealed is not built (built false): the
// hour's cells hold it.
func (m *Measurements) sealUnit(ctx context.Context, u sealWidth, start time.Time) (built bool, err error) {
	until := start.Add(time.Duration(u.secs) * time.Second)
	// Custom plans (customPlans): a generic plan of these statements does
	// not know how narrow the unit's range is and was seen reading the
	// whole table (4 s an hour at 10 M rows).
	err = pgx.BeginFunc(ctx, m.pool, func(tx pgx.Tx) error {
		q := db.New(customPlans{tx})
		if err := q.LockMeasurementUnit(ctx, db.LockMeasurementUnitParams{Class: u.class, ID: lockKey(floorDiv(start.Unix(), int64(u.lockSecs)))}); err != nil {
			return err
		}
		if u.lockSecs != u.secs {
			sealed, err := q.MeasurementHourSealed(ctx, start.Truncate(time.Duration(u.lockSecs)*time.Second))
			if err != nil || sealed {
				return err
			}
		}
		built = true
		if err := q.DeleteMeasurementSealedCells(ctx, db.DeleteMeasurementSealedCellsParams{Widths: u.cells, Since: start, Until: until}); err != nil {
			return err
		}
		rows, err := q.MeasurementUnitBuckets(ctx, db.MeasurementUnitBucketsParams{BinWidth: u.cells[0], Width: u.secs, UnitStart: start})
		if err != nil {
			return err
		}
		cells, totals, last := sealedCellsOf(rows, u.cells[0], u.secs, start)
		if len(cells) > 0 {
			if _, err := q.InsertMeasurementSealedCells(ctx, cells); err != nil {
				return err
			}
		}
		if err := q.InsertMeasurementSealedTotals(ctx, totals); err != nil {
			return err
		}
		return q.SealMeasurementUnit(ctx, db.SealMeasurementUnitParams{Width: u.secs, UnitStart: start, MaxEndedAt: last})
	})
	return built && err == nil, err
}

// sealedCell is a cell of measurements_sealed_cells being added up, with
// the sum and minimum of its rows per histogram bucket (migration 00027).
type sealedCell struct {
	count             int64
	sum, minEl, maxEl float64
	hist              histogram
	buckets           map[int16]bucketStat
}

// bucketStat is the sum and minimum of elapsed of a cell's rows in a bucket.
type bucketStat struct{ sum, min float64 }

// addBucket adds n rows of bucket b with their sum and minimum.
func (c *sealedCell) addBucket(b int16, n int64, sum, minEl float64) {
	c.hist.add(int(b), n)
	if c.buckets == nil {
		c.buckets = map[int16]bucketStat{}
	}
	s, ok := c.buckets[b]
	if !ok {
		s.min = minEl
	}
	s.sum += sum
	s.min = min(s.min, minEl)
	c.buckets[b] = s
}

// above sets the cell's suffix statistics of migration 00027: for each
// occupied bucket, ascending, the count, sum and minimum of the rows in it
// and every higher one.
func (c *sealedCell) above(p *db.InsertMeasurementSealedCellsParams) {
	bs := make([]int16, 0, len(c.buckets))
	for b := range c.buckets {
		bs = append(bs, b)
	}
	slices.Sort(bs)
	n := len(bs)
	p.AboveBuckets, p.AboveCounts = bs, make([]int64, n)
	p.AboveSums, p.AboveMins = make([]float64, n), make([]float64, n)
	var count int64
	var sum float64
	low := math.Inf(1)
	for i := n - 1; i >= 0; i-- {
		s := c.buckets[bs[i]]
		count += c.hist.counts[int(bs[i])-c.hist.lo]
		sum += s.sum
		low = min(low, s.min)
		p.AboveCounts[i], p.AboveSums[i], p.AboveMins[i] = count, sum, low
	}
}

// sealedCellsOf adds a unit's bucket counts (MeasurementUnitBuckets, per
// bin of binWidth seconds) up into the cells of its bins and, when the bins
// are smaller than the unit, of the unit, with their histograms encoded and
// their per-bucket suffix statistics (migration 00027), in key order, and into the totals of the same bins and unit, all names and
// methods together (migration 00026): one for each bin and for the unit,
// empty ones with a count of 0 and no histogram, in width then time order.
// last is the latest end of the unit's rows (nil for none).
func sealedCellsOf(rows []db.MeasurementUnitBucketsRow, binWidth, width int32, start time.Time) ([]db.InsertMeasurementSealedCellsParams, db.InsertMeasurementSealedTotalsParams, *time.Time) {
	type unit struct {
		secs  int32
		start int64
	}
	type key struct {
		unit
		name, method string
	}
	cells := map[key]*sealedCell{}
	totals := map[unit]*sealedCell{}
	add := func(k key, r *db.MeasurementUnitBucketsRow) {
		c := cells[k]
		if c == nil {
			c = &sealedCell{minEl: r.MinElapsed, maxEl: r.MaxElapsed}
			cells[k] = c
		}
		c.count += r.N
		c.sum += r.SumElapsed
		c.minEl, c.maxEl = min(c.minEl, r.MinElapsed), max(c.maxEl, r.MaxElapsed)
		c.addBucket(r.Bucket, r.N, r.SumElapsed, r.MinElapsed)
		t := totals[k.unit]
		if t == nil {
			t = &sealedCell{}
			totals[k.unit] = t
		}
		t.count += r.N
		t.hist.add(int(r.Bucket), r.N)
	}
	var last *time.Time
	for i := range rows {
		r := &rows[i]
		add(key{unit{binWidth, r.Bin.Unix()}, r.Name, r.Method}, r)
		if binWidth < width {
			add(key{unit{width, start.Unix()}, r.Name, r.Method}, r)
		}
		if last == nil || r.LastEnd.After(*last) {
			last = &r.LastEnd
		}
	}
	keys := make([]key, 0, len(cells))
	for k := range cells {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		switch {
		case a.secs != b.secs:
			return int(a.secs - b.secs)
		case a.start != b.start:
			return cmp.Compare(a.start, b.start)
		case a.name != b.name:
			return strings.Compare(a.name, b.name)
		}
		return strings.Compare(a.method, b.method)
	})
	p := make([]db.InsertMeasurementSealedCellsParams, len(keys))
	for i, k := range keys {
		c := cells[k] // every row counts at least one measurement: never an empty histogram
		p[i] = db.InsertMeasurementSealedCellsParams{
			UnitSecs: k.secs, UnitStart: time.Unix(k.start, 0).UTC(), Name: k.name, Method: k.method,
			Count: c.count, SumElapsed: c.sum, MinElapsed: c.minEl, MaxElapsed: c.maxEl, Hist: c.hist.encode(),
		}
		c.above(&p[i])
	}
	var t db.InsertMeasurementSealedTotalsParams
	addTotal := func(u unit) {
		c := totals[u]
		if c == nil {
			c = &sealedCell{} // empty: count 0, no histogram
		}
		t.UnitSecs, t.UnitStarts = append(t.UnitSecs, u.secs), append(t.UnitStarts, time.Unix(u.start, 0).UTC())
		t.Counts, t.Hists = append(t.Counts, c.count), append(t.Hists, c.hist.encode())
	}
	if binWidth < width {
		for b := start.Unix(); b < start.Unix()+int64(width); b += int64(binWidth) {
			addTotal(unit{binWidth, b})
		}
	}
	addTotal(unit{width, start.Unix()})
	return p, t, last
}

// groupPage runs GroupMeasurementsPage, or its sealed form when the filter
// has no app (the sealed units hold none): GroupMeasurementsPageSealed
// without an elapsed bound, GroupMeasurementsAboveSealed with one below the
// slow-row threshold.
func groupPage(ctx context.Context, q *db.Queries, f store.MeasurementFilter, p db.GroupMeasurementsPageParams) ([]db.GroupMeasurementsPageRow, error) {
	if f.App == nil && bucketFloor(f) != nil {
		return groupAboveSealed(ctx, q, f, p)
	}
	if f.App != nil || f.MinElapsed != nil {
		return q.GroupMeasurementsPage(ctx, p)
	}
	rows, err := q.GroupMeasurementsPageSealed(ctx, db.GroupMeasurementsPageSealedParams{
		H1: p.H1, H2: p.H2, H2Next: p.H2Next, D1: p.D1, D2: p.D2, A5: binCeil(f.StartedAt),
		StartedAt: p.StartedAt, EndedAt: p.EndedAt, Name: p.Name, Methods: p.Methods,
		SortKey: p.SortKey, Descending: p.Descending, RowOffset: p.RowOffset, RowLimit: p.RowLimit,
	})
	if err != nil {
		return nil, err
	}
	out := make([]db.GroupMeasurementsPageRow, len(rows))
	for i, r := range rows {
		out[i] = db.GroupMeasurementsPageRow(r)
	}
	return out, nil
}

// groupPage is groupPage with the kept sealed cells where they answer:
// no app, and no elapsed filter or one below the slow-row threshold
// (measurements_cells.go).
func (m *Measurements) groupPage(ctx context.Context, q *db.Queries, f store.MeasurementFilter, p db.GroupMeasurementsPageParams) ([]db.GroupMeasurementsPageRow, error) {
	if f.App == nil && m.cells != nil {
		var rows []db.GroupMeasurementsPageRow
		ok, err := false, error(nil)
		switch {
		case bucketFloor(f) != nil:
			rows, ok, err = m.cells.groupAboveKept(ctx, q, f, p)
		case f.MinElapsed == nil:
			rows, ok, err = m.cells.groupKept(ctx, q, f, p)
		}
		if err != nil || ok {
			return rows, err
		}
	}
	return groupPage(ctx, q, f, p)
}

// groupAboveSealed runs GroupMeasurementsAboveSealed. Its histograms are
// the page's groups' sealed cells from their first bucket above the
// filter's own (floor_bucket, bucketed in SQL as the cells were; the
// buckets up to it count rows below the filter or already read from the
// rows, and the function cuts them off since migration 00036): each
// group's are added up here into one histogram, by histogramAbove, which
// would still skip such buckets.
func groupAboveSealed(ctx context.Context, q *db.Queries, f store.MeasurementFilter, p db.GroupMeasurementsPageParams) ([]db.GroupMeasurementsPageRow, error) {
	rows, err := q.GroupMeasurementsAboveSealed(ctx, db.GroupMeasurementsAboveSealedParams{
		StartedAt: f.StartedAt, EndedAt: f.EndedAt, MinElapsed: *f.MinElapsed, Name: p.Name, Methods: p.Methods,
		SortKey: p.SortKey, Descending: p.Descending, RowOffset: p.RowOffset, RowLimit: p.RowLimit,
	})
	if err != nil {
		return nil, err
	}
	out := make([]db.GroupMeasurementsPageRow, len(rows))
	for i, r := range rows {
		h, err := histogramAbove(r.Hists, int(r.FloorBucket))
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.Name, r.Method, err)
		}
		var hists [][]byte
		if e := h.encode(); e != nil {
			hists = [][]byte{e}
		}
		out[i] = db.GroupMeasurementsPageRow{Name: r.Name, Method: r.Method, Count: r.Count,
			AvgElapsed: r.AvgElapsed, MinElapsed: r.MinElapsed, MaxElapsed: r.MaxElapsed, Total: r.Total,
			Hists: hists, EdgeBuckets: r.EdgeBuckets}
	}
	return out, nil
}

// binCeil is t rounded up to the 5-minute bins of the sealed hours.
func binCeil(t time.Time) time.Time {
	b := t.UTC().Truncate(5 * time.Minute)
	if b.Before(t) {
		b = b.Add(5 * time.Minute)
	}
	return b
}
