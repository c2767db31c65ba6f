package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/testdb"
)

// serve says at start, as a warning, that ENABLE_TOKEN_ENDPOINT=true hands
// a token to anyone (with the AUTH_* switches it makes moot), and says
// nothing of it when the endpoint is off.
func TestServeWarnsOfTheTokenEndpoint(t *testing.T) {
	warned := func(logs string) (found bool, authWrites any) {
		for _, line := range strings.Split(logs, "\n") {
			var l map[string]any
			if json.Unmarshal([]byte(line), &l) == nil && l["level"] == "WARN" &&
				strings.HasPrefix(l["msg"].(string), "ENABLE_TOKEN_ENDPOINT=true") {
				return true, l["auth_writes"]
			}
		}
		return false, nil
	}
	url := testdb.URL(t)
	for _, enabled := range []string{"true", "false"} {
		_, stop, done, logs := startServeLogged(t, map[string]string{"DATABASE_URL": url, "LISTEN_ADDR": "127.0.0.1:0",
			"JWT_SECRET": testSecret, "SELF_SAMPLE_INTERVAL": "0", "MAINTENANCE_INTERVAL": "0",
			"ENABLE_TOKEN_ENDPOINT": enabled, "AUTH_WRITES": "true"})
		stop()
		if err := <-done; err != nil {
			t.Fatalf("serve: %v", err)
		}
		found, authWrites := warned(logs.String())
		if found != (enabled == "true") {
			t.Fatalf("ENABLE_TOKEN_ENDPOINT=%s: warning logged = %v:\n%s", enabled, found, logs)
		}
		if found && authWrites != true {
			t.Fatalf("the warning does not say AUTH_WRITES is on: %v", authWrites)
		}
	}
}

// A PPROF_ADDR beyond loopback is warned of; loopback addresses are not.
func TestUnsafePprofAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		":6060": true, "0.0.0.0:6060": true, "[::]:6060": true, "10.1.2.3:6060": true, "pprof.internal:6060": true,
		"127.0.0.1:6060": false, "127.0.0.2:0": false, "[::1]:6060": false, "localhost:6060": false, "LOCALHOST:6060": false,
	} {
		got := false
		for _, w := range unsafeSettings(config.Config{PprofAddr: addr}) {
			got = got || strings.HasPrefix(w.msg, "PPROF_ADDR")
		}
		if got != want {
			t.Errorf("PPROF_ADDR=%s: warned %v, want %v", addr, got, want)
		}
	}
	if w := unsafeSettings(config.Config{}); len(w) != 0 {
		t.Errorf("the defaults are warned of: %+v", w)
	}
}
