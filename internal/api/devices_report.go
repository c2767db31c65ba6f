package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"

	"github.com/telemetry/telemetry/internal/store"
)

// The body of PUT /mrd/{device_id}/metrics is read raw and validated here,
// not by huma: value is a string or a number depending on type, extra
// fields are ignored, and the errors must be exactly the Concertim daemon's
// (rule titles, details and field order name, value, units, type, slope,
// ttl). MetricReport documents the same body in the OpenAPI document.

// MetricTypes and MetricSlopes are the accepted type and slope values, in
// the order the error details list them.
var (
	MetricTypes  = []string{"string", "int8", "uint8", "int16", "uint16", "int32", "uint32", "float", "double"}
	MetricSlopes = []string{"zero", "positive", "negative", "both", "derivative"}
)

// unitsForbidden are the characters units may not contain.
const unitsForbidden = `<>'"&`

// MetricReport is the documented body of a report (validation is by hand:
// see parseReport).
type MetricReport struct {
	_     struct{}    `additionalProperties:"true"`
	Name  string      `json:"name" required:"true" minLength:"1" pattern:"\\S" example:"ct.ipmi.temperature" doc:"Metric name; a dotted prefix such as ct.ipmi, ct.snmp or ct.user may be used. Not blank."`
	Value MetricValue `json:"value" required:"true" doc:"The value: a JSON string when type is string (empty allowed), otherwise a JSON number: integral and within range for the integer types (int8 -128..127, uint8 0..255, int16, uint16, int32, uint32), any finite number for float and double. Booleans and null are refused."`
	Units string      `json:"units" required:"true" minLength:"1" pattern:"^[^<>'\"&]*$" example:"degrees C" doc:"Units of the value; may not contain < > ' \" &."`
	Type  string      `json:"type" required:"true" enum:"string,int8,uint8,int16,uint16,int32,uint32,float,double" example:"int32" doc:"Type of the value."`
	Slope string      `json:"slope" required:"true" enum:"zero,positive,negative,both,derivative" example:"both" doc:"How the value changes: zero (never), positive (only increases), negative (only decreases), both, derivative."`
	TTL   int64       `json:"ttl" required:"true" minimum:"1" maximum:"2147483647" example:"180" doc:"Seconds until the metric is stale and leaves the current views."`
}

// MetricValue is a metric's value: a string or a number.
type MetricValue struct {
	Str *string
	Num float64
}

// Schema documents the value as a string or a number.
func (MetricValue) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{
		Description: "A string for type string, otherwise a number.",
		OneOf:       []*huma.Schema{{Type: "string"}, {Type: "number"}},
		Examples:    []any{42},
	}
}

// MarshalJSON writes the value in its JSON type.
func (v MetricValue) MarshalJSON() ([]byte, error) {
	if v.Str != nil {
		return json.Marshal(*v.Str)
	}
	return json.Marshal(v.Num)
}

// UnmarshalJSON reads a string or a number.
func (v *MetricValue) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = MetricValue{Str: &s}
		return nil
	}
	*v = MetricValue{}
	return json.Unmarshal(b, &v.Num)
}

// rawReport keeps each field undecoded so that a wrong JSON type can be
// reported per field. encoding/json ignores unknown fields.
type rawReport struct {
	Name  json.RawMessage `json:"name"`
	Value json.RawMessage `json:"value"`
	Units json.RawMessage `json:"units"`
	Type  json.RawMessage `json:"type"`
	Slope json.RawMessage `json:"slope"`
	TTL   json.RawMessage `json:"ttl"`
}

// jsonKind is the JSON type of a raw value; "" when missing.
func jsonKind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "number"
}

func rawValue(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	var v any
	_ = json.Unmarshal(raw, &v)
	return v
}

// errParse is the seed's 400: the body is not a JSON object.
func errParse(detail string) *Problem {
	return NewProblem(http.StatusBadRequest, "error parsing JSON body: "+detail, &ProblemItem{
		Title: "error parsing JSON body", Detail: detail, Location: "body",
	})
}

