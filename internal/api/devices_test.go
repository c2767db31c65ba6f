package api

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/telemetry/telemetry/internal/auth"
	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/testdb"
)

var testSecret = []byte("device-metrics-test-secret-0123456789")

// newDevicesServer is a test server with a JWT secret; tweaks apply after.
func newDevicesServer(t *testing.T, tweak ...func(*config.Config)) *testServer {
	t.Helper()
	return newTestServer(t, append([]func(*config.Config){func(c *config.Config) { c.JWTSecret = testSecret }}, tweak...)...)
}

// signed returns a token with claims, signed by method with key.
func signed(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// validToken is an HS256 token that expires in an hour.
func validToken(t testing.TB) string {
	return signed(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()})
}

func bearer(t *testing.T) []string { return []string{"Authorization", "Bearer " + validToken(t)} }

func (s *testServer) createDevice(t *testing.T, id string) {
	t.Helper()
	s.do("POST", "/mrd/devices", map[string]string{"id": id, "name": "device " + id}, bearer(t)...).wantStatus(t, http.StatusCreated)
}

func metricDoc(name string, value any, typ string, ttl int) map[string]any {
	return map[string]any{"name": name, "value": value, "units": "u", "type": typ, "slope": "both", "ttl": ttl}
}

// currentMetric is CurrentMetric with the value as decoded JSON, so tests
// see its JSON type.
type currentMetric struct {
	Name       string    `json:"name"`
	Value      any       `json:"value"`
	Units      string    `json:"units"`
	Type       string    `json:"type"`
	Slope      string    `json:"slope"`
	TTL        int       `json:"ttl"`
	ReportedAt time.Time `json:"reportedAt"`
}

func (s *testServer) current(t *testing.T, id string) map[string]currentMetric {
	t.Helper()
	var page Page[currentMetric]
	s.do("GET", "/mrd/devices/"+id+"/metrics?size=100", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	m := map[string]currentMetric{}
	for _, c := range page.Items {
		m[c.Name] = c
	}
	if int(page.Total) != len(m) {
		t.Fatalf("total %d for %d items", page.Total, len(m))
	}
	return m
}

func TestDevicesSeedExample(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "1")
	body := `{"name": "my-metric", "value": 12, "units": "my-units", "type": "uint32", "slope": "both", "ttl": 180}`
	r := s.do("PUT", "/mrd/1/metrics", body, bearer(t)...).wantStatus(t, http.StatusOK)
	if strings.TrimSpace(string(r.Body)) != `{"status":200}` {
		t.Fatalf("body %s, want {\"status\":200}", r.Body)
	}
	got := s.current(t, "1")["my-metric"]
	if got.Value != float64(12) || got.Units != "my-units" || got.Type != "uint32" || got.Slope != "both" || got.TTL != 180 ||
		time.Since(got.ReportedAt) > time.Minute {
		t.Fatalf("current = %+v", got)
	}
	// /status needs no token.
	r = s.do("GET", "/mrd/status", nil).wantStatus(t, http.StatusOK)
	if strings.TrimSpace(string(r.Body)) != `{"status":200}` {
		t.Fatalf("status body %s", r.Body)
	}
}

