package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/telemetry/telemetry/internal/config"
)

// compose.yaml cannot run here (no Docker): this test reads it as Compose
// would (YAML with merge keys) and checks the rules a first boot depends on.

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Secrets  map[string]struct {
		File string `yaml:"file"`
	} `yaml:"secrets"`
	Volumes map[string]any `yaml:"volumes"`
	Configs map[string]struct {
		Content string `yaml:"content"`
	} `yaml:"configs"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Profiles    []string          `yaml:"profiles"`
	Build       any               `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Secrets     []string          `yaml:"secrets"`
	Volumes     []string          `yaml:"volumes"`
	Configs     []struct {
		Source string `yaml:"source"`
		Target string `yaml:"target"`
	} `yaml:"configs"`
	DependsOn map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func readCompose(t *testing.T) (composeFile, string) {
	t.Helper()
	raw, err := os.ReadFile("../../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return c, string(raw)
}

func TestComposeFile(t *testing.T) {
	c, raw := readCompose(t)
	db, migrate, api := c.Services["db"], c.Services["migrate"], c.Services["api"]

	// The database is healthy only once it answers over TCP: the image's
	// initialisation server listens on the Unix socket alone.
	hc := db.Healthcheck.Test
	if len(hc) < 2 || (hc[0] != "CMD" && hc[0] != "CMD-SHELL") {
		t.Fatalf("db healthcheck: %q", hc)
	}
	words := hc[1:]
	if hc[0] == "CMD-SHELL" {
		words = strings.Fields(strings.Join(hc[1:], " "))
	}
	h := slices.Index(words, "-h")
	if words[0] != "pg_isready" || h < 0 || h+1 >= len(words) || !slices.Contains([]string{"127.0.0.1", "localhost", "::1"}, words[h+1]) {
		t.Errorf("db healthcheck must run pg_isready over TCP (-h 127.0.0.1): %q", hc)
	}

	// The database is created with the C collation, the one the tests and
	// benchmarks run on (docs/performance.md, "The database's collation").
	if args := strings.Fields(db.Environment["POSTGRES_INITDB_ARGS"]); !slices.Contains(args, "--locale=C") {
		t.Errorf("db: POSTGRES_INITDB_ARGS %q, want --locale=C", db.Environment["POSTGRES_INITDB_ARGS"])
	}

	// migrate waits for a healthy database, and itself for a while longer.
	if !slices.Equal(migrate.Command, []string{"migrate"}) || migrate.DependsOn["db"].Condition != "service_healthy" {
		t.Errorf("migrate: command %q, depends on db %q", migrate.Command, migrate.DependsOn["db"].Condition)
	}
	if d, err := time.ParseDuration(migrate.Environment["DATABASE_WAIT"]); err != nil || d < 30*time.Second {
		t.Errorf("migrate: DATABASE_WAIT %q, want a wait of 30s or more", migrate.Environment["DATABASE_WAIT"])
	}
	if migrate.Environment["DATABASE_URL"] == "" || api.Environment["DATABASE_URL"] != migrate.Environment["DATABASE_URL"] {
		t.Errorf("migrate and api must share DATABASE_URL: %q, %q", migrate.Environment["DATABASE_URL"], api.Environment["DATABASE_URL"])
	}
	if api.DependsOn["migrate"].Condition != "service_completed_successfully" {
		t.Errorf("api must start after migrate succeeded: %q", api.DependsOn["migrate"].Condition)
	}

	// The JWT secret is a compose secret file, never an environment variable.
	if _, ok := api.Environment["JWT_SECRET"]; ok {
		t.Error("api: JWT_SECRET in the environment; use JWT_SECRET_FILE and a secret")
	}
	file := api.Environment["JWT_SECRET_FILE"]
	name, ok := strings.CutPrefix(file, "/run/secrets/")
	if !ok || !slices.Contains(api.Secrets, name) || c.Secrets[name].File == "" {
		t.Fatalf("api: JWT_SECRET_FILE %q, secrets %q, top-level secrets %v: want /run/secrets/<name> of a file secret", file, api.Secrets, c.Secrets)
	}
	// The file stays out of git and out of the image's build context.
	dir := strings.Split(strings.TrimPrefix(c.Secrets[name].File, "./"), "/")[0]
	for _, ignore := range []string{"../../.gitignore", "../../.dockerignore"} {
		b, err := os.ReadFile(ignore)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^/?` + regexp.QuoteMeta(dir) + `/?$`).Match(b) {
			t.Errorf("%s does not ignore %s/ (the JWT secret)", ignore, dir)
		}
	}

	// No variable is required (${X:?...}), so down, logs and ps run in any shell.
	if m := regexp.MustCompile(`\$\{[A-Za-z_][A-Za-z0-9_]*:?\?`).FindString(raw); m != "" {
		t.Errorf("compose.yaml requires a variable (%s...): docker compose down/logs/ps would fail without it", m)
	}

	// The published API answers localhost (and IP addresses) by default:
	// on every interface ALLOWED_HOSTS would otherwise allow any name, and
	// a DNS-rebinding page could reach a local trial (AUTH_WRITES off) as
	// its own origin.
	allowed := regexp.MustCompile(`^\$\{ALLOWED_HOSTS:-([^}]*)\}$`).FindStringSubmatch(api.Environment["ALLOWED_HOSTS"])
	if allowed == nil {
		t.Errorf("api: ALLOWED_HOSTS %q, want ${ALLOWED_HOSTS:-localhost}", api.Environment["ALLOWED_HOSTS"])
	} else if cfg, err := config.Load(func(k string) string {
		return map[string]string{"LISTEN_ADDR": api.Environment["LISTEN_ADDR"], "ALLOWED_HOSTS": allowed[1]}[k]
	}); err != nil || cfg.AllowedHosts.Any() || !cfg.AllowedHosts.Allow("localhost:8080") || cfg.AllowedHosts.Allow("evil.example:8080") {
		t.Errorf("api: ALLOWED_HOSTS default %q: %v, %q", allowed[1], err, cfg.AllowedHosts)
	}

	// The service's containers set only variables the binary reads.
	known := map[string]bool{}
	for _, v := range config.Vars {
		known[v.Name] = true
	}
	for svcName, svc := range c.Services {
		if svc.Image != "telemetry:local" && svc.Build == nil {
			continue
		}
		for k := range svc.Environment {
			if !known[k] {
				t.Errorf("service %s sets %s, which the binary does not read (config.Vars)", svcName, k)
			}
		}
	}
}
