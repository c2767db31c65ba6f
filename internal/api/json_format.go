package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"sync"

	"github.com/danielgtaylor/huma/v2"
	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// jsonFormat writes every JSON answer (application/json and the +json
// types, problems included) with the same bytes as huma's default format
// (encoding/json with HTML escaping off, a newline after the value), save
// two spellings of the same values (TestJSONFormatDifferences), but
// streamed: encoding/json builds the whole answer in one buffer before
// writing it, and a large answer (a collection's httpUrls of 22,000 entries
// is 3 MB) regrew that buffer from nothing on most calls, the pool that
// keeps it being emptied by the garbage collections the answer itself
// causes. github.com/go-json-experiment/json (already the request decoders'
// tokenizer) encodes with encoding/json's rules under DefaultOptionsV1 and
// hands its buffer to the writer each time it is three quarters full.
// BenchmarkCollectionRead measures it; TestJSONFormatSameBytes checks the
// bytes against encoding/json. An answer is written as it is encoded, so
// a value that cannot be encoded (a NaN) leaves the chunks already written
// before huma's "error marshaling response", where encoding/json left that
// text alone: either way a broken answer, which the handlers prevent
// (finite). writeProblem, for the answers written outside huma, uses it
// too.
//
// Request bodies without a decoder of their own are read by encoding/json,
// as before.
var jsonFormat = huma.Format{Marshal: marshalJSON, Unmarshal: json.Unmarshal}

// jsonOptions: encoding/json's semantics (nil slices as null, its
// omitempty, sorted map keys, U+2028 and U+2029 escaped, invalid UTF-8
// replaced) without its HTML escaping, as huma's encoder is set.
var jsonOptions = jsonv2.JoinOptions(jsonv1.DefaultOptionsV1(), jsontext.EscapeForHTML(false))

// jsonChunk is the size of the writes to the response: the encoder's own
// buffer is a few KiB, and writing each of its flushes to the connection
// as it comes cost a system call per few KiB (in BenchmarkCollectionRead
// more CPU than the buffer it saves).
const jsonChunk = 32 << 10

var jsonWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, jsonChunk) }}

// answerErr is the error of an answer's encoding for huma: none when the
// encoding cut the connection itself (errAnswerCut, collection_stream.go),
// as huma would write its text to the closed connection.
func answerErr(err error) error {
	if errors.Is(err, errAnswerCut) {
		return nil
	}
	return err
}

// jsonStreamer is an answer that writes its own bytes, the same as its
// default encoding's (a collection, collection_stream.go; the running runs,
// events_running.go).
type jsonStreamer interface {
	writeJSON(w *bufio.Writer) error
}

// marshalJSON writes v and a newline to w, through a pooled buffer of
// jsonChunk bytes unless w is a bytes.Buffer already.
func marshalJSON(w io.Writer, v any) error {
	s, stream := v.(jsonStreamer)
	if b, ok := w.(*bytes.Buffer); ok && !stream {
		if err := jsonv2.MarshalWrite(b, v, jsonOptions); err != nil {
			return answerErr(err)
		}
		return b.WriteByte('\n')
	}
	bw := jsonWriters.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Reset(nil) // do not pin the response
		jsonWriters.Put(bw)
	}()
	var err error
	if stream {
		err = s.writeJSON(bw)
	} else {
		err = jsonv2.MarshalWrite(bw, v, jsonOptions)
	}
	if err != nil {
		return answerErr(err)
	}
	if err := bw.WriteByte('\n'); err != nil {
		return err
	}
	return bw.Flush()
}
