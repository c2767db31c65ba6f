// Package runtimestats samples the server process's own CPU, garbage
// collection and memory figures into the runtime_samples table, which the
// collections API (appmetrics) aggregates.
//
// A Sampler reads /proc/self/stat, /proc/stat and runtime/metrics every
// interval and writes one row describing the interval since its previous
// reading, tagged with an instance id drawn when the Sampler is built. Every
// process sharing the database writes its own series; the readers aggregate
// across them.
package runtimestats

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/warnlimit"
)

// Config tunes a Sampler. Zero values take the defaults noted.
type Config struct {
	// Interval between samples (default 5 s).
	Interval time.Duration
	// First is the delay before the first sample after Start (default
	// Interval, at most 1 s), so that a fresh collection has data soon.
	First time.Duration
	// WriteTimeout bounds one insert (default 10 s).
	WriteTimeout time.Duration
	// ProcRoot is where proc(5) is mounted (default /proc).
	ProcRoot string
}

// Sample is one row of runtime_samples: the figures of one instance over
// the interval that ends at Time. CPU and RSS are nil when /proc could not
// be read.
type Sample = store.RuntimeSample

// Writer stores samples; *postgres.RuntimeSamples is one.
type Writer interface {
	Insert(ctx context.Context, s store.RuntimeSample) error
}

// Sampler takes and writes samples. A nil *Sampler does nothing, so callers
// can call its methods unconditionally.
type Sampler struct {
	w     Writer
	log   *slog.Logger
	warns *warnlimit.Limiter // write failures, one line of a kind every warnlimit.Every
	cfg   Config
	id    [16]byte

	mu      sync.Mutex // serialises readings: each delta is against the one before
	prev    reading
	procErr bool // the last /proc read failed (logged once per failure streak)

	ctx     context.Context // cancelled by Close: stops the loop and any insert in flight
	cancel  context.CancelFunc
	done    chan struct{}
	started bool
	once    sync.Once

	written, failures prometheus.Counter
}

// New builds a Sampler writing through w and takes its baseline reading. reg (may be nil) receives its metrics. Call Start to sample
// periodically and Close to stop.
func New(w Writer, log *slog.Logger, reg prometheus.Registerer, cfg Config) *Sampler {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.First <= 0 {
		cfg.First = min(cfg.Interval, time.Second)
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sampler{
		w: w, log: log, warns: warnlimit.New(log), cfg: cfg,
		done: make(chan struct{}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telemetry_runtime_samples_written_total",
			Help: "Runtime samples (CPU, GC, memory of this process) written to runtime_samples.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telemetry_runtime_samples_failed_total",
			Help: "Runtime samples lost because the database refused the insert.",
		}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	// Version 4 (random) UUID.
	_, _ = rand.Read(s.id[:])
	s.id[6] = s.id[6]&0x0f | 0x40
	s.id[8] = s.id[8]&0x3f | 0x80
	if reg != nil {
		reg.MustRegister(s.written, s.failures)
	}
	s.prev = s.read()
	return s
}

// InstanceID is the id this process's rows carry, as a UUID string.
func (s *Sampler) InstanceID() string {
	if s == nil {
		return ""
	}
	b := s.id
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Start samples once after Config.First and then every Config.Interval,
// in the background, until Close.
func (s *Sampler) Start() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return
	}
	s.started = true
	s.log.Info("runtime sampler started", "instance_id", s.InstanceID(), "interval", s.cfg.Interval.String())
	go s.loop()
}

func (s *Sampler) loop() {
	defer close(s.done)
	t := time.NewTimer(s.cfg.First)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
		if _, err := s.Sample(ctx); err != nil && s.ctx.Err() == nil {
			// During an outage every sample fails alike: one line every
			// warnlimit.Every.
			s.warns.Error(ctx, "runtime sampler: writing a sample failed", "", "error", err.Error())
		}
		cancel()
		t.Reset(s.cfg.Interval)
	}
}

// Close stops the background sampling and waits for it. Safe to call twice
// and before Start.
func (s *Sampler) Close() {
	if s == nil {
		return
	}
	s.once.Do(func() {
		s.mu.Lock()
		started := s.started
		s.started = true // no Start after Close
		s.mu.Unlock()
		s.cancel()
		if started {
			<-s.done
		}
	})
}

// Sample takes a reading now and writes the row for the interval since the
// previous one (the baseline taken by New, or the last Sample).
func (s *Sampler) Sample(ctx context.Context) (Sample, error) {
	s.mu.Lock()
	cur := s.read()
	smp, ok := delta(s.prev, cur)
	if ok {
		s.prev = cur
	}
	s.mu.Unlock()
	if !ok {
		return smp, errors.New("runtime sample: no time elapsed since the previous reading")
	}
	smp.InstanceID = uuid.UUID(s.id)
	if err := s.w.Insert(ctx, smp); err != nil {
		s.failures.Inc()
		return smp, err // the store's error says what failed
	}
	s.written.Inc()
	return smp, nil
}

