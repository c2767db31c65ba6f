package api

// The Idempotency-Key request header (IETF httpapi draft "The
// Idempotency-Key HTTP Header Field") on the writes a client may need to
// retry without knowing whether the first attempt was stored: POST /flows,
// POST /api/measurements, POST /apiv0.1/events/register and commit, PUT
// /mrd/{device_id}/metrics, POST /appmetrics/api/v1/collections
// (idempotentOperations).
//
//   - The header is optional. A key is 1 to 255 printable ASCII characters,
//     sent bare or as a structured-field string ("..."); anything else, or
//     the header twice, is a 422 naming the header.
//   - The first successful answer (status and body) is recorded with the
//     key in the transaction of the write itself (the stores read a
//     store.Idempotent from the context; see internal/store/idempotency.go),
//     for IDEMPOTENCY_TTL. Errors are not recorded: the client may correct
//     the request and send it again with the same key.
//   - A repeat with the same key and the same method, path and body
//     (compared by SHA-256) gets the recorded status and body, with
//     Idempotency-Replayed: true, and writes nothing. The same key with
//     another body, method or path is a 422 (title "idempotency").
//   - A repeat that arrives while the first is still being written waits for
//     it (PostgreSQL makes the second key insert wait for the first
//     transaction), then gets its answer; should the first fail, the repeat
//     is written itself. A 409 is left for the rare repeat that finds the
//     key taken twice with no answer recorded.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/telemetry/telemetry/internal/store"
)

// IdempotencyKeyHeader is the request header, ReplayedHeader the response
// header that marks an answer given from the record.
const (
	IdempotencyKeyHeader = "Idempotency-Key"
	ReplayedHeader       = "Idempotency-Replayed"
	maxIdempotencyKey    = 255
)

// idempotentOperations are the operations that take the header, by
// operation id (aliases included).
var idempotentOperations = map[string]bool{
	"postFlows":             true,
	"postMeasurements":      true,
	"postMeasurementsSlash": true,
	"registerEvent":         true,
	"commitEvent":           true,
	"putDeviceMetric":       true,
	"createCollection":      true,
}

// idempotentOperation runs for every operation as it is added (huma's
// OnAddOperation): on the operations that take an Idempotency-Key it both
// documents the header and installs the middleware that reads it, so that
// the document and the behaviour cannot drift apart.
func idempotentOperation(oapi *huma.OpenAPI, op *huma.Operation) {
	if !idempotentOperations[op.OperationID] {
		return
	}
	op.Middlewares = append(slices.Clip(op.Middlewares), readIdempotencyKey)
	minLen, maxLen := 1, maxIdempotencyKey
	op.Parameters = append(op.Parameters, &huma.Param{
		Name: IdempotencyKeyHeader,
		In:   "header",
		Description: "Makes the request safe to retry (IETF httpapi draft \"The Idempotency-Key HTTP Header " +
			"Field\"): a unique value such as a UUID, 1 to 255 printable ASCII characters, bare or as a " +
			"structured-field string (\"...\"). The first successful answer is stored with the key, in the same " +
			"transaction as the write, for IDEMPOTENCY_TTL (default 24 h). A repeat with the same key and the " +
			"same method, path and body gets that status and body again, with `Idempotency-Replayed: true`, and " +
			"stores nothing; a repeat sent while the first is in progress waits for it. The same key with " +
			"another body, method or path is a 422. Error answers are not stored: correct the request and " +
			"retry with the same key. Make a new one for each request (a UUID such as " +
			"8e03978e-40d5-43e8-bc93-6894a57f9324, but your own).",
		// No example value: Swagger UI fills a parameter with its example,
		// so every "Try it out" sent the same key, and after the first one
		// every other keyed operation answered 422 (a key names one
		// request) and the first replayed, for IDEMPOTENCY_TTL, for every
		// user of the server (found by an audit of the docs page).
		Schema: &huma.Schema{Type: "string", MinLength: &minLen, MaxLength: &maxLen, Pattern: "^[ -~]+$"},
	})
	op.Description += "\n\nTakes an optional `Idempotency-Key` header: a repeat with the same key and body " +
		"gets the first answer again without a second write (see the parameter)."
	for code, r := range op.Responses {
		if len(code) == 3 && code[0] == '2' {
			if r.Headers == nil {
				r.Headers = map[string]*huma.Param{}
			}
			r.Headers[ReplayedHeader] = &huma.Param{
				Description: "`true` when the answer is the one stored under the request's Idempotency-Key " +
					"(nothing was written again); absent otherwise.",
				Schema: &huma.Schema{Type: "string", Enum: []any{"true"}},
			}
		}
	}
	if op.Responses["409"] == nil {
		op.Responses["409"] = &huma.Response{
			Description: http.StatusText(http.StatusConflict),
			Content: map[string]*huma.MediaType{"application/problem+json": {
				Schema: oapi.Components.Schemas.Schema(reflectProblem, true, "")}},
		}
	}
}

type idempotencyKeyCtx struct{}

// keyedRequest is what readIdempotencyKey leaves in the context of a
// request that carries a key.
type keyedRequest struct {
	key    string
	method string
	// hctx lets the handler mark a replayed answer (ReplayedHeader).
	hctx huma.Context
}

