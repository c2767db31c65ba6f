package api

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// prefixProxy is a reverse proxy serving the service under /telemetry and
// stripping it, as README "Configuration" (BASE_PATH) describes; a request
// outside the prefix gets its 404, and every path asked for is recorded.
type prefixProxy struct {
	*httptest.Server
	mu    sync.Mutex
	paths []string
}

func newPrefixProxy(t *testing.T, backend string) *prefixProxy {
	t.Helper()
	target, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	p := &prefixProxy{}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target) // Host becomes the backend's, as a proxy's default is
		r.Out.URL.Path = strings.TrimPrefix(r.In.URL.Path, "/telemetry")
		r.Out.URL.RawPath = ""
	}}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.paths = append(p.paths, r.URL.Path)
		p.mu.Unlock()
		if r.URL.Path != "/telemetry" && !strings.HasPrefix(r.URL.Path, "/telemetry/") {
			http.NotFound(w, r)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p
}

// outside are the paths asked for outside the prefix.
func (p *prefixProxy) outside() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, path := range p.paths {
		if !strings.HasPrefix(path, "/telemetry/") {
			out = append(out, path)
		}
	}
	return out
}

// TestDashboardUnderAPrefix: behind a reverse proxy that serves the service
// under /telemetry (BASE_PATH unset, as the docs page needs it unset too),
// the dashboard loads its files, reads the API and links its pages under
// the prefix: every page, a page one level deeper, its links, a download
// and a write (an audit found every path absolute: the page loaded no
// script and no style there).
func TestDashboardUnderAPrefix(t *testing.T) {
	t.Parallel()
	ds := newDashboardServer(t, nil)
	data := seedDashboard(t, ds)
	proxy := newPrefixProxy(t, ds.URL)
	tb := newTab(t, newBrowser(t))

	// /telemetry/ui redirects to /telemetry/ui/, not to /ui/.
	tb.open(proxy.URL + "/telemetry/ui")
	if got := tb.location(); got != "/telemetry/ui/" {
		t.Errorf("after the redirect the page is %q, want /telemetry/ui/", got)
	}
	tb.title("Overview")
	tb.contains("Measurements", "Flows", "Runs", "Devices", "Collections")
	// The stylesheet applied (the header is a flex row).
	if d := eval[string](tb, `getComputedStyle(document.querySelector("header")).display`); d != "flex" {
		t.Errorf("header display %q: the stylesheet did not load", d)
	}
	links := eval[[]string](tb, `[...document.querySelectorAll("a[href]")].map((a) => a.getAttribute("href"))`)
	for _, want := range []string{"/telemetry/ui/", "/telemetry/ui/measurements", "/telemetry/ui/flows", "/telemetry/docs"} {
		if !strings.Contains(strings.Join(links, " "), want) {
			t.Errorf("no link to %s: %v", want, links)
		}
	}
	for _, l := range links {
		if !strings.HasPrefix(l, "/telemetry/") {
			t.Errorf("link %q leaves the prefix", l)
		}
	}

	// The nav's links stay right after the History API moved the page.
	tb.click(`//nav/a[normalize-space(.)="Measurements"]`)
	if got := tb.location(); got != "/telemetry/ui/measurements" {
		t.Errorf("the Measurements link went to %q", got)
	}
	tb.contains("/ui-test/orders", "/ui-test/pay")
	tb.charts(2)
	if cur := eval[string](tb, `document.querySelector("nav a[aria-current=page]")?.textContent || ""`); cur != "Measurements" {
		t.Errorf("current nav link %q, want Measurements", cur)
	}
	tb.click(`//nav/a[normalize-space(.)="Flows"]`)
	tb.contains("big-src", "svc-149")
	name, body := tb.download(`//button[normalize-space(.)="Download CSV"]`)
	if !strings.HasSuffix(name, ".csv") || !strings.Contains(body, "big-src") {
		t.Errorf("download %s:\n%s", name, body)
	}

	// A write through the proxy (the browser says same-origin).
	tb.open(proxy.URL + "/telemetry/ui/collections")
	n := tb.renders()
	tb.run(chromedp.Click(`//button[normalize-space(.)="Open a collection"]`))
	tb.waitRender(n)
	if loc := tb.location(); !strings.HasPrefix(loc, "/telemetry/ui/collections?id=") || strings.HasSuffix(loc, "id="+data.collection) {
		t.Errorf("after opening a collection the page is %q", loc)
	}

	// One level deeper: no such page, but a working one saying so, whose
	// links still lead to the pages.
	tb.open(proxy.URL + "/telemetry/ui/devices/ui-node-1")
	tb.contains("No dashboard page at /telemetry/ui/devices/ui-node-1")
	tb.click(`//nav/a[normalize-space(.)="Devices"]`)
	tb.contains("ui-node-1", "ui-node-2")

	tb.clean()
	if out := proxy.outside(); len(out) > 0 {
		t.Errorf("requests outside /telemetry/: %v", out)
	}
}

