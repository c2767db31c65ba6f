package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/telemetry/telemetry/internal/store"
)

// Batches of up to 100,000 flows arrive on POST /flows, so the body is
// decoded here rather than by huma, which parses a body twice (into generic
// maps to validate it, then into structs). The fast path decodes once into
// typed values and checks the rules by hand; only a body that breaks some
// rule goes through huma's schema validator, so that the 422 lists every
// failure exactly as for any other endpoint.

// The flow rules the schema documents, as the store enforces them.
const (
	maxNameLen = store.MaxFlowName
	maxHour    = store.MaxFlowHour
)

// flowDecoder validates flow batches (batch_decode.go).
type flowDecoder struct {
	batchSchema
	limit batchLimit
}

func newFlowDecoder(api huma.API, limit batchLimit) *flowDecoder {
	// null is not a batch: the schema says so.
	return &flowDecoder{newBatchSchema(api, reflect.TypeOf([]Flow{}),
		"Flows to add to the hourly totals; an empty array is accepted.", false), limit}
}

// hourLimit is the latest hour a request accepts: maxHour, or under
// MAX_TIME_AHEAD the hour that holds the server's clock + MAX_TIME_AHEAD.
type hourLimit struct {
	max   int64         // the latest hour accepted
	ahead time.Duration // MAX_TIME_AHEAD when it set max, else 0
}

// flowHourLimit is the hour limit of a request the server's clock reads
// now at, under MAX_TIME_AHEAD ahead (0: off, hours up to maxHour):
// floor((now + ahead) / 1h), so a flow of the hour that holds now + ahead
// is accepted and one of the next hour refused.
func flowHourLimit(now time.Time, ahead time.Duration) hourLimit {
	latest, on := aheadLimit(now, ahead)
	if !on {
		return hourLimit{max: maxHour}
	}
	// Truncate counts from year 1, a whole number of hours before the
	// Unix epoch: the start of latest's hour, exactly.
	h := latest.Truncate(time.Hour).Unix() / 3600
	if h >= maxHour {
		return hourLimit{max: maxHour}
	}
	return hourLimit{max: h, ahead: ahead}
}

// decode returns the batch, or the problem to answer: a batch of more than
// the limit's flows is its 406 whatever the flows hold. Hours past hours.max
// are refused.
func (d *flowDecoder) decode(contentType string, body []byte, hours hourLimit) ([]store.Flow, error) {
	if err := checkContentType(contentType); err != nil {
		return nil, err
	}
	flows, n, ok := fastDecode(body, d.limit.max, hours.max)
	if err := d.limit.check(body, n, ok); err != nil {
		return nil, err
	}
	if ok {
		return flows, nil
	}
	return nil, d.explain(body, hours)
}

// fastDecode accepts only a fully valid batch and decodes it straight into
// the store's flows, reading the body token by token with jsontext (the
// tokenizer of github.com/go-json-experiment/json): it refuses repeated
// names, invalid UTF-8 and lone surrogates itself. Names match exactly
// (after unescaping, as json v2 matches them); an unknown name, a missing
// or null field, a fraction or exponent in an integer, or anything else
// off the documented shape refuses the batch, and explain says why.
//
// Without reflection or a pointer per field it decodes a 1,000-flow batch
// in about a third of the time json v2's Unmarshal took, with one
// allocation per distinct name instead of eight or nine per flow: a
// batch's flows repeat a few applications and VPCs, and each is stored
// once (docs/decoders.md).
//
// n is the number of items; past maxItems it only counts them (flows is then
// nil: the batch is refused as too large). An hour past lastHour (maxHour,
// or less under MAX_TIME_AHEAD) refuses the batch.
func fastDecode(body []byte, maxItems int, lastHour int64) (flows []store.Flow, n int, ok bool) {
	dec, ok := openBatch(body)
	if !ok {
		return nil, 0, false
	}
	flows = make([]store.Flow, 0, min(len(body)/96+1, maxItems))
	names := map[string]string{}
	for dec.PeekKind() == '{' {
		if len(flows) == maxItems {
			rest, ok := countRest(dec)
			return nil, maxItems + rest, ok
		}
		f, ok := decodeFlow(dec, names, lastHour)
		if !ok {
			return nil, 0, false
		}
		flows = append(flows, f)
	}
	return flows, len(flows), closeBatch(dec)
}

// The fields of a flow, as bits of what decodeFlow has seen.
const (
	flowSrcApp = 1 << iota
	flowDestApp
	flowVpcID
	flowBytesTx
	flowBytesRx
	flowHour
	flowAll = 1<<iota - 1
)

