package api

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/store"
)

// idemCase is one endpoint that takes an Idempotency-Key.
type idemCase struct {
	name, method, path string
	status             int
	// repeatable: without a key, the same request may be sent twice (a run
	// is committed once: the second commit is a 409).
	repeatable bool
	// prepare readies the server (the device metrics need a device).
	prepare func(t *testing.T, s *testServer)
	// body is a valid request body, a different one for each i (for
	// commit: of a run it registers).
	body func(t *testing.T, s *testServer, i int) string
	// written counts what the endpoint has stored.
	written string
	// bodyless: the operation takes no body, so a repeat with another one
	// is the same request.
	bodyless bool
}

func idemCases() []idemCase {
	return []idemCase{
		{name: "flows", method: "POST", path: "/flows", status: http.StatusCreated, repeatable: true,
			body: func(_ *testing.T, _ *testServer, i int) string {
				return fmt.Sprintf(`[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":%d,"bytes_rx":1,"hour":7}]`, i+1)
			},
			// Flows are summed into one row: each post adds 1 to bytes_rx.
			written: `SELECT coalesce(sum(bytes_rx), 0) FROM flows`},
		{name: "measurements", method: "POST", path: "/api/measurements", status: http.StatusCreated, repeatable: true,
			body: func(_ *testing.T, _ *testServer, i int) string {
				return fmt.Sprintf(`[{"name":"/p%d","method":"GET","startedAt":1700000000,"endedAt":1700000001},`+
					`{"name":"/q","method":"PUT","startedAt":1700000002,"endedAt":1700000003}]`, i)
			},
			// Two records a body: count the second's.
			written: `SELECT count(*) FROM measurements WHERE name = '/q'`},
		{name: "register", method: "POST", path: "/apiv0.1/events/register", status: http.StatusOK, repeatable: true,
			body: func(_ *testing.T, _ *testServer, i int) string {
				return strings.Replace(eventsSeedRegister, "loadgen-doc", fmt.Sprintf("loadgen-%d", i), 1)
			},
			written: `SELECT count(*) FROM event_runs`},
		{name: "commit", method: "POST", path: "/apiv0.1/events/commit", status: http.StatusOK,
			body: func(t *testing.T, s *testServer, _ int) string {
				return fmt.Sprintf(eventsSeedCommit, s.eventsRegister(t, eventsSeedRegister))
			},
			written: `SELECT count(*) FROM events WHERE kind = 'commit'`},
		{name: "devices", method: "PUT", path: "/mrd/d1/metrics", status: http.StatusOK, repeatable: true,
			prepare: func(t *testing.T, s *testServer) { s.createDevice(t, "d1") },
			body: func(_ *testing.T, _ *testServer, i int) string {
				return fmt.Sprintf(`{"name":"m","value":%d,"units":"u","type":"int32","slope":"both","ttl":60}`, i)
			},
			written: `SELECT count(*) FROM device_metrics`},
		{name: "collections", method: "POST", path: "/appmetrics/api/v1/collections", status: http.StatusCreated,
			repeatable: true, bodyless: true,
			body:    func(*testing.T, *testServer, int) string { return "" },
			written: `SELECT count(*) FROM collections`},
	}
}

