package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/testdb"
	"github.com/telemetry/telemetry/internal/tlsfiles/tlsfilestest"
)

// serve with TLS_CERT_FILE and TLS_KEY_FILE: HTTPS on LISTEN_ADDR, HTTP/1.1
// only (a client offering h2 gets HTTP/1.1), plain HTTP to the port a 400,
// failed handshakes counted and kept out of the log's warnings, the
// certificate's expiry in /metrics, the healthcheck over HTTPS, a renewal
// served without a restart, and a renewal that does not make a pair
// refused while the previous certificate goes on.
func TestServeTLS(t *testing.T) {
	t.Parallel()
	url := testdb.Empty(t)
	dir := t.TempDir()
	a := tlsfilestest.New(t, "telemetry-a", time.Now().Add(24*time.Hour))
	certFile, keyFile := a.Write(t, dir)
	vars := map[string]string{"DATABASE_URL": url, "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret,
		"TLS_CERT_FILE": certFile, "TLS_KEY_FILE": keyFile,
		"SELF_PROFILE": "false", "SELF_SAMPLE_INTERVAL": "0", "MAINTENANCE_INTERVAL": "0"}
	if err := run(context.Background(), []string{"migrate"}, env(vars), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	base, stop, done, logs := startServeLogged(t, vars)
	addr, ok := strings.CutPrefix(base, "https://")
	if !ok {
		t.Fatalf("serving on %s, want https://", base)
	}
	b := tlsfilestest.New(t, "telemetry-b", time.Now().Add(48*time.Hour))
	roots := x509.NewCertPool()
	roots.AddCert(a.Leaf)
	roots.AddCert(b.Leaf)
	// A new connection for each request, offering HTTP/2 as browsers do.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots},
		ForceAttemptHTTP2: true, DisableKeepAlives: true}}
	fetch := func(path string) (*http.Response, string) {
		t.Helper()
		res, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, string(body)
	}
	served := func() string {
		t.Helper()
		res, _ := fetch("/readyz")
		if res.StatusCode != http.StatusOK {
			t.Fatalf("readyz: %s", res.Status)
		}
		return res.TLS.PeerCertificates[0].Subject.CommonName
	}
	metric := func(sample string) float64 {
		t.Helper()
		_, text := fetch("/metrics")
		return metricIn(t, text, sample)
	}

	res, _ := fetch("/readyz")
	if res.StatusCode != http.StatusOK || res.Proto != "HTTP/1.1" || res.TLS.NegotiatedProtocol != "http/1.1" {
		t.Fatalf("readyz: %s over %s (ALPN %q), want 200 over HTTP/1.1", res.Status, res.Proto, res.TLS.NegotiatedProtocol)
	}
	if got := res.TLS.PeerCertificates[0].Subject.CommonName; got != "telemetry-a" {
		t.Fatalf("serving %q, want telemetry-a", got)
	}
	if got := metric("telemetry_tls_certificate_expiry_timestamp_seconds"); got != float64(a.Leaf.NotAfter.Unix()) {
		t.Fatalf("expiry %v, want %d", got, a.Leaf.NotAfter.Unix())
	}

	// An HTTP/1.0 client names its protocol in ALPN (curl -0 offers
	// http/1.0 alone): it is served, not refused in the handshake.
	http10, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, NextProtos: []string{"http/1.0"}})
	if err != nil {
		t.Fatalf("a TLS client offering http/1.0: %v", err)
	}
	if _, err := io.WriteString(http10, "GET /readyz HTTP/1.0\r\nHost: "+addr+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res10, err := http.ReadResponse(bufio.NewReader(http10), nil)
	if err != nil {
		t.Fatal(err)
	}
	res10.Body.Close()
	http10.Close()
	if res10.StatusCode != http.StatusOK || http10.ConnectionState().NegotiatedProtocol != "http/1.0" {
		t.Fatalf("HTTP/1.0 over TLS: %s (ALPN %q), want 200 (http/1.0)", res10.Status, http10.ConnectionState().NegotiatedProtocol)
	}

	// Plain HTTP to the HTTPS port, and a TCP check that connects and
	// closes: two failed handshakes, counted.
	plain, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	plain.Body.Close()
	if plain.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP to the HTTPS port: %s, want 400", plain.Status)
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	eventually(t, "two failed handshakes counted", func() bool { return metric("telemetry_tls_handshake_errors_total") == 2 })

	// The healthcheck speaks HTTPS when TLS_CERT_FILE is set, and fails
	// when it is not (it then speaks plain HTTP to an HTTPS port).
	hc := map[string]string{"LISTEN_ADDR": addr, "TLS_CERT_FILE": certFile, "TLS_KEY_FILE": keyFile}
	if err := run(context.Background(), []string{"healthcheck"}, env(hc), io.Discard, io.Discard); err != nil {
		t.Fatalf("healthcheck over HTTPS: %v", err)
	}
	if err := run(context.Background(), []string{"healthcheck"}, env(map[string]string{"LISTEN_ADDR": addr}), io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "LISTEN_ADDR serves HTTPS") {
		t.Fatalf("healthcheck over plain HTTP to the HTTPS port: %v, want a failure that says the port speaks HTTPS", err)
	}

	// A renewal: both files replaced. A scraper that keeps its connection
	// open, alone on the service (no handshake to look at the files), sees
	// the renewed certificate's expiry, not an expiry that would page
	// someone about a certificate already renewed on disk.
	var handshakes atomic.Int32
	scraper := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots,
		VerifyConnection: func(tls.ConnectionState) error { handshakes.Add(1); return nil }}}}
	scrape := func() float64 {
		t.Helper()
		res, err := scraper.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		text, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return metricIn(t, string(text), "telemetry_tls_certificate_expiry_timestamp_seconds")
	}
	scrape()
	b.Write(t, dir)
	eventually(t, "the renewed certificate's expiry scraped", func() bool { return scrape() == float64(b.Leaf.NotAfter.Unix()) })
	if n := handshakes.Load(); n != 1 {
		t.Fatalf("the scraper made %d handshakes, want 1 (its connection kept)", n)
	}
	// The next connections get it.
	eventually(t, "the renewed certificate served", func() bool { return served() == "telemetry-b" })

	// A certificate without its key: refused, counted, said, and the
	// previous pair served meanwhile.
	c := tlsfilestest.New(t, "telemetry-c", time.Now().Add(time.Hour))
	tlsfilestest.WriteFile(t, certFile, c.CertPEM)
	eventually(t, "the broken renewal counted", func() bool {
		if got := served(); got != "telemetry-b" {
			t.Fatalf("serving %q with telemetry-c's certificate and telemetry-b's key, want telemetry-b", got)
		}
		return metric("telemetry_tls_certificate_reload_failures_total") == 1
	})
	time.Sleep(1500 * time.Millisecond) // a look at the unchanged files more
	if got := served(); got != "telemetry-b" || metric("telemetry_tls_certificate_reload_failures_total") != 1 {
		t.Fatalf("serving %q, reload failures %v: want telemetry-b, the broken files counted once", got,
			metric("telemetry_tls_certificate_reload_failures_total"))
	}

	stop()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	log := logs.String()
	for _, want := range []string{`"msg":"serving HTTPS"`, `"subject":"CN=telemetry-a"`,
		`"msg":"TLS certificate files changed: serving the new certificate"`, `"subject":"CN=telemetry-b"`} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %s:\n%s", want, log)
		}
	}
	if n := strings.Count(log, "do not make a valid pair"); n != 1 {
		t.Errorf("the broken renewal said %d times, want once:\n%s", n, log)
	}
	if strings.Contains(log, "TLS handshake error") {
		t.Errorf("failed handshakes logged above DEBUG:\n%s", log)
	}
	noErrorsLogged(t, "serve", logs)
}

