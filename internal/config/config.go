// Package config reads the service's configuration from environment
// variables. Every variable has a safe default except secrets and the
// database URL; Vars lists them all for --help and the README.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration of the service.
type Config struct {
	DatabaseURL  string
	DatabaseWait time.Duration
	// DatabaseExecMode is how pgx sends queries (pgx's QueryExecMode names);
	// MigrateDatabaseURL, when set, is the database `migrate` uses instead
	// of DatabaseURL (a direct connection past a transaction pooler).
	DatabaseExecMode   string
	MigrateDatabaseURL string

	ListenAddr string
	// TLSCertFile and TLSKeyFile, when set (both or neither), make
	// LISTEN_ADDR serve HTTPS with the certificate chain and key in these
	// PEM files, read again when they change (internal/tlsfiles).
	TLSCertFile, TLSKeyFile string
	// PprofAddr, when set, is where serve answers net/http/pprof (apart
	// from the API, for profiling under load).
	PprofAddr string
	// BasePath is the path prefix a reverse proxy serves the API under
	// ("" or "/telemetry"; the proxy strips it before forwarding).
	BasePath string
	// TrustedOrigins are origins (scheme://host[:port]) whose browser
	// pages may write although they are not the request's Host: the
	// public origin of a proxy that rewrites Host.
	TrustedOrigins []string
	// AllowedHosts are the names a request's Host may carry on
	// LISTEN_ADDR: ALLOWED_HOSTS, else its default for that address
	// (hosts.go); allowedHostsVar is ALLOWED_HOSTS itself, nil when unset.
	AllowedHosts    Hosts
	allowedHostsVar *Hosts

	LogLevel     slog.Level
	MaxBodyBytes int64
	// EventsMaxBodyBytes bounds the events' register and commit bodies,
	// which are parsed whole and stored as one JSON value.
	EventsMaxBodyBytes int64
	// BodyMemoryBytes is how many bytes of large request bodies (over
	// 1 MiB) are held at once; at least MaxBodyBytes.
	BodyMemoryBytes int64
	// BodyMinRate is how many bytes a second a body must keep arriving
	// at while it holds room in BodyMemoryBytes (0: no such floor).
	BodyMinRate     int64
	FlowsMaxBatch   int
	ShutdownTimeout time.Duration
	// ExportsMax is how many CSV and NDJSON exports one instance streams
	// at a time (each holds a database connection while its client reads).
	ExportsMax int
	// ExportMinRate is how many bytes a second an export's client must
	// take its rows at, over the time the export waits on it (0: no such
	// floor; WRITE_TIMEOUT alone bounds a stall).
	ExportMinRate int64

	// DatabaseReadURL names a streaming replica for the reads that
	// tolerate lag, used while it is at most ReadMaxLag behind.
	DatabaseReadURL string
	ReadMaxLag      time.Duration

	// HTTP timeouts (see Vars) and the deadline of each request's database
	// work (0: none).
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	DBTimeout         time.Duration

	// AuthWrites and AuthReads require a JWT on every write or read
	// operation; MetricsToken, when set, is the Bearer token /metrics wants.
	AuthWrites   bool
	AuthReads    bool
	MetricsToken string

	// Device metrics (/mrd): the HS256 secret for JWTs (from JWT_SECRET or
	// the file named by JWT_SECRET_FILE), whether POST /mrd/token issues
	// tokens, and how reports are coalesced into commits.
	JWTSecret    []byte
	jwtSecretVar string // the variable JWTSecret came from, for messages
	// JWTPreviousSecret (JWT_PREVIOUS_SECRET or JWT_PREVIOUS_SECRET_FILE)
	// also verifies tokens while JWTSecret replaces it; nil otherwise.
	JWTPreviousSecret    []byte
	jwtPreviousVar       string
	EnableTokenEndpoint  bool
	DeviceMetricsWriters int
	DeviceMetricsBatch   int
	// Measurements and self-profiling.
	MeasurementsMaxBatch int
	SelfProfile          bool
	SelfProfileSample    float64
	SelfProfileExclude   []string
	SelfProfileDetail    int

	// MeasurementsKeptCellsBytes bounds the sealed cells the grouped view
	// keeps in memory (0: none kept).
	MeasurementsKeptCellsBytes int64

	SelfSampleInterval time.Duration

	// IdempotencyTTL is how long the answer of a write sent with an
	// Idempotency-Key is kept for repeats.
	IdempotencyTTL time.Duration
	// MaxTimeAhead is how far past the server's clock the times clients
	// give may be (0: up to 9999-12-31): rows dated ahead would outlive
	// every retention.
	MaxTimeAhead time.Duration

	// Data lifecycle (docs/lifecycle.md): how long each kind of data is
	// kept (0: forever), when TimescaleDB chunks are compressed, and how
	// often serve runs the maintenance pass (0: never).
	MeasurementsRetention   time.Duration
	DeviceMetricsRetention  time.Duration
	RuntimeSamplesRetention time.Duration
	EventsRetention         time.Duration
	FlowsRetention          time.Duration
	RollupsRetention        time.Duration
	CompressAfter           time.Duration
	MaintenanceInterval     time.Duration
	SealInterval            time.Duration
}

