package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/validation"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/telemetry/telemetry/internal/store"
)

// Problem is the one error body of the service (RFC 9457 problem details),
// extended with the device-metrics seed's error items so that clients of the
// original APIs and generic problem+json clients both understand it.
type Problem struct {
	Type      string         `json:"type,omitempty" doc:"A URI reference identifying the problem type; absent means about:blank."`
	Title     string         `json:"title" example:"Unprocessable Entity" doc:"Short summary of the problem type: the HTTP status text."`
	Status    int            `json:"status" example:"422" doc:"HTTP status code."`
	Detail    string         `json:"detail,omitempty" example:"validation failed" doc:"Explanation of this occurrence."`
	RequestID string         `json:"requestId,omitempty" example:"5f0c3a7e9b1d4c2a" doc:"The request's X-Request-Id: quote it when reporting a problem."`
	Errors    []*ProblemItem `json:"errors,omitempty" doc:"One item per failed rule, all of them at once."`
	// The flows seed's keys (RFC 9457 extension members), on the 406 of a
	// POST /flows batch over FLOWS_MAX_BATCH only, so that its clients
	// read the answer they know.
	ErrorMessage string `json:"error_message,omitempty" example:"Too many flow objects are being registered" doc:"The flows aggregation service's message: on the 406 of a POST /flows batch over FLOWS_MAX_BATCH only."`
	StatusCode   int    `json:"status_code,omitempty" example:"406" doc:"The flows aggregation service's status: on the 406 of a POST /flows batch over FLOWS_MAX_BATCH only."`

	headers http.Header
}

// ProblemItem is one failed rule.
type ProblemItem struct {
	Status   int    `json:"status" example:"422" doc:"HTTP status of the error."`
	Title    string `json:"title" example:"required" doc:"The rule that failed: required, min, max, type, oneof, pattern, unknown, ..."`
	Detail   string `json:"detail" example:"units is a required field" doc:"What is wrong, for people."`
	Source   string `json:"source,omitempty" example:"units" doc:"The field or parameter at fault."`
	Location string `json:"location,omitempty" example:"body.units" doc:"Where the field is: body.units, body[3].bytes_tx, query.hour."`
	Value    any    `json:"value" doc:"The value received, null when missing."`

	// hugeNumber marks a hugeNumberItem (not sent).
	hugeNumber bool
}

func (p *Problem) Error() string { return p.Detail }

// GetStatus implements huma.StatusError.
func (p *Problem) GetStatus() int { return p.Status }

// GetHeaders implements huma.HeadersError (Retry-After, WWW-Authenticate).
func (p *Problem) GetHeaders() http.Header { return p.headers }

// ContentType makes huma send application/problem+json.
func (p *Problem) ContentType(ct string) string {
	if ct == "application/json" || ct == "" {
		return "application/problem+json"
	}
	return ct
}

// WithHeader adds a response header to the problem.
func (p *Problem) WithHeader(name, value string) *Problem {
	if p.headers == nil {
		p.headers = http.Header{}
	}
	p.headers.Set(name, value)
	return p
}

func (e *ProblemItem) Error() string { return e.Detail }

