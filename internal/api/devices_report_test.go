package api

import (
	"errors"
	"strings"
	"testing"
)

// parseReport's edge cases beyond the HTTP tests (devices_test.go): names
// match exactly, repeated names and strings that cannot be stored are
// refused at their field's place, null is not an object.
func TestParseReportEdges(t *testing.T) {
	t.Parallel()
	const rest = `"value":1,"units":"u","type":"int8","slope":"both","ttl":60`
	cases := []struct {
		body   string
		status int    // 0: accepted
		items  string // source/title of each item, or the accepted name
	}{
		{`{"name":"cpu",` + rest + `}`, 0, "cpu"},
		{`{"na\u006de":"cpu",` + rest + `}`, 0, "cpu"},
		{`{"name":"cpu","NAME":"gpu",` + rest + `}`, 0, "cpu"}, // NAME is another, ignored, member
		{`{"name":"a\\u0000b",` + rest + `}`, 0, `a\u0000b`},   // an escaped backslash: no NUL
		{`{"name":"` + strings.Repeat("é", 255) + `",` + rest + `}`, 0, strings.Repeat("é", 255)},
		{`{"NAME":"cpu",` + rest + `}`, 422, "name/required"},
		{`{"name":"cpu","name":"cpu",` + rest + `}`, 422, "name/duplicate"},
		{`{"name":"a\u0000",` + rest + `}`, 422, "name/unicode"},
		{"{\"name\":\"a\xff\"," + rest + `}`, 422, "name/unicode"},
		{`{"name":"\ud800",` + rest + `}`, 422, "name/unicode"},
		{`{"name":"\udc00",` + rest + `}`, 422, "name/unicode"},
		{`{"name":"` + strings.Repeat("é", 256) + `",` + rest + `}`, 422, "name/max"},
		{`{"name":"n","value":1,"units":"` + strings.Repeat("u", 256) + `","type":"int8","slope":"both","ttl":60}`, 422, "units/max"},
		{`{"name":"n","value":"\u0000","units":"u","type":"string","slope":"both","ttl":60}`, 422, "value/unicode"},
		{`{"name":"cpu",` + rest + `,"extra":{"x":["\ud800"]}}`, 422, "/unicode"},
		{`{"name":"cpu",` + rest + `,"extra":1,"extra":2}`, 422, "extra/duplicate"},
		// Every failure at once, faults at their field's place, others last.
		{`{"x":"\u0000","name":"\u0000","value":true,"units":"\udc00","type":"bool","slope":"up","ttl":-5,"slope":"zero"}`, 422,
			"name/unicode units/unicode type/oneof slope/duplicate ttl/min x/unicode"},
		{`null`, 400, "/error parsing JSON body"},
		{`[]`, 400, "/error parsing JSON body"},
		{"[\"\xff\"]", 400, "/error parsing JSON body"},
		{`{"name":"cpu"} {}`, 400, "/error parsing JSON body"},
		{`{"name":"cpu"} x`, 400, "/error parsing JSON body"},
		{"{\"name\":\"a\x00\"}", 400, "/error parsing JSON body"}, // a raw NUL is not JSON
	}
	for _, c := range cases {
		row, err := parseReport([]byte(c.body))
		if c.status == 0 {
			if err != nil || row.Name != c.items {
				t.Errorf("%q: row %+v, error %v; want name %q", c.body, row, err, c.items)
			}
			continue
		}
		var p *Problem
		if !errors.As(err, &p) || p.Status != c.status {
			t.Errorf("%q: error %v, want a %d problem", c.body, err, c.status)
			continue
		}
		var got []string
		for _, it := range p.Errors {
			got = append(got, it.Source+"/"+it.Title)
			if it.Detail == "" || (c.status == 422 && it.Location != "body."+it.Source && it.Title != titleUnicode) {
				t.Errorf("%q: item %+v", c.body, it)
			}
			if s, ok := it.Value.(string); ok && len(s) > maxItemValue+3 {
				t.Errorf("%q: item echoes %d bytes", c.body, len(s))
			}
		}
		if strings.Join(got, " ") != c.items {
			t.Errorf("%q: items %v, want %s", c.body, got, c.items)
		}
	}
}
