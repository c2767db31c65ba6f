package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// rangeFlows spans hours 10 to 12 with three talkers of different sizes.
const rangeFlows = `[
 {"src_app": "web", "dest_app": "db", "vpc_id": "vpc-0", "bytes_tx": 10, "bytes_rx": 20, "hour": 10},
 {"src_app": "web", "dest_app": "cache", "vpc_id": "vpc-0", "bytes_tx": 500, "bytes_rx": 500, "hour": 11},
 {"src_app": "batch", "dest_app": "db", "vpc_id": "vpc-1", "bytes_tx": 1, "bytes_rx": 1, "hour": 11},
 {"src_app": "batch", "dest_app": "db", "vpc_id": "vpc-1", "bytes_tx": 300, "bytes_rx": 0, "hour": 10},
 {"src_app": "web", "dest_app": "db", "vpc_id": "vpc-0", "bytes_tx": 7, "bytes_rx": 7, "hour": 12},
 {"src_app": "web", "dest_app": "db", "vpc_id": "vpc-0", "bytes_tx": 9999, "bytes_rx": 9999, "hour": 9}
]`

// flowRows renders a page's items as "hour:src>dest@vpc" for comparison.
func flowRows(items []Flow) string {
	var b []string
	for _, f := range items {
		b = append(b, fmt.Sprintf("%d:%s>%s@%s", f.Hour, f.SrcApp, f.DestApp, f.VpcID))
	}
	return strings.Join(b, " ")
}

func TestFlowsRangeFiltersAndSort(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	s.do("POST", "/flows", rangeFlows).wantStatus(t, http.StatusCreated)
	cases := []struct {
		query, want string
	}{
		// [from_hour, to_hour): hour 9 and hour 12 are outside.
		{"from_hour=10&to_hour=12", "10:batch>db@vpc-1 10:web>db@vpc-0 11:batch>db@vpc-1 11:web>cache@vpc-0"},
		{"from_hour=10&to_hour=12&sort=hour,desc", "11:web>cache@vpc-0 11:batch>db@vpc-1 10:web>db@vpc-0 10:batch>db@vpc-1"},
		{"from_hour=10&to_hour=13&src_app=web", "10:web>db@vpc-0 11:web>cache@vpc-0 12:web>db@vpc-0"},
		{"from_hour=10&to_hour=13&dest_app=db", "10:batch>db@vpc-1 10:web>db@vpc-0 11:batch>db@vpc-1 12:web>db@vpc-0"},
		{"from_hour=10&to_hour=13&vpc_id=vpc-1", "10:batch>db@vpc-1 11:batch>db@vpc-1"},
		{"from_hour=10&to_hour=13&src_app=web&dest_app=db&vpc_id=vpc-0", "10:web>db@vpc-0 12:web>db@vpc-0"},
		{"from_hour=10&to_hour=13&src_app=nobody", ""},
		// Top talkers: bytes_tx + bytes_rx, largest first by default.
		{"from_hour=10&to_hour=13&sort=bytes", "11:web>cache@vpc-0 10:batch>db@vpc-1 10:web>db@vpc-0 12:web>db@vpc-0 11:batch>db@vpc-1"},
		{"from_hour=10&to_hour=13&sort=bytes,desc&size=2", "11:web>cache@vpc-0 10:batch>db@vpc-1"},
		{"from_hour=10&to_hour=13&sort=bytes,asc", "11:batch>db@vpc-1 12:web>db@vpc-0 10:web>db@vpc-0 10:batch>db@vpc-1 11:web>cache@vpc-0"},
		// The direction in either case, as the measurements take it.
		{"from_hour=10&to_hour=13&sort=bytes,ASC", "11:batch>db@vpc-1 12:web>db@vpc-0 10:web>db@vpc-0 10:batch>db@vpc-1 11:web>cache@vpc-0"},
		{"from_hour=10&to_hour=12&sort=hour,Desc", "11:web>cache@vpc-0 11:batch>db@vpc-1 10:web>db@vpc-0 10:batch>db@vpc-1"},
		// The seed's hour still answers one hour, in key order, and takes the filters.
		{"hour=11", "11:batch>db@vpc-1 11:web>cache@vpc-0"},
		{"hour=11&src_app=web", "11:web>cache@vpc-0"},
		{"hour=11&sort=bytes,desc", "11:web>cache@vpc-0 11:batch>db@vpc-1"},
	}
	for _, c := range cases {
		var page Page[Flow]
		s.do("GET", "/flows?"+c.query, nil).wantStatus(t, http.StatusOK).decode(t, &page)
		if got := flowRows(page.Items); got != c.want {
			t.Errorf("%s:\n got  %s\n want %s", c.query, got, c.want)
		}
	}
	// Pages of a range do not overlap, and a page past the end keeps the total.
	var p1, p2, past Page[Flow]
	s.do("GET", "/flows?from_hour=9&to_hour=13&sort=bytes&size=3", nil).decode(t, &p1)
	r := s.do("GET", "/flows?from_hour=9&to_hour=13&sort=bytes&size=3&page=2", nil).wantStatus(t, http.StatusOK)
	r.decode(t, &p2)
	s.do("GET", "/flows?from_hour=9&to_hour=13&sort=bytes&size=3&page=9", nil).decode(t, &past)
	if p1.Total != 6 || p2.Total != 6 || past.Total != 6 || len(past.Items) != 0 ||
		flowRows(append(p1.Items, p2.Items...)) != "9:web>db@vpc-0 11:web>cache@vpc-0 10:batch>db@vpc-1 10:web>db@vpc-0 12:web>db@vpc-0 11:batch>db@vpc-1" {
		t.Fatalf("pages: %+v %+v %+v", p1, p2, past)
	}
	if link := r.Header.Get("Link"); !strings.Contains(link, "from_hour=9") || !strings.Contains(link, "sort=bytes") {
		t.Fatalf("Link %q loses the filter", link)
	}
	// The widest range allowed answers.
	s.do("GET", "/flows?from_hour=0&to_hour=744", nil).wantStatus(t, http.StatusOK)
}