// decodeFlow reads one flow object; the decoder is at its '{'. Its hour
// is at most lastHour.
func decodeFlow(dec *jsontext.Decoder, names map[string]string, lastHour int64) (store.Flow, bool) {
	var f store.Flow
	if _, err := dec.ReadToken(); err != nil {
		return f, false
	}
	seen := 0
	var buf []byte // unescaped names and strings, reused
	for dec.PeekKind() == '"' {
		name, err := dec.ReadValue()
		if err != nil {
			return f, false
		}
		key, ok := stringContent(name, &buf)
		if !ok {
			return f, false
		}
		// jsontext refuses a repeated name, so each bit is set once. The
		// name is only compared: the value may reuse buf.
		var field int
		switch string(key) {
		case "src_app":
			field = flowSrcApp
		case "dest_app":
			field = flowDestApp
		case "vpc_id":
			field = flowVpcID
		case "bytes_tx":
			field = flowBytesTx
		case "bytes_rx":
			field = flowBytesRx
		case "hour":
			field = flowHour
		default:
			return f, false
		}
		seen |= field
		v, err := dec.ReadValue()
		if err != nil {
			return f, false
		}
		switch field {
		case flowSrcApp:
			f.SrcApp, ok = flowText(v, names, &buf)
		case flowDestApp:
			f.DestApp, ok = flowText(v, names, &buf)
		case flowVpcID:
			f.VpcID, ok = flowText(v, names, &buf)
		case flowBytesTx:
			f.BytesTx, ok = flowInt(v)
		case flowBytesRx:
			f.BytesRx, ok = flowInt(v)
		case flowHour:
			f.Hour, ok = flowInt(v)
			ok = ok && f.Hour <= lastHour
		}
		if !ok {
			return f, false
		}
	}
	if seen != flowAll || dec.PeekKind() != '}' {
		return f, false
	}
	_, err := dec.ReadToken()
	return f, err == nil
}

// flowText is a name field's value: a JSON string of 1 to maxNameLen
// characters without NUL, the same string for the same value within a batch.
func flowText(v jsontext.Value, names map[string]string, buf *[]byte) (string, bool) {
	s, ok := internText(v, names, buf, 1, maxNameLen)
	return s, ok && len(s) <= store.MaxFlowNameBytes
}