// TestDashboardKeepsTheViewOnError: a view the API refuses (a flows range
// over 744 hours) leaves the page as it was, the controls as the user set
// them to correct, under the API's reason; a shared link the API refuses
// offers the page with its defaults (an audit found the page replaced by the
// error alone, controls gone).
func TestDashboardKeepsTheViewOnError(t *testing.T) {
	t.Parallel()
	ds := newDashboardServer(t, nil)
	seedDashboard(t, ds)
	tb := newTab(t, newBrowser(t))
	tb.expect(func(e *cdplog.Entry) bool {
		return e.Source == cdplog.EntrySourceNetwork && strings.Contains(e.Text, "422")
	})

	now := time.Now().UTC().Truncate(time.Hour)
	local := func(t time.Time) string { return t.Format("2006-01-02T15:04") }
	tb.open(ds.URL + "/ui/flows?range=custom&from=" + local(now.Add(-6*time.Hour)) + "&to=" + local(now.Add(time.Hour)))
	tb.contains("big-src")

	setRange := func(from, to string) {
		t.Helper()
		n := tb.renders()
		eval[bool](tb, `(() => { const f = document.querySelector("form.filters");
			f.elements.from.value = "`+from+`"; f.elements.to.value = "`+to+`"; f.requestSubmit(); return true; })()`)
		tb.waitRender(n)
	}
	shownURL := tb.location()
	hist := eval[int](tb, `history.length`)
	setRange("2026-01-01T00:00", "2026-03-01T00:00")
	tb.contains("422", "744", "still those of the view before", "big-src")
	if h := eval[int](tb, `history.length`); h != hist {
		t.Errorf("a refused view added %d history entries", h-hist)
	}
	// The URL is the view's on screen, so that its rows and pagers act on
	// it (they carried the refused range along; found by an audit).
	if loc := tb.location(); loc != shownURL {
		t.Errorf("after a refused view the URL is %q, want the view on screen's %q", loc, shownURL)
	}
	if got := eval[[]string](tb, `(() => { const f = document.querySelector("form.filters"); return [f.elements.from.value, f.elements.to.value]; })()`); got[0] != "2026-01-01T00:00" || got[1] != "2026-03-01T00:00" {
		t.Errorf("the range controls show %v, want what the user set", got)
	}
	if n := eval[int](tb, `document.querySelectorAll("#page [role=alert]").length`); n != 1 {
		t.Errorf("%d alerts, want 1", n)
	}
	// Refused again: still one alert.
	setRange("2026-01-01T00:00", "2026-02-15T00:00")
	if n := eval[int](tb, `document.querySelectorAll("#page [role=alert]").length`); n != 1 {
		t.Errorf("after a second refusal %d alerts, want 1", n)
	}
	// Corrected: the new view, without the alert.
	setRange(local(now.Add(-2*time.Hour)), local(now.Add(time.Hour)))
	if text := tb.text(); strings.Contains(text, "422") || strings.Contains(text, "view before") || !strings.Contains(text, "big-src") {
		t.Errorf("after correcting the range:\n%s", text)
	}

	// A shared link the API refuses: its reason and the page's defaults.
	tb.open(ds.URL + "/ui/flows?range=custom&from=2026-01-01T00:00&to=2026-03-01T00:00")
	tb.contains("422", "744", "Open flows with its defaults")
	tb.click(`//a[normalize-space(.)="Open flows with its defaults"]`)
	if loc := tb.location(); loc != "/ui/flows" {
		t.Errorf("the defaults link went to %q", loc)
	}
	tb.contains("big-src")
	// Back to the refused link: the screen says what the URL is (it kept
	// the defaults' figures under the refused URL; found by an audit).
	n := tb.renders()
	eval[bool](tb, `(history.back(), true)`)
	tb.waitRender(n)
	if loc := tb.location(); !strings.Contains(loc, "from=2026-01-01") {
		t.Errorf("Back went to %q", loc)
	}
	tb.contains("422", "Open flows with its defaults")
	if strings.Contains(tb.text(), "still those of the view before") {
		t.Error("after Back the refused URL's page kept the other view's figures")
	}
	tb.clean()
}

