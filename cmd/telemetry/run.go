package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/telemetry/telemetry/internal/api"
	"github.com/telemetry/telemetry/internal/auth"
	"github.com/telemetry/telemetry/internal/config"
	"github.com/telemetry/telemetry/internal/lifecycle"
	"github.com/telemetry/telemetry/internal/metrics"
	"github.com/telemetry/telemetry/internal/migrate"
	"github.com/telemetry/telemetry/internal/runtimestats"
	"github.com/telemetry/telemetry/internal/selfprofile"
	"github.com/telemetry/telemetry/internal/store/postgres"
	"github.com/telemetry/telemetry/internal/tlsfiles"
)

// command is one subcommand: its usage line and summary (the help lists
// them in this order), the flags it takes, and what it does. A command's
// -h or --help prints its usage and does nothing else (no configuration
// read, no database connection); main exits 1 on any error, including an
// unknown flag.
type command struct {
	name, args, summary string
	// flags declares the command's flags on fs and returns what runs once
	// they are parsed, with the remaining arguments.
	flags func(fs *flag.FlagSet) func(ctx context.Context, e *cmdEnv, args []string) error
}

// cmdEnv is the process as run sees it.
type cmdEnv struct {
	getenv         func(string) string
	stdout, stderr io.Writer
}

// config loads the configuration and the logger of a command that needs them.
func (e *cmdEnv) config() (config.Config, *slog.Logger, error) {
	cfg, err := config.Load(e.getenv)
	if err != nil {
		return cfg, nil, err
	}
	return cfg, slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: cfg.LogLevel})), nil
}

// noFlags is the flags of a command that takes none.
func noFlags(do func(ctx context.Context, e *cmdEnv, args []string) error) func(*flag.FlagSet) func(context.Context, *cmdEnv, []string) error {
	return func(*flag.FlagSet) func(context.Context, *cmdEnv, []string) error { return do }
}

// commands is every subcommand, in the order the help lists them.
var commands = []command{
	{"serve", "", "run the HTTP API (the schema must be migrated first)", noFlags(
		func(ctx context.Context, e *cmdEnv, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			cfg, log, err := e.config()
			if err != nil {
				return err
			}
			return serve(ctx, cfg, log, e.stdout, e.getenv)
		})},
	{"migrate", "[up|status|down]", "apply every pending migration (up, the default), list them (status), or roll back the most recent (down)", noFlags(
		func(ctx context.Context, e *cmdEnv, args []string) error {
			sub := ""
			if len(args) > 0 {
				sub = args[0]
			}
			if len(args) > 1 {
				return usageError{fmt.Errorf("unexpected arguments %q", args[1:])}
			}
			switch sub {
			case "", "up", "status", "down":
			default:
				return usageError{fmt.Errorf("unknown migrate command %q (want up, status or down)", sub)}
			}
			cfg, log, err := e.config()
			if err != nil {
				return err
			}
			return runMigrate(ctx, cfg, log, sub, e.stdout)
		})},
	{"maintain", "", "run one data lifecycle pass (retention, compression) and exit", noFlags(
		func(ctx context.Context, e *cmdEnv, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			cfg, log, err := e.config()
			if err != nil {
				return err
			}
			return maintain(ctx, cfg, log, e.stdout)
		})},
	{"openapi", "", "print the OpenAPI 3.0.3 document (YAML) to stdout", noFlags(
		func(_ context.Context, e *cmdEnv, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			y, err := api.Spec30YAML()
			if err != nil {
				return err
			}
			_, err = e.stdout.Write(y)
			return err
		})},
	{"healthcheck", "", "exit 0 when the local server's /readyz answers 200 (for containers)", noFlags(
		func(ctx context.Context, e *cmdEnv, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			cfg, _, err := e.config()
			if err != nil {
				return err
			}
			return healthcheck(ctx, cfg)
		})},
	{"token", "[--ttl 24h]", "print a JWT for the device metrics API (signed with JWT_SECRET)",
		func(fs *flag.FlagSet) func(context.Context, *cmdEnv, []string) error {
			ttl := fs.Duration("ttl", 24*time.Hour, "lifetime of the token")
			return func(_ context.Context, e *cmdEnv, args []string) error {
				if err := noArgs(args); err != nil {
					return err
				}
				cfg, _, err := e.config()
				if err != nil {
					return err
				}
				return printToken(cfg, *ttl, e.stdout)
			}
		}},
	{"version", "", "print the module version (also --version)", noFlags(
		func(_ context.Context, e *cmdEnv, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			_, err := fmt.Fprintln(e.stdout, "telemetry", version())
			return err
		})},
}

func noArgs(args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", args)}
	}
	return nil
}

