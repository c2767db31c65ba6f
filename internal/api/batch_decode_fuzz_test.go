package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2/adapters/humachi"
	"github.com/go-chi/chi/v5"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/telemetry/telemetry/internal/selfprofile"
	"github.com/telemetry/telemetry/internal/store"
)

// The batch bodies (POST /flows, POST /api/measurements) have a fast typed
// decode (jsontext tokens; names exact, unknown and repeated names, invalid
// UTF-8 and lone surrogates refused, then the rules and the NUL check by
// hand) and a slow path (checkBodyText, then huma's validator on
// encoding/json's generic parse) that explains a refusal. These targets
// check that the fast path accepts only what the slow path and
// encoding/json agree on, decodes the same items, and that a refusal
// lists every string that cannot be stored and every repeated name.
//
// Run them with: go test ./internal/api -run '^$' -fuzz '^FuzzFlowsDecode$' -fuzztime 25s
// (and FuzzMeasurementsDecode). Seeds: the f.Add lists and testdata/fuzz/<name>.

// The names a flow and a measurement may have, spelt exactly.
var (
	flowKeys        = map[string]bool{"src_app": true, "dest_app": true, "vpc_id": true, "bytes_tx": true, "bytes_rx": true, "hour": true}
	measurementKeys = map[string]bool{"name": true, "method": true, "startedAt": true, "endedAt": true,
		"elapsed": true, "args": true, "kwargs": true, "context": true, "app": true}
)

// fuzzDecoders are the batch decoders as the server makes them (same huma
// configuration), without routes or a database.
var fuzzDecoders = sync.OnceValues(func() (*flowDecoder, *measurementDecoder) {
	tooMany := func(int) error { return NewProblem(http.StatusNotAcceptable, "too many") }
	return testDecoders(batchLimit{100000, tooMany}, batchLimit{10000, tooMany})
})

// testDecoders makes the batch decoders with these limits, as New does,
// and MAX_TIME_AHEAD at its default (1d).
func testDecoders(flows, meas batchLimit) (*flowDecoder, *measurementDecoder) {
	installErrorModel() // as New does: names are matched exactly
	api := humachi.New(chi.NewMux(), humaConfig())
	return newFlowDecoder(api, flows), newMeasurementDecoder(api, meas, testAhead)
}

// testAhead is the decoders' MAX_TIME_AHEAD (testDecoders), and
// fuzzMeasurementsNow the clock FuzzMeasurementsDecode decodes at: its
// latest time accepted is fuzzMeasurementsLatest.
const (
	testAhead              = 24 * time.Hour
	fuzzMeasurementsLatest = 1444991539 + 86400
)

var fuzzMeasurementsNow = time.Unix(1444991539, 0)

// repeatBatch is a JSON array of n copies of item.
func repeatBatch(item string, n int) []byte {
	return []byte("[" + strings.TrimSuffix(strings.Repeat(item+",", n), ",") + "]")
}

// fuzzHours is the hour limit FuzzFlowsDecode decodes under: MAX_TIME_AHEAD
// on, its hour within the range seeds reach (490000: 2025-11-24T16:00:00Z).
var fuzzHours = hourLimit{max: 490000, ahead: 24 * time.Hour}

