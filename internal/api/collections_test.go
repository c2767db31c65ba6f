package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/runtimestats"
	"github.com/telemetry/telemetry/internal/selfprofile"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

const collectionsURL = "/appmetrics/api/v1/collections"

// collectionsEnv tunes newCollectionServers.
type collectionsEnv struct {
	servers int           // API servers, each with its own pool, like separate processes (default 1)
	profile bool          // self-profiling on, as in production
	detail  int           // selfprofile.Config.Detail (0: its default)
	sample  time.Duration // > 0: a runtime sampler per server at this interval
}

// newCollectionServers starts env.servers APIs sharing one fresh database,
// each over its own pool as separate server processes would be.
func newCollectionServers(t *testing.T, env collectionsEnv) []*testServer {
	t.Helper()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	url := testdb.URL(t)
	servers := make([]*testServer, max(env.servers, 1))
	for i := range servers {
		pool, err := pgxpool.New(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		prom := metrics.New()
		st := postgres.New(pool, postgres.Options{})
		var prof *selfprofile.Profiler
		if env.profile {
			prof = selfprofile.New(st.Measurements, nil, prom.Registry, selfprofile.Config{Sample: 1, Exclude: cfg.SelfProfileExclude, Detail: env.detail})
			prof.Start()
			t.Cleanup(func() { prof.Close(context.Background()) })
		}
		if env.sample > 0 {
			sampler := runtimestats.New(postgres.New(pool, postgres.Options{}).Runtime, nil, prom.Registry, runtimestats.Config{Interval: env.sample})
			sampler.Start()
			t.Cleanup(sampler.Close)
		}
		h, _ := New(Deps{Store: st.Stores(), Config: cfg, Metrics: prom, Profiler: prof})
		srv := newHTTPTest(t, h)
		servers[i] = &testServer{Server: srv, Pool: pool, Metrics: prom, t: t}
	}
	return servers
}

type collectionList struct {
	CollectionURIs []string `json:"collectionUris"`
}

func listCollectionURIs(t *testing.T, s *testServer) []string {
	t.Helper()
	r := s.do("GET", collectionsURL, nil).wantStatus(t, http.StatusOK)
	var l collectionList
	r.decode(t, &l)
	if l.CollectionURIs == nil {
		t.Fatalf("collectionUris is not an array: %s", r.Body)
	}
	return l.CollectionURIs
}

// createCollection posts a collection and checks the 201 answer's shape.
func createCollection(t *testing.T, s *testServer) string {
	t.Helper()
	r := s.do("POST", collectionsURL, nil).wantStatus(t, http.StatusCreated)
	var body struct {
		URI string `json:"uri"`
	}
	r.decode(t, &body)
	if !strings.HasPrefix(body.URI, "collections/") || r.Header.Get("Location") != body.URI {
		t.Fatalf("created %s with Location %q", r.Body, r.Header.Get("Location"))
	}
	return body.URI
}

func getCollection(t *testing.T, s *testServer, uri string) Collection {
	t.Helper()
	var c Collection
	s.do("GET", collectionsURL+"/"+strings.TrimPrefix(uri, "collections/"), nil).wantStatus(t, http.StatusOK).decode(t, &c)
	return c
}

func TestCollectionsLifecycle(t *testing.T) {
	t.Parallel()
	s := newCollectionServers(t, collectionsEnv{})[0]

	// A fresh store: an empty list, then ids from 0.
	if r := s.do("GET", collectionsURL, nil).wantStatus(t, http.StatusOK); strings.TrimSpace(string(r.Body)) != `{"collectionUris":[]}` {
		t.Fatalf("empty list = %s", r.Body)
	}
	r := s.do("POST", collectionsURL, nil).wantStatus(t, http.StatusCreated)
	if string(r.Body) != `{"uri":"collections/0"}`+"\n" && string(r.Body) != `{"uri":"collections/0"}` {
		t.Fatalf("first create = %s", r.Body)
	}
	if loc := r.Header.Get("Location"); loc != "collections/0" {
		t.Fatalf("Location = %q", loc)
	}
	if uri := createCollection(t, s); uri != "collections/1" {
		t.Fatalf("second create = %s", uri)
	}
	if got := listCollectionURIs(t, s); fmt.Sprint(got) != "[collections/0 collections/1]" {
		t.Fatalf("list = %v", got)
	}

	// Read: the seed's document, zeros before any runtime sample and no traffic (no profiler here).
	before := time.Now().UnixMilli()
	r = s.do("GET", collectionsURL+"/0", nil).wantStatus(t, http.StatusOK)
	after := time.Now().UnixMilli()
	want := `{"id":0,"time":{"data":{"start":%d,"end":%d},"units":{"start":"UNIX time (ms)","end":"UNIX time (ms)"}},` +
		`"cpu":{"data":{"systemMean":0,"systemPeak":0,"processMean":0,"processPeak":0},"units":{"systemMean":"decimal fraction",` +
		`"systemPeak":"decimal fraction","processMean":"decimal fraction","processPeak":"decimal fraction"}},` +
		`"gc":{"data":{"gcTime":0},"units":{"gcTime":"decimal fraction"}},` +
		`"memory":{"data":{"usedHeapAfterGCPeak":0,"usedNativePeak":0},"units":{"usedHeapAfterGCPeak":"bytes","usedNativePeak":"bytes"}},` +
		`"httpUrls":{"data":[],"units":{"averageResponseTime":"ms","longestResponseTime":"ms","hits":"count"}}}`
	var c Collection
	r.decode(t, &c)
	if got := strings.TrimSpace(string(r.Body)); got != fmt.Sprintf(want, c.Time.Data.Start, c.Time.Data.End) {
		t.Fatalf("collection document\n got %s\nwant %s", got, fmt.Sprintf(want, c.Time.Data.Start, c.Time.Data.End))
	}
	if c.Time.Data.Start > c.Time.Data.End || c.Time.Data.End < before || c.Time.Data.End > after {
		t.Fatalf("time %+v, read between %d and %d", c.Time.Data, before, after)
	}

	// Clear: 204 without a body, same id, the window restarts now.
	time.Sleep(5 * time.Millisecond)
	beforeClear := time.Now().UnixMilli()
	r = s.do("PUT", collectionsURL+"/0", nil).wantStatus(t, http.StatusNoContent)
	if len(r.Body) != 0 {
		t.Fatalf("clear answered a body: %s", r.Body)
	}
	cleared := getCollection(t, s, "collections/0")
	if cleared.ID != 0 || cleared.Time.Data.Start < beforeClear || cleared.Time.Data.Start <= c.Time.Data.Start {
		t.Fatalf("after clear at %d: %+v (before: %+v)", beforeClear, cleared.Time.Data, c.Time.Data)
	}
	if got := listCollectionURIs(t, s); fmt.Sprint(got) != "[collections/0 collections/1]" {
		t.Fatalf("list after clear = %v", got)
	}

	// Delete: 204, then the id is gone for every operation and never reused.
	r = s.do("DELETE", collectionsURL+"/0", nil).wantStatus(t, http.StatusNoContent)
	if len(r.Body) != 0 {
		t.Fatalf("delete answered a body: %s", r.Body)
	}
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		s.do(m, collectionsURL+"/0", nil).problem(t, http.StatusNotFound)
	}
	if got := listCollectionURIs(t, s); fmt.Sprint(got) != "[collections/1]" {
		t.Fatalf("list after deleting 0 = %v", got)
	}
	if uri := createCollection(t, s); uri != "collections/2" {
		t.Fatalf("create after deleting 0 = %s, want collections/2", uri)
	}
	if got := listCollectionURIs(t, s); fmt.Sprint(got) != "[collections/1 collections/2]" {
		t.Fatalf("list = %v", got)
	}
}

