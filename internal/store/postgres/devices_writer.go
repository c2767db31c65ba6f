package postgres

// Device metric reports are written with group commit: reporters send one
// metric per request, and every request must answer only once its row is
// committed, so concurrent reports share commits instead of paying one
// each.
//
// Write queues a row. When one of Writers commit slots is free, the
// writing goroutine itself takes everything queued (up to MaxBatch rows,
// its own row first), stores the batch in one statement and answers every
// row of it; otherwise it waits. A goroutine that finishes a batch while rows
// are queued hands the next batch to the first of them, whose goroutine
// wakes up to write it (it had to wake up anyway, to answer its request),
// then answers its own request. Nothing waits for a timer and no goroutine
// sits between a request and the database: a lone report is written at
// once by its own goroutine, and under load rows pile up while the slots are
// busy, so batches grow with concurrency.
//
// Device existence is checked inside that statement (see
// queries/devices.sql: InsertDeviceMetrics), never cached, so a deleted
// device is refused at once, also when several servers share the database.
//
// A batch with reports that carry an Idempotency-Key is written in a
// transaction that records their answers first, then the statement (commit).

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// errUnknownDevice is the answer to a row of a device that is not
// registered; one value, built once, because refusing such rows is common
// and must stay cheap.
var errUnknownDevice error = &store.Error{Op: "report device metric", Kind: store.ErrNotFound, Detail: "unknown device",
	Err: errors.New("unknown device")}

// deviceBatchTimeout bounds one batch's statement.
const deviceBatchTimeout = 30 * time.Second

// deviceWriterOptions tunes a deviceWriter.
type deviceWriterOptions struct {
	// Writers is how many batches may be committing at once (pool
	// connections used for writing). Default 2.
	Writers int
	// MaxBatch is the most rows per commit. Default 1000.
	MaxBatch int
	// Observe learns the size of every committed batch.
	Observe func(rows int)
}

type pendingReport struct {
	row  store.MetricRow
	idem *store.Idempotent // nil: no Idempotency-Key
	done chan error        // the row's result, or errLeadBatch
	// batch is set, before errLeadBatch is sent, on the row whose
	// goroutine is to write the batch (the batch's first row).
	batch []*pendingReport
}

// errLeadBatch tells a waiting Write to write the batch in its
// pendingReport.batch.
var errLeadBatch = errors.New("lead the next batch")

// deviceWriter coalesces concurrent Writes into shared commits. It has no
// goroutines of its own (the writing goroutines write the batches), so a
// writer nobody closes leaks nothing; Close still matters at shutdown: it
// refuses new rows and waits until every queued row is committed and
// answered.
type deviceWriter struct {
	pool *pgxpool.Pool
	q    *db.Queries
	halt *halt
	opts deviceWriterOptions
	// slots recycles the rows' waiting slots (and their channels).
	slots sync.Pool

	mu       sync.Mutex
	drained  *sync.Cond
	closed   bool
	queue    []*pendingReport // rows waiting for a batch
	active   int              // batches being written (at most opts.Writers)
	inflight int              // rows queued or being written, not yet answered
}

// newDeviceWriter returns a writer that stores rows through q (in
// transactions on pool for keyed rows).
func newDeviceWriter(pool *pgxpool.Pool, q *db.Queries, h *halt, opts deviceWriterOptions) *deviceWriter {
	if opts.Writers < 1 {
		opts.Writers = 2
	}
	if opts.MaxBatch < 1 {
		opts.MaxBatch = 1000
	}
	if opts.Observe == nil {
		opts.Observe = func(int) {}
	}
	w := &deviceWriter{pool: pool, q: q, halt: h, opts: opts}
	w.slots.New = func() any { return &pendingReport{done: make(chan error, 1)} }
	w.drained = sync.NewCond(&w.mu)
	return w
}

