package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"slices"

	"github.com/danielgtaylor/huma/v2"

	"github.com/telemetry/telemetry/internal/auth"
)

// Access switches (issue 10, point 10). By default only the device
// registry's writes and the reports need a token, as in the Concertim
// daemon; the seeds' other clients send no credentials. AUTH_WRITES=true
// requires the same JWT on every write, AUTH_READS=true on every read, and
// METRICS_TOKEN puts /metrics behind a token of its own. Health, readiness,
// the docs, the OpenAPI documents, /mrd/status and POST /mrd/token stay
// open: probes, people and token seekers must reach them.

// openOperations never require a token, whatever the switches say.
var openOperations = map[string]bool{
	"getHealth":      true,
	"getReady":       true,
	"getMrdStatus":   true,
	"createMrdToken": true,
}

// optionalSecurity documents an operation that takes a token only when a
// switch says so: no credentials ({}), or either way of sending a token.
var optionalSecurity = []map[string][]string{{}, {securityBearer: {}}, {securityCookie: {}}}

// applyAccess gives an operation of the routes table its security: nothing
// to do for those that always need a token (their Security is set) or never
// do; the others are documented as taking an optional token and, when
// their switch is on, require one.
func (s *server) applyAccess(api huma.API, op *huma.Operation) {
	if len(op.Security) > 0 || openOperations[op.OperationID] {
		return
	}
	read := op.Method == http.MethodGet || op.Method == http.MethodHead
	op.Security = optionalSecurity
	if !slices.Contains(op.Errors, http.StatusUnauthorized) {
		op.Errors = append(slices.Clone(op.Errors), http.StatusUnauthorized)
	}
	if op.Method == http.MethodPost && !slices.Contains(op.Errors, http.StatusUnsupportedMediaType) {
		// A POST authenticated by the jwt cookie alone must be typed
		// JSON, with a body or none (requireToken).
		op.Errors = append(slices.Clone(op.Errors), http.StatusUnsupportedMediaType)
	}
	switch {
	case read:
		op.Description += "\n\nNeeds a token (`Authorization: Bearer <JWT>` or the `jwt` cookie) when the server runs with AUTH_READS=true."
	default:
		op.Description += "\n\nNeeds a token (`Authorization: Bearer <JWT>` or the `jwt` cookie) when the server runs with AUTH_WRITES=true."
	}
	if read && s.cfg.AuthReads || !read && s.cfg.AuthWrites {
		// First, so that a request without a token is refused before its
		// body is read.
		op.Middlewares = append(huma.Middlewares{requireToken(api, s.dev.auth)}, op.Middlewares...)
	}
}

// protectMetrics puts h (/metrics) behind METRICS_TOKEN when it is set.
func protectMetrics(token string, h http.Handler) http.Handler {
	if token == "" {
		return h
	}
	// Hashes of equal length, compared in constant time: the comparison
	// tells neither the token nor its length.
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, err := auth.Token(r.Header.Get("Authorization"), nil)
		sum := sha256.Sum256([]byte(got))
		if err == nil && subtle.ConstantTimeCompare(sum[:], want[:]) == 1 {
			h.ServeHTTP(w, r)
			return
		}
		detail := "send Authorization: Bearer <METRICS_TOKEN>"
		challenge := `Bearer`
		if err == nil {
			detail, challenge = "wrong metrics token", `Bearer error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
		writeProblem(w, r, NewProblem(http.StatusUnauthorized, detail, &ProblemItem{
			Title: "Unauthorized", Detail: detail, Source: "Authorization", Location: "header.Authorization",
		}))
	})
}
