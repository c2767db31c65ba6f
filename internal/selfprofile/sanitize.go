package selfprofile

import (
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What a hostile request could put into a record is bounded twice: when
// the request is captured (clip: nothing larger is kept in the buffer, so
// 10,000 buffered requests of megabyte URLs cannot hold gigabytes) and when
// its measurement is built (clean: every stored string is text PostgreSQL
// accepts, within these lengths).
const (
	// maxValue bounds every stored string but the url, in bytes.
	maxValue = 1024
	// maxURL bounds the stored url (path and query).
	maxURL = 2048
	// maxQuery is how much of the raw query is kept; args come from it.
	maxQuery = 2048
	// maxArgs bounds the query parameters stored in args.
	maxArgs = 64
	// maxParams bounds the path parameters stored in kwargs.
	maxParams = 16
)

// Redacted replaces the value of a secret-looking query parameter.
const Redacted = "[redacted]"

// clip keeps at most n bytes of s, copied: a substring of a request's
// buffer would keep the whole buffer alive while the record waits.
func clip(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.Clone(s)
}

// clean makes s storable: NUL bytes removed (PostgreSQL's text and jsonb
// refuse them), invalid UTF-8 replaced by U+FFFD, and at most n bytes, cut
// at a character boundary.
func clean(s string, n int) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// secretNames are query keys whose values are never stored, compared
// case-insensitively with the whole key and with each of its words.
var secretNames = map[string]bool{
	"token": true, "access_token": true, "refresh_token": true, "id_token": true,
	"password": true, "passwd": true, "pwd": true, "secret": true, "client_secret": true,
	"key": true, "api_key": true, "apikey": true, "auth": true, "authorization": true,
	"signature": true, "sig": true, "session": true, "jwt": true, "bearer": true,
}

// secretParts make a key secret when any of its words contains them
// (accesstoken, clientSecret, userpassword).
var secretParts = []string{"token", "secret", "password", "passwd"}

// SecretKey reports whether a query parameter's value must not be stored:
// the key (decoded) is one of secretNames, or one of its words is, or one
// of its words contains token, secret, password or passwd. Words are split
// at every character that is neither a letter nor a digit, between letters
// and digits, and where the case turns upper (apiKey, APIKey, X-Api-Key:
// "key"); so "monkey" or "keyboard" are kept, "sort_key" is not.
func SecretKey(k string) bool {
	if secretNames[strings.ToLower(k)] {
		return true
	}
	for _, w := range words(k) {
		w = strings.ToLower(w)
		if secretNames[w] {
			return true
		}
		for _, p := range secretParts {
			if strings.Contains(w, p) {
				return true
			}
		}
	}
	return false
}

// SecretValue reports whether a query parameter's value must not be stored
// whatever its key: a JWT (a compact JWS: three base64url parts, the first
// two JSON objects, so starting eyJ), such as the device API's token sent
// under a key of no meaning (?t=eyJ...: found by a security audit).
func SecretValue(v string) bool {
	parts := strings.Split(v, ".")
	if len(parts) != 3 || !strings.HasPrefix(parts[0], "eyJ") || !strings.HasPrefix(parts[1], "eyJ") {
		return false
	}
	for _, p := range parts {
		for i := 0; i < len(p); i++ {
			if c := p[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '=') {
				return false
			}
		}
	}
	return true
}

// words splits a key as SecretKey describes.
func words(s string) []string {
	rs := []rune(s)
	var out []string
	start := -1
	for i, r := range rs {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			if start >= 0 {
				out = append(out, string(rs[start:i]))
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
			continue
		}
		prev := rs[i-1]
		boundary := unicode.IsDigit(r) != unicode.IsDigit(prev) ||
			unicode.IsUpper(r) && (unicode.IsLower(prev) ||
				unicode.IsUpper(prev) && i+1 < len(rs) && unicode.IsLower(rs[i+1]))
		if boundary {
			out = append(out, string(rs[start:i]))
			start = i
		}
	}
	if start >= 0 {
		out = append(out, string(rs[start:]))
	}
	return out
}

// queryPart is one key=value pair of a raw query, decoded and cleaned.
type queryPart struct {
	key, value string
	hasValue   bool
}

// redactQuery returns the raw query with the value of every secret-looking
// key replaced by Redacted, and its pairs decoded and cleaned (values
// already redacted). Pairs are separated by & and, unlike Go's parser, by ;
// too: a token after a semicolon is still a token to some clients and
// proxies, so it is redacted rather than kept inside another value.
func redactQuery(raw string) (string, []queryPart) {
	if raw == "" {
		return "", nil
	}
	var b strings.Builder
	b.Grow(len(raw))
	var parts []queryPart
	for raw != "" {
		part, sep := raw, ""
		if i := strings.IndexAny(raw, "&;"); i >= 0 {
			part, sep, raw = raw[:i], raw[i:i+1], raw[i+1:]
		} else {
			raw = ""
		}
		rk, rv, hasValue := strings.Cut(part, "=")
		k := clean(unescape(rk), maxValue)
		v := unescape(rv)
		if hasValue && (SecretKey(k) || SecretValue(v)) {
			v = Redacted
			part = rk + "=" + Redacted
		}
		b.WriteString(part)
		b.WriteString(sep)
		parts = append(parts, queryPart{key: k, value: clean(v, maxValue), hasValue: hasValue})
	}
	return b.String(), parts
}

// redactURL redacts the query of a URL (a Referer) and its userinfo
// (https://user:password@host/: browsers leave it out, other clients may
// not), and drops its fragment, which a browser never sends but an OAuth
// implicit flow puts a token in.
func redactURL(u string) string {
	u, _, _ = strings.Cut(u, "#")
	head, query, ok := strings.Cut(u, "?")
	if i := strings.Index(head, "//"); i >= 0 {
		authority := head[i+2:]
		if j := strings.IndexByte(authority, '/'); j >= 0 {
			authority = authority[:j]
		}
		if at := strings.LastIndexByte(authority, '@'); at >= 0 {
			head = head[:i+2] + "[redacted]" + head[i+2+at:]
		}
	}
	if !ok {
		return head
	}
	query, _ = redactQuery(query)
	return head + "?" + query
}

func unescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}
