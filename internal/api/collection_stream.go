package api

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	jsonv2 "github.com/go-json-experiment/json"

	"github.com/telemetry/telemetry/internal/store"
)

// A collection's httpUrls has one entry per raw path its window saw (the
// seed's shape): a collection left open on a busy instance whose paths
// carry ids grows without bound, and an answer built whole held every
// entry in memory twice (the rows, then the answer's structs) before the
// first byte went out. So GET collections/{id} reads the entries in pages
// of collectionPage from the running totals, in the answer's order (a range
// of the primary key each, store.CollectionStore.HTTPTotalsPage), and
// writes each page as it comes: its memory is one page and the encoder's
// chunk, whatever the collection's size. docs/collections.md, "Large
// collections", has the contract; in short:
//
//   - The handler reads the first page with the window and the runtime
//     figures. A collection of fewer entries than a page (the usual case)
//     is answered exactly as before, and a failure of any of these reads is
//     the usual problem+json answer.
//   - Past the first page, Collection.writeJSON reads each next
//     page while the answer is encoded (jsonFormat streams it), each read
//     with a DB_TIMEOUT of its own: the answer is not one snapshot, and an
//     entry of a later page may count requests served after time.end.
//   - After the last page, the collection must still have the window the
//     answer began with: a clear or a delete meanwhile (the later pages
//     from another window, or none) fails the answer.
//   - A failure of a later page comes after the status was sent: the
//     connection is cut (as a failed export is, export.go), so the client
//     reads a truncated body, never a complete one that misses entries.

// collectionPage is how many entries of a collection's httpUrls are read
// at a time (2-3 MB of answer at the 30-minute mixed load's paths).
const collectionPage = 10000

// errAnswerCut is what Collection.writeJSON answers after it cut
// the connection: marshalJSON then stops without writing more.
var errAnswerCut = errors.New("answer cut short: the connection was closed")

// collectionRest reads the pages of a collection's httpUrls after the
// first.
type collectionRest struct {
	s     *server
	ctx   context.Context // the request's values, without the handler's deadline
	w     store.CollectionWindow
	after store.CollectionURL
}

func (s *server) collectionRest(ctx context.Context, w store.CollectionWindow, after store.CollectionURL) *collectionRest {
	// The handler's context ends when it returns, before huma encodes the
	// answer: the pages take the request's values (its DB_TIMEOUT) without
	// its cancellation. A client that goes away fails the next write,
	// which ends the encoding.
	return &collectionRest{s: s, ctx: context.WithoutCancel(ctx), w: w, after: after}
}

// next reads the page after r.after.
func (r *collectionRest) next() ([]store.CollectionURL, error) {
	ctx, cancel := withDBDeadline(r.ctx)
	defer cancel()
	return r.s.st.Collections.HTTPTotalsPage(ctx, r.w.ID, &r.after, collectionPage)
}

// errWindowChanged: the collection was cleared or deleted while its answer
// was written, so its pages may come from two windows, or stop early.
var errWindowChanged = errors.New("the collection was cleared or deleted while its answer was written")

// unchanged checks, after the last page, that the collection still has the
// window the answer began with.
func (r *collectionRest) unchanged() error {
	ctx, cancel := withDBDeadline(r.ctx)
	defer cancel()
	w, err := r.s.st.Collections.Window(ctx, r.w.ID)
	if errors.Is(err, store.ErrNotFound) || err == nil && !w.Start.Equal(r.w.Start) {
		return errWindowChanged
	}
	return err
}

