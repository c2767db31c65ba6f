package config

import (
	"strings"
	"testing"
)

// envOf is a getenv holding only vars.
func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// BASE_PATH is written into headers and the document's servers URL: a path
// of URL-safe characters only.
func TestBasePath(t *testing.T) {
	for v, want := range map[string]string{"": "", "/": "", "/telemetry": "/telemetry", "/telemetry/": "/telemetry",
		"/a/b-c_d.e~f": "/a/b-c_d.e~f", "/t%C3%A9l": "/t%C3%A9l"} {
		c, err := Load(envOf(map[string]string{"BASE_PATH": v}))
		if err != nil || c.BasePath != want {
			t.Errorf("BASE_PATH=%q: %q, %v; want %q", v, c.BasePath, err, want)
		}
	}
	for _, bad := range []string{"telemetry", "/a b", "/a?x", "/a#x", "/<script>", `/a"b`, "/a\x01", "/a%zz", "/tél", "/a'b"} {
		if _, err := Load(envOf(map[string]string{"BASE_PATH": bad})); err == nil || !strings.Contains(err.Error(), "BASE_PATH") {
			t.Errorf("BASE_PATH=%q: error %v, want one naming the variable", bad, err)
		}
	}
}

// METRICS_TOKEN, when set, is long enough not to be guessed by trying.
func TestMetricsTokenLength(t *testing.T) {
	if c, err := Load(envOf(map[string]string{"METRICS_TOKEN": " " + strings.Repeat("x", MinMetricsToken) + " "})); err != nil ||
		c.MetricsToken != strings.Repeat("x", MinMetricsToken) {
		t.Fatalf("a token of %d bytes: %q, %v", MinMetricsToken, c.MetricsToken, err)
	}
	if c, err := Load(envOf(nil)); err != nil || c.MetricsToken != "" {
		t.Fatalf("unset: %q, %v", c.MetricsToken, err)
	}
	_, err := Load(envOf(map[string]string{"METRICS_TOKEN": "secret"}))
	if err == nil || !strings.Contains(err.Error(), "METRICS_TOKEN is 6 bytes long") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("a 6-byte token: error %v, want its length and not its value", err)
	}
}
