package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// The grouped measurements' percentiles come from elapsed histograms kept
// beside the rollups (measurements_hourly_hist, measurements_daily_hist):
// per cell, the count of measurements in each bucket of a fixed log scale,
// one row per cell with the counts encoded in one bytea (migration 00013).
// A window's histogram is the sum of its cells' (and of the partial hours'
// rows, bucketed by the same function in SQL), merged here, so a percentile
// costs one read of the page's groups' cells whatever the number of rows,
// and keeps answering after raw rows expire.
//
// Bucket 0 holds elapsed <= histFloor; bucket b >= 1 holds
// [histFloor*histRatio^(b-1), histFloor*histRatio^b). A percentile is the
// bucket holding its rank, answered as the point of the bucket equally far
// (relatively) from both ends, 2*lo*histRatio/(histRatio+1), then clamped
// to the group's exact min and max. The true value at that rank is in the
// same bucket, so for elapsed above histFloor the relative error is at most
// (histRatio-1)/(histRatio+1) = store.PercentileRelativeError (2.44 %); at
// or below histFloor the error is at most histFloor in absolute terms.
const (
	histFloor = 1e-6
	histRatio = 1.05
)

// elapsedBucket is telemetry_elapsed_bucket (migration 00010) in Go.
func elapsedBucket(e float64) int16 {
	if !(e > histFloor) {
		return 0
	}
	return int16(min(1+math.Floor(math.Log(e/histFloor)/math.Log(histRatio)), math.MaxInt16))
}

// bucketValue is the value a percentile falling in bucket b is answered with.
func bucketValue(b int) float64 {
	if b <= 0 {
		return 0 // clamped to the group's min by the caller
	}
	lo := histFloor * math.Pow(histRatio, float64(b-1))
	return 2 * lo * histRatio / (histRatio + 1)
}

// histogram is the counts of the buckets lo, lo+1, ...; the zero value is
// empty. It grows both ways as buckets are added.
type histogram struct {
	lo     int
	counts []int64
}

// add adds n measurements to bucket b.
func (h *histogram) add(b int, n int64) {
	switch {
	case len(h.counts) == 0:
		h.lo, h.counts = b, append(h.counts[:0], n)
		return
	case b < h.lo:
		grown := make([]int64, h.lo-b+len(h.counts))
		copy(grown[h.lo-b:], h.counts)
		h.lo, h.counts = b, grown
	case b >= h.lo+len(h.counts):
		h.counts = append(h.counts, make([]int64, b-h.lo-len(h.counts)+1)...)
	}
	h.counts[b-h.lo] += n
}

// merge adds o's counts.
func (h *histogram) merge(o *histogram) {
	if len(o.counts) == 0 {
		return
	}
	// Grow once to cover o, then add in place.
	h.add(o.lo, 0)
	h.add(o.lo+len(o.counts)-1, 0)
	for i, n := range o.counts {
		h.counts[o.lo-h.lo+i] += n
	}
}

// errHistEncoding is a hist value that is not in the encoding of migration
// 00013 (only a bug or a hand edit makes one).
var errHistEncoding = errors.New("malformed elapsed histogram")

// encode is h in the encoding of migration 00013: the width w of each
// count, the first occupied bucket (2 bytes), then one w-byte count per
// bucket up to the last occupied one, all big-endian. telemetry_hist_encode
// (SQL) gives the same bytes. An empty histogram has no encoding (nil).
func (h *histogram) encode() []byte {
	first, last := -1, -1
	var most int64
	for i, n := range h.counts {
		if n != 0 {
			if first < 0 {
				first = i
			}
			last, most = i, max(most, n)
		}
	}
	if first < 0 {
		return nil
	}
	w := 8
	switch {
	case most < 1<<8:
		w = 1
	case most < 1<<16:
		w = 2
	case most < 1<<32:
		w = 4
	}
	out := make([]byte, 3+w*(last-first+1))
	out[0] = byte(w)
	binary.BigEndian.PutUint16(out[1:], uint16(h.lo+first))
	var buf [8]byte
	for i, n := range h.counts[first : last+1] {
		binary.BigEndian.PutUint64(buf[:], uint64(n))
		copy(out[3+i*w:], buf[8-w:])
	}
	return out
}

