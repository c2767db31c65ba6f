package main

import (
	"crypto/tls"
	"log"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/tlsfiles"
)

// serverTLS is LISTEN_ADDR's TLS configuration for the pair of
// TLS_CERT_FILE and TLS_KEY_FILE, with its counters registered on prom.
//
// HTTP/1.1 only: every rule of "Security and timeouts" (README) is written
// and tested for HTTP/1.1 framing (a chunked body closing its connection,
// Connection: close after a refused Expect, an HTTP/1.0 export reset when
// cut), so HTTP/2 is not offered through ALPN; http/1.0 is, for the
// clients that name it (curl -0 offers it alone, and crypto/tls refuses a
// handshake whose client offers no protocol the server lists). TLS 1.2 at
// least, with Go's default cipher suites and curves.
func serverTLS(pair *tlsfiles.Pair, log *slog.Logger, prom *metrics.Metrics) (*tls.Config, metrics.TLS) {
	// A scrape looks at the files as a handshake does: a scraper that
	// keeps its connection, alone on an idle service, would otherwise see
	// the expiry of a certificate already renewed on disk.
	counters := prom.RegisterTLS(func() time.Time {
		c, _ := pair.GetCertificate(nil)
		return c.Leaf.NotAfter
	})
	logCertificate(log, "serving HTTPS", pair.Certificate())
	pair.OnReload = func(c *tls.Certificate) {
		logCertificate(log, "TLS certificate files changed: serving the new certificate", c)
	}
	pair.OnError = func(err error) {
		counters.ReloadFailures.Inc()
		log.Warn("TLS certificate files changed but do not make a valid pair: serving the previous certificate until they do",
			"error", err.Error())
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1", "http/1.0"},
		GetCertificate: pair.GetCertificate,
	}, counters
}

// logCertificate says which certificate is served (at WARN once it has
// expired: clients refuse it).
func logCertificate(log *slog.Logger, msg string, c *tls.Certificate) {
	leaf := c.Leaf
	attrs := []any{"subject", leaf.Subject.String(), "dns_names", leaf.DNSNames, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339)}
	if time.Now().After(leaf.NotAfter) {
		log.Warn(msg+" (it has expired: clients refuse it)", attrs...)
		return
	}
	log.Info(msg, attrs...)
}

// serverErrorLog is the HTTP server's ErrorLog: its lines at WARN, except
// failed TLS handshakes, which are counted (handshakes, when not nil) and
// logged at DEBUG. A load balancer's TCP check, which opens a connection
// and closes it, is one such failure each time (net/http logs it as
// "http: TLS handshake error from ...: EOF"), and so is every scanner.
func serverErrorLog(l *slog.Logger, handshakes prometheus.Counter) *log.Logger {
	return log.New(serverLogWriter{l, handshakes}, "", 0)
}

type serverLogWriter struct {
	log        *slog.Logger
	handshakes prometheus.Counter
}

func (w serverLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSuffix(string(p), "\n")
	if w.handshakes != nil && strings.HasPrefix(msg, "http: TLS handshake error") {
		w.handshakes.Inc()
		w.log.Debug(msg)
		return len(p), nil
	}
	w.log.Warn(msg)
	return len(p), nil
}
