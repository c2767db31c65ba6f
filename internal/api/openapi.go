package api

import (
	"bytes"
	"encoding/json"
	"iter"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/yaml"
	"github.com/go-chi/chi/v5"
)

// documentErrors runs for every operation as it is added: every operation
// can answer 406 (Accept), 422 (an unknown query parameter, see humaConfig)
// and 500, so these are documented everywhere, and each error response gets
// an example body.
func documentErrors(oapi *huma.OpenAPI, op *huma.Operation) {
	if op.Responses == nil {
		op.Responses = map[string]*huma.Response{}
	}
	var problemSchema *huma.Schema
	for code, r := range op.Responses {
		if c, ok := r.Content["application/problem+json"]; ok && code != "default" {
			problemSchema = c.Schema
		}
	}
	if problemSchema == nil {
		problemSchema = oapi.Components.Schemas.Schema(reflectProblem, true, "")
	}
	for _, status := range []int{http.StatusNotAcceptable, http.StatusUnprocessableEntity, http.StatusInternalServerError} {
		code := strconv.Itoa(status)
		if op.Responses[code] == nil {
			mt := &huma.MediaType{Schema: problemSchema}
			if status == http.StatusUnprocessableEntity {
				// An operation without parameters or body of its own
				// refuses only what it does not know.
				mt.Example = unknownParameterExample()
			}
			op.Responses[code] = &huma.Response{
				Description: http.StatusText(status),
				Content:     map[string]*huma.MediaType{"application/problem+json": mt},
			}
		}
	}
	for code, r := range op.Responses {
		status, err := strconv.Atoi(code)
		if err != nil || status < 400 {
			continue
		}
		if mt := r.Content["application/problem+json"]; mt != nil && mt.Example == nil && len(mt.Examples) == 0 {
			mt.Example = problemExample(status)
		}
	}
}

// unknownParameterExample is the 422 of a query parameter the operation
// does not take.
func unknownParameterExample() *Problem {
	p := problemExample(http.StatusUnprocessableEntity)
	p.Errors = []*ProblemItem{{Status: 422, Title: "unknown", Detail: "limit is not a known parameter", Source: "limit",
		Location: "query.limit", Value: "10"}}
	return p
}

// problemExample is a representative body for an error status.
func problemExample(status int) *Problem {
	p := &Problem{Title: http.StatusText(status), Status: status, RequestID: "5f0c3a7e9b1d4c2a"}
	switch status {
	case http.StatusBadRequest:
		p.Detail = "the body is not valid JSON: unexpected end of JSON input"
		p.Errors = []*ProblemItem{{Status: 400, Title: "json", Detail: p.Detail, Location: "body"}}
	case http.StatusUnauthorized:
		p.Detail = "a valid bearer token is required"
	case http.StatusNotFound:
		p.Detail = "not found"
	case http.StatusNotAcceptable:
		p.Detail = "this endpoint produces application/json (errors: application/problem+json); the Accept header admits neither"
	case http.StatusConflict:
		p.Detail = "conflict with the current state"
	case http.StatusRequestEntityTooLarge:
		p.Detail = "request body is too large: at most 67108864 bytes"
	case http.StatusUnsupportedMediaType:
		p.Detail = "unknown content type: text/plain; send Content-Type: application/json"
		p.Errors = []*ProblemItem{{Status: 415, Title: "contentType", Detail: p.Detail, Location: "body"}}
	case http.StatusUnprocessableEntity:
		p.Detail = "validation failed"
		p.Errors = []*ProblemItem{{Status: 422, Title: "min", Detail: "bytes_tx must be 0 or greater", Source: "bytes_tx", Location: "body[3].bytes_tx", Value: -1}}
	case http.StatusServiceUnavailable:
		p.Detail = "the database is unavailable; retry later"
	case http.StatusInternalServerError:
		p.Detail = "internal error; quote request id 5f0c3a7e9b1d4c2a when reporting it"
	}
	return p
}

