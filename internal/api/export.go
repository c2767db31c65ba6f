package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/elnormous/contenttype"
	jsonv2 "github.com/go-json-experiment/json"
)

// Exports: every list operation that answers pages of items (see
// exportRoutes) also answers `Accept: text/csv` and
// `Accept: application/x-ndjson` with every item its filters select, in the
// list's order, streamed from the database row by row (store.Exporter):
// constant memory and no page limit; page and size are ignored. JSON stays
// the default. docs/export.md has the design; in short:
//
//   - negotiate (middleware.go) picks the format from Accept, only on these
//     operations (406 elsewhere), and exportable's handler streams instead
//     of answering a page. huma has validated the input by then, so bad
//     filters are the usual 422s.
//   - Nothing is written before the first row (or the end of an empty
//     export): a failure until then (unknown device, database unavailable,
//     DB_TIMEOUT) is a normal problem+json answer. DB_TIMEOUT bounds the wait
//     for the first row only: an export of millions of rows must not be cut
//     at 10 s.
//   - Once streaming, the status is sent: a database failure then cuts the
//     connection without the chunked encoding's last chunk, so every HTTP
//     client reports a truncated body (curl exits 18; Go's client reads
//     io.ErrUnexpectedEOF); it is logged and counted
//     (telemetry_exports_total{outcome="failed"}).
//   - At most EXPORTS_MAX exports stream at a time per instance: each
//     holds a database connection until its client has read the last row,
//     and slow readers must not take the whole pool. One more is a 503
//     with Retry-After at once (telemetry_exports_total{outcome="busy"}).
//   - The rows go out in chunks of exportBuffer bytes, and at least every
//     exportFlushInterval; each chunk moves the connection's write deadline
//     ahead (http.ResponseController): a client that reads keeps the export
//     going however long it takes, one that stops reading for
//     WRITE_TIMEOUT, or reads slower than EXPORT_MIN_RATE, is cut off
//     (telemetry_exports_total{outcome="too_slow"}), which frees its slot
//     and connection. A client that goes away cancels the query.
//   - A shutdown lets the exports in flight finish, for SHUTDOWN_TIMEOUT;
//     then serve calls Exports.Interrupt, which ends each one before the
//     server closes the connections: cut as a failed one is, or a 503
//     before its first row, and counted as
//     telemetry_exports_total{outcome="interrupted"}, not as a client that
//     went away. A write blocked on a client that does not read is made
//     to fail (its deadline set in the past), and net/http then closes
//     the connection itself: an HTTP/1.1 body still ends without its last
//     chunk, and an HTTP/1.0 one is reset, since its connection resets
//     while the handler runs (resetHTTP10, conn_reset.go).

// Exports are the exports a handler streams, for the shutdown of the
// server that serves it.
type Exports struct {
	stop    context.Context // done once Interrupt is called
	cancel  context.CancelFunc
	running atomic.Int64
}

// NewExports returns the Exports for a Deps.
func NewExports() *Exports {
	e := &Exports{}
	e.stop, e.cancel = context.WithCancel(context.Background())
	return e
}

