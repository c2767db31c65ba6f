package apiclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/api"
	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

// The TypeScript side of the client tests (internal/apiclient/ts): the
// versions of openapi-typescript, openapi-fetch, TypeScript and Redocly CLI
// are pinned in ts/package.json and ts/package-lock.json. `npm ci` installs
// them into ts/node_modules (npm's cache in .bin/npm-cache at the module
// root) the first time; the tests skip, saying why, where node or the npm
// registry is out of reach.

var (
	npmOnce sync.Once
	npmErr  error
)

// tsTools installs the pinned tools once per test binary, or skips.
func tsTools(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("ts")
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("TypeScript client checks skipped: %s is not installed", tool)
		}
	}
	if out, err := exec.Command("node", "--version").Output(); err != nil {
		t.Skipf("TypeScript client checks skipped: node --version: %v", err)
	} else if v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v"); !nodeAtLeast20(v) {
		t.Skipf("TypeScript client checks skipped: node %s is older than 20 (Redocly CLI and openapi-fetch need 20)", v)
	}
	npmOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil {
			return // installed; `rm -rf internal/apiclient/ts/node_modules` after changing package.json
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--cache", filepath.Join(dir, "..", "..", "..", ".bin", "npm-cache"))
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			npmErr = errors.New(strings.TrimSpace(lastLines(string(out), 5)))
		}
	})
	if npmErr != nil {
		t.Skipf("TypeScript client checks skipped: npm ci failed (is the npm registry reachable?): %v", npmErr)
	}
	return dir
}

func nodeAtLeast20(version string) bool {
	major, _, _ := strings.Cut(version, ".")
	n, err := strconv.Atoi(major)
	return err == nil && n >= 20
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// runIn runs a tool of ts/node_modules/.bin in dir, failing the test with
// its output when it fails.
func runIn(t *testing.T, dir, tool string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "node_modules", ".bin", tool), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The committed openapi.yaml passes Redocly's recommended ruleset, with the
// rules ts/redocly.yaml switches off (each with its reason).
func TestOpenAPIRedoclyLint(t *testing.T) {
	dir := tsTools(t)
	out := runIn(t, dir, "redocly", "lint", "../../../openapi.yaml", "--config", "redocly.yaml", "--format", "summary")
	if !strings.Contains(out, "valid") {
		t.Fatalf("redocly: %s", out)
	}
}

// A TypeScript program typed by openapi-typescript from openapi.yaml and
// calling through openapi-fetch type-checks under --strict and works against
// the real server (ts/main.ts lists the checks).
func TestTypeScriptClient(t *testing.T) {
	dir := tsTools(t)
	runIn(t, dir, "openapi-typescript", "../../../openapi.yaml", "-o", "gen/api.d.ts")
	types, err := os.ReadFile(filepath.Join(dir, "gen", "api.d.ts"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(types), "[] | null") {
		t.Error("generated types still have a nullable array (X[] | null)")
	}
	runIn(t, dir, "tsc", "-p", "tsconfig.json") // strict, noEmitOnError: a type error fails here

	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.JWTSecret, cfg.EnableTokenEndpoint = testSecret, true // the device checks get a token
	st := postgres.New(testdb.New(t), postgres.Options{}).Stores()
	h, _ := api.New(api.Deps{Store: st, Config: cfg})
	// /telemetry/ is the same API behind a reverse proxy that strips the
	// prefix, with BASE_PATH set (the basePath check).
	prefixed := cfg
	prefixed.BasePath = "/telemetry"
	hp, _ := api.New(api.Deps{Store: st, Config: prefixed})
	mux := http.NewServeMux()
	mux.Handle("/telemetry/", http.StripPrefix("/telemetry", hp))
	mux.Handle("/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join("build", "main.js"), srv.URL)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node build/main.js: %v\n%s", err, out)
	}
	var results map[string]string
	if err := json.Unmarshal([]byte(lastLines(string(out), 1)), &results); err != nil {
		t.Fatalf("main.js output: %v\n%s", err, out)
	}
	for _, check := range []string{"measurementWindow", "unknownParameter", "flows", "legacyLimit", "exactTypes",
		"exportCsv", "exportNdjson", "flowsFilters", "percentiles", "basePath"} {
		if results[check] == "" {
			t.Errorf("check %s did not run: %s", check, out)
		}
	}
	t.Logf("TypeScript client: %v", results)
}
