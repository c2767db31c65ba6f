package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/telemetry/telemetry/internal/auth"
)

// Security scheme names in the OpenAPI document.
const (
	securityBearer = "bearerAuth"
	securityCookie = "jwtCookie"
)

// deviceSecurity is the security requirement of the operations that need a
// token: the Bearer header or the jwt cookie.
var deviceSecurity = []map[string][]string{{securityBearer: {}}, {securityCookie: {}}}

// documentSecurity adds the two ways to send a token to the document, so
// that Swagger UI's Authorize button can send one.
func documentSecurity(api huma.API) {
	c := api.OpenAPI().Components
	if c.SecuritySchemes == nil {
		c.SecuritySchemes = map[string]*huma.SecurityScheme{}
	}
	c.SecuritySchemes[securityBearer] = &huma.SecurityScheme{
		Type: "http", Scheme: "bearer", BearerFormat: "JWT",
		Description: "A JWT signed with HS256 and the server's JWT_SECRET: `Authorization: Bearer <token>` " +
			"(the scheme name is case-insensitive). Get one with `telemetry token` or, when enabled, POST /mrd/token.",
	}
	c.SecuritySchemes[securityCookie] = &huma.SecurityScheme{
		Type: "apiKey", In: "cookie", Name: auth.CookieName,
		Description: "The same JWT in a cookie named jwt, used when there is no Authorization header. A POST authenticated by it, with a body or none, and any other write with a body, must send Content-Type: application/json (415 otherwise).",
	}
}

// requireToken is the middleware of the operations that need a token: 401
// with WWW-Authenticate: Bearer unless the request carries a valid one.
func requireToken(api huma.API, a *auth.Authenticator) func(huma.Context, func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		cookies := cookiesIfNoHeader(ctx)
		token, err := auth.Token(ctx.Header("Authorization"), cookies)
		if err == nil {
			err = a.Verify(token)
		}
		if err == nil && cookies != nil && !cookieWriteTyped(ctx) {
			// A browser sends the jwt cookie with whatever another site
			// makes it send, and a POST (with a body or none), or a body
			// without Content-Type, needs no CORS preflight: a write
			// authenticated by the cookie must say it is JSON, which only
			// a page of this origin, or a client that is not a browser,
			// can do. (A POST without a body, creating a collection, used
			// to pass with any type; found by an audit.)
			p := NewProblem(http.StatusUnsupportedMediaType, "validation failed", &ProblemItem{
				Title: "contentType", Location: "body",
				Detail: "a write authenticated by the jwt cookie must send Content-Type: application/json",
			})
			_ = huma.WriteErr(api, ctx, p.Status, p.Detail, p.Errors[0])
			return
		}
		if err == nil {
			// What is answered for a token is no cache's to keep: RFC 9111
			// keeps a shared cache from reusing an answer to a request with
			// Authorization, but not one authenticated by a cookie, and a
			// proxy cache keyed on the URL alone (nginx's proxy_cache)
			// honours neither, only the answer's own Cache-Control.
			ctx.SetHeader("Cache-Control", "no-store")
			next(ctx)
			return
		}
		// RFC 6750 3.1: no error code when the request had no credentials,
		// or only those of another scheme.
		challenge := `Bearer`
		if !errors.Is(err, auth.ErrNoToken) && !errors.Is(err, auth.ErrNotBearer) {
			challenge = `Bearer error="invalid_token"`
		}
		ctx.SetHeader("WWW-Authenticate", challenge)
		_ = huma.WriteErr(api, ctx, http.StatusUnauthorized, err.Error(), &ProblemItem{
			Title: "Unauthorized", Detail: err.Error(), Source: "Authorization", Location: "header.Authorization",
		})
	}
}

// cookieWriteTyped reports whether a request authenticated by the jwt
// cookie alone may go on: a POST must say its body, if any, is JSON; any
// other write with a body must give a type (one that is not JSON is a 415
// anyway). A PUT or DELETE is not a simple CORS request, so another site
// cannot send one without this origin's consent; GET and HEAD only read.
func cookieWriteTyped(ctx huma.Context) bool {
	ct := ctx.Header("Content-Type")
	if ctx.Method() == http.MethodPost {
		isJSON, _ := jsonMediaType(ct)
		return isJSON
	}
	return ct != "" || !takesBody(ctx.Operation())
}

// takesBody says whether op reads a request body.
func takesBody(op *huma.Operation) bool {
	return op != nil && op.RequestBody != nil
}

func cookiesIfNoHeader(ctx huma.Context) []*http.Cookie {
	if ctx.Header("Authorization") != "" || ctx.Header("Cookie") == "" {
		return nil
	}
	return huma.ReadCookies(ctx)
}

// TokenRequest asks for a token; the body is optional.
type TokenRequest struct {
	ExpiresIn int64 `json:"expires_in,omitempty" minimum:"1" maximum:"31622400" example:"86400" doc:"Lifetime of the token in seconds (default 86400, at most 366 days)."`

	faults []error // strings that cannot be stored, repeated names
}

// UnmarshalJSON decodes with json v2 and checks the body's strings
// (textcheck.go), as for every body: the token body has no string field,
// but {"expires_in":1,"expires_in":9} is ambiguous, and {"EXPIRES_IN":9}
// must not set expires_in behind the schema's back.
func (b *TokenRequest) UnmarshalJSON(data []byte) error {
	type plain TokenRequest
	b.faults, _ = checkBodyText(data)
	return unmarshalBody(data, (*plain)(b))
}

// TokenResponse carries a new token.
type TokenResponse struct {
	Status int    `json:"status" example:"200" doc:"Always 200."`
	Token  string `json:"token" example:"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHAiOjE2NzQwNjUzNzB9.mwoJLkw0eKZhRgyX2BX6RwzE1XDzb1b3VDWh-dW2AXk" doc:"An HS256 JWT to send as Authorization: Bearer <token>."`
}

type tokenInput struct {
	Body *TokenRequest `doc:"Optional: {} or {\"expires_in\": seconds}."`
}

// Resolve reports the body's faults with huma's own checks.
func (in *tokenInput) Resolve(huma.Context) []error {
	if in.Body == nil {
		return nil
	}
	return in.Body.faults
}

type tokenOutput struct {
	// A token is a credential: no cache may keep it (RFC 6749 5.1 asks the
	// same of OAuth token answers; found by the security review).
	CacheControl string `header:"Cache-Control" enum:"no-store" doc:"Always no-store: the answer holds a credential."`
	Body         TokenResponse
}

// defaultTokenTTL is the lifetime of tokens from POST /mrd/token and
// `telemetry token` when none is asked for.
const defaultTokenTTL = 24 * time.Hour

func (d *devicesAPI) issueToken(ctx context.Context, in *tokenInput) (*tokenOutput, error) {
	if !d.cfg.EnableTokenEndpoint {
		return nil, NewProblem(http.StatusNotFound, "the token endpoint is disabled (ENABLE_TOKEN_ENDPOINT=false); use `telemetry token`")
	}
	ttl := defaultTokenTTL
	if in.Body != nil && in.Body.ExpiresIn > 0 {
		ttl = time.Duration(in.Body.ExpiresIn) * time.Second
	}
	token, err := d.auth.Issue(ttl)
	if err != nil {
		d.log.ErrorContext(ctx, "issue token", "error", err.Error(), "request_id", RequestID(ctx))
		return nil, internalError(ctx)
	}
	out := &tokenOutput{CacheControl: "no-store"}
	out.Body.Status, out.Body.Token = http.StatusOK, token
	return out, nil
}
