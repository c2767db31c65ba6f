package api

import (
	"fmt"
	"net/http"
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