// Var documents one environment variable and says how to read it into a
// Config; Load walks the table, so a variable is declared in one place.
type Var struct {
	Name, Default, Doc string
	// set parses the (trimmed) value, the default when unset; nil for the
	// variables read by hand (JWT_SECRET, JWT_SECRET_FILE, GOMEMLIMIT).
	set func(c *Config, v string) error
}

// Vars is every variable the service reads, in the order --help prints them.
var Vars = []Var{
	{"DATABASE_URL", "", "PostgreSQL connection URL (postgres://user:pass@host:port/db). Pool settings such as pool_max_conns may be added as URL parameters. Required.",
		str(func(c *Config) *string { return &c.DatabaseURL })},
	{"DATABASE_WAIT", "60s", "how long migrate and serve wait for the database to accept connections at start (a container starting beside it), retrying and logging each attempt; 0 tries once. A wrong password or database name fails at once",
		duration(func(c *Config) *time.Duration { return &c.DatabaseWait }, 0, "0 (try once) or a duration such as 60s")},
	{"DATABASE_EXEC_MODE", "cache_describe", "how queries are sent (pgx's query exec modes): cache_describe (default: no named prepared statements, so PgBouncer in transaction pooling mode works with the URL as written), cache_statement (named prepared statements: fastest, direct connections or session pooling only), describe_exec (direct connections or session pooling only: through transaction pooling a query may run another client's statement), exec or simple_protocol. A default_query_exec_mode parameter in DATABASE_URL wins",
		func(c *Config, v string) error {
			switch v {
			case "cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol":
				c.DatabaseExecMode = v
				return nil
			}
			return errors.New("must be cache_statement, cache_describe, describe_exec, exec or simple_protocol")
		}},
	{"MIGRATE_DATABASE_URL", "", "database URL `migrate` uses instead of DATABASE_URL: point it past a transaction pooler (straight at the primary, or through session pooling) when DATABASE_URL goes through PgBouncer. Unset: DATABASE_URL",
		str(func(c *Config) *string { return &c.MigrateDatabaseURL })},
	{"DATABASE_READ_URL", "", "PostgreSQL URL of a streaming replica of DATABASE_URL (hot standby). The read-only GET endpoints that tolerate a little lag (flows, states, device lists, current metrics and history, measurements, collection figures; see docs/scaling.md) read from it while it is at most READ_MAX_LAG behind, and from DATABASE_URL otherwise. Unset: every query goes to DATABASE_URL",
		str(func(c *Config) *string { return &c.DatabaseReadURL })},
	{"READ_MAX_LAG", "5s", "how far behind the primary DATABASE_READ_URL may be and still serve reads (measured from WAL positions every second, or four times per READ_MAX_LAG when it is under 4s); past it, or when the replica is unreachable, reads go to DATABASE_URL",
		duration(func(c *Config) *time.Duration { return &c.ReadMaxLag }, 100*time.Millisecond, "a duration of at least 100ms such as 5s")},
	{"LISTEN_ADDR", ":8080", "address the HTTP server listens on",
		address(func(c *Config) *string { return &c.ListenAddr })},
	{"TLS_CERT_FILE", "", "PEM file of the certificate chain (the server's certificate first) LISTEN_ADDR serves HTTPS with, HTTP/1.1 only; with TLS_KEY_FILE, both or neither. Read again when it changes (a renewed certificate is served without a restart). Unset: plain HTTP, for a reverse proxy or load balancer that terminates TLS",
		str(func(c *Config) *string { return &c.TLSCertFile })},
	{"TLS_KEY_FILE", "", "PEM file of TLS_CERT_FILE's private key",
		str(func(c *Config) *string { return &c.TLSKeyFile })},
	{"PPROF_ADDR", "", "when set (e.g. 127.0.0.1:6060), serve answers Go's profiler (/debug/pprof/) on this address, apart from the API and without authentication: bind it to loopback. Unset: no profiler",
		address(func(c *Config) *string { return &c.PprofAddr })},
	{"ALLOWED_HOSTS", "", "comma list of the names clients reach the service by, which a request's Host must carry (421 otherwise): host names (telemetry.example.com), *.example.com for every name under example.com, each with an optional :port that Host must then carry; * for any host. " +
		"An IP address as Host always passes (DNS rebinding needs a name; probes use addresses). It keeps pages of other sites from reaching the service through a name of theirs that resolves to its address (DNS rebinding). " +
		"Unset: localhost when LISTEN_ADDR is a loopback address (the same rule for PPROF_ADDR), any host otherwise",
		func(c *Config, v string) error {
			if v == "" {
				return nil
			}
			h, err := parseHosts(v)
			if err != nil {
				return err
			}
			c.allowedHostsVar = &h
			return nil
		}},
	{"TRUSTED_ORIGINS", "", "comma list of origins (scheme://host[:port], such as https://telemetry.example.com) whose browser pages may write here although they are not the request's Host: the public origin of a reverse proxy that rewrites Host (nginx's default) when browsers reach it over plain HTTP, where they send Origin but no Sec-Fetch-Site. Unset: a browser's write must come from the request's own origin",
		func(c *Config, v string) error {
			for _, o := range strings.Split(v, ",") {
				if o = strings.TrimSpace(o); o == "" {
					continue
				}
				origin, ok := canonicalOrigin(o)
				if !ok {
					return errors.New("must be origins such as https://telemetry.example.com (http or https, host and port, no path)")
				}
				c.TrustedOrigins = append(c.TrustedOrigins, origin)
			}
			return nil
		}},
	{"BASE_PATH", "", "path prefix under which a reverse proxy serves the API and strips it before forwarding (e.g. /telemetry); the OpenAPI document's servers URL. The docs page and the dashboard work under any prefix without it",
		func(c *Config, v string) error {
			v = strings.TrimRight(v, "/")
			if v != "" && (!strings.HasPrefix(v, "/") || !basePathRe.MatchString(v)) {
				// It is written into Link and Location headers and the
				// document's servers URL: a path of URL-safe characters
				// only (it took <, >, quotes and control characters; found
				// by the security review).
				return errors.New("must be a path starting with /, such as /telemetry, of letters, digits and - . _ ~ / % only")
			}
			c.BasePath = v
			return nil
		}},
	{"LOG_LEVEL", "info", "debug, info, warn or error",
		func(c *Config, v string) error {
			// slog's own message repeated the value and listed no level.
			if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
				return errors.New("must be debug, info, warn or error")
			}
			return nil
		}},
	{"MAX_BODY_BYTES", "67108864", "largest request body accepted, in bytes (larger: 413); the default fits a full batch of 100,000 flows with long names",
		positive(func(c *Config) *int64 { return &c.MaxBodyBytes })},
	{"EVENTS_MAX_BODY_BYTES", "8388608", "largest body of an events register or commit, in bytes (larger: 413; MAX_BODY_BYTES when that is smaller): " +
		"a run's body is parsed whole and stored as one JSON value, so it gets a smaller limit than the batches",
		positive(func(c *Config) *int64 { return &c.EventsMaxBodyBytes })},
	{"BODY_MEMORY_BYTES", "67108864", "bytes of request bodies over 1 MiB held in memory at once (never less than MAX_BODY_BYTES): " +
		"past its first MiB, a body that does not fit waits for others to be answered, at most READ_TIMEOUT, then 503; a body without Content-Length counts what it has read and one more MiB, taken as it arrives (503 when there is no room)",
		positive(func(c *Config) *int64 { return &c.BodyMemoryBytes })},
	{"BODY_MIN_RATE", "262144", "bytes a second a body must keep arriving at once it holds room in BODY_MEMORY_BYTES (it may fall 1 MiB behind); " +
		"slower is a 408, so that a stalled client cannot keep the other large bodies waiting. At most 16777216 (16 MiB/s). 0 turns it off",
		minRate(func(c *Config) *int64 { return &c.BodyMinRate })},
	{"FLOWS_MAX_BATCH", "100000", "most flows one POST /flows may carry (more: 406)",
		positiveInt(func(c *Config) *int { return &c.FlowsMaxBatch })},
	{flowsBatchAlias, "", "the flows aggregation service's name for FLOWS_MAX_BATCH, taken when FLOWS_MAX_BATCH is unset (both set: an error)", nil},
	{"EXPORTS_MAX", "4", "CSV and NDJSON exports (Accept: text/csv or application/x-ndjson on a list) one instance streams at a time; each holds a database connection " +
		"until its client has read the last row, so keep it well under pool_max_conns. One more is a 503 with Retry-After, at once",
		positiveInt(func(c *Config) *int { return &c.ExportsMax })},
	{"EXPORT_MIN_RATE", "32768", "bytes a second an export's client must keep reading at while the export waits on it (it may fall 1 MiB behind: 32 s at the default, " +
		"besides what the sockets hold); slower, the export is cut and its EXPORTS_MAX slot and database connection freed. Time spent waiting for the database does not count. At most 16777216 (16 MiB/s). 0 turns it off",
		minRate(func(c *Config) *int64 { return &c.ExportMinRate })},
	{"SHUTDOWN_TIMEOUT", "30s", "how long SIGTERM waits for requests in flight before closing",
		duration(func(c *Config) *time.Duration { return &c.ShutdownTimeout }, time.Nanosecond, "a positive duration such as 30s")},
	{"READ_HEADER_TIMEOUT", "10s", "longest time to receive a request's headers; the connection is closed past it",
		duration(func(c *Config) *time.Duration { return &c.ReadHeaderTimeout }, time.Millisecond, "a positive duration such as 10s")},
	{"READ_TIMEOUT", "60s", "longest time to receive a request's body, counted from the start of the request; a body still arriving past it (or never finished) is a 408. The default lets a 64 MiB batch arrive at about 1 MB/s",
		duration(func(c *Config) *time.Duration { return &c.ReadTimeout }, time.Millisecond, "a positive duration such as 60s")},
	{"WRITE_TIMEOUT", "120s", "longest time from the end of a request's headers to the end of its answer (body, work and response); keep it above READ_TIMEOUT",
		duration(func(c *Config) *time.Duration { return &c.WriteTimeout }, time.Millisecond, "a positive duration such as 120s")},
	{"IDLE_TIMEOUT", "120s", "how long a kept-alive connection may wait for its next request",
		duration(func(c *Config) *time.Duration { return &c.IdleTimeout }, time.Millisecond, "a positive duration such as 120s")},
	{"DB_TIMEOUT", "10s", "deadline of each request's database work, counted once its body is read; past it the request is a 503 with Retry-After. 0 turns it off",
		duration(func(c *Config) *time.Duration { return &c.DBTimeout }, 0, "0 (off) or a duration such as 10s")},
	{"AUTH_WRITES", "false", "true requires a JWT (Authorization: Bearer, as for /mrd) on every write (POST, PUT, DELETE) except POST /mrd/token",
		boolean(func(c *Config) *bool { return &c.AuthWrites })},
	{"AUTH_READS", "false", "true requires a JWT on every read (GET) except /healthz, /readyz, /mrd/status, /docs, /ui, /openapi* and /metrics",
		boolean(func(c *Config) *bool { return &c.AuthReads })},
	{"METRICS_TOKEN", "", "when set, /metrics wants Authorization: Bearer <this token> (at least 16 bytes); unset, /metrics is open", nil},
	{"GOMEMLIMIT", "128MiB", "the Go runtime's soft memory limit; serve sets 128MiB when unset, which keeps resident memory near 120 MB even during 100,000-flow batches", nil},
	{"JWT_SECRET", "", "HS256 secret that signs and verifies the JWTs of the device metrics API (/mrd) and of AUTH_WRITES/AUTH_READS; at least 32 bytes. Required by serve unless JWT_SECRET_FILE is set.", nil},
	{"JWT_SECRET_FILE", "", "file holding the JWT secret, at least 32 bytes (surrounding whitespace is ignored); alternative to JWT_SECRET", nil},
	{"JWT_PREVIOUS_SECRET", "", "while the JWT secret is rotated, the secret it replaces: tokens signed with it are still accepted (new ones are signed with JWT_SECRET); at least 32 bytes. Unset it once telemetry_jwt_previous_secret_total stays flat", nil},
	{"JWT_PREVIOUS_SECRET_FILE", "", "file holding the previous JWT secret; alternative to JWT_PREVIOUS_SECRET", nil},
	{"ENABLE_TOKEN_ENDPOINT", "false", "true lets anyone get a token from POST /mrd/token (development only; make run sets it); otherwise that endpoint is 404",
		boolean(func(c *Config) *bool { return &c.EnableTokenEndpoint })},
	{"DEVICE_METRICS_WRITERS", "2", "commits of device metric reports that may run at once; concurrent reports share them (more writers: smaller batches)",
		positiveInt(func(c *Config) *int { return &c.DeviceMetricsWriters })},
	{"DEVICE_METRICS_MAX_BATCH", "1000", "most device metric reports written in one commit",
		positiveInt(func(c *Config) *int { return &c.DeviceMetricsBatch })},
	{"MEASUREMENTS_MAX_BATCH", "10000", "most measurements one POST /api/measurements may carry (more: 406)",
		positiveInt(func(c *Config) *int { return &c.MeasurementsMaxBatch })},
	{"MEASUREMENTS_KEPT_CELLS_BYTES", "67108864", "bytes of sealed cells GET /api/measurements/grouped keeps in memory, the least recently used going first; a request reads at most a quarter of it, " +
		"past that it is answered by PostgreSQL alone, slower. The default holds 30 days of 200 routes and methods with room to spare (about 20 MB at 10 M rows as sizes were counted before 2026-12-06, 1.2 to 1.9 times that as the heap is counted now); it is part of the heap GOMEMLIMIT bounds. 0 keeps none",
		nonNegative(func(c *Config) *int64 { return &c.MeasurementsKeptCellsBytes })},
	{"SELF_PROFILE", "true", "record every request the service serves as a measurement with app=telemetry (true or false)",
		boolean(func(c *Config) *bool { return &c.SelfProfile })},
	{"SELF_PROFILE_SAMPLE", "1", "fraction of requests self-profiling records, 0 to 1",
		func(c *Config, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || !(f >= 0 && f <= 1) {
				return errors.New("must be a fraction from 0 to 1")
			}
			c.SelfProfileSample = f
			return nil
		}},
	{"SELF_PROFILE_EXCLUDE", "/healthz,/readyz,/metrics,/docs*,/openapi*,/ui*", "comma list of paths self-profiling leaves out; a trailing * matches a prefix",
		func(c *Config, v string) error {
			for _, p := range strings.Split(v, ",") {
				if p = strings.TrimSpace(p); p != "" {
					c.SelfProfileExclude = append(c.SelfProfileExclude, p)
				}
			}
			return nil
		}},
	{"SELF_PROFILE_DETAIL", "100", "requests a second self-profiling records one row each; the rest of that second are summed into one row per route, path, method and status (context.count requests); 0 summarises every request",
		func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return errors.New("must be a whole number, 0 or more")
			}
			c.SelfProfileDetail = n
			return nil
		}},
	{"SELF_SAMPLE_INTERVAL", "5s", "how often the service samples its own CPU, GC and memory into runtime_samples for the collections API; 0 turns sampling off",
		func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || (d > 0 && d < 100*time.Millisecond) {
				return errors.New("must be 0 (off) or a duration of at least 100ms such as 5s")
			}
			c.SelfSampleInterval = d
			return nil
		}},
	{"IDEMPOTENCY_TTL", "24h", "how long the answer of a write sent with an Idempotency-Key header is kept: a repeat with the same key within it gets the same answer without a second write",
		duration(func(c *Config) *time.Duration { return &c.IdempotencyTTL }, time.Second, "a duration of at least 1s such as 24h")},
	{"MAX_TIME_AHEAD", "1d", "how far ahead of the server's clock the times clients give may be: a measurement's startedAt and endedAt, a flow's hour (its start), a load-test run's startedAt; a later one is a 422 naming it. A retention counts from these times, so a row dated ahead (a client's clock years fast, a far-future time) would be kept until long after, whatever the retention (docs/lifecycle.md). Days (1d), hours (36h) or minutes (90m); 0 takes any time up to 9999-12-31",
		age(func(c *Config) *time.Duration { return &c.MaxTimeAhead })},
	{"MEASUREMENTS_RETENTION", "30d", "how long request measurements are kept (by startedAt); 0 keeps them forever. Days (14d), hours (36h) or minutes (90m). Their rollups keep ROLLUPS_RETENTION",
		age(func(c *Config) *time.Duration { return &c.MeasurementsRetention })},
	{"DEVICE_METRICS_RETENTION", "90d", "how long the history of device metric reports is kept; 0 keeps it forever. The latest report of each metric (the current views) is kept whatever its age",
		age(func(c *Config) *time.Duration { return &c.DeviceMetricsRetention })},
	{"RUNTIME_SAMPLES_RETENTION", "7d", "how long the service's runtime samples (collections API) are kept; 0 keeps them forever",
		age(func(c *Config) *time.Duration { return &c.RuntimeSamplesRetention })},
	{"EVENTS_RETENTION", "0", "how long load-test runs and their events are kept, counted from a run's end (from its start while it is still running); 0 keeps them forever",
		age(func(c *Config) *time.Duration { return &c.EventsRetention })},
	{"FLOWS_RETENTION", "0", "how long hourly flow totals are kept; 0 keeps them forever",
		age(func(c *Config) *time.Duration { return &c.FlowsRetention })},
	{"ROLLUPS_RETENTION", "400d", "how long the measurement rollups (hourly, daily, per method) are kept, so grouped, distribution and timeseries answers over long windows outlive the raw rows; never less than MEASUREMENTS_RETENTION; 0 keeps them forever",
		age(func(c *Config) *time.Duration { return &c.RollupsRetention })},
	{"COMPRESS_AFTER", "7d", "TimescaleDB only: chunks older than this are compressed by the maintenance pass; 0 turns compression off",
		age(func(c *Config) *time.Duration { return &c.CompressAfter })},
	{"MAINTENANCE_INTERVAL", "1h", "how often serve runs the maintenance pass (retention, compression; also `telemetry maintain`); the first pass runs at start. 0 turns the loop off",
		interval(func(c *Config) *time.Duration { return &c.MaintenanceInterval }, "1h, 90m or 1d")},
	{"SEAL_INTERVAL", "1m", "how often serve seals the measurements' closed hours, quarters, days and 5-minute bins between maintenance passes (the grouped view and the list's total with an elapsed filter read sealed units instead of rows; a pass seals too). 0 turns the loop off",
		interval(func(c *Config) *time.Duration { return &c.SealInterval }, "1m or 5m")},
}

