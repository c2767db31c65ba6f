package api

import (
	"bufio"
	"bytes"
	jsonv2 "github.com/go-json-experiment/json"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// genericRows is what the generic path writes for m: its NDJSON line and
// its CSV record.
func genericRows(t *testing.T, m Measurement) (ndjson, csv []byte) {
	t.Helper()
	b, err := jsonv2.Marshal(m, jsonOptions)
	if err != nil {
		t.Fatal(err)
	}
	cols := columnsOf(reflect.TypeFor[Measurement]())
	record := make([]string, len(cols.names))
	if err := cols.split(b, record); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	if err := writeCSV(w, record); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	return append(b, '\n'), out.Bytes()
}

// The hand-written measurement rows are byte for byte what the generic path
// writes, on random rows: every row they take, and they take the usual
// ones (ASCII names, jsonb as PostgreSQL prints it, epoch times, tiny and
// huge elapsed values); the others fall back.
func TestExportRowsMatchJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	texts := []string{"", "/api/products/<id>", "/plain", "GET", "a,b", `say "hi"`, " lead", "tab\there", "é✓",
		"x&y", "\u2028", "\x00", "bad\xffutf8", "line\nbreak", "back\\slash", "cr\ronly", "=1+1", "a;=1", "a;b", " -1"}
	raws := []string{"", "null", "[]", "{}", `[1, "two", {"three": 3}]`, `{"id": "17"}`,
		`{"url": "http://shop.local/api/r7/123?verbose=1", "args": {"verbose": "1"}, "headers": {"Accept": "application/json"}}`,
		`{"q": "a \"quoted\" word, and\\na newline"}`, `{"html": "<b>"}`, `{"é": "✓"}`, `{"sp": "  spaces  kept  "}`,
		`{"nested": [[], {}, [{"a": null}]], "n": -1.5e-7, "t": true}`, `{"f": "x;=HYPERLINK(1)", "g": "a; b"}`, `["=1", "@x;+2"]`}
	floats := []float64{0, 1, -1, 0.000003, 1e-7, 1.5e-7, 9.99e-7, 1e-6, 123456.789, 1444991539.945813, 1e20, 1e21, 1.7e308,
		-2.5e-9, math.MaxFloat64, math.SmallestNonzeroFloat64}
	pick := func(list []string) string { return list[r.IntN(len(list))] }
	fast, slow := 0, 0
	for i := range 20000 {
		m := Measurement{ID: r.Int64N(1 << 62), Name: pick(texts), Method: pick(texts),
			StartedAt: floats[r.IntN(len(floats))], EndedAt: float64(r.Int64N(1<<40)) / 1e6,
			Elapsed: floats[r.IntN(len(floats))] * r.Float64(), Args: jsonArray(pick(raws)), Kwargs: jsonObject(pick(raws)),
			Context: jsonObject(pick(raws)), App: pick(texts)}
		if i%3 == 0 { // the common case: all plain
			m.Name, m.Method, m.App = "/api/r7/<id>", "GET", pick([]string{"", "shop"})
			m.Args, m.Kwargs, m.Context = jsonArray(raws[4]), jsonObject(raws[5]), jsonObject(raws[6])
		}
		wantND, wantCSV := genericRows(t, m)
		gotND, okND := m.appendNDJSON(nil)
		gotCSV, okCSV := m.appendCSV(nil)
		if okND != okCSV {
			t.Fatalf("%+v: NDJSON fast %v, CSV fast %v", m, okND, okCSV)
		}
		if !okND {
			slow++
			continue
		}
		fast++
		if !bytes.Equal(gotND, wantND) {
			t.Fatalf("NDJSON of %+v:\n got %s\nwant %s", m, gotND, wantND)
		}
		if !bytes.Equal(gotCSV, wantCSV) {
			t.Fatalf("CSV of %+v:\n got %q\nwant %q", m, gotCSV, wantCSV)
		}
	}
	if fast < 6667 || slow == 0 {
		t.Fatalf("%d rows took the fast path, %d the generic one: want every plain row fast, and some not", fast, slow)
	}
	// What the fast path refuses takes the generic one: a number that is not
	// finite (an error there, as before).
	if _, ok := (Measurement{Elapsed: math.NaN()}).appendNDJSON(nil); ok {
		t.Fatal("NaN taken by the fast path")
	}
	if _, ok := (Measurement{Name: "é"}).appendCSV(nil); ok {
		t.Fatal("a non-ASCII name taken by the fast path")
	}
	if got, ok := (Measurement{Name: "/api/<id>", Context: jsonObject(`{"q": "a&b"}`)}).appendNDJSON(nil); !ok ||
		!bytes.Contains(got, []byte(`"name":"/api/<id>"`)) || !bytes.Contains(got, []byte(`"context":{"q":"a&b"}`)) {
		t.Fatalf("HTML characters: %s %v", got, ok)
	}
}
