package selfprofile

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestSecretKey(t *testing.T) {
	t.Parallel()
	secret := []string{
		// The names, in any case.
		"token", "access_token", "refresh_token", "id_token", "password", "passwd", "pwd", "secret",
		"client_secret", "key", "api_key", "apikey", "auth", "authorization", "signature", "sig", "session", "jwt",
		"TOKEN", "Password", "API_KEY", "ApiKey", "JWT",
		// A word of the key is one of them.
		"X-Api-Key", "apiKey", "APIKey", "sort_key", "key_id", "primaryKey", "x.auth", "user_session", "csrf-sig",
		"my jwt", "db_pwd", "aws4Key2", "sha256sig",
		// A word contains token, secret, password or passwd.
		"accesstoken", "accessToken", "sessionToken", "clientsecret", "userpassword", "oldPasswd", "csrftoken",
		"X-Amz-Security-Token", "tokens",
	}
	for _, k := range secret {
		if !SecretKey(k) {
			t.Errorf("SecretKey(%q) = false, want true", k)
		}
	}
	plain := []string{"", "ok", "page", "size", "sort", "name", "app", "monkey", "keyboard", "hockey", "author",
		"signal", "sigma", "sessions2", "passage", "startedAt", "id", "verbose", "hour", "keys", "turkey_count"}
	for _, k := range plain {
		if SecretKey(k) {
			t.Errorf("SecretKey(%q) = true, want false", k)
		}
	}
}

