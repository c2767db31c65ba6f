package api

import (
	"bytes"
	"math"
	"strconv"
	"strings"
)

// Hand-written export rows for the measurements, the one list exported by
// the million. The generic path (exportWriter.row) marshals each item with
// encoding/json and, for CSV, splits that JSON back into cells: at 100,000
// rows half of the export's CPU was encoding/json. These appenders write
// the same bytes straight into the output buffer with strconv.
//
// "The same bytes" is the contract (docs/export.md: the NDJSON lines are
// the JSON list's items), so an appender takes only the rows whose every
// byte it writes exactly as the generic path's encoder (jsonOptions) would,
// and answers ok false for the others, which then take the generic path: a
// string or JSON text holding a byte outside printable ASCII (the encoder
// replaces invalid UTF-8 and escapes U+2028), a control character, a quote
// or backslash in a string, or a number that is not finite (which the
// encoder refuses).
// The HTML characters <, >, & (flask-profiler's names are /api/<id>) are
// written as they are, as in the JSON answers (jsonOptions), in the JSON
// strings and the JSON texts (args, kwargs, context) alike. The test
// TestExportRowsMatchJSON compares both paths on random rows.

// rowAppender is an item with hand-written export rows. Each appends one
// whole row (with its line end) to b.
type rowAppender interface {
	appendNDJSON(b []byte) ([]byte, bool)
	appendCSV(b []byte) ([]byte, bool)
}

var _ rowAppender = Measurement{}

// plainByte marks the bytes that the JSON encoder (jsonOptions) writes
// inside a string as they are: printable ASCII except the quote and the
// backslash.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// plain reports whether s is a string the appenders write as it is, in a
// CSV cell and in JSON.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if !plainByte[s[i]] {
			return false
		}
	}
	return true
}

// plainJSON reports whether compacting the JSON text j is all the JSON
// encoder (jsonOptions) does to it: printable ASCII (quotes and
// backslash escapes included) and JSON whitespace. j comes from a jsonb
// column, so it is valid JSON.
func plainJSON(j []byte) bool {
	for _, c := range j {
		if !plainByte[c] && c != '"' && c != '\\' && c != '\t' && c != '\n' && c != '\r' {
			return false
		}
	}
	return true
}

// appendCompact appends the valid JSON text j without the whitespace
// outside its strings, as the JSON encoder (jsonOptions) writes a
// RawMessage. PostgreSQL prints jsonb as `{"a": 1, "b": [2, 3]}`.
func appendCompact(b, j []byte) []byte {
	in := false
	for i := 0; i < len(j); i++ {
		c := j[i]
		switch {
		case in:
			b = append(b, c)
			if c == '\\' && i+1 < len(j) {
				i++
				b = append(b, j[i])
			} else if c == '"' {
				in = false
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		default:
			if c == '"' {
				in = true
			}
			b = append(b, c)
		}
	}
	return b
}

// appendJSONFloat appends f as encoding/json writes a float64: the
// shortest decimal that reads back as f, in exponent form below 1e-6 and
// from 1e21, with a two-digit negative exponent shortened (1e-07 is 1e-7).
func appendJSONFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, false
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// appendCSVField appends one CSV cell as writeCSV writes it.
func appendCSVField[S string | []byte](b []byte, field S) []byte {
	if len(field) == 0 || !(strings.ContainsAny(string(field), ",\"\r\n") || field[0] == ' ') {
		return append(b, field...)
	}
	b = append(b, '"')
	for i := 0; i < len(field); i++ {
		if field[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, field[i])
	}
	return append(b, '"')
}

// appendCSVText appends the cell of a text value, as csvText makes it.
func appendCSVText(b []byte, s string) []byte {
	return appendCSVField(b, csvText(s))
}

// rawOr is a JSON text as the item's MarshalJSON writes it: empty and
// null stand for the empty value.
func rawOr(j []byte, empty string) []byte {
	if len(j) == 0 || string(j) == "null" {
		return []byte(empty)
	}
	return j
}

// fastable reports whether every text of m is one the appenders write
// exactly.
func (m Measurement) fastable() bool {
	return plain(m.Name) && plain(m.Method) && plain(m.App) &&
		plainJSON(m.Args) && plainJSON(m.Kwargs) && plainJSON(m.Context)
}

func (m Measurement) appendNDJSON(b []byte) ([]byte, bool) {
	if !m.fastable() {
		return b, false
	}
	ok1, ok2, ok3 := true, true, true
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, m.ID, 10)
	b = append(b, `,"name":"`...)
	b = append(b, m.Name...)
	b = append(b, `","method":"`...)
	b = append(b, m.Method...)
	b = append(b, `","startedAt":`...)
	b, ok1 = appendJSONFloat(b, m.StartedAt)
	b = append(b, `,"endedAt":`...)
	b, ok2 = appendJSONFloat(b, m.EndedAt)
	b = append(b, `,"elapsed":`...)
	b, ok3 = appendJSONFloat(b, m.Elapsed)
	b = append(b, `,"args":`...)
	b = appendCompact(b, rawOr(m.Args, "[]"))
	b = append(b, `,"kwargs":`...)
	b = appendCompact(b, rawOr(m.Kwargs, "{}"))
	b = append(b, `,"context":`...)
	b = appendCompact(b, rawOr(m.Context, "{}"))
	if m.App != "" {
		b = append(b, `,"app":"`...)
		b = append(b, m.App...)
		b = append(b, '"')
	}
	b = append(b, "}\n"...)
	return b, ok1 && ok2 && ok3
}

func (m Measurement) appendCSV(b []byte) ([]byte, bool) {
	if !m.fastable() {
		return b, false
	}
	ok1, ok2, ok3 := true, true, true
	b = strconv.AppendInt(b, m.ID, 10)
	b = append(b, ',')
	b = appendCSVText(b, m.Name)
	b = append(b, ',')
	b = appendCSVText(b, m.Method)
	b = append(b, ',')
	b, ok1 = appendJSONFloat(b, m.StartedAt)
	b = append(b, ',')
	b, ok2 = appendJSONFloat(b, m.EndedAt)
	b = append(b, ',')
	b, ok3 = appendJSONFloat(b, m.Elapsed)
	// The JSON texts are compacted apart, then quoted as one cell each.
	var scratch [512]byte
	for _, j := range [][]byte{rawOr(m.Args, "[]"), rawOr(m.Kwargs, "{}"), rawOr(m.Context, "{}")} {
		b = append(b, ',')
		if c := appendCompact(scratch[:0], j); bytes.IndexByte(c, ';') < 0 {
			b = appendCSVField(b, c)
		} else {
			b = appendCSVText(b, string(c)) // csvText's guard after a ;
		}
	}
	b = append(b, ',')
	b = appendCSVText(b, m.App)
	b = append(b, "\r\n"...)
	return b, ok1 && ok2 && ok3
}
