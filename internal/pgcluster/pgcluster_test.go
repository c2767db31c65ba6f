package pgcluster

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestInitdbLocale(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"", []string{"--locale=C"}},
		{"C", []string{"--locale=C"}},
		{"C.UTF-8", []string{"--locale=C.UTF-8"}},
		{"icu:en-US", []string{"--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en-US"}},
	} {
		got, err := initdbLocale(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("initdbLocale(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"icu:", "C.UTF-8 --auth=md5", "x=y"} {
		if got, err := initdbLocale(bad); err == nil {
			t.Errorf("initdbLocale(%q) = %q, want an error", bad, got)
		}
	}
}

// TestStartLocale starts a cluster of each kind and checks the collation
// its databases sort text by: bytes under C (upper case first), ICU's
// English rules under icu:en-US.
func TestStartLocale(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two PostgreSQL clusters")
	}
	ctx := context.Background()
	for _, c := range []struct {
		locale   string
		provider string
		aBeforeB bool // 'a' < 'B'
	}{
		{"", "c", false},
		{"icu:en-US", "i", true},
	} {
		// Not t.TempDir: its parent is private to root, and the server runs
		// as postgres.
		dir, err := os.MkdirTemp("", "telemetry-pgcluster-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		cl, err := Start(ctx, Options{Dir: dir, Fast: true, Locale: c.locale})
		if err != nil {
			t.Fatalf("Start(locale %q): %v", c.locale, err)
		}
		t.Cleanup(func() { _ = cl.Remove(context.Background()) })
		conn, err := pgx.Connect(ctx, cl.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		var provider string
		var less bool
		err = conn.QueryRow(ctx, `SELECT datlocprovider::text, 'a' < 'B' FROM pg_database WHERE datname = current_database()`).Scan(&provider, &less)
		conn.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if provider != c.provider || less != c.aBeforeB {
			t.Errorf("locale %q: provider %q, 'a' < 'B' %v; want %q, %v", c.locale, provider, less, c.provider, c.aBeforeB)
		}
	}
}