func TestClean(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"plain", 10, "plain"},
		{"a\x00b\x00", 10, "ab"},
		{"a\xffb", 10, "a\uFFFDb"},
		{"\xed\xa0\x80", 10, "\uFFFD"}, // a UTF-16 surrogate encoded in UTF-8
		{"abcdef", 3, "abc"},
		{"aé", 2, "a"}, // never half a character
		{"\xff\xff", 2, ""},
	}
	for _, c := range cases {
		if got := clean(c.in, c.n); got != c.want {
			t.Errorf("clean(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

func TestRedactQuery(t *testing.T) {
	t.Parallel()
	cases := []struct{ raw, want string }{
		{"ok=1&verbose=2", "ok=1&verbose=2"},
		{"token=abc&ok=1", "token=[redacted]&ok=1"},
		{"Password=y&access_token=x", "Password=[redacted]&access_token=[redacted]"},
		{"to%6Ben=abc", "to%6Ben=[redacted]"},                  // the key is decoded first
		{"token%00=abc", "token%00=[redacted]"},                // and cleaned
		{"a=1;token=abc", "a=1;token=[redacted]"},              // ; separates too
		{"token&token=&x=%zz", "token&token=[redacted]&x=%zz"}, // no value, empty value, bad escape
		{"api+key=abc", "api+key=[redacted]"},
		{"bearer=abc", "bearer=[redacted]"},
		// A JWT whatever its key (a security audit found ?t=eyJ... stored).
		{"t=eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjF9.c2ln&q=1", "t=[redacted]&q=1"},
		{"t=eyJhbGciOiJub25lIn0.eyJleHAiOjF9.", "t=[redacted]"},
		// Not a JWT: kept.
		{"v=eyJ.abc.def&w=a.b.c&x=eyJa.eyJb.c%20d", "v=eyJ.abc.def&w=a.b.c&x=eyJa.eyJb.c%20d"},
	}
	for _, c := range cases {
		if got, _ := redactQuery(c.raw); got != c.want {
			t.Errorf("redactQuery(%q) = %q, want %q", c.raw, got, c.want)
		}
	}
	if got := redactURL("https://app.example/cb?code=1&state=s&access_token=abc#id_token=xyz"); got != "https://app.example/cb?code=1&state=s&access_token=[redacted]" {
		t.Errorf("redactURL = %q", got)
	}
	if got := redactURL("https://app.example/#access_token=abc"); got != "https://app.example/" {
		t.Errorf("redactURL = %q", got)
	}
	// The userinfo goes, whatever it holds; an @ after the host stays.
	for raw, want := range map[string]string{
		"https://alice:s3cr3t-pass@app.example/page?x=1": "https://[redacted]@app.example/page?x=1",
		"http://u:p@ss@x/y?password=p#access_token=q":    "http://[redacted]@x/y?password=[redacted]",
		"//token@cdn.example":                            "//[redacted]@cdn.example",
		"https://app.example/users/@alice?q=1":           "https://app.example/users/@alice?q=1",
		"https://app.example:8443/a":                     "https://app.example:8443/a",
	} {
		if got := redactURL(raw); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

// A hostile request makes a record of valid text, without NUL, of bounded
// size, with its secrets redacted.
func TestRecordIsCleanAndBounded(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 1<<20)
	var q strings.Builder
	for i := range 500 {
		q.WriteString("k" + strings.Repeat("z", i%7) + "=%00%ff" + huge[:3000] + "&")
	}
	r := httptest.NewRequest("VERYLONGMETHODNAME", "/p%00a%ffth/"+huge[:5000]+"?token=SECRET1&"+q.String(), nil)
	r.Header.Set("User-Agent", "ua\xff"+huge)
	r.Header.Set("Referer", "http://x/?password=SECRET2&"+huge[:100])
	r.Header.Set("Authorization", "Bearer SECRET3")
	r.Header.Set("Cookie", "session=SECRET4")
	p := New(nil, nil, nil, Config{Sample: 1})
	now := time.Now()
	p.Record(Served{Request: r, Start: now, End: now.Add(-time.Second), Status: 405, Route: "unmatched\x00"})
	if len(p.buf) != 1 {
		t.Fatalf("buffered %d", len(p.buf))
	}
	m := p.buf[0].record()
	if !utf8.Valid(m.Context) || !utf8.Valid(m.Kwargs) || !utf8.ValidString(m.Name) || !utf8.ValidString(m.Method) {
		t.Fatalf("invalid UTF-8 in %+v", m)
	}
	if m.Method != OtherMethod || m.Name != "unmatched" {
		t.Errorf("method %q name %q", m.Method, m.Name)
	}
	if m.Elapsed != 0 || m.EndedAt.Before(m.StartedAt) {
		t.Errorf("elapsed %v, ended %v before started %v", m.Elapsed, m.EndedAt, m.StartedAt)
	}
	text := string(m.Context) + string(m.Kwargs) + m.Name + m.Method
	if strings.Contains(text, `\u0000`) || strings.Contains(text, "SECRET") {
		t.Errorf("NUL or a secret stored: %.500s", text)
	}
	// 64 args of ~1 KiB, a 2 KiB url, 1 KiB path and headers: well under 100 KiB.
	if len(m.Context) > 100<<10 {
		t.Errorf("context is %d bytes", len(m.Context))
	}
	var ctx struct {
		URL, Path string
		Args      map[string]string
		Headers   map[string]string
	}
	if err := json.Unmarshal(m.Context, &ctx); err != nil {
		t.Fatal(err)
	}
	if len(ctx.URL) > maxURL || len(ctx.Path) > maxValue || len(ctx.Args) > maxArgs || len(ctx.Args) == 0 ||
		len(ctx.Headers["User-Agent"]) > maxValue || ctx.Args["token"] != Redacted {
		t.Errorf("url %d bytes, path %d, %d args (token %q), user agent %d", len(ctx.URL), len(ctx.Path), len(ctx.Args),
			ctx.Args["token"], len(ctx.Headers["User-Agent"]))
	}
	for k, v := range ctx.Args {
		if len(k) > maxValue || len(v) > maxValue {
			t.Errorf("arg %.20q of %d bytes, value %d bytes", k, len(k), len(v))
		}
	}
	if _, ok := ctx.Headers["Authorization"]; ok {
		t.Error("Authorization recorded")
	}
	if _, ok := ctx.Headers["Cookie"]; ok {
		t.Error("Cookie recorded")
	}
	if !strings.Contains(ctx.Headers["Referer"], "password=[redacted]") {
		t.Errorf("Referer %q", ctx.Headers["Referer"])
	}
}

// The recorded headers are an allow-list without credentials.
func TestRecordedHeadersHoldNoCredentials(t *testing.T) {
	t.Parallel()
	for _, h := range recordedHeaders {
		switch strings.ToLower(h) {
		case "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key":
			t.Errorf("%s is recorded", h)
		}
		if SecretKey(h) {
			t.Errorf("%s looks secret and is recorded", h)
		}
	}
}
