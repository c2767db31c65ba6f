package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/telemetry/telemetry/internal/testdb"
)

// The store's tests run their sessions in a zone that is not UTC
// (testdb.TimeZone, America/St_Johns unless TESTDB_TIMEZONE says
// otherwise), so that SQL cutting hours or days in the session's zone
// instead of UTC fails them: an analyst's psql, or a pooler, may hand the
// service's statements any TimeZone.
func TestSessionsRunInTheHarnessTimeZone(t *testing.T) {
	t.Parallel()
	if os.Getenv("TEST_DATABASE_URL") != "" || os.Getenv("PGTZ") != "" {
		t.Skip("TEST_DATABASE_URL or PGTZ: the sessions take another TimeZone")
	}
	pool := testdb.New(t)
	var zone string
	if err := pool.QueryRow(context.Background(), `SELECT current_setting('TimeZone')`).Scan(&zone); err != nil {
		t.Fatal(err)
	}
	if zone != testdb.TimeZone() {
		t.Fatalf("the sessions' TimeZone is %q, want %q", zone, testdb.TimeZone())
	}
}
