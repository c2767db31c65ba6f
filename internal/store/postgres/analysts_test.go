package postgres_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// The tests of docs/analysts.md: its SQL blocks, read from the file, run
// against seeded data as a login of the telemetry_analyst role
// (migrations/00011_analysts.sql), so the page cannot drift from the schema.

const analystsDoc = "../../../docs/analysts.md"

var analystsMarker = regexp.MustCompile(`^<!-- analysts:([a-z0-9-]+) -->$`)

// analystsBlocks gives the SQL block that follows each <!-- analysts:name -->
// marker of docs/analysts.md, by name.
func analystsBlocks(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open(analystsDoc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blocks := map[string]string{}
	name, in := "", false
	var b strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Blocks inside a list item are indented.
		line := strings.TrimSpace(sc.Text())
		switch {
		case in && line == "```":
			blocks[name] = b.String()
			name, in = "", false
			b.Reset()
		case in:
			b.WriteString(line + "\n")
		case name != "" && line == "```sql":
			in = true
		case name != "":
			t.Fatalf("%s: marker %q is not followed by a sql block", analystsDoc, name)
		default:
			if m := analystsMarker.FindStringSubmatch(line); m != nil {
				name = m[1]
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

var analystsRoles atomic.Int64

// analystLogins runs the doc's two ways of giving a person a login (a new
// role IN ROLE telemetry_analyst, and GRANT to an existing login) with
// names unique to this test (roles belong to the whole cluster), and
// answers the connection strings of both logins on the database at dbURL.
func analystLogins(t *testing.T, admin *pgxpool.Pool, dbURL string) (alice, bob string) {
	t.Helper()
	ctx := context.Background()
	n := analystsRoles.Add(1)
	aliceName := fmt.Sprintf("alice_%d_%d", os.Getpid(), n)
	bobName := fmt.Sprintf("bob_%d_%d", os.Getpid(), n)
	// bob is an existing login without any access to the telemetry tables.
	if _, err := admin.Exec(ctx, "CREATE ROLE "+pgx.Identifier{bobName}.Sanitize()+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{bobName}.Sanitize()) })
	t.Cleanup(func() { admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{aliceName}.Sanitize()) })
	login := analystsBlocks(t)["login"]
	if !strings.Contains(login, "alice") || !strings.Contains(login, "bob") {
		t.Fatalf("the login block of %s names no alice or bob:\n%s", analystsDoc, login)
	}
	login = regexp.MustCompile(`\balice\b`).ReplaceAllString(login, aliceName)
	login = regexp.MustCompile(`\bbob\b`).ReplaceAllString(login, bobName)
	if _, err := admin.Exec(ctx, login); err != nil {
		t.Fatalf("the doc's login commands: %v\n%s", err, login)
	}
	return asUser(t, dbURL, aliceName), asUser(t, dbURL, bobName)
}

// asUser is dbURL with its user replaced (the test cluster trusts local
// connections, so no password is needed).
func asUser(t *testing.T, dbURL, user string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(user)
	return u.String()
}

// textRows runs sql and gives every value as PostgreSQL's text output,
// NULL as "NULL": the values psql shows.
func textRows(ctx context.Context, pool *pgxpool.Pool, sql string) ([][]string, error) {
	rows, err := pool.Query(ctx, sql, pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := [][]string{}
	for rows.Next() {
		var row []string
		for _, v := range rows.RawValues() {
			if v == nil {
				row = append(row, "NULL")
			} else {
				row = append(row, string(v))
			}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

func openPool(t *testing.T, dbURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// seedAnalysts stores, through the store, data whose answers to the doc's
// questions are known, with decoys each query must leave out.
func seedAnalysts(t *testing.T, st *postgres.Store, now time.Time) {
	t.Helper()
	ctx := context.Background()

	// Flows of 22 November 2025, and the hours either side of that day.
	day := time.Date(2025, 11, 22, 0, 0, 0, 0, time.UTC).Unix() / 3600
	flows := []store.Flow{
		{SrcApp: "web", DestApp: "db", VpcID: "vpc-1", BytesTx: 100, BytesRx: 1000, Hour: day},
		{SrcApp: "web", DestApp: "db", VpcID: "vpc-2", BytesTx: 50, BytesRx: 500, Hour: day + 5},
		{SrcApp: "web", DestApp: "cache", VpcID: "vpc-1", BytesTx: 10, BytesRx: 20, Hour: day + 1},
		{SrcApp: "api", DestApp: "db", VpcID: "vpc-1", BytesTx: 700, BytesRx: 300, Hour: day + 23},
		{SrcApp: "web", DestApp: "cache", VpcID: "vpc-1", BytesTx: 1e9, Hour: day - 1},
		{SrcApp: "batch", DestApp: "db", VpcID: "vpc-1", BytesTx: 1e9, Hour: day + 24},
	}
	if err := st.Flows.Add(ctx, flows); err != nil {
		t.Fatalf("flows: %v", err)
	}

	// Measurements: 1..10 s on one endpoint in the last hour, 0.5 and 1.5 s
	// on another; an older slow one, and one of the service itself.
	var ms []store.Measurement
	add := func(app, method, name string, start time.Time, elapsed float64) {
		start = start.Truncate(time.Microsecond)
		ms = append(ms, store.Measurement{StartedAt: start, EndedAt: start.Add(time.Duration(elapsed * float64(time.Second))),
			Elapsed: elapsed, App: app, Method: method, Name: name})
	}
	for i := 1; i <= 10; i++ {
		add("shop", "GET", "/products", now.Add(-10*time.Minute), float64(i))
	}
	add("shop", "POST", "/orders", now.Add(-20*time.Minute), 0.5)
	add("shop", "POST", "/orders", now.Add(-30*time.Minute), 1.5)
	add("shop", "GET", "/products", now.Add(-2*time.Hour), 1000)
	add("telemetry", "GET", "/flows", now.Add(-time.Minute), 500)
	// A self-profiling summary row: 40 requests of 0.05 s on average.
	add("telemetry", "GET", "/flows", now.Add(-2*time.Minute), 0.05)
	ms[len(ms)-1].Context = json.RawMessage(`{"path": "/flows", "url": "/flows", "status": 200, "count": 40, "elapsedTotal": 2, "elapsedMax": 0.25}`)
	add("telemetry", "GET", "/readyz", now.Add(-3*time.Minute), 0.001)
	add("telemetry", "GET", "/flows", now.Add(-2*time.Hour), 9) // before the hour
	// For the daily rollup: two days of the window, and the day after it.
	add("shop", "GET", "/products", time.Date(2025, 11, 20, 10, 0, 0, 0, time.UTC), 1)
	add("shop", "GET", "/products", time.Date(2025, 11, 20, 23, 59, 58, 0, time.UTC), 3) // ends the next day
	add("shop", "GET", "/products", time.Date(2025, 11, 21, 8, 0, 0, 0, time.UTC), 0.5)
	add("shop", "POST", "/orders", time.Date(2025, 11, 21, 9, 0, 0, 0, time.UTC), 0.25)
	add("shop", "GET", "/products", time.Date(2025, 11, 23, 0, 0, 0, 0, time.UTC), 9)
	// For the percentiles from the histograms (10 and 11 November): a group
	// whose p95 falls inside the histogram, across two days and two apps,
	// one with a single row, and decoys the day before and after.
	for i := 1; i <= 30; i++ {
		app := "shop"
		if i%3 == 0 {
			app = "billing"
		}
		add(app, "GET", "/search", time.Date(2025, 11, 10+i%2, 1+i%20, 0, 0, 0, time.UTC), 0.001*float64(i*i))
	}
	add("shop", "POST", "/search", time.Date(2025, 11, 11, 5, 0, 0, 0, time.UTC), 0.0000005)
	add("shop", "GET", "/search", time.Date(2025, 11, 9, 23, 0, 0, 0, time.UTC), 50)
	add("shop", "GET", "/search", time.Date(2025, 11, 12, 0, 0, 0, 0, time.UTC), 60)
	add("shop", "GET", "/search", time.Date(2025, 11, 11, 23, 59, 59, 0, time.UTC), 70) // ends on the 12th
	if _, err := st.Measurements.Insert(ctx, ms); err != nil {
		t.Fatalf("measurements: %v", err)
	}

	// Devices: two hot now, one hot but stale (its TTL has passed), one cool.
	for _, d := range [][2]string{{"n1", "rack1-node1"}, {"n2", "rack1-node2"}, {"n3", "rack2-node1"}, {"n4", "rack2-node2"}} {
		if _, err := st.Devices.Create(ctx, d[0], d[1]); err != nil {
			t.Fatalf("device %s: %v", d[0], err)
		}
	}
	report := func(dev, name string, v float64, at time.Time, ttl int32) {
		r := store.MetricRow{Time: at, DeviceID: dev, Name: name, Type: "float", Num: v, Units: "C", Slope: "both", TTL: ttl}
		if err := st.Devices.Report(ctx, r); err != nil {
			t.Fatalf("report %s %s: %v", dev, name, err)
		}
	}
	report("n1", "cpu_temp", 85.5, now, 300)
	report("n2", "cpu_temp", 92, now, 300)
	report("n3", "cpu_temp", 99, now.Add(-10*time.Minute), 60)
	report("n4", "cpu_temp", 70, now, 300)
	report("n4", "gpu_temp", 95, now, 300)

	// Load tests: two committed runs (the later one is the last run) and a
	// later one still running, which has no results.
	run := func(started time.Time, stats string, commit bool) {
		id, err := st.Events.Register(ctx, store.NewRun{Host: "loadgen-1", StartedAt: &started,
			RunSettings: store.RunSettings{TargetHost: ptrTo("http://shop")}, Payload: json.RawMessage(`{"host": "loadgen-1"}`)})
		if err != nil {
			t.Fatalf("register: %v", err)
		}
		if !commit {
			return
		}
		ended := started.Add(10 * time.Minute)
		body := `{"measurement": {"fields": {"requestStats": {"stats": [` + stats + `]}}}}`
		if err := st.Events.Commit(ctx, store.RunCommit{ID: id, EndedAt: &ended, Payload: json.RawMessage(body)}); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	stat := func(method, name string, requests, failures int) string {
		return fmt.Sprintf(`{"method": %q, "name": %q, "num_requests": %d, "num_failures": %d}`, method, name, requests, failures)
	}
	run(time.Date(2025, 11, 22, 10, 0, 0, 0, time.UTC),
		stat("GET", "/a", 100, 50)+","+stat("POST", "/b", 50, 5), true)
	run(time.Date(2025, 11, 22, 11, 0, 0, 0, time.UTC), strings.Join([]string{
		stat("GET", "/x", 200, 20), stat("GET", "/y", 100, 0), stat("POST", "/z", 40, 2),
		`{"method": null, "name": "Total", "num_requests": 340, "num_failures": 22}`}, ","), true)
	run(time.Date(2025, 11, 22, 12, 0, 0, 0, time.UTC), "", false)
}

// ptrTo returns a pointer to a copy of v: this package's tests use it for
// optional fields and filters.
func ptrTo[T any](v T) *T { return &v }

// analystsAnswers are the doc's questions' answers on seedAnalysts' data.
var analystsAnswers = map[string][][]string{
	"top-talkers": {
		{"web", "db", "150", "1500", "1650"},
		{"api", "db", "700", "300", "1000"},
		{"web", "cache", "10", "20", "30"},
	},
	"p95-last-hour": {
		// percentile_disc(0.95) of 1..10: the 10th value, as the API's
		// nearest rank (percentile_cont gave 9.55).
		{"shop", "GET", "/products", "10", "10.000"},
		{"shop", "POST", "/orders", "2", "1.500"},
	},
	"p95-histograms": {
		// The 29th of the 30 values 0.001 * i^2 (0.841) falls in bucket
		// 280, which the API answers as 2e-6 * 1.05^280 / 2.05; TestAnalystsQueries
		// checks these against the store's Grouped too.
		{"/search", "GET", "30", "0.836142"},
		{"/search", "POST", "1", "0.000001"},
	},
	"fastest-last-day": {
		{"shop", "POST", "/orders", "0.5"},
		{"shop", "GET", "/products", "1"},
		{"shop", "POST", "/orders", "1.5"},
	},
	"hot-devices": {
		{"n2", "rack1-node2", "92", "C"},
		{"n1", "rack1-node1", "85.5", "C"},
	},
	"failing-endpoints": {
		{"GET", "/x", "200", "20", "10.0"},
		{"POST", "/z", "40", "2", "5.0"},
	},
	"own-requests": {
		// 1 + 40 requests, (500 + 2) / 41 s on average.
		{"GET", "/flows", "41", "12.244", "500"},
		{"GET", "/readyz", "1", "0.001", "0.001"},
	},
	"daily-rollup": {
		{"2025-11-20", "shop", "GET", "/products", "2", "2.000", "3"},
		{"2025-11-21", "shop", "GET", "/products", "1", "0.500", "0.5"},
		{"2025-11-21", "shop", "POST", "/orders", "1", "0.250", "0.25"},
	},
}

func TestAnalystsQueries(t *testing.T) {
	ctx := context.Background()
	dbURL := testdb.URL(t)
	owner := openPool(t, dbURL)
	st := postgres.New(owner, postgres.Options{})
	t.Cleanup(st.Devices.Close)
	now := time.Now()
	seedAnalysts(t, st, now)
	alice, bob := analystLogins(t, owner, dbURL)
	analystsMatchTheAPI(t, st, now)

	blocks := analystsBlocks(t)
	for name := range analystsAnswers {
		if blocks[name] == "" {
			t.Fatalf("%s has no <!-- analysts:%s --> sql block", analystsDoc, name)
		}
	}
	for name := range blocks {
		if _, ok := analystsAnswers[name]; !ok && name != "login" && name != "admin" {
			t.Errorf("%s: block %q has no expected answer in this test", analystsDoc, name)
		}
	}
	for _, login := range []string{alice, bob} {
		pool := openPool(t, login)
		for name, want := range analystsAnswers {
			got, err := textRows(ctx, pool, blocks[name])
			if err != nil {
				t.Fatalf("%s as %s: %v\n%s", name, login, err, blocks[name])
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s as %s:\n got %q\nwant %q", name, login, got, want)
			}
		}
	}

	// The same text through psql, as a person would run it.
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql is not on PATH (make test installs it: apt-get install postgresql-client)")
	}
	for name, want := range analystsAnswers {
		file := filepath.Join(t.TempDir(), name+".sql")
		if err := os.WriteFile(file, []byte(blocks[name]), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(psql, "-X", "--no-align", "--tuples-only", "-v", "ON_ERROR_STOP=1", "-f", file, alice)
		cmd.Env = append(os.Environ(), "PGTZ=UTC")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("psql %s: %v\n%s", name, err, out)
		}
		var lines []string
		for _, row := range want {
			lines = append(lines, strings.Join(row, "|"))
		}
		if got := strings.TrimRight(string(out), "\n"); got != strings.Join(lines, "\n") {
			t.Errorf("psql %s:\n%s\nwant\n%s", name, got, strings.Join(lines, "\n"))
		}
	}
}

// analystsMatchTheAPI checks that the doc's percentile questions answer
// what the API answers (the store's Grouped, which GET
// /api/measurements/grouped/ serves) on seedAnalysts' data.
func analystsMatchTheAPI(t *testing.T, st *postgres.Store, now time.Time) {
	t.Helper()
	ctx := context.Background()
	grouped := func(f store.MeasurementFilter) []store.MeasurementGroup {
		t.Helper()
		page, err := st.Measurements.Grouped(ctx, f, store.MeasurementSort{Key: "count", Desc: true}, store.PageRequest{Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		return page.Items
	}
	// Whole days from the histograms: the API's p95Elapsed, rounded as the
	// query rounds it.
	var got [][]string
	for _, g := range grouped(store.MeasurementFilter{StartedAt: time.Date(2025, 11, 10, 0, 0, 0, 0, time.UTC),
		EndedAt: time.Date(2025, 11, 12, 0, 0, 0, 0, time.UTC)}) {
		got = append(got, []string{g.Name, g.Method, strconv.FormatInt(g.Count, 10),
			strconv.FormatFloat(math.Round(g.P95Elapsed*1e6)/1e6, 'f', 6, 64)})
	}
	if want := analystsAnswers["p95-histograms"]; !reflect.DeepEqual(got, want) {
		t.Errorf("the API's p95 over 10-11 November: %q, the doc's query answers %q", got, want)
	}
	// A day of the daily rollup: the API counts the requests that ended
	// by the day's end, which the doc's query gives with end_day = start_day.
	day := time.Date(2025, 11, 20, 0, 0, 0, 0, time.UTC)
	api := map[string]int64{}
	for _, g := range grouped(store.MeasurementFilter{StartedAt: day, EndedAt: day.Add(24 * time.Hour)}) {
		api[g.Method+" "+g.Name] = g.Count
	}
	daily := analystsBlocks(t)["daily-rollup"]
	sameDay := strings.Replace(daily, "GROUP BY", "  AND end_day = start_day\nGROUP BY", 1)
	if sameDay == daily {
		t.Fatalf("the daily-rollup block has no GROUP BY:\n%s", daily)
	}
	rows, err := textRows(ctx, st.Pool(), sameDay)
	if err != nil {
		t.Fatalf("daily-rollup with end_day = start_day: %v\n%s", err, sameDay)
	}
	sql := map[string]int64{}
	for _, r := range rows {
		if r[0] == "2025-11-20" {
			n, _ := strconv.ParseInt(r[4], 10, 64)
			sql[r[2]+" "+r[3]] = n
		}
	}
	if !reflect.DeepEqual(api, sql) || api["GET /products"] != 1 {
		t.Errorf("20 November: the API counts %v, the doc's daily query with end_day = start_day %v (want GET /products 1: one of its 2 requests ended the next day)", api, sql)
	}

	// The last hour from the rows: percentile_disc, which the API's
	// histogram answer is within PercentileRelativeError of.
	shop := "shop"
	want := map[string]string{}
	for _, row := range analystsAnswers["p95-last-hour"] {
		want[row[1]+" "+row[2]] = row[4]
	}
	groups := grouped(store.MeasurementFilter{StartedAt: now.Add(-time.Hour), EndedAt: now, App: &shop})
	if len(groups) != len(want) {
		t.Fatalf("the API's groups of the last hour: %+v, the doc's query has %d", groups, len(want))
	}
	for _, g := range groups {
		sql, err := strconv.ParseFloat(want[g.Method+" "+g.Name], 64)
		if err != nil {
			t.Fatalf("%s %s: %v", g.Method, g.Name, err)
		}
		if math.Abs(g.P95Elapsed-sql) > sql*store.PercentileRelativeError {
			t.Errorf("%s %s: the API's p95 %v, the doc's query %v", g.Method, g.Name, g.P95Elapsed, sql)
		}
	}
}

// schemaRelations lists the tables, views and materialized views of the
// schema, with the relkind of each.
func schemaRelations(t *testing.T, pool *pgxpool.Pool) map[string]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT c.relname, c.relkind::text FROM pg_class AS c
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')`)
	if err != nil {
		t.Fatal(err)
	}
	rels, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([2]string, error) {
		var kv [2]string
		return kv, r.Scan(&kv[0], &kv[1])
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, kv := range rels {
		out[kv[0]] = kv[1]
	}
	if len(out) < 10 {
		t.Fatalf("only %d relations in the schema: %v", len(out), out)
	}
	return out
}

// TestAnalystRoleIsReadOnly: a login given telemetry_analyst reads every
// table and view of the schema, and writes none (42501).
func TestAnalystRoleIsReadOnly(t *testing.T) {
	ctx := context.Background()
	dbURL := testdb.URL(t)
	owner := openPool(t, dbURL)
	alice, bob := analystLogins(t, owner, dbURL)
	rels := schemaRelations(t, owner)
	for _, login := range []string{alice, bob} {
		pool := openPool(t, login)
		for rel, kind := range rels {
			id := pgx.Identifier{rel}.Sanitize()
			if _, err := textRows(ctx, pool, "SELECT * FROM "+id+" LIMIT 1"); err != nil {
				t.Errorf("SELECT from %s as %s: %v", rel, login, err)
			}
			if kind != "r" && kind != "p" {
				continue
			}
			var col string
			if err := owner.QueryRow(ctx, `SELECT attname FROM pg_attribute
				WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attidentity = '' AND attgenerated = ''
				ORDER BY attnum LIMIT 1`, id).Scan(&col); err != nil {
				t.Fatal(err)
			}
			c := pgx.Identifier{col}.Sanitize()
			for _, sql := range []string{
				"INSERT INTO " + id + " DEFAULT VALUES",
				"UPDATE " + id + " SET " + c + " = " + c + " WHERE false",
				"DELETE FROM " + id + " WHERE false",
				"TRUNCATE " + id,
			} {
				_, err := pool.Exec(ctx, sql)
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
					t.Errorf("%s as %s: %v, want 42501 permission denied", sql, login, err)
				}
			}
		}
	}
}

// TestAnalystsDocCoversTheSchema: every table and view of the schema is
// named in docs/analysts.md, so a new one cannot go undocumented.
func TestAnalystsDocCoversTheSchema(t *testing.T) {
	doc, err := os.ReadFile(analystsDoc)
	if err != nil {
		t.Fatal(err)
	}
	for rel := range schemaRelations(t, testdb.New(t)) {
		if !strings.Contains(string(doc), "`"+rel+"`") {
			t.Errorf("%s does not describe %s", analystsDoc, rel)
		}
	}
}

// TestEveryColumnHasAComment: README.md and docs/analysts.md promise a
// comment on every table and column of the schema (`\d+ flows`), goose's
// own bookkeeping aside; and the comment of device_metrics_current names the
// operation it mirrors by a path the API serves.
func TestEveryColumnHasAComment(t *testing.T) {
	ctx := context.Background()
	pool := testdb.New(t)
	rows, err := pool.Query(ctx, `
		SELECT c.relname || coalesce('.' || a.attname, '')
		FROM pg_class c
		LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		WHERE c.relnamespace = current_schema()::regnamespace
		  AND c.relkind IN ('r', 'p', 'v', 'm')
		  AND c.relname NOT LIKE 'goose%'
		  AND (obj_description(c.oid, 'pg_class') IS NULL OR col_description(c.oid, a.attnum) IS NULL)
		ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("%d tables or columns have no comment:\n  %s", len(missing), strings.Join(missing, "\n  "))
	}
	var comment string
	if err := pool.QueryRow(ctx, `SELECT obj_description('device_metrics_current'::regclass, 'pg_class')`).Scan(&comment); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(comment, "GET /mrd/devices/{id}/metrics.") {
		t.Errorf("device_metrics_current's comment does not name GET /mrd/devices/{id}/metrics: %s", comment)
	}
}

// TestDeviceMetricsCurrentAppliesTTL: the view gives what the store's
// current metrics give, at the same moment, stale rows left out.
func TestDeviceMetricsCurrentAppliesTTL(t *testing.T) {
	ctx := context.Background()
	pool := testdb.New(t)
	st := postgres.New(pool, postgres.Options{})
	t.Cleanup(st.Devices.Close)
	if _, err := st.Devices.Create(ctx, "n1", "node 1"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, r := range []store.MetricRow{
		{Time: now, DeviceID: "n1", Name: "fresh", Type: "float", Num: 1, Units: "u", Slope: "both", TTL: 3600},
		{Time: now.Add(-2 * time.Minute), DeviceID: "n1", Name: "stale", Type: "float", Num: 2, Units: "u", Slope: "both", TTL: 60},
		{Time: now, DeviceID: "n1", Name: "text", Type: "string", Text: "ok", Units: "-", Slope: "zero", TTL: 3600},
	} {
		if err := st.Devices.Report(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := textRows(ctx, pool, `SELECT name, coalesce(value_num::text, value_text), expires_at = time + make_interval(secs => ttl)
		FROM device_metrics_current ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{{"fresh", "1", "t"}, {"text", "ok", "t"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("device_metrics_current: %q, want %q", got, want)
	}
	page, err := st.Devices.Current(ctx, "n1", now, store.PageRequest{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != len(want) {
		t.Fatalf("the store's current metrics: %d, the view: %d", len(page.Items), len(want))
	}
	// The stale report is still the latest one: only the view's TTL hides it.
	var latest int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM device_metrics_latest WHERE device_id = 'n1'`).Scan(&latest); err != nil || latest != 3 {
		t.Fatalf("device_metrics_latest: %d rows, %v", latest, err)
	}
}

// TestAnalystsDocFunctionsHaveComments: every function of the schema that
// docs/analysts.md names (telemetry_hist_buckets, telemetry_elapsed_bucket,
// ...) says what it does in the database too (\df+, obj_description), as
// the tables and columns do. The two the page tells analysts to use had
// none (found by an audit; migration 00044).
func TestAnalystsDocFunctionsHaveComments(t *testing.T) {
	ctx := context.Background()
	doc, err := os.ReadFile(analystsDoc)
	if err != nil {
		t.Fatal(err)
	}
	pool := testdb.New(t)
	rows, err := pool.Query(ctx, `SELECT p.proname, obj_description(p.oid, 'pg_proc') IS NOT NULL
		FROM pg_proc p WHERE p.pronamespace = current_schema()::regnamespace`)
	if err != nil {
		t.Fatal(err)
	}
	type fn struct {
		name      string
		commented bool
	}
	fns, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (fn, error) {
		var f fn
		return f, r.Scan(&f.name, &f.commented)
	})
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for _, f := range fns {
		if !regexp.MustCompile(`\b` + regexp.QuoteMeta(f.name) + `\(`).Match(doc) {
			continue
		}
		named++
		if !f.commented {
			t.Errorf("%s names the function %s, which has no comment", analystsDoc, f.name)
		}
	}
	if named < 3 {
		t.Fatalf("only %d functions of the schema named in %s: the check proves nothing", named, analystsDoc)
	}
}

// TestMeasurementsCommentsNameSummaryRows: the service's own requests past
// SELF_PROFILE_DETAIL a second are summary rows standing for context.count
// requests; the comments an analyst reads with \d+ measurements said "one
// row per profiled request" (found by an audit; migration 00044).
func TestMeasurementsCommentsNameSummaryRows(t *testing.T) {
	ctx := context.Background()
	pool := testdb.New(t)
	for _, c := range []struct{ what, sql, want string }{
		{"the table", `SELECT obj_description('measurements'::regclass, 'pg_class')`, "context->>'count'"},
		{"elapsed", `SELECT col_description(attrelid, attnum) FROM pg_attribute
			WHERE attrelid = 'measurements'::regclass AND attname = 'elapsed'`, "summary row"},
		{"context", `SELECT col_description(attrelid, attnum) FROM pg_attribute
			WHERE attrelid = 'measurements'::regclass AND attname = 'context'`, "elapsedTotal"},
	} {
		var comment string
		if err := pool.QueryRow(ctx, c.sql).Scan(&comment); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(comment, c.want) {
			t.Errorf("the comment of measurements' %s does not mention %q: %s", c.what, c.want, comment)
		}
	}
}
