package api

import (
	"strings"
	"testing"
)

// TestMeasurementsDecodeSharedBuffer: args, kwargs and context share one
// buffer per batch; appending to one record's value must not change the
// next one's, and the values are the body's bytes verbatim.
func TestMeasurementsDecodeSharedBuffer(t *testing.T) {
	body := []byte(`[{"name":"n","method":"GET","startedAt":1,"endedAt":2,"args":[1, 2],"kwargs":{"a" : 1},"context":{}},` +
		`{"name":"n","method":"GET","startedAt":1,"endedAt":2,"args":["x"],"kwargs":{"b":2},"context":{"c":[3]}}]`)
	recs, ok := fastDecodeMeasurements(body)
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
