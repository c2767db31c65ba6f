package api

import (
	"strings"
	"testing"
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