// NewProblem builds a problem; errs may be *ProblemItem (used as they are),
// huma.ErrorDetailer (translated) or plain errors (their text as detail).
func NewProblem(status int, detail string, errs ...error) *Problem {
	p := &Problem{Title: http.StatusText(status), Status: status, Detail: detail}
	for _, err := range errs {
		if err == nil {
			continue
		}
		var item *ProblemItem
		var hd huma.ErrorDetailer
		switch {
		case errors.As(err, &item):
			if item.Status == 0 {
				item.Status = status
			}
		case errors.As(err, &hd):
			item = fromHumaDetail(status, hd.ErrorDetail())
		default:
			item = &ProblemItem{Status: status, Title: "invalid", Detail: err.Error()}
		}
		p.Errors = append(p.Errors, item)
	}
	p.Errors = dropUnmatchedSchema(p.Errors)
	// huma answers a body it could not parse with a 400 whose detail is
	// "validation failed". A number past float64's range is valid JSON
	// (fromHumaDetail makes it a 422 item), and the other items then are
	// checks of values too: the answer is a 422, without the number's
	// item where a check named the same place more precisely.
	if status == http.StatusBadRequest && slices.ContainsFunc(p.Errors, isHugeNumber) {
		var out []*ProblemItem
		for _, it := range p.Errors {
			if isHugeNumber(it) && slices.ContainsFunc(p.Errors, func(o *ProblemItem) bool {
				return o != it && o.Location == it.Location
			}) {
				continue
			}
			if it.Status == http.StatusBadRequest && it.Title != "json" {
				it.Status = http.StatusUnprocessableEntity
			}
			out = append(out, it)
		}
		p.Errors = out
		if !slices.ContainsFunc(p.Errors, func(it *ProblemItem) bool { return it.Status != http.StatusUnprocessableEntity }) {
			p.Status, p.Title = http.StatusUnprocessableEntity, http.StatusText(http.StatusUnprocessableEntity)
		}
	}
	if detail == "validation failed" && p.Status != http.StatusUnprocessableEntity && len(p.Errors) == 1 {
		p.Detail = p.Errors[0].Detail
	}
	return p
}

// dropUnmatchedSchema drops huma's "matched none" item of an anyOf/oneOf
// (a value of several allowed forms, such as a string or a number) where
// a hand-made check reported the same location with a precise rule.
func dropUnmatchedSchema(items []*ProblemItem) []*ProblemItem {
	out := items[:0]
	for _, it := range items {
		if unmatched(it) && slices.ContainsFunc(items, func(o *ProblemItem) bool {
			return o.Location == it.Location && !unmatched(o)
		}) {
			continue
		}
		out = append(out, it)
	}
	return out
}

// A value that matches none of its allowed forms is a type error.
const (
	titleUnmatched  = "type"
	detailUnmatched = " is none of the forms it may take (see the schema)"
)

func unmatched(it *ProblemItem) bool {
	return it.Title == titleUnmatched && strings.HasSuffix(it.Detail, detailUnmatched)
}

// plural is n and noun, with an s but for n "1" ("1 character", "255
// characters": a required name said "at least 1 characters long").
func plural(n, noun string) string {
	if n == "1" {
		return n + " " + noun
	}
	return n + " " + noun + "s"
}

// installErrorModel makes huma produce Problem for every error it writes:
// validation, body parsing, body size, and the handlers' own errors. huma
// keeps these hooks in package variables, so New sets them once (not an
// init: importing the package changes nothing).
var installErrorModel = sync.OnceFunc(func() {
	// Field names are exact: "SRC_APP" is an unknown field, not src_app
	// (huma, like encoding/json, folds case by default).
	huma.ValidateStrictCasing = true
	// An array in an answer is always an array, empty rather than null
	// (newPage and the handlers make sure), so the document says so and
	// generated clients get X[] rather than X[] | null.
	huma.DefaultArrayNullable = false
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		return bodyTypeIsMalformed(NewProblem(status, msg, errs...))
	}
	huma.NewErrorWithContext = func(ctx huma.Context, status int, msg string, errs ...error) huma.StatusError {
		var p *Problem
		if ctx != nil {
			// A body that did not arrive is not a 500 (limits.go). huma
			// writes this answer with WriteErr, which leaves a problem's
			// own headers (Retry-After) out: set them here.
			p = bodyReadProblem(ctx.Context(), status, errs)
			if p != nil {
				for k, v := range p.headers {
					ctx.SetHeader(k, strings.Join(v, ", "))
				}
			}
		}
		if p == nil && status == http.StatusRequestEntityTooLarge && ctx != nil && ctx.Operation() != nil &&
			ctx.Operation().MaxBodyBytes > 0 {
			// huma's detail names its limit: say what is taken.
			p = NewProblem(status, tooLargeDetail(ctx.Operation().MaxBodyBytes-1))
		}
		if p == nil && status == http.StatusUnprocessableEntity && ctx != nil {
			// huma's failures and the unknown query parameters, at once
			// (strict_query.go).
			errs = append(unknownQueryOf(ctx), errs...)
		}
		if p == nil {
			p = bodyTypeIsMalformed(NewProblem(status, msg, errs...))
		}
		if ctx != nil {
			p.RequestID = RequestID(ctx.Context())
			unknownParameterValues(ctx, p)
			integersPastRange(ctx.Operation(), p)
			dropShadowed(ctx, p)
		}
		return p
	}
})