// flowInt is a count field's value: a JSON integer from 0 to the largest
// int64, written without a fraction or exponent ("-0" is 0, as json v2 and
// encoding/json read it).
func flowInt(v jsontext.Value) (int64, bool) {
	if v.Kind() != '0' {
		return 0, false
	}
	if v[0] == '-' {
		return 0, string(v) == "-0"
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// explain builds the answer for a body the fast path refused: 400 when it
// is not JSON, else a 422 listing every rule broken, item by item: the
// strings that cannot be stored and the repeated names (textcheck.go),
// then the schema's rules, then the hours past MAX_TIME_AHEAD.
func (d *flowDecoder) explain(body []byte, hours hourLimit) error {
	faults, err := checkBodyText(body)
	if err != nil {
		return notJSON(err, body)
	}
	if bodyKind(body) != '[' {
		// The wrong JSON type for the body as a whole is a 400, like
		// malformed JSON (README.md, "API at a glance"); item errors are
		// 422s. The strings that cannot be stored and the repeated names
		// are listed beside it, as for a measurement batch.
		return validationFailed(append(faults, &ProblemItem{
			Title: "type", Location: "body", Detail: "the body must be a JSON array of flows",
		})...)
	}
	var parsed any
	slim := slimBatch(body)
	if err := json.Unmarshal(slim, &parsed); err != nil {
		return notJSON(err, body, faults...)
	}
	errs := append(faults, d.validate(parsed)...)
	errs = append(errs, flowNameBytesErrors(parsed)...)
	// Valid for the schema (whose numbers are float64) yet refused by the
	// typed decode: integers written as 1.0 or 1e3, or beyond 64 bits.
	// Listed beside the other failures (until 2026-12-06 only when there
	// were none: a 1.0 beside an empty name went unsaid), except where a
	// place has its item already (1.5 is the schema's type item, an hour
	// past 2147483647 its max).
	items := numberedItems(slim)
	ints := integerErrors(items)
	if len(errs) > len(faults) {
		ints = slices.DeleteFunc(ints, func(e error) bool {
			loc := errorLocation(e)
			return slices.ContainsFunc(errs, func(o error) bool { return errorLocation(o) == loc })
		})
	}
	errs = append(errs, ints...)
	// After the check above, so that an hour ahead does not hide the
	// integers integerErrors finds.
	errs = append(errs, aheadHourErrors(items, hours)...)
	if len(errs) == 0 {
		errs = append(errs, &ProblemItem{Title: "invalid", Location: "body", Detail: "the batch could not be decoded"})
	}
	return validationFailed(errs...)
}

// errorLocation is where a validation error is: a ProblemItem's location,
// or huma's.
func errorLocation(err error) string {
	var item *ProblemItem
	var hd huma.ErrorDetailer
	switch {
	case errors.As(err, &item):
		return item.Location
	case errors.As(err, &hd):
		return hd.ErrorDetail().Location
	}
	return ""
}

// flowNameBytesErrors lists the names within their characters (the
// schema's maxLength) but over store.MaxFlowNameBytes bytes.
func flowNameBytesErrors(parsed any) []error {
	items, _ := parsed.([]any)
	var errs []error
	for i, item := range items {
		flow, _ := item.(map[string]any)
		for _, field := range [...]string{"src_app", "dest_app", "vpc_id"} {
			s, ok := flow[field].(string)
			if ok && len(s) > store.MaxFlowNameBytes && utf8.RuneCountInString(s) <= maxNameLen {
				errs = append(errs, &ProblemItem{Title: "max", Source: field, Location: fmt.Sprintf("body[%d].%s", i, field),
					Detail: fmt.Sprintf("%s must be at most %d bytes of UTF-8 (it has %d)", field, store.MaxFlowNameBytes, len(s))})
			}
		}
	}
	return errs
}

// aheadHourErrors lists the hours past hours.max under MAX_TIME_AHEAD,
// one "max" item each, given the items with their numbers as written
// (numberedItems). Only the hours that break no other rule are listed
// (integers written without a fraction or exponent, 0 to maxHour): the
// others have their item already, so that a field has one item.
func aheadHourErrors(items []any, hours hourLimit) []error {
	if hours.ahead == 0 {
		return nil
	}
	start := time.Unix(hours.max*3600, 0).UTC().Format(time.RFC3339)
	var errs []error
	for i, item := range items {
		flow, _ := item.(map[string]any)
		n, _ := flow["hour"].(json.Number)
		h, err := strconv.ParseInt(string(n), 10, 64)
		if err != nil || h <= hours.max || h > maxHour {
			continue
		}
		errs = append(errs, &ProblemItem{Title: "max", Source: "hour", Location: fmt.Sprintf("body[%d].hour", i), Value: h,
			Detail: fmt.Sprintf("hour must be at most %d, the hour MAX_TIME_AHEAD (%s) ahead of the server's clock (%s)",
				hours.max, formatAhead(hours.ahead), start)})
	}
	return errs
}

// notJSON is the 400 for a body that is not JSON, given the error of its
// parse; or the 422 for a number in body past the range of a JSON number
// (float64), which the parse also refuses, after faults: the items already
// found in the body (checkBodyText's), so that the answer still lists
// every fault.
func notJSON(err error, body []byte, faults ...error) *Problem {
	if it := hugeNumberItem(err.Error(), string(body)); it != nil {
		return NewProblem(http.StatusUnprocessableEntity, "validation failed", append(faults, it)...)
	}
	return NewProblem(http.StatusBadRequest, "validation failed", &ProblemItem{
		Title: "json", Location: "body", Detail: "the body is not valid JSON: " + strings.TrimPrefix(err.Error(), "jsontext: "),
	})
}

// numberedItems is the items of the slim form of the body (slimBatch: its
// items' numbers as written, their composite values emptied, so that a body
// of many large values costs little more than its size to explain) with
// their numbers as json.Number: the generic parse makes them float64,
// which tells 1 from neither 1.0 nor 1e0 and holds no int64 past 2^53
// exactly. Read once for integerErrors and aheadHourErrors, after the
// generic parse of the same bytes succeeded (so this one does too; an item
// that is not an object has no fields to look at).
func numberedItems(slim []byte) []any {
	dec := json.NewDecoder(bytes.NewReader(slim))
	dec.UseNumber()
	var items []any
	_ = dec.Decode(&items)
	return items
}

// integerErrors finds the integer fields of the items (numberedItems)
// that do not parse as int64.
func integerErrors(items []any) []error {
	var errs []error
	for i, v := range items {
		item, _ := v.(map[string]any)
		for _, field := range []string{"bytes_tx", "bytes_rx", "hour"} {
			n, ok := item[field].(json.Number)
			if !ok {
				continue
			}
			if _, err := strconv.ParseInt(string(n), 10, 64); err == nil {
				continue
			}
			it := &ProblemItem{Title: "type", Source: field, Location: fmt.Sprintf("body[%d].%s", i, field), Value: n,
				Detail: field + " must be an integer written without a fraction or exponent"}
			if strings.Trim(string(n), "-0123456789") == "" {
				it.Title, it.Detail = "max", field+" must fit in a 64-bit integer (at most 9223372036854775807)"
			}
			errs = append(errs, it)
		}
	}
	return errs
}
