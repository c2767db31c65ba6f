package testdb

import (
	"context"
	"os"
	"testing"

	"github.com/telemetry/telemetry/internal/pgbouncer"
)

// Bouncer starts a PgBouncer with opts (its Dir is filled in), watched by
// the reaper and stopped when t ends; its log is shown when t failed. A
// machine without pgbouncer fails t: make test installs it.
func Bouncer(t testing.TB, opts pgbouncer.Options) *pgbouncer.Bouncer {
	t.Helper()
	if !pgbouncer.Available() {
		t.Fatal("pgbouncer is not installed (make test installs it: apt-get install pgbouncer)")
	}
	// Not t.TempDir: its parent is private to root, and PgBouncer runs as
	// the postgres user when the tests run as root.
	dir, err := os.MkdirTemp("", "telemetry-pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	Watch(dir)
	opts.Dir = dir
	b, err := pgbouncer.Start(context.Background(), opts)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer os.RemoveAll(dir)
		if err := b.Stop(); err != nil {
			t.Log(err)
		}
		if t.Failed() {
			t.Logf("pgbouncer log:\n%s", b.Log())
		}
	})
	return b
}
