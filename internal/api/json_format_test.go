package api

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// v1Answer is what huma's default format wrote before jsonFormat: the
// bytes jsonFormat must reproduce.
func v1Answer(t *testing.T, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	return b.Bytes()
}

// formatted is v through jsonFormat, both ways it writes: to a
// bytes.Buffer (marshalAnswer) and to any other writer (a response).
func formatted(t *testing.T, v any) (buffered, streamed []byte) {
	t.Helper()
	var b bytes.Buffer
	if err := jsonFormat.Marshal(&b, v); err != nil {
		t.Fatalf("jsonFormat to a buffer: %v", err)
	}
	var w strings.Builder
	if err := jsonFormat.Marshal(&w, v); err != nil {
		t.Fatalf("jsonFormat to a writer: %v", err)
	}
	return b.Bytes(), []byte(w.String())
}

// TestJSONFormatSameBytes: every answer the API's types produce, written by
// jsonFormat, is byte for byte what encoding/json (huma's default format)
// wrote: escapes, numbers, nulls, omitted fields, raw JSON stored by
// clients, map key order, times, and an answer larger than the write
// chunk.
func TestJSONFormatSameBytes(t *testing.T) {
	at := time.Date(2026, 12, 3, 20, 15, 1, 123456789, time.UTC)
	big := Collection{ID: 7}
	for i := range 5000 {
		big.HTTPURLs.Data = append(big.HTTPURLs.Data, CollectionURL{URL: "/apiv0.1/events/" + strings.Repeat("a", i%40),
			Method: "GET", Hits: int64(i), AverageResponseTime: float64(i) / 7, LongestResponseTime: float64(i) * 1e-9})
	}
	cases := map[string]any{
		"empty collection": Collection{},
		"collection":       big,
		"problem": &Problem{Title: "Unprocessable Entity", Status: 422, Detail: "validation <failed> & \u2028 \u2029",
			Errors: []*ProblemItem{
				{Status: 422, Title: "type", Detail: "x", Location: "body.x", Value: map[string]any{"z": 1, "a": []any{nil, 1.5, "<&>"}}},
				{Status: 422, Title: "required", Detail: "y", Value: nil},
				{Status: 422, Title: "invalid", Detail: "bytes", Value: "bad \x00 \t"},
			}},
		"problem without errors": &Problem{Title: "Not Found", Status: 404},
		"numbers": []any{0.0, math.Copysign(0, -1), 1e21, 1e20, 1e-7, 1e-6, 123456789.123456789, math.MaxFloat64,
			math.SmallestNonzeroFloat64, float32(0.1), int64(math.MaxInt64), uint64(math.MaxUint64), -17},
		"raw JSON as stored": map[string]json.RawMessage{
			"spaced":  json.RawMessage(` { "b" : [ 1 , 2 ] , "a" : "<&>" } `),
			"escapes": json.RawMessage(`"\u003c \u2028 \/ \ud83d\ude00"`),
			"number":  json.RawMessage(`1.50e+3`),
			"null":    json.RawMessage(`null`),
		},
		"measurement": Measurement{ID: 3, Name: "/api/<id>", Method: "GET", App: "shop", StartedAt: 1.5, EndedAt: 2.25,
			Elapsed: 0.75, Args: jsonArray(`[1, "two", "\u2028", "\ufffd"]`), Kwargs: jsonObject(`{}`),
			Context: jsonObject("{\"url\": \"http://x/?a=1&b=<2>\", \"ls\": \"x\"}")},
		"nil slices and maps": struct {
			S []string          `json:"s"`
			M map[string]int    `json:"m"`
			E []string          `json:"e,omitempty"`
			Z int               `json:"z,omitempty"`
			P *float64          `json:"p"`
			B []byte            `json:"b"`
			T time.Time         `json:"t"`
			O map[string]string `json:"o"`
		}{T: at, B: []byte("bytes\x00"), O: map[string]string{"b": "2", "a": "1", "é": "3", "A": "0"}},
		"page": PageOutput[EventRun]{Body: Page[EventRun]{Items: []EventRun{}, Total: 0, Page: 1, Size: 50}},
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			want := v1Answer(t, v)
			buffered, streamed := formatted(t, v)
			if !bytes.Equal(buffered, want) {
				t.Errorf("to a buffer:\n got %.400q\nwant %.400q", buffered, want)
			}
			if !bytes.Equal(streamed, want) {
				t.Errorf("to a writer:\n got %.400q\nwant %.400q", streamed, want)
			}
		})
	}
}

// TestJSONFormatDifferences: the two ways jsonFormat's bytes differ from
// encoding/json's, both the same JSON values: a U+2028 or U+2029 written
// raw inside JSON a client stored (measurements' args, kwargs and
// context) is escaped, as encoding/json escapes them in every other
// string; invalid UTF-8 in a Go string (a problem echoing a value) becomes
// the replacement character itself rather than its \ufffd escape.
func TestJSONFormatDifferences(t *testing.T) {
	for _, c := range []struct {
		v          any
		v1, format string
	}{
		{jsonObject("{\"ls\": \"\u2028\u2029\"}"), "{\"ls\":\"\u2028\u2029\"}\n", `{"ls":"\u2028\u2029"}` + "\n"},
		{ProblemItem{Title: "invalid", Value: "\xff bad"}, `{"status":0,"title":"invalid","detail":"","value":"\ufffd bad"}` + "\n",
			"{\"status\":0,\"title\":\"invalid\",\"detail\":\"\",\"value\":\"\ufffd bad\"}\n"},
	} {
		if got := string(v1Answer(t, c.v)); got != c.v1 {
			t.Errorf("encoding/json wrote %q, want %q", got, c.v1)
		}
		buffered, streamed := formatted(t, c.v)
		if string(buffered) != c.format || string(streamed) != c.format {
			t.Errorf("jsonFormat wrote %q and %q, want %q", buffered, streamed, c.format)
		}
		var a, b any
		if err := json.Unmarshal([]byte(c.v1), &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(buffered, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("different values: %#v and %#v", a, b)
		}
	}
}

// TestJSONFormatErrors: a value encoding/json refuses is refused too (a NaN
// the handlers failed to map), whichever way it is written.
func TestJSONFormatErrors(t *testing.T) {
	for _, v := range []any{math.NaN(), map[string]any{"x": math.Inf(1)}, make(chan int)} {
		var b bytes.Buffer
		if err := jsonFormat.Marshal(&b, v); err == nil {
			t.Errorf("%v to a buffer: no error (%q)", v, b.String())
		}
		var w strings.Builder
		if err := jsonFormat.Marshal(&w, v); err == nil {
			t.Errorf("%v to a writer: no error (%q)", v, w.String())
		}
	}
}
