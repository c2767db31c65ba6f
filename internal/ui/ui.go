// Package ui serves the dashboard under /ui/: a single-page application
// whose sources are in web/ and whose bundle, built by `make ui` (esbuild,
// pinned in web/package.json), is committed in dist/ and embedded here, so
// the binary needs neither npm nor the network to serve it.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed dist
var dist embed.FS

// CSP allows nothing but the dashboard's own files and the API on the same
// origin: no inline script or style, no other host.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// asset is one embedded file with its validator.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// Handler serves /ui/ (and redirects /ui there). The bundle's files are
// served by name; every other path under /ui/ is a page of the
// application and gets index.html, which routes on the path.
//
// Every URL the dashboard uses is relative to where it is served, so that
// it works behind a reverse proxy that serves the service under a prefix
// and strips it (BASE_PATH, README "Configuration"), whether or not
// BASE_PATH is set: index.html refers to its files and pages as "./x" and
// to the API docs as "../docs", and each page's copy is rewritten for its
// depth under /ui/ (/ui/a/b is one level down: "../x"); the application
// reads its root from those links once loaded (web/src/paths.js).
func Handler() http.Handler {
	assets := map[string]asset{}
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err)
	}
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
		".html": "text/html; charset=utf-8"}
	_ = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := types[path.Ext(p)]
		if ct == "" {
			ct = "text/plain; charset=utf-8"
		}
		assets[p] = asset{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	index, ok := assets["index.html"]
	if !ok {
		panic("ui: dist/index.html missing: run make ui")
	}
	// The copies of index.html one and two levels down: a path one level
	// down is no page of today's, but gets a working page saying so, and
	// one two levels down too (a link of a later version, say). A deeper
	// one is a 404: a copy per depth would answer a request of N slashes
	// with N times index.html's links (found by a review).
	indexAt := []asset{index, indexFor(index, 1), indexFor(index, 2)}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path == "/ui" {
			// A relative Location ("ui/" from /ui), which stays under a
			// reverse proxy's prefix (http.Redirect would make it absolute).
			target := "ui/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			w.Header().Set("Location", target)
			w.WriteHeader(http.StatusMovedPermanently)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/ui/")
		a, ok := assets[name]
		switch {
		case !ok && path.Ext(name) != "":
			// A missing file, not a page: the application's pages have no
			// extension.
			http.NotFound(w, r)
			return
		case !ok:
			// Counted on the path as sent, as the browser resolves
			// relative links on it (an escaped "/" is no level).
			depth := strings.Count(strings.TrimPrefix(r.URL.EscapedPath(), "/ui/"), "/")
			if depth >= len(indexAt) {
				http.NotFound(w, r)
				return
			}
			a = indexAt[depth]
		}
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Type", a.contentType)
		h.Set("ETag", a.etag)
		// Revalidate every time: the bundle changes with the binary, and a
		// 304 costs one round trip.
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}

// indexFor is index.html for a page depth levels below /ui/: its relative
// links ("./x", "../docs") each go up depth levels more.
func indexFor(index asset, depth int) asset {
	up := strings.Repeat("../", depth)
	// "../" first: its result does not contain `="./`.
	b := bytes.ReplaceAll(index.body, []byte(`="../`), []byte(`="`+up+`../`))
	b = bytes.ReplaceAll(b, []byte(`="./`), []byte(`="`+up))
	sum := sha256.Sum256(b)
	return asset{body: b, contentType: index.contentType, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}
