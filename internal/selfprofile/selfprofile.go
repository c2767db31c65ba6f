// Package selfprofile records every request the service serves as a
// measurement of its own (app = "telemetry"), the way flask-profiler
// profiles a Flask application. The HTTP layer hands it each request it
// served (Record), which goes into a bounded in-memory buffer (past
// Config.Detail requests a second, summed into summary rows: summary.go);
// a background writer COPYs the buffer into the measurements table every
// second (a second's summaries once that second has ended) and once more at
// Close. Recording never blocks or fails a request: when the buffer is
// full, records are dropped, counted in /metrics and logged.
//
// A record never holds a secret or text PostgreSQL refuses (sanitize.go):
// headers come from an allow-list without Authorization or Cookie,
// secret-looking query values are replaced by "[redacted]", and every string
// is cleaned of NUL bytes and invalid UTF-8 and bounded in length. A batch
// the database still refuses for its data is split until only the records
// at fault are dropped.
package selfprofile

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/warnlimit"
)

// App is the app name of the service's own measurements.
const App = store.SelfApp

// Config tunes a Profiler. Zero values take the defaults noted.
type Config struct {
	// Sample is the fraction of requests recorded, 0 (none) to 1 (all).
	Sample float64
	// Exclude lists paths not recorded; a trailing * matches a prefix.
	Exclude []string
	// BufferSize bounds the records waiting to be written (default 10,000).
	BufferSize int
	// FlushEvery is the longest a record waits (default 1 s).
	FlushEvery time.Duration
	// FlushAt wakes the writer early once this many records wait (default 1,000).
	FlushAt int
	// WriteTimeout bounds one COPY (default 10 s).
	WriteTimeout time.Duration
	// Detail is how many requests a second are recorded one row each
	// (default 100; negative: none). The others of that second are
	// summarised: one row per route, method, path, operation and status of
	// the second they started in, with their count, mean, total and longest
	// elapsed.
	Detail int
}

// DefaultDetail is Detail's (and SELF_PROFILE_DETAIL's) default.
const DefaultDetail = 100

// DefaultExclude is SELF_PROFILE_EXCLUDE's default: probes, metrics, docs,
// the OpenAPI documents and the dashboard's static files (its API calls
// are recorded as any other).
var DefaultExclude = []string{"/healthz", "/readyz", "/metrics", "/docs*", "/openapi*", "/ui*"}

// entry is what the middleware captured; it is turned into a measurement
// (JSON and all) by the writer, off the request path.
type entry struct {
	start, end time.Time
	pattern    string
	method     string
	op         string
	path       string
	rawQuery   string
	ip         string
	status     int
	params     [][2]string
	headers    [][2]string
}

// Writer stores measurements, all or none: *postgres.Measurements.
type Writer interface {
	Insert(ctx context.Context, recs []store.Measurement) ([]int64, error)
}

// Profiler records requests. A nil *Profiler records nothing, so callers
// can call Record unconditionally.
type Profiler struct {
	w       Writer
	log     *slog.Logger
	warns   *warnlimit.Limiter // its failures, at most one line of a kind every warnlimit.Every
	cfg     Config
	exclude []string
	prefix  []string

	mu      sync.Mutex
	buf     []entry
	sums    map[sumKey]sumVal // requests past the second's Detail
	closed  bool
	dropped int64 // since the last log line
	// detailSec is the second (Unix, of the request's end) whose Detail
	// budget detailN counts.
	detailSec int64
	detailN   int

	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	lastErr error // the writer's final write's failure, read by Close once done is closed
	started bool
	once    sync.Once

	recorded, written, summarised prometheus.Counter
	drops                         *prometheus.CounterVec
	failures                      prometheus.Counter
}

