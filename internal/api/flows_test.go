package api

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/telemetry/telemetry/internal/config"
)

// seedFlows is aggregation_ws's own test data.
const seedFlows = `[
 {"src_app": "foo", "dest_app": "bar", "vpc_id": "vpc-0", "bytes_tx": 100, "bytes_rx": 300, "hour": 1},
 {"src_app": "foo", "dest_app": "bar", "vpc_id": "vpc-0", "bytes_tx": 200, "bytes_rx": 600, "hour": 1},
 {"src_app": "baz", "dest_app": "qux", "vpc_id": "vpc-0", "bytes_tx": 100, "bytes_rx": 500, "hour": 1},
 {"src_app": "baz", "dest_app": "qux", "vpc_id": "vpc-0", "bytes_tx": 100, "bytes_rx": 500, "hour": 2},
 {"src_app": "baz", "dest_app": "qux", "vpc_id": "vpc-1", "bytes_tx": 100, "bytes_rx": 500, "hour": 2}
]`

func TestFlowsSeedExample(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	s.do("POST", "/flows", seedFlows).wantStatus(t, http.StatusCreated)

	var page Page[Flow]
	s.do("GET", "/flows?hour=1", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	want := []Flow{
		{SrcApp: "baz", DestApp: "qux", VpcID: "vpc-0", BytesTx: 100, BytesRx: 500, Hour: 1},
		{SrcApp: "foo", DestApp: "bar", VpcID: "vpc-0", BytesTx: 300, BytesRx: 900, Hour: 1},
	}
	if fmt.Sprint(page.Items) != fmt.Sprint(want) || page.Total != 2 || page.Page != 1 || page.Size != 50 {
		t.Fatalf("hour 1 = %+v, want items %+v total 2 page 1 size 50", page, want)
	}
	s.do("GET", "/flows?hour=2", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 2 || page.Items[0].VpcID != "vpc-0" || page.Items[1].VpcID != "vpc-1" {
		t.Fatalf("hour 2 = %+v", page)
	}

	// Posting again adds to the totals: sums over everything ever posted.
	s.do("POST", "/flows", seedFlows).wantStatus(t, http.StatusCreated)
	s.do("GET", "/flows?hour=1", nil).decode(t, &page)
	if page.Items[1].BytesTx != 600 || page.Items[1].BytesRx != 1800 {
		t.Fatalf("after a second post: %+v", page.Items)
	}
}

func TestFlowsEmptyBatchAndEmptyHour(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	r := s.do("POST", "/flows", "[]").wantStatus(t, http.StatusCreated)
	if !strings.Contains(string(r.Body), `"received":0`) {
		t.Fatalf("body %s", r.Body)
	}
	var page Page[Flow]
	s.do("GET", "/flows?hour=7", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 0 || page.Items == nil || len(page.Items) != 0 {
		t.Fatalf("empty hour = %+v (items must be [], not null)", page)
	}
}

func TestFlowsPagination(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	var flows []Flow
	for i := 0; i < 25; i++ {
		flows = append(flows, Flow{SrcApp: fmt.Sprintf("app-%02d", i), DestApp: "d", VpcID: "v", BytesTx: 1, BytesRx: 2, Hour: 5})
	}
	s.do("POST", "/flows", flows).wantStatus(t, http.StatusCreated)

	seen := map[string]bool{}
	for page := 1; page <= 3; page++ {
		var p Page[Flow]
		r := s.do("GET", fmt.Sprintf("/flows?hour=5&size=10&page=%d", page), nil).wantStatus(t, http.StatusOK)
		r.decode(t, &p)
		if p.Total != 25 || p.Page != int64(page) || p.Size != 10 {
			t.Fatalf("page %d: %+v", page, p)
		}
		wantLen := 10
		if page == 3 {
			wantLen = 5
		}
		if len(p.Items) != wantLen {
			t.Fatalf("page %d has %d items, want %d", page, len(p.Items), wantLen)
		}
		for i, f := range p.Items {
			if seen[f.SrcApp] {
				t.Fatalf("page %d repeats %s", page, f.SrcApp)
			}
			seen[f.SrcApp] = true
			if want := fmt.Sprintf("app-%02d", (page-1)*10+i); f.SrcApp != want {
				t.Fatalf("page %d item %d = %s, want %s (order by src_app)", page, i, f.SrcApp, want)
			}
		}
		link := r.Header.Get("Link")
		if !strings.Contains(link, `rel="first"`) || !strings.Contains(link, `page=3&size=10>; rel="last"`) {
			t.Fatalf("page %d Link = %q", page, link)
		}
		if hasNext := strings.Contains(link, `rel="next"`); hasNext != (page < 3) {
			t.Fatalf("page %d Link next = %v: %q", page, hasNext, link)
		}
		if hasPrev := strings.Contains(link, `rel="prev"`); hasPrev != (page > 1) {
			t.Fatalf("page %d Link prev = %v: %q", page, hasPrev, link)
		}
	}
	// Past the end: no items, the true total.
	var p Page[Flow]
	s.do("GET", "/flows?hour=5&size=10&page=9", nil).wantStatus(t, http.StatusOK).decode(t, &p)
	if len(p.Items) != 0 || p.Total != 25 {
		t.Fatalf("past the end: %+v", p)
	}
}

func TestFlowsListValidation(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	cases := []struct {
		query, location, title string
	}{
		{"", "query.hour", "required"},
		{"hour=x", "query.hour", "type"},
		{"hour=1.5", "query.hour", "type"},
		{"hour=-1", "query.hour", "min"},
		{"hour=2147483648", "query.hour", "max"},
		{"hour=1&page=0", "query.page", "min"},
		{"hour=1&page=x", "query.page", "type"},
		{"hour=1&size=0", "query.size", "min"},
		{"hour=1&size=101", "query.size", "max"},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			p := s.do("GET", "/flows?"+c.query, nil).problem(t, http.StatusUnprocessableEntity)
			if !p.hasError(c.location, c.title) {
				t.Fatalf("errors %+v lack %s/%s", p.Errors, c.location, c.title)
			}
			for _, e := range p.Errors {
				if e.Status != 422 || e.Detail == "" || e.Source == "" {
					t.Fatalf("incomplete error item %+v", e)
				}
			}
		})
	}
	// Several bad parameters are all reported at once.
	p := s.do("GET", "/flows?hour=x&page=0&size=500", nil).problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 3 {
		t.Fatalf("want 3 errors, got %+v", p.Errors)
	}
}

func TestFlowsPostValidation(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	good := `{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}`
	cases := []struct {
		name, item, field, title string
	}{
		{"missing src_app", `{"dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}`, "src_app", "required"},
		{"missing hour", `{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2}`, "hour", "required"},
		{"empty dest_app", `{"src_app":"a","dest_app":"","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}`, "dest_app", "min"},
		{"long vpc_id", `{"src_app":"a","dest_app":"b","vpc_id":"` + strings.Repeat("v", 256) + `","bytes_tx":1,"bytes_rx":2,"hour":3}`, "vpc_id", "max"},
		{"dest_app of 801 bytes", `{"src_app":"a","dest_app":"` + strings.Repeat("😀", 200) + `é","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}`, "dest_app", "max"},
		{"string for integer", `{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":"5","bytes_rx":2,"hour":3}`, "bytes_tx", "type"},
		{"float for integer", `{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1.5,"bytes_rx":2,"hour":3}`, "bytes_tx", "type"},
		{"negative bytes", `{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":-2,"hour":3}`, "bytes_rx", "min"},
		{"negative hour", `{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":-3}`, "hour", "min"},
		{"number for string", `{"src_app":7,"dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}`, "src_app", "type"},
		{"null", `{"src_app":null,"dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}`, "src_app", "type"},
		{"unknown field", `{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3,"extra":1}`, "extra", "unknown"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// The bad item is third: the error names it by index, and the
			// good items around it are not stored either.
			body := "[" + good + "," + good + "," + c.item + "]"
			p := s.do("POST", "/flows", body).problem(t, http.StatusUnprocessableEntity)
			loc := "body[2]." + c.field
			if !p.hasError(loc, c.title) {
				t.Fatalf("errors %+v lack %s/%s", p.Errors, loc, c.title)
			}
			for _, e := range p.Errors {
				if e.Source != c.field || e.Status != 422 || e.Detail == "" {
					t.Fatalf("error item %+v: want source %s, status 422, a detail", e, c.field)
				}
			}
			var page Page[Flow]
			s.do("GET", "/flows?hour=3", nil).decode(t, &page)
			if page.Total != 0 {
				t.Fatalf("an invalid batch stored %d rows", page.Total)
			}
		})
	}

	// Every failing item is named by index, at once.
	body := "[" + good + `,{"src_app":"","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3},` + good +
		`,{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":-1,"bytes_rx":2,"hour":3}]`
	p := s.do("POST", "/flows", body).problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("body[1].src_app", "min") || !p.hasError("body[3].bytes_tx", "min") || len(p.Errors) != 2 {
		t.Fatalf("errors = %+v", p.Errors)
	}
}

