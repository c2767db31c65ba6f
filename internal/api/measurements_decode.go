package api

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/telemetry/telemetry/internal/selfprofile"
)

// POST /api/measurements takes batches of up to MEASUREMENTS_MAX_BATCH
// records of ~400 bytes each. huma would parse such a body twice (into
// generic maps to validate it, then into the structs): profiled at 10,000
// records per batch, that was two thirds of the service's CPU, taken from
// the two cores PostgreSQL needs for the COPY. As for POST /flows
// (flows_decode.go), the body is decoded here once into typed values and the
// schema's rules are checked by hand; only a body the fast path refuses goes
// the old way (huma's validator, then the records' own Resolve), so that the
// answer to any body is exactly what it was.

const (
	maxMeasurementName = 1024
	maxMeasurementApp  = 255
	// maxMeasurementNameBytes bounds a name in bytes of UTF-8 as well: the
	// indexes that hold the name and the app (measurements_slow_idx, the
	// rollups' keys) refuse an entry of more than 2,704 bytes, which 1,024
	// characters of 3 or 4 bytes would pass beside a long app (an error
	// 500 until 2026-12-04). 1,536 bytes and an app of 255 four-byte
	// characters fit, with room to spare.
	maxMeasurementNameBytes = 1536
	maxEpochSeconds         = 253402300799
	// maxMeasurementValue is the most bytes of JSON args, kwargs or context
	// may take. PostgreSQL builds a jsonb in memory as a tree of its values
	// and refuses one of more than 1 GB: 60 MB of small numbers was that
	// (an error 500 after 11 s), 8 MB of them takes about 150 MB of one
	// backend's memory.
	maxMeasurementValue = 8 << 20
)

// measurementDecoder validates measurement batches (batch_decode.go). Its
// schema stays nullable, as huma generated it before the fast path.
type measurementDecoder struct {
	batchSchema
	limit batchLimit
	// ahead is MAX_TIME_AHEAD: how far past the request's clock startedAt
	// and endedAt may be (0: up to 9999-12-31).
	ahead time.Duration
}

func newMeasurementDecoder(api huma.API, limit batchLimit, ahead time.Duration) *measurementDecoder {
	return &measurementDecoder{newBatchSchema(api, reflect.TypeOf([]MeasurementInput{}),
		"Measurements to store; an empty array is accepted.", true), limit, ahead}
}

// decode returns the batch, or the problem to answer: a batch of more than
// the limit's records is its 406 whatever the records hold. now is the
// request's clock, which MAX_TIME_AHEAD counts from.
func (d *measurementDecoder) decode(contentType string, body []byte, now time.Time) ([]MeasurementInput, error) {
	if err := checkContentType(contentType); err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, NewProblem(http.StatusBadRequest, "request body is required")
	}
	latest := float64(maxEpochSeconds)
	if t, on := aheadLimit(now, d.ahead); on {
		latest = min(latest, float64(t.Unix()))
	}
	recs, n, ok := fastDecodeMeasurements(body, d.limit.max, latest)
	if err := d.limit.check(body, n, ok); err != nil {
		return nil, err
	}
	if ok {
		return recs, nil
	}
	return d.slow(body, now)
}

// fastDecodeMeasurements accepts only a batch the schema and Resolve accept
// (and decodes it as huma did); anything else, including nulls other than
// elapsed's and app's, goes to the slow path. As for flows (fastDecode), it
// reads the body token by token with jsontext, which refuses repeated names
// (at any depth: in kwargs too), invalid UTF-8 and lone surrogates; names
// match exactly after unescaping, an unknown name refuses the batch, and an
// escaped NUL is looked for here.
//
// Without reflection or a pointer per field it decodes a 1,000-record
// batch in two thirds to three quarters of the CPU json v2's Unmarshal
// into pointer structs took, with about a hundred allocations instead of
// ten per record: names and apps repeat within a batch and each is stored
// once, methods are the enum's constants, args, kwargs and context share
// one buffer, the elapsed times one array (docs/decoders.md).
//
// latest is the latest startedAt and endedAt accepted, epoch seconds: the
// request's MAX_TIME_AHEAD limit, or maxEpochSeconds when it is off. A later
// one refuses the batch, so that the slow path lists it beside the rest.
//
// n is the number of items; past maxItems it only counts them (recs is then
// nil: the batch is refused as too large).
func fastDecodeMeasurements(body []byte, maxItems int, latest float64) (recs []MeasurementInput, n int, ok bool) {
	dec, ok := openBatch(body)
	if !ok {
		return nil, 0, false
	}
	p := measurementParse{names: map[string]string{}, apps: map[string]string{}, latest: latest}
	recs = make([]MeasurementInput, 0, min(len(body)/256+1, maxItems))
	var elapsed []float64 // each record's, NaN when absent or null
	for dec.PeekKind() == '{' {
		if len(recs) == maxItems {
			rest, ok := countRest(dec)
			return nil, maxItems + rest, ok
		}
		r, e, ok := p.record(dec)
		if !ok {
			return nil, 0, false
		}
		recs = append(recs, r)
		elapsed = append(elapsed, e)
	}
	if !closeBatch(dec) {
		return nil, 0, false
	}
	for i, e := range elapsed {
		if !math.IsNaN(e) {
			recs[i].Elapsed = &elapsed[i]
		}
	}
	return recs, len(recs), true
}

