package postgres

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// flowWriter combines concurrent Flows.Add batches into one upsert.
//
// Batches that hit the same keys cannot run side by side: each waits for
// the row locks of the one before and updates the same rows again, so 16
// concurrent posts of one hour's keys took up to 8 s each (measured). Here
// the batches that arrive while an upsert runs are summed by key in Go and
// written by the next upsert, one transaction for all of them: each batch
// is still all or nothing, a nil from Add still means committed, and hot
// keys are updated once per round instead of once per batch. Batches with
// an Idempotency-Key have their answers recorded in the round's
// transaction (upsert).
type flowWriter struct {
	pool *pgxpool.Pool
	q    *db.Queries

	mu      sync.Mutex
	pending []*flowJob
	busy    bool // a goroutine is flushing; it will take pending jobs
}

type flowJob struct {
	flows []store.Flow
	idem  *store.Idempotent // nil: no Idempotency-Key
	done  chan error
}

// maxCombinedFlows bounds one combined upsert.
const maxCombinedFlows = 200_000

func newFlowWriter(pool *pgxpool.Pool, q *db.Queries) *flowWriter {
	return &flowWriter{pool: pool, q: q}
}

// write stores the batch (recording its answer under idem's key, when not
// nil) and returns once it is committed (or failed). A batch holding
// anything the database would refuse fails here, before it joins a round:
// it cannot fail the other batches of one.
func (w *flowWriter) write(flows []store.Flow, idem *store.Idempotent) error {
	if err := checkFlows(flows); err != nil {
		return err
	}
	job := &flowJob{flows: flows, idem: idem, done: make(chan error, 1)}
	w.mu.Lock()
	w.pending = append(w.pending, job)
	if w.busy {
		w.mu.Unlock()
		return <-job.done // the flusher will take it
	}
	w.busy = true
	w.mu.Unlock()
	w.flushRound()
	// Jobs that came in meanwhile are flushed by another goroutine, so that
	// this request answers as soon as its own batch is committed.
	w.mu.Lock()
	if len(w.pending) > 0 {
		go w.drain()
	} else {
		w.busy = false
	}
	w.mu.Unlock()
	return <-job.done
}

// drain flushes rounds until nothing is pending.
func (w *flowWriter) drain() {
	for {
		w.flushRound()
		w.mu.Lock()
		if len(w.pending) == 0 {
			w.busy = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
	}
}

// flushRound takes the pending jobs (up to maxCombinedFlows flows) and
// writes them.
func (w *flowWriter) flushRound() {
	w.mu.Lock()
	n, total := 0, 0
	for n < len(w.pending) && (n == 0 || total+len(w.pending[n].flows) <= maxCombinedFlows) {
		total += len(w.pending[n].flows)
		n++
	}
	jobs := w.pending[:n:n]
	w.pending = w.pending[n:]
	w.mu.Unlock()
	if len(jobs) == 0 {
		return
	}
	// The upsert serves several requests: none of their cancellations may
	// abort it, so it runs on its own deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if len(jobs) == 1 {
		jobs[0].done <- w.upsert(ctx, jobs, jobs[0].flows)
		return
	}
	merged, ok := combine(jobs)
	if ok {
		err := w.upsert(ctx, jobs, merged)
		if err == nil || !isolate(err) {
			for _, j := range jobs {
				j.done <- err
			}
			return
		}
	}
	// PostgreSQL refused the round (a stored total that would overflow, or
	// anything else checkFlows did not foresee), the batches' sums already
	// overflow in Go, or another request holds a batch's Idempotency-Key:
	// write the batches one by one, so that only the offending one fails.
	for _, j := range jobs {
		j.done <- w.upsert(ctx, []*flowJob{j}, j.flows)
	}
}

// isolate reports whether a failed round is retried batch by batch: when
// PostgreSQL refused the upsert (errors.go: refused), it took no effect and
// one of the batches may be at fault; likewise when one of the batches'
// Idempotency-Keys is taken. A connection failure or an overloaded
// database fails the round whole, as before: it would fail each batch
// alike, a broken connection leaves unknown whether the round was
// committed (a retry could add its bytes twice), and the clients retry.
func isolate(err error) bool {
	return refused(err) || errors.Is(err, store.ErrKeyInUse)
}

