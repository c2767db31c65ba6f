package api

import (
	"embed"
	"io/fs"
	"net/http"
)

// swaggerUI holds Swagger UI (the swagger-ui-dist npm package, version in
// the Makefile's SWAGGER_UI_VERSION, Apache-2.0: swaggerui/LICENSE and
// NOTICE) with our own index page, so /docs works with no internet access.
//
//go:embed swaggerui
var swaggerUI embed.FS

// docsHandler serves /docs (the page) and /docs/{asset}.
// docsCSP is the Swagger UI page's Content-Security-Policy.
const docsCSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func docsHandler() http.Handler {
	sub, _ := fs.Sub(swaggerUI, "swaggerui")
	index, _ := fs.ReadFile(sub, "index.html")
	files := http.StripPrefix("/docs/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// As the dashboard's (internal/ui), but for the inline styles
		// Swagger UI sets: its own files and the API on the same origin
		// only, and no framing (the page keeps a token for "Try it out").
		w.Header().Set("Content-Security-Policy", docsCSP)
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		switch r.URL.Path {
		case "/docs":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(index)
			return
		case "/docs/", "/docs/index.html":
			// The page's URLs are relative to /docs: send the browser there
			// with a relative Location (http.Redirect would make it
			// absolute and lose a proxy's path prefix).
			w.Header().Set("Location", "../docs")
			w.WriteHeader(http.StatusMovedPermanently)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}
