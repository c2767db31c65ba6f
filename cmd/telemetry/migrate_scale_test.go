package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/migrate"
	"github.com/telemetry/telemetry/internal/pgbouncer"
	"github.com/telemetry/telemetry/internal/pgcluster"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
	"github.com/telemetry/telemetry/migrations"
)

// Three migrators at once through PgBouncer in transaction pooling mode
// (where a session advisory lock does not hold): all succeed, every
// migration is applied exactly once, and `migrate down` afterwards works
// through the pooler too. Server connections go round robin, so that a
// client's consecutive transactions land on different ones, as in a busy
// deployment.
func TestConcurrentMigrationsThroughPgBouncer(t *testing.T) {
	b := startBouncerWith(t, pgbouncer.Options{RoundRobin: true})
	direct := testdb.Empty(t)
	vars := env(map[string]string{"DATABASE_URL": b.Via(direct)})
	// Each migrator's pool is open and connected before they all start at
	// once, so that none gets ahead while the others connect.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	start := make(chan struct{})
	for i := range errs {
		st, err := postgres.Open(context.Background(), b.Via(direct), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		pool := st.Pool()
		if err := pool.Ping(context.Background()); err != nil {
			t.Fatal(err)
		}
		m, err := migrate.New(pool)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = m.Up(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		}()
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), direct)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var versions, rows int
	err = pool.QueryRow(context.Background(),
		`SELECT count(DISTINCT version_id), count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&versions, &rows)
	if err != nil {
		t.Fatal(err)
	}
	if versions != len(files) || rows != len(files) {
		t.Fatalf("goose_db_version holds %d rows for %d versions, want one row for each of %d migrations", rows, versions, len(files))
	}
	var status bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "status"}, vars, &status, io.Discard); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(status.String(), "pending") {
		t.Fatalf("after concurrent migrations:\n%s", status.String())
	}
	if err := run(context.Background(), []string{"migrate", "down"}, vars, io.Discard, io.Discard); err != nil {
		t.Fatalf("migrate down through PgBouncer: %v", err)
	}
	status.Reset()
	if err := run(context.Background(), []string{"migrate", "status"}, vars, &status, io.Discard); err != nil {
		t.Fatal(err)
	}
	if strings.Count(status.String(), "pending") != 1 {
		t.Fatalf("status after down should show one pending migration:\n%s", status.String())
	}
}

// MIGRATE_DATABASE_URL, when set, is the database migrate uses: here
// DATABASE_URL points nowhere.
func TestMigrateUsesMigrateDatabaseURL(t *testing.T) {
	direct := testdb.Empty(t)
	vars := env(map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/nowhere?connect_timeout=1", "MIGRATE_DATABASE_URL": direct})
	if err := run(context.Background(), []string{"migrate"}, vars, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	var status bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "status"}, env(map[string]string{"DATABASE_URL": direct}), &status, io.Discard); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(status.String(), "pending") {
		t.Fatalf("MIGRATE_DATABASE_URL not migrated:\n%s", status.String())
	}
}

// A malformed MIGRATE_DATABASE_URL is reported under its own name, not as
// DATABASE_URL, which is well formed here (found by an audit).
func TestMigrateDatabaseURLErrorNamesItsVariable(t *testing.T) {
	vars := env(map[string]string{"DATABASE_URL": "postgres://u:p@127.0.0.1:5432/telemetry",
		"MIGRATE_DATABASE_URL": "postgres://u:p@127.0.0.1:notaport/telemetry"})
	err := run(context.Background(), []string{"migrate", "status"}, vars, io.Discard, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "MIGRATE_DATABASE_URL: ") {
		t.Fatalf("error %v, want one naming MIGRATE_DATABASE_URL", err)
	}
}

// migrate up and down refuse a server in recovery (a streaming replica)
// with a message saying to migrate the primary, instead of reporting the
// schema up to date. The server: a cluster restarted with standby.signal
// and no primary, which stays in recovery and answers read-only queries.
func TestMigrateRefusesAServerInRecovery(t *testing.T) {
	if os.Getenv("TEST_DATABASE_URL") != "" {
		t.Skip("needs the PostgreSQL server binaries to start a standby (TEST_DATABASE_URL is set)")
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "telemetry-standby-")
	if err != nil {
		t.Fatal(err)
	}
	testdb.Watch(dir)
	c, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Fast: true})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Remove(context.Background()) })
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pgdata", "standby.signal"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Fast: true}); err != nil {
		t.Fatal(err)
	}
	vars := env(map[string]string{"DATABASE_URL": c.URL("postgres")})
	for _, sub := range []string{"up", "down"} {
		err := run(ctx, []string{"migrate", sub}, vars, io.Discard, io.Discard)
		if !errors.Is(err, migrate.ErrReadOnly) || !strings.Contains(err.Error(), "migrate the primary") {
			t.Errorf("migrate %s on a server in recovery: %v", sub, err)
		}
	}
}
