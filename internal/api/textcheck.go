package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Every string of a request body (values and member names, at any depth)
// is checked here, on the raw body, before anything is stored. PostgreSQL
// refuses a NUL character in text and in jsonb (\u0000), and the text of a
// body must be Unicode: encoding/json would have turned invalid UTF-8 and
// lone UTF-16 surrogates (\ud800 without a low surrogate after it, or a low
// one alone) into U+FFFD, storing something other than what was sent. Each
// faulty string is a 422 item titled "unicode" at the string's location
// (body[3].src_app, body.measurement.fields.x); a repeated member name is a
// 422 item titled "duplicate" at the member's location (RFC 8259 leaves
// their meaning open; encoding/json kept the last, other readers keep the
// first); a value nested past maxNesting is a 422 item titled "max" at the
// place it passes it. All of them are listed at once.
//
// The decoders' fast paths refuse such bodies by themselves (json v2
// refuses invalid UTF-8, lone surrogates and repeated names by default;
// they look for NUL in what they decoded): checkBodyText only explains a
// body a fast path refused, and checks the bodies huma decodes (events,
// devices, token), so the common body is read once.

// maxNesting is how deep a body may nest objects and arrays, itself
// included ([{"args": [...]}] is 3 deep). json v2 refuses 10,000 levels,
// and an answer nests a stored value a level or two deeper than its body
// did ({"items": [{...}]}): a value stored just under that limit made every
// read that included it fail after its 200 was sent. Nothing the seeds'
// clients send comes near 100.
const maxNesting = 100

// Titles of the items checkBodyText reports.
const (
	titleUnicode   = "unicode"
	titleDuplicate = "duplicate"
)

// textMaxValue is how much of a faulty string an item echoes back.
const textMaxValue = 64

// textFrame is one open object or array of the walk.
type textFrame struct {
	object bool
	index  int    // arrays: index of the current element
	name   []byte // objects: the current member's name (unquoted)
	names  [][]byte
	many   map[string]struct{} // objects with many members: names seen
}

// textFewNames is the number of names an object's duplicate check
// compares one by one before it uses a map.
const textFewNames = 16