// measurementParse is what the records of one batch share.
type measurementParse struct {
	buf   []byte            // unescaped names and strings, reused
	raw   []byte            // args, kwargs and context, one after another in chunks
	names map[string]string // one string per distinct name
	apps  map[string]string // and per distinct app
	// latest is the latest time accepted (fastDecodeMeasurements).
	latest float64
}

// The fields of a measurement, as bits of what record has seen.
const (
	measName = 1 << iota
	measMethod
	measStartedAt
	measEndedAt
	measElapsed
	measArgs
	measKwargs
	measContext
	measApp
	measRequired = measName | measMethod | measStartedAt | measEndedAt
)

// record reads one measurement object; the decoder is at its '{'. elapsed
// is NaN when the record has none (absent or null).
func (p *measurementParse) record(dec *jsontext.Decoder) (r MeasurementInput, elapsed float64, ok bool) {
	elapsed = math.NaN()
	if _, err := dec.ReadToken(); err != nil {
		return r, elapsed, false
	}
	seen := 0
	for dec.PeekKind() == '"' {
		name, err := dec.ReadValue()
		if err != nil {
			return r, elapsed, false
		}
		key, ok := stringContent(name, &p.buf)
		if !ok {
			return r, elapsed, false
		}
		// jsontext refuses a repeated name, so each bit is set once. The
		// name is only compared: the value may reuse buf.
		var field int
		switch string(key) {
		case "name":
			field = measName
		case "method":
			field = measMethod
		case "startedAt":
			field = measStartedAt
		case "endedAt":
			field = measEndedAt
		case "elapsed":
			field = measElapsed
		case "args":
			field = measArgs
		case "kwargs":
			field = measKwargs
		case "context":
			field = measContext
		case "app":
			field = measApp
		default:
			return r, elapsed, false
		}
		seen |= field
		v, err := dec.ReadValue()
		if err != nil {
			return r, elapsed, false
		}
		switch field {
		case measName:
			r.Name, ok = internText(v, p.names, &p.buf, 1, maxMeasurementName)
			ok = ok && len(r.Name) <= maxMeasurementNameBytes
		case measMethod:
			r.Method, ok = measurementMethod(v, &p.buf)
		case measStartedAt:
			r.StartedAt, ok = jsonFloat(v)
			ok = ok && validEpoch(r.StartedAt) && r.StartedAt <= p.latest
		case measEndedAt:
			r.EndedAt, ok = jsonFloat(v)
			ok = ok && validEpoch(r.EndedAt) && r.EndedAt <= p.latest
		case measElapsed:
			if v.Kind() != 'n' {
				elapsed, ok = jsonFloat(v)
				ok = ok && elapsed >= 0 && elapsed <= maxElapsedSeconds
			}
		case measArgs:
			var raw []byte
			raw, ok = p.rawValue(v, '[')
			r.Args = raw
		case measKwargs:
			var raw []byte
			raw, ok = p.rawValue(v, '{')
			r.Kwargs = raw
		case measContext:
			var raw []byte
			raw, ok = p.rawValue(v, '{')
			r.Context = raw
		case measApp:
			if v.Kind() != 'n' {
				r.App, ok = internText(v, p.apps, &p.buf, 0, maxMeasurementApp)
				// Reserved: the slow path lists it with the other failures.
				ok = ok && r.App != selfprofile.App
			}
		}
		if !ok {
			return r, elapsed, false
		}
	}
	if seen&measRequired != measRequired || r.EndedAt < r.StartedAt || dec.PeekKind() != '}' {
		return r, elapsed, false
	}
	_, err := dec.ReadToken()
	return r, elapsed, err == nil
}