// Interrupt ends every export still streaming or waiting for its first
// row, and waits until they have ended, or ctx is done. serve calls it once
// SHUTDOWN_TIMEOUT has run out, before it closes the connections.
func (e *Exports) Interrupt(ctx context.Context) {
	e.cancel()
	for e.running.Load() > 0 && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// errInterrupted is why an export that the shutdown ended was cancelled.
var errInterrupted = errors.New("export: interrupted by the server's shutdown")

// exportFormat is one of the two export formats.
type exportFormat struct {
	name        string // metrics label
	mediaType   string // what Accept names
	contentType string // what the answer says
}

var (
	csvExport    = &exportFormat{"csv", "text/csv", "text/csv; charset=utf-8; header=present"}
	ndjsonExport = &exportFormat{"ndjson", "application/x-ndjson", "application/x-ndjson"}
)

// exportKey marks, in an operation's Metadata, the operations that export.
const exportKey = "telemetry-export"

// exportFlushInterval is the longest time rows wait in the buffers.
const exportFlushInterval = time.Second

// exportBuffer is the size of the buffer between the encoders and the
// connection.
const exportBuffer = 32 << 10

func exportsOf(op *huma.Operation) bool {
	return op != nil && op.Metadata[exportKey] == true
}

// exportProduced is what an exporting operation produces; JSON first, so
// that */* and ties choose it. Each with the parameters its answers carry
// or imply (CSV's header row, NDJSON's UTF-8), because an Accept range
// with parameters matches only a type that has them: with text/csv;
// charset=utf-8 alone here, an Accept of the answer's own Content-Type
// (text/csv; charset=utf-8; header=present) was a 406.
var exportProduced = append(append([]contenttype.MediaType{}, produced...),
	contenttype.NewMediaType("text/csv; charset=utf-8; header=present"),
	contenttype.NewMediaType("application/x-ndjson; charset=utf-8"),
)

// chooseFormat is negotiate's choice: ok false for a 406, f nil for JSON.
func chooseFormat(accept string, exports bool) (f *exportFormat, ok bool) {
	if !exports {
		return nil, acceptable(accept)
	}
	if commonAccept(accept) {
		return nil, true
	}
	mt, _, err := contenttype.GetAcceptableMediaTypeFromHeader(accept, exportProduced)
	if err != nil {
		// A malformed header admits anything (see acceptable).
		return nil, !errors.Is(err, contenttype.ErrNoAcceptableTypeFound)
	}
	switch mt.Type + "/" + mt.Subtype {
	case "text/csv":
		return csvExport, true
	case "application/x-ndjson":
		return ndjsonExport, true
	}
	return nil, true
}

// exportable registers a list operation whose handler streams the whole
// list with ex when the client asked for CSV or NDJSON, and answers h's
// page otherwise. ex hands each item to emit, in the list's order, and
// answers a problem for a failure (as h would).
func exportable[I, O, T any](s *server, h func(context.Context, *I) (*O, error),
	ex func(ctx context.Context, in *I, emit func(T) error) error) func(huma.API, huma.Operation) {
	cols := columnsOf(reflect.TypeFor[T]())
	return func(api huma.API, op huma.Operation) {
		op.Metadata = maps.Clone(op.Metadata)
		if op.Metadata == nil {
			op.Metadata = map[string]any{}
		}
		op.Metadata[exportKey] = true
		query := withQueryNames[I](&op)
		huma.Register(api, op, func(ctx context.Context, in *I) (*O, error) {
			if err := query.check(ctx); err != nil {
				return nil, err
			}
			if ri, _ := ctx.Value(requestInfoKey).(*requestInfo); ri != nil && ri.export != nil && ri.w != nil {
				return nil, runExport(ctx, s, ri, cols, func(ctx context.Context, emit func(T) error) error {
					return ex(ctx, in, emit)
				})
			}
			ctx, cancel := withDBDeadline(ctx)
			defer cancel()
			return h(ctx, in)
		})
	}
}

// errHeadAnswered ends the export of a HEAD request at its first row.
var errHeadAnswered = errors.New("HEAD: the headers are written")

// errFirstRow is why an export that waited DB_TIMEOUT for its first row
// was cancelled.
var errFirstRow = errors.New("no row within DB_TIMEOUT")

// runExport streams what run emits in the format negotiate chose. It
// answers an error only before anything was written; afterwards it ends
// the stream itself (see the top of the file) and answers nil, so that
// huma writes nothing more.
func runExport[T any](ctx context.Context, s *server, ri *requestInfo, cols columns,
	run func(context.Context, func(T) error) error) error {
	if s.exportSlots != nil {
		select {
		case s.exportSlots <- struct{}{}:
			defer func() { <-s.exportSlots }()
		default:
			s.prom.Exports.WithLabelValues(ri.export.name, "busy").Inc()
			s.warns.Warn(ctx, "export refused: EXPORTS_MAX exports in progress", "", "request_id", ri.id,
				"exports_max", cap(s.exportSlots))
			return unavailable(fmt.Sprintf("this instance is streaming %d exports already (EXPORTS_MAX); retry later",
				cap(s.exportSlots)))
		}
	}
	s.exports.running.Add(1)
	defer s.exports.running.Add(-1)
	reqCtx := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	w := &exportWriter{s: s, ri: ri, f: ri.export, cols: cols, rc: http.NewResponseController(ri.w)}
	// The shutdown's Interrupt cancels the query, and a write blocked on a
	// client that does not read fails at once.
	interrupted := make(chan struct{})
	unwatch := context.AfterFunc(s.exports.stop, func() {
		defer close(interrupted)
		cancel(errInterrupted)
		w.interrupt()
	})
	defer func() {
		if !unwatch() {
			<-interrupted // w.interrupt is done with the connection
		}
	}()
	var timedOut atomic.Bool
	var timer *time.Timer
	if ri.dbTimeout > 0 {
		timer = time.AfterFunc(ri.dbTimeout, func() {
			timedOut.Store(true)
			cancel(errFirstRow)
		})
	}
	// begin stops the first-row deadline, unless it has fired already.
	begin := func() bool { return timer == nil || timer.Stop() }
	err := run(ctx, func(v T) error {
		if !w.started {
			if !begin() {
				return context.Cause(ctx)
			}
			w.start()
		}
		if ri.head {
			// HEAD asks for the answer's status and headers, known at the
			// first row: the rest would be read, encoded and discarded
			// while holding a connection and an EXPORTS_MAX slot.
			return errHeadAnswered
		}
		return w.row(v)
	})
	if errors.Is(err, errHeadAnswered) {
		err = nil
	}
	if !w.started {
		if w.interrupted.Load() {
			begin()
			s.prom.Exports.WithLabelValues(w.f.name, "interrupted").Inc()
			s.log.InfoContext(ctx, "export interrupted by the shutdown before its first row", "request_id", ri.id)
			return unavailable("this instance is shutting down; retry (another instance may answer)")
		}
		if timedOut.Load() || !begin() {
			s.warns.Warn(ctx, "export: no row within DB_TIMEOUT", "", "request_id", ri.id, "db_timeout", ri.dbTimeout.String())
			return unavailable("the database did not start the export within DB_TIMEOUT; retry later")
		}
		if err != nil {
			if isCanceled(err) {
				// The client went away before the first row; nobody reads this.
				return NewProblem(statusClientGone, "request cancelled")
			}
			return err
		}
		w.start() // an empty export: the CSV header alone
	}
	if err == nil {
		err = w.finish()
	}
	// Every started export's rows, whatever its outcome (written to the
	// connection; a client that went away may not have read them all).
	s.prom.ExportRows.WithLabelValues(w.f.name).Add(float64(w.rows))
	switch {
	case err == nil:
		s.prom.Exports.WithLabelValues(w.f.name, "complete").Inc()
	case w.interrupted.Load():
		// The client may still be reading: its answer must read as cut.
		s.prom.Exports.WithLabelValues(w.f.name, "interrupted").Inc()
		s.log.WarnContext(ctx, "export interrupted by the shutdown", "request_id", ri.id, "rows", w.rows,
			"format", w.f.name)
		cutConnection(w.rc, w.ri.http10)
	case errors.Is(w.writeErr, os.ErrDeadlineExceeded):
		// net/http has closed the connection after the failed write.
		s.prom.Exports.WithLabelValues(w.f.name, "too_slow").Inc()
		s.log.InfoContext(ctx, "export: client too slow, cut", "request_id", ri.id, "rows", w.rows, "format", w.f.name,
			"sent_bytes", w.sent, "export_min_rate", s.cfg.ExportMinRate, "write_timeout", s.cfg.WriteTimeout.String())
	case w.writeErr != nil || reqCtx.Err() != nil:
		// The client went away or stopped reading: nothing to tell it.
		s.prom.Exports.WithLabelValues(w.f.name, "client_gone").Inc()
		s.log.InfoContext(ctx, "export: client went away", "request_id", ri.id, "rows", w.rows,
			"error", fmt.Sprint(errors.Join(w.writeErr, reqCtx.Err())))
	default:
		s.prom.Exports.WithLabelValues(w.f.name, "failed").Inc()
		s.log.ErrorContext(ctx, "export cut short after the first byte", "request_id", ri.id, "rows", w.rows,
			"format", w.f.name, "error", err.Error())
		w.abort()
	}
	return nil
}

// exportWriter writes one export: the status and headers before the first
// row, then each row, flushed at least every exportFlushInterval.
type exportWriter struct {
	s    *server
	ri   *requestInfo
	f    *exportFormat
	cols columns

	rc *http.ResponseController
	// streaming is set once the status is sent, interrupted by
	// Exports.Interrupt (from another goroutine: see interrupt).
	streaming, interrupted atomic.Bool

	started bool
	bw      *bufio.Writer
	// sent counts the bytes handed to the connection; waitBudget is how
	// long the writes may still wait on the client (EXPORT_MIN_RATE, see
	// pace).
	sent       int64
	waitBudget time.Duration
	csv        bool
	record     []string
	lastFlush  time.Time
	rows       int64
	writeErr   error // the first failed write: the client is gone
}

func (w *exportWriter) start() {
	w.started = true
	w.streaming.Store(true)
	body := w.ri.w
	w.waitBudget = rateSlack(w.s.cfg.ExportMinRate)
	w.extendDeadline(0)
	body.Header().Set("Content-Type", w.f.contentType)
	body.Header().Set("Cache-Control", "no-store")
	body.WriteHeader(http.StatusOK)
	w.bw = bufio.NewWriterSize(writerFunc(func(p []byte) (int, error) {
		// Each chunk gets its time to reach the client (pace).
		start := w.extendDeadline(len(p))
		n, err := body.Write(p)
		w.waited(start, n)
		return n, err
	}), exportBuffer)
	w.lastFlush = time.Now()
	if w.f == csvExport {
		w.csv = true
		w.record = make([]string, len(w.cols.names))
		w.setErr(writeCSV(w.bw, w.cols.names))
	}
}

// extendDeadline sets the connection's write deadline for a write of n
// bytes (pace), and answers when it was set, for waited (not supported by
// a test's ResponseRecorder: nothing to extend there).
func (w *exportWriter) extendDeadline(n int) time.Time {
	now := time.Now()
	if d := w.pace(n); d > 0 {
		_ = w.rc.SetWriteDeadline(now.Add(d))
	}
	if w.interrupted.Load() {
		// interrupt ran since: its deadline stands (after ours).
		_ = w.rc.SetWriteDeadline(pastDeadline)
	}
	return now
}

// pace answers how long a write of n bytes may wait on the client: at
// most WRITE_TIMEOUT (a stall), and with EXPORT_MIN_RATE, what is left of
// the export's wait budget. Each byte adds 1/EXPORT_MIN_RATE seconds to
// the budget, and each write takes the time it waited (waited), so the
// client must read at that rate over the time the export waits on it;
// what it is ahead of that rate counts for at most rateSlack, or a client
// that read a gigabyte fast could then crawl for hours. The time the
// export waits for the database is not counted: a slow query is not a
// slow client. (The sockets' buffers take the first megabytes at once,
// and more slack.)
func (w *exportWriter) pace(n int) time.Duration {
	d := w.s.cfg.WriteTimeout
	if rate := w.s.cfg.ExportMinRate; rate > 0 {
		w.waitBudget = min(w.waitBudget, rateSlack(rate)) + time.Duration(float64(n)/float64(rate)*float64(time.Second))
		if d <= 0 || w.waitBudget < d {
			d = max(w.waitBudget, time.Millisecond)
		}
	}
	return d
}

// waited takes the time a write of n bytes, begun at start, waited on the
// client from the wait budget.
func (w *exportWriter) waited(start time.Time, n int) {
	w.sent += int64(n)
	w.waitBudget -= time.Since(start)
}

// rateSlack is how far behind EXPORT_MIN_RATE (rate) an export's client
// may fall: minRateSlack bytes, as for the bodies (BODY_MIN_RATE).
func rateSlack(rate int64) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(float64(minRateSlack) / float64(rate) * float64(time.Second))
}