// parseReport decodes and validates a report body into a row (DeviceID and
// Time left for the caller). It returns a 400 problem for a body that is not
// a JSON object and a 422 listing every failed rule otherwise.
func parseReport(body []byte) (store.MetricRow, error) {
	var row store.MetricRow
	if len(bytes.TrimSpace(body)) == 0 {
		return row, errParse("the body is empty; send a JSON object")
	}
	var raw rawReport
	if !scanReport(body, &raw) {
		if err := json.Unmarshal(body, &raw); err != nil {
			var syn *json.SyntaxError
			var typ *json.UnmarshalTypeError
			switch {
			case errors.As(err, &syn):
				return row, errParse(fmt.Sprintf("%s (at byte %d)", syn.Error(), syn.Offset))
			case errors.As(err, &typ) && typ.Field == "":
				return row, errParse("the body must be a JSON object, not " + article(typ.Value))
			}
			return row, errParse(err.Error())
		}
	}

	var errs []error
	fail := func(field, title, detail string, value any) {
		errs = append(errs, &ProblemItem{Title: title, Detail: detail, Source: field, Location: "body." + field, Value: value})
	}
	// str decodes a string field; a missing or null field is "", as the
	// original (Go's encoding/json) had it. ok is false after a type error,
	// which it reports.
	str := func(field string, raw json.RawMessage) (s string, ok bool) {
		if s, ok = decodeString(raw); !ok {
			fail(field, "type", field+" must be a string", rawValue(raw))
		}
		return s, ok
	}

	// name: required, notblank.
	if name, ok := str("name", raw.Name); ok {
		switch {
		case name == "":
			fail("name", "required", "name is a required field", rawValue(raw.Name))
		case strings.TrimSpace(name) == "":
			fail("name", "notblank", "name cannot be blank", name)
		}
		row.Name = name
	}

	// type is needed to judge value; its own errors come later in order.
	typ, typOK := decodeString(raw.Type)
	typeValid := typOK && oneOf(typ, MetricTypes)

	// value: required; validtype when type is valid.
	switch {
	case jsonKind(raw.Value) == "":
		fail("value", "required", "value is a required field", nil)
	case typeValid:
		if !setValue(&row, typ, raw.Value) {
			fail("value", "validtype", "value is not valid for type "+typ, rawValue(raw.Value))
		}
	}

	// units: required, excludesall.
	if units, ok := str("units", raw.Units); ok {
		switch {
		case units == "":
			fail("units", "required", "units is a required field", rawValue(raw.Units))
		case strings.ContainsAny(units, unitsForbidden):
			fail("units", "excludesall", `units cannot contain any of the following characters '<>'"&'`, units)
		}
		row.Units = units
	}

	// type: required, oneof.
	switch {
	case !typOK:
		fail("type", "type", "type must be a string", rawValue(raw.Type))
	case typ == "":
		fail("type", "required", "type is a required field", rawValue(raw.Type))
	case !typeValid:
		fail("type", "oneof", "type must be one of ["+strings.Join(MetricTypes, " ")+"]", typ)
	}
	row.Type = typ

	// slope: required, oneof.
	if slope, ok := str("slope", raw.Slope); ok {
		switch {
		case slope == "":
			fail("slope", "required", "slope is a required field", rawValue(raw.Slope))
		case !oneOf(slope, MetricSlopes):
			fail("slope", "oneof", "slope must be one of ["+strings.Join(MetricSlopes, " ")+"]", slope)
		}
		row.Slope = slope
	}

	// ttl: an integer; 0 (or missing) is "required", below 1 "min".
	switch jsonKind(raw.TTL) {
	case "", "null":
		fail("ttl", "required", "ttl is a required field", nil)
	case "number":
		f, err := strconv.ParseFloat(string(raw.TTL), 64)
		switch {
		case err != nil || f != math.Trunc(f):
			fail("ttl", "type", "ttl must be an integer", rawValue(raw.TTL))
		case f == 0:
			fail("ttl", "required", "ttl is a required field", rawValue(raw.TTL))
		case f < 1:
			fail("ttl", "min", "ttl must be 1 or greater", rawValue(raw.TTL))
		case f > math.MaxInt32:
			fail("ttl", "max", "ttl must be 2147483647 or less", rawValue(raw.TTL))
		default:
			row.TTL = int32(f)
		}
	default:
		fail("ttl", "type", "ttl must be an integer", rawValue(raw.TTL))
	}

	if len(errs) > 0 {
		return row, NewProblem(http.StatusUnprocessableEntity, "validation failed", errs...)
	}
	return row, nil
}

