// Package metrics holds the service's Prometheus metrics: HTTP requests by route,
// database pool figures and batch sizes, on a registry of its own (no global
// default registry, so tests can build as many servers as they like).
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the set of collectors the service updates.
type Metrics struct {
	Registry        *prometheus.Registry
	Requests        *prometheus.CounterVec
	RequestDuration *prometheus.HistogramVec
	BatchItems      *prometheus.HistogramVec
	// Exports counts the CSV and NDJSON exports by format and outcome
	// (complete, failed: cut short by a database error after the first
	// byte, client_gone, busy: refused because EXPORTS_MAX were
	// streaming, interrupted: ended by the server's shutdown once
	// SHUTDOWN_TIMEOUT ran out, too_slow: cut because its client read
	// slower than EXPORT_MIN_RATE or not for WRITE_TIMEOUT), and
	// ExportRows the rows they wrote, whatever the outcome.
	Exports    *prometheus.CounterVec
	ExportRows *prometheus.CounterVec
	// BodyBytesHeld is the bytes of request bodies over 1 MiB being read
	// or served under BODY_MEMORY_BYTES, and BodiesWaiting the bodies
	// waiting for room in it.
	BodyBytesHeld prometheus.Gauge
	BodiesWaiting prometheus.Gauge
	// JWTPrevious counts the requests accepted with a token signed by
	// JWT_PREVIOUS_SECRET, while the secret is rotated.
	JWTPrevious prometheus.Counter
}

// New registers the HTTP, batch, Go runtime and process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		Registry: reg,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telemetry_http_requests_total",
			Help: "HTTP requests served, by method, route pattern and status code.",
		}, []string{"method", "route", "status"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "telemetry_http_request_duration_seconds",
			Help:    "Time to serve HTTP requests, by method and route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
		BatchItems: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "telemetry_batch_items",
			Help:    "Items per ingest batch, by resource: flows and measurements per accepted request; device_metrics per shared commit of PUT /mrd reports (one report is one item, a commit holds the reports of many requests).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}, []string{"resource"}),
		Exports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telemetry_exports_total",
			Help: "CSV and NDJSON exports by format and outcome: complete, failed, client_gone (once streaming), busy (refused: EXPORTS_MAX streaming already), interrupted (ended by the server's shutdown after SHUTDOWN_TIMEOUT), too_slow (cut: its client read slower than EXPORT_MIN_RATE, or nothing for WRITE_TIMEOUT).",
		}, []string{"format", "outcome"}),
		ExportRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "telemetry_export_rows_total",
			Help: "Rows written by CSV and NDJSON exports, by format, whatever their outcome (a client cut or gone may not have read them all).",
		}, []string{"format"}),
		BodyBytesHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telemetry_request_body_bytes_held",
			Help: "Bytes of request bodies over 1 MiB being read or served (at most BODY_MEMORY_BYTES).",
		}),
		BodiesWaiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "telemetry_request_bodies_waiting",
			Help: "Request bodies over 1 MiB waiting for BODY_MEMORY_BYTES to have room.",
		}),
		JWTPrevious: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telemetry_jwt_previous_secret_total",
			Help: "Requests whose token was signed with JWT_PREVIOUS_SECRET (the secret being rotated out); once it stays flat for the longest token lifetime in use, unset JWT_PREVIOUS_SECRET.",
		}),
	}
	reg.MustRegister(m.Requests, m.RequestDuration, m.BatchItems, m.Exports, m.ExportRows, m.BodyBytesHeld, m.BodiesWaiting, m.JWTPrevious,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// PoolStats are the connection pool's figures.
type PoolStats struct {
	MaxConns, Acquired, Idle, Constructing int32
	Acquires, EmptyAcquires                int64
	AcquireTime                            time.Duration
}

// RegisterPool exports the figures of the connection pool of DATABASE_URL
// (telemetry_db_pool_*), read by stats at each scrape.
func (m *Metrics) RegisterPool(stats func() PoolStats) {
	m.Registry.MustRegister(&poolCollector{descs: newPoolDescs("telemetry_db_pool_", "The pool's"), stats: stats})
}

// RegisterReplicaPool exports the figures of the read replica's pool
// (DATABASE_READ_URL: telemetry_db_replica_pool_*), read by stats at each
// scrape.
func (m *Metrics) RegisterReplicaPool(stats func() PoolStats) {
	m.Registry.MustRegister(&poolCollector{descs: newPoolDescs("telemetry_db_replica_pool_", "The read replica's pool's"), stats: stats})
}

// RegisterKeptCells exports the heap the grouped view's kept sealed cells
// hold and their bound (telemetry_measurements_kept_cells_bytes and
// _limit_bytes), read by stats at each scrape.
func (m *Metrics) RegisterKeptCells(stats func() (size, limit int64)) {
	m.Registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "telemetry_measurements_kept_cells_bytes",
			Help: "Heap the sealed cells GET /api/measurements/grouped keeps in memory hold now (the least recently used go first past the limit)."},
			func() float64 { n, _ := stats(); return float64(n) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "telemetry_measurements_kept_cells_limit_bytes",
			Help: "The kept sealed cells' bound, MEASUREMENTS_KEPT_CELLS_BYTES (0: none kept)."},
			func() float64 { _, n := stats(); return float64(n) }))
}

