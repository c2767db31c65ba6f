// Package devicemetrics writes device metric reports with group commit:
// reporters send one metric per request, and every request must answer only
// once its row is committed, so concurrent reports share commits instead of
// paying one each.
//
// Write queues a row and waits. One collector goroutine takes whatever is
// queued (up to MaxBatch rows) as soon as one of Writers commit slots is
// free and hands it to a flusher, which stores the batch in one statement
// and answers every waiting request. Nothing waits for a timer: a lone
// report is written at once, and under load rows pile up while the slots are
// busy, so batches grow with concurrency.
//
// Device existence is checked inside that statement (see
// queries/devices.sql: InsertDeviceMetrics), never cached, so a deleted
// device is refused at once, also when several servers share the database.
package devicemetrics

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/db"
)

// ErrUnknownDevice means the row's device is not registered.
var ErrUnknownDevice = errors.New("unknown device")

// ErrClosed means the writer is shutting down and takes no more rows.
var ErrClosed = errors.New("device metrics writer is closed")

// Row is one metric report. Num holds numeric values, Text string values
// (Type "string").
type Row struct {
	Time     time.Time
	DeviceID string
	Name     string
	Type     string
	Num      float64
	Text     string
	Units    string
	Slope    string
	TTL      int32
}

// Options tunes a Writer.
type Options struct {
	// Writers is how many batches may be committing at once (pool
	// connections used for writing). Default 2.
	Writers int
	// MaxBatch is the most rows per commit. Default 1000.
	MaxBatch int
	// Timeout bounds one batch's statement. Default 30 s.
	Timeout time.Duration
	// Observe, when set, learns the size of every committed batch.
	Observe func(rows int)
	// idle is how long the collector waits for work before it exits (it
	// restarts on the next Write); tests shorten it.
	idle time.Duration
}

type pending struct {
	row  Row
	done chan error
}

// Writer coalesces concurrent Writes into shared commits. Its goroutines run
// only while there is work, so a Writer nobody closes leaks nothing; Close
// still matters at shutdown: it refuses new rows and waits until every
// queued row is committed and answered.
type Writer struct {
	q    *db.Queries
	opts Options
	in   chan *pending
	slot chan struct{}

	mu       sync.Mutex
	drained  *sync.Cond
	closed   bool
	inflight int  // rows queued or being written, not yet answered
	running  bool // the collector goroutine is alive
	stop     chan struct{}
	wg       sync.WaitGroup // collector and flushers
}

// New returns a Writer that stores rows through pool.
func New(pool *pgxpool.Pool, opts Options) *Writer {
	if opts.Writers < 1 {
		opts.Writers = 2
	}
	if opts.MaxBatch < 1 {
		opts.MaxBatch = 1000
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	if opts.idle <= 0 {
		opts.idle = 10 * time.Second
	}
	w := &Writer{
		q:    db.New(pool),
		opts: opts,
		in:   make(chan *pending, 4*opts.MaxBatch),
		slot: make(chan struct{}, opts.Writers),
		stop: make(chan struct{}),
	}
	w.drained = sync.NewCond(&w.mu)
	return w
}

var pendingPool = sync.Pool{New: func() any { return &pending{done: make(chan error, 1)} }}

// Write stores r and returns once it is committed: nil, ErrUnknownDevice,
// ErrClosed, or the database error of its batch. It does not give up when
// ctx ends, because the row may already be on its way to a commit.
func (w *Writer) Write(ctx context.Context, r Row) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	w.inflight++
	if !w.running {
		w.running = true
		w.wg.Add(1)
		go w.collect()
	}
	w.mu.Unlock()

	p := pendingPool.Get().(*pending)
	p.row = r
	w.in <- p
	err := <-p.done
	p.row = Row{}
	pendingPool.Put(p)

	w.mu.Lock()
	w.inflight--
	if w.inflight == 0 {
		w.drained.Broadcast()
	}
	w.mu.Unlock()
	return err
}