// decodeString decodes a JSON string; missing and null give "". ok is false
// for any other JSON type.
func decodeString(raw json.RawMessage) (s string, ok bool) {
	switch jsonKind(raw) {
	case "", "null":
		return "", true
	case "string":
		// Most strings have no escapes: take them as they are (the body
		// already parsed as JSON, so the quotes are balanced).
		if inner := raw[1 : len(raw)-1]; !bytes.ContainsAny(inner, `\"`) && utf8.Valid(inner) {
			return string(inner), true
		}
		return s, json.Unmarshal(raw, &s) == nil
	}
	return "", false
}

func oneOf(s string, set []string) bool {
	for _, v := range set {
		if s == v {
			return true
		}
	}
	return false
}

// intRanges are the bounds of the integer types.
var intRanges = map[string][2]float64{
	"int8": {math.MinInt8, math.MaxInt8}, "uint8": {0, math.MaxUint8},
	"int16": {math.MinInt16, math.MaxInt16}, "uint16": {0, math.MaxUint16},
	"int32": {math.MinInt32, math.MaxInt32}, "uint32": {0, math.MaxUint32},
}

// setValue checks that raw is a valid value of type typ and stores it in
// row. Booleans, null, objects and arrays are never valid.
func setValue(row *store.MetricRow, typ string, raw json.RawMessage) bool {
	kind := jsonKind(raw)
	if typ == "string" {
		if kind != "string" {
			return false
		}
		var ok bool
		row.Text, ok = decodeString(raw)
		return ok
	}
	if kind != "number" {
		return false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return false
	}
	if r, isInt := intRanges[typ]; isInt && (f != math.Trunc(f) || f < r[0] || f > r[1]) {
		return false
	}
	row.Num = f
	return true
}

// scanReport is the fast path of parseReport (encoding/json's reflection
// and copies cost more than the rest of a report's handling): it splits a
// flat JSON object into rawReport's fields without copying, exactly as
// json.Unmarshal would, and returns false, leaving raw to json.Unmarshal,
// for anything outside a strict subset of JSON: keys or strings with
// escapes or control characters, nested objects or arrays, keys that match
// a field only case-insensitively, malformed input.
func scanReport(b []byte, raw *rawReport) bool {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	var r rawReport
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		*raw = r
		return skipSpace(b, i+1) == len(b)
	}
	for {
		ks, ke, ok := scanSimpleString(b, i)
		if !ok {
			return false
		}
		i = skipSpace(b, ke)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		vs := skipSpace(b, i+1)
		ve, ok := scanSimpleValue(b, vs)
		if !ok {
			return false
		}
		var field *json.RawMessage
		switch key := string(b[ks+1 : ke-1]); key {
		case "name":
			field = &r.Name
		case "value":
			field = &r.Value
		case "units":
			field = &r.Units
		case "type":
			field = &r.Type
		case "slope":
			field = &r.Slope
		case "ttl":
			field = &r.TTL
		default:
			for _, f := range [...]string{"name", "value", "units", "type", "slope", "ttl"} {
				if strings.EqualFold(key, f) {
					return false // encoding/json would match it
				}
			}
		}
		if field != nil {
			*field = b[vs:ve:ve] // the last of repeated keys wins, as in encoding/json
		}
		i = skipSpace(b, ve)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			*raw = r
			return skipSpace(b, i+1) == len(b)
		default:
			return false
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// scanSimpleString scans a JSON string at b[i] without escapes or control
// characters and returns its bounds, quotes included.
func scanSimpleString(b []byte, i int) (start, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return i, j + 1, true
		case c == '\\' || c < 0x20:
			return 0, 0, false
		}
	}
	return 0, 0, false
}

// scanSimpleValue scans a JSON string (as scanSimpleString), number, true,
// false or null at b[i] and returns where it ends.
func scanSimpleValue(b []byte, i int) (end int, ok bool) {
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		_, end, ok := scanSimpleString(b, i)
		return end, ok
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(b, i)
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if bytes.HasPrefix(b[i:], []byte(lit)) {
			return i + len(lit), true
		}
	}
	return 0, false
}

// scanNumber scans a number by JSON's grammar:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (end int, ok bool) {
	digits := func(i int) int {
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i)
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return 0, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return 0, false
		}
		i = j
	}
	return i, true
}