// canonicalOrigin writes an origin as a browser sends it in Origin (lower
// case, no default port), which http.CrossOriginProtection compares
// exactly: https://Telemetry.example:443 would never have matched (found by
// a review). ok is false for anything but an http or https origin.
func canonicalOrigin(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || strings.HasSuffix(s, "?") {
		return "", false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	origin := strings.ToLower(u.Scheme) + "://" + host
	if port != "" {
		origin += ":" + port
	}
	if err := http.NewCrossOriginProtection().AddTrustedOrigin(origin); err != nil {
		return "", false
	}
	return origin, true
}

// basePathRe is what BASE_PATH may hold: RFC 3986's unreserved characters,
// slashes and percent-escapes.
var basePathRe = regexp.MustCompile(`^(/([A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})*)+$`)

// MinMetricsToken is the shortest METRICS_TOKEN accepted, in bytes.
const MinMetricsToken = 16

// MinJWTSecret is the shortest JWT secret accepted, in bytes: RFC 7518
// (3.2) wants an HS256 key of at least the hash's size.
const MinJWTSecret = 32

// The parsers of the table's common kinds of value.

func str(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *field(c) = v; return nil }
}

// address takes a host:port to listen on (the host may be empty), checked
// at start-up rather than when serve, after its database work, listens;
// empty is PPROF_ADDR's default (no profiler).
func address(field func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if _, port, err := net.SplitHostPort(v); v != "" && (err != nil || port == "") {
			return errors.New("must be host:port or :port, such as :8080 or 127.0.0.1:8080")
		}
		*field(c) = v
		return nil
	}
}

