package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strings"
	"testing"
)

// FuzzParseReport checks parseReport (the body of PUT /mrd/{id}/metrics)
// against encoding/json, its reference (docs/devices.md, "Why the report
// body has its own scanner"):
//
//   - whenever scanReport, the hand-written fast path, takes a body,
//     json.Unmarshal takes it too and splits it into the same six raw
//     fields (names matched as encoding/json matches them, case-insensitively;
//     the last of repeated names wins);
//   - parseReport answers 400 exactly when encoding/json cannot split the
//     body (empty, malformed, a JSON type other than an object or null;
//     null reads as {}, as in encoding/json: 422), else 422 or a row, and
//     accepts only JSON objects;
//   - a row is what encoding/json decodes from the same body (name, value,
//     units, type, slope, ttl), and it keeps the documented rules.
//
// It never panics. Seeds: the f.Add list below and testdata/fuzz/FuzzParseReport.
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
		`{"name":"a\u0000b","value":"\ud800","units":"\u00e9","type":"string","slope":"both","ttl":60}`,
		`{"name":"a","value":1e309,"units":"u","type":"double","slope":"both","ttl":60}`,
		`{"name":"a","value":1,"units":"u","type":"float","slope":"both","ttl":60.0}`,
		`{"name":"a","value":1,"units":"u","type":"float","slope":"both","ttl":"60"}`,
		"{\"name\":\"\xff\xfe\",\"value\":1,\"units\":\"u\",\"type\":\"float\",\"slope\":\"both\",\"ttl\":60}",
		"{\"name\":\"a\x00\",\"value\":1}",
		`{"value":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}`,
		`{}`, `[]`, `null`, `"x"`, ``, ` `, `{"name":`, `{"name":"a"}x`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		// The fast split agrees with encoding/json whenever it answers.
		var fast rawReport
		if scanReport(body, &fast) {
			var slow rawReport
			if err := json.Unmarshal(body, &slow); err != nil {
				t.Fatalf("scanReport took %q, json.Unmarshal refuses it: %v", body, err)
			}
			if norm(fast) != norm(slow) {
				t.Fatalf("%q: scanReport split %q, json.Unmarshal %q", body, norm(fast), norm(slow))
			}
		}

		row, err := parseReport(body)
		// 400 exactly when encoding/json cannot split the body: not JSON,
		// or JSON other than an object or null (null reads as {}: 422).
		var split rawReport
		splits := json.Unmarshal(body, &split) == nil
		if err != nil {
			var p *Problem
			if !errors.As(err, &p) {
				t.Fatalf("%q: error %T %v, want a *Problem", body, err, err)
			}
			want := http.StatusUnprocessableEntity
			if !splits {
				want = http.StatusBadRequest
			}
			if p.Status != want {
				t.Fatalf("%q: status %d, want %d (%v)", body, p.Status, want, p)
			}
			return
		}
		if !json.Valid(body) || bytes.TrimLeft(body, " \t\r\n")[0] != '{' {
			t.Fatalf("accepted %q, which is not a JSON object", body)
		}

		// encoding/json reads the same report.
		var ref struct {
			Name  *string  `json:"name"`
			Value any      `json:"value"`
			Units *string  `json:"units"`
			Type  *string  `json:"type"`
			Slope *string  `json:"slope"`
			TTL   *float64 `json:"ttl"`
		}
		if err := json.Unmarshal(body, &ref); err != nil {
			t.Fatalf("accepted %q, encoding/json cannot decode it: %v", body, err)
		}
		if ref.Name == nil || ref.Units == nil || ref.Type == nil || ref.Slope == nil || ref.TTL == nil || ref.Value == nil {
			t.Fatalf("accepted %q with a field missing for encoding/json: %+v", body, ref)
		}
		if row.Name != *ref.Name || row.Units != *ref.Units || row.Type != *ref.Type || row.Slope != *ref.Slope ||
			float64(row.TTL) != *ref.TTL {
			t.Fatalf("%q: parseReport %+v, encoding/json name %q units %q type %q slope %q ttl %v",
				body, row, *ref.Name, *ref.Units, *ref.Type, *ref.Slope, *ref.TTL)
		}
		switch v := ref.Value.(type) {
		case string:
			if row.Type != "string" || row.Text != v || row.Num != 0 {
				t.Fatalf("%q: parseReport %+v, encoding/json value %q", body, row, v)
			}
		case float64:
			if row.Type == "string" || math.Float64bits(row.Num) != math.Float64bits(v) || row.Text != "" {
				t.Fatalf("%q: parseReport %+v, encoding/json value %v", body, row, v)
			}
		default:
			t.Fatalf("%q: accepted a value of type %T", body, v)
		}

		// The documented rules hold.
		if strings.TrimSpace(row.Name) == "" || row.Units == "" || strings.ContainsAny(row.Units, unitsForbidden) ||
			!oneOf(row.Type, MetricTypes) || !oneOf(row.Slope, MetricSlopes) || row.TTL < 1 || float64(row.TTL) > math.MaxInt32 {
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
