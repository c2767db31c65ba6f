// Package auth issues and verifies the JWTs of the device metrics API: HS256
// with one shared secret, as the Concertim daemon did. Every other algorithm,
// "none" included, is refused; exp is required (a token without it would be
// good forever), nbf and iat are enforced when present, with ClockSkew of
// leeway.
package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// CookieName is the cookie that may carry the token instead of the
// Authorization header.
const CookieName = "jwt"

// ErrNoToken means the request carries no token at all.
var ErrNoToken = errors.New("no token: send Authorization: Bearer <JWT> or a jwt cookie")

// ErrNotBearer means the Authorization header uses another scheme (Basic,
// ...): to the Bearer scheme, a request without its credentials.
var ErrNotBearer = errors.New("the Authorization header must use the Bearer scheme")

// Authenticator signs tokens with one HS256 secret and verifies them with
// it or, while secrets are being rotated, with the secret before it.
type Authenticator struct {
	secret   []byte
	previous []byte // empty: no rotation under way
	parser   *jwt.Parser
	now      func() time.Time
	// OnPrevious, when set, is called on every successful Verify of a
	// token signed with the previous secret (cached or not), so that an
	// operator can tell when no client uses one any more.
	OnPrevious func()

	// verified remembers the time claims of tokens whose signature checked
	// out: reporters send the same token with every request, and the cache
	// turns base64, JSON and HMAC into one map lookup. Time claims are still
	// checked on every use. Only valid tokens get in, so nobody can fill it
	// without the secret; it is cleared when full.
	mu       sync.RWMutex
	verified map[string]timeClaims
}

// timeClaims are a verified token's exp, nbf and iat. An absent nbf or iat
// is farPast, which never refuses anything. previous: its signature is the
// previous secret's.
type timeClaims struct {
	exp, nbf, iat time.Time
	previous      bool
}

// farPast and farFuture bound the times a claim can stand for: a NumericDate
// beyond them (the JSON number has no limit; time.Time and int64 seconds do)
// is read as the bound, which is on the same side of every clock this
// service will ever see. So a larger exp never makes a token less valid, nor
// a larger nbf or iat more valid: exp 1e19 is far-future, not "expired", and
// nbf 1e19 is "not valid yet" (the library converts seconds to int64 without
// a range check, which read both as a time before the epoch).
var (
	farPast   = time.Unix(-maxSeconds, 0)
	farFuture = time.Unix(maxSeconds, 0)
)

// maxSeconds is about 3e10 years.
const maxSeconds = 1e18

// maxVerified bounds the cache of verified tokens.
const maxVerified = 4096

// ClockSkew is how far in the future a token's nbf or iat may be: the
// service's instances and the token's issuer keep their own clocks, and a
// token issued by one instance, used at once on another whose clock is
// behind, was refused as "issued in the future" (iat is whole seconds, so
// any skew above the issue time's fraction of a second refused it; found by
// the scale-out audit). exp has no leeway: a token never outlives it.
const ClockSkew = 30 * time.Second

// New returns an Authenticator for secret. An empty secret verifies nothing.
func New(secret []byte) *Authenticator {
	a := &Authenticator{secret: secret, now: time.Now, verified: map[string]timeClaims{}}
	a.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		// The time claims are read and checked here (times, check): the
		// library reads a NumericDate beyond int64 seconds as a time
		// before 1970, a number written as a string as a number, and
		// claim names in any case ("EXP").
		jwt.WithoutClaimsValidation(),
	)
	return a
}

// AcceptPrevious makes a accept tokens signed with previous as well, the
// secret before its own while it is rotated (JWT_PREVIOUS_SECRET); an
// empty previous accepts none. Tokens are still issued with a's secret.
// To be called before a verifies anything.
func (a *Authenticator) AcceptPrevious(previous []byte) *Authenticator {
	a.previous = previous
	return a
}

// Issue returns a token that expires after ttl.
func (a *Authenticator) Issue(ttl time.Duration) (string, error) {
	if len(a.secret) == 0 {
		return "", errors.New("no JWT secret configured")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("token lifetime must be positive, got %s", ttl)
	}
	now := a.now()
	claims := jwt.RegisteredClaims{
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.secret)
}

// Verify checks a token's signature, algorithm and time claims.
func (a *Authenticator) Verify(token string) error {
	if len(a.secret) == 0 {
		return errors.New("no JWT secret configured")
	}
	a.mu.RLock()
	tc, ok := a.verified[token]
	a.mu.RUnlock()
	if ok {
		return a.checked(tc)
	}
	claims, err := a.parse(token, a.secret)
	previous := false
	if errors.Is(err, jwt.ErrTokenSignatureInvalid) && len(a.previous) > 0 {
		// Signed with the secret before the current one, during its
		// rotation; any other failure is the token's whatever the key.
		if claims, err = a.parse(token, a.previous); err == nil {
			previous = true
		}
	}
	if err != nil {
		return describe(err)
	}
	tc, err = claims.times()
	if err != nil {
		return err
	}
	tc.previous = previous
	a.mu.Lock()
	if len(a.verified) >= maxVerified {
		clear(a.verified)
	}
	a.verified[token] = tc
	a.mu.Unlock()
	return a.checked(tc)
}

