package api

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMeasurementsDecodeSharedBuffer: args, kwargs and context share
// buffers within a batch; appending to one record's value must not change the
// next one's, and the values are the body's bytes verbatim.
func TestMeasurementsDecodeSharedBuffer(t *testing.T) {
	body := []byte(`[{"name":"n","method":"GET","startedAt":1,"endedAt":2,"args":[1, 2],"kwargs":{"a" : 1},"context":{}},` +
		`{"name":"n","method":"GET","startedAt":1,"endedAt":2,"args":["x"],"kwargs":{"b":2},"context":{"c":[3]}}]`)
	recs, _, ok := fastDecodeMeasurements(body, math.MaxInt, maxEpochSeconds)
	if !ok || len(recs) != 2 {
		t.Fatalf("refused (%v) or %d records", ok, len(recs))
	}
	for i, want := range [][3]string{{`[1, 2]`, `{"a" : 1}`, `{}`}, {`["x"]`, `{"b":2}`, `{"c":[3]}`}} {
		got := [3]string{string(recs[i].Args), string(recs[i].Kwargs), string(recs[i].Context)}
		if got != want {
			t.Fatalf("record %d: %q, want %q", i, got, want)
		}
	}
	_ = append(recs[0].Args, strings.Repeat("!", 64)...)
	_ = append(recs[0].Context, '!')
	if string(recs[1].Args) != `["x"]` || string(recs[0].Context) != `{}` || string(recs[1].Kwargs) != `{"b":2}` {
		t.Fatalf("an append to one value changed another: %q %q %q", recs[1].Args, recs[0].Context, recs[1].Kwargs)
	}
	if recs[0].Name != recs[1].Name || recs[0].Elapsed != nil {
		t.Fatalf("records %+v", recs)
	}
}

// TestBatchOverLimitIsCountedNotKept: a batch over its limit is a 406
// whatever its items hold, and the decoders only count the items past the
// limit: a body of 200,000 items (valid, or invalid so that the slow path
// would have parsed it whole and listed every fault) costs a small part of
// its size in allocations, where decoding it allocated several times its
// size.
func TestBatchOverLimitIsCountedNotKept(t *testing.T) {
	const items, limit = 200000, 10
	var n int
	tooMany := func(got int) error { n = got; return NewProblem(http.StatusNotAcceptable, "too many") }
	flows, meas := testDecoders(batchLimit{limit, tooMany}, batchLimit{limit, tooMany})
	batch := func(item string) []byte { return repeatBatch(item, items) }
	for _, c := range []struct {
		name   string
		body   []byte
		decode func([]byte) error
	}{
		{"flows", batch(`{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}`),
			func(b []byte) error { _, err := flows.decode("application/json", b, fuzzHours); return err }},
		{"flows, invalid", batch(`{"src_app":"","dest_app":"b","vpc_id":"v","bytes_tx":-1,"bytes_rx":2,"hour":3}`),
			func(b []byte) error { _, err := flows.decode("application/json", b, fuzzHours); return err }},
		{"flows, not objects", batch(`1`), func(b []byte) error { _, err := flows.decode("application/json", b, fuzzHours); return err }},
		{"measurements", batch(`{"name":"n","method":"GET","startedAt":1,"endedAt":2,"kwargs":{"a":1}}`),
			func(b []byte) error { _, err := meas.decode("application/json", b, time.Now()); return err }},
		{"measurements, invalid", batch(`{"name":"n","method":"get","startedAt":2,"endedAt":1}`),
			func(b []byte) error { _, err := meas.decode("application/json", b, time.Now()); return err }},
	} {
		t.Run(c.name, func(t *testing.T) {
			n = 0
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := c.decode(c.body)
			runtime.ReadMemStats(&after)
			var p *Problem
			if !errors.As(err, &p) || p.Status != http.StatusNotAcceptable || n != items {
				t.Fatalf("error %v, counted %d items, want a 406 for %d", err, n, items)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(len(c.body))/4 {
				t.Fatalf("%d bytes allocated for a %d-byte body over the limit", alloc, len(c.body))
			}
		})
	}
	// Malformed past the limit: the slow path's 400, as for any body that is
	// not JSON.
	body := append(batch(`1`)[:1000], ",]"...)
	if _, err := meas.decode("application/json", body, time.Now()); !isStatus(err, http.StatusBadRequest) {
		t.Fatalf("malformed batch over the limit: %v", err)
	}
	if _, err := flows.decode("application/json", body, fuzzHours); !isStatus(err, http.StatusBadRequest) {
		t.Fatalf("malformed batch over the limit: %v", err)
	}
}

func isStatus(err error, status int) bool {
	var p *Problem
	return errors.As(err, &p) && p.Status == status
}

// TestSlimBatch: the validator's copy of a refused batch keeps every item
// and member with its scalar values, and empties the arrays and objects
// inside items (and items that are not objects); a body that is not a
// well-formed array is handed over as it is.
func TestSlimBatch(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`[{"name":"n","args":[1,{"a":2}],"kwargs":{"k":[3]},"x":null,"n":1.5,"s":"\u00e9"}, [4,5], {"a":{}}, 6, "t"]`,
			`[{"name":"n","args":[],"kwargs":{},"x":null,"n":1.5,"s":"\u00e9"},[],{"a":{}},6,"t"]`},
		{`[{"a":1,"a":[2]}]`, `[{"a":1,"a":[]}]`}, // repeated names stay, for the slow path to judge
		{"[{\"a\":\"\xff\"}]", "[{\"a\":\"\xff\"}]"},
		{` [ ] `, `[]`},
		{`{"a":[1]}`, `{"a":[1]}`},
		{`[1,`, `[1,`},
		{`[1] [2]`, `[1] [2]`},
	} {
		if got := string(slimBatch([]byte(c.in))); got != c.want {
			t.Errorf("slimBatch(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestRefusedBatchIsExplainedWithoutItsValues: a batch within its limit
// whose items hold many small values and an unknown member is explained
// without the generic parse of those values (some 20 times the body in
// memory), and its items do not echo them.
func TestRefusedBatchIsExplainedWithoutItsValues(t *testing.T) {
	flows, meas := fuzzDecoders()
	values := string(repeatBatch("1", 3000))
	for _, c := range []struct {
		name   string
		body   []byte
		decode func([]byte) error
	}{
		{"measurements", repeatBatch(`{"name":"n","method":"GET","startedAt":1,"endedAt":2,"extra":`+values+`}`, 500),
			func(b []byte) error { _, err := meas.decode("application/json", b, time.Now()); return err }},
		{"flows", repeatBatch(`{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3,"extra":`+values+`}`, 500),
			func(b []byte) error { _, err := flows.decode("application/json", b, fuzzHours); return err }},
	} {
		t.Run(c.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := c.decode(c.body)
			runtime.ReadMemStats(&after)
			var p *Problem
			if !errors.As(err, &p) || p.Status != http.StatusUnprocessableEntity || len(p.Errors) != 500 {
				t.Fatalf("error %v, want a 422 with 500 items", err)
			}
			for _, it := range p.Errors {
				if it.Title != "unknown" || it.Source != "extra" {
					t.Fatalf("item %+v", it)
				}
				if b, _ := json.Marshal(it.Value); len(b) > 100 {
					t.Fatalf("item at %s echoes the value (%d bytes)", it.Location, len(b))
				}
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*uint64(len(c.body)) {
				t.Fatalf("%d bytes allocated to explain a %d-byte body", alloc, len(c.body))
			}
		})
	}
}
