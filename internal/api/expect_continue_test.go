package api

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/config"
)

// A body whose Content-Type says it is not JSON is refused before any of
// it is read: with Expect: 100-continue the answer is the 415, not a
// "100 Continue" that makes the client send a body (up to MAX_BODY_BYTES,
// holding its share of BODY_MEMORY_BYTES) only to be refused for its
// header. The client here sends the headers alone, as curl and .NET do
// until they hear 100 or a final answer. The form type that POST
// /mrd/token reads as JSON (formAsJSON) still gets its 100 Continue, and
// so does a JSON body.
func TestNonJSONBodyRefusedBeforeItIsRead(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.EnableTokenEndpoint = true })
	s.createDevice(t, "e1")
	auth := "Authorization: Bearer " + validToken(t) + "\n"
	for _, c := range []struct{ method, path string }{
		{"POST", "/flows"},
		{"POST", "/api/measurements"},
		{"POST", "/apiv0.1/events/register"},
		{"POST", "/apiv0.1/events/commit"},
		{"POST", "/mrd/devices"},
		{"PUT", "/mrd/devices/e1"},
		{"PUT", "/mrd/e1/metrics"},
		{"POST", "/mrd/token"},
	} {
		for _, ct := range []string{"text/plain", "application/xml; charset=utf-8"} {
			// 2 MiB: over the 1 MiB from which a body takes a share of
			// BODY_MEMORY_BYTES, where the operation takes that much.
			head := c.method + " " + c.path + " HTTP/1.1\nHost: " + strings.TrimPrefix(s.URL, "http://") + "\n" + auth +
				"Content-Type: " + ct + "\nContent-Length: 2097152\nExpect: 100-continue\n\n"
			if c.path == "/mrd/token" || c.path == "/mrd/devices" || strings.HasPrefix(c.path, "/mrd/devices/") || c.path == "/mrd/e1/metrics" {
				head = strings.Replace(head, "2097152", "100", 1) // their limits are smaller
			}
			res, body, _ := raw(t, s, head, nil)
			if res.StatusCode == http.StatusContinue {
				t.Fatalf("%s %s, %s: 100 Continue: the body would be read before its type is refused", c.method, c.path, ct)
			}
			p := wantProblem(t, res, body, http.StatusUnsupportedMediaType)
			if len(p.Errors) != 1 || p.Errors[0].Title != "contentType" || !strings.Contains(p.Detail, "unknown content type: "+ct) {
				t.Fatalf("%s %s, %s: %s", c.method, c.path, ct, body)
			}
		}
	}
	for _, c := range []struct {
		path, ct, body string
		status         int
	}{
		{"/mrd/token", "application/x-www-form-urlencoded", "{}", http.StatusOK},
		{"/flows", "application/json", "[]", http.StatusCreated},
		{"/flows", "Application/JSON; charset=utf-8", "[]", http.StatusCreated},
	} {
		head := "POST " + c.path + " HTTP/1.1\nHost: " + strings.TrimPrefix(s.URL, "http://") + "\nContent-Type: " + c.ct +
			"\nContent-Length: 2\nExpect: 100-continue\n\n"
		res, _, conn := raw(t, s, head, nil)
		if res.StatusCode != http.StatusContinue {
			t.Fatalf("%s, %s: %d before the body", c.path, c.ct, res.StatusCode)
		}
		if _, err := conn.Write([]byte(c.body)); err != nil {
			t.Fatal(err)
		}
		// Nothing follows the 100 until the body has arrived: a new reader
		// loses nothing.
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.status {
			t.Fatalf("%s, %s: %d after the body", c.path, c.ct, res.StatusCode)
		}
	}
}

// A request sent with Expect: 100-continue and answered before its body
// was asked for (401, 404, 415 here) is the connection's last: net/http
// says Connection: close, since the client may or may not send the body
// now. It then closed the connection only after READ_TIMEOUT (60 s): it
// first waited for up to 256 KiB of the body to see its end, and the
// client, which has its answer, sends none. The connection now closes once
// the answer is sent (found by an audit of HTTP edge cases), also when the
// Expect line lists other tokens beside 100-continue, which net/http
// treats the same.
func TestExpectContinueRefusalClosesTheConnection(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.ReadTimeout = 10 * time.Minute })
	host := "Host: " + strings.TrimPrefix(s.URL, "http://") + "\n"
	for _, head := range []string{
		"PUT /mrd/e1/metrics HTTP/1.1\n" + host + "Content-Type: application/json\n",
		"POST /nowhere HTTP/1.1\n" + host + "Content-Type: application/json\n",
		"POST /flows HTTP/1.1\n" + host + "Content-Type: text/plain\n",
	} {
		for _, expect := range []string{"100-continue", "100-Continue, foo", "foo,\t100-continue"} {
			// The connection's own limit, far under READ_TIMEOUT.
			conn := dialRaw(t, s, head+"Content-Length: 100\nExpect: "+expect+"\n\n", 20*time.Second)
			br := bufio.NewReader(conn)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode < 400 || !res.Close {
				t.Fatalf("%s, Expect %q: %d, close %v", head, expect, res.StatusCode, res.Close)
			}
			if n, err := br.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
				t.Fatalf("%s, Expect %q: the connection is still open after the answer: %d bytes, %v", head, expect, n, err)
			}
		}
	}
}
