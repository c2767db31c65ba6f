package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
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
		// entries under the race detector on a loaded machine (3 s was
		// not: a CI run beside two other test runs cut the answer read
		// after the lock's release).
		c.DBTimeout = 10 * time.Second
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

// Collection.writeJSON writes the bytes of the collection's default
// encoding (marshalJSON's for a type without writeJSON), on
// random collections: the entries it writes by hand (plain urls and
// methods, every kind of float) and the ones it hands to the encoder
// (escaped characters, invalid UTF-8), a nil and an empty httpUrls.
func TestCollectionWriteJSONBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	texts := []string{"/flows", "/apiv0.1/events/3f2a1c9e-0d4b-4c1a-9a77-1b2c3d4e5f60", "/api/products/<id>", "GET",
		"POST", "", "a,b", `say "hi"`, "tab\there", "é✓", "x&y", "\u2028", "\x00", "bad\xffutf8", "back\\slash", "/sp ace"}
	floats := []float64{0, 1, 0.0123, 5.0827, 1e-7, 1.5e-7, 9.99e-7, 1e-6, 123456.789, 1e20, 1e21, 1.7e308,
		math.MaxFloat64, math.SmallestNonzeroFloat64, 1.0 / 3}
	pick := func(list []string) string { return list[r.IntN(len(list))] }
	for i := range 300 {
		c := Collection{ID: r.Int64N(1 << 40)}
		c.Time.Data.Start, c.Time.Data.End = r.Int64N(1<<42), r.Int64N(1<<42)
		c.Time.Units.Start, c.Time.Units.End = unitEpochMs, unitEpochMs
		c.CPU.Data.SystemMean, c.CPU.Data.ProcessPeak = r.Float64(), floats[r.IntN(len(floats))]
		c.CPU.Units.SystemMean = pick(texts)
		c.GC.Data.GCTime = r.Float64()
		c.Memory.Data.UsedHeapAfterGCPeak = r.Int64N(1 << 33)
		switch i {
		case 0: // Data nil: null
		case 1:
			c.HTTPURLs.Data = []CollectionURL{}
		default:
			c.HTTPURLs.Data = make([]CollectionURL, r.IntN(40))
		}
		for k := range c.HTTPURLs.Data {
			u := CollectionURL{URL: pick(texts[:4]), Method: pick(texts[3:5]), Hits: r.Int64N(1 << 50),
				AverageResponseTime: floats[r.IntN(len(floats))] * r.Float64(), LongestResponseTime: floats[r.IntN(len(floats))]}
			if r.IntN(4) == 0 {
				u.URL, u.Method = pick(texts), pick(texts)
			}
			c.HTTPURLs.Data[k] = u
		}
		c.HTTPURLs.Units.Hits = unitCount
		type defaultCollection Collection // the same fields, without writeJSON
		want, err := jsonv2.Marshal(defaultCollection(c), jsonOptions)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		var got bytes.Buffer
		if err := marshalJSON(&got, c); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("collection %d:\n got %s\nwant %s", i, got.Bytes(), want)
		}
	}
}

// FuzzCollectionURLBytes: any entry is written with the bytes of the
// default encoding, by hand or through the encoder.
func FuzzCollectionURLBytes(f *testing.F) {
	f.Add("/flows", "GET", int64(1), 5.0827, 5.0827)
	f.Add("/api/products/<id>", "POST", int64(1)<<62, 1e-7, 1e21)
	f.Add("/a\"b\\c", "G\x00T", int64(-1), 0.0, math.MaxFloat64)
	f.Add("bad\xffutf8 \u2028", "", int64(0), math.SmallestNonzeroFloat64, 123456.789)
	f.Fuzz(func(t *testing.T, url, method string, hits int64, avg, longest float64) {
		c := Collection{}
		c.HTTPURLs.Data = []CollectionURL{{URL: url, Method: method, Hits: hits,
			AverageResponseTime: finite(avg), LongestResponseTime: finite(longest)}}
		type defaultCollection Collection
		want, err := jsonv2.Marshal(defaultCollection(c), jsonOptions)
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := marshalJSON(&got, c); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), append(want, '\n')) {
			t.Fatalf("got  %s\nwant %s", got.Bytes(), want)
		}
	})
}

// Over HTTP/1.0, whose answer ends where the connection does, a cut
// answer resets the connection (cutConnection's reset, as for an export):
// a plain close reads as a complete body, which here lacks entries.
func TestCollectionAnswerCutOverHTTP10(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.SelfProfile = false })
	uri := createCollection(t, s)
	const entries = 100_000
	fillCollection(t, s, uri, entries, 200)
	path := collectionsURL + "/" + strings.TrimPrefix(uri, "collections/")
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.ProtoMinor != 0 || len(res.TransferEncoding) != 0 || res.ContentLength >= 0 {
		t.Fatalf("%s %d, transfer encoding %v, length %d: want an HTTP/1.0 200 ended by the connection",
			res.Proto, res.StatusCode, res.TransferEncoding, res.ContentLength)
	}
	s.do("DELETE", path, nil).wantStatus(t, http.StatusNoContent)
	n, err := io.Copy(io.Discard, res.Body)
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading the answer after a DELETE: %d bytes, %v; want the connection reset (a clean end reads as complete)", n, err)
	}
}
