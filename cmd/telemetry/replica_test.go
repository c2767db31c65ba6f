package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/migrate"
	"github.com/telemetry/telemetry/internal/testdb"
)

// These tests share one primary and replica (testdb.Replicated): none of
// them runs in parallel.

// get fetches url and returns its status, Retry-After and body.
func get(t *testing.T, method, url, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

// metric is the value of one sample of the server's /metrics, -1 when absent.
func metric(t *testing.T, base, sample string) float64 {
	t.Helper()
	_, _, text := get(t, http.MethodGet, base+"/metrics", "")
	return metricIn(t, text, sample)
}

// metricIn is the value of one sample of a /metrics text, -1 when absent.
func metricIn(t *testing.T, text, sample string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serve pointed at a replica: it starts (the schema is readable), but
// /readyz says why it is not ready, and a write is a 503 that says the
// database is read-only, not a 500.
func TestServeOnAReplica(t *testing.T) {
	_, _, replicaURL := testdb.Replicated(t)
	base, _, _ := startServe(t, map[string]string{"DATABASE_URL": replicaURL, "LISTEN_ADDR": "127.0.0.1:0",
		"JWT_SECRET": testSecret})

	status, header, body := get(t, http.MethodGet, base+"/readyz", "")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "read-only (a replica or in recovery)") {
		t.Fatalf("readyz on a replica: %d %s", status, body)
	}
	if header.Get("Retry-After") == "" {
		t.Error("readyz 503 without Retry-After")
	}
	hc := map[string]string{"LISTEN_ADDR": strings.TrimPrefix(base, "http://")}
	if err := run(context.Background(), []string{"healthcheck"}, env(hc), io.Discard, io.Discard); err == nil {
		t.Error("healthcheck passed against a server on a replica")
	}

	writes := []struct{ method, path, body string }{
		{http.MethodPost, "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":1}]`},
		{http.MethodPost, "/api/measurements", `[{"startedAt":1,"endedAt":2,"name":"/x","method":"GET","args":[],"kwargs":{},"context":{}}]`},
		{http.MethodPost, "/appmetrics/api/v1/collections", ``},
	}
	for _, w := range writes {
		status, header, body := get(t, w.method, base+w.path, w.body)
		var p struct{ Detail string }
		_ = json.Unmarshal([]byte(body), &p)
		if status != http.StatusServiceUnavailable || p.Detail != "the database is read-only (a replica or in recovery); retry later" {
			t.Errorf("%s %s on a replica: %d %s", w.method, w.path, status, body)
		}
		if header.Get("Retry-After") == "" {
			t.Errorf("%s %s: 503 without Retry-After", w.method, w.path)
		}
	}
	// Reads work.
	if status, _, body := get(t, http.MethodGet, base+"/flows?hour=1", ""); status != http.StatusOK {
		t.Fatalf("GET /flows on a replica: %d %s", status, body)
	}
}

// migrate on a replica refuses, saying why, instead of "up to date".
func TestMigrateOnAReplicaRefuses(t *testing.T) {
	_, _, replicaURL := testdb.Replicated(t)
	for _, args := range [][]string{{"migrate"}, {"migrate", "down"}} {
		err := run(context.Background(), args, env(map[string]string{"DATABASE_URL": replicaURL}), io.Discard, io.Discard)
		if !errors.Is(err, migrate.ErrReadOnly) {
			t.Errorf("%v on a replica: %v", args, err)
		}
	}
}

// maintain on a replica refuses, saying why, as migrate does, instead of
// the maintenance lease's raw SQL error.
func TestMaintainOnAReplicaRefuses(t *testing.T) {
	_, _, replicaURL := testdb.Replicated(t)
	err := run(context.Background(), []string{"maintain"}, env(map[string]string{"DATABASE_URL": replicaURL}), io.Discard, io.Discard)
	if !errors.Is(err, errMaintainReplica) {
		t.Fatalf("maintain on a replica: %v, want %v", err, errMaintainReplica)
	}
}

// serve with DATABASE_READ_URL reads GET /flows from the replica while it
// is fresh (with its replay paused, a flow just written on the primary is
// not in the answer) and says so in /metrics.
func TestServeReadsFromTheReplica(t *testing.T) {
	ctx := context.Background()
	pair, primaryURL, replicaURL := testdb.Replicated(t)
	base, _, _ := startServe(t, map[string]string{"DATABASE_URL": primaryURL, "DATABASE_READ_URL": replicaURL,
		"READ_MAX_LAG": "1h", "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret})
	eventually(t, "the replica in use", func() bool { return metric(t, base, "telemetry_db_replica_in_use") == 1 })
	if v := metric(t, base, "telemetry_db_replica_up"); v != 1 {
		t.Errorf("telemetry_db_replica_up %v", v)
	}
	if status, _, _ := get(t, http.MethodGet, base+"/readyz", ""); status != http.StatusOK {
		t.Fatalf("readyz with a replica: %d", status)
	}

	if err := pair.PauseReplay(ctx); err != nil {
		t.Fatal(err)
	}
	flow := `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":2,"hour":7}]`
	if status, _, body := get(t, http.MethodPost, base+"/flows", flow); status != http.StatusCreated {
		t.Fatalf("POST /flows: %d %s", status, body)
	}
	before := metric(t, base, `telemetry_db_reads_total{pool="replica"}`)
	if _, _, body := get(t, http.MethodGet, base+"/flows?hour=7", ""); !strings.Contains(body, `"total":0`) {
		t.Fatalf("GET /flows with the replica paused: %s (answered by the primary?)", body)
	}
	if after := metric(t, base, `telemetry_db_reads_total{pool="replica"}`); after != before+1 {
		t.Fatalf("replica reads %v then %v, want one more", before, after)
	}
	// Its export too (docs/scaling.md), through the replica's pool.
	req, err := http.NewRequest(http.MethodGet, base+"/flows?hour=7", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	exported, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(exported) != 0 {
		t.Fatalf("NDJSON export of GET /flows with the replica paused: %d %q %v, want 200 and no line (answered by the primary?)",
			resp.StatusCode, exported, err)
	}
	if after := metric(t, base, `telemetry_db_reads_total{pool="replica"}`); after != before+2 {
		t.Fatalf("replica reads %v then %v after the export, want two more", before, after)
	}
	if v := metric(t, base, "telemetry_db_replica_pool_acquires_total"); v < 2 {
		t.Errorf("telemetry_db_replica_pool_acquires_total %v, want the reads' acquires", v)
	}
	if v := metric(t, base, "telemetry_db_replica_pool_max_conns"); v <= 0 {
		t.Errorf("telemetry_db_replica_pool_max_conns %v", v)
	}
	eventually(t, "a lag in /metrics", func() bool { return metric(t, base, "telemetry_db_replica_lag_seconds") > 0 })

	if err := pair.ResumeReplay(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the flow read from the replica", func() bool {
		_, _, body := get(t, http.MethodGet, base+"/flows?hour=7", "")
		return strings.Contains(body, `"total":1`)
	})
}

// A bad DATABASE_READ_URL or READ_MAX_LAG stops serve with a message naming it.
func TestReplicaSettingErrors(t *testing.T) {
	for _, c := range []struct {
		vars map[string]string
		want string
	}{
		{map[string]string{"READ_MAX_LAG": "10ms"}, "READ_MAX_LAG must be a duration of at least 100ms"},
		{map[string]string{"READ_MAX_LAG": "soon"}, "READ_MAX_LAG"},
		{map[string]string{"DATABASE_READ_URL": "postgres://%zz"}, "DATABASE_READ_URL"},
	} {
		c.vars["DATABASE_URL"] = testdb.Empty(t)
		c.vars["JWT_SECRET"] = testSecret
		c.vars["LISTEN_ADDR"] = "127.0.0.1:0"
		err := run(context.Background(), []string{"serve"}, env(c.vars), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("serve with %v: %v, want an error containing %q", c.vars, err, c.want)
		}
	}
}