// measurementMethods maps each method of the schema's enum (the tag of
// MeasurementInput.Method) to itself, so that a decoded method is one of
// these strings, not a new one.
var measurementMethods = func() map[string]string {
	f, _ := reflect.TypeFor[MeasurementInput]().FieldByName("Method")
	set := map[string]string{}
	for _, m := range strings.Split(f.Tag.Get("enum"), ",") {
		set[m] = m
	}
	return set
}()

// measurementMethod is method's value, one of the schema's enum, spelt
// exactly (after unescaping).
func measurementMethod(v jsontext.Value, buf *[]byte) (string, bool) {
	if v.Kind() != '"' {
		return "", false
	}
	raw, ok := stringContent(v, buf)
	if !ok {
		return "", false
	}
	m, ok := measurementMethods[string(raw)]
	return m, ok
}

// jsonFloat is a JSON number as json v2 reads it into a float64 (jsontext
// has checked its syntax); a number beyond float64's range is refused.
func jsonFloat(v jsontext.Value) (float64, bool) {
	if v.Kind() != '0' {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(v), 64)
	return f, err == nil
}

// rawChunk is the size of the buffers rawValue fills: a batch's args,
// kwargs and context take as many as they need, each value in one, none
// copied again when the next is allocated (a single buffer grown by append
// was slower than json v2: the copies, and the page faults of each larger
// buffer).
const rawChunk = 64 << 10

// rawValue keeps args, kwargs or context verbatim in the batch's shared
// buffers (the decoder's own is reused): an array or an object as open
// says, without an escaped NUL. A slice of a buffer is capped at its end,
// so that appending to one value cannot overwrite the next.
func (p *measurementParse) rawValue(v jsontext.Value, open byte) ([]byte, bool) {
	// A record's value is 2 deep in the body ([{"args": ...}]).
	if v[0] != open || len(v) > maxMeasurementValue || hasEscapedNUL(v) || !nestedWithin(v, maxNesting-2) {
		return nil, false
	}
	if cap(p.raw)-len(p.raw) < len(v) {
		p.raw = make([]byte, 0, max(rawChunk, len(v)))
	}
	start := len(p.raw)
	p.raw = append(p.raw, v...)
	return p.raw[start:len(p.raw):len(p.raw)], true
}

func validEpoch(f float64) bool { return f >= 0 && f <= maxEpochSeconds }

// slow answers a body the fast path refused as huma did: 400 when it is
// not JSON, else the strings that cannot be stored, the repeated names,
// the schema's errors and the records' Resolve errors (422, or 400 when
// the body as a whole has the wrong type), else the batch decoded as huma
// decoded it (nulls huma lets through included). The times past
// MAX_TIME_AHEAD from now are listed with the rest.
func (d *measurementDecoder) slow(body []byte, now time.Time) ([]MeasurementInput, error) {
	// The strings that cannot be stored and repeated names (textcheck.go)
	// come first.
	errs, err := checkBodyText(body)
	if err != nil {
		return nil, notJSON(err, body)
	}
	if k := bodyKind(body); k != '[' && k != 'n' {
		// The wrong JSON type as a whole (null is an empty batch): a 400,
		// told without parsing the body or echoing it.
		return nil, validationFailed(append(errs, &ProblemItem{Title: "type", Location: "body",
			Detail: "the body must be an array"})...)
	}
	if big := oversizeValues(body); len(big) > 0 {
		// Refused for their size before the other rules, without the
		// generic parse below, which takes some 20 times a body's size
		// in memory when its values are many small ones.
		return nil, validationFailed(append(errs, big...)...)
	}
	var parsed any
	if err := json.Unmarshal(slimBatch(body), &parsed); err != nil {
		return nil, notJSON(err, body, errs...)
	}
	errs = append(errs, d.validate(parsed)...)
	var recs []MeasurementInput
	// Like huma: decode into the structs whatever the validator said (a
	// field of the wrong type stays zero), then run every record's Resolve.
	decodeErr := json.Unmarshal(body, &recs)
	for i := range recs {
		pb := huma.NewPathBuffer([]byte{}, 0)
		pb.Push("body")
		pb.PushIndex(i)
		errs = append(errs, recs[i].Resolve(nil, pb)...)
	}
	if len(errs) == 0 && decodeErr != nil {
		errs = append(errs, &huma.ErrorDetail{Location: "body", Message: decodeErr.Error()})
	}
	errs = append(errs, zeroEndedAtFaults(parsed)...)
	if latest, on := aheadLimit(now, d.ahead); on {
		errs = append(errs, aheadFaults(parsed, latest, d.ahead)...)
	}
	if len(errs) > 0 {
		return nil, validationFailed(errs...)
	}
	return recs, nil
}

