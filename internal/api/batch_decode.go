package api

import (
	"bytes"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/go-json-experiment/json/jsontext"
)

// The batch endpoints (POST /flows, POST /api/measurements) take their body
// raw and decode it once into typed values, checking the schema's rules by
// hand; only a body that fast path refuses is explained by huma's validator
// against the documented schema, so that the 422 lists every failure as for
// any other endpoint. This file holds what they share.

// batchSchema is the documented schema of a batch body and the registry
// that resolves its references.
type batchSchema struct {
	registry huma.Registry
	schema   *huma.Schema
}

// newBatchSchema makes the schema of a JSON array of itemType.
func newBatchSchema(api huma.API, sliceType reflect.Type, description string, nullable bool) batchSchema {
	reg := api.OpenAPI().Components.Schemas
	s := reg.Schema(sliceType, true, "")
	s.Description = description
	s.Nullable = nullable
	s.PrecomputeMessages()
	return batchSchema{registry: reg, schema: s}
}

// validate runs huma's validator on a parsed body.
func (b batchSchema) validate(parsed any) []error {
	res := &huma.ValidateResult{}
	pb := huma.NewPathBuffer([]byte{}, 0)
	pb.Push("body")
	huma.Validate(b.registry, b.schema, pb, huma.ModeWriteToServer, parsed, res)
	return res.Errors
}

// checkContentType is nil for a JSON body (or none given), else the 415.
func checkContentType(contentType string) error {
	if ok, _ := jsonMediaType(contentType); ok || contentType == "" {
		return nil
	}
	return unknownContentType(contentType)
}

// jsonMediaType reports whether the media type contentType names JSON:
// application/json or a +json type, in any case, with any parameters (RFC
// 9110 8.3.1); err when it is malformed.
func jsonMediaType(contentType string) (bool, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json")), err
}

// unknownContentType is the 415 for a body of contentType.
func unknownContentType(contentType string) *Problem {
	return NewProblem(http.StatusUnsupportedMediaType, "validation failed", &ProblemItem{
		Title: "contentType", Location: "body",
		Detail: "unknown content type: " + contentType + "; send Content-Type: application/json",
	})
}