// parse checks token's signature and algorithm with key, and reads its
// claims.
func (a *Authenticator) parse(token string, key []byte) (payload, error) {
	var claims payload
	_, err := a.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			// RFC 7515 4.1.11: a token naming extensions the verifier
			// must understand is refused when it does not (the library
			// ignores crit).
			return nil, errCrit
		}
		return key, nil
	})
	return claims, err
}

// checked checks a verified token's time claims now, and counts a valid
// one signed with the previous secret.
func (a *Authenticator) checked(tc timeClaims) error {
	if err := tc.check(a.now()); err != nil {
		return err
	}
	if tc.previous && a.OnPrevious != nil {
		a.OnPrevious()
	}
	return nil
}

// errCrit refuses a token with a crit header.
var errCrit = errors.New("token has a crit header: no JWS extension is understood here")

// payload is a token's claims, each as its JSON text: only exp, nbf and iat
// are read, by times. Its methods satisfy jwt.Claims for the parser, which
// validates no claim (WithoutClaimsValidation).
type payload map[string]json.RawMessage

func (payload) GetExpirationTime() (*jwt.NumericDate, error) { return nil, nil }
func (payload) GetIssuedAt() (*jwt.NumericDate, error)       { return nil, nil }
func (payload) GetNotBefore() (*jwt.NumericDate, error)      { return nil, nil }
func (payload) GetIssuer() (string, error)                   { return "", nil }
func (payload) GetSubject() (string, error)                  { return "", nil }
func (payload) GetAudience() (jwt.ClaimStrings, error)       { return nil, nil }

// times reads the time claims of a token whose signature checked out. exp
// is required (a token without it would be good forever). Each must be a
// JSON number (RFC 7519's NumericDate): the library also read a number
// written as a string ("exp":"1700000000"), which no conforming issuer
// writes (found by a security audit). Names are case-sensitive (RFC 7519
// 4), so "EXP" is not exp.
func (p payload) times() (timeClaims, error) {
	if _, ok := p["exp"]; !ok {
		return timeClaims{}, errors.New("token has no exp claim: tokens must expire")
	}
	tc := timeClaims{nbf: farPast, iat: farPast}
	for _, c := range []struct {
		name string
		to   *time.Time
	}{{"exp", &tc.exp}, {"nbf", &tc.nbf}, {"iat", &tc.iat}} {
		v, ok := p[c.name]
		if !ok {
			continue
		}
		t, ok := numericDate(v)
		if !ok {
			return timeClaims{}, fmt.Errorf("token's %s must be a number (seconds since the epoch, RFC 7519 NumericDate)", c.name)
		}
		*c.to = t
	}
	return tc, nil
}

// numericDate reads a JSON number of seconds since the epoch, fractions
// kept to the nanosecond, and clamps it to [farPast, farFuture]. ok is false
// when v is not a number (a string, null, ...).
func numericDate(v json.RawMessage) (t time.Time, ok bool) {
	if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
		return time.Time{}, false
	}
	// A JSON number's syntax is a subset of ParseFloat's; one beyond
	// float64's range parses as ±Inf (or 0 when tiny) with ErrRange,
	// which the clamp below handles.
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return time.Time{}, false
	}
	switch {
	case f >= maxSeconds:
		return farFuture, true
	case f <= -maxSeconds:
		return farPast, true
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// check applies the time rules to a verified token: valid before exp, from
// nbf, and not issued in the future, nbf and iat with ClockSkew of leeway
// (exp has none: a token never outlives it).
func (tc timeClaims) check(now time.Time) error {
	switch {
	case !now.Before(tc.exp):
		return errors.New("token has expired")
	case now.Add(ClockSkew).Before(tc.nbf):
		return errors.New("token is not valid yet (nbf)")
	case now.Add(ClockSkew).Before(tc.iat):
		return errors.New("token is issued in the future (iat)")
	}
	return nil
}

// describe turns the library's error into a short reason for the client
// (it checks no claim: times does).
func describe(err error) error {
	switch {
	case errors.Is(err, errCrit):
		return errCrit
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errors.New("malformed token")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errors.New("invalid token signature or algorithm (HS256 only)")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return errors.New("token cannot be verified: only HS256 is accepted")
	}
	return errors.New("invalid token")
}

// Token extracts the token of a request: the Authorization header with the
// Bearer scheme (any case), else the jwt cookie. It returns ErrNoToken when
// there is neither.
func Token(authorization string, cookies []*http.Cookie) (string, error) {
	if authorization != "" {
		scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", ErrNotBearer
		}
		if token = strings.TrimSpace(token); token == "" {
			return "", errors.New("the Authorization header has no token")
		}
		return token, nil
	}
	for _, c := range cookies {
		if c.Name == CookieName && c.Value != "" {
			return c.Value, nil
		}
	}
	return "", ErrNoToken
}
