// Package config reads the service's configuration from environment
// variables. Every variable has a safe default except secrets and the
// database URL; Vars lists them all for --help and the README.
package config

import (
	"errors"
	"fmt"
	"log/slog"
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
	{"MEASUREMENTS_MAX_BATCH", "10000", "most measurements one POST /api/measurements may carry (more: 406)"},
	{"SELF_PROFILE", "true", "record every request the service serves as a measurement with app=telemetry (true or false)"},
	{"SELF_PROFILE_SAMPLE", "1", "fraction of requests self-profiling records, 0 to 1"},
	{"SELF_PROFILE_EXCLUDE", "/healthz,/readyz,/metrics,/docs*,/openapi*", "comma list of paths self-profiling leaves out; a trailing * matches a prefix"},
	{"SELF_SAMPLE_INTERVAL", "5s", "how often the service samples its own CPU, GC and memory into runtime_samples for the collections API; 0 turns sampling off"},
}

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

// RequireDatabase fails with a helpful message when DATABASE_URL is unset.
func (c Config) RequireDatabase() error {
	if c.DatabaseURL == "" {
		return errors.New("DATABASE_URL is not set: point it at a PostgreSQL database (or use `make run`, which starts a local one)")
	}
	return nil
}