// poolDescs are a pool's metrics.
type poolDescs struct{ maxConns, total, acquires, waits, waitSecs *prometheus.Desc }

func newPoolDescs(prefix, whose string) poolDescs {
	return poolDescs{
		maxConns: prometheus.NewDesc(prefix+"max_conns", whose+" largest number of connections it may open.", nil, nil),
		total:    prometheus.NewDesc(prefix+"conns", whose+" connections open, by state.", []string{"state"}, nil),
		acquires: prometheus.NewDesc(prefix+"acquires_total", whose+" connections handed out.", nil, nil),
		waits:    prometheus.NewDesc(prefix+"empty_acquires_total", whose+" acquires that had to wait for a connection.", nil, nil),
		waitSecs: prometheus.NewDesc(prefix+"acquire_seconds_total", whose+" time spent acquiring connections.", nil, nil),
	}
}

type poolCollector struct {
	descs poolDescs
	stats func() PoolStats
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.descs.maxConns
	ch <- c.descs.total
	ch <- c.descs.acquires
	ch <- c.descs.waits
	ch <- c.descs.waitSecs
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s, d := c.stats(), c.descs
	ch <- prometheus.MustNewConstMetric(d.maxConns, prometheus.GaugeValue, float64(s.MaxConns))
	ch <- prometheus.MustNewConstMetric(d.total, prometheus.GaugeValue, float64(s.Acquired), "acquired")
	ch <- prometheus.MustNewConstMetric(d.total, prometheus.GaugeValue, float64(s.Idle), "idle")
	ch <- prometheus.MustNewConstMetric(d.total, prometheus.GaugeValue, float64(s.Constructing), "constructing")
	ch <- prometheus.MustNewConstMetric(d.acquires, prometheus.CounterValue, float64(s.Acquires))
	ch <- prometheus.MustNewConstMetric(d.waits, prometheus.CounterValue, float64(s.EmptyAcquires))
	ch <- prometheus.MustNewConstMetric(d.waitSecs, prometheus.CounterValue, s.AcquireTime.Seconds())
}

// TLS is what serve counts of HTTPS on LISTEN_ADDR (TLS_CERT_FILE).
type TLS struct {
	// HandshakeErrors counts the connections whose TLS handshake failed
	// (a load balancer's TCP check, a scanner, a client that does not
	// trust the certificate, plain HTTP sent to the HTTPS port);
	// ReloadFailures the changes of the certificate files that did not
	// make a valid pair (the previous one is still served).
	HandshakeErrors prometheus.Counter
	ReloadFailures  prometheus.Counter
}

// RegisterTLS exports the TLS counters and the served certificate's
// expiry (telemetry_tls_certificate_expiry_timestamp_seconds, read by
// notAfter at each scrape), for an alert well before it comes.
func (m *Metrics) RegisterTLS(notAfter func() time.Time) TLS {
	t := TLS{
		HandshakeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telemetry_tls_handshake_errors_total",
			Help: "Connections to LISTEN_ADDR whose TLS handshake failed (logged at DEBUG only: a load balancer's TCP check makes one each time).",
		}),
		ReloadFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "telemetry_tls_certificate_reload_failures_total",
			Help: "Changes of TLS_CERT_FILE or TLS_KEY_FILE that did not make a valid pair; the previous certificate is still served.",
		}),
	}
	m.Registry.MustRegister(t.HandshakeErrors, t.ReloadFailures,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "telemetry_tls_certificate_expiry_timestamp_seconds",
			Help: "When the certificate served on LISTEN_ADDR expires (its NotAfter), in seconds since the Unix epoch."},
			func() float64 { return float64(notAfter().Unix()) }))
	return t
}
