package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"github.com/telemetry/telemetry/internal/config"
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
			ex := paramExample(p)
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

// Every request body example of the document (an example, a named one, or
// the object Swagger UI builds from the schema's property examples when
// there is neither) is a body the service stores: 2xx. The registry's
// device comes first, as the reports need it; a commit example names the
// run of a fresh register.
func TestRequestBodyExamplesAreAccepted(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.EnableTokenEndpoint = true })
	oapi := Spec()
	type write struct {
		method, path string
		op           *huma.Operation
	}
	var writes []write
	for path, item := range oapi.Paths {
		for method, op := range itemOperations(item) {
			if op.RequestBody != nil {
				writes = append(writes, write{method, path, op})
			}
		}
	}
	first := func(w write) bool { return w.op.OperationID == "createDevice" }
	slices.SortFunc(writes, func(a, b write) int {
		if first(a) != first(b) {
			if first(a) {
				return -1
			}
			return 1
		}
		return strings.Compare(a.method+a.path, b.method+b.path)
	})
	sent := 0
	for _, w := range writes {
		mt := w.op.RequestBody.Content["application/json"]
		if mt == nil {
			t.Fatalf("%s: no application/json body", w.op.OperationID)
		}
		bodies := map[string]any{}
		if mt.Example != nil {
			bodies["example"] = mt.Example
		}
		for name, e := range mt.Examples {
			bodies[name] = e.Value
		}
		if len(bodies) == 0 {
			bodies["from the schema"] = schemaExample(oapi.Components.Schemas, mt.Schema)
		}
		path := w.path
		for _, p := range w.op.Parameters {
			if p.In == "path" {
				path = strings.ReplaceAll(path, "{"+p.Name+"}", url.PathEscape(fmt.Sprint(paramExample(p))))
			}
		}
		for name, body := range bodies {
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			if w.op.OperationID == "commitEvent" {
				id := s.eventsRegister(t, `{"host": "h", "measurement": {"fields": {}}}`)
				b = bytes.ReplaceAll(b, []byte(eventsExampleUUID), []byte(id))
			}
			sent++
			if r := s.do(w.method, path, b, bearer(t)...); r.Status/100 != 2 {
				t.Errorf("%s %s, example %s: %d %s", w.method, path, name, r.Status, r.Body)
			}
		}
	}
	if sent < 10 {
		t.Fatalf("only %d example bodies sent", sent)
	}
}

// paramExample is a parameter's example, or nil.
func paramExample(p *huma.Param) any {
	if p.Example == nil && p.Schema != nil && len(p.Schema.Examples) > 0 {
		return p.Schema.Examples[0]
	}
	return p.Example
}

// schemaExample is the value Swagger UI shows for a schema without an
// example of its own: each property's example, an array of one item.
func schemaExample(r huma.Registry, s *huma.Schema) any {
	if s.Ref != "" {
		s = r.SchemaFromRef(s.Ref)
	}
	switch {
	case len(s.Examples) > 0:
		return s.Examples[0]
	case len(s.OneOf) > 0:
		return schemaExample(r, s.OneOf[0])
	case s.Type == huma.TypeArray:
		return []any{schemaExample(r, s.Items)}
	case s.Type == huma.TypeObject:
		o := map[string]any{}
		for name, p := range s.Properties {
			if v := schemaExample(r, p); v != nil {
				o[name] = v
			}
		}
		return o
	}
	return nil
}
