package api

import (
	"bufio"
	"context"
	"log/slog"

	"github.com/danielgtaylor/huma/v2"
	jsonv2 "github.com/go-json-experiment/json"
)

// GET /apiv0.1/events/isrunning answers one key per run not yet committed,
// and runs that are never committed (a crashed Locust client, anyone
// registering: a write needs no token by default) stay running until the
// events' retention expires them, never under the default
// EVENTS_RETENTION=0. The answer was read and built whole: 200,000 running
// runs were a 12 MB answer and about 132 MB allocated by one request, more
// than GOMEMLIMIT. So it is read in pages of runningPage, in the order of
// its keys (store.EventStore.RunningKeys: a range of an index of the running
// runs by key, migration 00052), and each page written as it comes, as a
// collection's httpUrls are (collection_stream.go): its memory is a page and
// the encoder's chunk, whatever the number of running runs. docs/events.md,
// "Running runs", has the contract; in short:
//
//   - The handler reads the first page. Fewer running runs than a page (the
//     usual case) are answered as before, and a failure of that read is the
//     usual problem+json answer.
//   - Past the first page, RunningRuns.writeJSON reads each next page while
//     the answer is encoded, each read with a DB_TIMEOUT of its own: the
//     answer is not one snapshot (a run registered or committed meanwhile
//     may be in it or not), but no key is written twice, and the keys are in
//     the order the encoder gave them (sorted by their bytes).
//   - A failure of a later page comes after the status was sent: the
//     connection is cut, so the client reads a truncated body, never a
//     complete one that misses runs.
//   - A HEAD request stops after the first page: the rest would be read and
//     discarded.

// runningPage is how many running runs are read at a time (about 500 KB of
// answer at the Locust client's host names).
const runningPage = 10000

// RunningRuns is the isrunning answer: {"<host>-<uuid>": true, ...}, the
// keys of the first page of the running runs and the means to read the
// others.
type RunningRuns struct {
	first []string
	rest  *runningRest // nil when first is all there is to write
}

// Schema implements huma.SchemaProvider: the schema of the
// map[string]bool the answer was built as (the document is unchanged).
func (RunningRuns) Schema(huma.Registry) *huma.Schema {
	return &huma.Schema{Type: huma.TypeObject, AdditionalProperties: &huma.Schema{Type: huma.TypeBoolean}}
}

// runningRest reads the pages of the running runs after the first.
type runningRest struct {
	s   *server
	ctx context.Context // the request's values, without the handler's deadline
}

func (s *server) runningRest(ctx context.Context) *runningRest {
	// The handler's context ends when it returns, before huma encodes the
	// answer: the pages take the request's values (its DB_TIMEOUT) without
	// its cancellation. A client that goes away fails the next write,
	// which ends the encoding.
	return &runningRest{s: s, ctx: context.WithoutCancel(ctx)}
}

// next reads the page after the key after.
func (r *runningRest) next(after string) ([]string, error) {
	ctx, cancel := withDBDeadline(r.ctx)
	defer cancel()
	return r.s.st.Events.RunningKeys(ctx, after, runningPage)
}

// cut ends an answer whose page after runs failed: logged, then the
// connection cut (cutConnection).
func (r *runningRest) cut(runs int, err error) {
	r.s.log.Log(r.ctx, slog.LevelError, "isrunning answer cut short after the first byte", "request_id", RequestID(r.ctx),
		"runs", runs, "error", err.Error())
	cutAnswer(r.ctx)
}

// writeJSON writes the object with the bytes the encoder (jsonOptions) gave
// the map[string]bool it was built as, every page of it
// (TestRunningRunsWriteJSONBytes): the keys in the store's order, which is
// the encoder's (sorted by their bytes), each written as it is when it is
// plain (printable ASCII without a quote or a backslash: the uuid always
// is), by the encoder otherwise.
func (a RunningRuns) writeJSON(w *bufio.Writer) error {
	w.WriteByte('{')
	runs := 0
	page := a.first
	for {
		for i := range page {
			if runs+i > 0 {
				w.WriteByte(',')
			}
			if plain(page[i]) {
				w.WriteByte('"')
				w.WriteString(page[i])
				w.WriteByte('"')
			} else if err := jsonv2.MarshalWrite(w, page[i], jsonOptions); err != nil {
				return err
			}
			w.WriteString(":true")
		}
		runs += len(page)
		// A client gone away failed a write of this page: the writer
		// keeps that error, and no further page is read for it.
		if _, err := w.Write(nil); err != nil {
			return err
		}
		if a.rest == nil || len(page) < runningPage {
			break
		}
		next, err := a.rest.next(page[len(page)-1])
		if err != nil {
			a.rest.cut(runs, err)
			return errAnswerCut
		}
		page = next
	}
	_, err := w.WriteString("}")
	return err
}