// Every malformed or unknown id is a 404 problem, never a 422 or a 500
// (but for text PostgreSQL cannot take, a NUL or invalid UTF-8: a 422
// "unicode", as for every path id).
func TestCollectionsUnknownIDs(t *testing.T) {
	t.Parallel()
	s := newCollectionServers(t, collectionsEnv{})[0]
	createCollection(t, s) // collections/0 exists
	// 00 and 000 name no collection: ids are matched as the text the list
	// gives (collections/0), not as numbers.
	for _, id := range []string{"1", "7", "abc", "-1", "+0", "0.0", "1e3", "0x0", "%20", "0%20", "00", "000",
		"9223372036854775807", "9223372036854775808", "99999999999999999999999", "0;DROP"} {
		for _, m := range []string{"GET", "PUT", "DELETE"} {
			t.Run(m+" "+id, func(t *testing.T) {
				p := s.do(m, collectionsURL+"/"+id, nil).problem(t, http.StatusNotFound)
				if p.Detail == "" {
					t.Fatalf("no detail: %+v", p)
				}
			})
		}
	}
	// Untouched by all that.
	if got := listCollectionURIs(t, s); fmt.Sprint(got) != "[collections/0]" {
		t.Fatalf("list = %v", got)
	}
	// Other methods are 405 with Allow.
	r := s.do("PATCH", collectionsURL+"/0", nil)
	if r.Status != http.StatusMethodNotAllowed || !strings.Contains(r.Header.Get("Allow"), "PUT") {
		t.Fatalf("PATCH = %d Allow %q", r.Status, r.Header.Get("Allow"))
	}
}