// dropShadowed leaves one item for a query value that has a type item
// from decimalParams: that one, which says what the API takes, without
// huma's min or max item about the same value (Infinity is not a number
// the API takes, rather than one past its maximum) or its own type item
// (for yesterday, which neither parses). Only for a parameter given once:
// given twice, huma's item is about the value it read, decimalParams' may
// be about the other, and both stay (found by a review).
func dropShadowed(ctx huma.Context, p *Problem) {
	last := map[string]*ProblemItem{} // the last type item of each query location
	for _, it := range p.Errors {
		if it.Title == "type" && strings.HasPrefix(it.Location, "query.") {
			last[it.Location] = it
		}
	}
	if len(last) == 0 {
		return
	}
	u := ctx.URL()
	query := rawQueryValues(u.RawQuery)
	for loc := range last {
		if len(query[strings.TrimPrefix(loc, "query.")]) != 1 {
			delete(last, loc)
		}
	}
	p.Errors = slices.DeleteFunc(p.Errors, func(it *ProblemItem) bool {
		keep, typed := last[it.Location]
		return typed && it != keep && (it.Title == "min" || it.Title == "max" || it.Title == "type")
	})
}

// wholeNumberRe is an integer written in digits, which "must be an
// integer" would misname when it does not parse: it is past 64 bits.
var wholeNumberRe = regexp.MustCompile(`^[+-]?[0-9]+$`)

// integersPastRange makes huma's type item for a query or path integer
// written in digits but past 64 bits (hour=99999999999999999999) the min
// or max item it is, with the parameter's documented bound (as a value
// that parses but is out of range gets), or 64 bits when none is.
func integersPastRange(op *huma.Operation, p *Problem) {
	if op == nil {
		return
	}
	for _, it := range p.Errors {
		v, ok := it.Value.(string)
		in, name, _ := strings.Cut(it.Location, ".")
		if !ok || it.Title != "type" || (in != "query" && in != "path") || !wholeNumberRe.MatchString(v) {
			continue
		}
		var schema *huma.Schema
		for _, prm := range op.Parameters {
			if prm.In == in && prm.Name == name {
				schema = prm.Schema
			}
		}
		if q, ok := op.Metadata[queryNamesKey].(queryNames); ok && schema == nil && in == "query" {
			schema = q.hiddenInts[name] // skip, limit: as page and size (found by an audit)
		}
		if schema == nil || (schema.Type != "integer" && schema.Type != "") {
			continue
		}
		title, bound, side := "max", schema.Maximum, " or less"
		if strings.HasPrefix(v, "-") {
			title, bound, side = "min", schema.Minimum, " or greater"
		}
		it.Title, it.Detail = title, name+" must fit in a 64-bit integer"
		if bound != nil {
			it.Detail = name + " must be " + strconv.FormatFloat(*bound, 'f', -1, 64) + side
		}
	}
}

// unknownParameterValues puts in each item about an unknown query parameter
// the value it was given (its first, when given more than once): huma's
// item carries an empty one.
func unknownParameterValues(ctx huma.Context, p *Problem) {
	var query url.Values
	for _, it := range p.Errors {
		name, ok := strings.CutPrefix(it.Location, "query.")
		if !ok || it.Title != "unknown" || it.Value != "" {
			continue
		}
		if query == nil {
			u := ctx.URL()
			query = rawQueryValues(u.RawQuery)
		}
		it.Value = shownQuery(name, query.Get(name))
	}
}

