package api

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// internal/api is HTTP only: neither it nor anything it imports may reach
// the database driver or the sqlc code; the store's implementation
// (internal/store/postgres) is handed in by cmd/telemetry.
func TestAPIDoesNotDependOnTheDatabase(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := regexp.MustCompile(`^(github\.com/jackc/pgx/v5(/.*)?|github\.com/telemetry/telemetry/internal/store/(db|postgres))$`)
	for _, pkg := range strings.Fields(string(out)) {
		if forbidden.MatchString(pkg) {
			t.Errorf("internal/api depends on %s", pkg)
		}
	}
}

// Database errors are interpreted in one place: every SQLSTATE code and
// every pgx.ErrNoRows check is in internal/store/postgres/errors.go.
func TestDatabaseErrorsAreMappedInOnePlace(t *testing.T) {
	root := filepath.Join("..", "..")
	allowed := filepath.Join(root, "internal", "store", "postgres", "errors.go")
	pattern := regexp.MustCompile(`pgx\.ErrNoRows|PgError|[Ee]rr\.Code\b|SQLState\(\)`)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != root || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || path == allowed {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.HasPrefix(b, []byte("// Code generated")) {
			return nil
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for n := 1; sc.Scan(); n++ {
			line := sc.Text()
			if pattern.MatchString(line) && !strings.HasPrefix(strings.TrimSpace(line), "//") {
				t.Errorf("%s:%d: database error handled outside the store's errors.go: %s", path, n, strings.TrimSpace(line))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