// checkBodyText walks a JSON body and returns one item per string with a
// fault and one per repeated member name, in the order of the body. err
// is the syntax error when the body is not one JSON value.
func checkBodyText(body []byte) (items []error, err error) {
	dec := jsontext.NewDecoder(bytes.NewReader(body),
		jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	var stack []textFrame
	for {
		kind := dec.PeekKind()
		if kind == 0 {
			// End of input or a syntax error: ReadValue says which.
			_, err := dec.ReadValue()
			if errors.Is(err, io.EOF) && len(stack) == 0 && dec.InputOffset() > 0 {
				return items, nil
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return items, err
		}
		if len(stack) == 0 && dec.InputOffset() > 0 {
			// Another value after the first: ReadValue would take it.
			return items, errors.New("jsontext: invalid data after the top-level value at byte " +
				strconv.FormatInt(dec.InputOffset(), 10))
		}
		if kind == '}' || kind == ']' {
			if _, err := dec.ReadToken(); err != nil {
				return items, err
			}
			stack = stack[:len(stack)-1]
			continue
		}
		top := len(stack) - 1
		if _, n := dec.StackIndex(dec.StackDepth()); top >= 0 && stack[top].object && n%2 == 0 {
			// In an object after an even number of tokens: a member name.
			raw, err := readRaw(dec, body)
			if err != nil {
				return items, err
			}
			if fault := textFault(raw); fault != "" {
				loc := textLocation(stack[:top])
				items = append(items, &ProblemItem{Title: titleUnicode, Location: loc, Source: leafName(loc),
					Detail: "a member name in " + loc + " " + fault, Value: textValue(raw)})
			}
			f := &stack[top]
			f.name = unquoteLenient(raw)
			if f.seen(f.name) {
				name := strings.ToValidUTF8(string(f.name), "\uFFFD")
				items = append(items, &ProblemItem{Title: titleDuplicate, Location: textLocation(stack), Source: name,
					Detail: fmt.Sprintf("%q appears more than once in %s: each name may appear only once", name,
						textLocation(stack[:top]))})
			}
			continue
		}
		if top >= 0 && !stack[top].object {
			stack[top].index++
		}
		if kind == '{' || kind == '[' {
			if _, err := dec.ReadToken(); err != nil {
				return items, err
			}
			// Reuse a closed frame's name list: a batch has one object per item.
			var names [][]byte
			if len(stack) < cap(stack) {
				names = stack[:len(stack)+1][len(stack)].names[:0]
			}
			stack = append(stack, textFrame{object: kind == '{', index: -1, names: names})
			if len(stack) == maxNesting+1 {
				loc := textLocation(stack[:len(stack)-1])
				items = append(items, &ProblemItem{Title: "max", Location: loc, Source: leafName(loc),
					Detail: fmt.Sprintf("the body nests objects and arrays more than %d deep", maxNesting)})
			}
			continue
		}
		raw, err := readRaw(dec, body)
		if err != nil {
			return items, err
		}
		if kind == '"' {
			if fault := textFault(raw); fault != "" {
				loc := textLocation(stack)
				field := leafName(loc)
				if field == "" {
					field = loc
				}
				items = append(items, &ProblemItem{Title: titleUnicode, Location: loc, Source: leafName(loc),
					Detail: field + " " + fault, Value: textValue(raw)})
			}
		}
	}
}

// readRaw reads the next value (or name) of dec, which reads body, and
// returns it as a slice of body: what ReadValue returns only lasts until
// the decoder's next read.
func readRaw(dec *jsontext.Decoder, body []byte) ([]byte, error) {
	v, err := dec.ReadValue()
	if err != nil {
		return nil, err
	}
	end := int(dec.InputOffset())
	return body[end-len(v) : end : end], nil
}

// seen records a member name and reports whether the object had it already.
func (f *textFrame) seen(name []byte) bool {
	if f.many != nil {
		if _, dup := f.many[string(name)]; dup {
			return true
		}
		f.many[string(name)] = struct{}{}
		return false
	}
	for _, n := range f.names {
		if bytes.Equal(n, name) {
			return true
		}
	}
	f.names = append(f.names, name)
	if len(f.names) > textFewNames {
		f.many = make(map[string]struct{}, 2*len(f.names))
		for _, n := range f.names {
			f.many[string(n)] = struct{}{}
		}
		f.names = nil
	}
	return false
}

// textLocation is the location of the current value of the innermost
// frame: body, then .name for an object member, [i] for an array element.
func textLocation(stack []textFrame) string {
	var b strings.Builder
	b.WriteString("body")
	for _, f := range stack {
		if f.object {
			b.WriteByte('.')
			b.WriteString(strings.ToValidUTF8(string(f.name), "\uFFFD"))
		} else {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(f.index))
			b.WriteByte(']')
		}
	}
	return b.String()
}

// unquoteLenient decodes a JSON string as it appears in the body (quotes
// included), invalid UTF-8 and lone surrogates as U+FFFD.
func unquoteLenient(raw []byte) []byte {
	if in := raw[1 : len(raw)-1]; bytes.IndexByte(in, '\\') < 0 && utf8.Valid(in) {
		return in
	}
	s, _ := jsontext.AppendUnquote(nil, raw) // the error only says U+FFFD was used
	return s
}

// textValue is a faulty string as an item echoes it: decoded leniently,
// NUL as U+FFFD, at most textMaxValue characters.
func textValue(raw []byte) string {
	s := strings.ReplaceAll(string(unquoteLenient(raw)), "\x00", "\uFFFD")
	if utf8.RuneCountInString(s) > textMaxValue {
		s = string([]rune(s)[:textMaxValue]) + "..."
	}
	return s
}

// textFault says what is wrong with a JSON string as it appears in a body
// that is syntactically valid JSON (quotes included): "" when nothing.
func textFault(raw []byte) string {
	s := raw[1 : len(raw)-1]
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return "" // the common string: no escapes, valid UTF-8 (a raw NUL is not JSON)
	}
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == '\\':
			if s[i+1] != 'u' {
				i += 2
				continue
			}
			r := hex4(s[i+2:])
			i += 6
			switch {
			case r == 0:
				return `contains a NUL character (\u0000), which cannot be stored`
			case r >= 0xD800 && r < 0xDC00:
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if low := hex4(s[i+2:]); low >= 0xDC00 && low < 0xE000 {
						i += 6
						continue
					}
				}
				return fmt.Sprintf(`contains a lone UTF-16 surrogate \u%04x: a high surrogate must be followed by a low one (\udc00 to \udfff)`, r)
			case r >= 0xDC00 && r < 0xE000:
				return fmt.Sprintf(`contains a lone UTF-16 surrogate \u%04x: a low surrogate must follow a high one (\ud800 to \udbff)`, r)
			}
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && n == 1 {
				return fmt.Sprintf("is not valid UTF-8 (byte 0x%02x at byte %d of the string)", c, i)
			}
			i += n
		}
	}
	return ""
}

// hex4 reads the four hex digits of a \u escape (already checked by the
// JSON syntax).
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// unmarshalBody decodes a body huma hands to an UnmarshalJSON method
// (events, devices, token) with json v2: names match exactly, as huma's
// validator matches them (encoding/json, huma's decoder, folds their case,
// so a value the schema did not check could reach a handler). Repeated
// names and faulty strings are let through, the last repeated name
// winning: checkBodyText reports them, through the operation's Resolve.
func unmarshalBody(data []byte, v any) error {
	return jsonv2.Unmarshal(data, v, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
}

// hasEscapedNUL reports whether a raw JSON text may hold an escaped NUL:
// a cheap test for the fast paths, which leave a body that has one to
// checkBodyText (a false alarm, "\\u0000", only costs the slow path).
func hasEscapedNUL(raw []byte) bool { return bytes.Contains(raw, []byte(`\u0000`)) }
