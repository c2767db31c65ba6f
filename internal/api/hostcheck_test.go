package api

import (
	"net/http"
	"testing"

	"github.com/telemetry/telemetry/internal/config"
)

// DNS rebinding: with the default of a loopback listener (config.LocalHosts,
// `make run`), a request whose Host is another site's name is a 421 problem
// on every operation, alias, and every other path (the token endpoint, the
// dashboard, /metrics, the probes), before anything is read or stored;
// localhost and IP addresses, probes' included, pass. Before ALLOWED_HOSTS,
// a page on evil.example resolving to 127.0.0.1 got a token from
// POST /mrd/token and wrote with it.
func TestAllowedHostsEveryPath(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) {
		c.EnableTokenEndpoint = true
		c.AllowedHosts = config.LocalHosts
	})
	auth := bearer(t)
	before := rowCounts(t, s)
	paths := everyPath(t)
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/ui/", "/docs", "/openapi.json", "/no/such/path"} {
		paths = append(paths, pathCase{get, p, nil})
	}
	for _, c := range paths {
		for _, host := range []string{"evil.example", "evil.example:8080", "localhost.evil.example", "evil.localhost:8080", "127.0.0.1.evil.example"} {
			res := s.do(c.method, c.path, c.body, append([]string{"Host", host}, auth...)...)
			pr := res.problem(t, http.StatusMisdirectedRequest)
			if len(pr.Errors) != 1 || pr.Errors[0].Title != "allowedHosts" || pr.Errors[0].Location != "header.Host" ||
				pr.Errors[0].Value != host {
				t.Errorf("%s %s with Host %s: %s", c.method, c.path, host, res.Body)
			}
		}
	}
	if after := rowCounts(t, s); after != before {
		t.Fatalf("requests to other hosts changed the tables: %s -> %s", before, after)
	}
	for _, host := range []string{"localhost", "localhost:8080", "LocalHost.:8080", "127.0.0.1:8080", "[::1]:8080", "10.1.2.3", "[fe80::1%25eth0]:80"} {
		for _, p := range []string{"/healthz", "/readyz", "/metrics", "/ui/"} {
			s.do(get, p, nil, "Host", host).wantStatus(t, http.StatusOK)
		}
		s.do(post, "/mrd/token", "{}", "Host", host).wantStatus(t, http.StatusOK)
	}
}

// ALLOWED_HOSTS names, wildcards and ports; unset on every interface (the
// configuration's default for :8080), any Host passes, as before.
func TestAllowedHostsList(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ALLOWED_HOSTS": "telemetry.example.com, *.apps.example:8443"}
	cfg, err := config.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, func(c *config.Config) { c.AllowedHosts = cfg.AllowedHosts })
	for host, want := range map[string]int{
		"telemetry.example.com":      http.StatusOK,
		"Telemetry.Example.COM:9000": http.StatusOK,
		"a.apps.example:8443":        http.StatusOK,
		"a.b.apps.example:8443":      http.StatusOK,
		"a.apps.example":             http.StatusMisdirectedRequest,
		"a.apps.example:443":         http.StatusMisdirectedRequest,
		"apps.example:8443":          http.StatusMisdirectedRequest,
		"localhost:8080":             http.StatusMisdirectedRequest,
		"example.com":                http.StatusMisdirectedRequest,
		"192.0.2.7:8080":             http.StatusOK,
	} {
		if res := s.do(get, "/healthz", nil, "Host", host); res.Status != want {
			t.Errorf("Host %s: %d, want %d", host, res.Status, want)
		}
	}
	open := newTestServer(t)
	for _, host := range []string{"evil.example", "telemetry.example.com"} {
		open.do(get, "/healthz", nil, "Host", host).wantStatus(t, http.StatusOK)
	}
}