// usageError is a command line a command refuses (a stray argument, an
// unknown migrate command): run prints the command's usage with it.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// version is the main module's version from the build information: a
// release tag, or the pseudo-version go build stamps from the VCS, with
// the commit and the Go version.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown: built without module support)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)" // go run and go test stamp no version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			v += " " + s.Value
		}
		if s.Key == "vcs.modified" && s.Value == "true" && !strings.HasSuffix(bi.Main.Version, "+dirty") {
			v += " (modified)"
		}
	}
	return v + " " + bi.GoVersion
}

// run is the whole program; main only wires it to the OS, so tests can run
// it end to end with their own arguments, environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := &cmdEnv{getenv: getenv, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		printUsage(stderr)
		return errors.New("no command given")
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		printUsage(stdout)
		return nil
	case "-version", "--version", "-v":
		args = []string{"version"}
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		fs := flag.NewFlagSet("telemetry "+c.name, flag.ContinueOnError)
		fs.SetOutput(io.Discard) // help and errors are printed below
		do := c.flags(fs)
		usage := func(w io.Writer) {
			fmt.Fprintf(w, "Usage: telemetry %s %s\n\n%s\n", c.name, c.args, c.summary)
			hasFlags := false
			fs.VisitAll(func(*flag.Flag) { hasFlags = true })
			if hasFlags {
				fmt.Fprintln(w, "\nFlags:")
				fs.SetOutput(w)
				fs.PrintDefaults()
				fs.SetOutput(io.Discard)
			}
			fmt.Fprintln(w, "\nThe environment variables are listed by telemetry --help.")
		}
		switch err := fs.Parse(args[1:]); {
		case errors.Is(err, flag.ErrHelp):
			usage(stdout)
			return nil
		case err != nil:
			usage(stderr)
			return fmt.Errorf("%s: %w", c.name, err)
		}
		// -h or --help after a positional argument (migrate status --help).
		for _, a := range fs.Args() {
			if a == "-h" || a == "-help" || a == "--help" {
				usage(stdout)
				return nil
			}
		}
		err := do(ctx, e, fs.Args())
		if errors.As(err, new(usageError)) {
			usage(stderr)
		}
		return err
	}
	printUsage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, "Usage: telemetry <command> [flags]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands {
		fmt.Fprintf(tw, "  %s %s\t%s\n", c.name, c.args, c.summary)
	}
	fmt.Fprintf(tw, "  help, --help\tshow this help; <command> --help shows one command's\n")
	tw.Flush()
	fmt.Fprint(w, "\nEnvironment:\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
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
	opts.ExecMode = cfg.DatabaseExecMode
	return postgres.Open(ctx, cfg.DatabaseURL, opts)
}

// runMigrate migrates the database at MIGRATE_DATABASE_URL, or DATABASE_URL
// when that is unset. Up and down refuse a server in recovery (a replica).
func runMigrate(ctx context.Context, cfg config.Config, log *slog.Logger, sub string, stdout io.Writer) error {
	if sub != "" && sub != "up" && sub != "status" && sub != "down" {
		return fmt.Errorf("unknown migrate command %q (want status or down)", sub)
	}
	opts := postgres.Options{}
	if cfg.MigrateDatabaseURL != "" {
		cfg.DatabaseURL, opts.URLVar = cfg.MigrateDatabaseURL, "MIGRATE_DATABASE_URL"
	}
	st, err := openStore(ctx, cfg, opts)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := waitForDatabase(ctx, st.Ping, cfg.DatabaseWait, log); err != nil {
		return err
	}
	m, err := migrate.New(st.Pool())
	if err != nil {
		return err
	}
	defer m.Close()
	m.RetryWhen(postgres.LockTimedOut)
	switch sub {
	case "", "up":
		return m.Up(ctx, log)
	case "status":
		return m.Status(ctx, stdout)
	}
	return m.Down(ctx, log)
}

