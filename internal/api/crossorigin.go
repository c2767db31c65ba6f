package api

import (
	"net/http"
)

// refuseCrossOrigin answers 403 to a write (any method but GET, HEAD and
// OPTIONS) that a browser sends from another origin: net/http's
// CrossOriginProtection, which reads Sec-Fetch-Site (every browser since
// 2023) and otherwise compares Origin with Host. Clients other than
// browsers send neither header and pass, as do this origin's own pages
// (the dashboard, Swagger UI).
//
// Without it, a page of any site could make its visitor's browser write
// here: with AUTH_WRITES off (the default, the seeds' clients send no
// credentials), a POST /flows with a body of no type, or a bodyless POST
// of a collection, needs no preflight and was stored (found by a security
// audit: flows from another origin stored, the ten open collections filled).
// The API sends no CORS headers, so a write from another origin never had
// a legitimate way through a browser.
//
// Browsers send Sec-Fetch-Site to trustworthy origins only (HTTPS, or
// localhost); to another host over plain HTTP they send Origin alone,
// which is then compared with Host. Behind a reverse proxy that rewrites
// Host (nginx's default), the dashboard's own writes were refused so
// (found by an audit): trusted are TRUSTED_ORIGINS, the proxy's public
// origin, checked by config.
func refuseCrossOrigin(trusted []string) func(http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	for _, o := range trusted {
		if err := cop.AddTrustedOrigin(o); err != nil {
			panic("TRUSTED_ORIGINS: " + err.Error()) // config.Load checked them
		}
	}
	return func(next http.Handler) http.Handler { return crossOriginChecked(cop, next) }
}

func crossOriginChecked(cop *http.CrossOriginProtection, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := cop.Check(r); err != nil {
			header, value := "Sec-Fetch-Site", r.Header.Get("Sec-Fetch-Site")
			if value == "" {
				header, value = "Origin", r.Header.Get("Origin")
			}
			detail := "a browser may not write here from another origin (" + header + ": " + shownText(value) +
				"); send the request from this origin's pages or from a client other than a browser"
			writeProblem(w, r, NewProblem(http.StatusForbidden, detail, &ProblemItem{
				Title: "crossOrigin", Source: header, Location: "header." + header, Value: shownText(value), Detail: detail,
			}))
			return
		}
		next.ServeHTTP(w, r)
	})
}