func (c idemCase) count(t *testing.T, s *testServer) int64 {
	t.Helper()
	var n int64
	if err := s.Pool.QueryRow(context.Background(), c.written).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// send is c's request with body, the key (none when "") and a token.
func (c idemCase) send(t *testing.T, s *testServer, body, key string) response {
	t.Helper()
	h := bearer(t)
	if key != "" {
		h = append(h, IdempotencyKeyHeader, key)
	}
	return s.do(c.method, c.path, body, h...)
}

func countKeys(t *testing.T, s *testServer) int64 {
	t.Helper()
	var n int64
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM idempotency_keys`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// On each endpoint: the same key twice gets the same status and body, the
// second marked replayed, and is written once; the same key with another
// body is a 422 that writes nothing; without a key nothing changes.
func TestIdempotencyKeyReplays(t *testing.T) {
	t.Parallel()
	for _, c := range idemCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newDevicesServer(t)
			if c.prepare != nil {
				c.prepare(t, s)
			}
			body := c.body(t, s, 0)
			before := c.count(t, s)
			first := c.send(t, s, body, "key-1").wantStatus(t, c.status)
			if first.Header.Get(ReplayedHeader) != "" {
				t.Fatalf("first answer marked replayed")
			}
			second := c.send(t, s, body, "key-1").wantStatus(t, c.status)
			if !bytes.Equal(first.Body, second.Body) || second.Header.Get(ReplayedHeader) != "true" {
				t.Fatalf("repeat answered %s (replayed %q), first %s", second.Body, second.Header.Get(ReplayedHeader), first.Body)
			}
			if ct := second.Header.Get("Content-Type"); ct != first.Header.Get("Content-Type") {
				t.Fatalf("repeat Content-Type %q, first %q", ct, first.Header.Get("Content-Type"))
			}
			if got := c.count(t, s); got != before+1 {
				t.Fatalf("written %d times, want once", got-before)
			}

			other := c.body(t, s, 1)
			before = c.count(t, s)
			if !c.bodyless {
				p := c.send(t, s, other, "key-1").problem(t, http.StatusUnprocessableEntity)
				if !p.hasError("header."+IdempotencyKeyHeader, "idempotency") || p.Errors[0].Source != IdempotencyKeyHeader ||
					!strings.Contains(p.Errors[0].Detail, "(the same operation with another body)") {
					t.Fatalf("mismatch problem %+v", p.Errors)
				}
			}
			// On another operation, the key's own is named.
			cross := s.do("POST", "/flows", `[]`, IdempotencyKeyHeader, "key-1").problem(t, http.StatusUnprocessableEntity)
			if c.path != "/flows" && !strings.Contains(cross.Errors[0].Detail, "("+c.method+" "+c.path+")") {
				t.Fatalf("another operation's key: %+v", cross.Errors)
			}
			if got := c.count(t, s); got != before {
				t.Fatalf("a refused repeat wrote %d", got-before)
			}

			// Without a key, as before: every request is a write.
			plain := c.body(t, s, 2)
			before = c.count(t, s)
			c.send(t, s, plain, "").wantStatus(t, c.status)
			again := c.send(t, s, plain, "")
			want := before + 2
			if !c.repeatable {
				again.problem(t, http.StatusConflict)
				want = before + 1
			} else {
				again.wantStatus(t, c.status)
			}
			if again.Header.Get(ReplayedHeader) != "" || c.count(t, s) != want {
				t.Fatalf("without a key: %d written, want %d", c.count(t, s)-before, want-before)
			}
			if n := countKeys(t, s); n != 1 {
				t.Fatalf("%d keys recorded, want 1", n)
			}
		})
	}
}

// Repeats sent at the same time (the client retried before the first
// answer came): each key is written once, and every request with it gets
// the same answer, all but one marked replayed.
func TestIdempotencyKeyConcurrentRepeats(t *testing.T) {
	t.Parallel()
	const keys, senders = 3, 4
	for _, c := range idemCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newDevicesServer(t)
			if c.prepare != nil {
				c.prepare(t, s)
			}
			bodies := make([]string, keys)
			for k := range bodies {
				bodies[k] = c.body(t, s, k)
			}
			before := c.count(t, s)
			answers := make([][]response, keys)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for k := range keys {
				answers[k] = make([]response, senders)
				for i := range senders {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						answers[k][i] = c.send(t, s, bodies[k], fmt.Sprintf("concurrent-%d", k))
					}()
				}
			}
			close(start)
			wg.Wait()
			for k, rs := range answers {
				fresh := 0
				for _, r := range rs {
					if r.Status != c.status || !bytes.Equal(r.Body, rs[0].Body) {
						t.Fatalf("key %d: answers differ: %d %s and %d %s", k, r.Status, r.Body, rs[0].Status, rs[0].Body)
					}
					if r.Header.Get(ReplayedHeader) == "" {
						fresh++
					}
				}
				if fresh != 1 {
					t.Fatalf("key %d: %d answers not replayed, want 1", k, fresh)
				}
			}
			if got := c.count(t, s); got != before+keys {
				t.Fatalf("written %d times for %d keys", got-before, keys)
			}
		})
	}
}

// The answer is recorded in the write's transaction: when the connection
// is lost once the COMMIT committed, before the client reads that it did,
// the client gets a 503 although the write is stored; its retry with the same key gets the stored answer
// and writes nothing.
func TestIdempotencyKeyAfterLostCommit(t *testing.T) {
	t.Parallel()
	for _, c := range idemCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, proxy := newProxiedServer(t)
			if c.prepare != nil {
				c.prepare(t, s)
			}
			body := c.body(t, s, 0)
			before := c.count(t, s)
			proxy.cutAtReply(pgCommitted)
			r := c.send(t, s, body, "lost-commit")
			r.problem(t, http.StatusServiceUnavailable)
			if got := c.count(t, s); got != before+1 {
				t.Fatalf("the cut commit left %d writes, want 1 (did the cut happen after the COMMIT?)", got-before)
			}
			retry := c.send(t, s, body, "lost-commit").wantStatus(t, c.status)
			if retry.Header.Get(ReplayedHeader) != "true" {
				t.Fatalf("the retry was not answered from the record: %s", retry.Body)
			}
			if got := c.count(t, s); got != before+1 {
				t.Fatalf("the retry wrote again: %d writes", got-before)
			}
		})
	}
}

// The header is checked: 1 to 255 printable ASCII characters, once, bare or
// quoted; otherwise a 422 naming it, and nothing is written.
func TestIdempotencyKeyValidation(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	body := `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":7}]`
	post := func(values ...string) response {
		req, err := http.NewRequest("POST", s.URL+"/flows", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for _, v := range values {
			req.Header.Add(IdempotencyKeyHeader, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return response{Status: res.StatusCode, Header: res.Header, Body: b}
	}
	for _, c := range []struct {
		name   string
		values []string
		rule   string
	}{
		{"empty", []string{""}, "min"},
		{"empty quoted", []string{`""`}, "min"},
		{"too long", []string{strings.Repeat("k", 256)}, "max"},
		{"not ASCII", []string{"clé"}, "pattern"},
		{"a tab", []string{"a\tb"}, "pattern"},
		{"bad quoting", []string{`"open`}, "format"},
		{"bad escape", []string{`"a\nb"`}, "format"},
		{"twice", []string{"a", "b"}, "single"},
	} {
		p := post(c.values...).problem(t, http.StatusUnprocessableEntity)
		if !p.hasError("header."+IdempotencyKeyHeader, c.rule) || p.Errors[0].Source != IdempotencyKeyHeader {
			t.Errorf("%s: %+v, want rule %s on the header", c.name, p.Errors[0], c.rule)
		}
	}
	var n int64
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM flows`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("refused requests wrote %d flows (%v)", n, err)
	}
	post(strings.Repeat("k", 255)).wantStatus(t, http.StatusCreated)
	post(" with spaces ~!@ ").wantStatus(t, http.StatusCreated)
	// A structured-field string names the same key as its content.
	post(`quoted "key"`).wantStatus(t, http.StatusCreated)
	if r := post(`"quoted \"key\""`).wantStatus(t, http.StatusCreated); r.Header.Get(ReplayedHeader) != "true" {
		t.Fatal(`"quoted \"key\"" is not the key quoted "key"`)
	}
}

// A key names one request: the same key on another endpoint, or another
// device's path, is a 422.
func TestIdempotencyKeyIsOneRequest(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "d1")
	s.createDevice(t, "d2")
	s.do("POST", "/flows", `[]`, IdempotencyKeyHeader, "shared").wantStatus(t, http.StatusCreated)
	p := s.do("POST", "/api/measurements", `[]`, IdempotencyKeyHeader, "shared").problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("header."+IdempotencyKeyHeader, "idempotency") || !strings.Contains(p.Errors[0].Detail, "POST /flows") {
		t.Fatalf("%+v", p.Errors)
	}
	metric := `{"name":"m","value":1,"units":"u","type":"int32","slope":"both","ttl":60}`
	s.do("PUT", "/mrd/d1/metrics", metric, append(bearer(t), IdempotencyKeyHeader, "metric")...).wantStatus(t, http.StatusOK)
	s.do("PUT", "/mrd/d2/metrics", metric, append(bearer(t), IdempotencyKeyHeader, "metric")...).
		problem(t, http.StatusUnprocessableEntity)
	// An empty batch with a key is recorded too.
	if r := s.do("POST", "/flows", `[]`, IdempotencyKeyHeader, "shared").wantStatus(t, http.StatusCreated); r.Header.Get(ReplayedHeader) != "true" {
		t.Fatal("the empty batch's answer was not recorded")
	}
}

// Error answers are not recorded: after a 404 the same request with the
// same key, once the device exists, is written.
func TestIdempotencyKeyErrorsNotRecorded(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	metric := `{"name":"m","value":1,"units":"u","type":"int32","slope":"both","ttl":60}`
	h := append(bearer(t), IdempotencyKeyHeader, "retry-me")
	s.do("PUT", "/mrd/late/metrics", metric, h...).problem(t, http.StatusNotFound)
	s.do("POST", "/apiv0.1/events/commit", fmt.Sprintf(eventsSeedCommit, "0b6b2a1e-3f4c-4d5e-8f90-1a2b3c4d5e6f"),
		IdempotencyKeyHeader, "commit-unknown").problem(t, http.StatusNotFound)
	if n := countKeys(t, s); n != 0 {
		t.Fatalf("%d keys recorded for error answers", n)
	}
	s.createDevice(t, "late")
	r := s.do("PUT", "/mrd/late/metrics", metric, h...).wantStatus(t, http.StatusOK)
	if r.Header.Get(ReplayedHeader) != "" {
		t.Fatal("the 404 was recorded")
	}
	if r := s.do("PUT", "/mrd/late/metrics", metric, h...).wantStatus(t, http.StatusOK); r.Header.Get(ReplayedHeader) != "true" {
		t.Fatal("the 200 was not recorded")
	}
	var n int64
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM device_metrics`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows (%v), want 1", n, err)
	}
}

// A key is kept IDEMPOTENCY_TTL: once expired, the same request is a new
// write, and expired keys are deleted as keyed requests come.
func TestIdempotencyKeyExpiry(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.IdempotencyTTL = time.Hour })
	ctx := context.Background()
	body := `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":7}]`
	s.do("POST", "/flows", body, IdempotencyKeyHeader, "k").wantStatus(t, http.StatusCreated)
	var ttl time.Duration
	if err := s.Pool.QueryRow(ctx, `SELECT extract(epoch FROM expires_at - created_at)::bigint * 1000000000 FROM idempotency_keys`).Scan(&ttl); err != nil || ttl != time.Hour {
		t.Fatalf("kept %v (%v), want IDEMPOTENCY_TTL 1h", ttl, err)
	}
	// Age it past its TTL, and add expired keys of other requests.
	if _, err := s.Pool.Exec(ctx, `UPDATE idempotency_keys SET created_at = now() - interval '2 hours', expires_at = now() - interval '1 hour'`); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool.Exec(ctx, `INSERT INTO idempotency_keys (key, endpoint, request_hash, status, body, created_at, expires_at)
		SELECT 'old-' || i, 'POST /flows', sha256('x'::bytea), 201, '{}', now() - interval '2 days', now() - interval '1 day'
		FROM generate_series(1, 12) i`); err != nil {
		t.Fatal(err)
	}
	r := s.do("POST", "/flows", body, IdempotencyKeyHeader, "k").wantStatus(t, http.StatusCreated)
	if r.Header.Get(ReplayedHeader) != "" {
		t.Fatal("an expired key was replayed")
	}
	var sum, live, expired int64
	if err := s.Pool.QueryRow(ctx, `SELECT sum(bytes_rx) FROM flows`).Scan(&sum); err != nil || sum != 2 {
		t.Fatalf("bytes_rx %d (%v): the expired key's request was not written again", sum, err)
	}
	if err := s.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE expires_at > now()), count(*) FILTER (WHERE expires_at <= now())
		FROM idempotency_keys`).Scan(&live, &expired); err != nil {
		t.Fatal(err)
	}
	if live != 1 || expired > 3 {
		t.Fatalf("%d live keys (want 1: k renewed), %d expired left of 13 (each keyed request deletes up to 10)", live, expired)
	}
	if r := s.do("POST", "/flows", body, IdempotencyKeyHeader, "k").wantStatus(t, http.StatusCreated); r.Header.Get(ReplayedHeader) != "true" {
		t.Fatal("the renewed key was not replayed")
	}
}

// The document shows the header on exactly the operations that take it,
// and the replay marker on their success answers.
func TestIdempotencyKeyDocumented(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for path, item := range Spec().Paths {
		for _, op := range []*huma.Operation{item.Get, item.Post, item.Put, item.Delete} {
			if op == nil {
				continue
			}
			has := false
			for _, p := range op.Parameters {
				if p.Name == IdempotencyKeyHeader && p.In == "header" && !p.Required && p.Schema.MaxLength != nil && *p.Schema.MaxLength == 255 {
					has = true
				}
			}
			if has != idempotentOperations[op.OperationID] {
				t.Errorf("%s %s: documents Idempotency-Key %v", op.OperationID, path, has)
			}
			if !has {
				continue
			}
			seen[op.OperationID] = true
			ok := false
			for code, r := range op.Responses {
				if code[0] == '2' && r.Headers[ReplayedHeader] != nil {
					ok = true
				}
			}
			if !ok || op.Responses["422"] == nil || op.Responses["409"] == nil || !strings.Contains(op.Description, "Idempotency-Key") {
				t.Errorf("%s: replay header, 409, 422 or description missing", op.OperationID)
			}
		}
	}
	// Aliases are served (with the header) but not in the document.
	want := map[string]bool{}
	for id := range idempotentOperations {
		if !aliasIDs()[id] {
			want[id] = true
		}
	}
	if !maps.Equal(seen, want) {
		t.Fatalf("documented on %v, want %v", seen, want)
	}
}

// hiddenAnswers is an IdempotencyStore that finds no answer: the state of
// a key another request has claimed and whose answer cannot be read, which
// only a race of two requests with the record's expiry produces.
type hiddenAnswers struct{}

func (hiddenAnswers) Answer(context.Context, string) (store.IdempotentAnswer, error) {
	return store.IdempotentAnswer{}, store.ErrNotFound
}

// On each endpoint: a repeat that finds its key taken on both of its tries
// and no answer to read is a 409 with Retry-After, naming the header, and
// writes nothing.
func TestIdempotencyKeyHeldWithoutAnswerIs409(t *testing.T) {
	t.Parallel()
	for _, c := range idemCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newTestServerOver(t, func(st *store.Store) { st.Idempotency = hiddenAnswers{} },
				func(c *config.Config) { c.JWTSecret = testSecret })
			if c.prepare != nil {
				c.prepare(t, s)
			}
			body := c.body(t, s, 0)
			c.send(t, s, body, "key-held").wantStatus(t, c.status)
			before, keys := c.count(t, s), countKeys(t, s)
			again := c.send(t, s, body, "key-held")
			p := again.problem(t, http.StatusConflict)
			if !p.hasError("header."+IdempotencyKeyHeader, "idempotency") || again.Header.Get("Retry-After") != "1" {
				t.Fatalf("409 %+v, Retry-After %q", p.Errors, again.Header.Get("Retry-After"))
			}
			if c.count(t, s) != before || countKeys(t, s) != keys {
				t.Fatalf("the refused repeat wrote %d (keys %d -> %d)", c.count(t, s)-before, keys, countKeys(t, s))
			}
		})
	}
}

// A keyed create that opens the last collection allowed: its repeats sent
// at the same time, which wait on the create's lock and then find the
// limit reached, get its answer, not the 400 of a create past the limit.
func TestIdempotencyKeyCollectionAtTheLimit(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	for range MaxCollections - 1 {
		s.do("POST", "/appmetrics/api/v1/collections", "").wantStatus(t, http.StatusCreated)
	}
	const senders = 6
	answers := make([]response, senders)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[i] = s.do("POST", "/appmetrics/api/v1/collections", "", IdempotencyKeyHeader, "last-one")
		}()
	}
	close(start)
	wg.Wait()
	fresh := 0
	for _, r := range answers {
		if r.Status != http.StatusCreated || !bytes.Equal(r.Body, answers[0].Body) ||
			r.Header.Get("Location") != fmt.Sprintf("collections/%d", MaxCollections-1) {
			t.Fatalf("answers differ: %d %s (Location %q) and %d %s", r.Status, r.Body, r.Header.Get("Location"),
				answers[0].Status, answers[0].Body)
		}
		if r.Header.Get(ReplayedHeader) == "" {
			fresh++
		}
	}
	if fresh != 1 {
		t.Fatalf("%d answers not replayed, want 1", fresh)
	}
	// Past the limit, a new key is refused as before.
	s.do("POST", "/appmetrics/api/v1/collections", "", IdempotencyKeyHeader, "one-more").problem(t, http.StatusBadRequest)
}

// lateAnswers is an IdempotencyStore whose first two lookups find nothing,
// then the real store's: a repeat that read the key before the first
// request committed (as the concurrent repeats of the test above do when
// they win the race to the lookup), without depending on the race.
type lateAnswers struct {
	store.IdempotencyStore
	lookups atomic.Int32
}

func (l *lateAnswers) Answer(ctx context.Context, key string) (store.IdempotentAnswer, error) {
	if l.lookups.Add(1) <= 2 {
		return store.IdempotentAnswer{}, store.ErrNotFound
	}
	return l.IdempotencyStore.Answer(ctx, key)
}

// The limit branch of a keyed create, deterministically: a repeat that
// found no answer, then the limit its first request reached, reads that
// request's answer (a replay) instead of answering 400.
func TestIdempotencyKeyCollectionLimitReadsTheKey(t *testing.T) {
	t.Parallel()
	s := newTestServerOver(t, func(st *store.Store) { st.Idempotency = &lateAnswers{IdempotencyStore: st.Idempotency} })
	for range MaxCollections - 1 {
		s.do("POST", "/appmetrics/api/v1/collections", "").wantStatus(t, http.StatusCreated)
	}
	first := s.do("POST", "/appmetrics/api/v1/collections", "", IdempotencyKeyHeader, "last-one").
		wantStatus(t, http.StatusCreated)
	again := s.do("POST", "/appmetrics/api/v1/collections", "", IdempotencyKeyHeader, "last-one").
		wantStatus(t, http.StatusCreated)
	if again.Header.Get(ReplayedHeader) != "true" || !bytes.Equal(again.Body, first.Body) ||
		again.Header.Get("Location") != first.Header.Get("Location") {
		t.Fatalf("repeat at the limit: %s %v, first %s", again.Body, again.Header, first.Body)
	}
}
