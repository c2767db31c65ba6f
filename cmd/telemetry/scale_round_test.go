package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// client sends requests to one serve process and fails the test on any
// transport error.
type client struct {
	t     testing.TB
	base  string
	token string
	sent  int // requests sent
}

// do sends body (a string as is, anything else as JSON) and returns the
// status, the headers and the body; extra holds header pairs.
func (c *client) do(method, path string, body any, extra ...string) (int, http.Header, []byte) {
	c.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	c.sent++
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return res.StatusCode, res.Header, b
}

// want sends the request and fails unless it answers status; it decodes the
// JSON answer into out when out is not nil.
func (c *client) want(status int, method, path string, body, out any, extra ...string) http.Header {
	c.t.Helper()
	code, h, b := c.do(method, path, body, extra...)
	if code != status {
		c.t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	return h
}

// roundTrip exercises every resource once through the server at base, with
// names made from tag so that several rounds share one database: flows
// (with an Idempotency-Key repeat), events register, isrunning, commit,
// states and the run (jsonb both ways), device token, registration, report
// and current metrics, measurements post, get, list and grouped (jsonb
// args, kwargs, context), and a collection created, read and deleted. The
// server must run with ENABLE_TOKEN_ENDPOINT=true. It returns how many
// requests it sent.
func roundTrip(t testing.TB, base, tag string) int {
	t.Helper()
	c := &client{t: t, base: base}
	hour := time.Now().Unix()/3600 - 1

	// Flows.
	flows := fmt.Sprintf(`[{"src_app":%q,"dest_app":"b","vpc_id":"v","bytes_tx":10,"bytes_rx":20,"hour":%d},
		{"src_app":%q,"dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":%d}]`, tag, hour, tag, hour)
	var received struct{ Received int }
	c.want(201, "POST", "/flows", flows, &received, "Idempotency-Key", "flows-"+tag)
	c.want(201, "POST", "/flows", flows, &received, "Idempotency-Key", "flows-"+tag)
	if received.Received != 2 {
		t.Fatalf("POST /flows received %d, want 2", received.Received)
	}
	var fpage struct {
		Items []struct {
			SrcApp  string `json:"src_app"`
			BytesTx int64  `json:"bytes_tx"`
		}
		Total int64
	}
	found := false
	for page := 1; !found; page++ {
		c.want(200, "GET", fmt.Sprintf("/flows?hour=%d&size=100&page=%d", hour, page), nil, &fpage)
		for _, it := range fpage.Items {
			if it.SrcApp == tag {
				found = true
				if it.BytesTx != 11 {
					t.Fatalf("flows of %s: bytes_tx %d, want 11 (the keyed repeat must not add)", tag, it.BytesTx)
				}
			}
		}
		if len(fpage.Items) == 0 {
			break
		}
	}
	if !found {
		t.Fatalf("GET /flows?hour=%d lacks %s", hour, tag)
	}

	// Events: register, isrunning, commit, states, the run.
	var reg struct{ UUID string }
	c.want(200, "POST", "/apiv0.1/events/register", fmt.Sprintf(`{"startedAt": "2025-11-22T10:00:00Z", "host": %q,
		"measurement": {"fields": {"clients": 10, "hatchRate": 0.5, "requests": 100}, "tags": {"targetHost": "http://t", "mode": "single"}}}`, tag), &reg)
	var running map[string]bool
	c.want(200, "GET", "/apiv0.1/events/isrunning", nil, &running)
	if !running[tag+"-"+reg.UUID] {
		t.Fatalf("isrunning lacks %s-%s: %v", tag, reg.UUID, running)
	}
	c.want(200, "POST", "/apiv0.1/events/commit", fmt.Sprintf(`{"uuid": %q, "host": %q,
		"measurement": {"fields": {"requestStats": {"stats": [{"method": "GET", "name": "/x", "num_requests": 7}]}}}}`, reg.UUID, tag), nil)
	var states struct {
		Items []struct{ UUID, State string }
		Total int64
	}
	c.want(200, "GET", "/apiv0.1/states?host="+url.QueryEscape(tag), nil, &states)
	if states.Total != 1 || len(states.Items) != 1 || states.Items[0].State != "committed" {
		t.Fatalf("states of %s: %+v", tag, states)
	}
	_, _, run := c.do("GET", "/apiv0.1/events/"+reg.UUID, nil)
	if !strings.Contains(string(run), `"num_requests":7`) {
		t.Fatalf("run %s lacks its requestStats: %s", reg.UUID, run)
	}

	// Device metrics: token, device, report, current metrics.
	var tok struct{ Token string }
	c.want(200, "POST", "/mrd/token", `{}`, &tok)
	c.token = tok.Token
	device := "dev-" + tag
	c.want(201, "POST", "/mrd/devices", map[string]string{"id": device, "name": "device " + tag}, nil)
	c.want(200, "PUT", "/mrd/"+device+"/metrics", `{"name":"cpu_temp","value":54.5,"units":"C","type":"float","slope":"both","ttl":600}`, nil)
	_, _, cur := c.do("GET", "/mrd/devices/"+device+"/metrics", nil)
	if !strings.Contains(string(cur), "cpu_temp") {
		t.Fatalf("current metrics of %s: %s", device, cur)
	}
	c.want(200, "GET", "/mrd/metrics/current", nil, nil)
	c.token = ""

	// Measurements: post (jsonb args, kwargs, context), get, list, grouped.
	now := float64(time.Now().Unix())
	name := "/round/" + tag
	var ids struct{ IDs []int64 }
	c.want(201, "POST", "/api/measurements", fmt.Sprintf(`[{"name":%q,"method":"GET","startedAt":%v,"endedAt":%v,
		"args":["a",1],"kwargs":{"k":"v"},"context":{"url":"http://x/y"}}]`, name, now-10, now-9.5), &ids)
	if len(ids.IDs) != 1 {
		t.Fatalf("POST /api/measurements: ids %v", ids.IDs)
	}
	_, _, one := c.do("GET", fmt.Sprintf("/api/measurements/%d", ids.IDs[0]), nil)
	if !strings.Contains(string(one), `"k":"v"`) {
		t.Fatalf("measurement %d: %s", ids.IDs[0], one)
	}
	var mlist struct{ Total int64 }
	c.want(200, "GET", "/api/measurements/?name="+url.QueryEscape(name), nil, &mlist)
	if mlist.Total != 1 {
		t.Fatalf("measurements named %s: total %d, want 1", name, mlist.Total)
	}
	var grouped struct{ Total int64 }
	c.want(200, "GET", "/api/measurements/grouped/?name="+url.QueryEscape(name), nil, &grouped)
	if grouped.Total != 1 {
		t.Fatalf("grouped measurements named %s: total %d, want 1", name, grouped.Total)
	}

	// Collections: create, read, delete (at most 10 exist at a time).
	h := c.want(201, "POST", "/appmetrics/api/v1/collections", nil, nil)
	loc := h.Get("Location")
	if loc == "" {
		t.Fatal("POST collections: no Location")
	}
	c.want(200, "GET", "/appmetrics/api/v1/"+loc, nil, nil)
	c.want(204, "DELETE", "/appmetrics/api/v1/"+loc, nil, nil)
	return c.sent
}
