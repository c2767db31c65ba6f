// Package config reads the service's configuration from environment
// variables. Every variable has a safe default except secrets and the
// database URL; Vars lists them all for --help and the README.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration of the service.
type Config struct {
	DatabaseURL     string
	ListenAddr      string
	LogLevel        slog.Level
	MaxBodyBytes    int64
	FlowsMaxBatch   int
	ShutdownTimeout time.Duration

	// Device metrics (/mrd): the HS256 secret for JWTs (from JWT_SECRET or
	// the file named by JWT_SECRET_FILE), whether POST /mrd/token issues
	// tokens, and how reports are coalesced into commits.
	JWTSecret            []byte
	EnableTokenEndpoint  bool
	DeviceMetricsWriters int
	DeviceMetricsBatch   int
	// Measurements and self-profiling.
	MeasurementsMaxBatch int
	SelfProfile          bool
	SelfProfileSample    float64
	SelfProfileExclude   []string

	SelfSampleInterval time.Duration
}

// Var documents one environment variable.
type Var struct {
	Name, Default, Doc string
}

// Vars is every variable the service reads, in the order --help prints them.
var Vars = []Var{
	{"DATABASE_URL", "", "PostgreSQL connection URL (postgres://user:pass@host:port/db). Pool settings such as pool_max_conns may be added as URL parameters. Required."},
	{"LISTEN_ADDR", ":8080", "address the HTTP server listens on"},
	{"LOG_LEVEL", "info", "debug, info, warn or error"},
	{"MAX_BODY_BYTES", "67108864", "largest request body accepted, in bytes (larger: 413); the default fits a full batch of 100,000 flows with long names"},
	{"FLOWS_MAX_BATCH", "100000", "most flows one POST /flows may carry (more: 406)"},
	{"SHUTDOWN_TIMEOUT", "30s", "how long SIGTERM waits for requests in flight before closing"},
	{"GOMEMLIMIT", "128MiB", "the Go runtime's soft memory limit; serve sets 128MiB when unset, which keeps resident memory near 120 MB even during 100,000-flow batches"},
	{"JWT_SECRET", "", "HS256 secret that signs and verifies the JWTs of the device metrics API (/mrd). Required by serve unless JWT_SECRET_FILE is set."},
	{"JWT_SECRET_FILE", "", "file holding the JWT secret (surrounding whitespace is ignored); alternative to JWT_SECRET"},
	{"ENABLE_TOKEN_ENDPOINT", "false", "true lets anyone get a token from POST /mrd/token (development only; make run sets it); otherwise that endpoint is 404"},
	{"DEVICE_METRICS_WRITERS", "2", "commits of device metric reports that may run at once; concurrent reports share them (more writers: smaller batches)"},
	{"DEVICE_METRICS_MAX_BATCH", "1000", "most device metric reports written in one commit"},
	{"MEASUREMENTS_MAX_BATCH", "10000", "most measurements one POST /api/measurements may carry (more: 406)"},
	{"SELF_PROFILE", "true", "record every request the service serves as a measurement with app=telemetry (true or false)"},
	{"SELF_PROFILE_SAMPLE", "1", "fraction of requests self-profiling records, 0 to 1"},
	{"SELF_PROFILE_EXCLUDE", "/healthz,/readyz,/metrics,/docs*,/openapi*", "comma list of paths self-profiling leaves out; a trailing * matches a prefix"},
	{"SELF_SAMPLE_INTERVAL", "5s", "how often the service samples its own CPU, GC and memory into runtime_samples for the collections API; 0 turns sampling off"},
}

// DefaultMemoryLimit is the soft memory limit serve sets when GOMEMLIMIT is unset.
const DefaultMemoryLimit = 128 << 20

