package apiclient_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/api"
	"github.com/telemetry/telemetry/internal/apiclient"
	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// The points of the API users' wish list (strict parameters, exact client
// types, export, flows filters, percentiles, Swagger UI behind a prefix)
// end to end through the generated Go client, beside client_test.go and
// export_test.go. ts/main.ts does the same through the TypeScript client.

// testSecret signs the device tokens of these tests.
var testSecret = []byte("apiclient-test-secret-of-32-bytes!")

// newClientWith serves the API with cfg changed by tweak; the client's
// base URL is the server's plus prefix (a reverse proxy's path, stripped
// before the API sees it).
func newClientWith(t *testing.T, prefix string, tweak func(*config.Config)) (*apiclient.ClientWithResponses, string) {
	t.Helper()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.JWTSecret, cfg.EnableTokenEndpoint = testSecret, true
	if tweak != nil {
		tweak(&cfg)
	}
	h, _ := api.New(api.Deps{Store: postgres.New(testdb.New(t), postgres.Options{}).Stores(), Config: cfg})
	var handler http.Handler = h
	if prefix != "" {
		handler = http.StripPrefix(prefix, h)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	c, err := apiclient.NewClientWithResponses(srv.URL + prefix)
	if err != nil {
		t.Fatal(err)
	}
	return c, srv.URL
}

// withQuery adds a query parameter the generated types do not have.
func withQuery(name, value string) apiclient.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		q := req.URL.Query()
		q.Set(name, value)
		req.URL.RawQuery = q.Encode()
		return nil
	}
}

func accept(mediaType string) apiclient.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Accept", mediaType)
		return nil
	}
}

func bearer(token string) apiclient.RequestEditorFn {
	return func(_ context.Context, req *http.Request) error {
		req.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

// problemItem is the first item of a 422, or fails the test.
func problemItem(t *testing.T, p *apiclient.Problem, body []byte) apiclient.ProblemItem {
	t.Helper()
	if p == nil || p.Errors == nil || len(*p.Errors) == 0 {
		t.Fatalf("want a 422 problem with items, got %s", body)
	}
	return (*p.Errors)[0]
}

// Point 1: a parameter the operation does not take is a 422 item titled
// unknown naming it, decoded as the documented problem; the parameters
// flask-profiler's dashboard sends (limit) stay accepted.
func TestGeneratedClientUnknownParameter(t *testing.T) {
	t.Parallel()
	c, _ := newClientWith(t, "", nil)
	ctx := context.Background()
	hour := int64(1)
	res, err := c.ListFlowsWithResponse(ctx, &apiclient.ListFlowsParams{Hour: &hour}, withQuery("app", "web"))
	if err != nil {
		t.Fatal(err)
	}
	item := problemItem(t, res.ApplicationproblemJSON422, res.Body)
	if item.Title != "unknown" || item.Source == nil || *item.Source != "app" {
		t.Fatalf("unknown parameter: %s", res.Body)
	}

	now := float64(time.Now().UnixMicro()) / 1e6
	var body apiclient.PostMeasurementsJSONRequestBody
	for i := range 3 {
		body = append(body, apiclient.MeasurementInput{Name: "/limit", Method: "GET", StartedAt: now - 60 + float64(i), EndedAt: now - 59 + float64(i)})
	}
	if post, err := c.PostMeasurementsWithResponse(ctx, nil, body); err != nil || post.StatusCode() != http.StatusCreated {
		t.Fatalf("post: %v %v", err, post)
	}
	list, err := c.ListMeasurementsWithResponse(ctx, nil, withQuery("limit", "1"))
	if err != nil {
		t.Fatal(err)
	}
	if list.JSON200 == nil || len(list.JSON200.Items) != 1 || list.JSON200.Total != 3 {
		t.Fatalf("limit=1: %d %s", list.StatusCode(), list.Body)
	}
}

// Point 2: epoch times are float64 parameters and fields, hours int64;
// an empty list is an empty array, never null; events take a numeric
// startedAt; the alias paths hidden from the document are still served.
func TestGeneratedClientExactTypes(t *testing.T) {
	t.Parallel()
	c, base := newClientWith(t, "", nil)
	ctx := context.Background()
	// An hour of today (past 2^24, where a float32 loses units).
	hour := time.Now().Unix()/3600 - 1
	if post, err := c.PostFlowsWithResponse(ctx, nil, apiclient.PostFlowsJSONRequestBody{
		{SrcApp: "a", DestApp: "b", VpcId: "v", BytesTx: 1 << 53, BytesRx: 1, Hour: hour}}); err != nil || post.StatusCode() != http.StatusCreated {
		t.Fatalf("post: %v %v", err, post)
	}
	list, err := c.ListFlowsWithResponse(ctx, &apiclient.ListFlowsParams{Hour: &hour})
	if err != nil {
		t.Fatal(err)
	}
	if list.JSON200 == nil || len(list.JSON200.Items) != 1 || list.JSON200.Items[0].Hour != hour || list.JSON200.Items[0].BytesTx != 1<<53 {
		t.Fatalf("flows of hour %d: %s", hour, list.Body)
	}
	empty := hour + 1
	list, err = c.ListFlowsWithResponse(ctx, &apiclient.ListFlowsParams{Hour: &empty})
	if err != nil {
		t.Fatal(err)
	}
	if list.JSON200 == nil || list.JSON200.Items == nil || !strings.Contains(string(list.Body), `"items":[]`) {
		t.Fatalf("empty page: %s", list.Body)
	}

	// A run registered with an epoch startedAt (a number, with its
	// fraction) reads back as that instant.
	started := 1444780800.25
	var at apiclient.EventRegisterBody_StartedAt
	if err := at.FromEventRegisterBodyStartedAt1(started); err != nil {
		t.Fatal(err)
	}
	host := "locust-1"
	reg, err := c.RegisterEventWithResponse(ctx, nil, apiclient.RegisterEventJSONRequestBody{Hostname: &host, StartedAt: &at,
		Measurement: apiclient.EventRegisterMeasurement{Fields: apiclient.EventRegisterFields{}}})
	if err != nil || reg.JSON200 == nil {
		t.Fatalf("register: %v %s", err, reg.Body)
	}
	run, err := c.GetEventWithResponse(ctx, reg.JSON200.Uuid.String())
	if err != nil || run.JSON200 == nil {
		t.Fatalf("get run: %v %s", err, run.Body)
	}
	if want := time.UnixMilli(1444780800250); !run.JSON200.StartedAt.Equal(want) {
		t.Fatalf("startedAt %v, want %v", run.JSON200.StartedAt, want)
	}

	// The aliases are served, though no generated method names them.
	for _, path := range []string{"/api/measurements", "/api/v1/measurements/grouped/", "/api/v1/timeseries/"} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("alias %s: %d", path, res.StatusCode)
		}
	}
}