// addEncoded adds the counts of an encoded histogram.
func (h *histogram) addEncoded(b []byte) error {
	w, lo, n, err := histHeader(b)
	if err != nil {
		return err
	}
	h.add(lo, 0)
	h.add(lo+n-1, 0)
	return addCounts(h.counts[lo-h.lo:], b[3:], w)
}

// addCounts adds the w-byte big-endian counts of body to c, one by one.
func addCounts(c []int64, body []byte, w int) error {
	switch w {
	case 1:
		for i, v := range body {
			c[i] += int64(v)
		}
	case 2:
		for i := range len(body) / 2 {
			c[i] += int64(binary.BigEndian.Uint16(body[2*i:]))
		}
	case 4:
		for i := range len(body) / 4 {
			c[i] += int64(binary.BigEndian.Uint32(body[4*i:]))
		}
	case 8:
		for i := range len(body) / 8 {
			v := binary.BigEndian.Uint64(body[8*i:])
			if v > math.MaxInt64 {
				return errHistEncoding
			}
			c[i] += int64(v)
		}
	}
	return nil
}

// histogramAbove adds up encoded histograms without their buckets up to
// floor: the higher buckets that the sealed units answer for an elapsed
// filter whose own bucket is floor (CountMeasurementsAboveSealed,
// GroupMeasurementsAboveSealed). It reads each histogram's header first and
// allocates the sum once, from floor+1 to the highest bucket (adding them
// whole grew the sum again for each histogram that started lower, and kept
// the buckets below the filter).
func histogramAbove(encoded [][]byte, floor int) (histogram, error) {
	lo, hi := floor+1, floor
	for _, e := range encoded {
		_, first, n, err := histHeader(e)
		if err != nil {
			return histogram{}, err
		}
		hi = max(hi, first+n-1)
	}
	if hi < lo {
		return histogram{}, nil
	}
	h := histogram{lo: lo, counts: make([]int64, hi-lo+1)}
	for _, e := range encoded {
		w, first, n, _ := histHeader(e)
		skip := max(lo-first, 0)
		if skip >= n {
			continue
		}
		if err := addCounts(h.counts[first+skip-lo:], e[3+skip*w:], w); err != nil {
			return histogram{}, err
		}
	}
	return h, nil
}

// histHeader is an encoded histogram's count width, first bucket and
// number of buckets (the encoding of migration 00013; see encode).
func histHeader(b []byte) (w, first, n int, err error) {
	if len(b) < 4 {
		return 0, 0, 0, errHistEncoding
	}
	w = int(b[0])
	if (w != 1 && w != 2 && w != 4 && w != 8) || (len(b)-3)%w != 0 {
		return 0, 0, 0, errHistEncoding
	}
	return w, int(binary.BigEndian.Uint16(b[1:])), (len(b) - 3) / w, nil
}

// percentile is the nearest-rank q-quantile (as PostgreSQL's
// percentile_disc: the smallest value whose cumulative share is >= q) of a
// histogram, clamped to [lo, hi]. ok is false for an empty histogram.
func percentile(h *histogram, q, lo, hi float64) (v float64, ok bool) {
	var n int64
	for _, c := range h.counts {
		n += c
	}
	if n == 0 {
		return 0, false
	}
	rank := max(int64(math.Ceil(q*float64(n))), 1)
	// The extreme ranks are the exact min and max the rollups keep.
	switch rank {
	case 1:
		return lo, true
	case n:
		return hi, true
	}
	var seen int64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			return min(max(bucketValue(h.lo+i), lo), hi), true
		}
	}
	return hi, true
}

// histCells is a batch's elapsed histograms per measurements_hourly cell
// (start and end hours, app, name, method): what the ingest transaction
// hands to writeHistograms.
type histCells map[cellKey]*histogram

// histOf is a batch's histograms per hourly cell.
func histOf(recs []store.Measurement) histCells {
	cells := make(histCells)
	for i := range recs {
		r := &recs[i]
		k := cellKey{hourOf(r.StartedAt).Unix(), hourOf(r.EndedAt).Unix(), r.App, r.Name, r.Method}
		h := cells[k]
		if h == nil {
			h = &histogram{}
			cells[k] = h
		}
		h.add(int(elapsedBucket(r.Elapsed)), 1)
	}
	return cells
}

