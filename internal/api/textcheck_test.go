package api

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
)

// checkBodyText names every faulty string and repeated name of a body, at
// its location, in the order of the body.
func TestCheckBodyText(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body string
		want string // location/title of each item, space separated
		bad  bool   // not JSON
	}{
		{`{"a":"x","b":[1,"y",{"c":"é\u00e9\ud83d\ude00"}]}`, "", false},
		{`[]`, "", false},
		{` "x" `, "", false},
		{`{"src_app":"a\u0000"}`, "body.src_app/unicode", false},
		{`[{"a":"x"},{"a":"\u0000"}]`, "body[1].a/unicode", false},
		{"[{\"a\":\"\xff\"}]", "body[0].a/unicode", false},
		{`{"a":"\ud800"}`, "body.a/unicode", false},
		{`{"a":"\ud800x"}`, "body.a/unicode", false},
		{`{"a":"\ud800\u0041"}`, "body.a/unicode", false},
		{`{"a":"\udc00"}`, "body.a/unicode", false},
		{`{"a":"\\u0000"}`, "", false}, // an escaped backslash, then u0000
		{`{"m":{"fields":{"x":"\u0000"}}}`, "body.m.fields.x/unicode", false},
		{`{"m":{"a\u0000":1}}`, "body.m/unicode", false},
		{`{"a":1,"a":2}`, "body.a/duplicate", false},
		{`{"a":1,"b":{"a":1},"c":[{"a":1},{"a":1}]}`, "", false},
		{`{"a":1,"\u0061":2}`, "body.a/duplicate", false},
		{`[{"x":"\u0000","y":"\udc00"},[["\ud800"]],{"k":1,"k":"\u0000"}]`,
			"body[0].x/unicode body[0].y/unicode body[1][0][0]/unicode body[2].k/duplicate body[2].k/unicode", false},
		{`{` + manyNames(40) + `,"n07":0}`, "body.n07/duplicate", false},
		{`{"a":1}{}`, "", true},
		{`{"a":1} x`, "", true},
		{`{"a":`, "", true},
		{``, "", true},
		{` `, "", true},
		{"{\"a\":\"\x00\"}", "", true}, // a raw NUL is not JSON
		{`{"a" 1}`, "", true},
	}
	for _, c := range cases {
		items, err := checkBodyText([]byte(c.body))
		if (err != nil) != c.bad {
			t.Errorf("%q: error %v, want an error: %v", c.body, err, c.bad)
			continue
		}
		var got []string
		for _, it := range items {
			p := it.(*ProblemItem)
			if p.Detail == "" {
				t.Errorf("%q: item without detail: %+v", c.body, p)
			}
			got = append(got, p.Location+"/"+p.Title)
		}
		if !c.bad && strings.Join(got, " ") != c.want {
			t.Errorf("%q: items %v, want %s", c.body, got, c.want)
		}
	}
}

func manyNames(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"n` + string(rune('0'+i/10)) + string(rune('0'+i%10)) + `":1`)
	}
	return b.String()
}

// FuzzCheckBodyText checks checkBodyText against json v2's own validation
// and encoding/json's decoding:
//
//   - it fails exactly when jsontext finds the body is not one JSON value
//     (invalid UTF-8 and repeated names allowed);
//   - it reports no "unicode" item exactly when jsontext accepts the body
//     with its UTF-8 checks on (no invalid UTF-8, no lone surrogate) and no
//     string or name encoding/json decodes holds a NUL;
//   - for a body without such faults, it reports no "duplicate" item
//     exactly when jsontext, which refuses repeated names by default,
//     accepts it;
//   - every item has a title, a detail and a location under body.
//
// Run it with: go test ./internal/api -run '^$' -fuzz '^FuzzCheckBodyText$' -fuzztime 25s
func FuzzCheckBodyText(f *testing.F) {
	for _, s := range []string{
		`{"a":"x","b":[1,"y",{"c":"é\u00e9\ud83d\ude00"}]}`, `[]`, ` "x" `, `{"a":"\u0000"}`, "[{\"a\":\"\xff\"}]",
		`{"a":"\ud800"}`, `{"a":"\ud800\u0041"}`, `{"a":"\udc00\ud800"}`, `{"a":"\\u0000"}`, `{"a\u0000":1}`,
		`{"a":1,"a":2}`, `{"a":"\u0000","a":2}`, `{"a":1,"\u0061":2}`, "{\"\xff\":1,\"\xfe\":2}", `{"a":1}{}`, `{"a":`, ``, "\"\x00\"",
		`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{"a":1,"a":1}]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := checkBodyText(body)
		lenient := jsontext.Value(body).IsValid(jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true))
		if (err == nil) != lenient {
			t.Fatalf("%q: checkBodyText error %v, jsontext valid %v", body, err, lenient)
		}
		if err != nil {
			return
		}
		var unicode, duplicate bool
		for _, it := range items {
			p := it.(*ProblemItem)
			switch {
			case p.Title == titleUnicode:
				unicode = true
			case p.Title == titleDuplicate:
				duplicate = true
			default:
				t.Fatalf("%q: item %+v", body, p)
			}
			if p.Detail == "" || !within(p.Location, "body") {
				t.Fatalf("%q: item %+v", body, p)
			}
		}
		if !json.Valid(body) {
			t.Fatalf("%q: checkBodyText accepts it, encoding/json does not", body)
		}
		wantUnicode := !jsontext.Value(body).IsValid(jsontext.AllowDuplicateNames(true)) || holdsNUL(body)
		if unicode != wantUnicode {
			t.Fatalf("%q: unicode items %v, want %v (%v)", body, unicode, wantUnicode, items)
		}
		if !unicode {
			if wantDup := !jsontext.Value(body).IsValid(); duplicate != wantDup {
				t.Fatalf("%q: duplicate items %v, want %v (%v)", body, duplicate, wantDup, items)
			}
		}
	})
}

// holdsNUL reports whether a string or a name of a JSON body, as
// encoding/json's tokenizer reads it (repeated names included), has a NUL.
func holdsNUL(body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if s, ok := tok.(string); ok && strings.IndexByte(s, 0) >= 0 {
			return true
		}
	}
}