// The longest names the API takes are stored, even when nothing in them
// compresses: the three names of a key are in one primary-key entry,
// which PostgreSQL bounds at 2,704 bytes (255 four-byte characters each
// were an error 500).
func TestFlowsLongestNamesStored(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	rng := rand.New(rand.NewPCG(8, 8))
	f := Flow{SrcApp: randomRunes(rng, 200, 4), DestApp: randomRunes(rng, 200, 4), VpcID: randomRunes(rng, 200, 4),
		BytesTx: 1, BytesRx: 2, Hour: 4}
	s.do("POST", "/flows", []Flow{f}).wantStatus(t, http.StatusCreated)
	var page Page[Flow]
	s.do("GET", "/flows?hour=4", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if len(page.Items) != 1 || page.Items[0] != f {
		t.Fatalf("stored %+v, want %+v", page.Items, f)
	}
	f.VpcID = randomRunes(rng, 201, 4)
	p := s.do("POST", "/flows", []Flow{f}).problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("body[0].vpc_id", "max") {
		t.Fatalf("errors %+v lack body[0].vpc_id/max", p.Errors)
	}
}

// randomRunes is n random characters of size bytes of UTF-8 each (3: CJK,
// 4: the supplementary planes): text that does not compress.
func randomRunes(rng *rand.Rand, n, size int) string {
	lo, hi := rune(0x4E00), rune(0x9FFF)
	if size == 4 {
		lo, hi = 0x10000, 0x10FFFF
	}
	var b strings.Builder
	for range n {
		b.WriteRune(lo + rune(rng.IntN(int(hi-lo+1))))
	}
	return b.String()
}

func TestFlowsPostBadBodies(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.MaxBodyBytes = 2000 })
	cases := []struct {
		name, body string
		status     int
	}{
		{"malformed JSON", `[{"src_app":`, http.StatusBadRequest},
		{"not JSON", `hello`, http.StatusBadRequest},
		{"object instead of array", `{"src_app":"a"}`, http.StatusBadRequest},
		{"array of numbers", `[1,2]`, http.StatusUnprocessableEntity},
		{"overflowing integer", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":99999999999999999999,"bytes_rx":2,"hour":3}]`, http.StatusUnprocessableEntity},
		{"too large", "[" + strings.Repeat(`{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3},`, 40) + "]", http.StatusRequestEntityTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := s.do("POST", "/flows", c.body).problem(t, c.status)
			for _, e := range p.Errors {
				if v, ok := e.Value.(string); ok && len(v) > 300 {
					t.Fatalf("the body was echoed back: %d bytes", len(v))
				}
			}
		})
	}
	// A missing body is a 400 too.
	s.do("POST", "/flows", nil).problem(t, http.StatusBadRequest)
}