// reading is the raw, cumulative figures at one moment.
type reading struct {
	at     time.Time // carries the monotonic clock: intervals use it
	proc   procStat
	procOK bool

	gcCPU, gcPause float64 // cumulative seconds since the process started
	gcCycles       uint64
	gomaxprocs     uint64
	heapLive       uint64
	goMemory       uint64
	goroutines     uint64
}

// The runtime/metrics read, in the order of the fields of reading.
const (
	mGCCPU = iota
	mGCPause
	mGCCycles
	mGOMAXPROCS
	mHeapLive
	mGoMemory
	mGoroutines
)

var metricNames = [...]string{
	mGCCPU:      "/cpu/classes/gc/total:cpu-seconds",
	mGCPause:    "/sched/pauses/total/gc:seconds",
	mGCCycles:   "/gc/cycles/total:gc-cycles",
	mGOMAXPROCS: "/sched/gomaxprocs:threads",
	mHeapLive:   "/gc/heap/live:bytes",
	mGoMemory:   "/memory/classes/total:bytes",
	mGoroutines: "/sched/goroutines:goroutines",
}

// read takes a reading. Figures the platform lacks stay zero (runtime) or
// mark the reading (/proc).
func (s *Sampler) read() reading {
	var samples [len(metricNames)]metrics.Sample
	for i, n := range metricNames {
		samples[i].Name = n
	}
	metrics.Read(samples[:])
	r := reading{at: time.Now()}
	r.gcCPU = float64Of(samples[mGCCPU].Value)
	if v := samples[mGCPause].Value; v.Kind() == metrics.KindFloat64Histogram {
		r.gcPause = histogramSum(v.Float64Histogram())
	}
	r.gcCycles = uint64Of(samples[mGCCycles].Value)
	r.gomaxprocs = uint64Of(samples[mGOMAXPROCS].Value)
	r.heapLive = uint64Of(samples[mHeapLive].Value)
	r.goMemory = uint64Of(samples[mGoMemory].Value)
	r.goroutines = uint64Of(samples[mGoroutines].Value)

	var err error
	r.proc, err = readProc(s.cfg.ProcRoot)
	r.procOK = err == nil
	if err != nil && !s.procErr {
		s.log.Warn("runtime sampler: cannot read /proc; CPU and resident memory are left out of samples", "error", err.Error())
	}
	s.procErr = err != nil
	return r
}

func float64Of(v metrics.Value) float64 {
	if v.Kind() == metrics.KindFloat64 {
		return v.Float64()
	}
	return 0
}

func uint64Of(v metrics.Value) uint64 {
	if v.Kind() == metrics.KindUint64 {
		return v.Uint64()
	}
	return 0
}

// histogramSum estimates the sum of the values a cumulative histogram
// counted, taking each bucket's midpoint (the finite bound for the open
// buckets at the ends).
func histogramSum(h *metrics.Float64Histogram) float64 {
	var sum float64
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		lo, hi := h.Buckets[i], h.Buckets[i+1]
		var mid float64
		switch {
		case math.IsInf(lo, -1) && math.IsInf(hi, 1):
			continue
		case math.IsInf(lo, -1):
			mid = hi
		case math.IsInf(hi, 1):
			mid = lo
		default:
			mid = (lo + hi) / 2
		}
		sum += float64(c) * max(mid, 0)
	}
	return sum
}

// delta turns two readings into the sample of the interval between them;
// ok is false when no time passed.
func delta(prev, cur reading) (smp Sample, ok bool) {
	d := cur.at.Sub(prev.at)
	if d <= 0 {
		return Sample{}, false
	}
	smp = Sample{
		Time: cur.at, Interval: d,
		GCCPUSeconds:   max(cur.gcCPU-prev.gcCPU, 0),
		GCPauseSeconds: max(cur.gcPause-prev.gcPause, 0),
		GCCycles:       int64(cur.gcCycles - min(prev.gcCycles, cur.gcCycles)),
		GOMAXPROCS:     int32(max(cur.gomaxprocs, 1)),
		HeapLiveBytes:  clampInt64(cur.heapLive),
		GoMemoryBytes:  clampInt64(cur.goMemory),
		Goroutines:     clampInt64(cur.goroutines),
	}
	if cur.procOK {
		rss := clampInt64(uint64(cur.proc.rssPages)) * int64(os.Getpagesize())
		smp.RSSBytes = &rss
	}
	if cur.procOK && prev.procOK && cur.proc.totalTicks > prev.proc.totalTicks {
		total := float64(cur.proc.totalTicks - prev.proc.totalTicks)
		var busy, proc float64
		if idle := subOrZero(cur.proc.idleTicks, prev.proc.idleTicks); idle < total {
			busy = (total - idle) / total
		}
		proc = subOrZero(cur.proc.processTicks, prev.proc.processTicks) / total
		busy, proc = fraction(busy), fraction(proc)
		smp.SystemCPU, smp.ProcessCPU = &busy, &proc
	}
	return smp, true
}

func subOrZero(a, b uint64) float64 {
	if a < b {
		return 0
	}
	return float64(a - b)
}

// fraction clamps to 0..1: tick accounting of a process and of the machine
// are sampled at slightly different moments.
func fraction(f float64) float64 { return min(max(f, 0), 1) }

func clampInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}
