// Package selfprofile records every request the service serves as a
// measurement of its own (app = "telemetry"), the way flask-profiler
// profiles a Flask application. The HTTP layer hands it each request it
// served (Record), which goes into a bounded in-memory buffer; a background writer COPYs the
// buffer into the measurements table at least every second and once more at
// Close. Recording never blocks or fails a request: when the buffer is full,
// records are dropped, counted in /metrics and logged.
package selfprofile

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telemetry/telemetry/internal/store"
)

// App is the app name of the service's own measurements.
const App = "telemetry"

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
}

// DefaultExclude is SELF_PROFILE_EXCLUDE's default: probes, metrics, docs
// and the OpenAPI documents.
var DefaultExclude = []string{"/healthz", "/readyz", "/metrics", "/docs*", "/openapi*"}

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
	cfg     Config
	exclude []string
	prefix  []string

	mu      sync.Mutex
	buf     []entry
	closed  bool
	dropped int64 // since the last log line

	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	started bool
	once    sync.Once

	recorded, written prometheus.Counter
	drops             *prometheus.CounterVec
	failures          prometheus.Counter
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
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Profiler{
		w: w, log: log, cfg: cfg,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		recorded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telemetry_selfprofile_recorded_total",
			Help: "Requests the service recorded about itself (after sampling and exclusions).",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telemetry_selfprofile_written_total",
			Help: "Self-profiling measurements written to the database.",
		}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telemetry_selfprofile_dropped_total",
			Help: "Self-profiling measurements lost, by reason: buffer_full (more requests than the writer keeps up with), write_failed (the database refused the batch), closed (recorded after shutdown).",
		}, []string{"reason"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telemetry_selfprofile_write_failures_total",
			Help: "Self-profiling batches the database refused.",
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
			Help: "Self-profiling measurements waiting to be written.",
		}, func() float64 { return float64(p.Buffered()) })
		reg.MustRegister(p.recorded, p.written, p.drops, p.failures, buffered)
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
// recorded afterwards are dropped (reason closed). Call it after the HTTP
// server has shut down and before the pool closes. Safe to call twice.
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

// Buffered is the number of records waiting to be written.
func (p *Profiler) Buffered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.buf)
}

func (p *Profiler) writer() {
	defer close(p.done)
	t := time.NewTicker(p.cfg.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			_ = p.Flush(context.Background())
			return
		case <-t.C:
		case <-p.wake:
		}
		_ = p.Flush(context.Background())
	}
}

// writeBatch bounds one COPY of the writer.
const writeBatch = 10000

// Flush writes everything buffered now.
func (p *Profiler) Flush(ctx context.Context) error {
	p.mu.Lock()
	batch := p.buf
	p.buf = nil
	dropped := p.dropped
	p.dropped = 0
	p.mu.Unlock()
	if dropped > 0 {
		p.log.Warn("self-profiling buffer full: measurements dropped", "dropped", dropped, "buffer_size", p.cfg.BufferSize)
	}
	var firstErr error
	for len(batch) > 0 {
		n := min(len(batch), writeBatch)
		recs := make([]store.Measurement, n)
		for i := range recs {
			recs[i] = batch[i].record()
		}
		wctx, cancel := context.WithTimeout(ctx, p.cfg.WriteTimeout)
		_, err := p.w.Insert(wctx, recs)
		cancel()
		if err != nil {
			p.failures.Inc()
			p.drops.WithLabelValues("write_failed").Add(float64(n))
			p.log.Error("self-profiling: writing measurements failed", "count", n, "error", err.Error())
			if firstErr == nil {
				firstErr = err
			}
		} else {
			p.written.Add(float64(n))
		}
		batch = batch[n:]
	}
	return firstErr
}

// add buffers e unless the buffer is full or closed.
func (p *Profiler) add(e entry) {
	p.mu.Lock()
	switch {
	case p.closed:
		p.mu.Unlock()
		p.drops.WithLabelValues("closed").Inc()
		return
	case len(p.buf) >= p.cfg.BufferSize:
		p.dropped++
		p.mu.Unlock()
		p.drops.WithLabelValues("buffer_full").Inc()
		return
	}
	p.buf = append(p.buf, e)
	full := len(p.buf) >= p.cfg.FlushAt
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
	e := entry{start: s.Start, end: s.End, method: r.Method, op: s.OperationID, path: r.URL.Path,
		rawQuery: r.URL.RawQuery, ip: clientIP(r.RemoteAddr), status: s.Status, pattern: s.Route}
	if rc := chi.RouteContext(r.Context()); rc != nil {
		for i, k := range rc.URLParams.Keys {
			if k != "*" && i < len(rc.URLParams.Values) {
				e.params = append(e.params, [2]string{k, rc.URLParams.Values[i]})
			}
		}
	}
	for _, name := range recordedHeaders {
		if v := r.Header.Get(name); v != "" {
			e.headers = append(e.headers, [2]string{name, v})
		}
	}
	if r.Host != "" {
		e.headers = append(e.headers, [2]string{"Host", r.Host})
	}
	if s.RequestID != "" {
		e.headers = append(e.headers, [2]string{"X-Request-Id", s.RequestID})
	}
	p.add(e)
}

// recordedHeaders are the request headers kept in the context. It is an
// allow-list: credentials (Authorization, Cookie, API keys) never get in.
var recordedHeaders = []string{"Accept", "Accept-Encoding", "Accept-Language", "Content-Type", "Content-Length",
	"Origin", "Referer", "User-Agent", "X-Forwarded-For"}

func clientIP(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// record turns an entry into a measurement in the seed's shape.
func (e entry) record() store.Measurement {
	kwargs := make(map[string]string, len(e.params))
	for _, kv := range e.params {
		kwargs[kv[0]] = kv[1]
	}
	args := map[string]string{}
	if e.rawQuery != "" {
		for _, part := range strings.Split(e.rawQuery, "&") {
			k, v, _ := strings.Cut(part, "=")
			if uk, err := url.QueryUnescape(k); err == nil {
				k = uk
			}
			if uv, err := url.QueryUnescape(v); err == nil {
				v = uv
			}
			if _, seen := args[k]; !seen && k != "" {
				args[k] = v
			}
		}
	}
	headers := make(map[string]string, len(e.headers))
	for _, kv := range e.headers {
		headers[kv[0]] = kv[1]
	}
	uri := e.path
	if e.rawQuery != "" {
		uri += "?" + e.rawQuery
	}
	ctx := map[string]any{"url": uri, "path": e.path, "args": args, "headers": headers, "ip": e.ip, "status": e.status}
	if e.op != "" {
		ctx["func"] = e.op
	}
	kj, _ := json.Marshal(kwargs)
	cj, _ := json.Marshal(ctx)
	return store.Measurement{
		StartedAt: e.start, EndedAt: e.end, Elapsed: e.end.Sub(e.start).Seconds(),
		Name: e.pattern, Method: e.method, Args: []byte("[]"), Kwargs: kj, Context: cj, App: App,
	}
}