// validationFailed is the 422 listing every failed rule (a 400 when the body
// as a whole has the wrong JSON type).
func validationFailed(errs ...error) *Problem {
	return bodyTypeIsMalformed(NewProblem(http.StatusUnprocessableEntity, "validation failed", errs...))
}

// bodyTypeIsMalformed makes huma's 422 for a body of the wrong JSON type as
// a whole (an array where an object is expected) a 400, like malformed JSON
// (README.md, "API at a glance": Errors); field errors stay 422s.
func bodyTypeIsMalformed(p *Problem) *Problem {
	if p.Status != http.StatusUnprocessableEntity {
		return p
	}
	for _, it := range p.Errors {
		if it.Location == "body" && it.Title == "type" {
			// The body is what the client sent: not echoed back (huma's
			// item held it whole, NULs and all, when it was small), as
			// the batches' decoders never did.
			it.Value = nil
			p.Status, p.Title = http.StatusBadRequest, http.StatusText(http.StatusBadRequest)
			for _, it := range p.Errors {
				it.Status = http.StatusBadRequest
			}
			if len(p.Errors) == 1 {
				p.Detail = it.Detail // as NewProblem has it for a 400
			}
			break
		}
	}
	return p
}

// fromHumaDetail turns huma's {message, location, value} into an item that
// names the rule (title) and the field (source).
func fromHumaDetail(status int, d *huma.ErrorDetail) *ProblemItem {
	it := &ProblemItem{Status: status, Location: d.Location, Value: d.Value, Title: "invalid", Detail: d.Message}
	msg := d.Message
	if m := reRequired.FindStringSubmatch(msg); m != nil {
		// huma names the missing property in the message, at its parent's location.
		it.Location = joinLocation(d.Location, m[1])
		it.Value = nil
	}
	field := leafName(it.Location)
	it.Source = field
	if field == "" {
		field = "value"
		if it.Location == "body" {
			field = "the body"
		}
	}
	matched := false
	for _, r := range humaRules {
		if m := r.re.FindStringSubmatch(msg); m != nil {
			arg := ""
			if len(m) > 1 {
				arg = m[1]
			}
			it.Title, it.Detail = r.title, r.detail(field, arg)
			matched = true
			break
		}
	}
	switch {
	case matched:
	case strings.HasPrefix(msg, huma.ErrUnknownContentType.Error()):
		it.Title, it.Detail, it.Value = "contentType", msg+"; send Content-Type: application/json", nil
	case it.Location == "body" && status == http.StatusBadRequest && hugeNumberRe.MatchString(msg):
		body, _ := d.Value.(string)
		it = hugeNumberItem(msg, body)
	case it.Location == "body" && status == http.StatusBadRequest:
		it.Title, it.Detail, it.Value = "json", "the body is not valid JSON: "+msg, nil
	case it.Location == "body" && (strings.Contains(msg, "cannot unmarshal number") || // encoding/json
		// json v2 (unmarshalBody) says "cannot" or "unable to", chosen
		// at random once per process so that nobody matches on it.
		strings.Contains(msg, "unmarshal JSON number")):
		// The schema took the number as an integer (huma checks a
		// float64), the typed decode did not: written with a fraction or
		// an exponent (1e2, 1.0), or past 64 bits. Named where the
		// decoder says it is.
		it.Title, it.Value = "type", nil
		it.Detail = "a number in the body must be an integer written without a fraction or exponent, within 64 bits"
		if path := numberPath(msg); path != "" {
			it.Location, it.Source = "body."+path, leafName("body."+path)
			name := it.Source
			if name == "" { // an array's element
				name = path
			}
			it.Detail = name + " must be an integer written without a fraction or exponent, within 64 bits"
		}
	}
	if it.Title == "required" {
		it.Value = nil
	}
	// huma's item about an unknown member carries the whole object that
	// holds it: the member's own value is what was given (echoing the
	// object made a body of n unknown members an answer of n^2).
	if obj, ok := it.Value.(map[string]any); ok && it.Title == "unknown" {
		it.Value = obj[leafName(it.Location)]
	}
	// Never echo a large body back (huma puts the whole body in value),
	// nor a long message (a decoder's names the number it refused, whole).
	it.Value = shownValue(it.Value)
	if len(it.Detail) > maxDetail {
		it.Detail = strings.ToValidUTF8(it.Detail[:maxDetail], "") + "..."
	}
	// JSON has no Inf or NaN (a float parameter given as "Inf"): say it as text.
	if f, ok := it.Value.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
		it.Value = strconv.FormatFloat(f, 'g', -1, 64)
	}
	return it
}