// TestDashboardAuditedKeyboard: what a keyboard and screen reader audit
// found, each checked as a user meets it.
func TestDashboardAuditedKeyboard(t *testing.T) {
	t.Parallel()
	ds := newDashboardServer(t, nil)
	seedDashboard(t, ds)
	tb := newTab(t, newBrowser(t))
	tb.expect(func(e *cdplog.Entry) bool { return e.Source == cdplog.EntrySourceNetwork })

	// Two pagers on one page: "Next" of the second keeps the focus on the
	// second's (it went to the first's, whose Enter then paged the other
	// table).
	now := time.Now().UTC().Truncate(time.Hour)
	tb.open(ds.URL + "/ui/flows?range=custom&from=" + now.Add(-3*time.Hour).Format("2006-01-02T15:04") + "&to=" + now.Add(time.Hour).Format("2006-01-02T15:04"))
	if n := eval[int](tb, `document.querySelectorAll("nav.pager").length`); n != 2 {
		t.Fatalf("%d pagers, want 2", n)
	}
	tb.click(`(//nav[@class="pager"])[2]/button[normalize-space(.)="Next"]`)
	if !strings.Contains(tb.location(), "page=2") || strings.Contains(tb.location(), "spage=") {
		t.Errorf("the second pager's Next went to %q", tb.location())
	}
	if which := eval[int](tb, `[...document.querySelectorAll("nav.pager")].indexOf(document.activeElement.closest("nav.pager"))`); which != 1 {
		t.Errorf("the focus is in pager %d, want the second (1)", which)
	}
	if label := eval[string](tb, `document.querySelectorAll("nav.pager")[1].getAttribute("aria-label")`); label != "Pages of top talkers" {
		t.Errorf("the second pager is labelled %q", label)
	}

	// A select changes the view although a field the new choice does not
	// use is empty and required (the browser stopped it with a bubble).
	tb.open(ds.URL + "/ui/flows?range=hour")
	eval[bool](tb, `(() => { document.querySelector("input[name=hour]").value = ""; return true; })()`)
	tb.choose("range", "week")
	if loc := tb.location(); !strings.Contains(loc, "range=week") {
		t.Errorf("choosing the last 7 days with the hour empty left the page at %q", loc)
	}

	// Arrow keys on a select step through its options without loading a
	// view each; leaving it (Tab) or Enter applies the choice, once.
	tb.open(ds.URL + "/ui/runs")
	n := tb.renders()
	tb.run(chromedp.Focus(chromedp.CSS(`select[name="state"]`)))
	tb.run(chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.ArrowDown))
	if v := eval[string](tb, `document.querySelector('select[name="state"]').value`); v == "" {
		t.Fatal("the arrow keys did not change the select")
	}
	// A render starts within the change event (its state is "loading" at
	// once): none did.
	if got, state := tb.renders(), eval[string](tb, `document.body.dataset.state`); got != n || state != "ready" || strings.Contains(tb.location(), "state=") {
		t.Errorf("stepping through the select rendered %d times (state %s), URL %q", got-n, state, tb.location())
	}
	tb.run(chromedp.KeyEvent(kb.Enter))
	tb.waitRender(n)
	if got := tb.renders(); got != n+1 || !strings.Contains(tb.location(), "state=committed") {
		t.Errorf("Enter rendered %d times, URL %q, want once, state=committed", got-n, tb.location())
	}
	// A second control used while the first's view is loading adds to it
	// (the keyboard step applies on the select's blur, then the pager's
	// click: the step was lost; found by an audit).
	tb.open(ds.URL + "/ui/flows?range=custom&from=" + now.Add(-3*time.Hour).Format("2006-01-02T15:04") + "&to=" + now.Add(time.Hour).Format("2006-01-02T15:04"))
	// The step's view is held loading for a while, so that the pager is
	// clicked while it loads whatever the machine's pace (under load it
	// could be drawn first, its pager replacing the one being clicked: the
	// click then missed, a CI run's timeout).
	eval[bool](tb, `(() => { const f = window.fetch; window.fetch = (u, o) => String(u).includes("/flows")
		? new Promise((r) => setTimeout(r, 1000)).then(() => f(u, o)) : f(u, o); return true; })()`)
	tb.run(chromedp.Focus(chromedp.CSS(`select[name="by"]`)), chromedp.KeyEvent(kb.ArrowDown))
	tb.click(`(//nav[@class="pager"])[1]/button[normalize-space(.)="Next"]`)
	value(tb, chromedp.Poll[bool](`document.body.dataset.state === "ready" && location.search.includes("spage=2")`, chromedp.WithPollingTimeout(time.Minute)))
	if loc := tb.location(); !strings.Contains(loc, "by=dest_app") || !strings.Contains(loc, "spage=2") {
		t.Errorf("a keyboard step then a pager: at %q, want by=dest_app and spage=2", loc)
	}

	// But a control of the page on screen, used while a link's other page
	// is loading, acts on its own page (not on the link's).
	tb.open(ds.URL + "/ui/measurements?window=day&app=uitest")
	eval[bool](tb, `(() => { const f = window.fetch; window.fetch = (u, o) => String(u).includes("/flows")
		? new Promise((r) => setTimeout(r, 1500)).then(() => f(u, o)) : f(u, o); return true; })()`)
	eval[bool](tb, `(document.evaluate('//header//nav/a[normalize-space(.)="Flows"]', document, null, 9, null).singleNodeValue.click(), true)`)
	tb.click(`//th/button[starts-with(normalize-space(.), "Name")]`)
	if loc := tb.location(); !strings.HasPrefix(loc, "/ui/measurements?") || !strings.Contains(loc, "sort=name") {
		t.Errorf("a sort while another page loaded went to %q", loc)
	}

	// A link to the view on screen adds no history entry.
	tb.open(ds.URL + "/ui/devices")
	hist1 := eval[int](tb, `history.length`)
	tb.click(`//header//nav/a[normalize-space(.)="Devices"]`)
	tb.click(`//td/button[normalize-space(.)="ui-node-1"]`)
	tb.click(`//td/button[normalize-space(.)="ui-node-1"]`)
	if h := eval[int](tb, `history.length`); h != hist1+1 {
		t.Errorf("the same view twice: history +%d, want +1 (the device opened once)", h-hist1)
	}

	// A custom measurements window chosen from the select is written in
	// the URL, bounds and all, so that a reload shows the same.
	tb.open(ds.URL + "/ui/measurements?window=day")
	tb.choose("window", "custom")
	if loc := tb.location(); !strings.Contains(loc, "window=custom") || !strings.Contains(loc, "from=") || !strings.Contains(loc, "to=") {
		t.Errorf("a custom window from the select is at %q, want its bounds in the URL", loc)
	}
	tb.open(ds.URL + "/ui/runs?state=committed") // back where the select's checks go on

	// Leaving a custom window drops its bounds from the URL.
	tb.open(ds.URL + "/ui/measurements?window=custom&from=2026-12-05T08:00&to=2026-12-05T12:00")
	tb.choose("window", "week")
	if loc := tb.location(); strings.Contains(loc, "from=") || strings.Contains(loc, "to=") {
		t.Errorf("leaving a custom window kept its bounds: %q", loc)
	}
	// Each bar chart's "Data" table names its categories.
	tb.open(ds.URL + "/ui/flows")
	if heads := eval[[]string](tb, `[...document.querySelectorAll("figure.chart table.points thead th:first-child")].map((c) => c.textContent)`); len(heads) == 0 || slices.Contains(heads, "") {
		t.Errorf("charts' data tables' first headers: %q", heads)
	}
	// A keyboard change applied by Tab, whose next field the new view
	// removes, leaves the focus on the select (it went to the top).
	tb.open(ds.URL + "/ui/flows?range=custom&from=" + now.Add(-3*time.Hour).Format("2006-01-02T15:04") + "&to=" + now.Add(time.Hour).Format("2006-01-02T15:04"))
	n = tb.renders()
	tb.run(chromedp.Focus(chromedp.CSS(`select[name="range"]`)), chromedp.KeyEvent(kb.ArrowUp), chromedp.KeyEvent(kb.ArrowUp), chromedp.KeyEvent(kb.ArrowUp), chromedp.KeyEvent(kb.Tab))
	tb.waitRender(n)
	if name := eval[string](tb, `document.activeElement.getAttribute("name") || document.activeElement.id || document.activeElement.tagName`); name != "range" || !strings.Contains(tb.location(), "range=hour") {
		t.Errorf("after a keyboard change and Tab: focus on %q at %q, want the range select at range=hour", name, tb.location())
	}
	// At 600 pixels the page does not scroll sideways: a wide table
	// scrolls in its own box.
	tb.run(chromedp.EmulateViewport(600, 900))
	for _, page := range []string{"/ui/measurements?window=day", "/ui/flows", "/ui/runs"} {
		tb.open(ds.URL + page)
		if w := eval[int](tb, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); w > 0 {
			t.Errorf("%s at 600 px scrolls sideways by %d px", page, w)
		}
	}
	// Charts follow the window's width (they kept the one they were
	// drawn at).
	tb.run(chromedp.EmulateViewport(1280, 900))
	tb.open(ds.URL + "/ui/flows")
	wide := eval[int](tb, `document.querySelector("figure.chart canvas").getBoundingClientRect().width`)
	tb.run(chromedp.EmulateViewport(600, 900))
	if _, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](`document.querySelector("figure.chart canvas").getBoundingClientRect().width < 600 &&
		document.documentElement.scrollWidth <= document.documentElement.clientWidth`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Errorf("a chart drawn %d px wide stays %v px in a 600 px window", wide, eval[float64](tb, `document.querySelector("figure.chart canvas").getBoundingClientRect().width`))
	}
	tb.run(chromedp.EmulateViewport(1280, 900))
	if _, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](fmt.Sprintf(`document.querySelector("figure.chart canvas").getBoundingClientRect().width >= %d`, wide),
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Errorf("back at 1280 px the chart is %v px, was %d", eval[float64](tb, `document.querySelector("figure.chart canvas").getBoundingClientRect().width`), wide)
	}
	tb.open(ds.URL + "/ui/runs?state=committed")

	// Stepped away and back, then left: nothing changed, nothing loaded.
	n, hist0 := tb.renders(), eval[int](tb, `history.length`)
	tb.run(chromedp.Focus(chromedp.CSS(`select[name="state"]`)), chromedp.KeyEvent(kb.ArrowUp), chromedp.KeyEvent(kb.ArrowDown))
	eval[bool](tb, `(document.activeElement.blur(), true)`)
	if got, state := tb.renders(), eval[string](tb, `document.body.dataset.state`); got != n || state != "ready" || eval[int](tb, `history.length`) != hist0 {
		t.Errorf("a select stepped away and back rendered %d times (state %s)", got-n, state)
	}
	// A choice made in the select's opened list (Space opens it, Enter
	// picks) applies at once, as with the pointer (it waited for the user
	// to leave the select; found by a review).
	n = tb.renders()
	tb.run(chromedp.Focus(chromedp.CSS(`select[name="state"]`)), chromedp.KeyEvent(" "), chromedp.KeyEvent(kb.ArrowUp), chromedp.KeyEvent(kb.Enter))
	tb.waitRender(n)
	if got := tb.renders(); got != n+1 || !strings.Contains(tb.location(), "state=running") {
		t.Errorf("a choice in the opened list rendered %d times, URL %q, want once, state=running", got-n, tb.location())
	}
	// A keyboard step, then a pick with the pointer: applied once (the
	// pending step applied again on the replaced select's blur; found by a
	// review).
	hist := eval[int](tb, `history.length`)
	n = tb.renders()
	tb.run(chromedp.Focus(chromedp.CSS(`select[name="state"]`)), chromedp.KeyEvent(kb.ArrowUp))
	eval[bool](tb, `(() => { const s = document.querySelector('select[name="state"]'); s.dispatchEvent(new PointerEvent("pointerdown", {bubbles: true}));
		s.value = ""; s.dispatchEvent(new Event("change", {bubbles: true})); return true; })()`)
	tb.waitRender(n)
	eval[bool](tb, `(document.activeElement && document.activeElement.blur(), true)`)
	if got, state := tb.renders(), eval[string](tb, `document.body.dataset.state`); got != n+1 || state != "ready" || eval[int](tb, `history.length`) != hist+1 {
		t.Errorf("a keyboard step then a pointer pick rendered %d times (state %s), history +%d", got-n, state, eval[int](tb, `history.length`)-hist)
	}

	// A keyboard step held back, then a link to another page clicked: the
	// step is dropped on the select's blur (the link's page replaces the
	// view), so no view of it is loaded, and there is one history entry
	// (there were two, then one that a busy machine made two again; found
	// by a review).
	tb.open(ds.URL + "/ui/runs")
	hist = eval[int](tb, `history.length`)
	n = tb.renders()
	tb.run(chromedp.Focus(chromedp.CSS(`select[name="state"]`)), chromedp.KeyEvent(kb.ArrowDown))
	tb.click(`//header//nav/a[normalize-space(.)="Devices"]`)
	if loc, h := tb.location(), eval[int](tb, `history.length`); loc != "/ui/devices" || h != hist+1 || tb.renders() != n+1 {
		t.Errorf("after a held-back step and a link: at %q, history +%d, %d views drawn, want /ui/devices, +1 and 1",
			loc, h-hist, tb.renders()-n)
	}
	// That press is over once a key is pressed: a step then left by Tab
	// applies (the flag stayed set from the link's press and dropped it).
	tb.click(`//header//nav/a[normalize-space(.)="Runs"]`)
	n = tb.renders()
	tb.run(chromedp.Focus(chromedp.CSS(`select[name="state"]`)), chromedp.KeyEvent(kb.ArrowDown), chromedp.KeyEvent(kb.Tab))
	if _, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](fmt.Sprintf(`Number(document.body.dataset.renders || 0) > %d && location.search.includes("state=")`, n),
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Errorf("a keyboard step left by Tab after a link's press: not applied (%d views drawn, at %q)", tb.renders()-n, tb.location())
	}
	tb.waitRender(n)
	// A press that opens the link elsewhere (middle button, or a
	// modifier) leaves this page: a held-back step applies on the blur.
	tb.open(ds.URL + "/ui/runs")
	n = tb.renders()
	tb.run(chromedp.Focus(chromedp.CSS(`select[name="state"]`)), chromedp.KeyEvent(kb.ArrowDown))
	eval[bool](tb, `(() => { const a = [...document.querySelectorAll("header nav a")].find((a) => a.textContent.trim() === "Devices");
		a.dispatchEvent(new PointerEvent("pointerdown", {bubbles: true, button: 1})); document.activeElement.blur(); return true; })()`)
	if _, err := chromedp.Run(tb.ctx, chromedp.Poll[bool](fmt.Sprintf(`Number(document.body.dataset.renders || 0) > %d && location.search.includes("state=")`, n),
		chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Errorf("a keyboard step left for a middle press on a link: not applied (%d views drawn, at %q)", tb.renders()-n, tb.location())
	}
	tb.waitRender(n)

	// Rows of one name and two methods have distinct names; the sort
	// arrow is not part of its header's name; each chart has its points
	// as text.
	tb.open(ds.URL + "/ui/measurements?window=day&app=uitest")
	if labels := eval[[]string](tb, `[...document.querySelectorAll("td button.link")].map((b) => b.getAttribute("aria-label"))`); !slices.Contains(labels, "GET /ui-test/orders") {
		t.Errorf("row buttons' names %q, want GET /ui-test/orders among them", labels)
	}
	if hidden := eval[int](tb, `document.querySelectorAll('th button span[aria-hidden="true"]').length`); hidden != 1 {
		t.Errorf("%d sort arrows hidden from screen readers, want the active one", hidden)
	}
	points := eval[[]int](tb, `[...document.querySelectorAll("figure.chart")].map((f) => f.querySelectorAll("details table.points tbody tr").length)`)
	if len(points) != 2 || points[0] == 0 || points[1] == 0 {
		t.Errorf("charts' data tables have %v rows, want two with points", points)
	}
	// Headings nest: a card's is h3 under the page's h2.
	tb.open(ds.URL + "/ui/")
	if n := eval[int](tb, `document.querySelectorAll(".card h2").length`); n != 0 {
		t.Errorf("%d cards headed h2 inside an h2 section", n)
	}

	// The service gone: the page says so and names the request, not
	// "Failed to fetch" alone.
	tb.open(ds.URL + "/ui/runs")
	ds.Close()
	tb.click(`//header//nav/a[normalize-space(.)="Flows"]`)
	tb.contains("the service did not answer", "GET /flows")
}
