package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/telemetry/telemetry/internal/api"
)

// The committed openapi.yaml must be what the code produces (make openapi).
func TestOpenAPIFileIsCurrent(t *testing.T) {
	want, err := api.Spec30YAML()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("openapi.yaml is stale: run `make openapi` and commit it")
	}
}

// The committed sqlc output must match queries/ and migrations/ (make generate).
func TestSQLCOutputIsCurrent(t *testing.T) {
	sqlc := os.Getenv("SQLC")
	if sqlc == "" {
		matches, _ := filepath.Glob("../../.bin/sqlc-*")
		if len(matches) == 0 {
			if p, err := exec.LookPath("sqlc"); err == nil {
				matches = []string{p}
			}
		}
		if len(matches) == 0 {
			t.Skip("SKIPPED: sqlc is not installed; `make test` installs it and runs this check")
		}
		sqlc = matches[len(matches)-1]
	}
	sqlc, _ = filepath.Abs(sqlc)
	cmd := exec.Command(sqlc, "diff")
	cmd.Dir = "../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlc diff: generated code is stale (run `make generate`): %v\n%s", err, out)
	}
}
