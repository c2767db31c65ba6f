package auth

import (
	"encoding/json"
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

// Instances keep their own clocks: a token issued on one and used at once on
// another whose clock is behind is accepted within ClockSkew, nbf likewise;
// beyond it both are refused, and exp has no leeway at all.
func TestVerifyClockSkew(t *testing.T) {
	issued := time.Date(2026, 12, 5, 12, 0, 0, 900_000_000, time.UTC) // iat is whole seconds: 12:00:00
	issuer := New(secret)
	issuer.now = func() time.Time { return issued }
	tok, err := issuer.Issue(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	behind := New(secret)
	now := issued.Add(-2 * time.Second) // a clock 2 s behind, a few ms after the issue
	behind.now = func() time.Time { return now }
	for range 2 { // verified, then from the cache
		if err := behind.Verify(tok); err != nil {
			t.Fatalf("a token issued 2 s ahead of this clock: %v", err)
		}
	}
	now = issued.Add(-ClockSkew - 2*time.Second)
	if err := behind.Verify(tok); err == nil || err.Error() != "token is issued in the future (iat)" {
		t.Fatalf("cached token issued beyond ClockSkew: %v", err)
	}
	if err := New(secret).withNow(now).Verify(tok); err == nil || err.Error() != "token is issued in the future (iat)" {
		t.Fatalf("token issued beyond ClockSkew: %v", err)
	}

	sign := func(claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	at := issued.Truncate(time.Second)
	cases := []struct {
		name   string
		claims jwt.MapClaims
		want   string // "" accepted
	}{
		{"nbf within the skew", jwt.MapClaims{"nbf": at.Add(ClockSkew - time.Second).Unix(), "exp": at.Add(time.Hour).Unix()}, ""},
		{"nbf beyond it", jwt.MapClaims{"nbf": at.Add(ClockSkew + time.Second).Unix(), "exp": at.Add(time.Hour).Unix()}, "token is not valid yet (nbf)"},
		{"iat within the skew", jwt.MapClaims{"iat": at.Add(ClockSkew - time.Second).Unix(), "exp": at.Add(time.Hour).Unix()}, ""},
		{"iat beyond it", jwt.MapClaims{"iat": at.Add(ClockSkew + time.Second).Unix(), "exp": at.Add(time.Hour).Unix()}, "token is issued in the future (iat)"},
		{"exp a second ago", jwt.MapClaims{"exp": at.Add(-time.Second).Unix()}, "token has expired"},
		{"exp now", jwt.MapClaims{"exp": at.Unix()}, "token has expired"},
		{"exp beyond the skew", jwt.MapClaims{"exp": at.Add(-ClockSkew - time.Second).Unix()}, "token has expired"},
	}
	for _, c := range cases {
		a := New(secret).withNow(at)
		for _, pass := range []string{"verified", "cached"} {
			err := a.Verify(sign(c.claims))
			if (c.want == "" && err != nil) || (c.want != "" && (err == nil || err.Error() != c.want)) {
				t.Errorf("%s (%s): got %v, want %q", c.name, pass, err, c.want)
			}
		}
	}
}

// withNow fixes a's clock at t.
func (a *Authenticator) withNow(t time.Time) *Authenticator {
	a.now = func() time.Time { return t }
	return a
}

// A NumericDate is any JSON number: one beyond int64 seconds (or float64)
// stands for a time past every clock, on its side of it. exp 1e19 was read
// as "expired" and nbf 1e19 as long past (the library converts to int64
// without a range check); now a larger exp never makes a token less valid,
// nor a larger nbf or iat more valid. Claim names are case-sensitive.
func TestVerifyHugeTimes(t *testing.T) {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	hour := json.Number(fmt.Sprint(now.Add(time.Hour).Unix()))
	ago := json.Number(fmt.Sprint(now.Add(-time.Hour).Unix()))
	cases := []struct {
		name   string
		claims jwt.MapClaims
		want   string // "" accepted
	}{
		{"exp 1e18", jwt.MapClaims{"exp": json.Number("1000000000000000000")}, ""},
		{"exp 2^63", jwt.MapClaims{"exp": json.Number("9223372036854775808")}, ""},
		{"exp 1e19", jwt.MapClaims{"exp": json.Number("1e19")}, ""},
		{"exp 1.5e300", jwt.MapClaims{"exp": json.Number("1.5e300")}, ""},
		{"exp 1e400", jwt.MapClaims{"exp": json.Number("1e400")}, ""},
		{"exp -1e19", jwt.MapClaims{"exp": json.Number("-1e19")}, "token has expired"},
		{"exp -1e400", jwt.MapClaims{"exp": json.Number("-1e400")}, "token has expired"},
		{"exp 1e-400", jwt.MapClaims{"exp": json.Number("1e-400")}, "token has expired"},
		{"nbf 1e19", jwt.MapClaims{"exp": hour, "nbf": json.Number("1e19")}, "token is not valid yet (nbf)"},
		{"nbf 1e400", jwt.MapClaims{"exp": hour, "nbf": json.Number("1e400")}, "token is not valid yet (nbf)"},
		{"nbf -1e19", jwt.MapClaims{"exp": hour, "nbf": json.Number("-1e19")}, ""},
		{"iat 1e19", jwt.MapClaims{"exp": hour, "iat": json.Number("1e19")}, "token is issued in the future (iat)"},
		{"iat 9223372036854775807", jwt.MapClaims{"exp": hour, "iat": json.Number("9223372036854775807")}, "token is issued in the future (iat)"},
		{"iat -1e19", jwt.MapClaims{"exp": hour, "iat": json.Number("-1e19")}, ""},
		{"all huge", jwt.MapClaims{"exp": json.Number("1e20"), "nbf": json.Number("-1e20"), "iat": ago}, ""},
		{"exp at year 1", jwt.MapClaims{"exp": json.Number("-62135596800")}, "token has expired"},
		{"EXP is not exp", jwt.MapClaims{"EXP": hour}, "token has no exp claim: tokens must expire"},
		{"NBF is not nbf", jwt.MapClaims{"exp": hour, "NBF": json.Number("1e19")}, ""},
		{"exp null", jwt.MapClaims{"exp": nil}, "token's exp must be a number (seconds since the epoch, RFC 7519 NumericDate)"},
		{"exp an object", jwt.MapClaims{"exp": map[string]any{}}, "token's exp must be a number (seconds since the epoch, RFC 7519 NumericDate)"},
		{"fractional exp just ahead", jwt.MapClaims{"exp": json.Number(fmt.Sprint(now.Unix()) + ".5")}, ""},
	}
	for _, c := range cases {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c.claims).SignedString(secret)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		a := New(secret).withNow(now)
		for _, pass := range []string{"verified", "cached"} {
			err := a.Verify(tok)
			if (c.want == "" && err != nil) || (c.want != "" && (err == nil || err.Error() != c.want)) {
				t.Errorf("%s (%s): got %v, want %q", c.name, pass, err, c.want)
			}
		}
	}
}

// While the secret is rotated, tokens signed with the previous one are
// accepted too, each use of one counted (cached or not); new tokens are
// signed with the current secret, and a token of any other secret, or a
// previous one past its exp, is still refused.
func TestVerifyAcceptsThePreviousSecret(t *testing.T) {
	previous := []byte("auth-test-previous-secret-0123456789")
	now := time.Now()
	old := New(previous).withNow(now)
	oldTok, err := old.Issue(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := New(secret).withNow(now).Verify(oldTok); err == nil || err.Error() != "invalid token signature or algorithm (HS256 only)" {
		t.Fatalf("a token of another secret without rotation: %v", err)
	}

	uses := 0
	a := New(secret).AcceptPrevious(previous).withNow(now)
	a.OnPrevious = func() { uses++ }
	for i := range 3 { // the first verified, then cached
		if err := a.Verify(oldTok); err != nil {
			t.Fatalf("use %d of a token of the previous secret: %v", i+1, err)
		}
	}
	if uses != 3 {
		t.Fatalf("%d uses of the previous secret counted, want 3", uses)
	}
	tok, err := a.Issue(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := New(secret).withNow(now).Verify(tok); err != nil {
		t.Fatalf("a new token is not signed with the current secret: %v", err)
	}
	if err := a.Verify(tok); err != nil || uses != 3 {
		t.Fatalf("a token of the current secret: %v, previous-secret uses %d", err, uses)
	}
	other, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}).
		SignedString([]byte("yet-another-secret-0123456789abcdef"))
	if err := a.Verify(other); err == nil || err.Error() != "invalid token signature or algorithm (HS256 only)" {
		t.Fatalf("a token of a third secret: %v", err)
	}
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "x"}).SignedString(previous)
	if err := a.Verify(noExp); err == nil {
		t.Fatal("a token of the previous secret without exp accepted")
	}
	a.now = func() time.Time { return now.Add(2 * time.Minute) }
	if err := a.Verify(oldTok); err == nil || err.Error() != "token has expired" {
		t.Fatalf("an expired token of the previous secret: %v", err)
	}
	if uses != 3 {
		t.Fatalf("refused tokens counted: %d", uses)
	}
	if err := New(secret).AcceptPrevious(nil).withNow(now).Verify(oldTok); err == nil {
		t.Fatal("an empty previous secret accepted a token of another")
	}
}
