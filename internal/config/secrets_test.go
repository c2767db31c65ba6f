package config

import (
	"os"
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

// JWT_PREVIOUS_SECRET (or its _FILE) is read like JWT_SECRET, and is
// refused when short, when it is the current secret, or when both forms
// are set; the messages name the variable, never the value.
func TestJWTPreviousSecret(t *testing.T) {
	cur, prev := strings.Repeat("c", MinJWTSecret), strings.Repeat("p", MinJWTSecret)
	c, err := Load(envOf(map[string]string{"JWT_SECRET": cur, "JWT_PREVIOUS_SECRET": prev}))
	if err != nil || string(c.JWTPreviousSecret) != prev || c.RequireJWTSecret() != nil {
		t.Fatalf("a previous secret: %q, %v, %v", c.JWTPreviousSecret, err, c.RequireJWTSecret())
	}
	file := t.TempDir() + "/previous"
	if err := os.WriteFile(file, []byte(prev+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(envOf(map[string]string{"JWT_SECRET": cur, "JWT_PREVIOUS_SECRET_FILE": file}))
	if err != nil || string(c.JWTPreviousSecret) != prev || c.RequireJWTSecret() != nil {
		t.Fatalf("a previous secret from a file: %q, %v, %v", c.JWTPreviousSecret, err, c.RequireJWTSecret())
	}
	if c, err := Load(envOf(map[string]string{"JWT_SECRET": cur})); err != nil || c.JWTPreviousSecret != nil || c.RequireJWTSecret() != nil {
		t.Fatalf("unset: %q, %v", c.JWTPreviousSecret, err)
	}
	if _, err := Load(envOf(map[string]string{"JWT_SECRET": cur, "JWT_PREVIOUS_SECRET": prev, "JWT_PREVIOUS_SECRET_FILE": file})); err == nil ||
		!strings.Contains(err.Error(), "set JWT_PREVIOUS_SECRET or JWT_PREVIOUS_SECRET_FILE, not both") {
		t.Fatalf("both forms: %v", err)
	}
	for _, bad := range []struct{ previous, want string }{
		{"short-previous", "JWT_PREVIOUS_SECRET is 14 bytes long"},
		{cur, "JWT_PREVIOUS_SECRET is the same as JWT_SECRET"},
	} {
		c, err := Load(envOf(map[string]string{"JWT_SECRET": cur, "JWT_PREVIOUS_SECRET": bad.previous}))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.RequireJWTSecret(); err == nil || !strings.Contains(err.Error(), bad.want) || strings.Contains(err.Error(), bad.previous) {
			t.Errorf("JWT_PREVIOUS_SECRET=%q: %v, want %q and not the value", bad.previous, err, bad.want)
		}
	}
}
