package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/telemetry/telemetry/internal/pgcluster"
	"github.com/telemetry/telemetry/internal/testdb"
)

// The clusters these tests start are watched by testdb's reaper, which
// TestMain runs when this binary is started as one.
func TestMain(m *testing.M) {
	testdb.ReapIfAsked()
	os.Exit(m.Run())
}

// devDir is a directory for a cluster (dir/pg) and its password file
// (dir/pgpass), removed with its cluster when the test ends.
func devDir(t *testing.T) (dir, passfile string) {
	t.Helper()
	// Not t.TempDir: its parent is private to root, and the server runs
	// as postgres.
	root, err := os.MkdirTemp("", "telemetry-devdb-")
	if err != nil {
		t.Fatal(err)
	}
	// Made to let the postgres user through to the cluster's directory,
	// as ./.data is.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	testdb.Watch(root) // stopped and removed should the test binary be killed
	dir = filepath.Join(root, "pg")
	t.Cleanup(func() {
		if c, err := pgcluster.Open(dir); err == nil {
			_ = c.Stop(context.Background())
		}
		os.RemoveAll(root)
	})
	return dir, filepath.Join(root, "pgpass")
}

func startDev(t *testing.T, dir, passfile string) (url, warning string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), dir, passfile, "start", &stdout, &stderr); err != nil {
		t.Fatalf("devdb start: %v (%s)", err, stderr.String())
	}
	return strings.TrimSpace(stdout.String()), stderr.String()
}

// checkPassword checks that the cluster in dir lets in the URL devdb
// printed (with pgx, as the service connects, and with psql, as make psql
// does) and refuses the same connection without the password. The local
// cluster used to trust every local connection: any user of a shared
// machine got in as its superuser (found by an audit).
func checkPassword(t *testing.T, dir, url string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("the URL devdb printed (%s): %v", url, err)
	}
	var db string
	err = conn.QueryRow(ctx, `SELECT current_database()`).Scan(&db)
	conn.Close(ctx)
	if err != nil || db != "telemetry" {
		t.Fatalf("database %q, %v", db, err)
	}
	c, err := pgcluster.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	c.Port = portOf(t, url)
	// No passfile, and none at pgx's default place either.
	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "none"))
	conn, err = pgx.Connect(ctx, c.URL("telemetry"))
	var pgErr *pgconn.PgError
	if err == nil {
		conn.Close(ctx)
		t.Fatal("a connection without the password got in")
	} else if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("a connection without the password: %v, want 28P01 (invalid password)", err)
	}
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql is not on PATH (make test installs it: apt-get install postgresql-client)")
	}
	out, err := exec.Command(psql, "-X", "-A", "-t", "-c", "SELECT current_user", url).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "postgres" {
		t.Fatalf("psql with the URL devdb printed: %v: %s", err, out)
	}
}

func portOf(t *testing.T, url string) int {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return int(cfg.Port)
}

// A new cluster asks for the password devdb wrote into its password file,
// readable by its owner only; a second start reuses both.
func TestStartNewClusterAsksForAPassword(t *testing.T) {
	dir, passfile := devDir(t)
	url, warning := startDev(t, dir, passfile)
	if warning != "" {
		t.Errorf("a new cluster: devdb wrote %q", warning)
	}
	if fi, err := os.Stat(passfile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("password file: %v %v, want mode 0600", fi, err)
	}
	password, err := readPassword(passfile)
	if err != nil || len(password) != 64 {
		t.Fatalf("password %q, %v", password, err)
	}
	if strings.Contains(url, password) {
		t.Errorf("the URL %s carries the password: it ends up on command lines", url)
	}
	checkPassword(t, dir, url)
	again, _ := startDev(t, dir, passfile)
	if again != url {
		t.Errorf("second start: %s, want %s", again, url)
	}
}

// A cluster initialised before the password (trust) is given one and asks
// for it from then on.
func TestStartTrustClusterGetsAPassword(t *testing.T) {
	dir, passfile := devDir(t)
	old, err := pgcluster.Start(context.Background(), pgcluster.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if trusts, err := old.Trusts(); err != nil || !trusts {
		t.Fatalf("a cluster started without a password: trusts %v, %v", trusts, err)
	}
	url, warning := startDev(t, dir, passfile)
	if !strings.Contains(warning, "now asks for") {
		t.Errorf("devdb wrote %q, want a word about the change", warning)
	}
	checkPassword(t, dir, url)
	if _, warning := startDev(t, dir, passfile); warning != "" {
		t.Errorf("second start: devdb wrote %q", warning)
	}
}

// A cluster that asks for a password whose file is gone is not started
// with a new password nobody set: devdb says how to start afresh.
func TestStartWithoutThePasswordFile(t *testing.T) {
	dir, passfile := devDir(t)
	startDev(t, dir, passfile)
	if err := os.Remove(passfile); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), dir, passfile, "start", &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("start without the password file: %v, want it missing", err)
	}
	if _, err := os.Stat(passfile); err == nil {
		t.Error("devdb wrote a new password file the cluster does not know")
	}
}

// Two first starts at once (two `make run`s on a new checkout) both get
// the cluster and the same URL: devdb holds a lock on the cluster's
// directory while it starts it, and the password file appears whole. Both
// used to run initdb into the same directory and write the password file,
// and one failed.
func TestStartTwiceAtOnce(t *testing.T) {
	dir, passfile := devDir(t)
	type result struct {
		url string
		err error
	}
	results := make(chan result, 2)
	for range 2 {
		go func() {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), dir, passfile, "start", &stdout, &stderr)
			if err != nil {
				err = fmt.Errorf("%w (%s)", err, stderr.String())
			}
			results <- result{strings.TrimSpace(stdout.String()), err}
		}()
	}
	a, b := <-results, <-results
	if a.err != nil || b.err != nil {
		t.Fatalf("two starts at once: %v; %v", a.err, b.err)
	}
	if a.url != b.url {
		t.Fatalf("two starts at once: %s and %s, want one URL", a.url, b.url)
	}
	checkPassword(t, dir, a.url)
}
