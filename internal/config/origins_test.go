package config

import (
	"fmt"
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
	// As a browser writes them in Origin, which is compared exactly.
	c, err = Load(env("HTTPS://Telemetry.Example:443,http://telemetry.example:80/,http://[::1]:8080,https://telemetry.example:8443"))
	if err != nil || !slices.Equal(c.TrustedOrigins, []string{"https://telemetry.example", "http://telemetry.example", "http://[::1]:8080", "https://telemetry.example:8443"}) {
		t.Fatalf("TrustedOrigins %q, %v", c.TrustedOrigins, err)
	}
	for _, bad := range []string{"telemetry.example", "https://telemetry.example/ui", "https://telemetry.example?x=1", "ftp://telemetry.example",
		"https://user@telemetry.example", "https://", "https://telemetry.example#x"} {
		_, err := Load(env(bad))
		if err == nil || !strings.Contains(err.Error(), "TRUSTED_ORIGINS") || strings.Count(err.Error(), fmt.Sprintf("%q", bad)) != 1 {
			t.Errorf("TRUSTED_ORIGINS=%q: error %v, want one naming the variable and the value once", bad, err)
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
