package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/store/db"
	"github.com/telemetry/telemetry/internal/testdb"
)

// BenchmarkEventsRunCycle: load-test runs per second (a register then a
// commit of the Locust client's payloads) through the API, beside the same
// two statements run straight against the database with pgx, same clients.
func BenchmarkEventsRunCycle(b *testing.B) {
	for _, clients := range []int{1, 16} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			s, sqlSide := newTestServer(b), testdb.New(b)
			q := db.New(sqlSide)
			start := time.Unix(1763805600, 0).UTC()
			end := start.Add(time.Minute)
			host, target, mode := "loadgen-1", "http://10.0.0.5:8089", "single"
			clientsN, hatch := int64(1), 1.0
			commitTemplate := fmt.Sprintf(eventsLocustCommit, "%s")

			direct := runLoad(clients, 5*time.Second, 20000, func(ctx context.Context, _ int) error {
				id, err := q.RegisterRun(ctx, db.RegisterRunParams{Payload: []byte(eventsLocustRegister), Host: host,
					TargetHost: &target, Mode: &mode, Clients: &clientsN, HatchRate: &hatch, StartedAt: &start})
				if err != nil {
					return err
				}
				_, err = q.CommitRun(ctx, db.CommitRunParams{UUID: id, Host: &host,
					Payload: []byte(fmt.Sprintf(commitTemplate, id.String())), EndedAt: &end, TargetHost: &target, Mode: &mode})
				return err
			})
			api := runLoad(clients, 5*time.Second, 20000, func(ctx context.Context, _ int) error {
				var reg struct {
					Data struct {
						UUID string `json:"uuid"`
					} `json:"data"`
				}
				if err := eventsBenchPost(s.URL+"/apiv0.1/events/register", eventsLocustRegister, &reg); err != nil {
					return err
				}
				return eventsBenchPost(s.URL+"/apiv0.1/events/commit", fmt.Sprintf(commitTemplate, reg.Data.UUID), nil)
			})
			if api.Errors > 0 || direct.Errors > 0 {
				b.Fatalf("errors: api %d, direct %d", api.Errors, direct.Errors)
			}
			b.ReportMetric(api.PerSecond(), "api_runs/s")
			b.ReportMetric(direct.PerSecond(), "sql_runs/s")
			b.ReportMetric(api.PerSecond()/direct.PerSecond(), "ratio")
			b.ReportMetric(float64(api.P99.Microseconds())/1000, "api_run_p99_ms")
			b.Logf("api %s; sql %s", api, direct)
		})
	}
}

// eventsBenchClient keeps a connection per load client (the default
// transport keeps 2 idle connections per host and would reconnect).
var eventsBenchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// eventsBenchPost posts body and decodes a 200 answer into out (when not nil).
func eventsBenchPost(url, body string, out any) error {
	res, err := eventsBenchClient.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", res.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}
