package api

import (
	"net/http"
	"testing"

	"github.com/telemetry/telemetry/internal/config"
)

// Every write, and every alias's, answers 403 to a browser's request from
// another origin (Sec-Fetch-Site, or Origin against Host without it) before
// reading anything, and stores nothing; reads, this origin's pages and
// clients other than browsers pass.
func TestCrossOriginWritesRefusedEveryOperation(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.EnableTokenEndpoint = true })
	auth := bearer(t)
	before := rowCounts(t, s)
	writes := 0
	for _, c := range everyPath(t) {
		for _, h := range [][]string{
			{"Sec-Fetch-Site", "cross-site"},
			{"Sec-Fetch-Site", "same-site"},
			{"Origin", "http://elsewhere.example"},
		} {
			res := s.do(c.method, c.path, c.body, append(h, auth...)...)
			if c.method == get {
				if res.Status == http.StatusForbidden {
					t.Errorf("%s %s with %s: %s: a read refused", c.method, c.path, h[0], res.Body)
				}
				continue
			}
			writes++
			pr := res.problem(t, http.StatusForbidden)
			if len(pr.Errors) != 1 || pr.Errors[0].Title != "crossOrigin" || pr.Errors[0].Location != "header."+h[0] ||
				pr.Errors[0].Value != h[1] {
				t.Errorf("%s %s with %s: %s", c.method, c.path, h[0], res.Body)
			}
		}
	}
	if writes < 3*10 {
		t.Fatalf("only %d refused writes tried", writes)
	}
	if after := rowCounts(t, s); after != before {
		t.Fatalf("refused writes changed the tables: %s -> %s", before, after)
	}
	// This origin's pages (Swagger UI, the dashboard), a user's own
	// navigation, and a same-host Origin write.
	flow := `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":1}]`
	for _, h := range [][]string{{"Sec-Fetch-Site", "same-origin"}, {"Sec-Fetch-Site", "none"}, {"Origin", s.URL}} {
		s.do(post, "/flows", flow, h...).wantStatus(t, http.StatusCreated)
	}
}

// TestCrossOriginTrustedOrigins: behind a reverse proxy that rewrites Host,
// a browser reaching it over plain HTTP sends Origin (the proxy's public
// origin) and no Sec-Fetch-Site; TRUSTED_ORIGINS lets that origin's pages
// write (an audit found the dashboard's own writes refused there), and no
// other.
func TestCrossOriginTrustedOrigins(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) {
		c.TrustedOrigins = []string{"http://telemetry.example:8080", "https://telemetry.example"}
	})
	for _, origin := range []string{"http://telemetry.example:8080", "https://telemetry.example"} {
		s.do(post, collectionsPath, nil, "Origin", origin).wantStatus(t, http.StatusCreated)
	}
	for _, origin := range []string{"http://telemetry.example", "http://elsewhere.example:8080"} {
		s.do(post, collectionsPath, nil, "Origin", origin).problem(t, http.StatusForbidden)
	}
	s.do(post, collectionsPath, nil, "Origin", "http://elsewhere.example", "Sec-Fetch-Site", "cross-site").problem(t, http.StatusForbidden)
}
