package api

import (
	"fmt"
	"net/http"

	"github.com/telemetry/telemetry/internal/config"
)

// RefuseOtherHosts answers 421 Misdirected Request to a request whose Host
// is not one of ALLOWED_HOSTS (config.Hosts), before anything else is read.
//
// DNS rebinding: `make run` serves 127.0.0.1:8080 with POST /mrd/token on
// and the dashboard at /ui/; a page on evil.example whose name then
// resolves to 127.0.0.1 reached both as its own origin, read the token and
// wrote with it. Its requests carry Host: evil.example, which is refused
// here (by default on a loopback listener, where only localhost and IP
// addresses pass). 421 says this server does not answer for that name
// (RFC 9110 15.5.20), rather than that the request is malformed.
//
// The profiler's listener (PPROF_ADDR, cmd/telemetry) uses it too: on
// loopback without authentication, a rebinding page could otherwise read
// its profiles.
func RefuseOtherHosts(hosts config.Hosts) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if hosts.Any() {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if hosts.Allow(r.Host) {
				next.ServeHTTP(w, r)
				return
			}
			detail := fmt.Sprintf("this service does not answer to the name %q (Host): reach it by a name ALLOWED_HOSTS lists, or by its IP address",
				shownText(r.Host))
			writeProblem(w, r, NewProblem(http.StatusMisdirectedRequest, detail, &ProblemItem{
				Title: "allowedHosts", Source: "Host", Location: "header.Host", Value: shownText(r.Host), Detail: detail,
			}))
		})
	}
}