// shownValue is a value fit to echo in an item: text as shownText makes
// it, an object or array only when small (at most shownNodes values, none
// of them long text, so that its JSON is a few hundred bytes and shallow),
// null otherwise.
func shownValue(v any) any {
	switch v := v.(type) {
	case string:
		return shownText(v)
	case map[string]any, []any:
		budget := shownNodes
		if !smallValue(v, &budget) {
			return nil
		}
	}
	return v
}

// maxDetail bounds the bytes of an item's detail.
const maxDetail = 1024

// shownNodes bounds the values of an echoed object or array.
const shownNodes = 32

// smallValue spends budget on each value of v, and reports whether v fits
// it: it stops at the first value past it, so its cost is the budget's.
func smallValue(v any, budget *int) bool {
	if *budget--; *budget < 0 {
		return false
	}
	switch v := v.(type) {
	case string:
		return len(v) <= 64
	case map[string]any:
		for k, x := range v {
			if len(k) > 64 || !smallValue(x, budget) {
				return false
			}
		}
	case []any:
		for _, x := range v {
			if !smallValue(x, budget) {
				return false
			}
		}
	}
	return true
}

// Where a typed decode's number error is: encoding/json names the struct
// field's JSON path after its type's name, json v2 a JSON pointer.
var (
	numberFieldRe   = regexp.MustCompile(`Go struct field [^ .]+\.(\S+) of type`)
	numberPointerRe = regexp.MustCompile(`within "/([^"]+)"`)
)

// numberPath is the dotted location (measurement.fields.clients, l[1])
// of the number an unmarshal error message names, or "".
func numberPath(msg string) string {
	if m := numberFieldRe.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	m := numberPointerRe.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	return pointerPath(m[1])
}

// hugeNumberRe is encoding/json's refusal of a number past float64's range
// (1e400): huma parses the whole body into an any before it validates it.
var hugeNumberRe = regexp.MustCompile(`cannot unmarshal number (\S+) into Go value of type float64`)

// isHugeNumber reports whether it is a hugeNumberItem.
func isHugeNumber(it *ProblemItem) bool { return it.hugeNumber }

// hugeNumberItem is the 422 item for the number past float64's range
// that msg (an encoding/json error) refused in body, nil when msg is not
// such a refusal: the body is valid JSON, with a number no JSON parser
// here holds, refused as any value out of range is, where it is.
func hugeNumberItem(msg, body string) *ProblemItem {
	m := hugeNumberRe.FindStringSubmatch(msg)
	if m == nil {
		return nil
	}
	it := &ProblemItem{Status: http.StatusUnprocessableEntity, Title: "type", Location: "body", Value: shownValue(m[1]), hugeNumber: true}
	if path := hugeNumberPath(body); strings.HasPrefix(path, "[") {
		it.Location = "body" + path
	} else if path != "" {
		it.Location = "body." + path
	}
	it.Source = leafName(it.Location)
	name := it.Source
	if name == "" {
		name = "a number in the body"
	}
	it.Detail = name + " is " + m[1] + ", beyond the range of a JSON number (about ±1.8e308)"
	return it
}

