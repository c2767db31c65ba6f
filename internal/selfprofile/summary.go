package selfprofile

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/telemetry/telemetry/internal/store"
)

// Summaries: a row of measurements costs PostgreSQL tens of microseconds
// (its indexes and rollups), as much as a whole device report, so a row
// per request made self-profiling cost a quarter to a third of the
// service's throughput under load. Each second, the first Detail requests
// still get a row of their own (everything a quiet service serves); the
// rest are counted into one row per route, method, path, operation and
// status of the second they started in. A summary row keeps what the
// collections API and a reader of app=telemetry need exactly: how many
// requests (context.count), their mean elapsed (the row's elapsed), their
// total and longest (context.elapsedTotal, context.elapsedMax, seconds),
// the earliest start and the latest end. It leaves out what differs from
// request to request: the query (args, url is the path), the headers and
// the client address. Summing into a map under the profiler's mutex costs
// a request well under a microsecond and no allocation once its key exists.

// sumKey groups the requests one summary row stands for.
type sumKey struct {
	sec                       int64 // Unix second of the start
	pattern, method, path, op string
	status                    int
}

// sumVal is what a summary row adds up.
type sumVal struct {
	n              int64
	first, last    time.Time // earliest start, latest end
	total, longest time.Duration
	params         [][2]string // path parameters, from the first request
}

// detailed reports whether the request that ended in second sec gets a row
// of its own, and counts it against that second's budget. The budget only
// moves forward: concurrent requests reach the profiler a little out of
// the order they ended in, and one that ended in the second before the
// budget's is summarised, not given a fresh budget for its second (which
// the next request, of the newer second, would then reset again: around
// each second's turn the budget could be granted many times over). A
// second further back is the wall clock stepped back: the budget starts
// again from there.
func (p *Profiler) detailed(sec int64) bool {
	if p.cfg.Detail < 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case sec == p.detailSec-1:
		return false
	case sec != p.detailSec:
		p.detailSec, p.detailN = sec, 0
	}
	if p.detailN >= p.cfg.Detail {
		return false
	}
	p.detailN++
	return true
}

// cut is s clipped to n bytes without a copy (clip copies), for look-ups.
func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// summarise counts s into its summary row.
func (p *Profiler) summarise(s Served) {
	r := s.Request
	k := sumKey{sec: s.Start.Unix(), pattern: cut(s.Route, maxValue), method: Method(r.Method),
		path: cut(r.URL.Path, maxValue), op: cut(s.OperationID, maxValue), status: s.Status}
	el := max(s.End.Sub(s.Start), 0)
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.drops.WithLabelValues("closed").Inc()
		return
	}
	v, ok := p.sums[k]
	if !ok {
		if len(p.buf)+len(p.sums) >= p.cfg.BufferSize {
			p.dropped++
			p.mu.Unlock()
			p.drops.WithLabelValues("buffer_full").Inc()
			return
		}
		if p.sums == nil {
			p.sums = map[sumKey]sumVal{}
		}
		// A new key keeps copies, not the request's memory.
		k.pattern, k.path, k.op = strings.Clone(k.pattern), strings.Clone(k.path), strings.Clone(k.op) // the method is a constant
		v = sumVal{first: s.Start, last: s.End, params: pathParams(r)}
	}
	v.n++
	v.total += el
	v.longest = max(v.longest, el)
	if s.Start.Before(v.first) {
		v.first = s.Start
	}
	if s.End.After(v.last) {
		v.last = s.End
	}
	p.sums[k] = v
	full := len(p.buf)+len(p.sums) >= p.cfg.FlushAt
	p.mu.Unlock()
	p.recorded.Inc()
	p.summarised.Inc()
	if full && !ok {
		select {
		case p.wake <- struct{}{}:
		default:
		}
	}
}

// pathParams are the request's chi path parameters, clipped and copied.
func pathParams(r *http.Request) [][2]string {
	var params [][2]string
	if rc := chi.RouteContext(r.Context()); rc != nil {
		for i, k := range rc.URLParams.Keys {
			if k != "*" && i < len(rc.URLParams.Values) && len(params) < maxParams {
				params = append(params, [2]string{clip(k, maxValue), clip(rc.URLParams.Values[i], maxValue)})
			}
		}
	}
	return params
}

// record turns a summary into its measurement, cleaned as entry.record
// cleans a request's.
func (k sumKey) record(v sumVal) store.Measurement {
	kwargs := make(map[string]string, len(v.params))
	for _, kv := range v.params {
		kwargs[clean(kv[0], maxValue)] = clean(kv[1], maxValue)
	}
	path := clean(k.path, maxValue)
	mean := v.total / time.Duration(max(v.n, 1))
	ctx := map[string]any{"url": path, "path": path, "args": map[string]string{}, "headers": map[string]string{},
		"status": k.status, "count": v.n, "elapsedTotal": v.total.Seconds(), "elapsedMax": v.longest.Seconds()}
	if op := clean(k.op, maxValue); op != "" {
		ctx["func"] = op
	}
	kj, _ := json.Marshal(kwargs)
	cj, _ := json.Marshal(ctx)
	name := clean(k.pattern, maxValue)
	if name == "" {
		name = "unmatched"
	}
	end := v.last
	if end.Before(v.first) {
		end = v.first
	}
	return store.Measurement{
		StartedAt: v.first, EndedAt: end, Elapsed: mean.Seconds(),
		Name: name, Method: k.method, Args: []byte("[]"), Kwargs: kj, Context: cj, App: App,
	}
}
