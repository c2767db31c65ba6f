package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"text/tabwriter"
	"time"

	"github.com/telemetry/telemetry/internal/api"
	"github.com/telemetry/telemetry/internal/auth"
	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/lifecycle"
	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/migrate"
	"github.com/telemetry/telemetry/internal/runtimestats"
	"github.com/telemetry/telemetry/internal/selfprofile"
	"github.com/telemetry/telemetry/internal/store/postgres"
)

const usage = `Usage: telemetry <command>

Commands:
  serve               run the HTTP API (the schema must be migrated first)
  migrate             apply every pending migration and exit
  migrate status      list migrations and whether each is applied
  migrate down        roll back the most recent migration
  maintain            run one data lifecycle pass (retention, compression) and exit
  openapi             print the OpenAPI 3.0.3 document (YAML) to stdout
  healthcheck         exit 0 when the local server's /readyz answers 200 (for containers)
  token [--ttl 24h]   print a JWT for the device metrics API (signed with JWT_SECRET)
  help, --help        show this help

Environment:
`

// run is the whole program; main only wires it to the OS, so tests can run
// it end to end with their own arguments, environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "--help" || args[0] == "-h" {
		printUsage(stdout)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	switch args[0] {
	case "openapi":
		y, err := api.Spec().DowngradeYAML()
		if err != nil {
			return err
		}
		_, err = stdout.Write(y)
		return err
	case "migrate":
		sub := ""
		if len(args) > 1 {
			sub = args[1]
		}
		return runMigrate(ctx, cfg, log, sub, stdout)
	case "serve":
		return serve(ctx, cfg, log, stdout, getenv)
	case "maintain":
		return maintain(ctx, cfg, log, stdout)
	case "healthcheck":
		return healthcheck(ctx, cfg)
	case "token":
		return printToken(cfg, args[1:], stdout, stderr)
	}
	printUsage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, usage)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, v := range config.Vars {
		def := v.Default
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Name, def, v.Doc)
	}
	tw.Flush()
}

// openStore connects to the database.
func openStore(ctx context.Context, cfg config.Config, opts postgres.Options) (*postgres.Store, error) {
	if err := cfg.RequireDatabase(); err != nil {
		return nil, err
	}
	return postgres.Open(ctx, cfg.DatabaseURL, opts)
}

func runMigrate(ctx context.Context, cfg config.Config, log *slog.Logger, sub string, stdout io.Writer) error {
	st, err := openStore(ctx, cfg, postgres.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := migrate.New(st.Pool())
	if err != nil {
		return err
	}
	defer m.Close()
	switch sub {
	case "", "up":
		return m.Up(ctx, log)
	case "status":
		return m.Status(ctx, stdout)
	case "down":
		return m.Down(ctx, log)
	}
	return fmt.Errorf("unknown migrate command %q (want status or down)", sub)
}

// printToken prints a token for the device metrics API, like the Concertim
// daemon's create-auth-token.
func printToken(cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime of the token")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := cfg.RequireJWTSecret(); err != nil {
		return err
	}
	token, err := auth.New(cfg.JWTSecret).Issue(*ttl)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}

func serve(ctx context.Context, cfg config.Config, log *slog.Logger, stdout io.Writer, getenv func(string) string) error {
	if err := cfg.RequireJWTSecret(); err != nil {
		return err
	}
	if getenv("GOMEMLIMIT") == "" {
		// Large batches make short-lived garbage; without a limit the heap
		// (and resident memory) doubles past the live set before a GC.
		debug.SetMemoryLimit(config.DefaultMemoryLimit)
	}
	prom := metrics.New()
	st, err := openStore(ctx, cfg, postgres.Options{
		DeviceWriters:  cfg.DeviceMetricsWriters,
		DeviceMaxBatch: cfg.DeviceMetricsBatch,
		ObserveBatch: func(resource string, n int) {
			prom.BatchItems.WithLabelValues(resource).Observe(float64(n))
		},
	})
	if err != nil {
		return err
	}
	defer st.Close()
	pool := st.Pool()
	if err := st.Ping(ctx); err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	m, err := migrate.New(pool)
	if err != nil {
		return err
	}
	err = m.CheckCurrent(ctx)
	m.Close()
	if err != nil {
		return err
	}

	prom.RegisterPool(st.PoolStats)
	// Self-profiling writes through the store: it is closed (flushed) after
	// the server stops and before the deferred st.Close.
	var prof *selfprofile.Profiler
	if cfg.SelfProfile && cfg.SelfProfileSample > 0 {
		prof = selfprofile.New(st.Measurements, log, prom.Registry, selfprofile.Config{
			Sample: cfg.SelfProfileSample, Exclude: cfg.SelfProfileExclude})
		prof.Start()
		defer prof.Close(context.Background())
	}
	// Runtime samples for the collections API; stopped (deferred) before the pool closes.
	if cfg.SelfSampleInterval > 0 {
		sampler := runtimestats.New(st.Runtime, log, prom.Registry, runtimestats.Config{Interval: cfg.SelfSampleInterval})
		sampler.Start()
		defer sampler.Close()
	}
	// The data lifecycle loop; stopped (deferred) before the pool closes.
	if cfg.MaintenanceInterval > 0 {
		lc := lifecycle.New(st.Lifecycle, retentionOf(cfg), log, prom.Registry)
		lc.Start(cfg.MaintenanceInterval)
		defer lc.Close()
	}
	handler, _ := api.New(api.Deps{Store: st.Stores(), Log: log, Metrics: prom, Config: cfg, Profiler: prof})

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return err
	}
	// READ_TIMEOUT is not the server's ReadTimeout: the API bounds each
	// request's body itself (internal/api/limits.go), in step with huma's
	// per-operation body read timeout.
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String())
	fmt.Fprintf(stdout, "telemetry: serving on http://%s (docs at /docs)\n", ln.Addr().String())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// SIGTERM: stop accepting, let requests in flight finish, write the
	// buffered self-profiling measurements, then close the pool (deferred)
	// and exit 0.
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		if !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("shutdown: %w", err)
		}
		// Connections still busy after SHUTDOWN_TIMEOUT (a client
		// dribbling a body, a request stuck on the database) are closed:
		// the stop is still a clean one, and the process exits 0.
		log.Warn("shutdown timeout: closing the connections still open")
		if err := srv.Close(); err != nil {
			log.Warn("closing connections", "error", err.Error())
		}
	}
	// Commit the device metric reports still queued before the
	// self-profiling flush and the pool close (st.Close, deferred, closes
	// the devices again: a no-op).
	st.Devices.Close()
	fctx, fcancel := sctx, context.CancelFunc(func() {})
	if sctx.Err() != nil {
		// SHUTDOWN_TIMEOUT is spent: the final flush gets a short time of its own.
		fctx, fcancel = context.WithTimeout(context.Background(), finalFlushTimeout)
	}
	defer fcancel()
	if err := prof.Close(fctx); err != nil {
		log.Error("self-profiling: final flush failed", "error", err.Error())
	}
	log.Info("stopped")
	return nil
}

// finalFlushTimeout bounds the self-profiling flush after a shutdown that
// used all of SHUTDOWN_TIMEOUT.
const finalFlushTimeout = 5 * time.Second

// healthcheck asks the server listening on LISTEN_ADDR whether it is ready;
// container images have no curl, so the binary checks itself.
func healthcheck(ctx context.Context, cfg config.Config) error {
	host, port, err := net.SplitHostPort(cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/readyz", nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s", res.Status)
	}
	return nil
}
