package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/testdb"
)

// migrateLog runs `telemetry migrate` on url and returns its log.
func migrateLog(t *testing.T, url string) string {
	t.Helper()
	var logs bytes.Buffer
	if err := run(context.Background(), []string{"migrate"}, env(map[string]string{"DATABASE_URL": url}), io.Discard, &logs); err != nil {
		t.Fatalf("migrate: %v\n%s", err, logs.String())
	}
	return logs.String()
}

// A database restored into another cluster has every migration applied,
// and its role there lacks migration 00022's jit = off (a role setting,
// which pg_dump leaves out): `telemetry migrate` gives it back, without
// applying anything, and leaves a jit setting the role has alone.
func TestMigrateGivesARoleWithoutItJITOff(t *testing.T) {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, testdb.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	role := fmt.Sprintf("restorer_%d", os.Getpid())
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	// Dropped after the database (cleanups run last first).
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+role) })
	url := testdb.Empty(t)
	db := strings.TrimPrefix(url[strings.LastIndex(url, "/"):strings.Index(url, "?")], "/")
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+db+" OWNER TO "+role); err != nil {
		t.Fatal(err)
	}
	asRole := strings.Replace(url, "postgres@", role+"@", 1)
	migrateLog(t, asRole)
	jit := func() string {
		t.Helper()
		conn, err := pgx.Connect(ctx, asRole)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var v string
		if err := conn.QueryRow(ctx, "SHOW jit").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := jit(); got != "off" {
		t.Fatalf("jit after the migrations: %s", got)
	}
	// As in a restore: the schema up to date, the role without the setting.
	if _, err := admin.Exec(ctx, "ALTER ROLE "+role+" RESET jit"); err != nil {
		t.Fatal(err)
	}
	log := migrateLog(t, asRole)
	if !strings.Contains(log, `"applied":0`) || strings.Contains(log, "migration applied") {
		t.Errorf("migrate on an up-to-date schema:\n%s", log)
	}
	if got := jit(); got != "off" {
		t.Errorf("jit after migrate on an up-to-date schema, for a role without the setting: %s, want off\n%s", got, log)
	}
	// A setting the role has is the administrator's: kept.
	if _, err := admin.Exec(ctx, "ALTER ROLE "+role+" SET jit = on"); err != nil {
		t.Fatal(err)
	}
	migrateLog(t, asRole)
	if got := jit(); got != "on" {
		t.Errorf("jit after migrate, for a role set to on: %s, want on (kept)", got)
	}
}