// writeJSON writes the collection with the bytes of its default encoding
// (jsonOptions; TestCollectionWriteJSONBytes), the entries of httpUrls by
// hand and page by page, reading the pages after the first as it goes
// (marshalJSON calls it for every collection answer). An answer has one
// entry per raw path, 22,000 after the 30-minute mixed load, and the
// reflective encoder spent about 0.7 µs of CPU on each, three times what
// appendJSON takes (CPU profiles of BenchmarkCollectionRead); the few
// other fields take the encoder.
func (c Collection) writeJSON(w *bufio.Writer) error {
	enc := func(name string, v any) error {
		w.WriteString(name)
		return jsonv2.MarshalWrite(w, v, jsonOptions)
	}
	w.WriteString(`{"id":`)
	w.Write(strconv.AppendInt(w.AvailableBuffer(), c.ID, 10))
	for _, f := range []struct {
		name string
		v    any
	}{{`,"time":`, &c.Time}, {`,"cpu":`, &c.CPU}, {`,"gc":`, &c.GC}, {`,"memory":`, &c.Memory}} {
		if err := enc(f.name, f.v); err != nil {
			return err
		}
	}
	if err := c.HTTPURLs.writeData(w); err != nil {
		return err
	}
	if err := enc(`,"units":`, &c.HTTPURLs.Units); err != nil {
		return err
	}
	_, err := w.WriteString("}}")
	return err
}

// writeData writes `,"httpUrls":{"data":` and the entries, every page of
// them.
func (h *CollectionHTTP) writeData(w *bufio.Writer) error {
	w.WriteString(`,"httpUrls":{"data":`)
	if h.Data == nil {
		_, err := w.WriteString("null")
		return err
	}
	w.WriteByte('[')
	entries := 0
	page := h.Data
	for {
		for i := range page {
			if entries+i > 0 {
				w.WriteByte(',')
			}
			if b, ok := page[i].appendJSON(w.AvailableBuffer()); ok {
				w.Write(b)
			} else if err := jsonv2.MarshalWrite(w, &page[i], jsonOptions); err != nil {
				return err
			}
		}
		entries += len(page)
		// A client gone away failed a write of this page: the writer
		// keeps that error, and no further page is read for it.
		if _, err := w.Write(nil); err != nil {
			return err
		}
		if h.rest == nil {
			break
		}
		if len(page) < collectionPage {
			if err := h.rest.unchanged(); err != nil {
				h.rest.cut(entries, err)
				return errAnswerCut
			}
			break
		}
		urls, err := h.rest.next()
		if err != nil {
			h.rest.cut(entries, err)
			return errAnswerCut
		}
		if len(urls) > 0 {
			h.rest.after = urls[len(urls)-1]
		}
		page = collectionURLs(urls)
	}
	_, err := w.WriteString("]")
	return err
}

// appendJSON appends the entry as the default encoding writes it, when
// every byte of it is one it writes exactly: a printable ASCII url and
// method without a quote or backslash, finite figures (export_rows.go has
// the same rules). It answers ok false for the others, which the encoder
// writes.
func (u *CollectionURL) appendJSON(b []byte) ([]byte, bool) {
	if !plain(u.URL) || !plain(u.Method) {
		return b, false
	}
	b = append(b, `{"url":"`...)
	b = append(b, u.URL...)
	b = append(b, `","method":"`...)
	b = append(b, u.Method...)
	b = append(b, `","hits":`...)
	b = strconv.AppendInt(b, u.Hits, 10)
	b = append(b, `,"averageResponseTime":`...)
	b, ok1 := appendJSONFloat(b, u.AverageResponseTime)
	b = append(b, `,"longestResponseTime":`...)
	b, ok2 := appendJSONFloat(b, u.LongestResponseTime)
	return append(b, '}'), ok1 && ok2
}

// cut ends an answer whose page after entries failed: logged, then the
// connection cut (cutConnection).
func (r *collectionRest) cut(entries int, err error) {
	level := slog.LevelError
	if errors.Is(err, errWindowChanged) {
		level = slog.LevelWarn // another client's doing
	}
	r.s.log.Log(r.ctx, level, "collection answer cut short after the first byte", "request_id", RequestID(r.ctx),
		"collection", r.w.ID, "entries", entries, "error", err.Error())
	cutAnswer(r.ctx)
}

// cutAnswer cuts the connection of the request of ctx, whose answer has
// begun (cutConnection: reset over HTTP/1.0, closed otherwise).
func cutAnswer(ctx context.Context) {
	var rc *http.ResponseController
	reset := false
	if ri, _ := ctx.Value(requestInfoKey).(*requestInfo); ri != nil && ri.w != nil {
		rc, reset = http.NewResponseController(ri.w), ri.http10
	}
	cutConnection(rc, reset)
}
