package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/auth"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// A rolling upgrade (docs/scaling.md, "Migrations in a PgBouncer
// deployment"): the new release migrates, and the instances of the release
// before keep serving on the newer schema until they are replaced. What
// they write must be what the new release reads: its reads take the
// derived tables (rollups, cells, running totals), so every derived table
// the release before fills, through its own statements or the schema's
// functions and triggers, must hold what a rebuild from its rows gives.
// A release that wrote a derived table from its own statement, which the
// release before does not have, would fail here (migration 00054 had that
// defect until review: the runtime samples' hourly cells).
//
// The release before is the newest commit whose migrations are all older
// than this release's newest (UPGRADE_FROM=<commit> names another, e.g.
// ac55cfc, the first release that keeps the promise), built from the
// repository's history with git archive and go build. The same fill by
// this release is the control: its derived tables must equal their
// rebuild too, or the comparison itself is wrong.
//
// Then going back: this release's migrations undone with migrate down to
// the release before's schema (each Down section between the two run on
// stored data), the release before serving on it with its maintenance on
// and running a maintain pass, and migrated up again, the derived tables
// still their rebuild.
func TestRollingUpgradeKeepsThePreviousReleaseWorking(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the release before from git history (-short)")
	}
	prev, prevVersion := previousReleaseBinary(t)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		bin  string // "": this release, in process
	}{{"this release (control)", ""}, {"the release before", prev}} {
		t.Run(c.name, func(t *testing.T) {
			url := testdb.Empty(t)
			migrateLog(t, url) // this release's schema
			pool, err := pgxpool.New(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			vars := map[string]string{"DATABASE_URL": url, "LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret,
				"SEAL_INTERVAL": "1s", "SELF_SAMPLE_INTERVAL": "1s"}
			var base string
			var stop func()
			if c.bin == "" {
				base, stop = startServeChecked(t, vars)
			} else {
				base, stop = startBinary(t, c.bin, vars, true)
			}
			token, err := auth.New([]byte(testSecret)).Issue(time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			cl := backupClient{&client{t: t, base: base, token: token}}
			// Every resource written, then every read answered, by the
			// release under test (a release before the schema seals
			// nothing: its sealing pass is off on a later schema).
			f := fillForBackup(t, cl, pool, c.bin == "")
			answers(t, cl, f)
			stop() // its last self-profiling rows flushed
			derivedAreTheirRebuild(t, pool)
			// This release reads what was written (each answer a 200).
			hc, stopQuiet := quietServe(t, url)
			answers(t, hc, f)
			stopQuiet()
			if c.bin == "" {
				return
			}

			// Going back (docs/scaling.md): this release's migrations
			// undone, one by one, down to the release before's schema, on
			// which it serves with its maintenance on; then up again.
			for v := schemaVersion(t, pool); v > prevVersion; v = schemaVersion(t, pool) {
				if err := run(ctx, []string{"migrate", "down"}, env(map[string]string{"DATABASE_URL": url}), io.Discard, io.Discard); err != nil {
					t.Fatalf("migrate down from %d: %v", v, err)
				}
			}
			base, stop = startBinary(t, c.bin, vars, false)
			answers(t, backupClient{&client{t: t, base: base, token: token}}, f)
			stop()
			maintain := exec.Command(c.bin, "maintain")
			maintain.Env = []string{"PATH=" + os.Getenv("PATH"), "DATABASE_URL=" + url}
			if out, err := maintain.CombinedOutput(); err != nil {
				t.Fatalf("%s maintain on its own schema: %v\n%s", filepath.Base(c.bin), err, out)
			}
			migrateLog(t, url)
			derivedAreTheirRebuild(t, pool)
			hc, stopQuiet = quietServe(t, url)
			answers(t, hc, f)
			stopQuiet()
		})
	}
}

// derivedAreTheirRebuild checks that every derived table holds what a
// rebuild from the rows gives (and is not empty), then leaves the rebuild.
func derivedAreTheirRebuild(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	before := derivedTables(t, pool)
	rebuildDerived(t, pool)
	after := derivedTables(t, pool)
	for _, table := range slices.Sorted(maps.Keys(after)) {
		if len(after[table]) == 0 {
			t.Errorf("%s: no rows after the rebuild: the fill does not reach it", table)
		}
		if d := diffRows(before[table], after[table]); d != "" {
			t.Errorf("%s as written differs from its rebuild from the rows:\n%s", table, d)
		}
	}
}

// schemaVersion is the newest migration applied to the database.
func schemaVersion(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var v int
	if err := pool.QueryRow(context.Background(), `SELECT max(version_id) FROM goose_db_version WHERE version_id > 0`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// previousReleaseBinary builds the serve binary of the release before this
// one's newest migration (or of UPGRADE_FROM) into a temporary folder, and
// gives its newest migration's version too.
func previousReleaseBinary(t *testing.T) (string, int) {
	t.Helper()
	git := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("git", args...).Output()
		if err != nil {
			t.Fatalf("git %s: %v (this test needs the repository's history: a clone, not an export)", strings.Join(args, " "), err)
		}
		return strings.TrimSpace(string(out))
	}
	root := git("rev-parse", "--show-toplevel")
	if git("-C", root, "rev-parse", "--is-shallow-repository") == "true" {
		t.Fatal("a shallow clone has no release before to build: git fetch --unshallow")
	}
	commit := os.Getenv("UPGRADE_FROM")
	if commit == "" {
		files, err := filepath.Glob(filepath.Join(root, "migrations", "*.sql"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no migrations under %s: %v", root, err)
		}
		newest, _ := migrationVersions(files)
		// The newest commit before this schema whose migrations are a
		// release's: all older than this release's newest, no version
		// twice (a branch's migration renumbered on merge leaves a commit
		// with two). HEAD itself when the newest is not committed yet.
		candidates := []string{"HEAD"}
		for _, c := range strings.Fields(git("-C", root, "log", "--format=%H", "--", "migrations")) {
			candidates = append(candidates, c+"^")
		}
		for _, c := range candidates {
			names := strings.Fields(git("-C", root, "ls-tree", "--name-only", c, "migrations/"))
			if v, ok := migrationVersions(names); ok && v < newest {
				commit = c
				break
			}
		}
		if commit == "" {
			t.Fatal("no commit in the history has an older schema than this one")
		}
	}
	commit = git("-C", root, "rev-parse", "--short", commit)
	version, ok := migrationVersions(strings.Fields(git("-C", root, "ls-tree", "--name-only", commit, "migrations/")))
	if !ok {
		t.Fatalf("%s has no migrations, or one version twice", commit)
	}
	dir := t.TempDir()
	archive := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", root, commit, dir)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive %s: %v\n%s", commit, err, out)
	}
	bin := filepath.Join(dir, "telemetry-"+commit)
	build := exec.Command("go", "build", "-o", bin, "./cmd/telemetry")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", commit, err, out)
	}
	t.Logf("the release before: %s (schema version %d)", commit, version)
	return bin, version
}

