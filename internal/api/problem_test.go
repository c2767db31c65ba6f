package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"
	"github.com/go-chi/chi/v5"
)

// ruleProbe has one field per validation rule whose title the API names.
type ruleProbe struct {
	Body struct {
		Required string   `json:"required" required:"true"`
		Min      int64    `json:"min,omitempty" minimum:"1"`
		Gt       float64  `json:"gt,omitempty" exclusiveMinimum:"1"`
		Max      int64    `json:"max,omitempty" maximum:"1"`
		Big      int64    `json:"big,omitempty" maximum:"2147483647"`
		Small    float64  `json:"small,omitempty" minimum:"0.25"`
		Lt       float64  `json:"lt,omitempty" exclusiveMaximum:"1"`
		MinLen   string   `json:"minLen,omitempty" minLength:"2"`
		MaxLen   string   `json:"maxLen,omitempty" maxLength:"2"`
		MinItems []int64  `json:"minItems,omitempty" minItems:"2"`
		MaxItems []int64  `json:"maxItems,omitempty" maxItems:"1"`
		OneOf    string   `json:"oneOf,omitempty" enum:"a,b"`
		Pattern  string   `json:"pattern,omitempty" pattern:"^x+$"`
		Format   string   `json:"format,omitempty" format:"date-time"`
		UUID     string   `json:"uuid,omitempty" format:"uuid"`
		Integer  *int64   `json:"integer,omitempty"`
		Number   *float64 `json:"number,omitempty"`
		String   *string  `json:"string,omitempty"`
		Bool     *bool    `json:"bool,omitempty"`
		Array    []string `json:"array,omitempty"`
		Object   *struct {
			A string `json:"a,omitempty"`
		} `json:"object,omitempty"`
	}
	Hour   int64   `query:"hour"`
	Ratio  float64 `query:"ratio"`
	Flag   bool    `query:"flag"`
	Needed string  `query:"needed" required:"true"`
}

// The titles of validation errors are derived from huma's messages: this
// sends every rule's failure through a real huma API and fails when a huma
// upgrade rewords a message (the title would silently become "invalid").
func TestValidationTitles(t *testing.T) {
	installErrorModel()
	mux := chi.NewMux()
	cfg := humaConfig()
	cfg.OpenAPIPath, cfg.SchemasPath = "", ""
	api := humachi.New(mux, cfg)
	huma.Register(api, huma.Operation{OperationID: "probe", Method: http.MethodPost, Path: "/probe"},
		func(context.Context, *ruleProbe) (*struct{}, error) { return nil, nil })

	cases := []struct {
		name, query, body string
		location, title   string
	}{
		{"required property", "needed=1", `{}`, "body.required", "required"},
		{"required parameter", "", `{"required":"x"}`, "query.needed", "required"},
		{"unknown property", "needed=1", `{"required":"x","nope":1}`, "body.nope", "unknown"},
		{"minimum", "needed=1", `{"required":"x","min":0}`, "body.min", "min"},
		{"exclusive minimum", "needed=1", `{"required":"x","gt":1}`, "body.gt", "gt"},
		{"maximum", "needed=1", `{"required":"x","max":2}`, "body.max", "max"},
		{"exclusive maximum", "needed=1", `{"required":"x","lt":1}`, "body.lt", "lt"},
		{"min length", "needed=1", `{"required":"x","minLen":"a"}`, "body.minLen", "min"},
		{"max length", "needed=1", `{"required":"x","maxLen":"abc"}`, "body.maxLen", "max"},
		{"min items", "needed=1", `{"required":"x","minItems":[1]}`, "body.minItems", "min"},
		{"max items", "needed=1", `{"required":"x","maxItems":[1,2]}`, "body.maxItems", "max"},
		{"enum", "needed=1", `{"required":"x","oneOf":"c"}`, "body.oneOf", "oneof"},
		{"pattern", "needed=1", `{"required":"x","pattern":"y"}`, "body.pattern", "pattern"},
		{"format", "needed=1", `{"required":"x","format":"yesterday"}`, "body.format", "format"},
		{"integer", "needed=1", `{"required":"x","integer":"1"}`, "body.integer", "type"},
		{"number", "needed=1", `{"required":"x","number":"1"}`, "body.number", "type"},
		{"string", "needed=1", `{"required":"x","string":1}`, "body.string", "type"},
		{"boolean", "needed=1", `{"required":"x","bool":1}`, "body.bool", "type"},
		{"array", "needed=1", `{"required":"x","array":1}`, "body.array", "type"},
		{"object", "needed=1", `{"required":"x","object":1}`, "body.object", "type"},
		{"integer parameter", "needed=1&hour=x", `{"required":"x"}`, "query.hour", "type"},
		{"float parameter", "needed=1&ratio=x", `{"required":"x"}`, "query.ratio", "type"},
		{"boolean parameter", "needed=1&flag=x", `{"required":"x"}`, "query.flag", "type"},
	}
	// A bound is written as the schema writes it (huma's message has
	// 2.147483647e+09), and a pattern's detail is a sentence like the others.
	details := []struct{ name, body, location, detail string }{
		{"large maximum", `{"required":"x","big":2147483648}`, "body.big", "big must be 2147483647 or less"},
		{"fractional minimum", `{"required":"x","small":0.1}`, "body.small", "small must be 0.25 or greater"},
		{"pattern", `{"required":"x","pattern":"y"}`, "body.pattern", "pattern must match the pattern ^x+$"},
		// The formats users get wrong most show an example, and not the
		// library's words after the format.
		{"date-time", `{"required":"x","format":"2025-01-02"}`, "body.format",
			"format must be an RFC 3339 date-time such as 2025-11-22T10:00:00Z (in a URL, write a + offset as %2B)"},
		{"uuid", `{"required":"x","uuid":"not-a-uuid"}`, "body.uuid", "uuid must be a UUID such as " + exampleUUID},
	}
	for _, c := range details {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/probe?needed=1", strings.NewReader(c.body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if len(p.Errors) != 1 || p.Errors[0].Location != c.location || p.Errors[0].Detail != c.detail {
				t.Fatalf("errors %+v, want one at %s: %q", p.Errors, c.location, c.detail)
			}
		})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/probe?"+c.query, strings.NewReader(c.body))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnprocessableEntity {
				t.Fatalf("status = %d, want 422; body %s", rec.Code, rec.Body)
			}
			var p Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if !p.hasError(c.location, c.title) {
				t.Fatalf("want an item %s titled %q; got %s", c.location, c.title, rec.Body)
			}
		})
	}
}

