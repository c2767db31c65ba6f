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
	"net/http"
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

// Authenticator signs and verifies tokens with one HS256 secret.
type Authenticator struct {
	secret []byte
	parser *jwt.Parser
	now    func() time.Time

	// verified remembers the time claims of tokens whose signature checked
	// out: reporters send the same token with every request, and the cache
	// turns base64, JSON and HMAC into one map lookup. Time claims are still
	// checked on every use. Only valid tokens get in, so nobody can fill it
	// without the secret; it is cleared when full.
	mu       sync.RWMutex
	verified map[string]timeClaims
}

// timeClaims are a verified token's exp, nbf and iat (zero when absent).
type timeClaims struct{ exp, nbf, iat time.Time }

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
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		// The library's leeway applies to exp too; check, called after
		// it, holds exp to the second.
		jwt.WithLeeway(ClockSkew),
		jwt.WithTimeFunc(func() time.Time { return a.now() }),
	)
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
		return tc.check(a.now())
	}
	var claims jwt.RegisteredClaims
	_, err := a.parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			// RFC 7515 4.1.11: a token naming extensions the verifier
			// must understand is refused when it does not (the library
			// ignores crit).
			return nil, errCrit
		}
		return a.secret, nil
	})
	if err != nil {
		return describe(err)
	}
	if err := a.numericTimes(token); err != nil {
		return err
	}
	tc = timeClaims{exp: numericTime(claims.ExpiresAt), nbf: numericTime(claims.NotBefore), iat: numericTime(claims.IssuedAt)}
	a.mu.Lock()
	if len(a.verified) >= maxVerified {
		clear(a.verified)
	}
	a.verified[token] = tc
	a.mu.Unlock()
	return tc.check(a.now())
}

// errCrit refuses a token with a crit header.
var errCrit = errors.New("token has a crit header: no JWS extension is understood here")

// numericTimes refuses a token whose exp, nbf or iat is not a JSON number
// (RFC 7519's NumericDate): the library also reads a number written as a
// string ("exp":"1700000000"), which no conforming issuer writes (found
// by a security audit). token's signature is verified: its payload is
// well formed.
func (a *Authenticator) numericTimes(token string) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return errors.New("malformed token")
	}
	payload, err := a.parser.DecodeSegment(parts[1])
	if err != nil {
		return errors.New("malformed token")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(payload, &raw); err != nil {
		return errors.New("malformed token")
	}
	for _, name := range []string{"exp", "nbf", "iat"} {
		v, ok := raw[name]
		if !ok {
			continue
		}
		if len(v) == 0 || (v[0] != '-' && (v[0] < '0' || v[0] > '9')) {
			return fmt.Errorf("token's %s must be a number (seconds since the epoch, RFC 7519 NumericDate)", name)
		}
	}
	return nil
}

func numericTime(d *jwt.NumericDate) time.Time {
	if d == nil {
		return time.Time{}
	}
	return d.Time
}

// check applies the time rules to a verified token: valid before exp, from
// nbf, and not issued in the future, nbf and iat with ClockSkew of leeway.
func (tc timeClaims) check(now time.Time) error {
	switch {
	case !tc.exp.IsZero() && !now.Before(tc.exp):
		return errors.New("token has expired")
	case !tc.nbf.IsZero() && now.Add(ClockSkew).Before(tc.nbf):
		return errors.New("token is not valid yet (nbf)")
	case !tc.iat.IsZero() && now.Add(ClockSkew).Before(tc.iat):
		return errors.New("token is issued in the future (iat)")
	}
	return nil
}

// describe turns the library's error into a short reason for the client.
func describe(err error) error {
	switch {
	case errors.Is(err, errCrit):
		return errCrit
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return errors.New("token has no exp claim: tokens must expire")
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errors.New("malformed token")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errors.New("invalid token signature or algorithm (HS256 only)")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return errors.New("token cannot be verified: only HS256 is accepted")
	case errors.Is(err, jwt.ErrTokenExpired):
		return errors.New("token has expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errors.New("token is not valid yet (nbf)")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errors.New("token is issued in the future (iat)")
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