// hugeNumberPath is the dotted location of the first number in body that
// a float64 cannot hold (measurement.fields.hatchRate, [0].bytes_tx), ""
// for the body itself or when there is none.
func hugeNumberPath(body string) string {
	// Repeated names and invalid UTF-8 are other items of the same answer
	// (checkBodyText): they must not hide where the number is.
	d := jsontext.NewDecoder(strings.NewReader(body), jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	for {
		tok, err := d.ReadToken()
		if err != nil {
			return ""
		}
		if tok.Kind() != '0' {
			continue
		}
		if _, err := strconv.ParseFloat(tok.String(), 64); err != nil {
			// The stack says which tokens are array indexes: a member
			// named "0" is .0, not [0] (pointerPath cannot tell).
			var b strings.Builder
			level := 1
			for part := range d.StackPointer().Tokens() {
				if kind, _ := d.StackIndex(level); kind == '[' {
					b.WriteString("[" + part + "]")
				} else {
					if level > 1 {
						b.WriteByte('.')
					}
					b.WriteString(part)
				}
				level++
			}
			return b.String()
		}
	}
}

// pointerPath is the dotted location of a JSON pointer's tokens (given
// without their leading slash): measurement/fields/clients, l/1 as l[1].
func pointerPath(ptr string) string {
	if ptr == "" {
		return ""
	}
	var b strings.Builder
	for i, part := range strings.Split(ptr, "/") {
		part = strings.NewReplacer("~1", "/", "~0", "~").Replace(part)
		if _, err := strconv.Atoi(part); err == nil {
			b.WriteString("[" + part + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(part)
	}
	return b.String()
}

// humaRule names the rule behind one of huma's validation messages.
type humaRule struct {
	format string // huma's message, with %v, %d or %s where it puts the rule's argument
	title  string
	detail func(field, arg string) string
	re     *regexp.Regexp
}

// plainNumber writes a bound huma formatted with %v (a float64:
// 2.147483647e+09) as the schema writes it (2147483647); anything else is
// left as it is.
func plainNumber(a string) string {
	f, err := strconv.ParseFloat(a, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return a
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// exampleUUID is the UUID the format items show.
const exampleUUID = "0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f"

// humaRules are built from huma's exported message formats (package
// validation), so that a huma upgrade that rewords one fails
// TestValidationTitles instead of silently changing a title. The few
// messages huma writes as literals are listed as such.
var humaRules = compileHumaRules([]humaRule{
	{format: validation.MsgExpectedRequiredProperty, title: "required",
		detail: func(f, _ string) string { return f + " is a required field" }},
	{format: "required %s parameter is missing", title: "required",
		detail: func(f, _ string) string { return f + " is a required field" }},
	{format: validation.MsgUnexpectedProperty, title: "unknown",
		detail: func(f, _ string) string { return f + " is not a known field" }},
	{format: "unknown query parameter", title: "unknown",
		detail: func(f, _ string) string { return f + " is not a known parameter" }},
	{format: validation.MsgExpectedMinimumNumber, title: "min",
		detail: func(f, a string) string { return f + " must be " + plainNumber(a) + " or greater" }},
	{format: validation.MsgExpectedExclusiveMinimumNumber, title: "gt",
		detail: func(f, a string) string { return f + " must be greater than " + plainNumber(a) }},
	{format: validation.MsgExpectedMaximumNumber, title: "max",
		detail: func(f, a string) string { return f + " must be " + plainNumber(a) + " or less" }},
	{format: validation.MsgExpectedExclusiveMaximumNumber, title: "lt",
		detail: func(f, a string) string { return f + " must be less than " + plainNumber(a) }},
	{format: validation.MsgExpectedMinLength, title: "min",
		detail: func(f, a string) string { return f + " must be at least " + plural(a, "character") + " long" }},
	{format: validation.MsgExpectedMaxLength, title: "max",
		detail: func(f, a string) string { return f + " must be at most " + plural(a, "character") + " long" }},
	{format: validation.MsgExpectedMinItems, title: "min",
		detail: func(f, a string) string { return f + " must have at least " + plural(a, "item") }},
	{format: validation.MsgExpectedMaxItems, title: "max",
		detail: func(f, a string) string { return f + " must have at most " + plural(a, "item") }},
	{format: validation.MsgExpectedOneOf, title: "oneof",
		detail: func(f, a string) string { return f + " must be one of " + a }},
	{format: validation.MsgExpectedMatchPattern, title: "pattern",
		detail: func(f, a string) string { return f + " must match the pattern " + a }},
	// The formats users get wrong most, with an example (the library's
	// own words after the format are left out).
	{format: validation.MsgExpectedRFC4122UUID, title: "format",
		detail: func(f, _ string) string { return f + " must be a UUID such as " + exampleUUID }},
	{format: validation.MsgExpectedRFC3339DateTime, title: "format",
		detail: func(f, _ string) string {
			return f + " must be an RFC 3339 date-time such as 2025-11-22T10:00:00Z (in a URL, write a + offset as %2B)"
		}},
	{format: validation.MsgExpectedBePattern, title: "format", // every "expected string to be <format>"
		detail: func(f, a string) string { return f + " must be " + a }},
	{format: validation.MsgExpectedMatchAtLeastOneSchema, title: titleUnmatched,
		detail: func(f, _ string) string { return f + detailUnmatched }},
	{format: validation.MsgExpectedMatchExactlyOneSchema, title: titleUnmatched,
		detail: func(f, _ string) string { return f + detailUnmatched }},
	{format: validation.MsgExpectedInteger, title: "type", detail: typeDetail("integer")},
	{format: validation.MsgExpectedNumber, title: "type", detail: typeDetail("number")},
	{format: validation.MsgExpectedString, title: "type", detail: typeDetail("string")},
	{format: validation.MsgExpectedBoolean, title: "type", detail: typeDetail("boolean")},
	{format: validation.MsgExpectedArray, title: "type", detail: typeDetail("array")},
	{format: validation.MsgExpectedObject, title: "type", detail: typeDetail("object")},
	// Query and path values that do not parse (huma's literals).
	{format: "invalid integer", title: "type", detail: typeDetail("integer")},
	{format: "invalid float", title: "type", detail: typeDetail("number")},
	{format: "invalid boolean", title: "type", detail: typeDetail("boolean")},
})

func typeDetail(kind string) func(string, string) string {
	return func(f, _ string) string { return f + " must be " + article(kind) }
}

// compileHumaRules turns each format into an anchored pattern whose one
// group is the argument.
func compileHumaRules(rules []humaRule) []humaRule {
	verb := regexp.MustCompile(`%[vds]`)
	for i := range rules {
		parts := verb.Split(rules[i].format, -1)
		for j := range parts {
			parts[j] = regexp.QuoteMeta(parts[j])
		}
		rules[i].re = regexp.MustCompile("^" + strings.Join(parts, "(.+?)") + "$")
	}
	return rules
}

var reRequired = compileHumaRules([]humaRule{{format: validation.MsgExpectedRequiredProperty}})[0].re

func article(kind string) string {
	switch kind {
	case "integer", "array", "object":
		return "an " + kind
	}
	return "a " + kind
}

func joinLocation(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}

// leafName is the last field of a location: body[3].bytes_tx -> bytes_tx,
// query.hour -> hour, body[3] -> "". A parameter's name is everything after
// its place (query.a.b -> a.b: an unknown query parameter may hold dots).
func leafName(loc string) string {
	for _, in := range []string{"query.", "path.", "header.", "cookie."} {
		if name, ok := strings.CutPrefix(loc, in); ok {
			return name
		}
	}
	i := strings.LastIndexAny(loc, ".]")
	if i < 0 || loc[i] == ']' {
		return ""
	}
	return loc[i+1:]
}

// writeProblem writes a problem outside huma (router-level 404/405/406).
func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	p.RequestID = RequestID(r.Context())
	for k, v := range p.headers {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = jsonFormat.Marshal(w, p) // as huma writes its problems
}

// storeError is the one place that maps a store failure to the problem a
// client sees: 503 with Retry-After when the database cannot be reached or
// is overloaded, 422 for a value PostgreSQL refused, 404 and 409 for the
// generic cases (handlers that can say more check those kinds first), and
// otherwise a logged 500 that shows only the request id, never the
// driver's message or SQL.
func (s *server) storeError(ctx context.Context, op string, err error) error {
	rule, detail := store.Explain(err)
	var p *Problem
	switch {
	case errors.As(err, &p):
		return p // already an answer (keyedWrite's 422 and 409)
	case errors.Is(err, store.ErrReadOnly):
		// DATABASE_URL reaches a replica, or a primary in recovery: a
		// failover may be under way, so a retry may succeed.
		s.warns.Warn(ctx, "database read-only", op, "error", err.Error(), "request_id", RequestID(ctx))
		return unavailable("the database is read-only (a replica or in recovery); retry later")
	case errors.Is(err, store.ErrUnavailable) && errors.Is(ctx.Err(), context.DeadlineExceeded):
		// The request's DB_TIMEOUT passed (handle gives ctx that deadline):
		// the database is slow or the pool has no connection free, not
		// necessarily down.
		s.warns.Warn(ctx, "database timeout", op, "error", err.Error(), "request_id", RequestID(ctx),
			"db_timeout", s.cfg.DBTimeout.String())
		return unavailable("the database did not answer within DB_TIMEOUT; retry later")
	case errors.Is(err, store.ErrUnavailable):
		s.warns.Warn(ctx, "database unavailable", op, "error", err.Error(), "request_id", RequestID(ctx))
		if detail == "" {
			detail = "the database is unavailable" // unreachable: no PostgreSQL error to explain
		}
		return unavailable(detail + "; retry later")
	case errors.Is(err, store.ErrTooLarge) && store.Faults(err) != nil:
		// The batch's items the store named (POST /flows: the flow at
		// which a total passes 64 bits).
		var items []error
		for _, f := range store.Faults(err) {
			items = append(items, &ProblemItem{Title: "max", Source: f.Field,
				Location: fmt.Sprintf("body[%d].%s", f.Index, f.Field), Detail: f.Detail})
		}
		return NewProblem(http.StatusUnprocessableEntity, detail, items...)
	case errors.Is(err, store.ErrTooLarge):
		return NewProblem(http.StatusUnprocessableEntity, detail)
	case errors.Is(err, store.ErrInvalid):
		return NewProblem(http.StatusUnprocessableEntity, "validation failed",
			&ProblemItem{Title: rule, Location: "body", Detail: detail})
	case errors.Is(err, store.ErrNotFound):
		return NewProblem(http.StatusNotFound, "not found")
	case errors.Is(err, store.ErrConflict):
		return NewProblem(http.StatusConflict, detail)
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this answer.
		return NewProblem(statusClientGone, "request cancelled")
	}
	s.log.ErrorContext(ctx, "internal error", "op", op, "error", err.Error(), "request_id", RequestID(ctx))
	return internalError(ctx)
}

// statusClientGone is the status logged for a request whose client went
// away before its answer (nginx's 499): nobody reads it, so the document
// does not list it.
const statusClientGone = 499

// unavailable is a 503 with Retry-After.
func unavailable(detail string) *Problem {
	return NewProblem(http.StatusServiceUnavailable, detail).WithHeader("Retry-After", strconv.Itoa(retryAfterSeconds))
}

func internalError(ctx context.Context) *Problem {
	id := RequestID(ctx)
	return &Problem{Title: http.StatusText(500), Status: 500, RequestID: id,
		Detail: fmt.Sprintf("internal error; quote request id %s when reporting it", id)}
}

const retryAfterSeconds = 5