// Point 3: measurements exported as CSV and NDJSON through the generated
// client (Accept set by a request editor), read as they stream: more rows
// than a page, every field as the JSON list has it.
func TestGeneratedClientExportMeasurements(t *testing.T) {
	t.Parallel()
	c, _ := newClientWith(t, "", nil)
	ctx := context.Background()
	now := float64(time.Now().UnixMicro()) / 1e6
	app := "shop"
	var body apiclient.PostMeasurementsJSONRequestBody
	for i := range 250 {
		body = append(body, apiclient.MeasurementInput{Name: "/api/products/<id>", Method: "GET", App: &app,
			StartedAt: now - 3600 + float64(i) + 0.123456, EndedAt: now - 3600 + float64(i) + 0.5,
			Kwargs: &map[string]interface{}{"id": i, "q": `a "quoted", word`}})
	}
	if post, err := c.PostMeasurementsWithResponse(ctx, nil, body); err != nil || post.StatusCode() != http.StatusCreated {
		t.Fatalf("post: %v %v", err, post)
	}
	from := now - 7200
	params := &apiclient.ListMeasurementsParams{StartedAt: &from, App: &app, Sort: ptr("startedAt,asc")}

	res, err := c.ListMeasurements(ctx, params, accept("text/csv"))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV export: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	r := csv.NewReader(res.Body)
	header, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(header, ","); got != "id,name,method,startedAt,endedAt,elapsed,args,kwargs,context,app" {
		t.Fatalf("CSV header %s", got)
	}
	n := 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("CSV row %d: %v", n+1, err)
		}
		var kw map[string]any
		if err := json.Unmarshal([]byte(rec[7]), &kw); err != nil || kw["q"] != `a "quoted", word` || kw["id"] != float64(n) {
			t.Fatalf("CSV row %d kwargs %q: %v", n+1, rec[7], err)
		}
		if rec[1] != "/api/products/<id>" || rec[9] != "shop" || rec[3] != floatText(now-3600+float64(n)+0.123456) {
			t.Fatalf("CSV row %d: %q", n+1, rec)
		}
		n++
	}
	res.Body.Close()
	if n != 250 {
		t.Fatalf("%d CSV rows, want 250", n)
	}

	res, err = c.ListMeasurements(ctx, params, accept("application/x-ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	n = 0
	for sc.Scan() {
		var m apiclient.Measurement
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("NDJSON line %d: %v", n+1, err)
		}
		if m.Name != "/api/products/<id>" || m.App == nil || *m.App != "shop" ||
			math.Abs(m.StartedAt-(now-3600+float64(n)+0.123456)) > 1e-6 || m.Kwargs["id"] != float64(n) {
			t.Fatalf("NDJSON line %d: %s", n+1, sc.Bytes())
		}
		n++
	}
	if err := sc.Err(); err != nil || n != 250 {
		t.Fatalf("%d NDJSON lines, want 250 (%v)", n, err)
	}
}

