package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

// fillCollection writes n entries into collection uri's running totals,
// straight into the table (as n distinct requests would), with paths of
// about pathLen bytes; a few hold characters the encoder escapes.
func fillCollection(t *testing.T, s *testServer, uri string, n, pathLen int) int64 {
	t.Helper()
	id, err := collectionID(strings.TrimPrefix(uri, "collections/"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool.Exec(context.Background(), `INSERT INTO collection_http_totals (collection_id, path, method, hits, sum_elapsed, max_elapsed)
		SELECT $1::bigint, '/' || repeat('p', $3::int) || '/' || g || CASE g % 1000 WHEN 7 THEN E'<&>\u2028"\\' ELSE '' END,
		       CASE g % 3 WHEN 0 THEN 'POST' ELSE 'GET' END, 1 + g % 9, (1 + g % 9) * 0.0123, 0.05 + g % 4
		FROM generate_series(1, $2::int) g`, id, n, pathLen); err != nil {
		t.Fatal(err)
	}
	return id
}

// A collection of more entries than a page is answered whole, in order:
// the same bytes as encoding/json gives for the collection built whole
// from its totals (as the answer was before it was streamed), with the
// same time, CPU and memory figures.
func TestCollectionAnswerPastOnePage(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.SelfProfile = false })
	uri := createCollection(t, s)
	const entries = 2*collectionPage + 345
	id := fillCollection(t, s, uri, entries, 20)
	r := s.do("GET", collectionsURL+"/"+strings.TrimPrefix(uri, "collections/"), nil).wantStatus(t, http.StatusOK)
	var got Collection
	r.decode(t, &got)
	if len(got.HTTPURLs.Data) != entries {
		t.Fatalf("%d entries, want %d", len(got.HTTPURLs.Data), entries)
	}
	urls, err := postgres.New(s.Pool, postgres.Options{}).Collections.HTTPTotals(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	want := got
	want.HTTPURLs.Data = collectionURLs(urls)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Body, b.Bytes()) {
		i := 0
		for i < min(len(r.Body), b.Len()) && r.Body[i] == b.Bytes()[i] {
			i++
		}
		t.Fatalf("the answer (%d bytes) differs from the collection built whole (%d bytes) at byte %d: %q, want %q",
			len(r.Body), b.Len(), i, r.Body[max(0, i-40):min(len(r.Body), i+40)], b.Bytes()[max(0, i-40):min(b.Len(), i+40)])
	}
	if !strings.Contains(string(r.Body), `<&>\u2028\"\\`) {
		t.Fatal("the escaped path is not in the answer")
	}
}

// A page that fails after the answer's first byte (here: it waits on a
// lock past DB_TIMEOUT) cuts the connection: the client reads a truncated
// body, never a complete answer missing entries; the service then answers
// the collection whole again.
func TestCollectionAnswerCutWhenAPageFails(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) {
		c.SelfProfile = false
		// Short enough for the test, long enough for a page of 10,000
		// entries under the race detector.
		c.DBTimeout = 3 * time.Second
	})
	uri := createCollection(t, s)
	// About 25 MB of answer: far more than the sockets' buffers hold, so
	// the service is still writing early pages when the lock is taken.
	const entries = 100_000
	fillCollection(t, s, uri, entries, 200)
	path := collectionsURL + "/" + strings.TrimPrefix(uri, "collections/")
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	release := s.lockTable(t, "collection_http_totals")
	n, err := io.Copy(io.Discard, bufio.NewReader(res.Body))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("reading the answer: %d bytes, %v; want io.ErrUnexpectedEOF (a truncated body)", n, err)
	}
	if n < collectionPage*200 || n > entries*200 {
		t.Fatalf("the cut answer has %d bytes: want more than the first page's, less than the whole", n)
	}
	release()
	waitIdle(t, s)
	var c Collection
	s.do("GET", path, nil).wantStatus(t, http.StatusOK).decode(t, &c)
	if len(c.HTTPURLs.Data) != entries {
		t.Fatalf("after the lock: %d entries, want %d", len(c.HTTPURLs.Data), entries)
	}
}

// A clear or a delete of the collection while its answer is written (its
// later pages from another window, or none) cuts the answer too.
func TestCollectionAnswerCutWhenChangedMidway(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.SelfProfile = false })
	for _, change := range []string{"PUT", "DELETE"} {
		t.Run(change, func(t *testing.T) {
			uri := createCollection(t, s)
			const entries = 100_000
			fillCollection(t, s, uri, entries, 200)
			path := collectionsURL + "/" + strings.TrimPrefix(uri, "collections/")
			res, err := http.Get(s.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			s.do(change, path, nil).wantStatus(t, http.StatusNoContent)
			n, err := io.Copy(io.Discard, res.Body)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("reading the answer after a %s: %d bytes, %v; want io.ErrUnexpectedEOF (a truncated body)", change, n, err)
			}
			if change == "PUT" {
				var c Collection
				s.do("GET", path, nil).wantStatus(t, http.StatusOK).decode(t, &c)
				if len(c.HTTPURLs.Data) != 0 {
					t.Fatalf("after the clear: %d entries, want none", len(c.HTTPURLs.Data))
				}
				s.do("DELETE", path, nil).wantStatus(t, http.StatusNoContent)
			}
		})
	}
}