func positive(field func(*Config) *int64) func(*Config, string) error {
	return atLeast(field, 1, "a positive integer")
}

func nonNegative(field func(*Config) *int64) func(*Config, string) error {
	return atLeast(field, 0, "0 or a positive integer")
}

// maxMinRate is the largest BODY_MIN_RATE and EXPORT_MIN_RATE, 16 MiB/s:
// a client may fall 1 MiB behind either rate, which above it is less than
// 63 ms, the scheduling delays of a busy host. A value past it is a
// mistake (bits for bytes, a zero too many) that would cut every large
// body or export, not a policy.
const maxMinRate = 16 << 20

// minRate parses BODY_MIN_RATE or EXPORT_MIN_RATE: 0 (off) to maxMinRate.
func minRate(field func(*Config) *int64) func(*Config, string) error {
	return between(field, 0, maxMinRate, "0 (off) or a rate in bytes a second up to 16777216 (16 MiB/s)")
}

func atLeast(field func(*Config) *int64, least int64, want string) func(*Config, string) error {
	return between(field, least, math.MaxInt64, want)
}

// between parses a whole number from least to most into field; want says
// what the error asks for.
func between(field func(*Config) *int64, least, most int64, want string) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < least || n > most {
			return errors.New("must be " + want)
		}
		*field(c) = n
		return nil
	}
}

