package api

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"
)

// Rules of OpenAPI and JSON Schema that tools validating the document
// enforce (found by an audit with kin-openapi and a JSON Schema validator):
// a media type has example or examples, never both, and a nullable schema
// with an enum lists null in it (else null, which the answers hold, fails
// the schema).
func TestOpenAPIExamplesAndNullableEnums(t *testing.T) {
	t.Parallel()
	oapi := Spec()
	media := 0
	for path, item := range oapi.Paths {
		for method, op := range itemOperations(item) {
			var contents []map[string]*huma.MediaType
			if op.RequestBody != nil {
				contents = append(contents, op.RequestBody.Content)
			}
			for _, r := range op.Responses {
				contents = append(contents, r.Content)
			}
			for _, c := range contents {
				for ct, mt := range c {
					media++
					if mt.Example != nil && len(mt.Examples) > 0 {
						t.Errorf("%s %s %s: both example and examples", method, path, ct)
					}
				}
			}
		}
	}
	if media < 100 {
		t.Fatalf("only %d media types walked", media)
	}
	nullable := 0
	seen := map[*huma.Schema]bool{}
	var walk func(name string, s *huma.Schema)
	walk = func(name string, s *huma.Schema) {
		if s == nil || seen[s] {
			return
		}
		seen[s] = true
		if s.Nullable && len(s.Enum) > 0 {
			nullable++
			if !slices.Contains(s.Enum, nil) {
				t.Errorf("%s: nullable with enum %v lacking null", name, s.Enum)
			}
		}
		for p, x := range s.Properties {
			walk(name+"."+p, x)
		}
		walk(name+"[]", s.Items)
	}
	for name, s := range oapi.Components.Schemas.Map() {
		walk(name, s)
	}
	if nullable == 0 {
		t.Fatal("no nullable enum found: the check tells nothing")
	}
}

// Swagger UI's "Try it out" fills every parameter with its example, so the
// examples of a read's parameters, taken together, make a request the
// service takes: 200, or 404 where a path example names nothing stored.
// GET /flows and /flows/summary had examples for hour and for from_hour
// and to_hour, which the service refuses together (422 excluded), so their
// "Try it out" failed until a parameter was cleared by hand.
func TestParameterExamplesTogetherAreAccepted(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	reads := 0
	for path, item := range Spec().Paths {
		op := item.Get
		if op == nil {
			continue
		}
		reads++
		q := url.Values{}
		for _, p := range op.Parameters {
			ex := p.Example
			if ex == nil && p.Schema != nil && len(p.Schema.Examples) > 0 {
				ex = p.Schema.Examples[0]
			}
			if ex == nil {
				continue
			}
			switch p.In {
			case "path":
				path = strings.ReplaceAll(path, "{"+p.Name+"}", url.PathEscape(fmt.Sprint(ex)))
			case "query":
				q.Set(p.Name, fmt.Sprint(ex))
			}
		}
		target := path
		if len(q) > 0 {
			target += "?" + q.Encode()
		}
		if r := s.do(http.MethodGet, target, nil); r.Status != http.StatusOK && r.Status != http.StatusNotFound {
			t.Errorf("%s (%s) with its examples: %d %s", op.OperationID, target, r.Status, r.Body)
		}
	}
	if reads < 20 {
		t.Fatalf("only %d reads in the document", reads)
	}
}
