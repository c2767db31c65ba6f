package api

import (
	"net/http"
	"strconv"

	"github.com/danielgtaylor/huma/v2"
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
		p.Detail = "validation failed"
		p.Errors = []*ProblemItem{{Status: 400, Title: "json", Detail: "the body is not valid JSON: unexpected end of JSON input", Location: "body"}}
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
		p.Detail = "validation failed"
		p.Errors = []*ProblemItem{{Status: 415, Title: "contentType", Detail: "unknown content type: text/plain; send Content-Type: application/json", Location: "body"}}
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