// interrupt (Exports.Interrupt, on a goroutine of its own) makes the
// export's writes fail at once, a write blocked on its client included.
// Before the first row it leaves the connection alone: the 503 is still
// to be written. Either this or extendDeadline sets the deadline last, and
// whichever does sees interrupted: extendDeadline reads it after its
// own deadline, and interrupt sets it before it reads streaming.
func (w *exportWriter) interrupt() {
	w.interrupted.Store(true)
	if w.streaming.Load() {
		_ = w.rc.SetWriteDeadline(pastDeadline)
	}
}

// pastDeadline is a write deadline that has passed: writes fail at once.
var pastDeadline = time.Unix(1, 0)

func (w *exportWriter) setErr(err error) {
	if err != nil && w.writeErr == nil {
		w.writeErr = err
	}
}

// errClientGone is what emit answers once a write failed. It is a
// context.Canceled, which the stores return as is and storeError answers
// without logging an internal error.
var errClientGone = fmt.Errorf("export: the client stopped reading: %w", context.Canceled)

func (w *exportWriter) row(v any) error {
	if w.writeErr != nil {
		return errClientGone
	}
	if time.Since(w.lastFlush) >= exportFlushInterval {
		w.flush()
	}
	if err := w.encode(v); err != nil {
		return err
	}
	w.rows++
	if w.writeErr != nil {
		return errClientGone
	}
	return nil
}

