package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ReplicaStats are the figures of the read replica (DATABASE_READ_URL).
type ReplicaStats struct {
	// Up: the last probe reached the replica, in recovery, of the primary's database.
	Up bool
	// Lag: how far behind the primary the replica was at the last probe
	// that reached it (0 when it had replayed everything).
	Lag time.Duration
	// InUse: the replica serves the lag-tolerant reads now (up and no more
	// than READ_MAX_LAG behind).
	InUse bool
	// Reads served by each pool, and reads the replica failed that the
	// primary answered again.
	PrimaryReads, ReplicaReads, Fallbacks int64
	// Probes: lag measurements done.
	Probes int64
}

// RegisterReplica exports the read replica's figures, read by stats at
// each scrape.
func (m *Metrics) RegisterReplica(stats func() ReplicaStats) {
	m.Registry.MustRegister(&replicaCollector{stats: stats})
}

var (
	replicaUp        = prometheus.NewDesc("telemetry_db_replica_up", "1 when the last probe reached the read replica, it is in recovery and its database is the primary's.", nil, nil)
	replicaLag       = prometheus.NewDesc("telemetry_db_replica_lag_seconds", "How far the read replica was behind the primary at its last probe (0: it had replayed everything the primary had written).", nil, nil)
	replicaInUse     = prometheus.NewDesc("telemetry_db_replica_in_use", "1 when the lag-tolerant reads go to the read replica (up and within READ_MAX_LAG), 0 when they go to the primary.", nil, nil)
	replicaReads     = prometheus.NewDesc("telemetry_db_reads_total", "Lag-tolerant reads, by the pool that served them (primary or replica).", []string{"pool"}, nil)
	replicaProbes    = prometheus.NewDesc("telemetry_db_replica_probes_total", "Measurements of the read replica's lag (one per second, or four per READ_MAX_LAG when shorter).", nil, nil)
	replicaFallbacks = prometheus.NewDesc("telemetry_db_replica_fallbacks_total", "Reads the replica could not answer (unreachable, cancelled by replay, row not there yet) that the primary answered.", nil, nil)
)

type replicaCollector struct{ stats func() ReplicaStats }

func (c *replicaCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- replicaUp
	ch <- replicaLag
	ch <- replicaInUse
	ch <- replicaReads
	ch <- replicaFallbacks
	ch <- replicaProbes
}

func (c *replicaCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(replicaUp, prometheus.GaugeValue, b2f(s.Up))
	ch <- prometheus.MustNewConstMetric(replicaLag, prometheus.GaugeValue, s.Lag.Seconds())
	ch <- prometheus.MustNewConstMetric(replicaInUse, prometheus.GaugeValue, b2f(s.InUse))
	ch <- prometheus.MustNewConstMetric(replicaReads, prometheus.CounterValue, float64(s.PrimaryReads), "primary")
	ch <- prometheus.MustNewConstMetric(replicaReads, prometheus.CounterValue, float64(s.ReplicaReads), "replica")
	ch <- prometheus.MustNewConstMetric(replicaFallbacks, prometheus.CounterValue, float64(s.Fallbacks))
	ch <- prometheus.MustNewConstMetric(replicaProbes, prometheus.CounterValue, float64(s.Probes))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