// floatText is a float as the CSV export writes it (its JSON text),
// rounded to the microsecond as stored.
func floatText(f float64) string {
	b, _ := json.Marshal(math.Round(f*1e6) / 1e6)
	return string(b)
}

func ptr[T any](v T) *T { return &v }

// Point 4: the dest_app and vpc_id filters, the reversed key order and a
// summary by VPC (client_test.go has the range, src_app, bytes sort and
// the summary by destination).
func TestGeneratedClientFlowsFilters(t *testing.T) {
	t.Parallel()
	c, _ := newClientWith(t, "", nil)
	ctx := context.Background()
	if post, err := c.PostFlowsWithResponse(ctx, nil, apiclient.PostFlowsJSONRequestBody{
		{SrcApp: "web", DestApp: "db", VpcId: "vpc-0", BytesTx: 10, BytesRx: 20, Hour: 20},
		{SrcApp: "web", DestApp: "db", VpcId: "vpc-1", BytesTx: 30, BytesRx: 40, Hour: 21},
		{SrcApp: "api", DestApp: "db", VpcId: "vpc-1", BytesTx: 1, BytesRx: 2, Hour: 22},
		{SrcApp: "api", DestApp: "cache", VpcId: "vpc-1", BytesTx: 5, BytesRx: 5, Hour: 22},
	}); err != nil || post.StatusCode() != http.StatusCreated {
		t.Fatalf("post: %v %v", err, post)
	}
	from, to := int64(20), int64(23)
	list, err := c.ListFlowsWithResponse(ctx, &apiclient.ListFlowsParams{FromHour: &from, ToHour: &to,
		DestApp: ptr("db"), VpcId: ptr("vpc-1"), Sort: ptr("hour,desc")})
	if err != nil {
		t.Fatal(err)
	}
	if list.JSON200 == nil || list.JSON200.Total != 2 || list.JSON200.Items[0].Hour != 22 || list.JSON200.Items[1].Hour != 21 {
		t.Fatalf("dest_app=db vpc_id=vpc-1: %s", list.Body)
	}
	sum, err := c.GetFlowSummaryWithResponse(ctx, &apiclient.GetFlowSummaryParams{FromHour: &from, ToHour: &to, By: "vpc_id"})
	if err != nil {
		t.Fatal(err)
	}
	if sum.JSON200 == nil || sum.JSON200.Total != 2 || sum.JSON200.Items[0].Key != "vpc-1" || sum.JSON200.Items[0].Bytes != 83 ||
		sum.JSON200.Items[0].BytesTx != 36 || sum.JSON200.Items[1].Bytes != 30 {
		t.Fatalf("summary by vpc_id: %s", sum.Body)
	}
	// A range and an hour together are refused, naming the parameter.
	hour := int64(20)
	bad, err := c.ListFlowsWithResponse(ctx, &apiclient.ListFlowsParams{Hour: &hour, FromHour: &from, ToHour: &to})
	if err != nil {
		t.Fatal(err)
	}
	if bad.ApplicationproblemJSON422 == nil {
		t.Fatalf("hour with a range: %d %s", bad.StatusCode(), bad.Body)
	}
}

