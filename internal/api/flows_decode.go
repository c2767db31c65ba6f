package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	jsonv2 "github.com/go-json-experiment/json"

	"github.com/telemetry/telemetry/internal/store"
)

// Batches of up to 100,000 flows arrive on POST /flows, so the body is
// decoded here rather than by huma, which parses a body twice (into generic
// maps to validate it, then into structs). The fast path decodes once into
// typed values and checks the rules by hand; only a body that breaks some
// rule goes through huma's schema validator, so that the 422 lists every
// failure exactly as for any other endpoint.

// flowWire is a flow as decoded: pointers tell a missing (or null) field
// from a zero.
type flowWire struct {
	SrcApp  *string `json:"src_app"`
	DestApp *string `json:"dest_app"`
	VpcID   *string `json:"vpc_id"`
	BytesTx *int64  `json:"bytes_tx"`
	BytesRx *int64  `json:"bytes_rx"`
	Hour    *int64  `json:"hour"`
}

// The flow rules the schema documents, as the store enforces them.
const (
	maxNameLen = store.MaxFlowName
	maxHour    = store.MaxFlowHour
)

// flowDecoder validates flow batches (batch_decode.go).
type flowDecoder struct{ batchSchema }

func newFlowDecoder(api huma.API) *flowDecoder {
	// null is not a batch: the schema says so.
	return &flowDecoder{newBatchSchema(api, reflect.TypeOf([]Flow{}),
		"Flows to add to the hourly totals; an empty array is accepted.", false)}
}

// decode returns the batch, or the problem to answer.
func (d *flowDecoder) decode(contentType string, body []byte) ([]store.Flow, error) {
	if err := checkContentType(contentType); err != nil {
		return nil, err
	}
	if flows, ok := fastDecode(body); ok {
		return flows, nil
	}
	return nil, d.explain(body)
}

// fastDecode accepts only a fully valid batch, decoded straight into the
// store's flows (no copy of a 100,000-flow batch on the way). json v2
// (github.com/go-json-experiment/json) matches names exactly and refuses
// unknown and repeated names, invalid UTF-8 and lone surrogates; null
// leaves a field nil, and an escaped NUL is looked for here.
func fastDecode(body []byte) ([]store.Flow, bool) {
	var wire []flowWire
	if err := jsonv2.Unmarshal(body, &wire, jsonv2.RejectUnknownMembers(true)); err != nil || wire == nil {
		return nil, false
	}
	flows := make([]store.Flow, len(wire))
	for i, w := range wire {
		if w.SrcApp == nil || w.DestApp == nil || w.VpcID == nil || w.BytesTx == nil || w.BytesRx == nil || w.Hour == nil ||
			!validText(*w.SrcApp, 1, maxNameLen) || !validText(*w.DestApp, 1, maxNameLen) || !validText(*w.VpcID, 1, maxNameLen) ||
			*w.BytesTx < 0 || *w.BytesRx < 0 || *w.Hour < 0 || *w.Hour > maxHour {
			return nil, false
		}
		flows[i] = store.Flow{SrcApp: *w.SrcApp, DestApp: *w.DestApp, VpcID: *w.VpcID, BytesTx: *w.BytesTx, BytesRx: *w.BytesRx, Hour: *w.Hour}
	}
	return flows, true
}

// explain builds the answer for a body the fast path refused: 400 when it
// is not JSON, else a 422 listing every rule broken, item by item: the
// strings that cannot be stored and the repeated names (textcheck.go),
// then the schema's rules.
func (d *flowDecoder) explain(body []byte) error {
	faults, err := checkBodyText(body)
	if err != nil {
		return notJSON(err)
	}
	var parsed any
	if err := json.Unmarshal(body, &parsed); err != nil {
		return notJSON(err)
	}
	if _, ok := parsed.([]any); !ok {
		// The wrong JSON type for the body as a whole is a 400, like
		// malformed JSON (README.md, "API at a glance"); item errors are 422s.
		return NewProblem(http.StatusBadRequest, "validation failed", &ProblemItem{
			Title: "type", Location: "body", Detail: "the body must be a JSON array of flows",
		})
	}
	errs := append(faults, d.validate(parsed)...)
	if len(errs) == len(faults) {
		// Valid for the schema (whose numbers are float64) yet refused by
		// the typed decode: integers written as 1.0 or 1e3, or beyond 64
		// bits.
		errs = append(errs, integerErrors(body)...)
	}
	if len(errs) == 0 {
		errs = append(errs, &ProblemItem{Title: "invalid", Location: "body", Detail: "the batch could not be decoded"})
	}
	return validationFailed(errs...)
}

// notJSON is the 400 for a body that is not JSON.
func notJSON(err error) *Problem {
	return NewProblem(http.StatusBadRequest, "validation failed", &ProblemItem{
		Title: "json", Location: "body", Detail: "the body is not valid JSON: " + strings.TrimPrefix(err.Error(), "jsontext: "),
	})
}

// integerErrors finds the integer fields that do not parse as int64.
func integerErrors(body []byte) []error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var items []map[string]any
	if err := dec.Decode(&items); err != nil {
		return []error{&ProblemItem{Title: "json", Location: "body", Detail: "the body is not a valid batch: " + err.Error()}}
	}
	var errs []error
	for i, item := range items {
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