func TestFlowsSummary(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	s.do("POST", "/flows", rangeFlows).wantStatus(t, http.StatusCreated)
	render := func(items []FlowTotal) string {
		var b []string
		for _, t := range items {
			b = append(b, fmt.Sprintf("%s=%d+%d=%d", t.Key, t.BytesTx, t.BytesRx, t.Bytes))
		}
		return strings.Join(b, " ")
	}
	cases := []struct {
		query, want string
		total       int64
	}{
		{"from_hour=10&to_hour=13&by=src_app", "web=517+527=1044 batch=301+1=302", 2},
		{"from_hour=10&to_hour=13&by=dest_app", "cache=500+500=1000 db=318+28=346", 2},
		{"from_hour=10&to_hour=13&by=vpc_id", "vpc-0=517+527=1044 vpc-1=301+1=302", 2},
		{"from_hour=9&to_hour=13&by=src_app", "web=10516+10526=21042 batch=301+1=302", 2},
		{"from_hour=10&to_hour=13&by=dest_app&src_app=web", "cache=500+500=1000 db=17+27=44", 2},
		{"from_hour=10&to_hour=13&by=src_app&vpc_id=vpc-1&dest_app=db", "batch=301+1=302", 1},
		{"hour=11&by=src_app", "web=500+500=1000 batch=1+1=2", 2},
		{"from_hour=10&to_hour=13&by=src_app&size=1&page=2", "batch=301+1=302", 2},
		{"from_hour=10&to_hour=13&by=src_app&size=1&page=3", "", 2},
		{"from_hour=100&to_hour=101&by=src_app", "", 0},
	}
	for _, c := range cases {
		var page Page[FlowTotal]
		s.do("GET", "/flows/summary?"+c.query, nil).wantStatus(t, http.StatusOK).decode(t, &page)
		if got := render(page.Items); got != c.want || page.Total != c.total || page.Items == nil {
			t.Errorf("%s: got %q total %d, want %q total %d", c.query, got, page.Total, c.want, c.total)
		}
	}
}

// A total past 64 bits is a 422 naming the problem, never a wrapped number.
func TestFlowsSummaryOverflow(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	s.do("POST", "/flows", `[
	 {"src_app": "a", "dest_app": "b", "vpc_id": "v", "bytes_tx": 9223372036854775807, "bytes_rx": 0, "hour": 1},
	 {"src_app": "a", "dest_app": "b", "vpc_id": "v", "bytes_tx": 9223372036854775807, "bytes_rx": 0, "hour": 2}
	]`).wantStatus(t, http.StatusCreated)
	s.do("GET", "/flows/summary?from_hour=1&to_hour=3&by=src_app", nil).problem(t, http.StatusUnprocessableEntity)
	// Sorting by bytes_tx + bytes_rx does not overflow: the sum is not stored.
	s.do("GET", "/flows?from_hour=1&to_hour=3&sort=bytes", nil).wantStatus(t, http.StatusOK)
}

func TestFlowsRangeValidation(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	cases := []struct {
		path, location, title string
	}{
		{"/flows?hour=1&from_hour=1&to_hour=2", "query.from_hour", "excluded"},
		{"/flows?hour=1&to_hour=2", "query.to_hour", "excluded"},
		{"/flows?from_hour=5", "query.to_hour", "required"},
		{"/flows?to_hour=5", "query.from_hour", "required"},
		{"/flows?from_hour=5&to_hour=5", "query.to_hour", "min"},
		{"/flows?from_hour=5&to_hour=4", "query.to_hour", "min"},
		{"/flows?from_hour=0&to_hour=745", "query.to_hour", "max"},
		{"/flows?from_hour=x&to_hour=5", "query.from_hour", "type"},
		{"/flows?from_hour=-1&to_hour=5", "query.from_hour", "min"},
		{"/flows?from_hour=1&to_hour=2147483649", "query.to_hour", "max"},
		{"/flows?hour=1&sort=size", "query.sort", "oneof"},
		{"/flows?hour=1&sort=bytes,up", "query.sort", "oneof"},
		{"/flows?hour=1&src_app=" + strings.Repeat("a", 256), "query.src_app", "max"},
		{"/flows/summary?by=src_app", "query.hour", "required"},
		{"/flows/summary?from_hour=1&to_hour=2", "query.by", "required"},
		{"/flows/summary?from_hour=1&to_hour=2&by=hour", "query.by", "oneof"},
		{"/flows/summary?from_hour=3&to_hour=2&by=src_app", "query.to_hour", "min"},
		{"/flows/summary?from_hour=0&to_hour=1000&by=src_app", "query.to_hour", "max"},
		{"/flows/summary?hour=1&from_hour=1&to_hour=2&by=src_app", "query.from_hour", "excluded"},
		{"/flows/summary?hour=1&by=src_app&size=101", "query.size", "max"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			p := s.do("GET", c.path, nil).problem(t, http.StatusUnprocessableEntity)
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
}