func positiveInt(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return errors.New("must be a positive integer")
		}
		*field(c) = n
		return nil
	}
}

func boolean(field func(*Config) *bool) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("must be true or false")
		}
		*field(c) = b
		return nil
	}
}

func duration(field func(*Config) *time.Duration, least time.Duration, want string) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < least {
			return errors.New("must be " + want)
		}
		*field(c) = d
		return nil
	}
}

// interval parses a loop's interval: 0 (off), or a duration as age takes
// them of at least a second (examples: what the message suggests).
func interval(field func(*Config) *time.Duration, examples string) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := parseAge(v)
		if err != nil || (d > 0 && d < time.Second) {
			return errors.New("must be 0 (off) or a duration of at least 1s such as " + examples)
		}
		*field(c) = d
		return nil
	}
}

// age parses a retention: 0 (forever), whole days (14d), or a Go duration
// (36h, 90m, 1h30m) of at least a minute.
func age(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := parseAge(v)
		if err != nil || (d > 0 && d < time.Minute) {
			return errors.New("must be 0 (keep forever) or a duration of at least 1m such as 30d, 36h or 90m")
		}
		*field(c) = d
		return nil
	}
}

// parseAge reads 0, a number of days (14d) or a Go duration; negative
// values are an error.
func parseAge(v string) (time.Duration, error) {
	if v == "0" {
		return 0, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		// 100 years at most: past it the duration would overflow.
		if err != nil || n < 0 || n > 36500 {
			return 0, errors.New("bad number of days")
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, err
		}
	}
	if d < 0 {
		return 0, errors.New("negative")
	}
	return d, nil
}