// Point 5: every timeseries bucket width through the generated enum, and
// a device metric's history in buckets with their p95 (exact, nearest
// rank: the 19th of 20 values).
func TestGeneratedClientBucketsAndHistoryP95(t *testing.T) {
	t.Parallel()
	c, _ := newClientWith(t, "", nil)
	ctx := context.Background()
	const start = 1444780800 // a whole UTC day
	var body apiclient.PostMeasurementsJSONRequestBody
	for i := range 48 { // one every 30 minutes for a day
		s := float64(start + i*1800)
		body = append(body, apiclient.MeasurementInput{Name: "/b", Method: "GET", StartedAt: s, EndedAt: s + 0.1})
	}
	if post, err := c.PostMeasurementsWithResponse(ctx, nil, body); err != nil || post.StatusCode() != http.StatusCreated {
		t.Fatalf("post: %v %v", err, post)
	}
	from, to := float64(start), float64(start+86400)
	for _, b := range []struct {
		bucket  apiclient.GetMeasurementTimeseriesParamsBucket
		key     string
		buckets int
		count   int64
	}{
		{"5m", "2015-10-14 00:00", 288, 1}, {"15m", "2015-10-14 00:30", 96, 1}, {"1h", "2015-10-14 00", 24, 2},
		{"6h", "2015-10-14 06", 4, 12}, {"1d", "2015-10-14", 1, 48},
	} {
		ts, err := c.GetMeasurementTimeseriesWithResponse(ctx, &apiclient.GetMeasurementTimeseriesParams{StartedAt: &from, EndedAt: &to, Bucket: &b.bucket})
		if err != nil {
			t.Fatal(err)
		}
		if ts.JSON200 == nil || ts.JSON200.Serie[b.key] != b.count || len(ts.JSON200.Serie) < b.buckets || len(ts.JSON200.Serie) > b.buckets+1 {
			t.Fatalf("bucket %s: %d buckets, %s = %d: %s", b.bucket, len(ts.JSON200.Serie), b.key, ts.JSON200.Serie[b.key], ts.Body)
		}
	}

	tok, err := c.CreateMrdTokenWithResponse(ctx, apiclient.CreateMrdTokenJSONRequestBody{})
	if err != nil || tok.JSON200 == nil || tok.JSON200.Token == "" {
		t.Fatalf("token: %v %s", err, tok.Body)
	}
	auth := bearer(tok.JSON200.Token)
	if dev, err := c.CreateDeviceWithResponse(ctx, apiclient.CreateDeviceJSONRequestBody{Id: "node-p95", Name: "p95"}, auth); err != nil || dev.StatusCode() != http.StatusCreated {
		t.Fatalf("device: %v %s", err, dev.Body)
	}
	for v := 1; v <= 20; v++ {
		var value apiclient.MetricReport_Value
		if err := value.FromMetricReportValue1(float64(v)); err != nil {
			t.Fatal(err)
		}
		put, err := c.PutDeviceMetricWithResponse(ctx, "node-p95", nil, apiclient.PutDeviceMetricJSONRequestBody{Name: "cpu_temp",
			Value: value, Units: "C", Type: "float", Slope: "both", Ttl: 60}, auth)
		if err != nil || put.StatusCode() != http.StatusOK {
			t.Fatalf("report %d: %v %s", v, err, put.Body)
		}
	}
	since := time.Now().Add(-time.Hour)
	hist, err := c.GetDeviceMetricHistoryWithResponse(ctx, "node-p95", "cpu_temp",
		&apiclient.GetDeviceMetricHistoryParams{From: &since, Bucket: ptr("24h")}, auth)
	if err != nil {
		t.Fatal(err)
	}
	if hist.JSON200 == nil {
		t.Fatalf("history: %d %s", hist.StatusCode(), hist.Body)
	}
	// An item is a HistoryRawPoint or a HistoryBucket (a oneOf): with
	// bucket, each is a bucket whose fields are all there.
	var count int64
	var buckets []apiclient.HistoryBucket
	for _, item := range hist.JSON200.Items {
		b, err := item.AsHistoryBucket()
		if err != nil || b.Count == 0 {
			t.Fatalf("not a bucket (%v): %s", err, hist.Body)
		}
		count += b.Count
		buckets = append(buckets, b)
	}
	if count != 20 {
		t.Fatalf("history buckets hold %d points, want 20: %s", count, hist.Body)
	}
	if len(buckets) == 1 && buckets[0].P95 != 19 {
		t.Fatalf("p95 of 1..20 is %v, want 19 (nearest rank)", buckets[0].P95)
	}
	raw, err := c.GetDeviceMetricHistoryWithResponse(ctx, "node-p95", "cpu_temp",
		&apiclient.GetDeviceMetricHistoryParams{From: &since}, auth)
	if err != nil || raw.JSON200 == nil || len(raw.JSON200.Items) != 20 {
		t.Fatalf("raw history: %v %s", err, raw.Body)
	}
	for i, item := range raw.JSON200.Items {
		if p, err := item.AsHistoryRawPoint(); err != nil || p.Value != float64(i+1) || p.Time.IsZero() {
			t.Fatalf("raw point %d: %+v %v", i, p, err)
		}
	}
}