// New builds a Profiler writing through w; reg (may be nil) receives its
// metrics. Call Start to begin writing and Close to flush and stop.
func New(w Writer, log *slog.Logger, reg prometheus.Registerer, cfg Config) *Profiler {
	cfg.Sample = min(max(cfg.Sample, 0), 1)
	if cfg.BufferSize <= 0 {
		cfg.BufferSize = 10000
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = time.Second
	}
	if cfg.FlushAt <= 0 {
		cfg.FlushAt = min(1000, cfg.BufferSize)
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.Detail == 0 {
		cfg.Detail = DefaultDetail
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Profiler{
		w: w, log: log, warns: warnlimit.New(log), cfg: cfg,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		recorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telemetry_selfprofile_recorded_total",
			Help: "Requests the service recorded about itself (after sampling and exclusions).",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telemetry_selfprofile_written_total",
			Help: "Self-profiling rows written to the database (a summary row stands for context.count requests).",
		}),
		summarised: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telemetry_selfprofile_summarised_total",
			Help: "Requests recorded in a summary row (past SELF_PROFILE_DETAIL in their second) rather than a row of their own.",
		}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telemetry_selfprofile_dropped_total",
			Help: "Self-profiling records lost, by reason: buffer_full (requests past a full buffer: more than the writer keeps up with), closed (requests recorded after shutdown), write_failed (rows the database refused or could not take).",
		}, []string{"reason"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telemetry_selfprofile_write_failures_total",
			Help: "Self-profiling batches that lost records (refused by the database, or it could not be reached).",
		}),
	}
	for _, reason := range []string{"buffer_full", "write_failed", "closed"} {
		p.drops.WithLabelValues(reason)
	}
	for _, e := range cfg.Exclude {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		if strings.HasSuffix(e, "*") {
			p.prefix = append(p.prefix, strings.TrimSuffix(e, "*"))
		} else {
			p.exclude = append(p.exclude, e)
		}
	}
	if reg != nil {
		buffered := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "telemetry_selfprofile_buffered",
			Help: "Self-profiling rows waiting to be written (a second's summaries count once).",
		}, func() float64 { return float64(p.Buffered()) })
		reg.MustRegister(p.recorded, p.written, p.summarised, p.drops, p.failures, buffered)
	}
	return p
}

// Start runs the background writer.
func (p *Profiler) Start() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.closed {
		return
	}
	p.started = true
	go p.writer()
}

// Close stops the writer and writes what is still buffered; requests
// recorded afterwards are dropped (reason closed). Its error says those
// last writes lost records (the database down), or ctx ended first. Call
// it after the HTTP server has shut down and before the pool closes. Safe
// to call twice.
func (p *Profiler) Close(ctx context.Context) error {
	if p == nil {
		return nil
	}
	var err error
	p.once.Do(func() {
		p.mu.Lock()
		started := p.started
		p.mu.Unlock()
		if started {
			close(p.stop)
			select {
			case <-p.done:
				err = p.lastErr
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		if e := p.Flush(ctx); e != nil && err == nil {
			err = e
		}
	})
	return err
}

// Buffered is the number of records (rows to be) waiting to be written.
func (p *Profiler) Buffered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.buf) + len(p.sums)
}

func (p *Profiler) writer() {
	defer close(p.done)
	t := time.NewTicker(p.cfg.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			p.lastErr = p.Flush(context.Background())
			return
		case <-t.C:
		case <-p.wake:
		}
		_ = p.WriteDue(context.Background(), time.Now())
	}
}

// WriteDue writes what the background writer writes at now: the records
// buffered, and the summaries of the seconds that ended summaryGrace before
// now (all of them once FlushAt rows wait).
func (p *Profiler) WriteDue(ctx context.Context, now time.Time) error {
	return p.flush(ctx, now.Add(-summaryGrace))
}

// summaryGrace is how long after its second ends the writer writes that
// second's summary rows: the requests that started in it and were still
// being served at its end have mostly been recorded by then, so that a
// second's requests of one route, path, method and status make one row,
// not one per write that fell in it.
const summaryGrace = 250 * time.Millisecond

// writeBatch bounds one COPY of the writer.
const writeBatch = 10000

// Flush writes everything buffered now.
func (p *Profiler) Flush(ctx context.Context) error { return p.flush(ctx, time.Time{}) }