// upsert writes flows, the sum of the jobs' batches: one statement, or,
// when some of the jobs carry an Idempotency-Key, one transaction that
// records their answers first and then upserts. ErrKeyInUse (nothing
// written) when another request holds one of the keys, or two of the jobs
// carry the same key.
func (w *flowWriter) upsert(ctx context.Context, jobs []*flowJob, flows []store.Flow) error {
	var claims []keyClaim
	for _, j := range jobs {
		if j.idem != nil {
			claims = append(claims, keyClaim{idem: j.idem})
		}
	}
	p := upsertParams(flows)
	return wrap("upsert flows", inKeyedTx(ctx, w.pool, w.q, claims != nil, func(q *db.Queries) error {
		if claims != nil {
			free, err := claimKeys(ctx, q, claims)
			if err != nil {
				return err
			}
			for _, ok := range free {
				if !ok {
					return store.ErrKeyInUse
				}
			}
			if len(flows) == 0 {
				return nil
			}
		}
		return q.UpsertFlows(ctx, p)
	}))
}

type flowKey struct {
	hour                   int64
	srcApp, destApp, vpcID string
}

// combine sums the jobs' flows by key, in key order; ok is false when a
// sum would overflow 64 bits.
func combine(jobs []*flowJob) ([]store.Flow, bool) {
	sums := map[flowKey]*store.Flow{}
	for _, j := range jobs {
		for _, f := range j.flows {
			k := flowKey{f.Hour, f.SrcApp, f.DestApp, f.VpcID}
			s, seen := sums[k]
			if !seen {
				c := f
				sums[k] = &c
				continue
			}
			if s.BytesTx > math.MaxInt64-f.BytesTx || s.BytesRx > math.MaxInt64-f.BytesRx {
				return nil, false
			}
			s.BytesTx += f.BytesTx
			s.BytesRx += f.BytesRx
		}
	}
	out := make([]store.Flow, 0, len(sums))
	for _, f := range sums {
		out = append(out, *f)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Hour != b.Hour {
			return a.Hour < b.Hour
		}
		if a.SrcApp != b.SrcApp {
			return a.SrcApp < b.SrcApp
		}
		if a.DestApp != b.DestApp {
			return a.DestApp < b.DestApp
		}
		return a.VpcID < b.VpcID
	})
	return out, true
}

// upsertParams lays flows out as the upsert's column arrays.
func upsertParams(flows []store.Flow) db.UpsertFlowsParams {
	n := len(flows)
	p := db.UpsertFlowsParams{
		Hours:    make([]time.Time, n),
		SrcApps:  make([]string, n),
		DestApps: make([]string, n),
		VpcIds:   make([]string, n),
		BytesTx:  make([]int64, n),
		BytesRx:  make([]int64, n),
	}
	for i, f := range flows {
		p.Hours[i] = hourTime(f.Hour)
		p.SrcApps[i], p.DestApps[i], p.VpcIds[i] = f.SrcApp, f.DestApp, f.VpcID
		p.BytesTx[i], p.BytesRx[i] = f.BytesTx, f.BytesRx
	}
	return p
}

// checkFlows refuses a batch that PostgreSQL would refuse, with the error
// the database's refusal would have given (errors.go), naming the flow.
// The API's decoder checks the same rules first; the store does not rely
// on it. Totals that would overflow are left to combine and the database
// (a stored total only it knows): flushRound isolates them.
func checkFlows(flows []store.Flow) error {
	invalid := func(i int, rule, detail string) error {
		return &store.Error{Op: "add flows", Kind: store.ErrInvalid, Rule: rule,
			Detail: fmt.Sprintf("flow %d: %s", i, detail), Err: fmt.Errorf("flow %d: %s", i, detail)}
	}
	for i, f := range flows {
		for _, field := range [...]struct{ name, value string }{{"src_app", f.SrcApp}, {"dest_app", f.DestApp}, {"vpc_id", f.VpcID}} {
			// text cannot hold NUL, and the database's encoding is UTF-8.
			if strings.IndexByte(field.value, 0) >= 0 || !utf8.ValidString(field.value) {
				return invalid(i, "unicode", field.name+` contains \u0000 or a character PostgreSQL cannot store`)
			}
			// flows_*_length: length() counts characters.
			if n := utf8.RuneCountInString(field.value); n < 1 || n > store.MaxFlowName {
				return invalid(i, "invalid", fmt.Sprintf("%s must be 1 to %d characters", field.name, store.MaxFlowName))
			}
		}
		if f.BytesTx < 0 || f.BytesRx < 0 { // flows_bytes_*_nonnegative
			return invalid(i, "invalid", "bytes_tx and bytes_rx must not be negative")
		}
		if f.Hour < 0 || f.Hour > store.MaxFlowHour {
			return invalid(i, "invalid", fmt.Sprintf("hour must be 0 to %d", store.MaxFlowHour))
		}
	}
	return nil
}
