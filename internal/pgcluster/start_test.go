package pgcluster_test

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/pgcluster"
	"github.com/telemetry/telemetry/internal/testdb"
)

// This file is an external test package so that it may use testdb (which
// imports pgcluster): its clusters are watched by testdb's reaper, which
// TestMain runs when this binary is started as one.
func TestMain(m *testing.M) {
	testdb.ReapIfAsked()
	os.Exit(m.Run())
}

// TestStartLocale starts a cluster of each kind and checks the collation
// its databases sort text by: bytes under C (upper case first), ICU's
// English rules under icu:en-US; and the sessions' TimeZone where one is
// set.
func TestStartLocale(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two PostgreSQL clusters")
	}
	ctx := context.Background()
	for _, c := range []struct {
		locale   string
		provider string
		aBeforeB bool   // 'a' < 'B'
		timeZone string // Options.TimeZone, and the sessions' when set
	}{
		{"", "c", false, "America/St_Johns"},
		{"icu:en-US", "i", true, ""},
	} {
		// Not t.TempDir: its parent is private to root, and the server runs
		// as postgres.
		dir, err := os.MkdirTemp("", "telemetry-pgcluster-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		testdb.Watch(dir) // stopped and removed should the test binary be killed
		cl, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Fast: true, Locale: c.locale, TimeZone: c.timeZone})
		if err != nil {
			t.Fatalf("Start(locale %q): %v", c.locale, err)
		}
		t.Cleanup(func() { _ = cl.Remove(context.Background()) })
		conn, err := pgx.Connect(ctx, cl.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		var provider, zone string
		var less bool
		err = conn.QueryRow(ctx, `SELECT datlocprovider::text, 'a' < 'B', current_setting('TimeZone')
			FROM pg_database WHERE datname = current_database()`).Scan(&provider, &less, &zone)
		conn.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if provider != c.provider || less != c.aBeforeB {
			t.Errorf("locale %q: provider %q, 'a' < 'B' %v; want %q, %v", c.locale, provider, less, c.provider, c.aBeforeB)
		}
		if c.timeZone != "" && zone != c.timeZone {
			t.Errorf("TimeZone %q: the session's is %q", c.timeZone, zone)
		}
	}
}