func TestFlowsBodyLimitIsInclusive(t *testing.T) {
	t.Parallel()
	item := `{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":3}`
	body := "[" + item + "," + item + "]"
	s := newTestServer(t, func(c *config.Config) { c.MaxBodyBytes = int64(len(body)) })
	s.do("POST", "/flows", body).wantStatus(t, http.StatusCreated)
	s.do("POST", "/flows", body+" ").problem(t, http.StatusRequestEntityTooLarge)
}

func TestFlowsTooMany(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, func(c *config.Config) { c.FlowsMaxBatch = 3 })
	flows := make([]Flow, 4)
	for i := range flows {
		flows[i] = Flow{SrcApp: "a", DestApp: "b", VpcID: "v", BytesTx: 1, BytesRx: 1, Hour: 9}
	}
	r := s.do("POST", "/flows", flows)
	p := r.problem(t, http.StatusNotAcceptable)
	if p.Detail != TooManyFlows {
		t.Fatalf("detail = %q", p.Detail)
	}
	// The seed's own keys too: its clients read error_message.
	var seed struct {
		ErrorMessage string `json:"error_message"`
		StatusCode   int    `json:"status_code"`
	}
	r.decode(t, &seed)
	if seed.ErrorMessage != TooManyFlows || seed.StatusCode != http.StatusNotAcceptable {
		t.Fatalf("the seed's keys: %s", r.Body)
	}
	// No other problem carries them.
	if r := s.do("POST", "/flows", `[{}]`); bytes.Contains(r.Body, []byte("error_message")) || bytes.Contains(r.Body, []byte("status_code")) {
		t.Fatalf("a 422 with the seed's keys: %s", r.Body)
	}
	var page Page[Flow]
	s.do("GET", "/flows?hour=9", nil).decode(t, &page)
	if page.Total != 0 {
		t.Fatal("a refused batch was stored")
	}
	// Over the limit is a 406 whatever the items hold: counted before they
	// are checked.
	for _, body := range []string{`[1,2,3,4]`, `[{},{},{},{"hour":-1}]`} {
		if p := s.do("POST", "/flows", body).problem(t, http.StatusNotAcceptable); p.Detail != TooManyFlows {
			t.Fatalf("%s: detail = %q", body, p.Detail)
		}
	}
	s.do("POST", "/flows", `[{},{},{}]`).problem(t, http.StatusUnprocessableEntity)
	s.do("POST", "/flows", `[1,2,3,4`).problem(t, http.StatusBadRequest)
	s.do("POST", "/flows", flows[:3]).wantStatus(t, http.StatusCreated)
}

