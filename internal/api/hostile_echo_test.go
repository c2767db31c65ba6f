package api

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// What an answer echoes of a request is bounded, whatever the request
// holds: an answer is never a multiple of its request (found by the
// hostile-input audit).
func TestAnswersEchoBoundedValues(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	// n unknown members: n items, each with the member's own value (huma's
	// items carried the whole object: 48 KB in, 245 MB out).
	var members []string
	for i := range 5000 {
		members = append(members, fmt.Sprintf(`"k%d":%d`, i, i))
	}
	body := "[{" + strings.Join(members, ",") + "}]"
	r := s.do("POST", "/flows", body)
	p := r.problem(t, http.StatusUnprocessableEntity)
	if len(r.Body) > 12*len(body) { // linear: an item of about 130 bytes per member
		t.Fatalf("a %d-byte body answered with %d bytes", len(body), len(r.Body))
	}
	unknown := 0
	for _, it := range p.Errors {
		if it.Title == "unknown" {
			unknown++
			if want := strings.TrimPrefix(it.Source, "k"); fmt.Sprint(it.Value) != want {
				t.Fatalf("item %+v: value, want the member's own %s", it, want)
			}
		}
	}
	if unknown != 5000 {
		t.Fatalf("%d unknown items, want 5000", unknown)
	}
	// An unknown member holding a large object: not echoed.
	r = s.do("POST", "/mrd/devices", `{"id":"a","name":"b","extra":{"x":[`+strings.Repeat(`"aaaa",`, 1000)+`"z"]}}`, bearer(t)...)
	p = r.problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("body.extra", "unknown") || len(r.Body) > 2000 {
		t.Fatalf("%d bytes: %s", len(r.Body), r.Body[:min(len(r.Body), 400)])
	}
	// An unknown device's id is echoed cut, as other text is.
	id := strings.Repeat("x", 100_000)
	r = s.do("GET", "/mrd/devices/"+id, nil)
	p = r.problem(t, http.StatusNotFound)
	if len(r.Body) > 2000 || p.Errors[0].Title != "Host Not Found" || !strings.HasPrefix(p.Detail, "Unknown host: xxx") {
		t.Fatalf("%d bytes: %s", len(r.Body), r.Body[:min(len(r.Body), 400)])
	}
	// A decoder's message naming a 200,000-digit number is cut.
	r = s.do("POST", "/apiv0.1/events/register", `{"host":"h","note":1`+strings.Repeat("0", 200_000)+`,"measurement":{"fields":{}}}`)
	if r.Status < 400 || r.Status >= 500 || len(r.Body) > 3000 {
		t.Fatalf("status %d, %d bytes", r.Status, len(r.Body))
	}
}