// nullInEnums adds null to the enum of every nullable schema that has one
// (EventRun's mode): JSON Schema checks enum apart from type, so in the
// 3.1 document a schema of type [string, null] whose enum lacks null
// refuses null, and a validator the answers that hold it. The 3.0
// document leaves null out of such enums again (Spec30): there nullable
// says it, and a Go client generated from an enum holding null (the
// committed openapi.yaml's, oapi-codegen) gets a constant "<nil>".
func nullInEnums(oapi *huma.OpenAPI) {
	seen := map[*huma.Schema]bool{}
	var walk func(s *huma.Schema)
	walk = func(s *huma.Schema) {
		if s == nil || seen[s] {
			return
		}
		seen[s] = true
		if s.Nullable && len(s.Enum) > 0 && !slices.Contains(s.Enum, nil) {
			s.Enum = append(s.Enum, nil)
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
		if a, ok := s.AdditionalProperties.(*huma.Schema); ok {
			walk(a)
		}
		for _, list := range [][]*huma.Schema{s.OneOf, s.AnyOf, s.AllOf} {
			for _, x := range list {
				walk(x)
			}
		}
		walk(s.Not)
	}
	if oapi.Components != nil && oapi.Components.Schemas != nil {
		for _, s := range oapi.Components.Schemas.Map() {
			walk(s)
		}
	}
}

// serveDocuments serves the OpenAPI document, 3.1 at /openapi.json and
// /openapi.yaml and 3.0.3 at /openapi-3.0.json and /openapi-3.0.yaml (what
// huma serves, but for the 3.0 form's nullable enums: downgrade30), each
// built at its first request, once every operation is registered.
func serveDocuments(mux *chi.Mux, oapi *huma.OpenAPI) {
	for _, d := range []struct {
		path, contentType string
		build             func() ([]byte, error)
	}{
		{"/openapi.json", "application/openapi+json", func() ([]byte, error) { return json.Marshal(oapi) }},
		{"/openapi.yaml", "application/openapi+yaml", oapi.YAML},
		{"/openapi-3.0.json", "application/openapi+json", func() ([]byte, error) { return downgrade30(oapi) }},
		{"/openapi-3.0.yaml", "application/openapi+yaml", func() ([]byte, error) { return downgrade30YAML(oapi) }},
	} {
		build := sync.OnceValues(d.build)
		mux.Method(http.MethodGet, d.path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := build()
			if err != nil {
				writeProblem(w, r, NewProblem(http.StatusInternalServerError, "the OpenAPI document could not be built"))
				return
			}
			w.Header().Set("Content-Type", d.contentType)
			_, _ = w.Write(body)
		}))
	}
}

// Spec30YAML is the OpenAPI 3.0.3 document of Spec, in YAML: what `make
// openapi` commits as openapi.yaml and /openapi-3.0.yaml serves.
func Spec30YAML() ([]byte, error) { return downgrade30YAML(Spec()) }