func TestFlowsOverflowIsRefused(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	big := Flow{SrcApp: "a", DestApp: "b", VpcID: "v", BytesTx: 1 << 62, BytesRx: 0, Hour: 4}
	s.do("POST", "/flows", []Flow{big}).wantStatus(t, http.StatusCreated)
	// Two more of these would wrap a 64-bit total: refused, nothing
	// changed, and the 422 names the flow at which the total passes the
	// limit (the first big one: 2^62 stored plus 2^62 is 2^63).
	for _, batch := range [][]Flow{{big, big}, {{SrcApp: "other", DestApp: "b", VpcID: "v", BytesTx: 1, Hour: 4}, big, big}} {
		p := s.do("POST", "/flows", batch).problem(t, http.StatusUnprocessableEntity)
		at := fmt.Sprintf("body[%d].bytes_tx", len(batch)-2)
		if len(p.Errors) != 1 || !p.hasError(at, "max") || !strings.Contains(p.Errors[0].Detail, "9223372036854775807") {
			t.Fatalf("%d flows: errors %+v, want one at %s", len(batch), p.Errors, at)
		}
	}
	// Within one batch alone (summed before the database is asked).
	huge := Flow{SrcApp: "new", DestApp: "b", VpcID: "v", BytesRx: math.MaxInt64, Hour: 5}
	p := s.do("POST", "/flows", []Flow{huge, huge}).problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || !p.hasError("body[1].bytes_rx", "max") {
		t.Fatalf("a batch's own overflow: errors %+v", p.Errors)
	}
	var page Page[Flow]
	s.do("GET", "/flows?hour=4", nil).decode(t, &page)
	if page.Total != 1 || page.Items[0].BytesTx != 1<<62 {
		t.Fatalf("after refused overflows: %+v", page)
	}
}