// keptCellsBytes is MEASUREMENTS_KEPT_CELLS_BYTES as the store's option
// takes it: there 0 is the default bound and a negative value keeps none.
func keptCellsBytes(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

// printToken prints a token for the device metrics API, like the Concertim
// daemon's create-auth-token.
func printToken(cfg config.Config, ttl time.Duration, stdout io.Writer) error {
	if err := cfg.RequireJWTSecret(); err != nil {
		return err
	}
	token, err := auth.New(cfg.JWTSecret).Issue(ttl)
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
	for _, w := range unsafeSettings(cfg) {
		log.Warn(w.msg, w.attrs...)
	}
	// The certificate is read before the database is reached: a missing
	// or mismatched file stops serve at once, with the file it is about.
	var certs *tlsfiles.Pair
	if cfg.TLSCertFile != "" {
		var err error
		if certs, err = tlsfiles.Load(cfg.TLSCertFile, cfg.TLSKeyFile); err != nil {
			return err
		}
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
		ReadURL:        cfg.DatabaseReadURL,
		ReadMaxLag:     cfg.ReadMaxLag,
		Log:            log,
		KeptCellsBytes: keptCellsBytes(cfg.MeasurementsKeptCellsBytes),
	})
	if err != nil {
		return err
	}
	defer st.Close()
	pool := st.Pool()
	if err := waitForDatabase(ctx, st.Ping, cfg.DatabaseWait, log); err != nil {
		return err
	}
	m, err := migrate.New(pool)
	if err != nil {
		return err
	}
	err = m.CheckCurrent(ctx)
	m.Close()
	var ahead *migrate.SchemaAhead
	if errors.As(err, &ahead) {
		// A later release migrated the database for its instances, which
		// replace this one: serve meanwhile, without the maintenance
		// pass the later release may run differently.
		log.Warn("the database schema is newer than this binary: serving, maintenance off until this binary is upgraded",
			"schema_version", ahead.Current, "binary_version", ahead.Latest)
		err = nil
	}
	if err != nil {
		return err
	}

	// Bind before any background work starts: on a port already taken (a
	// second `make run`) serve fails here, without a runtime sampler or a
	// maintenance pass started and cut short in its log first.
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	defer ln.Close() // an early return below; Shutdown closes it otherwise
	scheme := "http"
	var handshakeErrors prometheus.Counter
	if certs != nil {
		tcfg, tlsCounters := serverTLS(certs, log, prom)
		handshakeErrors = tlsCounters.HandshakeErrors
		ln, scheme = tls.NewListener(ln, tcfg), "https"
	}

	prom.RegisterPool(st.PoolStats)
	prom.RegisterKeptCells(st.KeptCells)
	if st.Replicated() {
		prom.RegisterReplica(st.ReplicaStats)
		prom.RegisterReplicaPool(st.ReplicaPoolStats)
	}
	// Self-profiling writes through the store: it is closed (flushed) after
	// the server stops and before the deferred st.Close.
	var prof *selfprofile.Profiler
	if cfg.SelfProfile && cfg.SelfProfileSample > 0 {
		prof = selfprofile.New(st.Measurements, log, prom.Registry, selfprofile.Config{
			Sample: cfg.SelfProfileSample, Exclude: cfg.SelfProfileExclude, Detail: selfProfileDetail(cfg.SelfProfileDetail)})
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
	// The sealing loop (SEAL_INTERVAL) runs also without it (cron users).
	if (cfg.MaintenanceInterval > 0 || cfg.SealInterval > 0) && ahead == nil {
		lc := lifecycle.New(st.Lifecycle, retentionOf(cfg), log, prom.Registry)
		if cfg.MaintenanceInterval > 0 {
			lc.Start(cfg.MaintenanceInterval)
		}
		if cfg.SealInterval > 0 {
			lc.StartSealing(cfg.SealInterval)
		}
		defer lc.Close()
	}
	exports := api.NewExports()
	handler, _ := api.New(api.Deps{Store: st.Stores(), Log: log, Metrics: prom, Config: cfg, Profiler: prof, Exports: exports})
	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, cfg.PprofHosts(), log)
		if err != nil {
			return fmt.Errorf("PPROF_ADDR: %w", err)
		}
		defer stopPprof()
	}

	// READ_TIMEOUT is not the server's ReadTimeout: the API bounds each
	// request's body itself (internal/api/limits.go), in step with huma's
	// per-operation body read timeout.
	// Handlers still running: after a shutdown that ran out of time, the
	// final self-profiling write waits for the ones Abort cut to record
	// themselves.
	var running atomic.Int64
	served := handler
	handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		running.Add(1)
		defer running.Add(-1)
		served.ServeHTTP(w, r)
	})
	srv := &http.Server{
		Handler:           handler,
		ConnContext:       api.ConnContext,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          serverErrorLog(log, handshakeErrors),
	}
	if certs != nil {
		// No HTTP/2 (serverTLS): none offered, none set up by net/http.
		srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){}
	}
	log.Info("listening", "addr", ln.Addr().String(), "scheme", scheme, "allowed_hosts", cfg.AllowedHosts.String())
	fmt.Fprintf(stdout, "telemetry: serving on %s://%s (docs at /docs)\n", scheme, ln.Addr().String())

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
		// The exports still streaming end themselves first, as a failed
		// one does, and count as interrupted: closed here, each was
		// counted as a client that went away.
		ictx, icancel := context.WithTimeout(context.Background(), exportsInterruptTimeout)
		exports.Interrupt(ictx)
		icancel()
		if err := srv.Close(); err != nil {
			log.Warn("closing connections", "error", err.Error())
		}
		// Their clients are gone: the writes still running on deadlines of
		// their own (a flows round or a device batch waiting on a lock) are
		// cut too, or the pool's close would wait for them, up to minutes.
		st.Abort()
	}
	// Commit the device metric reports still queued before the
	// self-profiling flush and the pool close (st.Close, deferred, closes
	// the devices again: a no-op).
	st.Devices.Close()
	fctx, fcancel := sctx, context.CancelFunc(func() {})
	if sctx.Err() != nil {
		// SHUTDOWN_TIMEOUT is spent: the final flush gets a short time of
		// its own, its writes no longer cut by the Abort above (which
		// failed it: the records of the cut requests and any still
		// buffered were lost, found by an audit) but by one at its end.
		fctx, fcancel = context.WithTimeout(context.Background(), finalFlushTimeout)
		st.Resume()
		reabort := time.AfterFunc(finalFlushTimeout, st.Abort)
		defer reabort.Stop()
		for running.Load() > 0 && fctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
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

// exportsInterruptTimeout bounds the wait for the exports that a shutdown
// interrupts to end (each cancels its query and cuts its connection: a
// matter of milliseconds unless the database does not answer the cancel).
const exportsInterruptTimeout = 2 * time.Second

// healthcheck asks the server listening on LISTEN_ADDR whether it is ready
// (over HTTPS when TLS_CERT_FILE is set); container images have no curl,
// so the binary checks itself.
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
	// The request names the address it reached, not LISTEN_ADDR's name:
	// an IP address as Host passes whatever ALLOWED_HOSTS lists, and a
	// name there (localhost, the machine's name) may not be listed.
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return err
	}
	defer conn.Close()
	conns := make(chan net.Conn, 1)
	conns <- conn
	scheme := "http"
	var tlsConf *tls.Config
	if cfg.TLSCertFile != "" {
		// The server this process's own LISTEN_ADDR reaches, by address:
		// its certificate names the service's public names, not that
		// address, and whether clients trust it is theirs to check. A
		// liveness probe sends nothing secret.
		scheme, tlsConf = "https", &tls.Config{InsecureSkipVerify: true}
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   tlsConf,
		DisableKeepAlives: true,
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			select {
			case c := <-conns:
				return c, nil
			default:
				return nil, errors.New("healthcheck: one connection only")
			}
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+conn.RemoteAddr().String()+"/readyz", nil)
	if err != nil {
		return err
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		// net/http's answer to plain HTTP on an HTTPS port.
		head, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		if tlsConf == nil && res.StatusCode == http.StatusBadRequest && strings.Contains(string(head), "HTTPS server") {
			return fmt.Errorf("not ready: %s: LISTEN_ADDR serves HTTPS; give the healthcheck the server's TLS_CERT_FILE and TLS_KEY_FILE too", res.Status)
		}
		return fmt.Errorf("not ready: %s", res.Status)
	}
	return nil
}

