package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
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
	halt *halt

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

func newFlowWriter(pool *pgxpool.Pool, q *db.Queries, h *halt) *flowWriter {
	return &flowWriter{pool: pool, q: q, halt: h}
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
	// abort it, so it runs on its own deadline (or until Store.Abort).
	ctx, cancel := w.halt.detach(context.Background(), 2*time.Minute)
	defer cancel()
	if len(jobs) == 1 {
		jobs[0].done <- w.lone(ctx, jobs[0])
		return
	}
	var all []store.Flow
	for _, j := range jobs {
		all = append(all, j.flows...)
	}
	err := w.upsert(ctx, jobs, all)
	if err == nil || !isolate(err) {
		for _, j := range jobs {
			j.done <- err
		}
		return
	}
	// PostgreSQL refused the round (a stored total that would overflow, or
	// anything else checkFlows did not foresee), the batches' sums already
	// overflow in Go, or another request holds a batch's Idempotency-Key:
	// write the batches one by one, so that only the offending one fails.
	for _, j := range jobs {
		j.done <- w.lone(ctx, j)
	}
}

// lone writes one job's batch alone; a total it would overflow is
// answered naming the flows that pass the limit (overflowFaults).
func (w *flowWriter) lone(ctx context.Context, j *flowJob) error {
	err := w.upsert(ctx, []*flowJob{j}, j.flows)
	if !errors.Is(err, store.ErrTooLarge) {
		return err
	}
	faults := w.overflowFaults(ctx, j.flows)
	if len(faults) == 0 {
		return err // the totals changed meanwhile, or could not be read
	}
	return &store.Error{Op: "upsert flows", Kind: store.ErrTooLarge, Detail: detailOverflow, Items: faults, Err: err}
}

// overflowFaults names, for each key and byte count of flows whose total
// passes 64 bits, the flow at which it does: the stored total (read now)
// plus the batch's flows of the key, in the batch's order.
func (w *flowWriter) overflowFaults(ctx context.Context, flows []store.Flow) []store.ItemFault {
	type key struct {
		hour           int64
		src, dest, vpc string
	}
	type total struct {
		tx, rx         int64
		txOver, rxOver bool
	}
	totals := map[key]*total{}
	var p db.FlowTotalsOfKeysParams
	for _, f := range flows {
		k := key{f.Hour, f.SrcApp, f.DestApp, f.VpcID}
		if totals[k] == nil {
			totals[k] = &total{}
			p.Hours, p.SrcApps = append(p.Hours, hourTime(f.Hour)), append(p.SrcApps, f.SrcApp)
			p.DestApps, p.VpcIds = append(p.DestApps, f.DestApp), append(p.VpcIds, f.VpcID)
		}
	}
	stored, err := w.q.FlowTotalsOfKeys(ctx, p)
	if err != nil {
		return nil
	}
	for _, r := range stored {
		if t := totals[key{r.Hour.Unix() / 3600, r.SrcApp, r.DestApp, r.VpcID}]; t != nil {
			t.tx, t.rx = r.BytesTx, r.BytesRx
		}
	}
	var faults []store.ItemFault
	add := func(sum *int64, over *bool, n int64, i int, field string) {
		if *over {
			return
		}
		if *sum > math.MaxInt64-n {
			*over = true
			faults = append(faults, store.ItemFault{Index: i, Field: field, Detail: fmt.Sprintf(
				"with it the hour's %s for its src_app, dest_app and vpc_id would pass 9223372036854775807", field)})
			return
		}
		*sum += n
	}
	for i, f := range flows {
		t := totals[key{f.Hour, f.SrcApp, f.DestApp, f.VpcID}]
		add(&t.tx, &t.txOver, f.BytesTx, i, "bytes_tx")
		add(&t.rx, &t.rxOver, f.BytesRx, i, "bytes_rx")
	}
	return faults
}

// isolate reports whether a failed round is retried batch by batch: when
// PostgreSQL refused the upsert (errors.go: refused), it took no effect and
// one of the batches may be at fault; likewise when one of the batches'
// Idempotency-Keys is taken, or when the batches' sum of a key passes 64
// bits (FlowUpsert). A connection failure or an overloaded
// database fails the round whole, as before: it would fail each batch
// alike, a broken connection leaves unknown whether the round was
// committed (a retry could add its bytes twice), and the clients retry.
func isolate(err error) bool {
	return refused(err) || errors.Is(err, store.ErrKeyInUse) || errors.Is(err, errSumOverflow)
}

// upsert writes flows, the jobs' batches (summed by FlowUpsert): one statement, or,
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
	p, err := FlowUpsert(flows)
	if err != nil {
		return err
	}
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