// daily folds hourly cells into the cells of measurements_daily_hist.
func (hourly histCells) daily() histCells {
	const day = 86400
	out := make(histCells)
	for k, h := range hourly {
		d := cellKey{k.start - k.start%day, k.end - k.end%day, k.app, k.name, k.method}
		if have := out[d]; have != nil {
			have.merge(h)
		} else {
			c := &histogram{}
			c.merge(h)
			out[d] = c
		}
	}
	return out
}

// keyed is the cells' keys in key order, as the parallel arrays of the
// queries.
type keyed struct {
	starts, ends         []time.Time
	apps, names, methods []string
}

func keyedOf(cells histCells) keyed {
	var k keyed
	for _, key := range sortedKeys(cells) {
		k.starts, k.ends = append(k.starts, time.Unix(key.start, 0).UTC()), append(k.ends, time.Unix(key.end, 0).UTC())
		k.apps, k.names, k.methods = append(k.apps, key.app), append(k.names, key.name), append(k.methods, key.method)
	}
	return k
}

// batchSender sends a pgx.Batch on the caller's transaction (a pooled
// connection in one).
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// writeHistograms adds a batch's histograms (per hourly cell; the daily
// cells are folded from them) to measurements_hourly_hist and
// measurements_daily_hist in the caller's transaction, as
// queries/measurements_percentiles.sql describes: of each cell, the parts
// no concurrent batch holds are locked and read (one round trip, never
// waiting on another batch), the batch's counts are added in Go to one of
// them, and the sums are written back by statements queued into next, the
// caller's batch of the statements that follow (the rollups). A cell with
// no free part gets a new one (one more round trip, only then).
func writeHistograms(ctx context.Context, tx batchSender, hourly histCells, next *pgx.Batch) error {
	if len(hourly) == 0 {
		return nil
	}
	dcells := hourly.daily()
	h, d := keyedOf(hourly), keyedOf(dcells)
	var batch pgx.Batch
	qq := db.New(queued{&batch})
	_, _ = qq.LockMeasurementHourlyHist(ctx, db.LockMeasurementHourlyHistParams{StartHours: h.starts, EndHours: h.ends,
		Apps: h.apps, Names: h.names, Methods: h.methods})
	_, _ = qq.LockMeasurementDailyHist(ctx, db.LockMeasurementDailyHistParams{StartDays: d.starts, EndDays: d.ends,
		Apps: d.apps, Names: d.names, Methods: d.methods})
	br := tx.SendBatch(ctx, &batch)
	qr := db.New(replayed{br})
	var hourlyParts, dailyParts []histPart
	err := func() error {
		locked, err := qr.LockMeasurementHourlyHist(ctx, db.LockMeasurementHourlyHistParams{})
		if err != nil {
			return err
		}
		for _, r := range locked {
			hourlyParts = append(hourlyParts, histPart{cellKey{r.StartHour.Unix(), r.EndHour.Unix(), r.App, r.Name, r.Method}, r.Part, r.Hist})
		}
		dlocked, err := qr.LockMeasurementDailyHist(ctx, db.LockMeasurementDailyHistParams{})
		if err != nil {
			return err
		}
		for _, r := range dlocked {
			dailyParts = append(dailyParts, histPart{cellKey{r.StartDay.Unix(), r.EndDay.Unix(), r.App, r.Name, r.Method}, r.Part, r.Hist})
		}
		return nil
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("histograms: %w", err)
	}
	hourlySet, hourlyNew, err := addToParts(hourly, hourlyParts)
	if err != nil {
		return fmt.Errorf("hourly histograms: %w", err)
	}
	dailySet, dailyNew, err := addToParts(dcells, dailyParts)
	if err != nil {
		return fmt.Errorf("daily histograms: %w", err)
	}
	// New parts: a random number each, again for any the insert skipped (a
	// number another batch took at the same moment).
	for try := 0; len(hourlyNew)+len(dailyNew) > 0; try++ {
		if try == 10 {
			return fmt.Errorf("histograms: no free part number for %d cells after %d tries", len(hourlyNew)+len(dailyNew), try)
		}
		batch = pgx.Batch{}
		hn, dn := partsParams(hourlyNew), partsParams(dailyNew)
		if len(hourlyNew) > 0 {
			_, _ = qq.InsertMeasurementHourlyHist(ctx, db.InsertMeasurementHourlyHistParams{StartHours: hn.starts, EndHours: hn.ends,
				Apps: hn.apps, Names: hn.names, Methods: hn.methods, Parts: hn.parts, Hists: hn.hists})
		}
		if len(dailyNew) > 0 {
			_, _ = qq.InsertMeasurementDailyHist(ctx, db.InsertMeasurementDailyHistParams{StartDays: dn.starts, EndDays: dn.ends,
				Apps: dn.apps, Names: dn.names, Methods: dn.methods, Parts: dn.parts, Hists: dn.hists})
		}
		br := tx.SendBatch(ctx, &batch)
		qr := db.New(replayed{br})
		err := func() error {
			if len(hourlyNew) > 0 {
				rows, err := qr.InsertMeasurementHourlyHist(ctx, db.InsertMeasurementHourlyHistParams{})
				if err != nil {
					return err
				}
				done := make(map[cellKey]bool, len(rows))
				for _, r := range rows {
					done[cellKey{r.StartHour.Unix(), r.EndHour.Unix(), r.App, r.Name, r.Method}] = true
				}
				hourlyNew = slices.DeleteFunc(hourlyNew, func(p histPart) bool { return done[p.key] })
			}
			if len(dailyNew) > 0 {
				rows, err := qr.InsertMeasurementDailyHist(ctx, db.InsertMeasurementDailyHistParams{})
				if err != nil {
					return err
				}
				done := make(map[cellKey]bool, len(rows))
				for _, r := range rows {
					done[cellKey{r.StartDay.Unix(), r.EndDay.Unix(), r.App, r.Name, r.Method}] = true
				}
				dailyNew = slices.DeleteFunc(dailyNew, func(p histPart) bool { return done[p.key] })
			}
			return nil
		}()
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("histograms: %w", err)
		}
		for i := range hourlyNew {
			hourlyNew[i].part = randomPart()
		}
		for i := range dailyNew {
			dailyNew[i].part = randomPart()
		}
	}
	qn := db.New(queued{next})
	if len(hourlySet) > 0 {
		p := partsParams(hourlySet)
		_ = qn.SetMeasurementHourlyHist(ctx, db.SetMeasurementHourlyHistParams{StartHours: p.starts, EndHours: p.ends,
			Apps: p.apps, Names: p.names, Methods: p.methods, Parts: p.parts, Hists: p.hists})
	}
	if len(dailySet) > 0 {
		p := partsParams(dailySet)
		_ = qn.SetMeasurementDailyHist(ctx, db.SetMeasurementDailyHistParams{StartDays: p.starts, EndDays: p.ends,
			Apps: p.apps, Names: p.names, Methods: p.methods, Parts: p.parts, Hists: p.hists})
	}
	return nil
}