// DefaultMemoryLimit is the soft memory limit serve sets when GOMEMLIMIT is unset.
const DefaultMemoryLimit = 128 << 20

// Load reads the configuration through getenv (os.Getenv in production).
// Every bad value is reported at once, each naming its variable.
// flowsBatchAlias is FLOWS_MAX_BATCH's name in the flows aggregation
// service the flows API replaces (its deployments keep their settings).
const flowsBatchAlias = "TOTAL_INPUT_FLOW_EVENTS"

func Load(getenv func(string) string) (Config, error) {
	var cfg Config
	var errs []error
	for _, v := range Vars {
		if v.set == nil {
			continue
		}
		val := strings.TrimSpace(getenv(v.Name))
		if val == "" {
			val = v.Default
		}
		if err := v.set(&cfg, val); err != nil {
			errs = append(errs, fmt.Errorf("%s %v, got %q", v.Name, err, val))
		}
	}
	cfg.AllowedHosts = cfg.hostsFor(cfg.ListenAddr)
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		errs = append(errs, errors.New("set both TLS_CERT_FILE and TLS_KEY_FILE (HTTPS), or neither (plain HTTP)"))
	}
	if alias := strings.TrimSpace(getenv(flowsBatchAlias)); alias != "" {
		if strings.TrimSpace(getenv("FLOWS_MAX_BATCH")) != "" {
			errs = append(errs, fmt.Errorf("set FLOWS_MAX_BATCH or %s (its old name), not both", flowsBatchAlias))
		} else if err := positiveInt(func(c *Config) *int { return &c.FlowsMaxBatch })(&cfg, alias); err != nil {
			errs = append(errs, fmt.Errorf("%s %v, got %q", flowsBatchAlias, err, alias))
		}
	}
	var err error
	if cfg.JWTSecret, cfg.jwtSecretVar, err = readSecret(getenv, "JWT_SECRET"); err != nil {
		errs = append(errs, err)
	}
	if cfg.JWTPreviousSecret, cfg.jwtPreviousVar, err = readSecret(getenv, "JWT_PREVIOUS_SECRET"); err != nil {
		errs = append(errs, err)
	}
	// METRICS_TOKEN is a secret: read by hand, so that --help never prints a default.
	cfg.MetricsToken = strings.TrimSpace(getenv("METRICS_TOKEN"))
	if n := len(cfg.MetricsToken); n > 0 && n < MinMetricsToken {
		// A bearer token is guessed by trying: as long as the JWT secret's
		// minimum would be overkill for a read-only endpoint, but a short
		// word was accepted (found by the security review).
		errs = append(errs, fmt.Errorf("METRICS_TOKEN is %d bytes long; it needs at least %d (for instance: head -c 24 /dev/urandom | base64)",
			n, MinMetricsToken))
	}
	if cfg.WriteTimeout <= cfg.ReadTimeout && cfg.WriteTimeout > 0 {
		// The 408 of a body that ran out of READ_TIMEOUT could not be written.
		errs = append(errs, fmt.Errorf("WRITE_TIMEOUT (%s) must be longer than READ_TIMEOUT (%s)", cfg.WriteTimeout, cfg.ReadTimeout))
	}
	return cfg, errors.Join(errs...)
}