// flush writes the records buffered and the summaries of the seconds that
// ended by until (every summary when until is zero). The others wait for a
// later write, unless FlushAt rows are waiting (the early write that wakes
// the writer: a second's requests over that many routes, paths, methods
// and statuses, say): then all go, as the buffer must drain. Summaries of
// a second over a minute after until go too: the wall clock stepped back,
// and their second would not end before it caught up.
func (p *Profiler) flush(ctx context.Context, until time.Time) error {
	p.mu.Lock()
	batch, sums := p.buf, p.sums
	p.buf, p.sums = nil, nil
	if !until.IsZero() && len(batch)+len(sums) < p.cfg.FlushAt {
		cut := until.Unix() // a second before it ended by until
		for k, v := range sums {
			if k.sec >= cut && k.sec <= cut+60 {
				if p.sums == nil {
					p.sums = map[sumKey]sumVal{}
				}
				p.sums[k] = v
				delete(sums, k)
			}
		}
	}
	dropped := p.dropped
	p.dropped = 0
	p.mu.Unlock()
	if dropped > 0 {
		p.warns.Warn(ctx, "self-profiling buffer full: measurements dropped", "", "dropped", dropped, "buffer_size", p.cfg.BufferSize)
	}
	all := make([]store.Measurement, 0, len(batch)+len(sums))
	for _, e := range batch {
		all = append(all, e.record())
	}
	for k, v := range sums {
		all = append(all, k.record(v))
	}
	var firstErr error
	for len(all) > 0 {
		n := min(len(all), writeBatch)
		recs := all[:n]
		budget := maxIsolationWrites
		lost, err := p.write(ctx, recs, &budget)
		p.written.Add(float64(n - lost))
		if err != nil {
			p.failures.Inc()
			p.drops.WithLabelValues("write_failed").Add(float64(lost))
			// During an outage every flush fails alike: one line every
			// warnlimit.Every (the records lost are counted in
			// telemetry_selfprofile_dropped_total).
			p.warns.Error(ctx, "self-profiling: writing measurements failed", "", "count", lost, "batch", n,
				"data_error", dataError(err), "error", err.Error())
			if firstErr == nil {
				firstErr = err
			}
		}
		all = all[n:]
	}
	return firstErr
}

// maxIsolationWrites bounds the extra writes that look for the records at
// fault in a refused batch: about 2·log2(n) per bad record (28 for one in
// 10,000), so a few hundred allow several; past it, the undecided rest of
// the batch is dropped rather than hammering the database.
const maxIsolationWrites = 256

// write inserts recs and returns how many were lost. A batch the database
// refuses for its data (a record no cleaning foresaw) is split in halves,
// recursively, so that only the records at fault are lost; a connection
// failure loses the batch, as retrying it piecemeal would fail the same.
// err is the first failure, nil when nothing was lost.
func (p *Profiler) write(ctx context.Context, recs []store.Measurement, budget *int) (lost int, err error) {
	wctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
	_, err = p.w.Insert(wctx, recs)
	cancel()
	if err == nil {
		return 0, nil
	}
	if len(recs) == 1 || !dataError(err) || *budget < 2 || ctx.Err() != nil {
		return len(recs), err
	}
	*budget -= 2
	h := len(recs) / 2
	lost1, err1 := p.write(ctx, recs[:h], budget)
	lost2, err2 := p.write(ctx, recs[h:], budget)
	return lost1 + lost2, cmp.Or(err1, err2)
}

// dataError reports whether the database refused what a batch holds
// rather than failing itself.
func dataError(err error) bool {
	return errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrTooLarge)
}