// TLS_CERT_FILE and TLS_KEY_FILE go together, and their files are read
// before the database is reached.
func TestServeTLSSettings(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := tlsfilestest.New(t, "x", time.Now().Add(time.Hour)).Write(t, dir)
	for _, c := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"TLS_CERT_FILE": certFile}, "set both TLS_CERT_FILE and TLS_KEY_FILE"},
		{map[string]string{"TLS_KEY_FILE": keyFile}, "set both TLS_CERT_FILE and TLS_KEY_FILE"},
		{map[string]string{"TLS_CERT_FILE": dir + "/none.pem", "TLS_KEY_FILE": keyFile}, "TLS_CERT_FILE: stat " + dir + "/none.pem"},
		{map[string]string{"TLS_CERT_FILE": keyFile, "TLS_KEY_FILE": certFile}, "TLS_CERT_FILE " + keyFile + " and TLS_KEY_FILE " + certFile},
	} {
		// An address nothing answers on: the TLS check must come first.
		c.vars["DATABASE_URL"], c.vars["JWT_SECRET"] = "postgres://nobody@127.0.0.1:1/none?connect_timeout=1", testSecret
		c.vars["DATABASE_WAIT"] = "0"
		err := run(context.Background(), []string{"serve"}, env(c.vars), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve with %v: %v, want an error with %q", c.vars, err, c.want)
		}
	}
}