// The 11th collection is a 400 problem; deleting one makes room again.
func TestCollectionsLimit(t *testing.T) {
	t.Parallel()
	s := newCollectionServers(t, collectionsEnv{})[0]
	for i := 0; i < MaxCollections; i++ {
		if uri := createCollection(t, s); uri != fmt.Sprintf("collections/%d", i) {
			t.Fatalf("create %d = %s", i, uri)
		}
	}
	p := s.do("POST", collectionsURL, nil).problem(t, http.StatusBadRequest)
	if !strings.Contains(p.Detail, "10") {
		t.Fatalf("detail %q", p.Detail)
	}
	s.do("POST", collectionsURL, nil).problem(t, http.StatusBadRequest)
	// A clear does not free a slot; a delete does, and the refused
	// creates used no id.
	s.do("PUT", collectionsURL+"/3", nil).wantStatus(t, http.StatusNoContent)
	s.do("POST", collectionsURL, nil).problem(t, http.StatusBadRequest)
	s.do("DELETE", collectionsURL+"/3", nil).wantStatus(t, http.StatusNoContent)
	if uri := createCollection(t, s); uri != "collections/10" {
		t.Fatalf("create after delete = %s", uri)
	}
	if got := listCollectionURIs(t, s); len(got) != MaxCollections || got[3] != "collections/4" || got[9] != "collections/10" {
		t.Fatalf("list = %v", got)
	}
}

// Many creates racing through three server processes (three pools on one
// database): exactly 10 succeed.
func TestCollectionsLimitUnderRace(t *testing.T) {
	t.Parallel()
	servers := newCollectionServers(t, collectionsEnv{servers: 3})
	const n = 30
	statuses := make([]int, n)
	uris := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("POST", servers[i%len(servers)].URL+collectionsURL, nil)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			statuses[i], uris[i] = res.StatusCode, res.Header.Get("Location")
		}()
	}
	close(start)
	wg.Wait()
	var created []string
	for i, st := range statuses {
		switch st {
		case http.StatusCreated:
			created = append(created, uris[i])
		case http.StatusBadRequest:
		default:
			t.Fatalf("create %d answered %d", i, st)
		}
	}
	if len(created) != MaxCollections {
		t.Fatalf("%d creates succeeded, want %d: %v", len(created), MaxCollections, created)
	}
	// Ids 0..9, each once; every server lists the same ten in id order.
	want := make([]string, MaxCollections)
	for i := range want {
		want[i] = fmt.Sprintf("collections/%d", i)
	}
	sort.Slice(created, func(i, j int) bool {
		return len(created[i]) < len(created[j]) || (len(created[i]) == len(created[j]) && created[i] < created[j])
	})
	if fmt.Sprint(created) != fmt.Sprint(want) {
		t.Fatalf("created %v, want %v", created, want)
	}
	for _, s := range servers {
		if got := listCollectionURIs(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("list = %v", got)
		}
	}
}

