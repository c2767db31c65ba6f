package config

import (
	"slices"
	"strings"
	"testing"
)

func TestTrustedOrigins(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "TRUSTED_ORIGINS" {
				return v
			}
			return ""
		}
	}
	c, err := Load(env(" https://telemetry.example , http://10.0.0.5:8080,"))
	if err != nil || !slices.Equal(c.TrustedOrigins, []string{"https://telemetry.example", "http://10.0.0.5:8080"}) {
		t.Fatalf("TrustedOrigins %q, %v", c.TrustedOrigins, err)
	}
	if c, err := Load(env("")); err != nil || c.TrustedOrigins != nil {
		t.Fatalf("unset: %q, %v", c.TrustedOrigins, err)
	}
	for _, bad := range []string{"telemetry.example", "https://telemetry.example/ui", "https://telemetry.example?x=1"} {
		_, err := Load(env(bad))
		if err == nil || !strings.Contains(err.Error(), "TRUSTED_ORIGINS") || !strings.Contains(err.Error(), bad) {
			t.Errorf("TRUSTED_ORIGINS=%q: error %v, want one naming the variable and the value", bad, err)
		}
	}
}

// A bad LOG_LEVEL names the levels and the value once (slog's own message
// repeated the value and listed none).
func TestLogLevelBadValue(t *testing.T) {
	_, err := Load(func(k string) string {
		if k == "LOG_LEVEL" {
			return "verbose"
		}
		return ""
	})
	if err == nil || !strings.Contains(err.Error(), "LOG_LEVEL must be debug, info, warn or error") || strings.Count(err.Error(), "verbose") != 1 {
		t.Fatalf("LOG_LEVEL=verbose: %v", err)
	}
}
