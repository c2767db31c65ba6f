package api

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/telemetry/telemetry/internal/selfprofile"
)

// Query, path and header parameters are text that may end up in a SQL
// parameter (a filter, an id to look up). PostgreSQL refuses text holding a
// NUL byte or invalid UTF-8 (a lone UTF-16 surrogate, %ED%A0%80, is invalid
// UTF-8 too), and that refusal used to surface as a 500. checkParams refuses
// such values before the handler runs, naming each parameter at fault, so
// the database is never asked.

// checkParams is the middleware that checks every parameter the operation
// declares (so a new operation is covered without anything to add). It runs
// as the operation's last middleware, after authentication, as huma's own
// parameter validation does: a request without a valid token is a 401
// whatever its parameters.
func checkParams(api huma.API) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		if errs := paramErrors(ctx); len(errs) > 0 {
			_ = huma.WriteErr(api, ctx, http.StatusUnprocessableEntity, "validation failed", errs...)
			return
		}
		next(ctx)
	}
}

// paramErrors lists one item per parameter value that is not valid text.
func paramErrors(ctx huma.Context) []error {
	op := ctx.Operation()
	if op == nil {
		return nil
	}
	var errs []error
	var query map[string][]string // every value of each query parameter, read once
	for _, p := range op.Parameters {
		if p == nil {
			continue
		}
		var values []string
		switch p.In {
		case "path":
			values = []string{ctx.Param(p.Name)}
		case "query":
			if query == nil {
				u := ctx.URL()
				query = rawQueryValues(u.RawQuery)
			}
			values = query[p.Name]
		case "header":
			values = []string{ctx.Header(p.Name)}
		default:
			continue
		}
		for _, v := range values {
			if it := textProblem(p.In, p.Name, v); it != nil {
				errs = append(errs, it)
				break // one item per parameter
			}
		}
	}
	// The hidden query parameters (the flask-profiler dashboard's: draw,
	// skip, columns[0][data], ...) are not among op.Parameters, which are
	// the documented ones: they are checked from the names the operation
	// takes (strict_query.go), among those the request gives. An audit
	// found a NUL in them taken.
	if q, ok := op.Metadata[queryNamesKey].(queryNames); ok && (len(q.prefixes) > 0 || len(q.hidden) > 0) {
		if u := ctx.URL(); u.RawQuery != "" {
			if query == nil {
				query = rawQueryValues(u.RawQuery)
			}
			errs = append(errs, hiddenText(q, query)...)
		}
	}
	return errs
}

// hiddenText lists one unicode item per hidden query parameter of the
// request whose value is not valid text, and per name under a deepObject
// prefix whose name or value is not, in order of name.
func hiddenText(q queryNames, query map[string][]string) []error {
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(query)) {
		texts := query[key]
		switch {
		case q.hidden[key]:
		case q.deepObject(key):
			texts = append([]string{key}, texts...)
		default:
			continue // documented: checked above; unknown: refused as such
		}
		for _, v := range texts {
			if it := textProblem("query", key, v); it != nil {
				it.Source, it.Location = shownText(key), "query."+shownText(key)
				errs = append(errs, it)
				break
			}
		}
	}
	return errs
}

// rawQueryValues decodes a query string the way huma reads it (pairs split
// at '&' only, names and values unescaped; a value that does not unescape is
// empty for huma, so it is left out here), keeping every value of a name:
// huma reads the first, or all of them for a list.
func rawQueryValues(raw string) map[string][]string {
	out := map[string][]string{}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		name, value, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(name)
		if err != nil {
			continue
		}
		if value, err = url.QueryUnescape(value); err != nil {
			continue
		}
		out[name] = append(out[name], value)
	}
	return out
}

// textProblem is the 422 item for a parameter value holding a NUL byte or
// invalid UTF-8, or nil when the value is valid text.
func textProblem(in, name, v string) *ProblemItem {
	var detail string
	switch {
	case strings.IndexByte(v, 0) >= 0:
		detail = name + " must not contain NUL bytes (%00)"
	case !utf8.ValidString(v):
		detail = name + " must be valid UTF-8 text: no invalid bytes and no UTF-16 surrogates"
	default:
		return nil
	}
	return &ProblemItem{Title: "unicode", Source: name, Location: in + "." + name, Detail: detail, Value: shownText(v)}
}

// shownQuery is the value of query parameter key fit to echo in a problem:
// shownText, or [redacted] when key looks like it holds a secret (token,
// password, ...) or v is a JWT (the self-profiler's rules), so that an error body a client
// or a proxy logs does not carry a token sent by mistake (found by an
// audit).
func shownQuery(key, v string) string {
	if selfprofile.SecretKey(key) || selfprofile.SecretValue(v) {
		return selfprofile.Redacted
	}
	return shownText(v)
}

// shownText is a value fit to echo in a problem: invalid bytes and NUL
// replaced by U+FFFD, at most 256 bytes.
func shownText(v string) string {
	if len(v) > 256 {
		v = v[:256] + "..."
	}
	return strings.ReplaceAll(strings.ToValidUTF8(v, "\uFFFD"), "\x00", "\uFFFD")
}

// bareQueryKeys gives every query parameter written without "=" (`?src_app`)
// the empty value it has for url.ParseQuery and rawQueryValues
// (`?src_app=`), so that it is absent, as a parameter with an empty value
// is (README, "API at a glance"). huma's query reader (queryparam.Get)
// answers "true" for such a key when nothing with an "=" follows it: an
// audit found /flows?hour=1&src_app filtering on src_app "true" (no flows)
// and /flows?hour=1&page a 422 echoing "true". The request's URL is copied,
// not changed, and only when the query holds such a key.
func bareQueryKeys(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fixed, ok := withBareKeysEmpty(r.URL.RawQuery); ok {
			r2 := new(http.Request)
			*r2 = *r
			u := *r.URL
			u.RawQuery = fixed
			r2.URL = &u
			r = r2
		}
		next.ServeHTTP(w, r)
	})
}

// withBareKeysEmpty is raw with "=" after each non-empty pair that has
// none, and whether there was any; pairs are split at '&' alone, as huma
// splits them.
func withBareKeysEmpty(raw string) (string, bool) {
	bare := false
	for rest := raw; rest != "" && !bare; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		bare = pair != "" && !strings.Contains(pair, "=")
	}
	if !bare {
		return raw, false
	}
	var b strings.Builder
	b.Grow(len(raw) + 8)
	for i, pair := range strings.Split(raw, "&") {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pair)
		if pair != "" && !strings.Contains(pair, "=") {
			b.WriteByte('=')
		}
	}
	return b.String(), true
}