// Load reads the configuration through getenv (os.Getenv in production).
func Load(getenv func(string) string) (Config, error) {
	get := func(name string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		for _, v := range Vars {
			if v.Name == name {
				return v.Default
			}
		}
		return ""
	}
	var errs []error
	cfg := Config{
		DatabaseURL: get("DATABASE_URL"),
		ListenAddr:  get("LISTEN_ADDR"),
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(get("LOG_LEVEL"))); err != nil {
		errs = append(errs, fmt.Errorf("LOG_LEVEL: %w", err))
	}
	var err error
	if cfg.MaxBodyBytes, err = strconv.ParseInt(get("MAX_BODY_BYTES"), 10, 64); err != nil || cfg.MaxBodyBytes < 1 {
		errs = append(errs, fmt.Errorf("MAX_BODY_BYTES must be a positive integer, got %q", get("MAX_BODY_BYTES")))
	}
	if cfg.FlowsMaxBatch, err = strconv.Atoi(get("FLOWS_MAX_BATCH")); err != nil || cfg.FlowsMaxBatch < 1 {
		errs = append(errs, fmt.Errorf("FLOWS_MAX_BATCH must be a positive integer, got %q", get("FLOWS_MAX_BATCH")))
	}
	if cfg.ShutdownTimeout, err = time.ParseDuration(get("SHUTDOWN_TIMEOUT")); err != nil || cfg.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("SHUTDOWN_TIMEOUT must be a positive duration such as 30s, got %q", get("SHUTDOWN_TIMEOUT")))
	}
	secret, secretFile := getenv("JWT_SECRET"), strings.TrimSpace(getenv("JWT_SECRET_FILE"))
	switch {
	case secret != "" && secretFile != "":
		errs = append(errs, errors.New("set JWT_SECRET or JWT_SECRET_FILE, not both"))
	case secretFile != "":
		b, err := os.ReadFile(secretFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("JWT_SECRET_FILE: %w", err))
		} else if cfg.JWTSecret = bytes.TrimSpace(b); len(cfg.JWTSecret) == 0 {
			errs = append(errs, fmt.Errorf("JWT_SECRET_FILE: %s is empty", secretFile))
		}
	case secret != "":
		cfg.JWTSecret = []byte(secret)
	}
	if cfg.EnableTokenEndpoint, err = strconv.ParseBool(get("ENABLE_TOKEN_ENDPOINT")); err != nil {
		errs = append(errs, fmt.Errorf("ENABLE_TOKEN_ENDPOINT must be true or false, got %q", get("ENABLE_TOKEN_ENDPOINT")))
	}
	if cfg.DeviceMetricsWriters, err = strconv.Atoi(get("DEVICE_METRICS_WRITERS")); err != nil || cfg.DeviceMetricsWriters < 1 {
		errs = append(errs, fmt.Errorf("DEVICE_METRICS_WRITERS must be a positive integer, got %q", get("DEVICE_METRICS_WRITERS")))
	}
	if cfg.DeviceMetricsBatch, err = strconv.Atoi(get("DEVICE_METRICS_MAX_BATCH")); err != nil || cfg.DeviceMetricsBatch < 1 {
		errs = append(errs, fmt.Errorf("DEVICE_METRICS_MAX_BATCH must be a positive integer, got %q", get("DEVICE_METRICS_MAX_BATCH")))
	}
	if cfg.MeasurementsMaxBatch, err = strconv.Atoi(get("MEASUREMENTS_MAX_BATCH")); err != nil || cfg.MeasurementsMaxBatch < 1 {
		errs = append(errs, fmt.Errorf("MEASUREMENTS_MAX_BATCH must be a positive integer, got %q", get("MEASUREMENTS_MAX_BATCH")))
	}
	if cfg.SelfProfile, err = strconv.ParseBool(get("SELF_PROFILE")); err != nil {
		errs = append(errs, fmt.Errorf("SELF_PROFILE must be true or false, got %q", get("SELF_PROFILE")))
	}
	if cfg.SelfProfileSample, err = strconv.ParseFloat(get("SELF_PROFILE_SAMPLE"), 64); err != nil ||
		!(cfg.SelfProfileSample >= 0 && cfg.SelfProfileSample <= 1) {
		errs = append(errs, fmt.Errorf("SELF_PROFILE_SAMPLE must be a fraction from 0 to 1, got %q", get("SELF_PROFILE_SAMPLE")))
	}
	for _, p := range strings.Split(get("SELF_PROFILE_EXCLUDE"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.SelfProfileExclude = append(cfg.SelfProfileExclude, p)
		}
	}
	if cfg.SelfSampleInterval, err = time.ParseDuration(get("SELF_SAMPLE_INTERVAL")); err != nil ||
		cfg.SelfSampleInterval < 0 || (cfg.SelfSampleInterval > 0 && cfg.SelfSampleInterval < 100*time.Millisecond) {
		errs = append(errs, fmt.Errorf("SELF_SAMPLE_INTERVAL must be 0 (off) or a duration of at least 100ms such as 5s, got %q", get("SELF_SAMPLE_INTERVAL")))
	}
	return cfg, errors.Join(errs...)
}

// RequireJWTSecret fails with a helpful message when no JWT secret is set.
func (c Config) RequireJWTSecret() error {
	if len(c.JWTSecret) == 0 {
		return errors.New("no JWT secret: set JWT_SECRET or JWT_SECRET_FILE (make run creates a local one under ./.data)")
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