// Write stores r and returns once it is committed: nil, errUnknownDevice,
// ErrClosed, or the database error of its batch. When ctx ends while r
// still waits in the queue, r is taken out and ctx's error returned (it
// was waiting behind every batch before it, each with its own deadline,
// far past the request's: found by the hostile-input audit); once r is in
// a batch it may be on its way to a commit, and Write waits for the
// batch's answer.
func (w *deviceWriter) Write(ctx context.Context, r store.MetricRow) error {
	p := w.slots.Get().(*pendingReport)
	p.row, p.idem = r, store.IdempotentFrom(ctx)
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.slots.Put(p)
		return store.ErrClosed
	}
	w.inflight++
	w.queue = append(w.queue, p)
	var leader *pendingReport
	if w.active < w.opts.Writers {
		// A free slot: start a batch of the queue's head (normally just
		// this row).
		w.active++
		leader = w.takeBatchLocked()
	}
	w.mu.Unlock()

	if leader == p {
		w.lead(p)
	} else if leader != nil {
		leader.done <- errLeadBatch
	}
	var err error
	select {
	case err = <-p.done:
	case <-ctx.Done():
		if w.dequeue(p) {
			err = wrap("report device metric", context.Cause(ctx))
			break
		}
		err = <-p.done
	}
	if err == errLeadBatch {
		w.lead(p)
		err = <-p.done
	}
	p.row, p.idem, p.batch = store.MetricRow{}, nil, nil
	w.slots.Put(p)

	w.mu.Lock()
	w.inflight--
	if w.inflight == 0 {
		w.drained.Broadcast()
	}
	w.mu.Unlock()
	return err
}

// dequeue takes p out of the queue, and reports whether it was there (not
// yet in a batch).
func (w *deviceWriter) dequeue(p *pendingReport) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := slices.Index(w.queue, p)
	if i < 0 {
		return false
	}
	w.queue = slices.Delete(w.queue, i, i+1)
	return true
}

// takeBatchLocked moves up to MaxBatch rows from the head of the queue
// into a batch and returns its first row, which is to write it.
func (w *deviceWriter) takeBatchLocked() *pendingReport {
	n := min(len(w.queue), w.opts.MaxBatch)
	batch := make([]*pendingReport, n)
	copy(batch, w.queue)
	rest := copy(w.queue, w.queue[n:])
	clear(w.queue[rest:])
	w.queue = w.queue[:rest]
	batch[0].batch = batch
	return batch[0]
}

// lead writes p.batch (which answers every row of it, p included), then
// hands the next batch to the first queued row, or frees the slot when
// nothing is queued.
func (w *deviceWriter) lead(p *pendingReport) {
	w.flush(p.batch)
	var next *pendingReport
	w.mu.Lock()
	if len(w.queue) > 0 {
		next = w.takeBatchLocked()
	} else {
		w.active--
	}
	w.mu.Unlock()
	if next != nil {
		next.done <- errLeadBatch
	}
}

// Close refuses new rows and waits until every row already queued is
// committed and answered. Call it after the HTTP server has stopped and
// before the pool closes.
func (w *deviceWriter) Close() {
	w.mu.Lock()
	w.closed = true
	for w.inflight > 0 {
		w.drained.Wait()
	}
	w.mu.Unlock()
}

// flush stores a batch and answers each row. When the batch fails on its
// data (a constraint, a value PostgreSQL refuses), each row is retried
// alone so that one bad row cannot fail its neighbours; when the database
// is unreachable every row gets that error.
func (w *deviceWriter) flush(batch []*pendingReport) {
	ctx, cancel := w.halt.detach(context.Background(), deviceBatchTimeout)
	defer cancel()
	known, taken, err := w.commit(ctx, batch)
	if err != nil && len(batch) > 1 && dataError(err) {
		for _, p := range batch {
			_, taken, err := w.commit(ctx, []*pendingReport{p})
			if taken != nil && taken[0] {
				err = store.ErrKeyInUse
			}
			p.done <- wrap("report device metric", err)
		}
		return
	}
	err = wrap("report device metrics", err)
	for i, p := range batch {
		switch {
		case taken != nil && taken[i]:
			// Another request holds its key (found before anything
			// failed): the caller reads that request's answer.
			p.done <- store.ErrKeyInUse
		case err != nil:
			p.done <- err
		case !known[p.row.DeviceID]:
			p.done <- errUnknownDevice
		default:
			p.done <- nil
		}
	}
}