// Only a body of the wrong JSON type as a whole is a 400; NewProblem keeps
// the status it is given.
func TestBodyOfWrongTypeIs400(t *testing.T) {
	p := NewProblem(http.StatusUnprocessableEntity, "validation failed", &ProblemItem{Title: "type", Location: "body"})
	if p.Status != http.StatusUnprocessableEntity {
		t.Fatalf("NewProblem changed the status to %d", p.Status)
	}
	if got := bodyTypeIsMalformed(p); got.Status != http.StatusBadRequest || got.Errors[0].Status != http.StatusBadRequest {
		t.Fatalf("wrong body type: status %d, item %d; want 400", got.Status, got.Errors[0].Status)
	}
	field := NewProblem(http.StatusUnprocessableEntity, "validation failed", &ProblemItem{Title: "type", Location: "body.hour"})
	if got := bodyTypeIsMalformed(field); got.Status != http.StatusUnprocessableEntity {
		t.Fatalf("a field of the wrong type: status %d, want 422", got.Status)
	}
}

// numberPath reads where a typed decode's number error is, from either
// JSON package's message.
func TestNumberPath(t *testing.T) {
	for msg, want := range map[string]string{
		"json: cannot unmarshal number 1e2 into Go struct field F.measurement.fields.clients of type int64":         "measurement.fields.clients",
		"json: cannot unmarshal number 2e3 into Go struct field B.l of type int64":                                  "l",
		`json: cannot unmarshal JSON number 1e2 into Go int64 within "/measurement/fields/clients": invalid syntax`: "measurement.fields.clients",
		`json: unable to unmarshal JSON number 2e3 into Go int64 within "/l/1": invalid syntax`:                     "l[1]",
		`json: cannot unmarshal JSON number 2e3 into Go int64 within "/a~1b/0/c": invalid syntax`:                   "a/b[0].c",
		"json: cannot unmarshal number into Go value of type int64":                                                 "",
	} {
		if got := numberPath(msg); got != want {
			t.Errorf("%s: %q, want %q", msg, got, want)
		}
	}
}

// hugeNumberPath finds the first number past float64's range, at any
// depth, and ignores huge numbers inside strings.
func TestHugeNumberPath(t *testing.T) {
	for body, want := range map[string]string{
		`1e400`:      "",
		`[1, 2e400]`: "[1]",
		`[{"a": 1}, {"a": "1e400", "b": -1e999}]`: "[1].b",
		`{"m": {"f": [[0, 1e309]]}}`:              "m.f[0][1]",
		`{"a/b": {"c~d": 1e400}}`:                 "a/b.c~d",
		`{"a": 1.5e308, "b": 2}`:                  "",
		`{"a": 1e400`:                             "a", // cut after the number: still found
	} {
		if got := hugeNumberPath(body); got != want {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
	}
}

// Where nothing was validated (a body that is not JSON, of the wrong type
// as a whole, or not typed JSON), the problem's own detail says what is
// wrong, as its one item does, on every resource; the device report keeps
// the daemon's 400.
func TestProblemDetailSaysWhatIsWrong(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "d1")
	for _, c := range []struct {
		method, path, body, ctype string
		status                    int
		detail                    string // its prefix
	}{
		{"POST", "/flows", "{bad", "application/json", 400, "the body is not valid JSON"},
		{"POST", "/flows", "{}", "application/json", 400, "the body must be a JSON array of flows"},
		{"POST", "/flows", "[]", "text/plain", 415, "unknown content type: text/plain; send Content-Type: application/json"},
		{"POST", "/api/measurements", "{bad", "application/json", 400, "the body is not valid JSON"},
		{"POST", "/api/measurements", "{}", "application/json", 400, "the body must be an array"},
		{"POST", "/api/measurements", "[]", "text/plain", 415, "unknown content type"},
		{"POST", "/apiv0.1/events/register", "{bad", "application/json", 400, "the body is not valid JSON"},
		{"POST", "/apiv0.1/events/register", "{}", "text/plain", 415, "unknown content type"},
		{"PUT", "/mrd/d1/metrics", "{bad", "application/json", 400, "error parsing JSON body: "},
	} {
		h := append(bearer(t), "Content-Type", c.ctype)
		r := s.do(c.method, c.path, c.body, h...)
		p := r.problem(t, c.status)
		if len(p.Errors) != 1 || !strings.HasPrefix(p.Detail, c.detail) ||
			(!strings.HasPrefix(c.path, "/mrd") && p.Detail != p.Errors[0].Detail) {
			t.Errorf("%s %s %s (%s): detail %q, items %+v", c.method, c.path, c.body, c.ctype, p.Detail, p.Errors)
		}
	}
}
