package apiclient_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/telemetry/telemetry/internal/apiclient"
)

// An export through the generated client: the Accept header set by a
// request editor, the body read line by line as it streams.
func TestGeneratedClientExport(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	ctx := context.Background()
	var flows apiclient.PostFlowsJSONRequestBody
	for i := range 150 { // more than a page
		flows = append(flows, apiclient.Flow{SrcApp: "src", DestApp: string(rune('a' + i%26)), VpcId: "vpc-" + string(rune('a'+i/26)),
			BytesTx: int64(i), BytesRx: 1, Hour: 3})
	}
	if post, err := c.PostFlowsWithResponse(ctx, nil, flows); err != nil || post.StatusCode() != http.StatusCreated {
		t.Fatalf("post: %v %v", err, post)
	}
	hour := int64(3)
	res, err := c.ListFlows(ctx, &apiclient.ListFlowsParams{Hour: &hour}, func(_ context.Context, req *http.Request) error {
		req.Header.Set("Accept", "application/x-ndjson")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(res.Body)
	n := 0
	for sc.Scan() {
		var f apiclient.Flow
		if err := json.Unmarshal(sc.Bytes(), &f); err != nil {
			t.Fatalf("line %d: %v", n+1, err)
		}
		if f.Hour != 3 || f.SrcApp != "src" {
			t.Fatalf("line %d: %+v", n+1, f)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n != 150 {
		t.Fatalf("%d flows exported, want 150", n)
	}
}
