// Package testdb gives each test its own migrated PostgreSQL database.
//
// A test binary gets one PostgreSQL server: the one named by
// TEST_DATABASE_URL, or a throwaway cluster (fsync off) that Run starts in a
// temporary directory and removes at the end. The migrations are applied
// once to a template database; every New then clones it with
// CREATE DATABASE ... TEMPLATE, which takes a few tens of milliseconds, so
// tests run in parallel and in any order.
package testdb

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/migrate"
	"github.com/telemetry/telemetry/internal/pgcluster"
)

var (
	serverURL string // admin connection string ("postgres" database)
	template  string // migrated template database name
	setupOnce sync.Once
	setupErr  error
	counter   atomic.Int64
)

// Run wraps testing.M.Run: it starts a throwaway cluster when
// TEST_DATABASE_URL is unset and removes it after the tests. Use it from
// TestMain: func TestMain(m *testing.M) { os.Exit(testdb.Run(m)) }.
func Run(m *testing.M) int {
	ReapIfAsked() // this process may be a test process's reaper (reaper.go)
	ctx := context.Background()
	var cluster *pgcluster.Cluster
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		serverURL = u
	} else {
		dir, err := os.MkdirTemp("", "telemetry-testpg-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "testdb:", err)
			return 1
		}
		Watch(dir)
		// Benchmarks (TESTDB_DURABLE=1) measure a server with initdb's
		// defaults; tests run with fsync off.
		fast := os.Getenv("TESTDB_DURABLE") != "1"
		// TESTDB_STAT_STATEMENTS=1 preloads pg_stat_statements (the mixed
		// load benchmark then lists the statements that took its time);
		// TESTDB_LOCALE sets the cluster's collation (pgcluster.Options.Locale:
		// C by default, e.g. icu:en-US to measure a linguistic one).
		cluster, err = pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Fast: fast,
			StatStatements: os.Getenv("TESTDB_STAT_STATEMENTS") == "1", Locale: os.Getenv("TESTDB_LOCALE"),
			TimeZone: TimeZone()})
		if err != nil {
			fmt.Fprintln(os.Stderr, "testdb: starting a throwaway PostgreSQL cluster:", err)
			os.RemoveAll(dir)
			return 1
		}
		serverURL = cluster.URL("postgres")
	}
	code := m.Run()
	removePair(ctx)
	if template != "" && cluster == nil {
		dropDatabase(ctx, template)
	}
	if cluster != nil {
		if err := cluster.Remove(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "testdb: removing cluster:", err)
		}
	}
	return code
}

// ServerURL is the admin connection string of the test server.
func ServerURL() string { return serverURL }

// URL creates a fresh, fully migrated database for t, dropped when t ends,
// and returns its connection string.
func URL(t testing.TB) string {
	t.Helper()
	if serverURL == "" {
		t.Fatal("testdb: call testdb.Run from TestMain")
	}
	setupOnce.Do(func() { setupErr = setupTemplate() })
	if setupErr != nil {
		t.Fatalf("testdb: %v", setupErr)
	}
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), counter.Add(1))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{template}.Sanitize()); err != nil {
		t.Fatalf("testdb: create database: %v", err)
	}
	t.Cleanup(func() { dropDatabase(context.Background(), name) })
	return withDatabase(t, serverURL, name)
}

// New is URL plus a pool on the new database, closed when t ends.
//
// TESTDB_EXEC_MODE (a pgx query exec mode: exec, simple_protocol, ...) makes
// these pools use it, so that a whole package's tests can be run in each
// mode (docs/scaling.md).
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	u := URL(t)
	if mode := os.Getenv("TESTDB_EXEC_MODE"); mode != "" {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "default_query_exec_mode=" + url.QueryEscape(mode)
	}
	pool, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Empty creates an unmigrated database for t (for migration tests).
func Empty(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("e_%d_%d", os.Getpid(), counter.Add(1))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("testdb: create database: %v", err)
	}
	t.Cleanup(func() { dropDatabase(context.Background(), name) })
	return withDatabase(t, serverURL, name)
}

func setupTemplate() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := "tmpl_" + strconv.Itoa(os.Getpid())
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("create template: %w", err)
	}
	template = name
	url, err := databaseURL(serverURL, name)
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := migrate.New(pool)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Up(ctx, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		return err
	}
	pool.Close()
	// CREATE DATABASE ... TEMPLATE fails while anyone is connected to the
	// template, and with TimescaleDB its background scheduler connects to
	// every database that has the extension: close the template to new
	// connections and end the ones already there.
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{name}.Sanitize()+" ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("close template: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name); err != nil {
		return fmt.Errorf("close template: %w", err)
	}
	return nil
}

func withDatabase(t testing.TB, base, name string) string {
	u, err := databaseURL(base, name)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	return u
}

// databaseURL is base with its database replaced by name. TEST_DATABASE_URL
// must therefore be a URL (postgres://...), not a key=value string. The
// result always has a query string (application_name when base has none),
// so that tests may append "&pool_max_conns=1" and the like.
func databaseURL(base, name string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("TEST_DATABASE_URL must be a postgres:// URL")
	}
	u.Path = "/" + name
	if u.RawQuery == "" {
		u.RawQuery = "application_name=telemetry-test"
	}
	return u.String(), nil
}

func dropDatabase(ctx context.Context, name string) {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

// TimeZone is the throwaway clusters' TimeZone: TESTDB_TIMEZONE, else
// America/St_Johns, a zone with a half-hour offset and daylight saving
// time, so that SQL that cuts hours or days in the session's zone instead
// of UTC (a bare date_trunc('day', t), a date_bin origin written without
// +00) fails the tests wherever they run; an analyst's session may be in
// any zone. TESTDB_TIMEZONE=UTC runs them in UTC.
func TimeZone() string {
	if tz := os.Getenv("TESTDB_TIMEZONE"); tz != "" {
		return tz
	}
	return "America/St_Johns"
}