// readSecret reads the secret of variable name, or of the file named by
// name_FILE (surrounding whitespace left out), and the variable it came
// from; nil when neither is set.
func readSecret(getenv func(string) string, name string) ([]byte, string, error) {
	secret, file := getenv(name), strings.TrimSpace(getenv(name+"_FILE"))
	switch {
	case secret != "" && file != "":
		return nil, "", fmt.Errorf("set %s or %s_FILE, not both", name, name)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, "", fmt.Errorf("%s_FILE: %w", name, err)
		}
		if b = bytes.TrimSpace(b); len(b) == 0 {
			return nil, "", fmt.Errorf("%s_FILE: %s is empty", name, file)
		}
		return b, name + "_FILE", nil
	case secret != "":
		return []byte(secret), name, nil
	}
	return nil, "", nil
}

// RequireJWTSecret fails with a helpful message when no JWT secret is set.
func (c Config) RequireJWTSecret() error {
	if len(c.JWTSecret) == 0 {
		return errors.New("no JWT secret: set JWT_SECRET or JWT_SECRET_FILE (make run creates a local one under ./.data)")
	}
	if len(c.JWTSecret) < MinJWTSecret {
		name := c.jwtSecretVar
		if name == "" {
			name = "the JWT secret"
		}
		return fmt.Errorf("%s is %d bytes long; an HS256 secret needs at least %d (for instance: head -c 32 /dev/urandom | base64)",
			name, len(c.JWTSecret), MinJWTSecret)
	}
	switch p := c.JWTPreviousSecret; {
	case p == nil:
	case len(p) < MinJWTSecret:
		return fmt.Errorf("%s is %d bytes long; an HS256 secret needs at least %d", c.jwtPreviousVar, len(p), MinJWTSecret)
	case bytes.Equal(p, c.JWTSecret):
		return fmt.Errorf("%s is the same as %s: set it to the secret being replaced, or unset it", c.jwtPreviousVar, c.jwtSecretVar)
	}
	return nil
}

// RequireDatabase fails with a helpful message when DATABASE_URL is unset.
func (c Config) RequireDatabase() error {
	if c.DatabaseURL == "" {
		return errors.New("DATABASE_URL is not set: point it at a PostgreSQL database (or use `make run`, which starts a local one)")
	}
	return nil
}