// FuzzFlowsDecode: the POST /flows decoder, under MAX_TIME_AHEAD (fuzzHours).
//
//   - decode accepts exactly what fastDecode accepts, and never panics;
//   - accepted: encoding/json decodes the same flows into []Flow, every
//     item's names are spelt exactly as documented (none missing, none
//     repeated), checkBodyText finds no string that cannot be stored, and
//     huma's validator finds nothing wrong with the generic parse;
//   - refused: a 400 when the body is not JSON, else a 400 or 422 that
//     names a broken rule (never the "could not be decoded" fallback, which
//     would mean a valid batch refused) and, when a 422, lists every fault
//     checkBodyText finds.
func FuzzFlowsDecode(f *testing.F) {
	const flow = `{"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":300,"bytes_rx":900,"hour":1}`
	for _, s := range []string{
		`[` + flow + `]`,
		`[` + flow + `,` + flow + `]`,
		`[]`, ` [ ] `, `null`, `[null]`, `{}`, `[{}]`, `"x"`, ``, `[` + flow + `] x`, `[` + flow,
		`[{"src_app":"a","src_app":"b","dest_app":"c","vpc_id":"v","bytes_tx":0,"bytes_rx":0,"hour":0}]`,
		`[{"SRC_APP":"a","dest_app":"c","vpc_id":"v","bytes_tx":0,"bytes_rx":0,"hour":0}]`,
		`[{"src_app":"a","Src_App":"b","dest_app":"c","vpc_id":"v","bytes_tx":0,"bytes_rx":0,"hour":0}]`,
		`[{"src_app":null,"dest_app":"c","vpc_id":"v","bytes_tx":0,"bytes_rx":0,"hour":0}]`,
		`[{"src_app":"a","dest_app":"c","vpc_id":"v","bytes_tx":1.0,"bytes_rx":1e3,"hour":-0}]`,
		`[{"src_app":"a","dest_app":"c","vpc_id":"v","bytes_tx":9223372036854775808,"bytes_rx":1e309,"hour":2147483648}]`,
		`[{"src_app":"a","dest_app":"c","vpc_id":"v","bytes_tx":0,"bytes_rx":0,"hour":490000},{"src_app":"a","dest_app":"c","vpc_id":"v","bytes_tx":0,"bytes_rx":0,"hour":490001}]`,
		`[{"src_app":"a","dest_app":"c","vpc_id":"v","bytes_tx":0,"bytes_rx":0,"hour":490001.0},{"src_app":"","dest_app":"c","vpc_id":"v","bytes_tx":0,"bytes_rx":0,"hour":4.9e6}]`,
		`[{"src_app":"a\u0000","dest_app":"\ud800","vpc_id":"\u00e9","bytes_tx":0,"bytes_rx":0,"hour":0,"extra":1}]`,
		"[{\"src_app\":\"\xff\",\"dest_app\":\"c\",\"vpc_id\":\"v\",\"bytes_tx\":0,\"bytes_rx\":0,\"hour\":0}]",
		"[{\"src_app\":\"a\x00\",\"dest_app\":\"c\",\"vpc_id\":\"v\",\"bytes_tx\":0,\"bytes_rx\":0,\"hour\":0}]",
		`[{"src_\u0061pp":"a","dest_app":"c","vpc_id":"v","bytes_tx":0,"bytes_rx":0,"hour":0}]`,
		`[{"src_app":"` + strings.Repeat("é", 255) + `","dest_app":"` + strings.Repeat("x", 256) + `","vpc_id":"v","bytes_tx":0,"bytes_rx":0,"hour":0}]`,
		`[{"src_app":"` + strings.Repeat("😀", 200) + `","dest_app":"` + strings.Repeat("😀", 201) + `","vpc_id":"v","bytes_tx":0,"bytes_rx":0,"hour":0}]`,
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{}]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, _ := fuzzDecoders()
		flows, err := d.decode("application/json", body, fuzzHours)
		fast, _, ok := fastDecode(body, math.MaxInt, fuzzHours.max)
		if ok != (err == nil) {
			t.Fatalf("%q: fastDecode ok=%v, decode error %v", body, ok, err)
		}
		if err != nil {
			checkBatchRefusal(t, body, err)
			return
		}
		if !reflect.DeepEqual(flows, fast) {
			t.Fatalf("%q: decode %+v, fastDecode %+v", body, flows, fast)
		}
		var decoded []Flow
		if err := json.Unmarshal(body, &decoded); err != nil {
			t.Fatalf("accepted %q, encoding/json refuses it: %v", body, err)
		}
		ref := make([]store.Flow, len(decoded))
		for i, f := range decoded {
			ref[i] = store.Flow(f)
		}
		if !reflect.DeepEqual(ref, flows) {
			t.Fatalf("%q: fast path %+v, encoding/json %+v", body, flows, ref)
		}
		checkItemNames(t, body, flowKeys, flowKeys)
		checkNoFaults(t, body)
		var parsed any
		if err := json.Unmarshal(body, &parsed); err != nil {
			t.Fatalf("accepted %q, encoding/json cannot parse it: %v", body, err)
		}
		if errs := d.validate(parsed); len(errs) > 0 {
			t.Fatalf("accepted %q, the schema refuses it: %v", body, errs)
		}
	})
}