// histPart is one row of a histogram table: a cell's part and its encoded
// counts.
type histPart struct {
	key  cellKey
	part int16
	hist []byte
}

// addToParts adds each cell's delta to the first of its locked parts
// (updates, with the sums), or makes it a new part when none was free
// (inserts, with random part numbers).
func addToParts(cells histCells, locked []histPart) (updates, inserts []histPart, err error) {
	chosen := make(map[cellKey]bool, len(locked))
	for _, p := range locked {
		if chosen[p.key] {
			continue // locked too, left as it is until the commit
		}
		chosen[p.key] = true
		sum, err := addTo(p.hist, cells[p.key])
		if err != nil {
			return nil, nil, fmt.Errorf("cell %v part %d: %w", p.key, p.part, err)
		}
		updates = append(updates, histPart{p.key, p.part, sum})
	}
	for k, delta := range cells {
		if !chosen[k] {
			inserts = append(inserts, histPart{k, randomPart(), delta.encode()})
		}
	}
	return updates, inserts, nil
}

// randomPart is a new part's number: 1 to 32767 (0 is the rebuild's).
func randomPart() int16 { return int16(1 + rand.IntN(math.MaxInt16)) }

// partsParams is parts as the parallel arrays of the queries.
type partsArrays struct {
	starts, ends         []time.Time
	apps, names, methods []string
	parts                []int16
	hists                [][]byte
}