// Collections live in the database: one server creates, another reads,
// clears and deletes.
func TestCollectionsSharedAcrossServers(t *testing.T) {
	t.Parallel()
	servers := newCollectionServers(t, collectionsEnv{servers: 2})
	a, b := servers[0], servers[1]
	uri := createCollection(t, a)
	if c := getCollection(t, b, uri); c.ID != 0 {
		t.Fatalf("b read %+v", c)
	}
	b.do("PUT", collectionsURL+"/0", nil).wantStatus(t, http.StatusNoContent)
	b.do("DELETE", collectionsURL+"/0", nil).wantStatus(t, http.StatusNoContent)
	a.do("GET", collectionsURL+"/0", nil).problem(t, http.StatusNotFound)
	if uri := createCollection(t, a); uri != "collections/1" {
		t.Fatalf("a created %s after b deleted 0", uri)
	}
}

// urlEntry finds the httpUrls entry of (url, method).
func urlEntry(c Collection, url, method string) (CollectionURL, bool) {
	for _, u := range c.HTTPURLs.Data {
		if u.URL == url && u.Method == method {
			return u, true
		}
	}
	return CollectionURL{}, false
}

// The service's own requests sent after the window opened show in
// httpUrls per (path without query, method); those before it do not.
func TestCollectionHTTPURLs(t *testing.T) {
	t.Parallel()
	s := newCollectionServers(t, collectionsEnv{profile: true})[0]

	// Before the window.
	for i := 0; i < 2; i++ {
		s.do("GET", "/flows?hour=1", nil).wantStatus(t, http.StatusOK)
	}
	s.do("GET", "/api/measurements/methodDistribution/", nil).wantStatus(t, http.StatusOK)
	uri := createCollection(t, s)

	// In the window.
	const gets = 3
	for i := 0; i < gets; i++ {
		s.do("GET", fmt.Sprintf("/flows?hour=%d&page=1", i), nil).wantStatus(t, http.StatusOK)
	}
	s.do("POST", "/flows", []Flow{{SrcApp: "a", DestApp: "b", VpcID: "v", BytesTx: 1, BytesRx: 2, Hour: 1}}).wantStatus(t, http.StatusCreated)
	s.do("GET", "/no/such/path", nil).wantStatus(t, http.StatusNotFound)
	s.do("GET", "/healthz", nil).wantStatus(t, http.StatusOK) // excluded from self-profiling

	// Rows are flushed at least every second: poll, never assume a time.
	var c Collection
	deadline := time.Now().Add(15 * time.Second)
	for {
		c = getCollection(t, s, uri)
		if _, ok := urlEntry(c, "/no/such/path", "GET"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("traffic never showed up: %+v", c.HTTPURLs.Data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	flows, ok := urlEntry(c, "/flows", "GET")
	if !ok || flows.Hits != gets {
		t.Fatalf("GET /flows entry %+v (found %v), want %d hits: %+v", flows, ok, gets, c.HTTPURLs.Data)
	}
	post, ok := urlEntry(c, "/flows", "POST")
	if !ok || post.Hits != 1 {
		t.Fatalf("POST /flows entry %+v: %+v", post, c.HTTPURLs.Data)
	}
	for _, e := range []CollectionURL{flows, post} {
		// Plausible: positive, the longest not below the mean, under a minute, in ms.
		if !(e.AverageResponseTime > 0 && e.LongestResponseTime >= e.AverageResponseTime && e.LongestResponseTime < 60000) {
			t.Fatalf("implausible response times %+v", e)
		}
	}
	if post.AverageResponseTime != post.LongestResponseTime {
		t.Fatalf("one hit but mean %v != longest %v", post.AverageResponseTime, post.LongestResponseTime)
	}
	// The elapsed seconds stored match the ms shown.
	var maxSec float64
	if err := s.Pool.QueryRow(context.Background(), `SELECT max(elapsed) FROM measurements
		WHERE app = 'telemetry' AND method = 'POST' AND context->>'path' = '/flows'`).Scan(&maxSec); err != nil {
		t.Fatal(err)
	}
	if math.Abs(maxSec*1000-post.LongestResponseTime) > 1e-6 {
		t.Fatalf("longest %v ms, stored %v s", post.LongestResponseTime, maxSec)
	}
	for _, u := range c.HTTPURLs.Data {
		switch {
		case u.URL == "/api/measurements/methodDistribution/", u.URL == "/healthz",
			u.URL == collectionsURL && u.Method == "POST", strings.Contains(u.URL, "?"):
			t.Fatalf("entry %+v should not be in the window: %+v", u, c.HTTPURLs.Data)
		}
	}
	if !sort.SliceIsSorted(c.HTTPURLs.Data, func(i, j int) bool {
		a, b := c.HTTPURLs.Data[i], c.HTTPURLs.Data[j]
		return a.URL < b.URL || (a.URL == b.URL && a.Method < b.Method)
	}) {
		t.Fatalf("entries not in url, method order: %+v", c.HTTPURLs.Data)
	}

	// A clear restarts the window: every request so far started before it.
	s.do("PUT", collectionsURL+"/0", nil).wantStatus(t, http.StatusNoContent)
	if c := getCollection(t, s, uri); len(c.HTTPURLs.Data) != 0 {
		t.Fatalf("after clear httpUrls = %+v", c.HTTPURLs.Data)
	}
}

// The runtime figures aggregate every instance's samples in the window:
// time-weighted means, peaks, GC time over the capacity available to Go.
func TestCollectionRuntimeFigures(t *testing.T) {
	t.Parallel()
	s := newCollectionServers(t, collectionsEnv{})[0]
	uri := createCollection(t, s)
	ctx := context.Background()
	var start time.Time
	if err := s.Pool.QueryRow(ctx, `UPDATE collections SET started_at = date_trunc('second', now()) - interval '1 minute'
		WHERE id = 0 RETURNING started_at`).Scan(&start); err != nil {
		t.Fatal(err)
	}
	const a, b = "00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b"
	type smp struct {
		id              string
		at              time.Duration // after start
		interval        float64
		process, system any
		gc              float64
		procs           int
		heap, rss       int64
	}
	for _, x := range []smp{
		{a, 2 * time.Second, 5, 0.5, 0.6, 1.0, 2, 100, 1000},      // 2 s of it in the window
		{a, 7 * time.Second, 5, 0.1, 0.2, 0.5, 2, 300, 900},       // all of it
		{b, 5 * time.Second, 5, 0.3, nil, 0, 4, 200, 2000},        // no system figure
		{b, -time.Second, 5, 0.99, 0.99, 5, 1, 1 << 40, 1 << 40},  // before the window
		{b, 2 * time.Hour, 5, 0.99, 0.99, 5, 1, 1 << 40, 1 << 40}, // after now
	} {
		if _, err := s.Pool.Exec(ctx, `INSERT INTO runtime_samples (time, instance_id, interval_seconds, process_cpu,
			system_cpu, gc_cpu_seconds, gc_pause_seconds, gc_cycles, gomaxprocs, heap_live_bytes, go_memory_bytes, rss_bytes, goroutines)
			VALUES ($1, $2, $3, $4, $5, $6, 0, 1, $7, $8, $8, $9, 10)`,
			start.Add(x.at), x.id, x.interval, x.process, x.system, x.gc, x.procs, x.heap, x.rss); err != nil {
			t.Fatal(err)
		}
	}
	c := getCollection(t, s, uri)
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
	cpu := c.CPU.Data
	if !near(cpu.SystemMean, (2*0.6+5*0.2)/7) || cpu.SystemPeak != 0.6 ||
		!near(cpu.ProcessMean, (2*0.5+5*0.1+5*0.3)/12) || cpu.ProcessPeak != 0.5 {
		t.Fatalf("cpu %+v", cpu)
	}
	if want := (1.0*2/5 + 0.5) / (2*2 + 5*2 + 5*4); !near(c.GC.Data.GCTime, want) {
		t.Fatalf("gcTime %v, want %v", c.GC.Data.GCTime, want)
	}
	if c.Memory.Data.UsedHeapAfterGCPeak != 300 || c.Memory.Data.UsedNativePeak != 2000 {
		t.Fatalf("memory %+v", c.Memory.Data)
	}
	if c.Time.Data.Start != start.UnixMilli() {
		t.Fatalf("start %d, want %d", c.Time.Data.Start, start.UnixMilli())
	}
}

// With the real sampler running, a fresh collection soon has figures, all
// in range.
func TestCollectionWithLiveSampler(t *testing.T) {
	t.Parallel()
	s := newCollectionServers(t, collectionsEnv{sample: 100 * time.Millisecond})[0]
	uri := createCollection(t, s)
	runtime.GC() // so that the heap live after GC is known
	deadline := time.Now().Add(15 * time.Second)
	var c Collection
	for {
		c = getCollection(t, s, uri)
		if c.Memory.Data.UsedNativePeak > 0 && c.Memory.Data.UsedHeapAfterGCPeak > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no runtime figures after 15 s: %+v %+v", c.CPU.Data, c.Memory.Data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for name, f := range map[string]float64{"systemMean": c.CPU.Data.SystemMean, "systemPeak": c.CPU.Data.SystemPeak,
		"processMean": c.CPU.Data.ProcessMean, "processPeak": c.CPU.Data.ProcessPeak, "gcTime": c.GC.Data.GCTime} {
		if f < 0 || f > 1 || math.IsNaN(f) {
			t.Fatalf("%s = %v, not a fraction", name, f)
		}
	}
	if c.CPU.Data.ProcessMean > c.CPU.Data.ProcessPeak+1e-9 || c.CPU.Data.SystemMean > c.CPU.Data.SystemPeak+1e-9 {
		t.Fatalf("mean above peak: %+v", c.CPU.Data)
	}
	if c.Memory.Data.UsedNativePeak < c.Memory.Data.UsedHeapAfterGCPeak {
		t.Fatalf("resident %d below live heap %d", c.Memory.Data.UsedNativePeak, c.Memory.Data.UsedHeapAfterGCPeak)
	}
}

// Database failures: 503 with Retry-After when it cannot be reached, a
// 500 with a request id (and no driver text) for anything else.
func TestCollectionsDatabaseErrors(t *testing.T) {
	t.Parallel()
	cfg, _ := config.Load(func(string) string { return "" })
	pc, err := pgxpool.ParseConfig("postgres://nobody@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	dead, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dead.Close)
	h, _ := New(Deps{Store: postgres.New(dead, postgres.Options{}).Stores(), Config: cfg})
	srv := newHTTPTest(t, h)
	down := &testServer{Server: srv, Pool: dead, t: t}

	broken := newCollectionServers(t, collectionsEnv{})[0]
	createCollection(t, broken)
	if _, err := broken.Pool.Exec(context.Background(), "DROP TABLE runtime_samples"); err != nil {
		t.Fatal(err)
	}
	// Reading 0 needs runtime_samples; the others need collections, dropped afterwards.
	p := broken.do("GET", collectionsURL+"/0", nil).problem(t, http.StatusInternalServerError)
	if !strings.Contains(p.Detail, p.RequestID) || strings.Contains(p.Detail, "runtime_samples") {
		t.Fatalf("500 detail %q", p.Detail)
	}
	if _, err := broken.Pool.Exec(context.Background(), "DROP TABLE collections CASCADE"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ method, path string }{
		{"GET", collectionsURL}, {"POST", collectionsURL},
		{"GET", collectionsURL + "/0"}, {"PUT", collectionsURL + "/0"}, {"DELETE", collectionsURL + "/0"},
	} {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			r := down.do(tc.method, tc.path, nil)
			r.problem(t, http.StatusServiceUnavailable)
			if r.Header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
			p := broken.do(tc.method, tc.path, nil).problem(t, http.StatusInternalServerError)
			if strings.Contains(p.Detail, "collections\"") || strings.Contains(p.Detail, "SQLSTATE") {
				t.Fatalf("driver text leaked: %q", p.Detail)
			}
		})
	}
}

// An Accept the API cannot produce is a 406 problem.
func TestCollectionsNotAcceptable(t *testing.T) {
	t.Parallel()
	s := newCollectionServers(t, collectionsEnv{})[0]
	createCollection(t, s)
	for _, tc := range []struct{ method, path string }{
		{"GET", collectionsURL}, {"POST", collectionsURL},
		{"GET", collectionsURL + "/0"}, {"PUT", collectionsURL + "/0"}, {"DELETE", collectionsURL + "/0"},
	} {
		s.do(tc.method, tc.path, nil, "Accept", "text/html").problem(t, http.StatusNotAcceptable)
	}
	// Nothing was created, cleared or deleted by the refused requests.
	if got := listCollectionURIs(t, s); fmt.Sprint(got) != "[collections/0]" {
		t.Fatalf("list = %v", got)
	}
}

// Requests self-profiling summed into summary rows (past
// SELF_PROFILE_DETAIL a second; here every request) count in httpUrls
// exactly as rows of their own would: hits, mean and longest.
func TestCollectionHTTPURLsCountSummaries(t *testing.T) {
	t.Parallel()
	s := newCollectionServers(t, collectionsEnv{profile: true, detail: -1})[0]
	uri := createCollection(t, s)
	const gets = 40
	for i := range gets {
		s.do("GET", fmt.Sprintf("/flows?hour=%d", i), nil).wantStatus(t, http.StatusOK)
	}
	s.do("GET", "/no/such/path", nil).wantStatus(t, http.StatusNotFound)
	var c Collection
	deadline := time.Now().Add(15 * time.Second)
	for {
		c = getCollection(t, s, uri)
		if _, ok := urlEntry(c, "/no/such/path", "GET"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("traffic never showed up: %+v", c.HTTPURLs.Data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	flows, ok := urlEntry(c, "/flows", "GET")
	if !ok || flows.Hits != gets {
		t.Fatalf("GET /flows entry %+v (found %v), want %d hits: %+v", flows, ok, gets, c.HTTPURLs.Data)
	}
	var rows, counted int64
	var total, longest float64
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*), sum((context->>'count')::bigint),
		sum((context->>'elapsedTotal')::float8), max((context->>'elapsedMax')::float8)
		FROM measurements WHERE app = 'telemetry' AND method = 'GET' AND context->>'path' = '/flows'`).Scan(&rows, &counted, &total, &longest); err != nil {
		t.Fatal(err)
	}
	if rows >= gets || counted != gets {
		t.Fatalf("%d rows for %d requests (counted %d): not summarised", rows, gets, counted)
	}
	if math.Abs(flows.AverageResponseTime-total/gets*1000) > 1e-6 || math.Abs(flows.LongestResponseTime-longest*1000) > 1e-6 {
		t.Fatalf("entry %+v, stored total %v s, longest %v s", flows, total, longest)
	}
}

// A clear (PUT) or a DELETE while a collection is read, between its window
// and its figures (held here by a lock on runtime_samples), does not mix
// two windows: the answer is the new window with its own figures, or a
// 404 once deleted. It used to claim the old window with the cleared
// figures, or answer 200 for the deleted collection.
func TestCollectionReadDuringClearOrDelete(t *testing.T) {
	t.Parallel()
	for _, change := range []string{"PUT", "DELETE"} {
		t.Run(change, func(t *testing.T) {
			s := newCollectionServers(t, collectionsEnv{profile: true})[0]
			uri := createCollection(t, s)
			path := collectionsURL + "/" + strings.TrimPrefix(uri, "collections/")
			for range 3 {
				s.do("GET", "/flows?hour=1", nil).wantStatus(t, http.StatusOK)
			}
			var before Collection
			for deadline := time.Now().Add(15 * time.Second); ; {
				before = getCollection(t, s, uri)
				if e, ok := urlEntry(before, "/flows", "GET"); ok && e.Hits == 3 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the requests never showed up: %+v", before.HTTPURLs.Data)
				}
				time.Sleep(50 * time.Millisecond)
			}
			release := s.lockTable(t, "runtime_samples")
			got := make(chan response, 1)
			go func() { got <- s.do("GET", path, nil) }()
			waitForLockOn(t, s, "runtime_samples")
			s.do(change, path, nil).wantStatus(t, http.StatusNoContent)
			release()
			r := <-got
			if change == "DELETE" {
				r.problem(t, http.StatusNotFound)
				return
			}
			var c Collection
			r.wantStatus(t, http.StatusOK).decode(t, &c)
			if c.Time.Data.Start == before.Time.Data.Start {
				t.Fatalf("the answer claims the window before the clear (start %d)", c.Time.Data.Start)
			}
			if e, ok := urlEntry(c, "/flows", "GET"); ok && e.Hits != 0 {
				t.Fatalf("the cleared window holds the old window's GET /flows: %+v", e)
			}
		})
	}
}

// waitForLockOn waits until a session waits for a lock in a statement that
// names table.
func waitForLockOn(t *testing.T, s *testServer, table string) {
	t.Helper()
	for range 500 {
		var n int
		if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query ILIKE '%' || $1 || '%'`, table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no request waited for %s", table)
}
