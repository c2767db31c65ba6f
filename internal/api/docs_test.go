package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/telemetry/telemetry/internal/config"
)

// Behind a reverse proxy that serves the API under /telemetry/ and strips
// the prefix, the docs page, its assets and the document all load, and the
// document's server (BASE_PATH) is where Swagger UI sends its requests.
func TestDocsBehindPathPrefix(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.BasePath = "/telemetry" })
	backend, _ := url.Parse(s.URL)
	proxy := newHTTPTest(t, &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(backend)
		r.Out.URL.Path = strings.TrimPrefix(r.In.URL.Path, "/telemetry")
		r.Out.URL.RawPath = ""
	}})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	fetch := func(u *url.URL) (int, http.Header, string) {
		t.Helper()
		res, err := client.Get(u.String())
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, string(b)
	}

	page, _ := url.Parse(proxy.URL + "/telemetry/docs")
	status, _, html := fetch(page)
	if status != http.StatusOK {
		t.Fatalf("page: %d", status)
	}
	if !strings.Contains(html, "<div id=\"swagger-ui\">") {
		t.Fatalf("page: %s", html)
	}
	refs := regexp.MustCompile(`(?:href|src)="([^"]*)"`).FindAllStringSubmatch(html, -1)
	if len(refs) < 4 {
		t.Fatalf("page refers to %d assets: %s", len(refs), html)
	}
	for _, m := range refs {
		ref, err := url.Parse(m[1])
		if err != nil || ref.IsAbs() || strings.HasPrefix(m[1], "/") {
			t.Errorf("asset URL %q is not relative", m[1])
			continue
		}
		u := page.ResolveReference(ref)
		if st, _, body := fetch(u); st != http.StatusOK || len(body) == 0 {
			t.Errorf("%s: %d", u.Path, st)
		}
	}

	// init.js: the document's URL (relative, resolved against the page) and
	// persistAuthorization.
	_, _, initJS := fetch(page.ResolveReference(&url.URL{Path: "docs/init.js"}))
	m := regexp.MustCompile(`url: "([^"]*)"`).FindStringSubmatch(initJS)
	if m == nil || strings.HasPrefix(m[1], "/") || !strings.Contains(initJS, "persistAuthorization: true") {
		t.Fatalf("init.js: %s", initJS)
	}
	docURL := page.ResolveReference(&url.URL{Path: m[1]})
	if docURL.Path != "/telemetry/openapi.json" {
		t.Fatalf("document URL resolves to %s", docURL.Path)
	}
	st, _, body := fetch(docURL)
	var doc struct {
		Servers []struct{ URL string } `json:"servers"`
	}
	if st != http.StatusOK || json.Unmarshal([]byte(body), &doc) != nil || len(doc.Servers) != 1 || doc.Servers[0].URL != "/telemetry" {
		t.Fatalf("document through the proxy: %d servers %+v", st, doc.Servers)
	}
	// A request to the server the document names reaches the API.
	api := page.ResolveReference(&url.URL{Path: doc.Servers[0].URL + "/healthz"})
	if st, _, _ := fetch(api); st != http.StatusOK {
		t.Fatalf("%s: %d", api, st)
	}

	// Pagination links go through the proxy too.
	res, err := client.Get(proxy.URL + "/telemetry/flows?hour=1&size=1")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if link := res.Header.Get("Link"); !strings.HasPrefix(link, "</telemetry/flows?") {
		t.Errorf("Link %q lacks the prefix", link)
	}

	// /docs/ and /docs/index.html send the browser back to the page, under
	// the prefix.
	for _, p := range []string{"/telemetry/docs/", "/telemetry/docs/index.html"} {
		u, _ := url.Parse(proxy.URL + p)
		st, h, _ := fetch(u)
		loc, err := url.Parse(h.Get("Location"))
		if st != http.StatusMovedPermanently || err != nil || u.ResolveReference(loc).Path != "/telemetry/docs" {
			t.Errorf("%s: %d Location %q", p, st, h.Get("Location"))
		}
	}
}

// Without BASE_PATH the document's server is /.
func TestDocumentServerDefault(t *testing.T) {
	t.Parallel()
	if sv := Spec().Servers; len(sv) != 1 || sv[0].URL != "/" {
		t.Fatalf("servers %+v", sv)
	}
}

// The static files (the docs page's assets, the dashboard) answer their
// errors as problems too, not net/http's plain text.
func TestStaticFilesAnswerProblems(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, c := range []struct {
		method, path string
		header       []string
		status       int
	}{
		{"GET", "/docs/missing.js", nil, http.StatusNotFound},
		{"GET", "/ui/missing.js", nil, http.StatusNotFound},
		{"POST", "/ui/", nil, http.StatusMethodNotAllowed},
		{"GET", "/ui/", []string{"Range", "bytes=99999999-"}, http.StatusRequestedRangeNotSatisfiable},
	} {
		res := s.do(c.method, c.path, nil, c.header...)
		p := res.problem(t, c.status)
		if c.status == http.StatusMethodNotAllowed && (res.Header.Get("Allow") == "" || !strings.Contains(p.Detail, "GET, HEAD")) {
			t.Errorf("%s %s: Allow %q, detail %q", c.method, c.path, res.Header.Get("Allow"), p.Detail)
		}
		if c.status == http.StatusNotFound && p.Detail != "no resource at "+c.path {
			t.Errorf("%s %s: detail %q", c.method, c.path, p.Detail)
		}
	}
	// What they serve is unchanged.
	s.do("GET", "/ui/", nil).wantStatus(t, http.StatusOK)
	s.do("GET", "/docs", nil).wantStatus(t, http.StatusOK)
}

// GET / (where a browser opened on the service's address lands) is a 404
// that names the docs and the dashboard, under BASE_PATH when it is set;
// it used to say only "no resource at /".
func TestRootNamesTheDocsAndTheDashboard(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"", "/telemetry"} {
		s := newTestServer(t, func(c *config.Config) { c.BasePath = prefix })
		p := s.do("GET", "/", nil).problem(t, http.StatusNotFound)
		for _, want := range []string{"no resource at /", prefix + "/docs", prefix + "/openapi.json", prefix + "/ui/"} {
			if !strings.Contains(p.Detail, want) {
				t.Errorf("BASE_PATH %q: GET / detail %q lacks %q", prefix, p.Detail, want)
			}
		}
		// Other unknown paths keep the short detail.
		if p := s.do("GET", "/nope", nil).problem(t, http.StatusNotFound); p.Detail != "no resource at /nope" {
			t.Errorf("GET /nope detail %q", p.Detail)
		}
	}
}

// The Swagger UI page and its files may not be framed (the page keeps a
// token for "Try it out") and load nothing from another origin.
func TestDocsSecurityHeaders(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for _, path := range []string{"/docs", "/docs/init.js", "/docs/swagger-ui.css"} {
		r := s.do("GET", path, nil).wantStatus(t, http.StatusOK)
		csp := r.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'self'") ||
			!strings.Contains(csp, "script-src 'self';") || r.Header.Get("X-Frame-Options") != "DENY" {
			t.Fatalf("%s: Content-Security-Policy %q, X-Frame-Options %q", path, csp, r.Header.Get("X-Frame-Options"))
		}
	}
}