// migrationVersions is the newest version among the migration files
// named (paths or names, NNNNN_name.sql), and false when there is none or
// a version is there twice.
func migrationVersions(names []string) (int, bool) {
	seen, newest := map[int]bool{}, 0
	for _, n := range names {
		var v int
		if _, err := fmt.Sscanf(filepath.Base(n), "%05d_", &v); err != nil || !strings.HasSuffix(n, ".sql") {
			continue
		}
		if seen[v] {
			return newest, false
		}
		seen[v], newest = true, max(newest, v)
	}
	return newest, len(seen) > 0
}

// startBinary runs bin serve with vars as its whole environment (and
// PATH), and gives its address and a stop that sends SIGTERM, waits, and
// fails the test on an error it logged, or when it did (not) say, as ahead
// wants, that it serves a later release's schema.
func startBinary(t *testing.T, bin string, vars map[string]string, ahead bool) (string, func()) {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	// Ends with the test binary however it ends (a -timeout): never left
	// serving on, as internal/api's startServeBinary does for its benchmarks.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logs := &syncBuffer{}
	cmd.Stderr = logs
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	_, base, found := strings.Cut(line, "serving on ")
	if err != nil || !found {
		t.Fatalf("%s serve: %q %v\n%s", filepath.Base(bin), line, err, logs)
	}
	base, _, _ = strings.Cut(strings.TrimSpace(base), " ")
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return base, func() {
		t.Helper()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%s serve: %v\n%s", filepath.Base(bin), err, logs)
		}
		if got := strings.Contains(logs.String(), "the database schema is newer than this binary"); got != ahead {
			t.Errorf("%s: warned of a newer schema %v, want %v", filepath.Base(bin), got, ahead)
		}
		noErrorsLogged(t, filepath.Base(bin), logs)
	}
}