// validLength applies a schema length rule, counted in characters.
func validLength(s string, lo, hi int) bool {
	if len(s) < lo {
		return false
	}
	if len(s) <= hi && isASCII(s) {
		return true
	}
	n := 0
	for range s {
		n++
	}
	return n >= lo && n <= hi
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// stringContent is a JSON string's content, unescaped into *buf when it
// has escapes (jsontext has already checked the string is valid).
func stringContent(v jsontext.Value, buf *[]byte) ([]byte, bool) {
	raw := v[1 : len(v)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw, true
	}
	u, err := jsontext.AppendUnquote((*buf)[:0], v)
	*buf = u
	return u, err == nil
}

// internText is a string field's value: a JSON string of lo to hi
// characters without NUL, the same string for the same value within a
// batch (seen holds the batch's strings of one field, or of fields with the
// same rule, such as a flow's three names).
func internText(v jsontext.Value, seen map[string]string, buf *[]byte, lo, hi int) (string, bool) {
	if v.Kind() != '"' {
		return "", false
	}
	raw, ok := stringContent(v, buf)
	if !ok {
		return "", false
	}
	if s, ok := seen[string(raw)]; ok {
		return s, true
	}
	s := string(raw)
	if !validText(s, lo, hi) {
		return "", false
	}
	seen[s] = s
	return s, true
}

// validText is validLength for a string the fast paths decoded, which
// json v2 has checked is valid UTF-8: it must hold no NUL either.
func validText(s string, lo, hi int) bool {
	return validLength(s, lo, hi) && strings.IndexByte(s, 0) < 0
}

// openBatch starts the token reading of a batch: the decoder (with opts)
// past the array's '[', or false when the body is not an array.
func openBatch(body []byte, opts ...jsontext.Options) (*jsontext.Decoder, bool) {
	dec := jsontext.NewDecoder(bytes.NewReader(body), opts...)
	if dec.PeekKind() != '[' {
		return nil, false
	}
	_, err := dec.ReadToken()
	return dec, err == nil
}

// closeBatch ends it after the last item: the array's ']' and nothing
// after it.
func closeBatch(dec *jsontext.Decoder) bool {
	if dec.PeekKind() != ']' {
		return false
	}
	if _, err := dec.ReadToken(); err != nil {
		return false
	}
	_, err := dec.ReadToken()
	return err == io.EOF
}

// batchLimit is the most items a batch may carry (FLOWS_MAX_BATCH,
// MEASUREMENTS_MAX_BATCH) and the 406 for more. A batch over it is refused
// before its items are checked or kept: the decoders keep at most max
// items and only count the rest, so a body of a million small items costs
// a scan, not a million records (nor, when some are invalid, a generic
// parse and a 422 listing each of them).
type batchLimit struct {
	max     int
	tooMany func(n int) error
}

// countRest counts the items of a batch from the decoder's place to its
// end, keeping none, and reads the closing ']'; false when the rest is not
// well-formed JSON.
func countRest(dec *jsontext.Decoder) (int, bool) {
	n := 0
	for k := dec.PeekKind(); k != ']' && k != 0; k = dec.PeekKind() {
		if err := dec.SkipValue(); err != nil {
			return 0, false
		}
		n++
	}
	return n, closeBatch(dec)
}

// countBatch is the number of items of a batch the fast path refused;
// false when the body is not a well-formed JSON array.
func countBatch(body []byte) (int, bool) {
	dec, ok := openBatch(body)
	if !ok {
		return 0, false
	}
	return countRest(dec)
}

// check is the 406 for a batch over the limit, else nil: n is the count
// of items the fast path read when it took the body (fast), and a body it
// refused is counted here (nil too when it is not a well-formed array,
// which the slow path explains).
func (l batchLimit) check(body []byte, n int, fast bool) error {
	if !fast {
		var ok bool
		if n, ok = countBatch(body); !ok {
			return nil
		}
	}
	if n > l.max {
		return l.tooMany(n)
	}
	return nil
}

// bodyKind is the kind of a body's top-level JSON value ('[' an array, 'n'
// null, '{' an object, ...), from its first token alone: the slow paths
// answer a body of the wrong kind without parsing it (a 60 MB object took
// a second of CPU per 2 MB and 1.2 GB of memory to parse, and its 400
// echoed it whole).
func bodyKind(body []byte) jsontext.Kind {
	return jsontext.NewDecoder(bytes.NewReader(body)).PeekKind()
}

// slimBatch is the batch the slow paths hand to huma's validator: the
// same items and members, with every array or object inside an item (and
// every item that is not an object) emptied to [] or {}. The schemas look
// at those values' kinds only (args: any array, kwargs and context: any
// object; an unknown member or a wrong kind is refused whatever it holds),
// so the validator's answer is the same but for the value it shows for a
// composite of the wrong kind (emptied), while the generic parse it needs
// no longer costs some 20 times the body in memory when the body holds
// many small values (1.2 GB for 60 MB). The strings that cannot be stored
// are found in the whole body before (checkBodyText), and the records are
// decoded from it. The body itself when it is not a well-formed array.
func slimBatch(body []byte) []byte {
	dec, ok := openBatch(body, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	if !ok {
		return body
	}
	out := append(make([]byte, 0, 4096), '[')
	for i := 0; dec.PeekKind() != ']'; i++ {
		if i > 0 {
			out = append(out, ',')
		}
		if dec.PeekKind() != '{' {
			v, err := dec.ReadValue()
			if err != nil {
				return body
			}
			out = appendSlim(out, v)
			continue
		}
		if _, err := dec.ReadToken(); err != nil {
			return body
		}
		out = append(out, '{')
		for j := 0; dec.PeekKind() == '"'; j++ {
			name, err := dec.ReadValue()
			if err != nil {
				return body
			}
			if j > 0 {
				out = append(out, ',')
			}
			// Copied before the next read, which may reuse name's bytes.
			out = append(append(out, name...), ':')
			v, err := dec.ReadValue()
			if err != nil {
				return body
			}
			out = appendSlim(out, v)
		}
		if _, err := dec.ReadToken(); err != nil {
			return body
		}
		out = append(out, '}')
	}
	if !closeBatch(dec) {
		return body
	}
	return append(out, ']')
}

// appendSlim appends v, or [] or {} for an array or an object.
func appendSlim(out []byte, v jsontext.Value) []byte {
	switch v.Kind() {
	case '[':
		return append(out, "[]"...)
	case '{':
		return append(out, "{}"...)
	}
	return append(out, v...)
}