// Point 9, where it reaches clients: behind a reverse proxy that serves
// the API under /telemetry (BASE_PATH), a client whose base URL has the
// prefix works, the served document's server is the prefix (where
// Swagger UI's "Try it out" and a client generated from the served
// document send requests), and the pagination links carry it.
func TestGeneratedClientBehindPathPrefix(t *testing.T) {
	t.Parallel()
	c, base := newClientWith(t, "/telemetry", func(cfg *config.Config) { cfg.BasePath = "/telemetry" })
	ctx := context.Background()
	var flows apiclient.PostFlowsJSONRequestBody
	for i := range 3 {
		flows = append(flows, apiclient.Flow{SrcApp: "s", DestApp: string(rune('a' + i)), VpcId: "v", BytesTx: 1, BytesRx: 1, Hour: 5})
	}
	if post, err := c.PostFlowsWithResponse(ctx, nil, flows); err != nil || post.StatusCode() != http.StatusCreated {
		t.Fatalf("post through the prefix: %v %v", err, post)
	}
	hour, size := int64(5), int64(1)
	list, err := c.ListFlowsWithResponse(ctx, &apiclient.ListFlowsParams{Hour: &hour, Size: &size})
	if err != nil {
		t.Fatal(err)
	}
	if list.JSON200 == nil || list.JSON200.Total != 3 {
		t.Fatalf("list through the prefix: %d %s", list.StatusCode(), list.Body)
	}
	link := list.HTTPResponse.Header.Get("Link")
	next := ""
	for part := range strings.SplitSeq(link, ",") {
		if strings.Contains(part, `rel="next"`) {
			next = strings.Trim(strings.TrimSpace(strings.Split(part, ";")[0]), "<>")
		}
	}
	if !strings.HasPrefix(next, "/telemetry/flows?") {
		t.Fatalf("next link %q (Link: %s), want it under /telemetry", next, link)
	}
	res, err := http.Get(base + next)
	if err != nil {
		t.Fatal(err)
	}
	var page apiclient.PageFlow
	err = json.NewDecoder(res.Body).Decode(&page)
	res.Body.Close()
	if err != nil || page.Page != 2 || len(page.Items) != 1 {
		t.Fatalf("following next: %v %+v", err, page)
	}

	res, err = http.Get(base + "/telemetry/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Servers []struct{ URL string } `json:"servers"`
	}
	err = json.NewDecoder(res.Body).Decode(&doc)
	res.Body.Close()
	if err != nil || len(doc.Servers) == 0 || doc.Servers[0].URL != "/telemetry" {
		t.Fatalf("served document's servers: %v %+v", err, doc.Servers)
	}
	// The client resolved against the document's server reaches the API.
	u, _ := url.Parse(base)
	c2, err := apiclient.NewClientWithResponses(u.ResolveReference(&url.URL{Path: doc.Servers[0].URL}).String())
	if err != nil {
		t.Fatal(err)
	}
	if ping, err := c2.EventsPingWithResponse(ctx); err != nil || ping.StatusCode() != http.StatusOK {
		t.Fatalf("ping through the document's server: %v %v", err, ping)
	}
}

// The error answers' headers are in the document, so the generated client
// parses them: Retry-After (seconds) on a 503, here with the database pool
// closed under the server, and WWW-Authenticate on a 401.
func TestGeneratedClientErrorHeaders(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.JWTSecret = testSecret
	pool := testdb.New(t)
	h, _ := api.New(api.Deps{Store: postgres.New(pool, postgres.Options{}).Stores(), Config: cfg})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := apiclient.NewClientWithResponses(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	dev, err := c.CreateDeviceWithResponse(ctx, apiclient.CreateDeviceJSONRequestBody{Id: "n1", Name: "n1"})
	if err != nil || dev.StatusCode() != http.StatusUnauthorized || dev.Headers401 == nil ||
		dev.Headers401.WWWAuthenticate != "Bearer" {
		t.Fatalf("401: %v %+v %s", err, dev.Headers401, dev.Body)
	}

	pool.Close()
	flows, err := c.ListFlowsWithResponse(ctx, &apiclient.ListFlowsParams{Hour: ptr(int64(1))})
	if err != nil || flows.StatusCode() != http.StatusServiceUnavailable || flows.Headers503 == nil ||
		flows.Headers503.RetryAfter < 1 {
		t.Fatalf("503: %v %+v %s", err, flows.Headers503, flows.Body)
	}
}