// derivedTableQueries read the tables filled from others as rows are
// written, each of which rebuildDerived builds again from those rows. The
// histograms are kept in parts (concurrent writes add to one of several
// rows), which a rebuild makes one: they are compared bucket by bucket,
// summed over the parts. The sealed units are not among them: a release
// before the schema does not seal, and a rebuild deletes them for the next
// pass to seal again.
var derivedTableQueries = map[string]string{
	"flows_hourly":               "SELECT * FROM flows_hourly",
	"measurements_hourly":        "SELECT * FROM measurements_hourly",
	"measurements_daily":         "SELECT * FROM measurements_daily",
	"measurements_method_hourly": "SELECT * FROM measurements_method_hourly",
	"measurements_5min":          "SELECT * FROM measurements_5min",
	"measurements_hourly_hist": `SELECT start_hour, end_hour, app, name, method, b.bucket, sum(b.count)::bigint AS count
		FROM measurements_hourly_hist h, telemetry_hist_buckets(h.hist) b GROUP BY 1, 2, 3, 4, 5, 6`,
	"measurements_daily_hist": `SELECT start_day, end_day, app, name, method, b.bucket, sum(b.count)::bigint AS count
		FROM measurements_daily_hist h, telemetry_hist_buckets(h.hist) b GROUP BY 1, 2, 3, 4, 5, 6`,
	"collection_http_minute": "SELECT * FROM collection_http_minute",
	"collection_http_10s":    "SELECT * FROM collection_http_10s",
	"collection_http_totals": "SELECT * FROM collection_http_totals",
	"runtime_samples_hourly": "SELECT * FROM runtime_samples_hourly",
}

// derivedTables reads every derived table: per table, each row's columns
// as text but its floating-point ones, kept apart (sums kept as rows come
// may differ from a rebuild's in their last bits).
func derivedTables(t *testing.T, pool *pgxpool.Pool) map[string][]derivedRow {
	t.Helper()
	out := map[string][]derivedRow{}
	for table, query := range derivedTableQueries {
		rows, err := pool.Query(context.Background(), query)
		if err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		cols := rows.FieldDescriptions()
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			var r derivedRow
			var key []string
			for i, v := range vals {
				switch x := v.(type) {
				case float64:
					r.floats = append(r.floats, x)
				case float32:
					r.floats = append(r.floats, float64(x))
				case time.Time:
					key = append(key, cols[i].Name+"="+x.UTC().Format(time.RFC3339Nano))
				default:
					key = append(key, fmt.Sprintf("%s=%v", cols[i].Name, x))
				}
			}
			r.key = strings.Join(key, " ")
			out[table] = append(out[table], r)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		slices.SortFunc(out[table], func(a, b derivedRow) int { return strings.Compare(a.key, b.key) })
	}
	return out
}

type derivedRow struct {
	key    string
	floats []float64
}

// diffRows lists the rows only one side has, or whose floating-point
// columns differ by more than a rounding's worth; "" when none.
func diffRows(written, rebuilt []derivedRow) string {
	var d []string
	i, j := 0, 0
	for i < len(written) || j < len(rebuilt) {
		switch {
		case j == len(rebuilt) || (i < len(written) && written[i].key < rebuilt[j].key):
			d = append(d, fmt.Sprintf("  written, not rebuilt: %s %v", written[i].key, written[i].floats))
			i++
		case i == len(written) || rebuilt[j].key < written[i].key:
			d = append(d, fmt.Sprintf("  rebuilt, not written: %s %v", rebuilt[j].key, rebuilt[j].floats))
			j++
		default:
			if !closeFloats(written[i].floats, rebuilt[j].floats) {
				d = append(d, fmt.Sprintf("  %s: written %v, rebuilt %v", written[i].key, written[i].floats, rebuilt[j].floats))
			}
			i, j = i+1, j+1
		}
	}
	if len(d) > 20 {
		d = append(d[:20], fmt.Sprintf("  (%d more)", len(d)-20))
	}
	return strings.Join(d, "\n")
}

func closeFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-9*math.Max(1, math.Max(math.Abs(a[i]), math.Abs(b[i]))) {
			return false
		}
	}
	return true
}

// rebuildDerived rebuilds every derived table from its rows: the flows'
// hourly rollup, the measurements' rollups with the collections' cells and
// running totals (RebuildRollup), and the runtime samples' hourly cells.
func rebuildDerived(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`SELECT telemetry_flows_hourly_rebuild('-infinity', 'infinity')`,
		`SELECT telemetry_runtime_hourly_rebuild('-infinity', 'infinity')`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var lo, hi time.Time
	if err := pool.QueryRow(ctx, `SELECT min(started_at), max(started_at) FROM measurements`).Scan(&lo, &hi); err != nil {
		t.Fatal(err)
	}
	st := postgres.New(pool, postgres.Options{})
	if err := st.Measurements.RebuildRollup(ctx, lo, hi.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
}