// FlowUpsert lays flows out as UpsertFlows' arguments: summed by key, in
// key order (hour, then src_app, dest_app and vpc_id, byte-wise: the
// order of the C collation, and a consistent order whatever the
// database's), and the sums of the batch's bytes per rollup dimension,
// hour and key for flows_hourly. Summing here rather than in the statement
// took a third off a 1,000-key round (docs/flows-storage.md). A key's total
// that would pass 64 bits is ErrTooLarge, as PostgreSQL's refusal of the
// stored one is (errors.go); a rollup sum that would is sent in parts,
// which the statement adds up as numeric. flows must hold no negative
// bytes (checkFlows).
func FlowUpsert(flows []store.Flow) (db.UpsertFlowsParams, error) {
	// An index sorted, not the flows (sorting the 72-byte structs was half
	// the function's time).
	order := make([]int32, len(flows))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(i, j int32) int {
		a, b := &flows[i], &flows[j]
		if c := cmp.Compare(a.Hour, b.Hour); c != 0 {
			return c
		}
		if c := strings.Compare(a.SrcApp, b.SrcApp); c != 0 {
			return c
		}
		if c := strings.Compare(a.DestApp, b.DestApp); c != 0 {
			return c
		}
		return strings.Compare(a.VpcID, b.VpcID)
	})
	var p db.UpsertFlowsParams
	sums := make([]store.Flow, 0, len(flows))
	for _, i := range order {
		f := flows[i]
		if n := len(sums); n > 0 {
			last := &sums[n-1]
			if last.Hour == f.Hour && last.SrcApp == f.SrcApp && last.DestApp == f.DestApp && last.VpcID == f.VpcID {
				if last.BytesTx > math.MaxInt64-f.BytesTx || last.BytesRx > math.MaxInt64-f.BytesRx {
					return p, sumOverflow()
				}
				last.BytesTx += f.BytesTx
				last.BytesRx += f.BytesRx
				continue
			}
		}
		sums = append(sums, f)
	}
	n := len(sums)
	p.Hours, p.BytesTx, p.BytesRx = make([]time.Time, n), make([]int64, n), make([]int64, n)
	p.SrcApps, p.DestApps, p.VpcIds = make([]string, n), make([]string, n), make([]string, n)
	for i, f := range sums {
		p.Hours[i] = hourTime(f.Hour)
		p.SrcApps[i], p.DestApps[i], p.VpcIds[i] = f.SrcApp, f.DestApp, f.VpcID
		p.BytesTx[i], p.BytesRx[i] = f.BytesTx, f.BytesRx
	}
	flowRollup(sums, &p)
	return p, nil
}

// errSumOverflow is a key's total past 64 bits found while summing a batch
// in Go; FlowUpsert answers it as PostgreSQL's refusal of such a total is
// interpreted (22003, kindOf).
var errSumOverflow = errors.New("a key's bytes in the batch sum past 64 bits")

func sumOverflow() error {
	return &store.Error{Op: "upsert flows", Kind: store.ErrTooLarge, Detail: detailOverflow, Err: errSumOverflow}
}

// rollupCell is a flows_hourly cell of one dimension and its sums so far.
type rollupCell struct {
	hour   int64
	key    string
	tx, rx int64
}

// rollupCells sums flows into the cells of one dimension, in the order
// met; a cell whose sum would pass 64 bits gets a second part beside it.
type rollupCells struct {
	cells []rollupCell
	at    map[rollupCell]int // a cell's (hour, key) -> its last part; nil when the cells come in order
}

func (r *rollupCells) add(hour int64, key string, tx, rx int64) {
	i := -1
	if r.at == nil {
		if n := len(r.cells); n > 0 && r.cells[n-1].hour == hour && r.cells[n-1].key == key {
			i = n - 1
		}
	} else if j, ok := r.at[rollupCell{hour: hour, key: key}]; ok {
		i = j
	}
	if i >= 0 {
		c := &r.cells[i]
		if c.tx <= math.MaxInt64-tx && c.rx <= math.MaxInt64-rx {
			c.tx += tx
			c.rx += rx
			return
		}
	}
	r.cells = append(r.cells, rollupCell{hour, key, tx, rx})
	if r.at != nil {
		r.at[rollupCell{hour: hour, key: key}] = len(r.cells) - 1
	}
}

// flowRollup sets p's rollup arrays from flows (summed by key, in key
// order), in the statement's order: by dimension, hour and key. The whole
// hour's and src_app's cells come in runs; dest_app's and vpc_id's are
// looked up, then sorted.
func flowRollup(flows []store.Flow, p *db.UpsertFlowsParams) {
	all, src := rollupCells{}, rollupCells{}
	dst := rollupCells{at: make(map[rollupCell]int)}
	vpc := rollupCells{at: make(map[rollupCell]int)}
	for _, f := range flows {
		all.add(f.Hour, "", f.BytesTx, f.BytesRx)
		src.add(f.Hour, f.SrcApp, f.BytesTx, f.BytesRx)
		dst.add(f.Hour, f.DestApp, f.BytesTx, f.BytesRx)
		vpc.add(f.Hour, f.VpcID, f.BytesTx, f.BytesRx)
	}
	byKey := func(a, b rollupCell) int {
		if c := cmp.Compare(a.hour, b.hour); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key) // parts of a cell keep their order
	}
	slices.SortStableFunc(dst.cells, byKey)
	slices.SortStableFunc(vpc.cells, byKey)
	n := len(all.cells) + len(src.cells) + len(dst.cells) + len(vpc.cells)
	p.RDims, p.RHours, p.RKeys = make([]string, 0, n), make([]time.Time, 0, n), make([]string, 0, n)
	p.RBytesTx, p.RBytesRx = make([]int64, 0, n), make([]int64, 0, n)
	// "all" < "dest_app" < "src_app" < "vpc_id".
	for _, d := range [...]struct {
		dim   string
		cells []rollupCell
	}{{"all", all.cells}, {"dest_app", dst.cells}, {"src_app", src.cells}, {"vpc_id", vpc.cells}} {
		for _, c := range d.cells {
			p.RDims, p.RHours, p.RKeys = append(p.RDims, d.dim), append(p.RHours, hourTime(c.hour)), append(p.RKeys, c.key)
			p.RBytesTx, p.RBytesRx = append(p.RBytesTx, c.tx), append(p.RBytesRx, c.rx)
		}
	}
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
			// flows_pkey: an index entry holds at most 2,704 bytes.
			if len(field.value) > store.MaxFlowNameBytes {
				return invalid(i, "max", fmt.Sprintf("%s must be at most %d bytes of UTF-8", field.name, store.MaxFlowNameBytes))
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