// A body may nest objects and arrays 100 deep, itself included; deeper is
// a 422 "max" and nothing is stored. Before, a measurement's args or an
// event's extra field nested near json v2's 10,000 levels was stored, and
// every read that included it answered 200 with a broken body (the
// answer nests it deeper still).
func TestBodiesNestAtMost100Deep(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	nested := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	record := func(args string) string {
		return fmt.Sprintf(`[{"name":"/deep","method":"GET","startedAt":%d,"endedAt":%d,"args":%s}]`, day0, day0+1, args)
	}
	// (A device report ignores its extra fields, as the daemon did: a deep
	// one is neither stored nor echoed.)
	// args 98 deep: the body is 100 deep, taken, and read back whole.
	s.do("POST", "/api/measurements", record(nested(98))).wantStatus(t, http.StatusCreated)
	var page measurementPage
	s.do("GET", fmt.Sprintf("/api/measurements/?startedAt=%d&endedAt=%d", day0-1, day0+2), nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 1 {
		t.Fatalf("list: %+v", page)
	}
	for _, c := range []struct {
		method, path, body string
		auth               bool
	}{
		{"POST", "/api/measurements", record(nested(99)), false},
		{"POST", "/api/measurements", record(nested(9990)), false},
		{"POST", "/apiv0.1/events/register", `{"host":"h","note":` + nested(9990) + `,"measurement":{"fields":{}}}`, false},
		{"POST", "/apiv0.1/events/register", `{"host":"h","measurement":{"fields":{"x":` + nested(120) + `}}}`, false},
		{"POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":1,"x":` + nested(9990) + `}]`, false},
		{"POST", "/mrd/token", `{"expires_in":60,"note":` + nested(9990) + `}`, false},
		{"POST", "/mrd/devices", `{"id":"d","name":"n","note":` + nested(9990) + `}`, true},
	} {
		var header []string
		if c.auth {
			header = bearer(t)
		}
		r := s.do(c.method, c.path, c.body, header...)
		p := r.problem(t, http.StatusUnprocessableEntity)
		if !slices.ContainsFunc(p.Errors, func(it *ProblemItem) bool { return it.Title == "max" && strings.Contains(it.Detail, "100 deep") }) {
			t.Errorf("%s %s: %s", c.method, c.path, r.Body[:min(len(r.Body), 500)])
		}
	}
	s.do("GET", fmt.Sprintf("/api/measurements/?startedAt=%d&endedAt=%d", day0-1, day0+2), nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 1 {
		t.Fatalf("a refused batch was stored: %+v", page.Total)
	}
	var runs Page[EventRun]
	s.do("GET", "/apiv0.1/states", nil).wantStatus(t, http.StatusOK).decode(t, &runs)
	if runs.Total != 0 {
		t.Fatalf("a refused run was stored")
	}
}

// A query holds at most 1,000 parameters and 64 KiB (huma's reading of a
// bare key scanned the whole query each time, and past 10,000 parameters
// the strict checks saw none); a body with a Content-Encoding is refused
// (it was read as if it had none).
func TestQueryBoundsAndContentEncoding(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	for _, q := range []string{
		"hour=1" + strings.Repeat("&x", 1000),
		"hour=1&hour=2&src_app=web" + strings.Repeat("&pad=1", 10_000),
		"hour=1" + strings.Repeat("&x", 400_000),
		"hour=1&src_app=" + strings.Repeat("a", 70_000),
	} {
		p := s.do(get, "/flows?"+q, nil).problem(t, http.StatusUnprocessableEntity)
		if len(p.Errors) != 1 || p.Errors[0].Title != "max" || p.Errors[0].Location != "query" {
			t.Fatalf("%d bytes of query: %+v", len(q), p.Errors)
		}
	}
	// Under the bounds, every parameter is checked as before.
	p := s.do(get, "/flows?hour=1"+strings.Repeat("&page=1", 998), nil).problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || !p.hasError("query.page", "duplicate") {
		t.Fatalf("998 x: %+v", p.Errors[:min(3, len(p.Errors))])
	}

	flow := `[{"src_app":"ce","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":4}]`
	for _, enc := range []string{"gzip", "br", "deflate, gzip"} {
		r := s.do("POST", "/flows", flow, "Content-Encoding", enc)
		p := r.problem(t, http.StatusUnsupportedMediaType)
		if len(p.Errors) != 1 || p.Errors[0].Title != "contentEncoding" || r.Header.Get("Accept-Encoding") != "identity" {
			t.Fatalf("%s: %s %v", enc, r.Body, r.Header)
		}
	}
	var page Page[Flow]
	s.do(get, "/flows?hour=4", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 0 {
		t.Fatal("a body refused for its encoding was stored")
	}
	s.do("POST", "/flows", flow, "Content-Encoding", "identity").wantStatus(t, http.StatusCreated)
	// An operation that takes no body ignores the header.
	s.do(get, "/flows?hour=4", nil, "Content-Encoding", "gzip").wantStatus(t, http.StatusOK)
}

// The query bounds are those of the query as sent: a bare key (`&method`,
// absent as `&method=` is) is given its "=" by bareQueryKeys before
// requestShape measures the query, and those added bytes must not push a
// query of at most 64 KiB past the bound (it was a 422 `max`).
func TestQueryBoundsCountTheQueryAsSent(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	head := "search[value]="
	tail := "&method&name"
	q := head + strings.Repeat("a", maxQueryBytes-len(head)-len(tail)) + tail
	if len(q) != maxQueryBytes {
		t.Fatalf("query of %d bytes", len(q))
	}
	s.do(get, "/api/measurements/grouped/?"+q, nil).wantStatus(t, http.StatusOK)
	// One byte more is past the bound, bare keys or not.
	p := s.do(get, "/api/measurements/grouped/?a"+q, nil).problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 1 || p.Errors[0].Title != "max" || p.Errors[0].Location != "query" {
		t.Fatalf("%d bytes of query: %+v", len(q)+1, p.Errors)
	}
}

// A Content-Encoding given on two lines is one list (RFC 9110 5.3): the
// second line's coding counts as much as the first's. Only the first line
// was read, so a body said to be gzip on the second was stored as if it
// were plain (found by an audit of HTTP edge cases).
func TestContentEncodingOnEveryLine(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	flow := `[{"src_app":"ce2","dest_app":"d","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":5}]`
	post := func(lines string) (*http.Response, []byte) {
		head := "POST /flows HTTP/1.1\nHost: " + strings.TrimPrefix(s.URL, "http://") + "\nContent-Type: application/json\n" +
			lines + "Content-Length: " + strconv.Itoa(len(flow)) + "\n\n"
		res, body, _ := raw(t, s, head, func(c net.Conn) { _, _ = io.WriteString(c, flow) })
		return res, body
	}
	res, body := post("Content-Encoding: identity\nContent-Encoding: gzip\n")
	p := wantProblem(t, res, body, http.StatusUnsupportedMediaType)
	if len(p.Errors) != 1 || p.Errors[0].Title != "contentEncoding" || res.Header.Get("Accept-Encoding") != "identity" ||
		!strings.Contains(p.Detail, "identity, gzip") {
		t.Fatalf("%s %v", body, res.Header)
	}
	var page Page[Flow]
	s.do(get, "/flows?hour=5", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 0 {
		t.Fatal("a body said to be gzip was stored")
	}
	if res, body := post("Content-Encoding: identity\nContent-Encoding: identity\n"); res.StatusCode != http.StatusCreated {
		t.Fatalf("identity twice: %d %s", res.StatusCode, body)
	}
}
