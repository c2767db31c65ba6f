package auth

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// secret is as long as the service requires (config.MinJWTSecret).
var secret = []byte("auth-test-secret-0123456789abcdef")

// A cached token is still checked against its time claims on every use.
func TestVerifyCacheKeepsCheckingTime(t *testing.T) {
	now := time.Now()
	a := New(secret)
	a.now = func() time.Time { return now }
	tok, err := a.Issue(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(tok); err != nil {
		t.Fatal(err)
	}
	if len(a.verified) != 1 {
		t.Fatalf("cache holds %d tokens", len(a.verified))
	}
	if err := a.Verify(tok); err != nil {
		t.Fatalf("cached token: %v", err)
	}
	now = now.Add(2 * time.Minute)
	if err := a.Verify(tok); err == nil || err.Error() != "token has expired" {
		t.Fatalf("expired cached token: %v", err)
	}

	nbf, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"nbf": now.Add(time.Hour).Unix(), "exp": now.Add(3 * time.Hour).Unix()}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(nbf); err == nil {
		t.Fatal("nbf in the future accepted")
	}
	now = now.Add(2 * time.Hour)
	if err := a.Verify(nbf); err != nil {
		t.Fatalf("nbf passed: %v", err)
	}

	// Other secrets and algorithms never get in.
	exp := jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}
	other, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, exp).SignedString([]byte("other-secret-0123456789abcdef-xyz"))
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, exp).SignedString(secret)
	for _, bad := range []string{other, hs512, "a.b.c", ""} {
		if err := a.Verify(bad); err == nil {
			t.Fatalf("accepted %q", bad)
		}
	}
	if _, ok := a.verified[other]; ok {
		t.Fatal("an invalid token was cached")
	}
}

// A token without exp would be good forever: refused, signature valid or not,
// and never cached.
func TestVerifyRequiresExp(t *testing.T) {
	a := New(secret)
	for name, claims := range map[string]jwt.MapClaims{
		"no claims": {},
		"iat only":  {"iat": time.Now().Unix()},
		"nbf only":  {"nbf": time.Now().Add(-time.Minute).Unix()},
	} {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Verify(tok); err == nil || err.Error() != "token has no exp claim: tokens must expire" {
			t.Errorf("%s: Verify = %v, want the missing exp refused", name, err)
		}
		if _, ok := a.verified[tok]; ok {
			t.Errorf("%s: a token without exp was cached", name)
		}
	}
	// What Issue makes always carries exp.
	tok, err := a.Issue(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(tok); err != nil {
		t.Fatalf("issued token: %v", err)
	}
}

func TestToken(t *testing.T) {
	cookie := []*http.Cookie{{Name: "x", Value: "1"}, {Name: "jwt", Value: "c"}}
	cases := []struct {
		header  string
		cookies []*http.Cookie
		want    string
		ok      bool
	}{
		{"Bearer abc", nil, "abc", true},
		{"bearer abc", nil, "abc", true},
		{"BeArEr  abc ", nil, "abc", true},
		{"Basic abc", cookie, "", false},
		{"Bearer", nil, "", false},
		{"", cookie, "c", true},
		{"", nil, "", false},
	}
	for _, c := range cases {
		got, err := Token(c.header, c.cookies)
		if got != c.want || (err == nil) != c.ok {
			t.Errorf("Token(%q) = %q, %v", c.header, got, err)
		}
	}
}

// A token with a crit header (extensions the verifier must understand) and
// one whose time claims are numbers written as strings are refused, their
// signatures valid; neither is cached (found by a security audit: the
// library accepted both).
func TestVerifyRefusesCritAndStringTimes(t *testing.T) {
	a := New(secret)
	exp := time.Now().Add(time.Hour).Unix()
	crit := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"exp": exp})
	crit.Header["crit"] = []string{"x-ext"}
	crit.Header["x-ext"] = true
	critTok, err := crit.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(critTok); err == nil || err.Error() != "token has a crit header: no JWS extension is understood here" {
		t.Errorf("crit header: Verify = %v, want %v", err, errCrit)
	}
	for _, name := range []string{"exp", "nbf", "iat"} {
		claims := jwt.MapClaims{"exp": exp}
		claims[name] = fmt.Sprint(time.Now().Add(-time.Minute).Unix())
		if name == "exp" {
			claims[name] = fmt.Sprint(exp)
		}
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Verify(tok); err == nil || !strings.Contains(err.Error(), name+" must be a number") {
			t.Errorf("%s as a string: Verify = %v, want it refused", name, err)
		}
		if _, ok := a.verified[tok]; ok {
			t.Errorf("%s as a string: the token was cached", name)
		}
	}
	// The same claims as numbers pass.
	ok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"exp": exp, "nbf": time.Now().Add(-time.Minute).Unix(),
		"iat": time.Now().Add(-time.Minute).Unix()}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Verify(ok); err != nil {
		t.Fatalf("numeric claims: %v", err)
	}
}