// Concurrent posts of the same keys lose no update and never fail with
// "cannot affect row a second time" or a deadlock.
func TestFlowsConcurrentPostsSumExactly(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	const clients, rounds = 8, 10
	// Each batch repeats keys and lists them in a different order.
	batch := func(c int) []Flow {
		var fs []Flow
		for k := 0; k < 20; k++ {
			key := (k*7 + c) % 10
			fs = append(fs, Flow{SrcApp: fmt.Sprintf("s%d", key), DestApp: "d", VpcID: "v", BytesTx: 1, BytesRx: 3, Hour: 11})
		}
		return fs
	}
	var wg sync.WaitGroup
	errs := make(chan string, clients*rounds)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				if res := s.do("POST", "/flows", batch(c)); res.Status != http.StatusCreated {
					errs <- fmt.Sprintf("%d %s", res.Status, res.Body)
				}
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	var page Page[Flow]
	s.do("GET", "/flows?hour=11", nil).decode(t, &page)
	if page.Total != 10 {
		t.Fatalf("total = %d, want 10 keys", page.Total)
	}
	var tx, rx int64
	for _, f := range page.Items {
		tx += f.BytesTx
		rx += f.BytesRx
		if f.BytesTx != clients*rounds*2 {
			t.Fatalf("key %s has bytes_tx %d, want %d", f.SrcApp, f.BytesTx, clients*rounds*2)
		}
	}
	if tx != clients*rounds*20 || rx != 3*clients*rounds*20 {
		t.Fatalf("sums tx=%d rx=%d, want %d and %d", tx, rx, clients*rounds*20, 3*clients*rounds*20)
	}
}

