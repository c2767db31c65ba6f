package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"

	"github.com/danielgtaylor/huma/v2"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
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

// measurementWire is a record as decoded: pointers tell a missing field
// from a zero; args, kwargs and context stay raw (checked by their first
// byte: any array, any object).
type measurementWire struct {
	Name      *string        `json:"name"`
	Method    *string        `json:"method"`
	StartedAt *float64       `json:"startedAt"`
	EndedAt   *float64       `json:"endedAt"`
	Elapsed   *float64       `json:"elapsed"`
	Args      jsontext.Value `json:"args"`
	Kwargs    jsontext.Value `json:"kwargs"`
	Context   jsontext.Value `json:"context"`
	App       *string        `json:"app"`
}

const (
	maxMeasurementName = 1024
	maxMeasurementApp  = 255
	maxEpochSeconds    = 253402300799
)

// measurementMethods is the schema's enum for method.
var measurementMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true,
	"DELETE": true, "OPTIONS": true, "TRACE": true, "CONNECT": true}

// measurementDecoder validates measurement batches (batch_decode.go). Its
// schema stays nullable, as huma generated it before the fast path.
type measurementDecoder struct{ batchSchema }

func newMeasurementDecoder(api huma.API) *measurementDecoder {
	return &measurementDecoder{newBatchSchema(api, reflect.TypeOf([]MeasurementInput{}),
		"Measurements to store; an empty array is accepted.", true)}
}

// decode returns the batch, or the problem to answer.
func (d *measurementDecoder) decode(contentType string, body []byte) ([]MeasurementInput, error) {
	if err := checkContentType(contentType); err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, NewProblem(http.StatusBadRequest, "request body is required")
	}
	if recs, ok := fastDecodeMeasurements(body); ok {
		return recs, nil
	}
	return d.slow(body)
}

// fastDecodeMeasurements accepts only a batch the schema and Resolve accept
// (and decodes it as huma did); anything else, including nulls, goes to
// the slow path. As for flows (fastDecode), json v2 matches names exactly
// and refuses unknown and repeated names (at any depth: in kwargs too),
// invalid UTF-8 and lone surrogates; an escaped NUL is looked for here.
func fastDecodeMeasurements(body []byte) ([]MeasurementInput, bool) {
	var wire []measurementWire
	if err := jsonv2.Unmarshal(body, &wire, jsonv2.RejectUnknownMembers(true)); err != nil || wire == nil {
		return nil, false
	}
	recs := make([]MeasurementInput, len(wire))
	for i := range wire {
		w := &wire[i]
		if w.Name == nil || !validText(*w.Name, 1, maxMeasurementName) ||
			w.Method == nil || !measurementMethods[*w.Method] ||
			w.StartedAt == nil || !validEpoch(*w.StartedAt) ||
			w.EndedAt == nil || !validEpoch(*w.EndedAt) || *w.EndedAt < *w.StartedAt ||
			(w.Elapsed != nil && !(*w.Elapsed >= 0 && *w.Elapsed <= maxElapsedSeconds)) ||
			(w.Args != nil && (w.Args[0] != '[' || hasEscapedNUL(w.Args))) ||
			(w.Kwargs != nil && (w.Kwargs[0] != '{' || hasEscapedNUL(w.Kwargs))) ||
			(w.Context != nil && (w.Context[0] != '{' || hasEscapedNUL(w.Context))) ||
			(w.App != nil && !validText(*w.App, 0, maxMeasurementApp)) {
			return nil, false
		}
		r := MeasurementInput{Name: *w.Name, Method: *w.Method, StartedAt: *w.StartedAt, EndedAt: *w.EndedAt,
			Elapsed: w.Elapsed, Args: jsonArray(w.Args), Kwargs: jsonObject(w.Kwargs), Context: jsonObject(w.Context)}
		if w.App != nil {
			r.App = *w.App
		}
		recs[i] = r
	}
	return recs, true
}

func validEpoch(f float64) bool { return f >= 0 && f <= maxEpochSeconds }

// slow answers a body the fast path refused as huma did: 400 when it is
// not JSON, else the strings that cannot be stored, the repeated names,
// the schema's errors and the records' Resolve errors (422, or 400 when
// the body as a whole has the wrong type), else the batch decoded as huma
// decoded it (nulls huma lets through included).
func (d *measurementDecoder) slow(body []byte) ([]MeasurementInput, error) {
	// The strings that cannot be stored and repeated names (textcheck.go)
	// come first.
	errs, err := checkBodyText(body)
	if err != nil {
		return nil, notJSON(err)
	}
	var parsed any
	if err := json.Unmarshal(body, &parsed); err != nil {
		return nil, notJSON(err)
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
	if len(errs) == 0 {
		// Every time decoded, so Resolve's guard against undecoded zeros no
		// longer hides an endedAt of 0 before a later startedAt.
		for i, r := range recs {
			if r.EndedAt < r.StartedAt {
				errs = append(errs, &ProblemItem{Title: "gtefield", Source: "endedAt", Location: fmt.Sprintf("body[%d].endedAt", i),
					Detail: "endedAt must be greater than or equal to startedAt", Value: r.EndedAt})
			}
		}
	}
	if len(errs) > 0 {
		return nil, validationFailed(errs...)
	}
	return recs, nil
}
