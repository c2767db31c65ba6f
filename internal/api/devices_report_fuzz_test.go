package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/telemetry/telemetry/internal/store"
)

// reportRef is a report as the reference decoders read it.
type reportRef struct {
	Name  *string  `json:"name"`
	Value any      `json:"value"`
	Units *string  `json:"units"`
	Type  *string  `json:"type"`
	Slope *string  `json:"slope"`
	TTL   *float64 `json:"ttl"`
}

// FuzzParseReport checks parseReport (the body of PUT /mrd/{id}/metrics;
// docs/decoders.md) against json v2 and encoding/json:
//
//   - it never panics;
//   - it answers 400 exactly when the body is not a JSON object
//     (encoding/json's json.Valid, which like parseReport lets invalid
//     UTF-8 and repeated names through, and the first byte);
//   - otherwise every fault checkBodyText finds (a string that cannot be
//     stored, a repeated name) is among the 422's items;
//   - an accepted row is what json v2 decodes from the body with its
//     defaults (exact names, repeated names, invalid UTF-8 and lone
//     surrogates refused) and, when no top-level name matches a field
//     only case-insensitively, what encoding/json decodes (value bit for
//     bit); and it keeps the documented rules (no NUL, name and units at
//     most 255 characters, ...).
//
// Seeds: the f.Add list below and testdata/fuzz/FuzzParseReport.
// Run it with: go test ./internal/api -run '^$' -fuzz '^FuzzParseReport$' -fuzztime 25s
func FuzzParseReport(f *testing.F) {
	for _, s := range []string{
		`{"name":"cpu_temp","value":54.5,"units":"C","type":"float","slope":"both","ttl":60}`,
		`{"name":"my-metric","value":12,"units":"my-units","type":"uint32","slope":"both","ttl":180}`,
		`{"name":"s","value":"","units":"u","type":"string","slope":"zero","ttl":1}`,
		`{"name":"a","value":-128,"units":"u","type":"int8","slope":"derivative","ttl":2147483647}`,
		` {"ttl":6e1,"slope":"negative","type":"double","units":"é°","value":-0,"name":"x","extra":[1,{"a":null}]} `,
		`{"name":"a","name":"b","value":1,"units":"u","type":"float","slope":"both","ttl":60}`,
		`{"NAME":"a","Value":1,"UNITS":"u","tYpe":"float","ſlope":"both","TTL":60}`,
		`{"name":"a","NAME":"b","value":1,"units":"u","type":"float","slope":"both","ttl":60}`,
		`{"name":"a\u0000b","value":"\ud800","units":"\u00e9","type":"string","slope":"both","ttl":60}`,
		`{"name":"a\\u0000b","value":"\ud83d\ude00","units":"\u00e9","type":"string","slope":"both","ttl":60}`,
		`{"na\u006de":"a","value":1,"units":"u","type":"float","slope":"both","ttl":60,"x":{"y":"\udc00"}}`,
		`{"name":"a","value":1e309,"units":"u","type":"double","slope":"both","ttl":60}`,
		`{"name":"a","value":1,"units":"u","type":"float","slope":"both","ttl":60.0}`,
		`{"name":"a","value":1,"units":"u","type":"float","slope":"both","ttl":"60"}`,
		`{"name":"` + strings.Repeat("n", 256) + `","value":1,"units":"` + strings.Repeat("é", 255) + `","type":"float","slope":"both","ttl":60}`,
		"{\"name\":\"\xff\xfe\",\"value\":1,\"units\":\"u\",\"type\":\"float\",\"slope\":\"both\",\"ttl\":60}",
		"{\"name\":\"a\x00\",\"value\":1}",
		`{"value":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}`,
		`{}`, `[]`, `null`, `"x"`, ``, ` `, `{"name":`, `{"name":"a"}x`, `{"name":"a"} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		row, err := parseReport(body)
		object := json.Valid(body) && bytes.TrimLeft(body, " \t\r\n")[0] == '{'
		if err != nil {
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("%q: error %T %v, want a *Problem", body, err, err)
			}
			want := http.StatusUnprocessableEntity
			if !object {
				want = http.StatusBadRequest
			}
			if p.Status != want || len(p.Errors) == 0 {
				t.Fatalf("%q: status %d, want %d (%v)", body, p.Status, want, p)
			}
			if want == http.StatusUnprocessableEntity {
				checkFaultsListed(t, body, p)
			}
			return
		}
		if !object {
			t.Fatalf("accepted %q, which is not a JSON object", body)
		}
		if faults, _ := checkBodyText(body); len(faults) > 0 {
			t.Fatalf("accepted %q, which has faults %v", body, faults)
		}

		// json v2 with its defaults reads the same report.
		var ref reportRef
		if err := jsonv2.Unmarshal(body, &ref); err != nil {
			t.Fatalf("accepted %q, json v2 refuses it: %v", body, err)
		}
		checkReportRow(t, body, row, ref, "json v2")
		// So does encoding/json when it matches the same names.
		if !reportCaseVariants(body) {
			var ref reportRef
			if err := json.Unmarshal(body, &ref); err != nil {
				t.Fatalf("accepted %q, encoding/json cannot decode it: %v", body, err)
			}
			checkReportRow(t, body, row, ref, "encoding/json")
		}

		// The documented rules hold.
		if strings.TrimSpace(row.Name) == "" || row.Units == "" || strings.ContainsAny(row.Units, unitsForbidden) ||
			!oneOf(row.Type, MetricTypes) || !oneOf(row.Slope, MetricSlopes) || row.TTL < 1 || float64(row.TTL) > math.MaxInt32 ||
			!validText(row.Name, 1, maxMetricText) || !validText(row.Units, 1, maxMetricText) || strings.IndexByte(row.Text, 0) >= 0 {
			t.Fatalf("%q: accepted %+v, which breaks a rule", body, row)
		}
		if r, isInt := intRanges[row.Type]; isInt && (row.Num != math.Trunc(row.Num) || row.Num < r[0] || row.Num > r[1]) {
			t.Fatalf("%q: accepted %v for type %s", body, row.Num, row.Type)
		}
		if math.IsInf(row.Num, 0) || math.IsNaN(row.Num) {
			t.Fatalf("%q: accepted %v", body, row.Num)
		}
	})
}

// checkReportRow compares an accepted row with a reference decoding.
func checkReportRow(t *testing.T, body []byte, row store.MetricRow, ref reportRef, by string) {
	t.Helper()
	if ref.Name == nil || ref.Units == nil || ref.Type == nil || ref.Slope == nil || ref.TTL == nil || ref.Value == nil {
		t.Fatalf("accepted %q with a field missing for %s: %+v", body, by, ref)
	}
	if row.Name != *ref.Name || row.Units != *ref.Units || row.Type != *ref.Type || row.Slope != *ref.Slope ||
		float64(row.TTL) != *ref.TTL {
		t.Fatalf("%q: parseReport %+v, %s name %q units %q type %q slope %q ttl %v",
			body, row, by, *ref.Name, *ref.Units, *ref.Type, *ref.Slope, *ref.TTL)
	}
	switch v := ref.Value.(type) {
	case string:
		if row.Type != "string" || row.Text != v || row.Num != 0 {
			t.Fatalf("%q: parseReport %+v, %s value %q", body, row, by, v)
		}
	case float64:
		if row.Type == "string" || math.Float64bits(row.Num) != math.Float64bits(v) || row.Text != "" {
			t.Fatalf("%q: parseReport %+v, %s value %v", body, row, by, v)
		}
	default:
		t.Fatalf("%q: accepted a value of type %T", body, v)
	}
}

// checkFaultsListed checks that a 422 lists every fault checkBodyText
// finds in the body.
func checkFaultsListed(t *testing.T, body []byte, p *Problem) {
	t.Helper()
	faults, err := checkBodyText(body)
	if err != nil {
		t.Fatalf("%q: a 422 for a body that is not JSON: %v", body, err)
	}
	for _, f := range faults {
		want := f.(*ProblemItem)
		found := false
		for _, it := range p.Errors {
			if it.Location == want.Location && it.Title == want.Title && it.Detail == want.Detail {
				found = true
			}
		}
		if !found {
			t.Fatalf("%q: the 422 %+v lacks %+v", body, p.Errors, want)
		}
	}
}

// reportCaseVariants reports whether a top-level name of a JSON object
// matches one of the six fields only case-insensitively (encoding/json
// would fill the field from it; parseReport ignores it).
func reportCaseVariants(body []byte) bool {
	dec := jsontext.NewDecoder(bytes.NewReader(body), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return false
	}
	for dec.PeekKind() == '"' {
		name, err := dec.ReadToken()
		if err != nil {
			return false
		}
		for _, f := range []string{"name", "value", "units", "type", "slope", "ttl"} {
			if name.String() != f && strings.EqualFold(name.String(), f) {
				return true
			}
		}
		if err := dec.SkipValue(); err != nil {
			return false
		}
	}
	return false
}