// readIdempotencyKey is the middleware of the operations that take the
// header: it checks the key and hands it to the handler in the context.
func readIdempotencyKey(ctx huma.Context, next func(huma.Context)) {
	var values []string
	ctx.EachHeader(func(name, value string) {
		if strings.EqualFold(name, IdempotencyKeyHeader) {
			values = append(values, value)
		}
	})
	if len(values) == 0 {
		next(ctx)
		return
	}
	key, item := parseIdempotencyKey(values)
	if item != nil {
		p := NewProblem(http.StatusUnprocessableEntity, "validation failed", item)
		p.RequestID = RequestID(ctx.Context())
		ctx.SetHeader("Content-Type", "application/problem+json")
		ctx.SetStatus(p.Status)
		_ = json.NewEncoder(ctx.BodyWriter()).Encode(p)
		return
	}
	next(huma.WithValue(ctx, idempotencyKeyCtx{}, &keyedRequest{key: key, method: ctx.Method(), hctx: ctx}))
}

// parseIdempotencyKey reads the header's values (one expected) into a key,
// or says what is wrong with them.
func parseIdempotencyKey(values []string) (string, *ProblemItem) {
	bad := func(rule, detail string, value any) (string, *ProblemItem) {
		if s, ok := value.(string); ok && len(s) > 256 {
			value = s[:256] + "..."
		}
		return "", &ProblemItem{Title: rule, Detail: detail, Source: IdempotencyKeyHeader,
			Location: "header." + IdempotencyKeyHeader, Value: value}
	}
	if len(values) > 1 {
		return bad("single", "send one Idempotency-Key header, not "+strconv.Itoa(len(values)), values)
	}
	raw := strings.Trim(values[0], " \t")
	key := raw
	if strings.HasPrefix(raw, `"`) {
		var ok bool
		if key, ok = unquoteSFString(raw); !ok {
			return bad("format", `a quoted Idempotency-Key must be a structured-field string: "..." with only \" and \\ escaped`, raw)
		}
	}
	switch {
	case key == "":
		return bad("min", "Idempotency-Key must be at least 1 character long", raw)
	case len(key) > maxIdempotencyKey:
		return bad("max", "Idempotency-Key must be at most 255 characters long", raw)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return bad("pattern", "Idempotency-Key must be printable ASCII characters (space to ~)", raw)
		}
	}
	return key, nil
}

// unquoteSFString reads an RFC 8941 string: "...", where only \" and \\
// are escapes.
func unquoteSFString(s string) (string, bool) {
	if len(s) < 2 || s[len(s)-1] != '"' {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		c := s[i]
		switch {
		case c == '\\':
			i++
			if i == len(s)-1 || (s[i] != '"' && s[i] != '\\') {
				return "", false
			}
			b.WriteByte(s[i])
		case c == '"':
			return "", false
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// keyedRequestOf is the key the request carries, nil for none.
func keyedRequestOf(ctx context.Context) *keyedRequest {
	k, _ := ctx.Value(idempotencyKeyCtx{}).(*keyedRequest)
	return k
}

// keyedWrite runs write under the request's Idempotency-Key, if any, and
// gives the answer's body: answer(result of write), or, for a repeat, the
// body recorded under the key (replayed true; write is not called). raw is
// the request body as received and status the answer's status. Errors are
// write's, the store's, or a *Problem: 422 for a key used with another
// request, 409 for a key still held after a retry.
func keyedWrite[B any](ctx context.Context, s *server, raw []byte, status int,
	write func(context.Context) (any, error), answer func(result any) B) (body B, replayed bool, err error) {
	k := keyedRequestOf(ctx)
	if k == nil {
		result, err := write(ctx)
		if err != nil {
			return body, false, err
		}
		return answer(result), false, nil
	}
	endpoint := k.method + " " + requestURL(ctx).EscapedPath()
	h := sha256.New()
	h.Write([]byte(endpoint))
	h.Write([]byte{'\n'})
	h.Write(raw)
	hash := h.Sum(nil)
	idem := &store.Idempotent{Key: k.key, Endpoint: endpoint, Hash: hash, Status: status, TTL: s.cfg.IdempotencyTTL,
		Body: func(result any) ([]byte, error) { return marshalAnswer(answer(result)) }}
	// Twice at most: a write refused because another request holds the key
	// reads that request's answer; if there is none (that request failed
	// after this one was refused), the write is tried once more.
	for range 2 {
		rec, err := s.st.Idempotency.Answer(ctx, k.key)
		switch {
		case err == nil:
			if !bytes.Equal(rec.Hash, hash) {
				// Named by what differs: the operation, or the body.
				other := rec.Endpoint
				if other == endpoint {
					other = "the same operation with another body"
				}
				return body, false, NewProblem(http.StatusUnprocessableEntity, "validation failed", &ProblemItem{
					Title: "idempotency", Source: IdempotencyKeyHeader, Location: "header." + IdempotencyKeyHeader, Value: k.key,
					Detail: "this Idempotency-Key was used for another request (" + other + "): " +
						"a key names one request; use a new key for a new request"})
			}
			if err := json.Unmarshal(rec.Body, &body); err != nil {
				return body, false, err
			}
			k.hctx.SetHeader(ReplayedHeader, "true")
			return body, true, nil
		case !errors.Is(err, store.ErrNotFound):
			return body, false, err
		}
		result, err := write(store.WithIdempotent(ctx, idem))
		if errors.Is(err, store.ErrKeyInUse) {
			continue
		}
		if err != nil {
			return body, false, err
		}
		return answer(result), false, nil
	}
	return body, false, NewProblem(http.StatusConflict,
		"a request with the same Idempotency-Key is in progress; retry later", &ProblemItem{
			Title: "idempotency", Source: IdempotencyKeyHeader, Location: "header." + IdempotencyKeyHeader, Value: k.key,
			Detail: "another request holds this Idempotency-Key and has no answer yet"}).
		WithHeader("Retry-After", "1")
}

// marshalAnswer encodes a body exactly as huma writes it (jsonFormat), so
// that a replayed answer is the same bytes as the first.
func marshalAnswer(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := jsonFormat.Marshal(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