// encode writes v's row: through its hand-written appender when it has one
// that takes it (export_rows.go), into the buffer's free space, or through
// the JSON encoder with the JSON answers' options (jsonOptions: <, >, &
// written as they are), so that an NDJSON line is the JSON list's item.
func (w *exportWriter) encode(v any) error {
	if ra, ok := v.(rowAppender); ok {
		buf := w.bw.AvailableBuffer()
		var fast bool
		if w.csv {
			buf, fast = ra.appendCSV(buf)
		} else {
			buf, fast = ra.appendNDJSON(buf)
		}
		if fast {
			_, err := w.bw.Write(buf)
			w.setErr(err)
			return nil
		}
	}
	b, err := jsonv2.Marshal(v, jsonOptions) // as the JSON answers write their items
	if err != nil {
		return err
	}
	if w.csv {
		if err := w.cols.split(b, w.record); err != nil {
			return err
		}
		w.setErr(writeCSV(w.bw, w.record))
	} else {
		_, err := w.bw.Write(b)
		w.setErr(err)
		w.setErr(w.bw.WriteByte('\n'))
	}
	return nil
}

// flush sends what the buffers hold.
func (w *exportWriter) flush() {
	w.setErr(w.bw.Flush())
	if w.writeErr == nil {
		start := w.extendDeadline(0)
		w.setErr(w.rc.Flush())
		w.waited(start, 0)
	}
	w.lastFlush = time.Now()
}