func partsParams(parts []histPart) partsArrays {
	var a partsArrays
	for _, p := range parts {
		a.starts, a.ends = append(a.starts, time.Unix(p.key.start, 0).UTC()), append(a.ends, time.Unix(p.key.end, 0).UTC())
		a.apps, a.names, a.methods = append(a.apps, p.key.app), append(a.names, p.key.name), append(a.methods, p.key.method)
		a.parts, a.hists = append(a.parts, p.part), append(a.hists, p.hist)
	}
	return a
}

// addTo is the encoding of a stored histogram plus delta.
func addTo(stored []byte, delta *histogram) ([]byte, error) {
	var sum histogram
	if err := sum.addEncoded(stored); err != nil {
		return nil, err
	}
	sum.merge(delta)
	return sum.encode(), nil
}

// queued is a db.DBTX that queues the queries it is given into a pgx.Batch
// instead of running them; replayed then answers the same calls, in the
// same order, from the batch's results. So sqlc's queries, :many ones
// included, can share one round trip.
type queued struct{ batch *pgx.Batch }

var errQueued = errors.New("queued: the answer comes from replayed")

func (q queued) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	q.batch.Queue(sql, args...)
	return pgconn.CommandTag{}, nil
}

func (q queued) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	q.batch.Queue(sql, args...)
	return nil, errQueued
}

func (q queued) QueryRow(context.Context, string, ...any) pgx.Row { return queuedRow{} }

func (q queued) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, errQueued
}

type queuedRow struct{}

func (queuedRow) Scan(...any) error { return errQueued }

type replayed struct{ br pgx.BatchResults }

func (r replayed) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return r.br.Exec()
}

func (r replayed) Query(context.Context, string, ...any) (pgx.Rows, error) { return r.br.Query() }

func (r replayed) QueryRow(context.Context, string, ...any) pgx.Row { return r.br.QueryRow() }

func (r replayed) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, errQueued
}

// groupPageParams is GroupMeasurementsPage's parameters for the window,
// filters and order of f and s (the caller sets the page).
func groupPageParams(f store.MeasurementFilter, s store.MeasurementSort) db.GroupMeasurementsPageParams {
	b := split(f)
	return db.GroupMeasurementsPageParams{
		Descending: s.Desc, SortKey: s.Key,
		H1: b.h1, H2: b.h2, H2Next: b.h2.Add(time.Hour), D1: b.d1, D2: b.d2, StartedAt: f.StartedAt, EndedAt: f.EndedAt,
		Name: f.Name, Methods: methodsOf(f), App: f.App, MinElapsed: f.MinElapsed, BucketFloor: bucketFloor(f),
	}
}

// pageGroup is a row of GroupMeasurementsPage with its percentiles: the
// encoded histograms of its whole days and hours plus the bucket of each of
// its rows in the partial hours.
func pageGroup(r db.GroupMeasurementsPageRow) (store.MeasurementGroup, error) {
	g := store.MeasurementGroup{Name: r.Name, Method: r.Method, Count: r.Count,
		AvgElapsed: r.AvgElapsed, MinElapsed: r.MinElapsed, MaxElapsed: r.MaxElapsed}
	var h histogram
	for _, e := range r.Hists {
		if err := h.addEncoded(e); err != nil {
			return g, fmt.Errorf("%s %s: %w", r.Name, r.Method, err)
		}
	}
	for _, b := range r.EdgeBuckets {
		h.add(int(b), 1)
	}
	g.P50Elapsed, _ = percentile(&h, 0.50, g.MinElapsed, g.MaxElapsed)
	g.P95Elapsed, _ = percentile(&h, 0.95, g.MinElapsed, g.MaxElapsed)
	g.P99Elapsed, _ = percentile(&h, 0.99, g.MinElapsed, g.MaxElapsed)
	return g, nil
}