// zeroEndedAtFaults lists the gtefield item of each record of a parsed batch
// whose endedAt is 0 and startedAt a later valid time: the one case
// Resolve leaves out, as it cannot tell a decoded 0 from a field that failed
// to decode. Read from the generic parse, where both are JSON numbers, so
// it holds beside any other record's failure (until 2026-12-05 it was made
// only for a batch with no other: a 422 that did not list every failure).
func zeroEndedAtFaults(parsed any) []error {
	batch, _ := parsed.([]any)
	var errs []error
	for i, v := range batch {
		rec, _ := v.(map[string]any)
		started, okS := rec["startedAt"].(float64)
		ended, okE := rec["endedAt"].(float64)
		if okS && okE && ended == 0 && started > 0 && validEpoch(started) {
			errs = append(errs, &ProblemItem{Title: "gtefield", Source: "endedAt", Location: fmt.Sprintf("body[%d].endedAt", i),
				Detail: "endedAt must be greater than or equal to startedAt", Value: ended})
		}
	}
	return errs
}

// aheadFaults lists a max item for each startedAt and endedAt of a parsed
// batch later than latest (MAX_TIME_AHEAD ahead of the request's clock).
// A time past 253402300799 has the schema's max item instead, and a value
// that is not a number its type item: one item per field. Read from the
// generic parse, as zeroEndedAtFaults, so that it holds beside any other
// record's failure.
func aheadFaults(parsed any, latest time.Time, ahead time.Duration) []error {
	batch, _ := parsed.([]any)
	limit := float64(latest.Unix())
	var errs []error
	for i, v := range batch {
		rec, _ := v.(map[string]any)
		for _, field := range [...]string{"startedAt", "endedAt"} {
			t, ok := rec[field].(float64)
			if ok && validEpoch(t) && t > limit {
				errs = append(errs, &ProblemItem{Title: "max", Source: field, Location: fmt.Sprintf("body[%d].%s", i, field),
					Value: t, Detail: aheadDetail(field, ahead, latest)})
			}
		}
	}
	return errs
}

// oversizeValues lists the args, kwargs and context of a batch's records
// that are longer than maxMeasurementValue (a 422 item each), reading the
// body token by token; nothing when there are none or the body is not a
// well-formed batch (the slow path then explains it).
func oversizeValues(body []byte) []error {
	dec, ok := openBatch(body)
	if !ok {
		return nil
	}
	var errs []error
	var buf []byte
	for i := 0; dec.PeekKind() != ']'; i++ {
		if dec.PeekKind() != '{' {
			if dec.SkipValue() != nil {
				return nil
			}
			continue
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil
		}
		for dec.PeekKind() == '"' {
			name, err := dec.ReadValue()
			if err != nil {
				return nil
			}
			key, ok := stringContent(name, &buf)
			if !ok {
				return nil
			}
			field := string(key)
			v, err := dec.ReadValue()
			if err != nil {
				return nil
			}
			if (field == "args" || field == "kwargs" || field == "context") && len(v) > maxMeasurementValue {
				errs = append(errs, &ProblemItem{Title: "max", Source: field, Location: fmt.Sprintf("body[%d].%s", i, field),
					Detail: fmt.Sprintf("%s must be at most %d bytes of JSON (%d given)", field, maxMeasurementValue, len(v))})
			}
		}
		if _, err := dec.ReadToken(); err != nil {
			return nil
		}
	}
	return errs
}

// nestedWithin reports whether the valid JSON text v nests objects and
// arrays at most limit deep (checkBodyText reports the body that does not).
func nestedWithin(v []byte, limit int) bool {
	depth, in := 0, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case in:
			if c == '\\' {
				i++
			} else if c == '"' {
				in = false
			}
		case c == '"':
			in = true
		case c == '[' || c == '{':
			if depth++; depth > limit {
				return false
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return true
}