// The decoder's fast path and huma's validator must agree on every edge.
func TestFlowsDecodingEdges(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	item := func(src string) string {
		return `{"src_app":` + src + `,"dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":12}`
	}
	// 255 characters is the limit, counted in characters, not bytes.
	s.do("POST", "/flows", "["+item(`"`+strings.Repeat("é", 255)+`"`)+"]").wantStatus(t, http.StatusCreated)
	p := s.do("POST", "/flows", "["+item(`"`+strings.Repeat("é", 256)+`"`)+"]").problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("body[0].src_app", "max") || p.Errors[0].Detail != "src_app must be at most 255 characters long" {
		t.Fatalf("errors %+v", p.Errors)
	}
	// Keys are case-sensitive.
	p = s.do("POST", "/flows", `[{"SRC_APP":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":12}]`).problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("body[0].SRC_APP", "unknown") || !p.hasError("body[0].src_app", "required") {
		t.Fatalf("errors %+v", p.Errors)
	}
	// Escaped characters in values are fine; an escaped key is still checked.
	s.do("POST", "/flows", "["+item(`"a\"b:c\\"`)+"]").wantStatus(t, http.StatusCreated)
	s.do("POST", "/flows", `[{"src_\u0061pp":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":12}]`).wantStatus(t, http.StatusCreated)
	// Integers are JSON integers within 64 bits.
	for body, title := range map[string]string{
		`1.0`: "type", `1e3`: "type", `9223372036854775808`: "max", `-9223372036854775809`: "max",
	} {
		p := s.do("POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":`+body+`,"bytes_rx":2,"hour":12}]`).
			problem(t, http.StatusUnprocessableEntity)
		if !p.hasError("body[0].bytes_tx", title) && !p.hasError("body[0].bytes_tx", "min") {
			t.Fatalf("bytes_tx %s: errors %+v", body, p.Errors)
		}
	}
	// Beside other failures, each place once: a 1.0 and a 1e3 beside an
	// empty src_app are listed with it (they went unsaid until 2026-12-06),
	// and an hour of 1.5 or past 2147483647 keeps the schema's one item.
	p = s.do("POST", "/flows", `[{"src_app":"","dest_app":"b","vpc_id":"v","bytes_tx":1.0,"bytes_rx":1e3,"hour":1.5},
		{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":99999999999}]`).problem(t, http.StatusUnprocessableEntity)
	got := map[string]string{}
	for _, e := range p.Errors {
		if _, dup := got[e.Location]; dup {
			t.Errorf("%s listed twice: %+v", e.Location, p.Errors)
		}
		got[e.Location] = e.Title
	}
	if want := map[string]string{"body[0].src_app": "min", "body[0].bytes_tx": "type", "body[0].bytes_rx": "type",
		"body[0].hour": "type", "body[1].hour": "max"}; !maps.Equal(got, want) {
		t.Fatalf("items %v, want %v", got, want)
	}
	for _, e := range p.Errors {
		if e.Location == "body[0].src_app" && e.Detail != "src_app must be at least 1 character long" {
			t.Errorf("the empty src_app: %q", e.Detail)
		}
	}
	// Not one JSON document, or not an array.
	s.do("POST", "/flows", "[] []").problem(t, http.StatusBadRequest)
	s.do("POST", "/flows", "null").problem(t, http.StatusBadRequest)
	s.do("POST", "/flows", `"flows"`).problem(t, http.StatusBadRequest)
	// A body that is not JSON by its Content-Type.
	r := s.do("POST", "/flows", "[]", "Content-Type", "text/plain")
	p = r.problem(t, http.StatusUnsupportedMediaType)
	if !p.hasError("body", "contentType") {
		t.Fatalf("errors %+v", p.Errors)
	}
	s.do("POST", "/flows", "[]", "Content-Type", "application/json; charset=utf-8").wantStatus(t, http.StatusCreated)

	var page Page[Flow]
	s.do("GET", "/flows?hour=12", nil).decode(t, &page)
	if page.Total != 3 {
		t.Fatalf("stored %d keys, want 3: %+v", page.Total, page.Items)
	}
}

// Concurrent posts are combined into shared upserts; a hostile batch among
// them (a NUL byte in a name, a total that would overflow the stored one)
// fails alone with a 422, and every valid batch is a 201 with its bytes
// counted exactly once.
func TestFlowsHostileBatchFailsAlone(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	const hour = 15
	s.do("POST", "/flows", []Flow{{SrcApp: "near", DestApp: "d", VpcID: "v", BytesTx: math.MaxInt64 - 10, Hour: hour}}).
		wantStatus(t, http.StatusCreated)
	hostile := []string{
		`[{"src_app":"hot","dest_app":"d","vpc_id":"v","bytes_tx":5,"bytes_rx":5,"hour":15},
		  {"src_app":"a\u0000b","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":15}]`,
		`[{"src_app":"hot","dest_app":"d","vpc_id":"v","bytes_tx":5,"bytes_rx":5,"hour":15},
		  {"src_app":"near","dest_app":"d","vpc_id":"v","bytes_tx":20,"bytes_rx":0,"hour":15}]`,
	}
	const waves, valid = 4, 12
	type result struct {
		hostile bool
		status  int
		body    string
	}
	results := make(chan result, waves*(valid+len(hostile)))
	for w := range waves {
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range valid {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				body := []Flow{{SrcApp: "hot", DestApp: "d", VpcID: "v", BytesTx: 1, BytesRx: 2, Hour: hour},
					{SrcApp: fmt.Sprintf("own-%d-%d", w, i), DestApp: "d", VpcID: "v", BytesTx: 3, BytesRx: 4, Hour: hour}}
				r := s.do("POST", "/flows", body)
				results <- result{false, r.Status, string(r.Body)}
			}()
		}
		for _, h := range hostile {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				r := s.do("POST", "/flows", h)
				results <- result{true, r.Status, string(r.Body)}
			}()
		}
		close(start)
		wg.Wait()
	}
	close(results)
	for r := range results {
		switch {
		case r.hostile && r.status != http.StatusUnprocessableEntity:
			t.Errorf("hostile batch: %d %s, want 422", r.status, r.body)
		case !r.hostile && r.status != http.StatusCreated:
			t.Errorf("valid batch: %d %s, want 201", r.status, r.body)
		}
	}
	var page Page[Flow]
	s.do("GET", fmt.Sprintf("/flows?hour=%d&size=100", hour), nil).wantStatus(t, http.StatusOK).decode(t, &page)
	got := map[string][2]int64{}
	for _, f := range page.Items {
		got[f.SrcApp] = [2]int64{f.BytesTx, f.BytesRx}
	}
	want := map[string][2]int64{"near": {math.MaxInt64 - 10, 0}, "hot": {waves * valid, 2 * waves * valid}}
	for w := range waves {
		for i := range valid {
			want[fmt.Sprintf("own-%d-%d", w, i)] = [2]int64{3, 4}
		}
	}
	if page.Total != int64(len(want)) || !maps.Equal(got, want) {
		t.Fatalf("stored %d keys %v, want %v", page.Total, got, want)
	}
}
