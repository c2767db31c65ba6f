package main

import (
	"net/url"
	"strings"
	"testing"
)

// compose.yaml's streaming replica (profile scale), kept right by reading
// it: the same image as db, copied from db with pg_basebackup -R on its
// first start once db is healthy, a hot standby; db lets replication
// connections in; every API instance of the profile reads from it.
func TestComposeReplica(t *testing.T) {
	doc, _ := readCompose(t)
	db, replica := doc.Services["db"], doc.Services["replica"]
	if replica.Image == "" || replica.Image != db.Image {
		t.Errorf("replica image %q, want db's %q", replica.Image, db.Image)
	}
	if len(replica.Profiles) != 1 || replica.Profiles[0] != "scale" {
		t.Errorf("replica profiles %v, want [scale]", replica.Profiles)
	}
	if replica.DependsOn["db"].Condition != "service_healthy" {
		t.Error("the replica must wait for db to be healthy before copying it")
	}
	script := strings.Join(append(replica.Entrypoint, replica.Command...), " ")
	for _, want := range []string{"pg_basebackup -h db ", " -R ", "-X stream", `"$$PGDATA/PG_VERSION"`, "exec postgres", "hot_standby=on"} {
		if !strings.Contains(script, want) {
			t.Errorf("replica's start lacks %q:\n%s", want, script)
		}
	}
	if len(replica.Volumes) != 1 || !strings.HasSuffix(replica.Volumes[0], ":"+replica.Environment["PGDATA"]) {
		t.Errorf("replica volumes %v: its data directory (PGDATA %q) must be a volume", replica.Volumes, replica.Environment["PGDATA"])
	} else if name := strings.SplitN(replica.Volumes[0], ":", 2)[0]; !hasKey(doc.Volumes, name) {
		t.Errorf("volume %q is not declared", name)
	}

	// db's pg_hba.conf lets replication in from other hosts.
	hba := ""
	for _, c := range db.Configs {
		if strings.Contains(strings.Join(db.Command, " "), "hba_file="+c.Target) {
			hba = doc.Configs[c.Source].Content
		}
	}
	if !strings.Contains(hba, "host    replication  all   all           scram-sha-256") {
		t.Errorf("db's pg_hba.conf does not let the replica replicate:\n%s", hba)
	}
	if !strings.Contains(hba, "host    all          all   all           scram-sha-256") {
		t.Errorf("db's pg_hba.conf no longer lets the API and PgBouncer in:\n%s", hba)
	}

	instances := 0
	for name, s := range doc.Services {
		if len(s.Profiles) == 0 || s.Profiles[0] != "scale" || len(s.Command) == 0 || s.Command[0] != "serve" {
			continue
		}
		instances++
		u, err := url.Parse(interpolate(s.Environment["DATABASE_READ_URL"]))
		if err != nil || u.Hostname() != "replica" {
			t.Errorf("%s: DATABASE_READ_URL %q does not name the replica (%v)", name, s.Environment["DATABASE_READ_URL"], err)
		}
		if s.Environment["READ_MAX_LAG"] == "" {
			t.Errorf("%s: no READ_MAX_LAG", name)
		}
	}
	if instances < 2 {
		t.Errorf("%d API instances in the scale profile", instances)
	}
}

func hasKey(m map[string]any, k string) bool { _, ok := m[k]; return ok }
