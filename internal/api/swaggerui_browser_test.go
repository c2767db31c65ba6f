package api

import (
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"

	"github.com/telemetry/telemetry/internal/config"
)

// Swagger UI in headless Chromium, behind a reverse proxy that serves the API
// under /telemetry/ and strips the prefix (BASE_PATH=/telemetry), with reads
// needing a token (AUTH_READS=true): a user authorizes with a bearer token,
// reloads the page, and "Try it out" on GET /mrd/devices still sends the
// token (persistAuthorization) through the prefix and gets a 200. Logging out
// clears what was kept, and the same call then gets a 401.
func TestSwaggerUIKeepsTokenAcrossReloadBehindPrefix(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.BasePath = "/telemetry"; c.AuthReads = true })
	backend, _ := url.Parse(s.URL)
	var mu calls
	proxy := newHTTPTest(t, &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		if strings.HasPrefix(r.In.URL.Path, "/telemetry/mrd/") {
			mu.add(r.In.URL.Path + " " + r.In.Header.Get("Authorization"))
		}
		r.SetURL(backend)
		r.Out.URL.Path = strings.TrimPrefix(r.In.URL.Path, "/telemetry")
		r.Out.URL.RawPath = ""
	}})
	tb := newTab(t, newBrowser(t))
	// The 401 of the last call is expected in the browser's log.
	tb.expect(func(e *cdplog.Entry) bool { return strings.Contains(e.Text, "401") })
	page := proxy.URL + "/telemetry/docs"
	op := `document.querySelector('[id$="-listDevices"]')`
	load := func() {
		t.Helper()
		tb.run(chromedp.Navigate(page))
		value(tb, chromedp.Poll[bool](op+` !== null && document.querySelector(".btn.authorize") !== null`,
			chromedp.WithPollingTimeout(time.Minute)))
	}
	// execute expands listDevices, presses Execute and returns the status
	// Swagger UI shows for the live response.
	execute := func() string {
		t.Helper()
		if !eval[bool](tb, op+`.classList.contains("is-open")`) {
			eval[bool](tb, op+`.querySelector("button.opblock-summary-control").click() || true`)
		}
		value(tb, chromedp.Poll[bool](op+`.querySelector(".btn.execute") !== null`, chromedp.WithPollingTimeout(time.Minute)))
		eval[bool](tb, `(() => { const l = `+op+`.querySelector(".live-responses-table"); if (l) l.remove(); return true })()`)
		eval[bool](tb, op+`.querySelector(".btn.execute").click() || true`)
		return value(tb, chromedp.Poll[string](`(() => { const c = `+op+`.querySelector(".live-responses-table tbody .response-col_status"); return c ? c.innerText.trim() : false })()`,
			chromedp.WithPollingTimeout(time.Minute)))
	}

	load()
	token := validToken(t)
	// Authorize: the bearerAuth form of the modal.
	eval[bool](tb, `document.querySelector(".btn.authorize").click() || true`)
	form := `[...document.querySelectorAll(".modal-ux .auth-container")].find((c) => c.innerText.includes("bearerAuth"))`
	value(tb, chromedp.Poll[bool](form+` !== undefined`, chromedp.WithPollingTimeout(time.Minute)))
	tb.run(chromedp.SendKeys(chromedp.CSS(`.modal-ux .auth-container input`), token))
	eval[bool](tb, `(`+form+`).querySelector("button.authorize").click() || true`)
	value(tb, chromedp.Poll[bool](`(`+form+`).querySelector('button[aria-label="Remove authorization"]') !== null`, chromedp.WithPollingTimeout(time.Minute)))
	eval[bool](tb, `document.querySelector(".modal-ux button.btn-done").click() || true`)

	// Reloaded, the page still holds the token.
	load()
	if kept := eval[string](tb, `localStorage.getItem("authorized") || ""`); !strings.Contains(kept, token) {
		t.Fatalf("after a reload localStorage.authorized = %q, want the token", kept)
	}
	if got := execute(); !strings.HasPrefix(got, "200") {
		t.Fatalf("Try it out after a reload: status %q, want 200 (requests: %q)", got, mu.all())
	}
	if calls := mu.all(); len(calls) != 1 || calls[0] != "/telemetry/mrd/devices Bearer "+token {
		t.Fatalf("requests through the proxy: %q", calls)
	}

	// Log out: nothing kept, and the call is refused.
	eval[bool](tb, `document.querySelector(".btn.authorize").click() || true`)
	value(tb, chromedp.Poll[bool](`(`+form+`)?.querySelector('button[aria-label="Remove authorization"]') != null`, chromedp.WithPollingTimeout(time.Minute)))
	eval[bool](tb, `(`+form+`).querySelector('button[aria-label="Remove authorization"]').click() || true`)
	eval[bool](tb, `document.querySelector(".modal-ux button.btn-done").click() || true`)
	load()
	if kept := eval[string](tb, `localStorage.getItem("authorized") || ""`); strings.Contains(kept, token) {
		t.Fatalf("after logging out localStorage.authorized still holds the token: %q", kept)
	}
	if got := execute(); !strings.HasPrefix(got, "401") {
		t.Fatalf("Try it out after logging out: status %q, want 401", got)
	}
	if calls := mu.all(); len(calls) != 2 || calls[1] != "/telemetry/mrd/devices " {
		t.Fatalf("requests through the proxy: %q", calls)
	}
	tb.clean()
}

// calls is a list of strings appended to from the proxy's goroutines.
type calls struct {
	mu   sync.Mutex
	list []string
}

func (c *calls) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.list = append(c.list, s)
}

func (c *calls) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.list)
}

// TestSwaggerUIUnderAPrefixWithoutBasePath: behind a proxy serving the
// service under /telemetry, BASE_PATH unset, "Try it out" sends its requests
// under the prefix, where the page is (an audit found them sent to the
// host's root, which the proxy does not serve).
func TestSwaggerUIUnderAPrefixWithoutBasePath(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	proxy := newPrefixProxy(t, s.URL)
	tb := newTab(t, newBrowser(t))
	tb.run(chromedp.Navigate(proxy.URL + "/telemetry/docs"))
	op := `document.querySelector('[id$="-listCollections"]')`
	value(tb, chromedp.Poll[bool](op+` !== null`, chromedp.WithPollingTimeout(time.Minute)))
	eval[bool](tb, op+`.querySelector("button.opblock-summary-control").click() || true`)
	value(tb, chromedp.Poll[bool](op+`.querySelector(".btn.execute") !== null`, chromedp.WithPollingTimeout(time.Minute)))
	eval[bool](tb, op+`.querySelector(".btn.execute").click() || true`)
	got := value(tb, chromedp.Poll[string](`(() => { const c = `+op+`.querySelector(".live-responses-table tbody .response-col_status"); return c ? c.innerText.trim() : false })()`,
		chromedp.WithPollingTimeout(time.Minute)))
	if !strings.HasPrefix(got, "200") {
		t.Errorf("Try it out: status %q, want 200", got)
	}
	if out := proxy.outside(); len(out) > 0 {
		t.Errorf("requests outside /telemetry/: %v", out)
	}
	tb.clean()
}
