package postgres_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/migrate"
	"github.com/telemetry/telemetry/internal/pgcluster"
	"github.com/telemetry/telemetry/internal/testdb"
)

// The role telemetry_analyst belongs to the whole cluster, so its life
// across databases and migrating users is tested on a private cluster, where
// creating and dropping it disturbs no other test.

// migrateDB runs the migrations up, or down to version 10 (just before
// 00011) when down is set, on the database at dbURL, and answers the
// notices the server sent.
func migrateDB(t *testing.T, dbURL string, down bool) []string {
	t.Helper()
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	received := collectNotices(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	m, err := migrate.New(pool)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if down {
		err = m.DownTo(ctx, log, 10)
	} else {
		err = m.Up(ctx, log)
	}
	if err != nil {
		t.Fatalf("migrate (down %v) %s: %v", down, dbURL, err)
	}
	return received()
}

func mustExec(t *testing.T, dbURL string, sql string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// canRead reports whether user may read flows in the database at dbURL; any
// error but permission denied fails the test.
func canRead(t *testing.T, dbURL, user string) bool {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), asUser(t, dbURL, user))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), "SELECT * FROM flows LIMIT 1")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func roleExists(t *testing.T, admin *pgxpool.Pool) bool {
	t.Helper()
	var ok bool
	if err := admin.QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'telemetry_analyst')`).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func TestAnalystRoleAcrossDatabasesAndUsers(t *testing.T) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "telemetry-analyst-pg-")
	if err != nil {
		t.Fatal(err)
	}
	testdb.Watch(dir)
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Fast: true})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("private cluster: %v", err)
	}
	t.Cleanup(func() { c.Remove(context.Background()) })
	adminURL := c.URL("postgres")
	admin := openPool(t, adminURL)
	createDB := func(name, owner string) string {
		sql := "CREATE DATABASE " + name
		if owner != "" {
			sql += " OWNER " + owner
		}
		mustExec(t, adminURL, sql)
		return c.URL(name)
	}

	// A superuser's migrations create the role once for two databases.
	d2, d3 := createDB("d2", ""), createDB("d3", "")
	migrateDB(t, d2, false)
	migrateDB(t, d3, false)
	if !roleExists(t, admin) {
		t.Fatal("migrations as a superuser did not create telemetry_analyst")
	}
	mustExec(t, adminURL, "CREATE ROLE alice LOGIN IN ROLE telemetry_analyst")
	if !canRead(t, d2, "alice") || !canRead(t, d3, "alice") {
		t.Fatal("alice cannot read flows")
	}
	// Rolling d2 back revokes d2's grants and leaves d3's, and the role.
	migrateDB(t, d2, true)
	if canRead(t, d2, "alice") {
		t.Fatal("alice still reads d2's flows after its down migration")
	}
	if !roleExists(t, admin) || !canRead(t, d3, "alice") {
		t.Fatal("d2's down migration broke d3's use of telemetry_analyst")
	}
	// Rolling d3 back too: the role stays while alice is a member.
	migrateDB(t, d3, true)
	if !roleExists(t, admin) {
		t.Fatal("the down migration dropped telemetry_analyst while alice is a member")
	}
	// Unused by any database and any login, the role goes with the last down.
	mustExec(t, adminURL, "DROP ROLE alice")
	migrateDB(t, d3, false)
	migrateDB(t, d3, true)
	if roleExists(t, admin) {
		t.Fatal("the last down migration left telemetry_analyst, which nothing used")
	}

	// A migrating user without CREATEROLE: the migration succeeds with a
	// NOTICE, and the doc's admin commands give the access afterwards.
	mustExec(t, adminURL, "CREATE ROLE migrator LOGIN")
	d1 := createDB("d1", "migrator")
	// CREATE EXTENSION timescaledb needs a superuser: one creates it first
	// where the server preloads it (00001 then finds it there).
	mustExec(t, d1, `DO $$ BEGIN
		IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
		   AND current_setting('shared_preload_libraries') ~ 'timescaledb' THEN
			CREATE EXTENSION IF NOT EXISTS timescaledb;
		END IF; END $$`)
	notices := migrateDB(t, asUser(t, d1, "migrator"), false)
	if !strings.Contains(strings.Join(notices, "\n"), "lacks CREATEROLE") {
		t.Fatalf("no NOTICE about CREATEROLE; notices: %q", notices)
	}
	if roleExists(t, admin) {
		t.Fatal("telemetry_analyst exists though the migrating user may not create roles")
	}
	stmts := strings.SplitAfter(strings.TrimSpace(analystsBlocks(t)["admin"]), ";")
	if len(stmts) != 3 || strings.TrimSpace(stmts[2]) != "" {
		t.Fatalf("the admin block of %s: want two statements, got %q", analystsDoc, stmts)
	}
	mustExec(t, adminURL, stmts[0])                  // as a superuser
	mustExec(t, asUser(t, d1, "migrator"), stmts[1]) // as the migrating user
	mustExec(t, adminURL, "CREATE ROLE carol LOGIN IN ROLE telemetry_analyst")
	if !canRead(t, d1, "carol") {
		t.Fatal("after the doc's admin commands, carol cannot read flows")
	}
	// Default privileges: a table the migrating user creates later is readable too.
	mustExec(t, asUser(t, d1, "migrator"), "CREATE TABLE later (x int)")
	conn, err := pgx.Connect(ctx, asUser(t, d1, "carol"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SELECT * FROM later"); err != nil {
		t.Fatalf("a table created after the grants: %v", err)
	}
	// Migration 00022 turned JIT off for the migrating (service) role only:
	// an analyst's login keeps the server's default.
	if got := showSetting(t, asUser(t, d1, "migrator"), "jit"); got != "off" {
		t.Fatalf("jit for the migrating role: %q, want off", got)
	}
	if got := showSetting(t, asUser(t, d1, "carol"), "jit"); got != "on" {
		t.Fatalf("jit for an analyst: %q, want the server's default, on", got)
	}
}

// showSetting is SHOW name on a new connection to dbURL.
func showSetting(t *testing.T, dbURL, name string) string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(context.Background(), "SHOW "+name).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}