// finish sends the rest: the export is complete.
func (w *exportWriter) finish() error {
	w.flush()
	if w.writeErr != nil {
		return errClientGone
	}
	return nil
}

// abort ends an export that failed after its first byte so that the client
// sees a truncated body: the rows written so far are sent, then the
// connection is closed without the chunked encoding's last chunk (HTTP/1.1),
// reset (HTTP/1.0), or the stream reset (HTTP/2, through
// http.ErrAbortHandler).
func (w *exportWriter) abort() {
	w.flush()
	cutConnection(w.rc, w.ri.http10)
}

// cutConnection ends an answer that failed after its status was sent, so
// that the client sees a truncated body: the connection is closed without
// the chunked encoding's last chunk (HTTP/1.1), or the stream reset
// (HTTP/2, or no controller: through http.ErrAbortHandler). Exports, a
// collection's paged answer (collection_stream.go) and isrunning's
// (events_running.go) use it.
//
// An HTTP/1.0 answer has no chunks: its body ends where the connection
// does, so a close would read as a complete answer (curl exited 0 with
// part of an export; nginx talks HTTP/1.0 to its upstreams by default and
// would then end its own answer cleanly). With reset (an HTTP/1.0
// request) the connection is reset instead (SO_LINGER 0): the client reads
// an error (ECONNRESET), not an end, and may lose the bytes still in
// flight, which a failed answer can spare.
func cutConnection(rc *http.ResponseController, reset bool) {
	if rc != nil {
		if conn, _, err := rc.Hijack(); err == nil {
			// Closed under its TLS, if any: a close_notify would end a cut
			// HTTP/1.0 answer as a whole one, and waits for a client that
			// stopped reading.
			conn = rawConn(conn)
			if l, ok := conn.(interface{ SetLinger(int) error }); ok && reset {
				_ = l.SetLinger(0)
			}
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// writeCSV writes one RFC 4180 record ending in CRLF. A field holding a
// comma, a quote, a CR or an LF (or starting with a space) is quoted, its
// quotes doubled; every byte is kept as it is (encoding/csv's writer would
// turn a field's LF into CRLF and drop a lone CR).
func writeCSV(w *bufio.Writer, record []string) error {
	for i, field := range record {
		if i > 0 {
			w.WriteByte(',')
		}
		if field == "" || !(strings.ContainsAny(field, ",\"\r\n") || field[0] == ' ') {
			w.WriteString(field)
			continue
		}
		w.WriteByte('"')
		for {
			j := strings.IndexByte(field, '"')
			if j < 0 {
				break
			}
			w.WriteString(field[:j+1])
			w.WriteByte('"')
			field = field[j+1:]
		}
		w.WriteString(field)
		w.WriteByte('"')
	}
	_, err := w.WriteString("\r\n")
	return err
}

// csvText is the cell of a text value, or of an object's or array's JSON
// text: stored strings come from any client that may write, and analysts
// open these files in spreadsheets (formula injection, =HYPERLINK(...) or
// worse). A spreadsheet runs a cell that starts with =, +, - or @ (or a
// tab or a CR before one) as a formula, so such a cell gets a ' before it,
// which makes the spreadsheet show the text instead.
//
// A spreadsheet does not always split the file where RFC 4180 does: Excel
// opens a .csv with the list separator of the user's locale, which is ;
// wherever the decimal mark is a comma (most of Europe). It then splits
// every line at each ;, and a double quote only quotes when it starts such
// a field, so a line break inside a comma-quoted cell ends the row too.
// Each part of the text that such a split can turn into a cell of its own
// (the text's start, and what follows each ;, LF or CR in it) is guarded
// the same way: when it begins, past any spaces and double quotes (which
// open a quoted field there), with one of those characters, a ' goes at
// its start. So x;=HYPERLINK(...) is x;'=HYPERLINK(...). The comma is not
// among these separators: a spreadsheet that splits at it reads the RFC
// 4180 quotes, which keep the cell whole. Numbers are not text: -2 stays
// -2 (nor do they hold ;). NDJSON keeps every string exactly.
func csvText(s string) string {
	if !formulaAt(s, 0) && !strings.ContainsAny(s, cellBreaks) {
		return s
	}
	var b strings.Builder
	done := 0 // s[:done] is in b
	for i := 0; ; {
		if formulaAt(s, i) {
			b.WriteString(s[done:i])
			b.WriteByte('\'')
			done = i
		}
		j := strings.IndexAny(s[i:], cellBreaks)
		if j < 0 {
			break
		}
		i += j + 1
	}
	if b.Len() == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

// cellBreaks are the bytes at which a spreadsheet may start a new cell
// inside csvText's text: the ; of a locale's list separator, and the line
// breaks once that split has undone the quotes.
const cellBreaks = ";\n\r"

// formulaAt reports whether the part of s that starts at i begins, past
// any spaces and double quotes, with a byte of formulaStart.
func formulaAt(s string, i int) bool {
	for i < len(s) && (s[i] == ' ' || s[i] == '"') {
		i++
	}
	return i < len(s) && formulaStart[s[i]]
}

// formulaStart are the bytes a cell must not start with (OWASP's list for
// CSV injection: the formula characters, and a tab or a CR, which some
// spreadsheets drop before one).
var formulaStart = [256]bool{'=': true, '+': true, '-': true, '@': true, '\t': true, '\r': true}

// columns are the CSV columns of an item type: its JSON fields in order.
type columns struct {
	names []string
	index map[string]int
}

func columnsOf(t reflect.Type) columns {
	c := columns{index: map[string]int{}}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		c.index[name] = len(c.names)
		c.names = append(c.names, name)
	}
	return c
}

// split turns an item's JSON object (as the JSON encoder writes it:
// compact, valid) into its CSV record: a string is its text (csvText), null (or a
// field left out) an empty cell, a number or boolean its JSON text, and an
// object or array (args, kwargs, context) its JSON text (csvText too: its
// strings may hold a ; or a formula after it).
func (c columns) split(b []byte, record []string) error {
	for i := range record {
		record[i] = ""
	}
	i := 1 // past '{'
	for i < len(b) && b[i] != '}' {
		kEnd := stringEnd(b, i)
		vStart := kEnd + 1 // past ':'
		vEnd := valueEnd(b, vStart)
		// (string(...) in the index expression allocates nothing.)
		if col, ok := c.index[string(b[i+1:kEnd-1])]; ok {
			v := b[vStart:vEnd]
			switch v[0] {
			case '"':
				if bytes.IndexByte(v, '\\') < 0 {
					record[col] = csvText(string(v[1 : len(v)-1])) // nothing escaped
					break
				}
				var s string
				if err := json.Unmarshal(v, &s); err != nil {
					return err
				}
				record[col] = csvText(s)
			case 'n':
			case '{', '[':
				record[col] = csvText(string(v))
			default:
				record[col] = string(v)
			}
		}
		i = vEnd
		if i < len(b) && b[i] == ',' {
			i++
		}
	}
	return nil
}

// stringEnd is the index just past the JSON string that starts at b[i].
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// valueEnd is the index just past the JSON value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	}
	for j := i; j < len(b); j++ {
		if b[j] == ',' || b[j] == '}' {
			return j
		}
	}
	return len(b)
}

// documentExport (an OnAddOperation hook) lists the export formats in the
// 200 answer of every exporting operation, and says how they behave.
func documentExport(oapi *huma.OpenAPI, op *huma.Operation) {
	if !exportsOf(op) {
		return
	}
	ok := op.Responses["200"]
	if ok == nil || ok.Content["application/json"] == nil {
		return
	}
	items := oapi.Components.Schemas.SchemaFromRef(ok.Content["application/json"].Schema.Ref)
	var item *huma.Schema
	if items != nil && items.Properties["items"] != nil {
		item = items.Properties["items"].Items
	}
	ok.Content["text/csv"] = &huma.MediaType{Schema: &huma.Schema{Type: "string",
		Description: "Every item the filters select, in the list's order: a header row of the JSON field names (every " +
			"field the item type has; a field an item leaves out is an empty cell), then one row per item (RFC 4180: " +
			"CRLF line ends; a field with a comma, a quote or a line break, or starting with a space, quoted, its " +
			"quotes doubled). A string is its text, except that one starting with =, +, -, @, a tab or a CR gets a ' " +
			"before it, so that a spreadsheet shows it instead of running it as a formula (NDJSON keeps it exact), and " +
			"so does each part of it after a ;, a LF or a CR (a spreadsheet whose locale separates with ; splits " +
			"there), both past any spaces and double quotes; null an empty cell; a number or boolean its JSON text; " +
			"an object or array (args, kwargs, context) its JSON text, with the same ' after a ; in it."}}
	ok.Content["application/x-ndjson"] = &huma.MediaType{Schema: item}
	op.Description += "\n\n**Export**: with `Accept: text/csv` or `Accept: application/x-ndjson` (one JSON item per line, " +
		"the same objects as `items`) the answer is every item the filters select, in the same order, streamed; `page` " +
		"and `size` are ignored. Errors found before the first row are problem+json as usual; a failure after it cuts " +
		"the connection, so the body ends truncated (no final chunk). An instance streams at most `EXPORTS_MAX` " +
		"exports at a time: one more is a 503 with `Retry-After`."
}