func TestDevicesReportValidation(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "n1")
	const types = "[string int8 uint8 int16 uint16 int32 uint32 float double]"
	const slopes = "[zero positive negative both derivative]"
	cases := []struct {
		name, doc, source, title, detail string
	}{
		{"name empty", `{"type": "int32", "name": "", "value": 1, "units": " ", "slope": "both", "ttl": 60}`, "name", "required", "name is a required field"},
		{"name missing", `{"type": "int32", "value": 1, "units": "u", "slope": "both", "ttl": 60}`, "name", "required", "name is a required field"},
		{"name blank", `{"type": "int32", "name": " ", "value": 1, "units": " ", "slope": "both", "ttl": 60}`, "name", "notblank", "name cannot be blank"},
		{"name dot", `{"type": "int32", "name": ".", "value": 1, "units": " ", "slope": "both", "ttl": 60}`, "name", "reserved", `name "." is reserved: as a URL path segment (the metric's history) clients remove it`},
		{"name dot dot", `{"type": "int32", "name": "..", "value": 1, "units": " ", "slope": "both", "ttl": 60}`, "name", "reserved", `name ".." is reserved: as a URL path segment (the metric's history) clients remove it`},
		{"name not a string", `{"type": "int32", "name": 5, "value": 1, "units": "u", "slope": "both", "ttl": 60}`, "name", "type", "name must be a string"},
		{"value missing", `{"type": "int32", "name": "foo", "units": "u", "slope": "both", "ttl": 60}`, "value", "required", "value is a required field"},
		{"string for int32", `{"type": "int32", "name": "foo", "value": "a string", "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type int32"},
		{"float for int32", `{"type": "int32", "name": "foo", "value": 3.14, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type int32"},
		{"string for double", `{"type": "double", "name": "foo", "value": "a string", "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type double"},
		{"int for string", `{"type": "string", "name": "foo", "value": 10, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type string"},
		{"float for string", `{"type": "string", "name": "foo", "value": 3.14, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type string"},
		{"negative uint32", `{"type": "uint32", "name": "foo", "value": -1, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type uint32"},
		{"uint32 overflow", `{"type": "uint32", "name": "foo", "value": 4294967296, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type uint32"},
		{"int8 overflow", `{"type": "int8", "name": "foo", "value": 128, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type int8"},
		{"int8 underflow", `{"type": "int8", "name": "foo", "value": -129, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type int8"},
		{"negative uint8", `{"type": "uint8", "name": "foo", "value": -1, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type uint8"},
		{"int16 overflow", `{"type": "int16", "name": "foo", "value": 32768, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type int16"},
		{"uint16 overflow", `{"type": "uint16", "name": "foo", "value": 65536, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type uint16"},
		{"int32 overflow", `{"type": "int32", "name": "foo", "value": 2147483648, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type int32"},
		{"double overflow", `{"type": "double", "name": "foo", "value": 1e400, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type double"},
		{"ttl overflow", `{"type": "int32", "name": "foo", "value": 1, "units": "u", "slope": "both", "ttl": 1e400}`, "ttl", "type", "ttl must be an integer"},
		{"bool for double", `{"type": "double", "name": "foo", "value": true, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type double"},
		{"bool for string", `{"type": "string", "name": "foo", "value": false, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type string"},
		{"bool for int8", `{"type": "int8", "name": "foo", "value": true, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type int8"},
		{"null for string", `{"type": "string", "name": "foo", "value": null, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type string"},
		{"null for float", `{"type": "float", "name": "foo", "value": null, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type float"},
		{"object for uint16", `{"type": "uint16", "name": "foo", "value": {}, "units": "u", "slope": "both", "ttl": 60}`, "value", "validtype", "value is not valid for type uint16"},
		{"units missing", `{"type": "int32", "name": "foo", "value": 1, "slope": "both", "ttl": 60}`, "units", "required", "units is a required field"},
		{"units empty", `{"type": "int32", "name": "foo", "value": 1, "units": "", "slope": "both", "ttl": 60}`, "units", "required", "units is a required field"},
		{"units <", `{"type": "int32", "name": "foo", "value": 1, "units": "<", "slope": "both", "ttl": 1}`, "units", "excludesall", `units cannot contain any of the following characters '<>'"&'`},
		{"units &", `{"type": "int32", "name": "foo", "value": 1, "units": "a&b", "slope": "both", "ttl": 1}`, "units", "excludesall", `units cannot contain any of the following characters '<>'"&'`},
		{"type empty", `{"type": "", "name": "foo", "value": 1, "units": " ", "slope": "both", "ttl": 60}`, "type", "required", "type is a required field"},
		{"type missing", `{"name": "foo", "value": 1, "units": " ", "slope": "both", "ttl": 60}`, "type", "required", "type is a required field"},
		{"type invalid", `{"type": "invalid", "name": "foo", "value": 1, "units": " ", "slope": "both", "ttl": 60}`, "type", "oneof", "type must be one of " + types},
		{"type not a string", `{"type": 3, "name": "foo", "value": 1, "units": " ", "slope": "both", "ttl": 60}`, "type", "type", "type must be a string"},
		{"slope empty", `{"type": "int32", "name": "foo", "value": 1, "units": " ", "slope": "", "ttl": 60}`, "slope", "required", "slope is a required field"},
		{"slope invalid", `{"type": "int32", "name": "foo", "value": 1, "units": " ", "slope": "invalid", "ttl": 60}`, "slope", "oneof", "slope must be one of " + slopes},
		{"ttl 0", `{"type": "int32", "name": "foo", "value": 1, "units": " ", "slope": "both", "ttl": 0}`, "ttl", "required", "ttl is a required field"},
		{"ttl missing", `{"type": "int32", "name": "foo", "value": 1, "units": " ", "slope": "both"}`, "ttl", "required", "ttl is a required field"},
		{"ttl -1", `{"type": "int32", "name": "foo", "value": 1, "units": " ", "slope": "both", "ttl": -1}`, "ttl", "min", "ttl must be 1 or greater"},
		{"ttl fraction", `{"type": "int32", "name": "foo", "value": 1, "units": " ", "slope": "both", "ttl": 1.5}`, "ttl", "type", "ttl must be an integer"},
		{"ttl string", `{"type": "int32", "name": "foo", "value": 1, "units": " ", "slope": "both", "ttl": "60"}`, "ttl", "type", "ttl must be an integer"},
		{"ttl too large", `{"type": "int32", "name": "foo", "value": 1, "units": " ", "slope": "both", "ttl": 2147483648}`, "ttl", "max", "ttl must be 2147483647 or less"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := s.do("PUT", "/mrd/n1/metrics", c.doc, bearer(t)...).problem(t, http.StatusUnprocessableEntity)
			if len(p.Errors) != 1 {
				t.Fatalf("want one error, got %+v", p.Errors)
			}
			e := p.Errors[0]
			if e.Status != 422 || e.Source != c.source || e.Title != c.title || e.Detail != c.detail || e.Location != "body."+c.source {
				t.Fatalf("error = %+v, want source %s title %s detail %q", e, c.source, c.title, c.detail)
			}
			// A number past float64's range is echoed as it was sent.
			if strings.Contains(c.doc, "1e400") && e.Value != "1e400" {
				t.Fatalf("value echoed as %#v, want \"1e400\"", e.Value)
			}
		})
	}
	if n := len(s.current(t, "n1")); n != 0 {
		t.Fatalf("invalid reports stored %d metrics", n)
	}
}

func TestDevicesReportErrorsAllAtOnceInOrder(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "n1")
	// Every field fails; value has no validtype error because type is invalid.
	p := s.do("PUT", "/mrd/n1/metrics", `{"name": "", "value": true, "units": "<b>", "type": "bool", "slope": "up", "ttl": -5}`,
		bearer(t)...).problem(t, http.StatusUnprocessableEntity)
	var got []string
	for _, e := range p.Errors {
		got = append(got, e.Source+"/"+e.Title)
	}
	want := "name/required units/excludesall type/oneof slope/oneof ttl/min"
	if strings.Join(got, " ") != want {
		t.Fatalf("errors = %v, want %s", got, want)
	}
	// With a valid type the value error comes second.
	p = s.do("PUT", "/mrd/n1/metrics", `{"name": " ", "value": "x", "units": "", "type": "int8", "slope": "", "ttl": 0}`,
		bearer(t)...).problem(t, http.StatusUnprocessableEntity)
	got = got[:0]
	for _, e := range p.Errors {
		got = append(got, e.Source+"/"+e.Title)
	}
	want = "name/notblank value/validtype units/required slope/required ttl/required"
	if strings.Join(got, " ") != want {
		t.Fatalf("errors = %v, want %s", got, want)
	}
}

func TestDevicesReportValuesRoundTrip(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "n1")
	cases := []struct {
		typ   string
		value any
	}{
		{"string", "bar"}, {"string", ""}, {"string", "<not & html>"}, {"string", "quote\" backslash\\ é \n\u2028"},
		{"int8", -128.0}, {"int8", 127.0}, {"uint8", 0.0}, {"uint8", 255.0},
		{"int16", -32768.0}, {"uint16", 65535.0}, {"int32", -20.0}, {"int32", 2147483647.0},
		{"uint32", 4294967295.0}, {"float", 3.25}, {"double", -20.1234}, {"double", 1.7976931348623157e308},
		{"double", 5e-324}, {"double", 0.1},
	}
	for i, c := range cases {
		name := fmt.Sprintf("m%02d", i)
		s.do("PUT", "/mrd/n1/metrics", metricDoc(name, c.value, c.typ, 60), bearer(t)...).wantStatus(t, http.StatusOK)
	}
	cur := s.current(t, "n1")
	for i, c := range cases {
		got := cur[fmt.Sprintf("m%02d", i)]
		if got.Value != c.value || got.Type != c.typ {
			t.Errorf("%s %v came back as %s %#v", c.typ, c.value, got.Type, got.Value)
		}
	}
	// 20.0 is an integral number: a valid int32, returned as 20.
	s.do("PUT", "/mrd/n1/metrics", `{"name":"whole","value":20.0,"units":"u","type":"int32","slope":"zero","ttl":60}`, bearer(t)...).
		wantStatus(t, http.StatusOK)
	if v := s.current(t, "n1")["whole"].Value; v != 20.0 {
		t.Fatalf("whole = %v", v)
	}
}

func TestDevicesReportExtraFieldsIgnored(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "n1")
	s.do("PUT", "/mrd/n1/metrics", `{"name":"x","value":1,"units":"u","type":"int8","slope":"zero","ttl":60,"extra":[1,2],"host":"h"}`,
		bearer(t)...).wantStatus(t, http.StatusOK)
	if _, ok := s.current(t, "n1")["x"]; !ok {
		t.Fatal("metric with extra fields not stored")
	}
}

func TestDevicesReportBadJSON(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "n1")
	for _, body := range []string{`{"name": "x",`, `not json`, `[]`, `"a string"`, `{"name":"x"} {}`, ``} {
		t.Run(body, func(t *testing.T) {
			p := s.do("PUT", "/mrd/n1/metrics", body, bearer(t)...).problem(t, http.StatusBadRequest)
			if len(p.Errors) != 1 || p.Errors[0].Title != "error parsing JSON body" || p.Errors[0].Detail == "" {
				t.Fatalf("errors = %+v", p.Errors)
			}
		})
	}
}

func TestDevicesReportUnknownDevice(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	p := s.do("PUT", "/mrd/nope/metrics", metricDoc("x", 1, "int8", 5), bearer(t)...).problem(t, http.StatusNotFound)
	if len(p.Errors) != 1 || p.Errors[0].Title != "Host Not Found" || p.Errors[0].Detail != "Unknown host: nope" ||
		p.Errors[0].Location != "path.device_id" || p.Errors[0].Source != "device_id" {
		t.Fatalf("errors = %+v", p.Errors)
	}
	// Validation comes first: an invalid report of an unknown device is a 422.
	s.do("PUT", "/mrd/nope/metrics", metricDoc("", 1, "int8", 5), bearer(t)...).problem(t, http.StatusUnprocessableEntity)
}

// A report that arrives after the store's devices are closed (shutdown)
// answers 503 with Retry-After: 1.
func TestDevicesReportAfterClose(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.JWTSecret = testSecret
	st := postgres.New(testdb.New(t), postgres.Options{})
	h, _ := New(Deps{Store: st.Stores(), Config: cfg})
	s := &testServer{Server: newHTTPTest(t, h), t: t}
	s.createDevice(t, "n1")
	st.Devices.Close()
	r := s.do("PUT", "/mrd/n1/metrics", metricDoc("x", 1, "int8", 5), bearer(t)...)
	p := r.problem(t, http.StatusServiceUnavailable)
	if p.Detail != "the server is shutting down; retry" || r.Header.Get("Retry-After") != "1" {
		t.Fatalf("answer %+v, Retry-After %q", p, r.Header.Get("Retry-After"))
	}
}

func TestDevicesAuth(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "n1")
	now := time.Now()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	hs := func(claims jwt.MapClaims) string { return signed(t, jwt.SigningMethodHS256, testSecret, claims) }
	good := hs(jwt.MapClaims{"exp": now.Add(time.Hour).Unix()})
	// The refused tokens carry exp, so that each is refused for its own fault.
	live := jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}
	cases := []struct {
		name   string
		header []string
		status int
	}{
		{"missing", nil, 401},
		{"bad signature", []string{"Authorization", "Bearer " + signed(t, jwt.SigningMethodHS256, []byte("another secret"), live)}, 401},
		{"alg none", []string{"Authorization", "Bearer " + signed(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, live)}, 401},
		{"HS512", []string{"Authorization", "Bearer " + signed(t, jwt.SigningMethodHS512, testSecret, live)}, 401},
		{"RS256", []string{"Authorization", "Bearer " + signed(t, jwt.SigningMethodRS256, rsaKey, live)}, 401},
		{"expired", []string{"Authorization", "Bearer " + hs(jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()})}, 401},
		{"nbf in future", []string{"Authorization", "Bearer " + hs(jwt.MapClaims{"nbf": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()})}, 401},
		{"iat in future", []string{"Authorization", "Bearer " + hs(jwt.MapClaims{"iat": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()})}, 401},
		{"malformed", []string{"Authorization", "Bearer not.a.jwt"}, 401},
		{"garbage", []string{"Authorization", "Bearer abc"}, 401},
		{"empty bearer", []string{"Authorization", "Bearer "}, 401},
		{"basic scheme", []string{"Authorization", "Basic dXNlcjpwYXNz"}, 401},
		{"bad cookie", []string{"Cookie", "jwt=" + signed(t, jwt.SigningMethodHS256, []byte("x"), live)}, 401},
		{"bearer", []string{"Authorization", "Bearer " + good}, 200},
		{"lowercase bearer", []string{"Authorization", "bearer " + good}, 200},
		{"upper case BEARER", []string{"Authorization", "BEARER " + good}, 200},
		{"cookie", []string{"Cookie", "other=1; jwt=" + good}, 200},
		// A token without exp would be good forever (issue 10, point 8).
		{"no claims at all", []string{"Authorization", "Bearer " + hs(jwt.MapClaims{})}, 401},
		{"no exp", []string{"Authorization", "Bearer " + hs(jwt.MapClaims{"iat": now.Add(-time.Minute).Unix()})}, 401},
		{"nbf and iat past", []string{"Authorization", "Bearer " + hs(jwt.MapClaims{"nbf": now.Add(-time.Minute).Unix(),
			"iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()})}, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.do("PUT", "/mrd/n1/metrics", metricDoc("x", 1, "int8", 5), c.header...)
			if c.status == 200 {
				r.wantStatus(t, http.StatusOK)
				return
			}
			p := r.problem(t, http.StatusUnauthorized)
			if ch := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer") {
				t.Fatalf("WWW-Authenticate = %q", ch)
			}
			if len(p.Errors) != 1 || p.Errors[0].Title != "Unauthorized" || p.Errors[0].Detail == "" {
				t.Fatalf("errors = %+v", p.Errors)
			}
		})
	}
	// Auth comes before body parsing: garbage without a token is a 401.
	s.do("PUT", "/mrd/n1/metrics", "{", "X-Nothing", "1").problem(t, http.StatusUnauthorized)
	// Every write of the registry needs a token; reads do not.
	s.do("POST", "/mrd/devices", map[string]string{"id": "n2", "name": "x"}).problem(t, http.StatusUnauthorized)
	s.do("PUT", "/mrd/devices/n1", map[string]string{"name": "x"}).problem(t, http.StatusUnauthorized)
	s.do("DELETE", "/mrd/devices/n1", nil).problem(t, http.StatusUnauthorized)
	s.do("GET", "/mrd/devices/n1", nil).wantStatus(t, http.StatusOK)
	s.do("GET", "/mrd/devices", nil).wantStatus(t, http.StatusOK)
}

func TestDevicesAuthWithoutSecret(t *testing.T) {
	t.Parallel()
	s := newTestServer(t) // no JWT secret: nothing verifies
	s.do("PUT", "/mrd/n1/metrics", metricDoc("x", 1, "int8", 5), bearer(t)...).problem(t, http.StatusUnauthorized)
}

func TestDevicesTokenEndpoint(t *testing.T) {
	t.Parallel()
	off := newDevicesServer(t)
	off.do("POST", "/mrd/token", `{}`).problem(t, http.StatusNotFound)

	s := newDevicesServer(t, func(c *config.Config) { c.EnableTokenEndpoint = true })
	s.createDevice(t, "n1")
	for _, body := range []string{`{}`, `{"expires_in": 60}`} {
		var out struct {
			Status int    `json:"status"`
			Token  string `json:"token"`
		}
		r := s.do("POST", "/mrd/token", body).wantStatus(t, http.StatusOK)
		r.decode(t, &out)
		if out.Status != 200 || out.Token == "" || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("token answer %+v, Cache-Control %q (want no-store)", out, r.Header.Get("Cache-Control"))
		}
		s.do("PUT", "/mrd/n1/metrics", metricDoc("x", 1, "int8", 5), "Authorization", "Bearer "+out.Token).wantStatus(t, http.StatusOK)
		claims := jwt.MapClaims{}
		if _, err := jwt.ParseWithClaims(out.Token, claims, func(*jwt.Token) (any, error) { return testSecret, nil }); err != nil {
			t.Fatal(err)
		}
		exp, _ := claims.GetExpirationTime()
		want := 24 * time.Hour
		if body != `{}` {
			want = time.Minute
		}
		if d := time.Until(exp.Time); d > want || d < want-time.Minute {
			t.Fatalf("%s: token expires in %s, want about %s", body, d, want)
		}
	}
	s.do("POST", "/mrd/token", nil).wantStatus(t, http.StatusOK)
	p := s.do("POST", "/mrd/token", `{"expires_in": 0}`).problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("body.expires_in", "min") {
		t.Fatalf("errors %+v", p.Errors)
	}
	s.do("POST", "/mrd/token", `{`).problem(t, http.StatusBadRequest)
	// The daemon's documented call, curl -d '{}', says its JSON is a form.
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	var out TokenResponse
	s.do("POST", "/mrd/token", `{}`, form...).wantStatus(t, http.StatusOK).decode(t, &out)
	if out.Status != 200 || out.Token == "" {
		t.Fatalf("token by form: %+v", out)
	}
	s.do("POST", "/mrd/token", `{"expires_in": 60}`, form...).wantStatus(t, http.StatusOK)
	s.do("POST", "/mrd/token", `expires_in=60`, form...).problem(t, http.StatusBadRequest)
	s.do("POST", "/mrd/token", `{}`, "Content-Type", "text/plain").problem(t, http.StatusUnsupportedMediaType)
	// No body is one answer however it is framed: Content-Length: 0 or an
	// empty chunked body, 415 with a type that is not JSON (the chunked one
	// was refused and the other a 200), 200 with JSON's or none.
	s.do("POST", "/mrd/token", nil, "Content-Type", "text/plain").problem(t, http.StatusUnsupportedMediaType)
	host := "Host: " + strings.TrimPrefix(s.URL, "http://") + "\n"
	for ct, want := range map[string]int{"Content-Type: text/plain\n": 415, "Content-Type: application/json\n": 200, "": 200} {
		conn := dialRaw(t, s, "POST /mrd/token HTTP/1.1\n"+host+ct+"Transfer-Encoding: chunked\n\n0\n\n", 20*time.Second)
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("an empty chunked body, %q: %d, want %d", ct, res.StatusCode, want)
		}
	}
	// The rewrite is the token's alone: a form elsewhere stays a 415.
	s.do("POST", "/mrd/devices", `{"id":"f1","name":"f"}`, append(bearer(t), form...)...).problem(t, http.StatusUnsupportedMediaType)
}

func TestDevicesTokenIssuedByAuthPackage(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "n1")
	tok, err := auth.New(testSecret).Issue(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	s.do("PUT", "/mrd/n1/metrics", metricDoc("x", 1, "int8", 5), "Authorization", "Bearer "+tok).wantStatus(t, http.StatusOK)
	if _, err := auth.New(nil).Issue(time.Minute); err == nil {
		t.Fatal("issued a token without a secret")
	}
}

func TestDevicesCRUD(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	tok := bearer(t)

	r := s.do("POST", "/mrd/devices", map[string]string{"id": "node-01.a_b", "name": "Node 1"}, tok...).wantStatus(t, http.StatusCreated)
	var dev Device
	r.decode(t, &dev)
	if dev.ID != "node-01.a_b" || dev.Name != "Node 1" || dev.CreatedAt.IsZero() || r.Header.Get("Location") != "/mrd/devices/node-01.a_b" {
		t.Fatalf("created %+v, Location %q", dev, r.Header.Get("Location"))
	}
	s.do("POST", "/mrd/devices", map[string]string{"id": "node-01.a_b", "name": "again"}, tok...).problem(t, http.StatusConflict)

	cases := []struct {
		name, body, location, title string
	}{
		{"id missing", `{"name":"x"}`, "body.id", "required"},
		{"id empty", `{"id":"","name":"x"}`, "body.id", "min"},
		{"id too long", `{"id":"` + strings.Repeat("a", 65) + `","name":"x"}`, "body.id", "max"},
		{"id with slash", `{"id":"a/b","name":"x"}`, "body.id", "pattern"},
		{"id with space", `{"id":"a b","name":"x"}`, "body.id", "pattern"},
		{"id reserved", `{"id":"devices","name":"x"}`, "body.id", "reserved"},
		// Dot segments: clients remove them from a path, escaped or not.
		{"id dot", `{"id":".","name":"x"}`, "body.id", "reserved"},
		{"id dot dot", `{"id":"..","name":"x"}`, "body.id", "reserved"},
		{"id reserved and name empty at once", `{"id":"..","name":""}`, "body.name", "min"},
		{"name missing", `{"id":"a"}`, "body.name", "required"},
		{"name empty", `{"id":"a","name":""}`, "body.name", "min"},
		{"name too long", `{"id":"a","name":"` + strings.Repeat("n", 256) + `"}`, "body.name", "max"},
		{"unknown field", `{"id":"a","name":"x","rack":1}`, "body.rack", "unknown"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := s.do("POST", "/mrd/devices", c.body, tok...).problem(t, http.StatusUnprocessableEntity)
			if !p.hasError(c.location, c.title) {
				t.Fatalf("errors %+v lack %s/%s", p.Errors, c.location, c.title)
			}
		})
	}
	s.do("POST", "/mrd/devices", `{"id":`, tok...).problem(t, http.StatusBadRequest)
	// Dots elsewhere in an id are plain characters.
	s.createDevice(t, "...")
	s.createDevice(t, ".a")
	// 64 characters is the longest id.
	s.createDevice(t, strings.Repeat("z", 64))

	s.do("GET", "/mrd/devices/node-01.a_b", nil).wantStatus(t, http.StatusOK).decode(t, &dev)
	if dev.Name != "Node 1" {
		t.Fatalf("got %+v", dev)
	}
	p := s.do("GET", "/mrd/devices/nope", nil).problem(t, http.StatusNotFound)
	// Named as the route names its parameter (the report's is device_id).
	if p.Errors[0].Title != "Host Not Found" || p.Errors[0].Location != "path.id" || p.Errors[0].Source != "id" {
		t.Fatalf("errors %+v", p.Errors)
	}

	s.do("PUT", "/mrd/devices/node-01.a_b", map[string]string{"name": "Renamed"}, tok...).wantStatus(t, http.StatusOK).decode(t, &dev)
	if dev.Name != "Renamed" || dev.UpdatedAt.Before(dev.CreatedAt) {
		t.Fatalf("updated %+v", dev)
	}
	s.do("PUT", "/mrd/devices/nope", map[string]string{"name": "x"}, tok...).problem(t, http.StatusNotFound)
	s.do("PUT", "/mrd/devices/node-01.a_b", map[string]string{"name": ""}, tok...).problem(t, http.StatusUnprocessableEntity)

	// Deleting a device deletes its metrics, current and history, and
	// later reports are 404.
	s.do("PUT", "/mrd/node-01.a_b/metrics", metricDoc("temp", 40, "int8", 60), tok...).wantStatus(t, http.StatusOK)
	s.do("DELETE", "/mrd/devices/node-01.a_b", nil, tok...).wantStatus(t, http.StatusNoContent)
	s.do("DELETE", "/mrd/devices/node-01.a_b", nil, tok...).problem(t, http.StatusNotFound)
	s.do("GET", "/mrd/devices/node-01.a_b", nil).problem(t, http.StatusNotFound)
	s.do("GET", "/mrd/devices/node-01.a_b/metrics", nil).problem(t, http.StatusNotFound)
	s.do("PUT", "/mrd/node-01.a_b/metrics", metricDoc("temp", 40, "int8", 60), tok...).problem(t, http.StatusNotFound)
	var left int
	if err := s.Pool.QueryRow(context.Background(),
		`SELECT (SELECT count(*) FROM device_metrics WHERE device_id = 'node-01.a_b') + (SELECT count(*) FROM device_metrics_latest WHERE device_id = 'node-01.a_b')`).
		Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d metric rows left after delete (%v)", left, err)
	}
	// Re-registering starts from nothing.
	s.createDevice(t, "node-01.a_b")
	if n := len(s.current(t, "node-01.a_b")); n != 0 {
		t.Fatalf("re-registered device has %d metrics", n)
	}
}

// Device ids that are also words of other /mrd routes still report.
func TestDevicesIDsLikeRoutes(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	for _, id := range []string{"metrics", "status", "token", "current", "history"} {
		s.createDevice(t, id)
		s.do("PUT", "/mrd/"+id+"/metrics", metricDoc("x", 1, "int8", 60), bearer(t)...).wantStatus(t, http.StatusOK)
		if _, ok := s.current(t, id)["x"]; !ok {
			t.Fatalf("device %s: report not stored", id)
		}
	}
}

func TestDevicesList(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	for i := 0; i < 7; i++ {
		s.createDevice(t, fmt.Sprintf("d%d", 6-i))
	}
	var page Page[Device]
	r := s.do("GET", "/mrd/devices?size=3&page=2", nil).wantStatus(t, http.StatusOK)
	r.decode(t, &page)
	if page.Total != 7 || len(page.Items) != 3 || page.Items[0].ID != "d3" || page.Items[2].ID != "d5" {
		t.Fatalf("page 2 = %+v", page)
	}
	if !strings.Contains(r.Header.Get("Link"), `rel="next"`) {
		t.Fatalf("Link %q", r.Header.Get("Link"))
	}
	s.do("GET", "/mrd/devices?size=3&page=9", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 7 || len(page.Items) != 0 {
		t.Fatalf("past the end = %+v", page)
	}
	p := s.do("GET", "/mrd/devices?size=0", nil).problem(t, http.StatusUnprocessableEntity)
	if !p.hasError("query.size", "min") {
		t.Fatalf("errors %+v", p.Errors)
	}
}

func TestDevicesStaleMetricsDropOut(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "n1")
	s.do("PUT", "/mrd/n1/metrics", metricDoc("short", 1, "int8", 1), bearer(t)...).wantStatus(t, http.StatusOK)
	s.do("PUT", "/mrd/n1/metrics", metricDoc("long", 2, "int8", 600), bearer(t)...).wantStatus(t, http.StatusOK)
	deadline := time.Now().Add(15 * time.Second)
	for {
		cur := s.current(t, "n1")
		if _, ok := cur["long"]; !ok {
			t.Fatalf("the ttl=600 metric left the current view: %+v", cur)
		}
		if _, ok := cur["short"]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ttl=1 metric never went stale")
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Stale metrics leave the cross-device view too, but stay in history.
	var names Page[MetricSummary]
	s.do("GET", "/mrd/metrics/current", nil).wantStatus(t, http.StatusOK).decode(t, &names)
	if names.Total != 1 || names.Items[0].Name != "long" {
		t.Fatalf("current names = %+v", names)
	}
	var hist Page[HistoryPoint]
	s.do("GET", "/mrd/devices/n1/metrics/short/history", nil).wantStatus(t, http.StatusOK).decode(t, &hist)
	if hist.Total != 1 {
		t.Fatalf("history of the stale metric = %+v", hist)
	}
	// A new report brings it back.
	s.do("PUT", "/mrd/n1/metrics", metricDoc("short", 3, "int8", 60), bearer(t)...).wantStatus(t, http.StatusOK)
	if got := s.current(t, "n1")["short"].Value; got != 3.0 {
		t.Fatalf("short = %v after a new report", got)
	}
}

func TestDevicesConcurrentReports(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	const devices, clients, perClient = 3, 40, 10
	for d := 0; d < devices; d++ {
		s.createDevice(t, fmt.Sprintf("c%d", d))
	}
	tok := bearer(t)
	var wg sync.WaitGroup
	errs := make(chan string, clients*perClient)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; i < perClient; i++ {
				// Every client reports its own metric (the last value is
				// i = perClient-1) and a shared one, also to an unknown device.
				dev := fmt.Sprintf("c%d", c%devices)
				if r := s.do("PUT", "/mrd/"+dev+"/metrics", metricDoc(fmt.Sprintf("own%02d", c), i, "int32", 300), tok...); r.Status != 200 {
					errs <- fmt.Sprintf("own: %d %s", r.Status, r.Body)
				}
				if r := s.do("PUT", "/mrd/"+dev+"/metrics", metricDoc("shared", c, "int32", 300), tok...); r.Status != 200 {
					errs <- fmt.Sprintf("shared: %d %s", r.Status, r.Body)
				}
				if r := s.do("PUT", "/mrd/ghost/metrics", metricDoc("x", c, "int32", 300), tok...); r.Status != 404 {
					errs <- fmt.Sprintf("ghost: %d %s", r.Status, r.Body)
				}
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	var stored int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM device_metrics`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != 2*clients*perClient {
		t.Fatalf("stored %d rows, want %d", stored, 2*clients*perClient)
	}
	for d := 0; d < devices; d++ {
		cur := s.current(t, fmt.Sprintf("c%d", d))
		for c := d; c < clients; c += devices {
			if got := cur[fmt.Sprintf("own%02d", c)].Value; got != float64(perClient-1) {
				t.Errorf("device c%d own%02d = %v, want the last report %d", d, c, got, perClient-1)
			}
		}
		if _, ok := cur["shared"]; !ok {
			t.Errorf("device c%d lacks shared", d)
		}
	}
	// Reports were coalesced: fewer commits than requests (the batch size
	// histogram counts commits, and the rows they stored: not the
	// unknown device's).
	var batches, rows float64
	mfs, err := s.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "telemetry_batch_items" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == "device_metrics" {
				batches, rows = float64(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum()
			}
		}
	}
	if rows != float64(stored) || batches == 0 || batches >= float64(stored) {
		t.Fatalf("batch histogram: %v batches, %v rows", batches, rows)
	}
	t.Logf("%v rows in %v commits", rows, batches)
}

func TestDevicesCurrentMetricNames(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	tok := bearer(t)
	for _, d := range []string{"a", "b", "c"} {
		s.createDevice(t, d)
	}
	s.do("PUT", "/mrd/a/metrics", metricDoc("temp", -5, "int32", 60), tok...).wantStatus(t, http.StatusOK)
	s.do("PUT", "/mrd/b/metrics", metricDoc("temp", 70, "int32", 60), tok...).wantStatus(t, http.StatusOK)
	s.do("PUT", "/mrd/c/metrics", metricDoc("temp", 12.5, "double", 60), tok...).wantStatus(t, http.StatusOK)
	s.do("PUT", "/mrd/a/metrics", metricDoc("os", "linux", "string", 60), tok...).wantStatus(t, http.StatusOK)
	// A newer report replaces the device's value.
	s.do("PUT", "/mrd/b/metrics", metricDoc("temp", 30, "int32", 60), tok...).wantStatus(t, http.StatusOK)

	var page struct {
		Items []struct {
			Name    string   `json:"name"`
			Devices int      `json:"devices"`
			Min     *float64 `json:"min"`
			Max     *float64 `json:"max"`
		} `json:"items"`
		Total int `json:"total"`
	}
	r := s.do("GET", "/mrd/metrics/current", nil).wantStatus(t, http.StatusOK)
	r.decode(t, &page)
	var raw struct {
		Items []map[string]any `json:"items"`
	}
	r.decode(t, &raw)
	if page.Total != 2 || page.Items[0].Name != "os" || page.Items[1].Name != "temp" || page.Items[1].Devices != 3 {
		t.Fatalf("current names = %s", r.Body)
	}
	if raw.Items[0]["min"] != nil || raw.Items[0]["max"] != nil || raw.Items[1]["min"] != -5.0 || raw.Items[1]["max"] != 30.0 {
		t.Fatalf("min/max = %s", r.Body)
	}
	s.do("GET", "/mrd/metrics/current?page=3&size=1", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 2 || len(page.Items) != 0 {
		t.Fatalf("past the end: %+v", page)
	}
}

// TestDevicesHistoryTiesPage: points of one time (reports stamped in the
// same microsecond) come ordered by value, so that following the pages
// gives each once. Ordered by time alone, a page size of 7 over 200 points
// at 4 times gave 32 of them twice and 32 never (found by an audit).
// TestCreateDeviceLocationUnderBasePath: the new device's Location is
// under BASE_PATH, as the lists' links are; without it, a client behind the
// proxy that strips the prefix followed it to a 404 (found by an audit).
func TestCreateDeviceLocationUnderBasePath(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t, func(c *config.Config) { c.BasePath = "/telemetry" })
	r := s.do("POST", "/mrd/devices", `{"id": "n1", "name": "x"}`, bearer(t)...).wantStatus(t, http.StatusCreated)
	if got := r.Header.Get("Location"); got != "/telemetry/mrd/devices/n1" {
		t.Fatalf("Location %q", got)
	}
	s.do("GET", strings.TrimPrefix(r.Header.Get("Location"), "/telemetry"), nil, bearer(t)...).wantStatus(t, http.StatusOK)
}

func TestDevicesHistoryTiesPage(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "tie")
	at := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	rng := mrand.New(mrand.NewPCG(1, 2))
	for _, i := range rng.Perm(200) {
		if _, err := s.Pool.Exec(context.Background(), `INSERT INTO device_metrics (time, device_id, name, type, value_num, units, slope, ttl)
			VALUES ($1, 'tie', 'load', 'double', $2, 'u', 'both', 60)`, at.Add(time.Duration(i/50)*time.Second), float64(i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, accept := range []string{"application/json", "application/x-ndjson"} {
		var got []HistoryPoint
		if accept == "application/json" {
			for page := 1; ; page++ {
				var p Page[HistoryPoint]
				s.do("GET", fmt.Sprintf("/mrd/devices/tie/metrics/load/history?from=2024-05-01T10:00:00Z&to=2024-05-01T11:00:00Z&size=7&page=%d", page),
					nil).wantStatus(t, http.StatusOK).decode(t, &p)
				if p.Total != 200 {
					t.Fatalf("total %d", p.Total)
				}
				got = append(got, p.Items...)
				if len(p.Items) < 7 {
					break
				}
			}
		} else {
			r := s.do("GET", "/mrd/devices/tie/metrics/load/history?from=2024-05-01T10:00:00Z&to=2024-05-01T11:00:00Z", nil, "Accept", accept)
			for _, line := range strings.Split(strings.TrimSpace(string(r.wantStatus(t, http.StatusOK).Body)), "\n") {
				var p HistoryPoint
				if err := json.Unmarshal([]byte(line), &p); err != nil {
					t.Fatal(err)
				}
				got = append(got, p)
			}
		}
		if len(got) != 200 {
			t.Fatalf("%s: %d points", accept, len(got))
		}
		for i, p := range got {
			if *p.Value != float64(i) || !p.Time.Equal(at.Add(time.Duration(i/50)*time.Second)) {
				t.Fatalf("%s: point %d is %v at %s, want %d at %s", accept, i, *p.Value, p.Time, i, at.Add(time.Duration(i/50)*time.Second))
			}
		}
	}
}

func TestDevicesHistory(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "h1")
	s.createDevice(t, "empty")
	// Points every minute from 10:00 to 10:14 (values 0..14), written
	// straight to the table to control their times, plus one string.
	base := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	for i := 0; i < 15; i++ {
		if _, err := s.Pool.Exec(context.Background(), `INSERT INTO device_metrics (time, device_id, name, type, value_num, units, slope, ttl)
			VALUES ($1, 'h1', 'load', 'double', $2, 'u', 'both', 60)`, base.Add(time.Duration(i)*time.Minute), float64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Pool.Exec(context.Background(), `INSERT INTO device_metrics (time, device_id, name, type, value_text, units, slope, ttl)
		VALUES ($1, 'h1', 'os', 'string', 'linux', 'u', 'zero', 60)`, base); err != nil {
		t.Fatal(err)
	}
	window := "from=2024-05-01T10:00:00Z&to=2024-05-01T10:15:00Z"

	var raw Page[HistoryPoint]
	s.do("GET", "/mrd/devices/h1/metrics/load/history?"+window+"&size=100", nil).wantStatus(t, http.StatusOK).decode(t, &raw)
	if raw.Total != 15 || len(raw.Items) != 15 || *raw.Items[0].Value != 0 || *raw.Items[14].Value != 14 ||
		!raw.Items[3].Time.Equal(base.Add(3*time.Minute)) || raw.Items[0].Avg != nil {
		t.Fatalf("raw history = %+v", raw)
	}
	// to is exclusive, from inclusive.
	s.do("GET", "/mrd/devices/h1/metrics/load/history?from=2024-05-01T10:05:00Z&to=2024-05-01T10:10:00Z", nil).decode(t, &raw)
	if raw.Total != 5 || *raw.Items[0].Value != 5 || *raw.Items[4].Value != 9 {
		t.Fatalf("window history = %+v", raw)
	}
	// Pages of raw points.
	s.do("GET", "/mrd/devices/h1/metrics/load/history?"+window+"&size=4&page=4", nil).decode(t, &raw)
	if raw.Total != 15 || len(raw.Items) != 3 || *raw.Items[0].Value != 12 {
		t.Fatalf("page 4 = %+v", raw)
	}
	s.do("GET", "/mrd/devices/h1/metrics/load/history?"+window+"&size=4&page=9", nil).decode(t, &raw)
	if raw.Total != 15 || len(raw.Items) != 0 {
		t.Fatalf("past the end = %+v", raw)
	}

	var buckets Page[HistoryPoint]
	s.do("GET", "/mrd/devices/h1/metrics/load/history?"+window+"&bucket=5m", nil).wantStatus(t, http.StatusOK).decode(t, &buckets)
	if buckets.Total != 3 || len(buckets.Items) != 3 {
		t.Fatalf("buckets = %+v", buckets)
	}
	for i, b := range buckets.Items {
		lo := float64(5 * i)
		if !b.Time.Equal(base.Add(time.Duration(5*i)*time.Minute)) || *b.Count != 5 || *b.Min != lo || *b.Max != lo+4 || *b.Avg != lo+2 || b.Value != nil ||
			b.P95 == nil || *b.P95 != lo+4 {
			t.Fatalf("bucket %d = %+v", i, b)
		}
	}
	s.do("GET", "/mrd/devices/h1/metrics/load/history?"+window+"&bucket=1h", nil).decode(t, &buckets)
	// p95 of 0..14: the 15th of 15 values (nearest rank ceil(0.95 * 15) = 15).
	if buckets.Total != 1 || *buckets.Items[0].Count != 15 || *buckets.Items[0].Avg != 7 || *buckets.Items[0].P95 != 14 {
		t.Fatalf("hour bucket = %+v", buckets)
	}
	// p95 is nearest rank, not the max: of 0..19 the 19th value, 18.
	for i := 0; i < 20; i++ {
		if _, err := s.Pool.Exec(context.Background(), `INSERT INTO device_metrics (time, device_id, name, type, value_num, units, slope, ttl)
			VALUES ($1, 'h1', 'lat', 'double', $2, 'u', 'both', 60)`, base.Add(time.Duration(i)*time.Second), float64(19-i)); err != nil {
			t.Fatal(err)
		}
	}
	s.do("GET", "/mrd/devices/h1/metrics/lat/history?"+window+"&bucket=1h", nil).wantStatus(t, http.StatusOK).decode(t, &buckets)
	if buckets.Total != 1 || *buckets.Items[0].P95 != 18 || *buckets.Items[0].Max != 19 {
		t.Fatalf("p95 of 0..19 = %+v", buckets.Items)
	}
	s.do("GET", "/mrd/devices/h1/metrics/load/history?"+window+"&bucket=5m&size=1&page=5", nil).decode(t, &buckets)
	if buckets.Total != 3 || len(buckets.Items) != 0 {
		t.Fatalf("buckets past the end = %+v", buckets)
	}

	// Default window: the last 24 hours (those points are older).
	s.do("GET", "/mrd/devices/h1/metrics/load/history", nil).decode(t, &raw)
	if raw.Total != 0 || raw.Items == nil {
		t.Fatalf("default window = %+v", raw)
	}
	// String metrics have no numeric history; unknown names are empty too.
	for _, name := range []string{"os", "nothing"} {
		s.do("GET", "/mrd/devices/h1/metrics/"+name+"/history?"+window, nil).wantStatus(t, http.StatusOK).decode(t, &raw)
		if raw.Total != 0 {
			t.Fatalf("%s history = %+v", name, raw)
		}
	}
	s.do("GET", "/mrd/devices/empty/metrics/load/history", nil).wantStatus(t, http.StatusOK)
	s.do("GET", "/mrd/devices/nope/metrics/load/history", nil).problem(t, http.StatusNotFound)
	// No reported name is longer than 255 characters: a longer one is a
	// 422, not an empty page whose links clients could not read (found by
	// an audit).
	if p := s.do("GET", "/mrd/devices/h1/metrics/"+strings.Repeat("n", 256)+"/history", nil).problem(t, http.StatusUnprocessableEntity); !p.hasError("path.name", "max") {
		t.Errorf("a 256-character metric name: %+v", p.Errors)
	}
	s.do("GET", "/mrd/devices/h1/metrics/"+strings.Repeat("n", 255)+"/history", nil).wantStatus(t, http.StatusOK)

	cases := []struct {
		query, location, title string
	}{
		{"bucket=x", "query.bucket", "format"},
		{"bucket=0s", "query.bucket", "format"},
		{"bucket=500ms", "query.bucket", "format"},
		{"bucket=9000h", "query.bucket", "format"},
		{"from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z", "query.from", "range"},
		{"from=yesterday", "query.from", "format"},
		{"size=101", "query.size", "max"},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			p := s.do("GET", "/mrd/devices/h1/metrics/load/history?"+c.query, nil).problem(t, http.StatusUnprocessableEntity)
			if !p.hasError(c.location, c.title) {
				t.Fatalf("errors %+v lack %s/%s", p.Errors, c.location, c.title)
			}
		})
	}
	// The window's and the bucket's rules are listed with the others, at
	// once (they used to be checked only once the others had passed).
	p := s.do("GET", "/mrd/devices/h1/metrics/load/history?bucket=0s&size=0&from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z",
		nil).problem(t, http.StatusUnprocessableEntity)
	if len(p.Errors) != 3 || !p.hasError("query.bucket", "format") || !p.hasError("query.size", "min") ||
		!p.hasError("query.from", "range") {
		t.Fatalf("errors %+v, want bucket, size and from", p.Errors)
	}
}

func TestDevicesCurrentMetricsPages(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "p1")
	for i := 0; i < 5; i++ {
		s.do("PUT", "/mrd/p1/metrics", metricDoc(fmt.Sprintf("m%d", 4-i), i, "int8", 60), bearer(t)...).wantStatus(t, http.StatusOK)
	}
	var page Page[currentMetric]
	s.do("GET", "/mrd/devices/p1/metrics?size=2&page=2", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 5 || len(page.Items) != 2 || page.Items[0].Name != "m2" || page.Items[1].Name != "m3" {
		t.Fatalf("page 2 = %+v", page)
	}
	s.do("GET", "/mrd/devices/p1/metrics?size=2&page=4", nil).wantStatus(t, http.StatusOK).decode(t, &page)
	if page.Total != 5 || len(page.Items) != 0 {
		t.Fatalf("past the end = %+v", page)
	}
	p := s.do("GET", "/mrd/devices/p9/metrics", nil).problem(t, http.StatusNotFound)
	if p.Errors[0].Title != "Host Not Found" || p.Errors[0].Detail != "Unknown host: p9" || p.Errors[0].Location != "path.id" {
		t.Fatalf("errors %+v", p.Errors)
	}
}

func TestDevicesOpenAPI(t *testing.T) {
	t.Parallel()
	doc := Spec()
	put := doc.Paths["/mrd/{device_id}/metrics"].Put
	if put == nil || len(put.Security) == 0 {
		t.Fatal("PUT /mrd/{device_id}/metrics lacks security")
	}
	if _, ok := put.RequestBody.Content["application/octet-stream"]; ok || put.RequestBody.Content["application/json"] == nil ||
		put.RequestBody.Content["application/json"].Schema.Ref != "#/components/schemas/MetricReport" {
		t.Fatalf("request body = %+v", put.RequestBody.Content)
	}
	if doc.Components.SecuritySchemes[securityBearer] == nil || doc.Components.SecuritySchemes[securityCookie] == nil {
		t.Fatal("security schemes missing")
	}
	if sec := doc.Paths["/mrd/status"].Get.Security; len(sec) != 1 || len(sec[0]) != 0 {
		t.Fatal("/mrd/status must need no token")
	}
	b, _ := json.Marshal(doc.Components.Schemas.Map()["MetricReport"])
	if !strings.Contains(string(b), `"additionalProperties":true`) {
		t.Fatalf("MetricReport schema = %s", b)
	}
}

// TestHistoryPointSchemaIsExact: the document describes a history item as
// exactly one of a raw point {time, value} and a bucket {time, avg, min,
// max, p95, count}, each with every field required, so that a generated
// client reads value, or p95 and count, without a check for absence (the
// TypeScript types had seven optional fields, and {time} alone passed).
// The real answers match it; an item of neither shape, or of both, is
// refused.
func TestHistoryPointSchemaIsExact(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "hp1")
	for _, v := range []float64{40, 42} {
		s.do("PUT", "/mrd/hp1/metrics", metricDoc("temp", v, "float", 600), bearer(t)...).wantStatus(t, http.StatusOK)
	}
	d := documented()
	r := httptest.NewRequest(http.MethodGet, "/mrd/devices/hp1/metrics/temp/history", nil)
	check := func(body string, ok bool) {
		t.Helper()
		a := answer{status: http.StatusOK, header: http.Header{"Content-Type": {"application/json"}},
			body: &keptBody{kept: []byte(body)}}
		if got := d.offSchema(r, a); (got == "") != ok {
			t.Errorf("%s: offSchema = %q, want the item %s", body, got, map[bool]string{true: "taken", false: "refused"}[ok])
		}
	}
	raw := s.do("GET", "/mrd/devices/hp1/metrics/temp/history", nil).wantStatus(t, http.StatusOK)
	buckets := s.do("GET", "/mrd/devices/hp1/metrics/temp/history?bucket=1h", nil).wantStatus(t, http.StatusOK)
	for _, b := range []response{raw, buckets} {
		var p Page[map[string]any]
		b.decode(t, &p)
		if p.Total == 0 {
			t.Fatalf("no history: %s", b.Body)
		}
		check(string(b.Body), true)
	}
	page := func(item string) string { return `{"items":[` + item + `],"total":1,"page":1,"size":50}` }
	const at = `"time":"2026-12-05T10:00:00Z"`
	for item, ok := range map[string]bool{
		`{` + at + `,"value":42}`:                                    true,
		`{` + at + `,"avg":41,"min":40,"max":42,"p95":42,"count":2}`: true,
		`{` + at + `}`:                                                         false, // neither shape
		`{` + at + `,"value":42,"count":1}`:                                    false, // both
		`{` + at + `,"avg":41,"min":40,"max":42,"count":2}`:                    false, // no p95
		`{` + at + `,"avg":41,"min":40,"max":42,"p95":42,"count":2,"value":1}`: false,
		`{"value":42}`: false, // no time
	} {
		check(page(item), ok)
	}
}

// A history bound between two microseconds (points are stored to the
// microsecond) keeps [from, to): from rounds up, and to, exclusive, up as
// well (a point before to.0000015 is one at or before .000001); raw points,
// buckets and the NDJSON export alike.
func TestDevicesHistorySubMicrosecondBounds(t *testing.T) {
	t.Parallel()
	s := newDevicesServer(t)
	s.createDevice(t, "edge")
	at := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	for i := range 3 { // at, at+1µs, at+2µs
		if _, err := s.Pool.Exec(context.Background(), `INSERT INTO device_metrics (time, device_id, name, type, value_num, units, slope, ttl)
			VALUES ($1, 'edge', 'load', 'double', $2, 'u', 'both', 60)`, at.Add(time.Duration(i)*time.Microsecond), float64(i)); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		from, to string
		want     []float64
	}{
		{"10:00:00Z", "10:00:01Z", []float64{0, 1, 2}},
		{"10:00:00.0000005Z", "10:00:01Z", []float64{1, 2}},
		{"10:00:00.000000001Z", "10:00:01Z", []float64{1, 2}},
		{"10:00:00.000001Z", "10:00:01Z", []float64{1, 2}},
		{"10:00:00.000001001Z", "10:00:01Z", []float64{2}},
		{"10:00:00.0000010000001Z", "10:00:01Z", []float64{2}}, // Go's parse keeps nine digits
		{"10:00:00.0000010000000Z", "10:00:01Z", []float64{1, 2}},
		{"10:00:00Z", "10:00:00.0000010000001Z", []float64{0, 1}},
		{"10:00:00Z", "10:00:00.0000015Z", []float64{0, 1}},
		{"10:00:00Z", "10:00:00.000001Z", []float64{0}},
		{"10:00:00Z", "10:00:00.000001999Z", []float64{0, 1}},
		{"10:00:00.0000005Z", "10:00:00.0000015Z", []float64{1}},
		{"10:00:00.0000005Z", "10:00:00.0000009Z", nil},
	} {
		q := "from=2024-05-01T" + c.from + "&to=2024-05-01T" + c.to
		var raw Page[HistoryPoint]
		s.do("GET", "/mrd/devices/edge/metrics/load/history?"+q, nil).wantStatus(t, http.StatusOK).decode(t, &raw)
		var got []float64
		for _, p := range raw.Items {
			got = append(got, *p.Value)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) || raw.Total != int64(len(c.want)) {
			t.Errorf("%s: points %v (total %d), want %v", q, got, raw.Total, c.want)
		}
		var buckets Page[HistoryPoint]
		s.do("GET", "/mrd/devices/edge/metrics/load/history?bucket=1h&"+q, nil).wantStatus(t, http.StatusOK).decode(t, &buckets)
		var n int64
		for _, b := range buckets.Items {
			n += *b.Count
		}
		if n != int64(len(c.want)) {
			t.Errorf("%s: buckets count %d points, want %d", q, n, len(c.want))
		}
		nd := s.do("GET", "/mrd/devices/edge/metrics/load/history?"+q, nil, "Accept", "application/x-ndjson").wantStatus(t, http.StatusOK)
		if lines := strings.Count(string(nd.Body), "\n"); lines != len(c.want) {
			t.Errorf("%s: NDJSON has %d lines, want %d", q, lines, len(c.want))
		}
	}
}

// While the JWT secret is rotated (JWT_PREVIOUS_SECRET), a token signed
// with the previous secret still reports and, with AUTH_WRITES, writes;
// each such request is counted in /metrics, a token of the current secret
// is not, and a token of any other secret is still a 401.
func TestPreviousJWTSecretDuringRotation(t *testing.T) {
	t.Parallel()
	previous := []byte("device-metrics-previous-secret-0123456789")
	s := newDevicesServer(t, func(c *config.Config) { c.JWTPreviousSecret, c.AuthWrites = previous, true })
	s.createDevice(t, "n1")
	live := jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()}
	old := []string{"Authorization", "Bearer " + signed(t, jwt.SigningMethodHS256, previous, live)}
	other := []string{"Authorization", "Bearer " + signed(t, jwt.SigningMethodHS256, []byte("some-other-secret-0123456789abcdef"), live)}
	used := func() float64 {
		n, ok := metricValue(s, "telemetry_jwt_previous_secret_total")
		if !ok {
			t.Fatal("/metrics has no telemetry_jwt_previous_secret_total")
		}
		return n
	}
	if n := used(); n != 0 {
		t.Fatalf("%v uses of the previous secret before any", n)
	}
	s.do("PUT", "/mrd/n1/metrics", metricDoc("cpu", 1.5, "float", 60), old...).wantStatus(t, http.StatusOK)
	s.do("PUT", "/mrd/n1/metrics", metricDoc("cpu", 2.5, "float", 60), old...).wantStatus(t, http.StatusOK)
	s.do("POST", "/flows", `[{"src_app":"a","dest_app":"b","vpc_id":"v","bytes_tx":1,"bytes_rx":1,"hour":1}]`, old...).wantStatus(t, http.StatusCreated)
	s.do("PUT", "/mrd/n1/metrics", metricDoc("cpu", 3.5, "float", 60), bearer(t)...).wantStatus(t, http.StatusOK)
	s.do("PUT", "/mrd/n1/metrics", metricDoc("cpu", 4.5, "float", 60), other...).wantStatus(t, http.StatusUnauthorized)
	if n := used(); n != 3 {
		t.Fatalf("%v requests counted with the previous secret, want 3", n)
	}
	var stored int
	if err := s.Pool.QueryRow(context.Background(), `SELECT count(*) FROM device_metrics`).Scan(&stored); err != nil || stored != 3 {
		t.Fatalf("%d reports stored (%v), want 3", stored, err)
	}
}
