package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestTokenCommand(t *testing.T) {
	secret := testSecret
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"token", "--ttl", "2h"}, env(map[string]string{"JWT_SECRET": secret}), &out, &errOut); err != nil {
		t.Fatal(err, errOut.String())
	}
	claims := jwt.MapClaims{}
	tok := strings.TrimSpace(out.String())
	if _, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"})); err != nil {
		t.Fatalf("token %q: %v", tok, err)
	}
	exp, _ := claims.GetExpirationTime()
	if d := time.Until(exp.Time); d > 2*time.Hour || d < 2*time.Hour-time.Minute {
		t.Fatalf("token expires in %s, want 2h", d)
	}

	// The secret may come from a file (surrounding whitespace ignored).
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("  "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"token"}, env(map[string]string{"JWT_SECRET_FILE": file}), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if _, err := jwt.Parse(strings.TrimSpace(out.String()), func(*jwt.Token) (any, error) { return []byte(secret), nil }); err != nil {
		t.Fatalf("token from file secret: %v", err)
	}

	for name, vars := range map[string]map[string]string{
		"no secret":    {},
		"both":         {"JWT_SECRET": secret, "JWT_SECRET_FILE": file},
		"missing file": {"JWT_SECRET_FILE": filepath.Join(t.TempDir(), "nope")},
	} {
		if err := run(context.Background(), []string{"token"}, env(vars), &out, &errOut); err == nil {
			t.Errorf("%s: token printed without a usable secret", name)
		}
	}
	if err := run(context.Background(), []string{"token", "--ttl", "-1h"}, env(map[string]string{"JWT_SECRET": secret}), &out, &errOut); err == nil {
		t.Error("negative ttl accepted")
	}
}

// serve refuses to start without a JWT secret, before touching the database.
func TestServeNeedsJWTSecret(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"serve"}, env(map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/x"}), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "JWT_SECRET") {
		t.Fatalf("serve without a secret: %v", err)
	}
}

// A secret shorter than 32 bytes stops serve and token, from the
// environment or a file, with a message naming the variable; 32 bytes is
// enough.
func TestShortJWTSecretRefused(t *testing.T) {
	short := strings.Repeat("k", 31)
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte(short+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		vars map[string]string
		name string
	}{
		{map[string]string{"JWT_SECRET": short}, "JWT_SECRET"},
		{map[string]string{"JWT_SECRET": "x"}, "JWT_SECRET"},
		{map[string]string{"JWT_SECRET_FILE": file}, "JWT_SECRET_FILE"},
	} {
		for _, cmd := range []string{"token", "serve"} {
			vars := map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/x"}
			for k, v := range c.vars {
				vars[k] = v
			}
			var out bytes.Buffer
			err := run(context.Background(), []string{cmd}, env(vars), &out, io.Discard)
			if err == nil || !strings.Contains(err.Error(), c.name+" is ") || !strings.Contains(err.Error(), "at least 32") {
				t.Errorf("%s with %v: error %v, want the short secret named", cmd, c.vars, err)
			}
			if out.Len() != 0 {
				t.Errorf("%s with a short secret printed %q", cmd, out.String())
			}
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token"}, env(map[string]string{"JWT_SECRET": strings.Repeat("k", 32)}), &out, io.Discard); err != nil {
		t.Fatalf("a 32-byte secret: %v", err)
	}
}
