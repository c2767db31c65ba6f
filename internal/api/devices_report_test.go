package api

import (
	"encoding/json"
	"reflect"
	"testing"
)

// scanReport, parseReport's fast path, either splits a body exactly as
// json.Unmarshal does or declines and leaves it to json.Unmarshal.
func TestDevicesScanReportMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body string
		fast bool // scanReport takes it
	}{
		{`{"name":"cpu","value":12,"units":"%","type":"int32","slope":"both","ttl":60}`, true},
		{" \n{ \"name\" : \"cpu\" ,\t\"value\" : -1.5e+3 , \"ttl\":0 } \r\n", true},
		{`{}`, true},
		{` { } `, true},
		{`{"value":"text","type":"string","extra":true,"other":null,"n":false}`, true},
		{`{"name":"a","name":"b"}`, true},             // the last wins
		{`{"value":0,"value":"x"}`, true},             // the last wins
		{`{"ttl":1.5,"value":-0,"units":"é°"}`, true}, // raw UTF-8
		{`{"unknown":"x","ttl":"60"}`, true},
		{`{"NAME":"cpu"}`, false},   // encoding/json matches keys case-insensitively
		{`{"ſlope":"both"}`, false}, // and by Unicode folding
		{`{"name":"a\"b"}`, false},  // escapes
		{`{"na\u006de":"a"}`, false},
		{`{"value":{"a":1}}`, false},
		{`{"value":[1,2]}`, false},
		{`{"value":01}`, false},
		{`{"value":1.}`, false},
		{`{"value":.5}`, false},
		{`{"value":1e}`, false},
		{`{"value":-}`, false},
		{`{"value":truex}`, false},
		{`{"value":tru}`, false},
		{`{"value":1,}`, false},
		{`{"value":1}x`, false},
		{`{"value":1}{}`, false},
		{`{"value" 1}`, false},
		{`{"value":1`, false},
		{`{"name":"a` + "\x01" + `"}`, false},
		{`{,}`, false},
		{`[]`, false},
		{`"x"`, false},
		{`null`, false},
		{``, false},
	}
	for _, c := range cases {
		var fast rawReport
		ok := scanReport([]byte(c.body), &fast)
		if ok != c.fast {
			t.Errorf("%q: scanReport took it: %v, want %v", c.body, ok, c.fast)
		}
		if !ok {
			continue
		}
		var slow rawReport
		if err := json.Unmarshal([]byte(c.body), &slow); err != nil {
			t.Errorf("%q: scanReport took what json.Unmarshal refuses: %v", c.body, err)
			continue
		}
		if !reflect.DeepEqual(norm(fast), norm(slow)) {
			t.Errorf("%q: scanReport %+v, json.Unmarshal %+v", c.body, norm(fast), norm(slow))
		}
	}
}

func norm(r rawReport) [6]string {
	return [6]string{string(r.Name), string(r.Value), string(r.Units), string(r.Type), string(r.Slope), string(r.TTL)}
}