// add buffers e unless the buffer is full or closed.
func (p *Profiler) add(e entry) {
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		p.drops.WithLabelValues("closed").Inc()
		return
	case len(p.buf)+len(p.sums) >= p.cfg.BufferSize:
		p.dropped++
		p.mu.Unlock()
		p.drops.WithLabelValues("buffer_full").Inc()
		return
	}
	p.buf = append(p.buf, e)
	full := len(p.buf)+len(p.sums) >= p.cfg.FlushAt
	p.mu.Unlock()
	p.recorded.Inc()
	if full {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

func (p *Profiler) excluded(path string) bool {
	for _, e := range p.exclude {
		if path == e {
			return true
		}
	}
	for _, e := range p.prefix {
		if strings.HasPrefix(path, e) {
			return true
		}
	}
	return false
}

// Served is what the HTTP layer saw of one request it served.
type Served struct {
	Request     *http.Request
	Start, End  time.Time
	Status      int
	Route       string // the route pattern that matched, or "unmatched"
	OperationID string // "" for routes outside the OpenAPI document
	RequestID   string
}

// Record buffers one served request as a measurement, unless its path is
// excluded or sampling leaves it out. It never blocks: a full buffer drops
// the record (counted). The HTTP layer calls it after each request.
func (p *Profiler) Record(s Served) {
	if p == nil {
		return
	}
	r := s.Request
	if p.excluded(r.URL.Path) || (p.cfg.Sample < 1 && rand.Float64() >= p.cfg.Sample) {
		return
	}
	if !p.detailed(s.End.Unix()) {
		p.summarise(s)
		return
	}
	// Everything kept is clipped and copied here (sanitize.go); redaction
	// and cleaning happen in the writer, off the request path.
	e := entry{start: s.Start, end: s.End, method: Method(r.Method), op: clip(s.OperationID, maxValue),
		path: clip(r.URL.Path, maxValue), rawQuery: clip(r.URL.RawQuery, maxQuery),
		ip: clip(clientIP(r.RemoteAddr), maxValue), status: s.Status, pattern: clip(s.Route, maxValue)}
	e.params = pathParams(r)
	for _, name := range recordedHeaders {
		if v := r.Header.Get(name); v != "" {
			e.headers = append(e.headers, [2]string{name, clip(v, maxValue)})
		}
	}
	if r.Host != "" {
		e.headers = append(e.headers, [2]string{"Host", clip(r.Host, maxValue)})
	}
	if s.RequestID != "" {
		e.headers = append(e.headers, [2]string{"X-Request-Id", clip(s.RequestID, maxValue)})
	}
	p.add(e)
}

// recordedHeaders are the request headers kept in the context. It is an
// allow-list: credentials (Authorization, Cookie, Proxy-Authorization, API
// key headers) never get in. Referer may carry a query: its secret-looking
// values are redacted like the request's own.
var recordedHeaders = []string{"Accept", "Accept-Encoding", "Accept-Language", "Content-Type", "Content-Length",
	"Origin", "Referer", "User-Agent", "X-Forwarded-For"}

// OtherMethod is the method recorded for a request whose method is none of
// the standard ones (Method).
const OtherMethod = "OTHER"

// Method is the method a request is recorded with: one of the nine methods
// of RFC 9110 and RFC 5789 (those POST /api/measurements accepts), or
// OtherMethod for any other token. net/http serves any token as a method
// (a 404 or 405), and each one recorded as sent became a value of the
// measurements' method for as long as the rollups keep it (400 days by
// default): one more key of every methodDistribution answer over its
// window, rows of measurements_method_hourly and, per path, of every open
// collection's totals, at a client's will (found by an audit of long
// runs). The request's log line still names the method it sent.
// The method returned is the package's constant, not the request's string,
// so a summary's key keeps no memory of the request.
func Method(m string) string {
	for _, s := range standardMethods {
		if m == s {
			return s
		}
	}
	return OtherMethod
}

// standardMethods are the methods Method records as they are.
var standardMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace}

func clientIP(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// record turns an entry into a measurement in the seed's shape. Every
// string is cleaned (sanitize.go), so that no request can make a record
// PostgreSQL refuses, and secret-looking query values are redacted in args,
// url and the Referer alike.
func (e entry) record() store.Measurement {
	kwargs := make(map[string]string, len(e.params))
	for _, kv := range e.params {
		kwargs[clean(kv[0], maxValue)] = clean(kv[1], maxValue)
	}
	query, parts := redactQuery(e.rawQuery)
	args := map[string]string{}
	for _, q := range parts {
		if len(args) >= maxArgs {
			break
		}
		if _, seen := args[q.key]; !seen && q.key != "" {
			args[q.key] = q.value
		}
	}
	headers := make(map[string]string, len(e.headers))
	for _, kv := range e.headers {
		v := kv[1]
		if kv[0] == "Referer" {
			v = redactURL(v)
		}
		headers[kv[0]] = clean(v, maxValue)
	}
	path := clean(e.path, maxValue)
	uri := path
	if e.rawQuery != "" {
		uri += "?" + query
	}
	ctx := map[string]any{"url": clean(uri, maxURL), "path": path, "args": args, "headers": headers,
		"ip": clean(e.ip, maxValue), "status": e.status}
	if op := clean(e.op, maxValue); op != "" {
		ctx["func"] = op
	}
	kj, _ := json.Marshal(kwargs)
	cj, _ := json.Marshal(ctx)
	name := clean(e.pattern, maxValue)
	if name == "" {
		name = "unmatched"
	}
	// measurements_ended_after_started and _elapsed_nonnegative: times
	// without a monotonic reading (set by a caller) could go backwards.
	end := e.end
	if end.Before(e.start) {
		end = e.start
	}
	return store.Measurement{
		StartedAt: e.start, EndedAt: end, Elapsed: end.Sub(e.start).Seconds(),
		Name: name, Method: e.method, Args: []byte("[]"), Kwargs: kj, Context: cj, App: App,
	}
}