// downgrade30 is huma's 3.0.3 form of oapi with null left out of the
// enums of nullable schemas (nullInEnums says why).
func downgrade30(oapi *huma.OpenAPI) ([]byte, error) {
	b, err := oapi.Downgrade()
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // int64 bounds stay exact
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if enum, ok := v["enum"].([]any); ok && v["nullable"] == true {
				v["enum"] = slices.DeleteFunc(enum, func(x any) bool { return x == nil })
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	return json.Marshal(doc)
}

func downgrade30YAML(oapi *huma.OpenAPI) ([]byte, error) {
	b, err := downgrade30(oapi)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	err = yaml.Convert(&buf, bytes.NewReader(b))
	return buf.Bytes(), err
}

// errorHeaders are the headers the service sends with some error answers,
// by status: the document lists each on every response of that status
// (documentErrorHeaders), and the test servers fail an answer that carries
// one its response does not list (auditStatuses). A client reads them
// from the document: how long to wait before retrying a 503, which scheme
// a 401 wants.
var errorHeaders = map[string]map[string]*huma.Param{
	"401": {"WWW-Authenticate": {
		Description: "The scheme the operation wants: `Bearer`, or `Bearer error=\"invalid_token\"` when the token " +
			"sent was refused.",
		Required: true,
		Schema:   &huma.Schema{Type: huma.TypeString, Examples: []any{"Bearer"}},
	}},
	"405": {"Allow": {
		Description: "The methods the path takes.",
		Required:    true,
		Schema:      &huma.Schema{Type: huma.TypeString, Examples: []any{"POST"}},
	}},
	"409": {"Retry-After": {
		Description: "Seconds to wait before sending the request again: only on the 409 of an Idempotency-Key " +
			"found held by another request with no answer recorded to read.",
		Schema: &huma.Schema{Type: huma.TypeInteger, Format: "int32", Minimum: &one, Examples: []any{1}},
	}},
	"415": {"Accept-Encoding": {
		Description: "`identity` when the request had a Content-Encoding: bodies are read as they are sent.",
		Schema:      &huma.Schema{Type: huma.TypeString, Enum: []any{"identity"}},
	}},
	"503": {"Retry-After": {
		Description: "Seconds to wait before sending the request again (always sent with a 503).",
		Required:    true,
		Schema:      &huma.Schema{Type: huma.TypeInteger, Format: "int32", Minimum: &one, Examples: []any{retryAfterSeconds}},
	}},
}

var one = 1.0

// documentCacheControl lists Cache-Control on the answers that carry it:
// every answer of an operation that may take a token (requireToken sets
// no-store once the token is checked, whichever the status) and the 200 of
// an exportable list (an export is no-store). The token endpoint's 200
// lists it itself (tokenOutput).
func documentCacheControl(oapi *huma.OpenAPI) {
	for op := range documentedOperations(oapi) {
		tokened := slices.ContainsFunc(op.Security, func(req map[string][]string) bool { return len(req) > 0 })
		for code, r := range op.Responses {
			if !tokened && (code != "200" || !exportsOf(op)) || r.Headers["Cache-Control"] != nil {
				continue
			}
			addResponseHeaders(r, map[string]*huma.Param{"Cache-Control": {
				Description: "`no-store` on an answer to a request authenticated by a token, and on an export " +
					"(`text/csv`, `application/x-ndjson`): no cache may keep it; absent otherwise.",
				Schema: &huma.Schema{Type: huma.TypeString, Enum: []any{"no-store"}},
			}})
		}
	}
}

// documentErrorHeaders adds errorHeaders to the responses of every
// operation, once all are registered and documented (a resource's
// document* may add or replace responses after OnAddOperation). The 409's
// Retry-After only where a 409 can be an Idempotency-Key's.
func documentErrorHeaders(oapi *huma.OpenAPI) {
	for op := range documentedOperations(oapi) {
		for code, headers := range errorHeaders {
			if r := op.Responses[code]; r != nil && (code != "409" || idempotentOperations[op.OperationID]) {
				addResponseHeaders(r, headers)
			}
		}
	}
}

// documentedOperations are the operations of the document, every path's
// and method's: what the document* passes that run once all are registered
// walk.
func documentedOperations(oapi *huma.OpenAPI) iter.Seq[*huma.Operation] {
	return func(yield func(*huma.Operation) bool) {
		for _, item := range oapi.Paths {
			for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Patch, item.Head} {
				if op != nil && !yield(op) {
					return
				}
			}
		}
	}
}

// addResponseHeaders lists headers on response r, beside (or over) those it
// lists already.
func addResponseHeaders(r *huma.Response, headers map[string]*huma.Param) {
	if r.Headers == nil {
		r.Headers = map[string]*huma.Param{}
	}
	maps.Copy(r.Headers, headers)
}
