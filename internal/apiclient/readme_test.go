package apiclient_test

import (
	"context"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The README's curl examples, run as a new user would after `make run`
// (ENABLE_TOKEN_ENDPOINT=true), against a test server: every ```sh block
// that calls curl, in order, in one bash with -e, localhost:8080 replaced
// by the server's address. The answers must hold what the README's
// comments show.
func TestREADMECurlExamples(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("README curl examples skipped: %s is not installed", tool)
		}
	}
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, base := newClientWith(t, "", nil)
	u, _ := url.Parse(base)
	var script strings.Builder
	script.WriteString("set -e\ncd \"$TMPDIR\"\n")
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		if strings.Contains(m[1], "curl ") {
			script.WriteString(strings.ReplaceAll(m[1], "localhost:8080", u.Host) + "\necho\n")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README examples: %v\n%s", err, out)
	}
	for _, want := range []string{
		`{"received":3}`,
		`"src_app":"foo","dest_app":"bar","vpc_id":"vpc-0","bytes_tx":300,"bytes_rx":900,"hour":1}],"total":2,"page":1,"size":50}`,
		`{"key":"foo","bytes_tx":300,"bytes_rx":900,"bytes":1200}`,
		`"title":"unknown","detail":"app is not a known parameter","source":"app","location":"query.app"`,
		`"p50Elapsed":0.25,"p95Elapsed":0.75,"p99Elapsed":0.75`,
		`{"id":"rack1-node3","name":"Node 3"`,
		`{"status":200}`,
		`"name":"cpu_temp","value":54.5`,
		"{\"src_app\":\"baz\",\"dest_app\":\"qux\",\"vpc_id\":\"vpc-0\",\"bytes_tx\":100,\"bytes_rx\":500,\"hour\":1}\n",
		"time,value,avg,min,max,p95,count\r\n",
		`{"received":1}`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the README examples' output lacks %s", want)
		}
	}
	if !regexp.MustCompile(`"serie":\{("[0-9: -]+":[0-9]+,?){5}\}`).Match(out) {
		t.Errorf("the README's timeseries example did not give five 15-minute buckets")
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}
