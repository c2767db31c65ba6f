package apiclient_test

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/api"
	"github.com/telemetry/telemetry/internal/apiclient"
	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }

// newClient serves the real API on a fresh database and returns the
// generated client pointed at it.
func newClient(t *testing.T) *apiclient.ClientWithResponses {
	t.Helper()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	h, _ := api.New(api.Deps{Store: postgres.New(testdb.New(t), postgres.Options{}).Stores(), Config: cfg})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := apiclient.NewClientWithResponses(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The committed client must be what oapi-codegen makes of openapi.yaml.
func TestClientIsCurrent(t *testing.T) {
	dir := t.TempDir()
	cfg, err := os.ReadFile("oapi-codegen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "client.gen.go")
	cfg = bytes.Replace(cfg, []byte("output: client.gen.go"), []byte("output: "+out), 1)
	if err := os.WriteFile(filepath.Join(dir, "cfg.yaml"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "tool", "oapi-codegen", "-config", filepath.Join(dir, "cfg.yaml"), "../../openapi.yaml")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, b)
	}
	want, _ := os.ReadFile(out)
	got, _ := os.ReadFile("client.gen.go")
	if !bytes.Equal(got, want) {
		t.Fatal("internal/apiclient/client.gen.go is stale: run `make openapi` and commit it")
	}
}

func TestGeneratedClientFlows(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := context.Background()
	// Sent twice with one Idempotency-Key (a generated parameter): stored
	// once, the same answer twice.
	key := "client-test-key"
	for range 2 {
		post, err := c.PostFlowsWithResponse(ctx, &apiclient.PostFlowsParams{IdempotencyKey: &key}, apiclient.PostFlowsJSONRequestBody{
			{SrcApp: "foo", DestApp: "bar", VpcId: "vpc-0", BytesTx: 100, BytesRx: 300, Hour: 1},
			{SrcApp: "foo", DestApp: "bar", VpcId: "vpc-0", BytesTx: 200, BytesRx: 600, Hour: 1},
		})
		if err != nil {
			t.Fatal(err)
		}
		if post.StatusCode() != http.StatusCreated || post.JSON201 == nil || post.JSON201.Received != 2 {
			t.Fatalf("post: %d %s", post.StatusCode(), post.Body)
		}
	}
	one := int64(1)
	list, err := c.ListFlowsWithResponse(ctx, &apiclient.ListFlowsParams{Hour: &one})
	if err != nil {
		t.Fatal(err)
	}
	if list.JSON200 == nil || list.JSON200.Total != 1 || list.JSON200.Items[0].BytesTx != 300 {
		t.Fatalf("list: %d %s", list.StatusCode(), list.Body)
	}
	// Errors decode into the documented problem type.
	bad, err := c.PostFlowsWithResponse(ctx, nil, apiclient.PostFlowsJSONRequestBody{{SrcApp: "", DestApp: "b", VpcId: "v", Hour: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if bad.ApplicationproblemJSON422 == nil || bad.ApplicationproblemJSON422.Errors == nil ||
		(*bad.ApplicationproblemJSON422.Errors)[0].Title != "min" {
		t.Fatalf("422: %d %s", bad.StatusCode(), bad.Body)
	}
	page := int64(0)
	badList, err := c.ListFlowsWithResponse(ctx, &apiclient.ListFlowsParams{Hour: &one, Page: &page})
	if err != nil {
		t.Fatal(err)
	}
	if badList.ApplicationproblemJSON422 == nil || badList.ApplicationproblemJSON422.Status != 422 {
		t.Fatalf("422 list: %d %s", badList.StatusCode(), badList.Body)
	}
}

// A one-hour window asked through the generated client finds a measurement
// posted 10 s earlier: the window parameters are float64 in the client
// (float32 epoch seconds are off by up to 128 s today).
func TestGeneratedClientMeasurementWindow(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := context.Background()
	now := float64(time.Now().UnixMicro()) / 1e6
	name := "/window-check"
	post, err := c.PostMeasurementsWithResponse(ctx, nil, apiclient.PostMeasurementsJSONRequestBody{
		{Name: name, Method: "GET", StartedAt: now - 10, EndedAt: now - 9.5},
	})
	if err != nil || post.StatusCode() != http.StatusCreated {
		t.Fatalf("post: %v %s", err, post.Body)
	}
	var from, to float64 = now - 3600, now // float64: a float32 here does not compile
	list, err := c.ListMeasurementsWithResponse(ctx, &apiclient.ListMeasurementsParams{StartedAt: &from, EndedAt: &to, Name: &name})
	if err != nil {
		t.Fatal(err)
	}
	if list.JSON200 == nil || len(list.JSON200.Items) != 1 || math.Abs(list.JSON200.Items[0].StartedAt-(now-10)) > 1e-6 {
		t.Fatalf("window query: %d %s", list.StatusCode(), list.Body)
	}
}

// The flows filters and summary (issue 12, point 4) through the generated
// client: a range, a filter, the top-talker sort, totals per key, and a
// range error decoded as the documented problem.
func TestGeneratedClientFlowsRangeAndSummary(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := context.Background()
	post, err := c.PostFlowsWithResponse(ctx, nil, apiclient.PostFlowsJSONRequestBody{
		{SrcApp: "web", DestApp: "db", VpcId: "vpc-0", BytesTx: 10, BytesRx: 20, Hour: 10},
		{SrcApp: "web", DestApp: "cache", VpcId: "vpc-0", BytesTx: 500, BytesRx: 500, Hour: 11},
		{SrcApp: "batch", DestApp: "db", VpcId: "vpc-1", BytesTx: 1, BytesRx: 1, Hour: 11},
		{SrcApp: "web", DestApp: "db", VpcId: "vpc-0", BytesTx: 7, BytesRx: 7, Hour: 12},
	})
	if err != nil || post.StatusCode() != http.StatusCreated {
		t.Fatalf("post: %v %v", err, post)
	}
	from, to, src, sort := int64(10), int64(12), "web", "bytes,desc"
	list, err := c.ListFlowsWithResponse(ctx, &apiclient.ListFlowsParams{FromHour: &from, ToHour: &to, SrcApp: &src, Sort: &sort})
	if err != nil {
		t.Fatal(err)
	}
	if list.JSON200 == nil || list.JSON200.Total != 2 || len(list.JSON200.Items) != 2 ||
		list.JSON200.Items[0].DestApp != "cache" || list.JSON200.Items[1].Hour != 10 {
		t.Fatalf("range list: %d %s", list.StatusCode(), list.Body)
	}
	sum, err := c.GetFlowSummaryWithResponse(ctx, &apiclient.GetFlowSummaryParams{FromHour: &from, ToHour: &to, By: apiclient.GetFlowSummaryParamsBy("dest_app")})
	if err != nil {
		t.Fatal(err)
	}
	if sum.JSON200 == nil || sum.JSON200.Total != 2 || sum.JSON200.Items[0].Key != "cache" ||
		sum.JSON200.Items[0].Bytes != 1000 || sum.JSON200.Items[1].Bytes != 32 {
		t.Fatalf("summary: %d %s", sum.StatusCode(), sum.Body)
	}
	bad, err := c.GetFlowSummaryWithResponse(ctx, &apiclient.GetFlowSummaryParams{FromHour: &to, ToHour: &from, By: "src_app"})
	if err != nil {
		t.Fatal(err)
	}
	if bad.ApplicationproblemJSON422 == nil || bad.ApplicationproblemJSON422.Errors == nil ||
		(*bad.ApplicationproblemJSON422.Errors)[0].Source == nil || *(*bad.ApplicationproblemJSON422.Errors)[0].Source != "to_hour" {
		t.Fatalf("422 summary: %d %s", bad.StatusCode(), bad.Body)
	}
}

// Grouped percentiles and timeseries bucket widths (issue 12, point 5)
// through the generated client: 100 measurements of one route with elapsed
// 0.01 .. 1.00 s, so the exact nearest-rank percentiles are 0.50, 0.95 and
// 0.99; a bucket the enum lacks is a documented 422.
func TestGeneratedClientPercentilesAndBuckets(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := context.Background()
	const start = 1444780800 // a whole UTC day
	var body apiclient.PostMeasurementsJSONRequestBody
	for i := 1; i <= 100; i++ {
		e := float64(i) / 100
		body = append(body, apiclient.MeasurementInput{Name: "/api/p", Method: "GET",
			StartedAt: start + float64(i*60), EndedAt: start + float64(i*60) + e, Elapsed: &e})
	}
	post, err := c.PostMeasurementsWithResponse(ctx, nil, body)
	if err != nil || post.StatusCode() != http.StatusCreated {
		t.Fatalf("post: %v %v", err, post)
	}
	from, to := float64(start), float64(start+2*86400)
	g, err := c.ListMeasurementGroupsWithResponse(ctx, &apiclient.ListMeasurementGroupsParams{StartedAt: &from, EndedAt: &to})
	if err != nil {
		t.Fatal(err)
	}
	if g.JSON200 == nil || len(g.JSON200.Items) != 1 {
		t.Fatalf("grouped: %d %s", g.StatusCode(), g.Body)
	}
	it := g.JSON200.Items[0]
	for _, p := range []struct{ got, exact float64 }{{it.P50Elapsed, 0.50}, {it.P95Elapsed, 0.95}, {it.P99Elapsed, 0.99}} {
		if math.Abs(p.got-p.exact) > p.exact*store.PercentileRelativeError {
			t.Fatalf("grouped percentiles %+v, want 0.50 0.95 0.99 within %.4f", it, store.PercentileRelativeError)
		}
	}
	bucket := apiclient.GetMeasurementTimeseriesParamsBucket("15m")
	ts, err := c.GetMeasurementTimeseriesWithResponse(ctx, &apiclient.GetMeasurementTimeseriesParams{StartedAt: &from, EndedAt: &to, Bucket: &bucket})
	if err != nil {
		t.Fatal(err)
	}
	if ts.JSON200 == nil || ts.JSON200.Serie["2015-10-14 00:15"] != 15 || ts.JSON200.Serie["2015-10-14 01:30"] != 11 {
		t.Fatalf("timeseries 15m: %d %s", ts.StatusCode(), ts.Body)
	}
	bad := apiclient.GetMeasurementTimeseriesParamsBucket("2h")
	ts, err = c.GetMeasurementTimeseriesWithResponse(ctx, &apiclient.GetMeasurementTimeseriesParams{Bucket: &bad})
	if err != nil {
		t.Fatal(err)
	}
	if ts.ApplicationproblemJSON422 == nil || ts.ApplicationproblemJSON422.Errors == nil ||
		(*ts.ApplicationproblemJSON422.Errors)[0].Title != "oneof" {
		t.Fatalf("bucket=2h: %d %s", ts.StatusCode(), ts.Body)
	}
}
