package main

import (
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// compose.yaml's scale profile cannot run here (no Docker): it is kept
// right by reading it. PgBouncer is pinned and pools by transaction in front
// of db; two API instances reach the database only through it, with a
// pool that fits the pooler's client limit and an exec mode that works
// through it; migrate goes straight to db, and the instances start after it.
func TestComposeScaleProfile(t *testing.T) {
	doc, _ := readCompose(t)
	for _, s := range doc.Services {
		for k, v := range s.Environment {
			s.Environment[k] = interpolate(v)
		}
	}
	inScale := func(s composeService) bool {
		for _, p := range s.Profiles {
			if p == "scale" {
				return true
			}
		}
		return false
	}
	pgb, ok := doc.Services["pgbouncer"]
	if !ok || !inScale(pgb) {
		t.Fatal("no pgbouncer service in the scale profile")
	}
	if i := strings.LastIndex(pgb.Image, ":"); i < 0 || strings.HasSuffix(pgb.Image, ":latest") {
		t.Errorf("pgbouncer image %q is not pinned", pgb.Image)
	}
	if pgb.Environment["POOL_MODE"] != "transaction" || pgb.Environment["DB_HOST"] != "db" {
		t.Errorf("pgbouncer must pool by transaction in front of db: %v", pgb.Environment)
	}
	maxClients, err := strconv.Atoi(pgb.Environment["MAX_CLIENT_CONN"])
	if err != nil {
		t.Fatalf("pgbouncer MAX_CLIENT_CONN: %v", err)
	}
	if _, err := strconv.Atoi(pgb.Environment["DEFAULT_POOL_SIZE"]); err != nil {
		t.Errorf("pgbouncer DEFAULT_POOL_SIZE: %v", err)
	}
	if pgb.DependsOn["db"].Condition != "service_healthy" {
		t.Error("pgbouncer must wait for db to be healthy")
	}

	instances, clients := 0, 0
	for name, s := range doc.Services {
		if !inScale(s) || len(s.Command) == 0 || s.Command[0] != "serve" {
			continue
		}
		instances++
		u, err := url.Parse(s.Environment["DATABASE_URL"])
		if err != nil {
			t.Fatalf("%s DATABASE_URL: %v", name, err)
		}
		if u.Host != "pgbouncer:"+pgb.Environment["LISTEN_PORT"] {
			t.Errorf("%s reaches %s, not the pooler", name, u.Host)
		}
		n, err := strconv.Atoi(u.Query().Get("pool_max_conns"))
		if err != nil {
			t.Errorf("%s: DATABASE_URL should size its pool (pool_max_conns): %v", name, err)
		}
		clients += n
		if mode := s.Environment["DATABASE_EXEC_MODE"]; mode == "cache_statement" || u.Query().Get("default_query_exec_mode") == "cache_statement" {
			t.Errorf("%s uses named prepared statements, which transaction pooling breaks", name)
		}
		if s.Environment["JWT_SECRET_FILE"] != "/run/secrets/jwt_secret" || !slices.Contains(s.Secrets, "jwt_secret") {
			t.Errorf("%s does not read the JWT secret from the jwt_secret compose secret", name)
		}
		if s.DependsOn["migrate"].Condition != "service_completed_successfully" {
			t.Errorf("%s must start after migrate succeeded", name)
		}
		if _, ok := s.DependsOn["pgbouncer"]; !ok {
			t.Errorf("%s must depend on pgbouncer", name)
		}
	}
	if instances != 2 {
		t.Errorf("%d API instances in the scale profile, want 2", instances)
	}
	if clients > maxClients {
		t.Errorf("the instances open up to %d connections, over PgBouncer's MAX_CLIENT_CONN %d", clients, maxClients)
	}

	mig := doc.Services["migrate"]
	mu, err := url.Parse(mig.Environment["MIGRATE_DATABASE_URL"])
	if err != nil || mu.Host != "db:5432" {
		t.Errorf("migrate must reach db directly through MIGRATE_DATABASE_URL: %q", mig.Environment["MIGRATE_DATABASE_URL"])
	}
}

// interpolate does what compose does to ${VAR:-default} (the default) and
// ${VAR:?message} (a placeholder: the variable must be set).
func interpolate(v string) string {
	return composeVar.ReplaceAllStringFunc(v, func(m string) string {
		sub := composeVar.FindStringSubmatch(m)
		if sub[2] == ":-" {
			return sub[3]
		}
		return "set-by-the-user"
	})
}

var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-|:\?)?([^}]*)\}`)