// selfProfileDetail maps SELF_PROFILE_DETAIL to selfprofile.Config.Detail,
// where 0 means the default and a negative number none.
func selfProfileDetail(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// unsafeSetting is a warning serve logs at start about a setting that is
// meant for development or must not be reachable from the network.
type unsafeSetting struct {
	msg   string
	attrs []any
}

// unsafeSettings lists what serve warns about at start (found by a
// security audit: these settings were taken silently, and an operator who
// copied `make run`'s environment into a deployment had no sign of it):
//
//   - ENABLE_TOKEN_ENDPOINT=true: anyone who reaches the service gets a
//     token from POST /mrd/token, so the device registry's writes,
//     AUTH_WRITES and AUTH_READS keep out no one;
//   - PPROF_ADDR on an address other than loopback: the profiler has no
//     authentication, and its CPU profiles and traces cost the service.
//
// Both stay allowed (make run sets the first), as warnings.
func unsafeSettings(cfg config.Config) []unsafeSetting {
	var out []unsafeSetting
	if cfg.EnableTokenEndpoint {
		out = append(out, unsafeSetting{
			msg:   "ENABLE_TOKEN_ENDPOINT=true: anyone who reaches the service gets a token from POST /mrd/token (development only)",
			attrs: []any{"auth_writes", cfg.AuthWrites, "auth_reads", cfg.AuthReads}})
	}
	if cfg.PprofAddr != "" && !config.LoopbackAddr(cfg.PprofAddr) {
		out = append(out, unsafeSetting{
			msg:   "PPROF_ADDR is not a loopback address: the profiler answers anyone who reaches it, without authentication",
			attrs: []any{"addr", cfg.PprofAddr}})
	}
	return out
}
