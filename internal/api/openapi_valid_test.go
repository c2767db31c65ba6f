package api

import (
	"slices"
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