// commit writes the batch's rows and returns the devices that exist (see
// insert). When some rows carry an Idempotency-Key, it does so in a
// transaction that first records their answers: taken reports, by index,
// the rows whose key another request holds (or an earlier row of the
// batch carries), which are left out; the keys of rows refused for an
// unknown device are taken back before the commit.
func (w *deviceWriter) commit(ctx context.Context, batch []*pendingReport) (known map[string]bool, taken []bool, err error) {
	var claims []keyClaim
	var keyed []int // batch index of each claim
	for i, p := range batch {
		if p.idem != nil {
			claims = append(claims, keyClaim{idem: p.idem})
			keyed = append(keyed, i)
		}
	}
	if claims != nil {
		taken = make([]bool, len(batch))
	}
	// Run again whole after a deadlock or a serialization failure: the
	// statement alone, or the transaction.
	stored := 0 // rows of the last run of the transaction that it stores
	err = inKeyedTx(ctx, w.pool, w.q, claims != nil, func(q *db.Queries) (err error) {
		known, stored = nil, 0
		var free []bool
		if claims != nil {
			if free, err = claimKeys(ctx, q, claims); err != nil {
				return err
			}
			for j, i := range keyed {
				taken[i] = !free[j]
			}
		}
		rows := make([]store.MetricRow, 0, len(batch))
		for i, p := range batch {
			if taken == nil || !taken[i] {
				rows = append(rows, p.row)
			}
		}
		if len(rows) == 0 {
			return nil
		}
		if known, err = w.insert(ctx, q, rows); err != nil {
			return err
		}
		for _, r := range rows {
			if known[r.DeviceID] {
				stored++
			}
		}
		var refused []string
		for j, i := range keyed {
			if free[j] && !known[batch[i].row.DeviceID] {
				refused = append(refused, batch[i].idem.Key)
			}
		}
		if refused == nil {
			return nil
		}
		return q.DeleteIdempotencyKeys(ctx, refused)
	})
	if err == nil && stored > 0 {
		// Once committed, and only what was stored: not a run the
		// transaction was rolled back from, nor rows of unknown devices.
		w.opts.Observe(stored)
	}
	return known, taken, err
}

// insert writes rows in one statement through q and returns the devices
// that exist (rows of other devices were not stored). A lone row of an
// unknown device comes back as errUnknownDevice; database errors come back
// as they are, for flush to judge.
func (w *deviceWriter) insert(ctx context.Context, q *db.Queries, rows []store.MetricRow) (map[string]bool, error) {
	n := len(rows)
	p := db.InsertDeviceMetricsParams{
		Times:      make([]time.Time, n),
		DeviceIds:  make([]string, n),
		Names:      make([]string, n),
		Types:      make([]string, n),
		ValueNums:  make([]float64, n),
		ValueTexts: make([]string, n),
		Units:      make([]string, n),
		Slopes:     make([]string, n),
		TTLs:       make([]int32, n),
	}
	for i, r := range rows {
		p.Times[i], p.DeviceIds[i], p.Names[i], p.Types[i] = r.Time, r.DeviceID, r.Name, r.Type
		p.ValueNums[i], p.ValueTexts[i], p.Units[i], p.Slopes[i], p.TTLs[i] = r.Num, r.Text, r.Units, r.Slope, r.TTL
	}
	// The statement is atomic: running it again after a deadlock or a
	// serialization failure (commit does) never doubles a row.
	ids, err := q.InsertDeviceMetrics(ctx, p)
	if err != nil {
		return nil, err
	}
	known := make(map[string]bool, len(ids))
	for _, id := range ids {
		known[id] = true
	}
	if n == 1 && !known[rows[0].DeviceID] {
		return known, errUnknownDevice
	}
	return known, nil
}
