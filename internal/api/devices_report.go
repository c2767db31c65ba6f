package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

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
	Name  string      `json:"name" required:"true" minLength:"1" maxLength:"255" pattern:"\\S" example:"ct.ipmi.temperature" doc:"Metric name; a dotted prefix such as ct.ipmi, ct.snmp or ct.user may be used. Not blank, not . or .. (reserved); at most 255 characters."`
	Value MetricValue `json:"value" required:"true" doc:"The value: a JSON string when type is string (empty allowed), otherwise a JSON number: integral and within range for the integer types (int8 -128..127, uint8 0..255, int16, uint16, int32, uint32), any finite number for float and double. Booleans and null are refused."`
	Units string      `json:"units" required:"true" minLength:"1" maxLength:"255" pattern:"^[^<>'\"&]*$" example:"degrees C" doc:"Units of the value; at most 255 characters, none of < > ' \" &."`
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
		OneOf:       []*huma.Schema{{Type: "string"}, {Type: "number", Format: "double"}},
		Examples:    []any{42},
	}
}

// MarshalJSON writes the value in its JSON type, a string as every JSON
// answer writes its strings (jsonOptions: <, > and & as they are; the JSON
// encoder keeps these bytes as they come). encoding/json's Marshal wrote
// them \u003c, \u003e, \u0026 in the current metrics' pages and exports.
func (v MetricValue) MarshalJSON() ([]byte, error) {
	if v.Str != nil {
		return jsonv2.Marshal(*v.Str, jsonOptions)
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

// rawReport keeps each field's JSON text (a slice of the body; nil when
// absent) so that a wrong JSON type can be reported per field.
type rawReport struct {
	Name, Value, Units, Type, Slope, TTL []byte
}

// slot is the field a member name (as in the body, quotes included) fills:
// names are matched exactly, and nil means a name that is ignored.
func (r *rawReport) slot(quoted []byte) *[]byte {
	name := quoted
	if bytes.IndexByte(quoted, '\\') >= 0 { // "na\u006de" is name too
		name, _ = jsontext.AppendQuote(nil, unquoteLenient(quoted))
	}
	switch string(name) {
	case `"name"`:
		return &r.Name
	case `"value"`:
		return &r.Value
	case `"units"`:
		return &r.Units
	case `"type"`:
		return &r.Type
	case `"slope"`:
		return &r.Slope
	case `"ttl"`:
		return &r.TTL
	}
	return nil
}

// jsonKind is the JSON type of a raw value; "" when missing.
func jsonKind(raw []byte) string {
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

// rawValue is a field's value as a problem item echoes it (long strings
// cut short).
func rawValue(raw []byte) any {
	if len(raw) == 0 {
		return nil
	}
	if raw[0] == '"' {
		s, _ := decodeString(raw)
		return itemString(s)
	}
	var v any
	if err := jsonv2.Unmarshal(raw, &v, jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true)); err != nil {
		// A number past float64's range (1e400): echoed as it was
		// written, not as the 0 a failed decode leaves.
		return itemString(string(raw))
	}
	return v
}

// itemString is a string as a problem item echoes it: at most
// maxItemValue bytes (on a character boundary), so that a 70 KB name is
// not sent back whole.
func itemString(s string) string { return clipText(s, maxItemValue) }

// clipText is s cut to at most n bytes, at a character boundary, with
// "..." after the cut; s itself when it fits.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// maxItemValue is the longest string value a problem item echoes, as for
// huma's items (fromHumaDetail).
const maxItemValue = 256

// maxMetricText is the longest name and units, in characters.
const maxMetricText = 255

// errParse is the seed's 400: the body is not a JSON object.
func errParse(detail string) *Problem {
	return NewProblem(http.StatusBadRequest, "error parsing JSON body: "+detail, &ProblemItem{
		Title: "error parsing JSON body", Detail: detail, Location: "body",
	})
}

// reportParser decodes report bodies with pooled json v2 decoders
// (github.com/go-json-experiment/json, encoding/json/v2 from Go 1.27). Its
// zero value is ready to use.
type reportParser struct {
	decoders sync.Pool // of *reportDecoder
}

// reportDecoder is a decoder and the reader it reads a body from.
type reportDecoder struct {
	r   bytes.Reader
	dec jsontext.Decoder
}

// errReportSlow makes split leave a body to the careful path.
var errReportSlow = errors.New("left to the careful path")

// split fills raw from a body that is a JSON object. strict (the fast
// path) fails on anything checkBodyText would report: a repeated name,
// invalid UTF-8 or a lone surrogate (json v2 refuses them by default), an
// escaped NUL or a value nested too deep (errReportSlow). Otherwise (strict false) those are let
// through, the last repeated name winning, for the rules to run on a body
// whose faults checkBodyText lists. The error is a *Problem (400) when the
// body is not an object.
func (p *reportParser) split(body []byte, raw *rawReport, strict bool) error {
	d, _ := p.decoders.Get().(*reportDecoder)
	if d == nil {
		d = new(reportDecoder)
	}
	defer func() {
		d.r.Reset(nil) // keep no reference to the request's body
		p.decoders.Put(d)
	}()
	d.r.Reset(body)
	if strict {
		d.dec.Reset(&d.r)
	} else {
		d.dec.Reset(&d.r, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	}
	dec := &d.dec
	switch kind := dec.PeekKind(); kind {
	case '{':
	case '[', '"', '0', 't', 'f', 'n':
		// A complete value of another type is a 400 in the seed's words;
		// anything malformed is left to the caller, which explains it.
		if _, err := dec.ReadValue(); err != nil {
			return err
		}
		if _, err := dec.ReadValue(); !errors.Is(err, io.EOF) {
			return errReportSlow
		}
		return errParse("the body must be a JSON object, not " + kindName(kind))
	default:
		_, err := dec.ReadValue()
		return err
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	for dec.PeekKind() != '}' {
		name, err := readRaw(dec, body)
		if err != nil {
			return err
		}
		value, err := readRaw(dec, body)
		if err != nil {
			return err
		}
		// (A member's value is 1 deep in the body.)
		if strict && (hasEscapedNUL(value) || hasEscapedNUL(name) || !nestedWithin(value, maxNesting-1)) {
			return errReportSlow
		}
		if f := raw.slot(name); f != nil {
			*f = value
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return err
	}
	if _, err := dec.ReadValue(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("jsontext: invalid data after the top-level object")
		}
		return err
	}
	return nil
}

// kindName names a JSON kind as jsontext reports it.
func kindName(k jsontext.Kind) string {
	switch k {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	}
	return "null"
}

// parseReport decodes and validates a report body with a parser of its
// own (the handler keeps one, whose decoders are reused).
func parseReport(body []byte) (store.MetricRow, error) {
	var p reportParser
	return p.parse(body)
}

// parse decodes and validates a report body into a row (DeviceID and Time
// left for the caller). It returns a 400 problem for a body that is not a
// JSON object and a 422 listing every failed rule otherwise: strings with
// a NUL, invalid UTF-8 or a lone surrogate and repeated names (textcheck.go)
// included, each at its field's place in the order name, value, units,
// type, slope, ttl, those of other members last.
func (p *reportParser) parse(body []byte) (store.MetricRow, error) {
	var row store.MetricRow
	if len(bytes.TrimSpace(body)) == 0 {
		return row, errParse("the body is empty; send a JSON object")
	}
	var raw rawReport
	var faults []error
	if err := p.split(body, &raw, true); err != nil {
		var prob *Problem
		if errors.As(err, &prob) {
			return row, prob
		}
		// The careful path: checkBodyText explains what the fast one
		// refused, then the rules run on the body read leniently.
		faults, err = checkBodyText(body)
		if err != nil {
			return row, errParse(strings.TrimPrefix(err.Error(), "jsontext: "))
		}
		raw = rawReport{}
		if err := p.split(body, &raw, false); err != nil {
			if errors.As(err, &prob) {
				return row, prob
			}
			return row, errParse(strings.TrimPrefix(err.Error(), "jsontext: "))
		}
	}

	var errs []error
	fail := func(field, title, detail string, value any) {
		errs = append(errs, &ProblemItem{Title: title, Detail: detail, Source: field, Location: "body." + field, Value: value})
	}
	// faulty reports the faults inside field (at its place in the order)
	// and whether there were any: its rules are then not checked.
	faulty := func(field string) bool {
		found := false
		for i, f := range faults {
			if f != nil && within(f.(*ProblemItem).Location, "body."+field) {
				errs = append(errs, f)
				faults[i] = nil
				found = true
			}
		}
		return found
	}
	// str decodes a string field; a missing or null field is "", as the
	// original (Go's encoding/json) had it. ok is false after a type error,
	// which it reports.
	str := func(field string, raw []byte) (s string, ok bool) {
		if s, ok = decodeString(raw); !ok {
			fail(field, "type", field+" must be a string", rawValue(raw))
		}
		return s, ok
	}

	// name: required, notblank, max.
	if !faulty("name") {
		if name, ok := str("name", raw.Name); ok {
			switch {
			case name == "":
				fail("name", "required", "name is a required field", rawValue(raw.Name))
			case strings.TrimSpace(name) == "":
				fail("name", "notblank", "name cannot be blank", itemString(name))
			case !validLength(name, 0, maxMetricText):
				fail("name", "max", fmt.Sprintf("name must be at most %d characters long", maxMetricText), itemString(name))
			case dotSegment(name):
				fail("name", "reserved", fmt.Sprintf("name %q is reserved: as a URL path segment (the metric's history) clients remove it", name),
					itemString(name))
			}
			row.Name = name
		}
	}

	// type is needed to judge value; its own errors come later in order.
	typ, typOK := decodeString(raw.Type)
	typeValid := typOK && oneOf(typ, MetricTypes)

	// value: required; validtype when type is valid.
	switch {
	case faulty("value"):
	case jsonKind(raw.Value) == "":
		fail("value", "required", "value is a required field", nil)
	case typeValid:
		if !setValue(&row, typ, raw.Value) {
			fail("value", "validtype", "value is not valid for type "+typ, rawValue(raw.Value))
		}
	}

	// units: required, max, excludesall.
	if !faulty("units") {
		if units, ok := str("units", raw.Units); ok {
			switch {
			case units == "":
				fail("units", "required", "units is a required field", rawValue(raw.Units))
			case !validLength(units, 0, maxMetricText):
				fail("units", "max", fmt.Sprintf("units must be at most %d characters long", maxMetricText), itemString(units))
			case strings.ContainsAny(units, unitsForbidden):
				fail("units", "excludesall", `units cannot contain any of the following characters '<>'"&'`, itemString(units))
			}
			row.Units = units
		}
	}

	// type: required, oneof.
	switch {
	case faulty("type"):
	case !typOK:
		fail("type", "type", "type must be a string", rawValue(raw.Type))
	case typ == "":
		fail("type", "required", "type is a required field", rawValue(raw.Type))
	case !typeValid:
		fail("type", "oneof", "type must be one of ["+strings.Join(MetricTypes, " ")+"]", itemString(typ))
	}
	row.Type = typ

	// slope: required, oneof.
	if !faulty("slope") {
		if slope, ok := str("slope", raw.Slope); ok {
			switch {
			case slope == "":
				fail("slope", "required", "slope is a required field", rawValue(raw.Slope))
			case !oneOf(slope, MetricSlopes):
				fail("slope", "oneof", "slope must be one of ["+strings.Join(MetricSlopes, " ")+"]", itemString(slope))
			}
			row.Slope = slope
		}
	}

	// ttl: an integer; 0 (or missing) is "required", below 1 "min".
	switch kind := jsonKind(raw.TTL); {
	case faulty("ttl"):
	case kind == "" || kind == "null":
		fail("ttl", "required", "ttl is a required field", nil)
	case kind == "number":
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

	// Faults of the other members (ignored fields) come last.
	for _, f := range faults {
		if f != nil {
			errs = append(errs, f)
		}
	}
	if len(errs) > 0 {
		return row, NewProblem(http.StatusUnprocessableEntity, "validation failed", errs...)
	}
	return row, nil
}

// within reports whether location is field or inside it.
func within(location, field string) bool {
	if !strings.HasPrefix(location, field) {
		return false
	}
	rest := location[len(field):]
	return rest == "" || rest[0] == '.' || rest[0] == '['
}

// decodeString decodes a JSON string; missing and null give "". ok is false
// for any other JSON type.
func decodeString(raw []byte) (s string, ok bool) {
	switch jsonKind(raw) {
	case "", "null":
		return "", true
	case "string":
		return string(unquoteLenient(raw)), true
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
func setValue(row *store.MetricRow, typ string, raw []byte) bool {
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