// Close refuses new rows, waits until every row already queued is
// committed and answered, and stops the goroutines. Call it after the HTTP
// server has stopped and before the pool closes.
func (w *Writer) Close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.stop)
	}
	for w.inflight > 0 {
		w.drained.Wait()
	}
	w.mu.Unlock()
	w.wg.Wait()
}

// collect forms batches: it takes the first queued row, waits for a free
// commit slot (rows keep queueing meanwhile), then takes everything else
// queued, up to MaxBatch, and hands the batch to a flusher.
func (w *Writer) collect() {
	defer w.wg.Done()
	idle := time.NewTimer(w.opts.idle)
	defer idle.Stop()
	for {
		var first *pending
		select {
		case first = <-w.in:
		case <-idle.C:
			if w.exitIfIdle() {
				return
			}
			idle.Reset(w.opts.idle)
			continue
		case <-w.stop:
			if w.exitIfIdle() {
				return
			}
			// Rows are still on their way in: keep serving them.
			select {
			case first = <-w.in:
			case <-time.After(time.Millisecond):
				continue
			}
		}
		w.slot <- struct{}{}
		batch := make([]*pending, 1, min(w.opts.MaxBatch, 1+len(w.in)))
		batch[0] = first
	fill:
		for len(batch) < w.opts.MaxBatch {
			select {
			case p := <-w.in:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.flush(batch)
			<-w.slot
		}()
		if !idle.Stop() {
			select {
			case <-idle.C:
			default:
			}
		}
		idle.Reset(w.opts.idle)
	}
}

// exitIfIdle ends the collector when no row is waiting for an answer; a
// later Write starts a new one.
func (w *Writer) exitIfIdle() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inflight > 0 {
		return false
	}
	w.running = false
	return true
}

// flush stores a batch and answers each row. When the batch fails on its
// data (a constraint, a value PostgreSQL refuses), each row is retried
// alone so that one bad row cannot fail its neighbours; when the database
// is unreachable every row gets that error.
func (w *Writer) flush(batch []*pending) {
	ctx, cancel := context.WithTimeout(context.Background(), w.opts.Timeout)
	defer cancel()
	rows := make([]Row, len(batch))
	for i, p := range batch {
		rows[i] = p.row
	}
	known, err := w.insert(ctx, rows)
	if err != nil && len(batch) > 1 && dataError(err) {
		for _, p := range batch {
			_, err := w.insert(ctx, []Row{p.row})
			p.done <- err
		}
		return
	}
	for _, p := range batch {
		switch {
		case err != nil:
			p.done <- err
		case !known[p.row.DeviceID]:
			p.done <- ErrUnknownDevice
		default:
			p.done <- nil
		}
	}
}

// insert writes rows in one statement and returns the devices that exist
// (rows of other devices were not stored). A lone row of an unknown device
// comes back as ErrUnknownDevice.
func (w *Writer) insert(ctx context.Context, rows []Row) (map[string]bool, error) {
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
		Ttls:       make([]int32, n),
	}
	for i, r := range rows {
		p.Times[i], p.DeviceIds[i], p.Names[i], p.Types[i] = r.Time, r.DeviceID, r.Name, r.Type
		p.ValueNums[i], p.ValueTexts[i], p.Units[i], p.Slopes[i], p.Ttls[i] = r.Num, r.Text, r.Units, r.Slope, r.TTL
	}
	var ids []string
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if ids, err = w.q.InsertDeviceMetrics(ctx, p); err == nil || !retryable(err) {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	if w.opts.Observe != nil {
		w.opts.Observe(n)
	}
	known := make(map[string]bool, len(ids))
	for _, id := range ids {
		known[id] = true
	}
	if n == 1 && !known[rows[0].DeviceID] {
		return known, ErrUnknownDevice
	}
	return known, nil
}

// retryable: PostgreSQL aborted the statement for a deadlock or a
// serialization failure; it is atomic, so running it again never doubles.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// dataError: the statement failed on what it was asked to store (classes
// 22 data exception and 23 integrity constraint violation).
func dataError(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code[:2] == "22" || pgErr.Code[:2] == "23")
}