// FuzzMeasurementsDecode: the POST /api/measurements decoder.
//
//   - fastDecodeMeasurements accepts exactly what refDecodeMeasurements
//     (json v2's Unmarshal into pointer structs, the fast path before it
//     read tokens) accepts, and decodes the same records;
//   - whenever fastDecodeMeasurements accepts a body, the slow path (huma's
//     validator, then encoding/json into []MeasurementInput and Resolve, as
//     huma did before the fast path) accepts it too and decodes the same
//     records, and every item's names are spelt exactly as documented;
//   - decode never panics; it accepts whatever the fast path accepts (and
//     may accept more: the slow path lets some nulls through, as huma did),
//     never a body with a fault checkBodyText finds nor a time past
//     MAX_TIME_AHEAD (decoded at fuzzMeasurementsNow); a refusal is a 400
//     when the body is not JSON, else a 400 or 422 listing every such
//     fault.
func FuzzMeasurementsDecode(f *testing.F) {
	const rec = `{"name":"/api/products/<id>","method":"GET","startedAt":1444991539.945813,"endedAt":1444991539.945816,` +
		`"elapsed":0.000003,"args":[1,"a"],"kwargs":{"productId":412},"context":{"url":"/x","h":null},"app":"shop"}`
	for _, s := range []string{
		`[` + rec + `]`,
		`[{"name":"n","method":"POST","startedAt":0,"endedAt":0}]`,
		`[]`, `null`, `[null]`, `{}`, `[{}]`, ``, `[` + rec + `]]`,
		`[{"name":"n","name":"m","method":"GET","startedAt":1,"endedAt":2}]`,
		`[{"Name":"n","method":"GET","startedAt":1,"endedAt":2}]`,
		`[{"name":"n","method":"get","startedAt":1,"endedAt":2}]`,
		`[{"name":"n","method":"GET","startedAt":2,"endedAt":1}]`,
		`[{"name":"n","method":"GET","startedAt":1,"endedAt":2,"args":null,"kwargs":null,"context":null,"app":null,"elapsed":null}]`,
		`[{"name":"n","method":"GET","startedAt":1,"endedAt":2,"args":{},"kwargs":[],"context":"x"}]`,
		`[{"name":"n","method":"GET","startedAt":-0,"endedAt":1e309}]`,
		`[{"name":"n","method":"GET","startedAt":253402300799,"endedAt":253402300800,"elapsed":-0}]`,
		`[{"name":"n","method":"GET","startedAt":1445077939,"endedAt":1445077939.000001},{"name":"m","method":"GET","startedAt":3,"endedAt":2}]`,
		`[{"name":"n","method":"GET","startedAt":1445077939,"endedAt":1445077939.000001}]`,
		`[{"name":"n","method":"GET","startedAt":1445077940,"endedAt":1445077940,"elapsed":null,"app":null}]`,
		`[{"name":"\u0000\ud800","method":"GET","startedAt":1,"endedAt":2,"kwargs":{"a":{"b":[null,{"c":null}]}}}]`,
		"[{\"name\":\"\xff\xfe\",\"method\":\"GET\",\"startedAt\":1,\"endedAt\":2,\"app\":\"\x00\"}]",
		`[{"n\u0061me":"n","method":"GET","startedAt":1,"endedAt":2,"unknown":true}]`,
		`[{"name":"n","method":"GET","startedAt":1,"endedAt":2,"args":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}]`,
		`[{"name":"n","method":"G\u0045T","startedAt":1,"endedAt":2,"app":null,"elapsed":null}, ` +
			`{"name":"n","method":"PUT","startedAt":1,"endedAt":2, "args" : [ 1 , {"a" : "\u00e9"} ] }]`,
		`[{"name":"n","method":"GET","startedAt":1,"endedAt":2,"kwargs":{"a":{"b":1,"b":2}}}]`,
		`[{"name":"n","method":"GET","startedAt":"1","endedAt":2,"elapsed":1e400}]`,
		`[{"name":"` + strings.Repeat("a", 256) + `","method":"GET","startedAt":1,"endedAt":2},` +
			`{"name":"n","method":"GET","startedAt":1,"endedAt":2,"app":"` + strings.Repeat("a", 256) + `"}]`,
		`[{"name":"` + strings.Repeat("é", 1024) + `","method":"GET","startedAt":1,"endedAt":2,"app":""}]`,
		`[{"name":"` + strings.Repeat("é", 768) + `","method":"GET","startedAt":1,"endedAt":2,"app":""}]`,
		`[{"name":"` + strings.Repeat("😀", 385) + `","method":"GET","startedAt":1,"endedAt":2,"app":""}]`,
		`[{"name":"n","method":"GET","startedAt":1,"endedAt":2,"context":{"x":"\\u0000"}}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		_, d := fuzzDecoders()
		recs, err := d.decode("application/json", body, fuzzMeasurementsNow)
		fast, _, ok := fastDecodeMeasurements(body, math.MaxInt, fuzzMeasurementsLatest)
		ref, refOK := refDecodeMeasurements(body, fuzzMeasurementsLatest)
		if ok != refOK || !reflect.DeepEqual(fast, ref) {
			t.Fatalf("%q: fast path ok=%v %+v, json v2's Unmarshal ok=%v %+v", body, ok, fast, refOK, ref)
		}
		if err == nil {
			checkNoFaults(t, body)
			for _, r := range recs {
				if r.StartedAt > fuzzMeasurementsLatest || r.EndedAt > fuzzMeasurementsLatest {
					t.Fatalf("%q: accepted a time past MAX_TIME_AHEAD: %+v", body, r)
				}
			}
		}
		if !ok {
			if err != nil {
				checkBatchRefusal(t, body, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: fast path accepted it, decode refused it: %v", body, err)
		}
		if !reflect.DeepEqual(recs, fast) {
			t.Fatalf("%q: decode %+v, fast path %+v", body, recs, fast)
		}
		slow, err := d.slow(body, fuzzMeasurementsNow)
		if err != nil {
			t.Fatalf("fast path accepted %q, the slow path refuses it: %v", body, err)
		}
		if !reflect.DeepEqual(slow, fast) {
			t.Fatalf("%q: fast path %+v, slow path %+v", body, fast, slow)
		}
		checkItemNames(t, body, measurementKeys, map[string]bool{"name": true, "method": true, "startedAt": true, "endedAt": true})
	})
}

// measurementWire is a record as json v2 decodes it for
// refDecodeMeasurements: pointers tell a missing field from a zero; args,
// kwargs and context stay raw.
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

// refMethods is the schema's enum for method.
var refMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true,
	"DELETE": true, "OPTIONS": true, "TRACE": true, "CONNECT": true}

// refDecodeMeasurements is the fast path as it was before it read tokens:
// json v2's Unmarshal (names exact; unknown and repeated names, invalid
// UTF-8, lone surrogates refused) into pointer structs, then the rules by
// hand (with the size limit of args, kwargs and context, and the latest
// time accepted, added since). fastDecodeMeasurements must agree with it on
// every body.
func refDecodeMeasurements(body []byte, latest float64) ([]MeasurementInput, bool) {
	if !refNestedWithin(body, maxNesting) {
		return nil, false
	}
	var wire []measurementWire
	if err := jsonv2.Unmarshal(body, &wire, jsonv2.RejectUnknownMembers(true)); err != nil || wire == nil {
		return nil, false
	}
	recs := make([]MeasurementInput, len(wire))
	for i := range wire {
		w := &wire[i]
		if w.Name == nil || !validText(*w.Name, 1, maxMeasurementName) || len(*w.Name) > maxMeasurementNameBytes ||
			w.Method == nil || !refMethods[*w.Method] ||
			w.StartedAt == nil || !validEpoch(*w.StartedAt) || *w.StartedAt > latest ||
			w.EndedAt == nil || !validEpoch(*w.EndedAt) || *w.EndedAt > latest || *w.EndedAt < *w.StartedAt ||
			(w.Elapsed != nil && !(*w.Elapsed >= 0 && *w.Elapsed <= maxElapsedSeconds)) ||
			(w.Args != nil && (w.Args[0] != '[' || len(w.Args) > maxMeasurementValue || hasEscapedNUL(w.Args))) ||
			(w.Kwargs != nil && (w.Kwargs[0] != '{' || len(w.Kwargs) > maxMeasurementValue || hasEscapedNUL(w.Kwargs))) ||
			(w.Context != nil && (w.Context[0] != '{' || len(w.Context) > maxMeasurementValue || hasEscapedNUL(w.Context))) ||
			(w.App != nil && (!validText(*w.App, 0, maxMeasurementApp) || *w.App == selfprofile.App)) {
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

// checkBatchRefusal checks a batch decoder's refusal: a problem, 400 for
// a body that is not JSON, else 400 or 422, never the fallback that means
// nothing wrong was found.
func checkBatchRefusal(t *testing.T, body []byte, err error) {
	t.Helper()
	var p *Problem
	if !errors.As(err, &p) {
		t.Fatalf("%q: error %T %v, want a *Problem", body, err, err)
	}
	switch {
	case !json.Valid(body) && p.Status != http.StatusBadRequest:
		t.Fatalf("%q is not JSON: status %d, want 400", body, p.Status)
	case p.Status != http.StatusBadRequest && p.Status != http.StatusUnprocessableEntity:
		t.Fatalf("%q: status %d", body, p.Status)
	}
	for _, it := range p.Errors {
		if it.Detail == "the batch could not be decoded" {
			t.Fatalf("%q: refused without a reason (the schema and the integer checks accept it)", body)
		}
	}
	if p.Status == http.StatusUnprocessableEntity {
		checkFaultsListed(t, body, p)
	}
}

// checkNoFaults fails when an accepted body has a string that cannot be
// stored or a repeated name.
func checkNoFaults(t *testing.T, body []byte) {
	t.Helper()
	if faults, err := checkBodyText(body); err != nil || len(faults) > 0 {
		t.Fatalf("accepted %q: faults %v, error %v", body, faults, err)
	}
}

// checkItemNames checks that every name of every item of an accepted batch
// is in allowed, spelt exactly, appears once, and that each item has the
// required names.
func checkItemNames(t *testing.T, body []byte, allowed, required map[string]bool) {
	t.Helper()
	items, ok := batchItemNames(body)
	if !ok {
		t.Fatalf("accepted %q, which is not a JSON array of objects", body)
	}
	for i, names := range items {
		seen := map[string]bool{}
		for _, n := range names {
			if !allowed[n] || seen[n] {
				t.Fatalf("%q: item %d: accepted the name %q", body, i, n)
			}
			seen[n] = true
		}
		for n := range required {
			if !seen[n] {
				t.Fatalf("%q: item %d: accepted without %q", body, i, n)
			}
		}
	}
}

// batchItemNames lists the member names of each object directly inside a
// top-level JSON array, in order, as encoding/json's tokenizer reads them
// (independently of the decoders). ok is false when body is not a JSON
// array of objects.
func batchItemNames(body []byte) (items [][]string, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct{ object, wantName bool }
	var stack []frame
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].wantName = true
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil, false
	}
	stack = append(stack, frame{})
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return items, len(stack) == 0
		}
		if err != nil {
			return nil, false
		}
		if n := len(stack); n > 0 && stack[n-1].object && stack[n-1].wantName {
			if tok == json.Delim('}') {
				stack = stack[:n-1]
				valueDone()
				continue
			}
			name, _ := tok.(string)
			stack[n-1].wantName = false
			if n == 2 {
				items[len(items)-1] = append(items[len(items)-1], name)
			}
			continue
		}
		switch tok {
		case json.Delim('{'):
			if len(stack) == 1 {
				items = append(items, []string{})
			} else if len(stack) == 0 {
				return nil, false
			}
			stack = append(stack, frame{object: true, wantName: true})
		case json.Delim('['):
			if len(stack) == 1 {
				return nil, false // an item that is not an object
			}
			stack = append(stack, frame{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			if len(stack) == 1 {
				return nil, false
			}
			valueDone()
		}
	}
}

// refNestedWithin reports whether body, valid JSON or not, never nests
// objects and arrays deeper than limit, by jsontext's own count.
func refNestedWithin(body []byte, limit int) bool {
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	for {
		if _, err := dec.ReadToken(); err != nil {
			return true // the rest is the decoders' to refuse
		}
		if dec.StackDepth() > limit {
			return false
		}
	}
}
