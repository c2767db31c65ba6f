// Package pgcluster starts a private PostgreSQL cluster from the server
// binaries installed on the machine: a throwaway one for tests, or a
// persistent one under ./.data for `make run`. It does what a developer would
// do by hand (initdb, pg_ctl start) and nothing more.
//
// initdb and postgres refuse to run as root, so when the current user is
// root the binaries run as the "postgres" user through runuser.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Options tunes a cluster.
type Options struct {
	// Dir holds the cluster's data directory ("pgdata"), its log and its port.
	Dir string
	// Fast turns off fsync and synchronous commit: for throwaway test
	// clusters only, never for data anyone keeps.
	Fast bool
	// Port to listen on; 0 picks a free one (or the one used last time).
	Port int
	// StatStatements preloads pg_stat_statements (with planning times), so
	// that a benchmark can say which statements took the time. It ships
	// with PostgreSQL itself.
	StatStatements bool
	// Locale is the new cluster's default collation: "" or "C" (what the
	// tests, make run and the benchmarks use), another libc locale
	// ("C.UTF-8"), or "icu:" and an ICU locale ("icu:en-US"), to measure
	// the service on a database with a linguistic collation
	// (docs/performance.md, "The database's collation"). Used by initdb
	// only: a cluster that exists keeps its own.
	Locale string
}

// initdbLocale gives initdb's locale arguments for Options.Locale.
func initdbLocale(locale string) ([]string, error) {
	switch {
	case locale == "" || locale == "C":
		return []string{"--locale=C"}, nil
	case strings.HasPrefix(locale, "icu:") && len(locale) > len("icu:"):
		// The ICU collation is the default one; ctype and messages stay on
		// a libc locale every Debian has.
		return []string{"--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=" + strings.TrimPrefix(locale, "icu:")}, nil
	case strings.HasPrefix(locale, "icu:") || strings.ContainsAny(locale, " =\x00"):
		return nil, fmt.Errorf("locale %q: want C, a libc locale such as C.UTF-8, or icu:<ICU locale>", locale)
	}
	return []string{"--locale=" + locale}, nil
}

// Cluster is a running PostgreSQL cluster.
type Cluster struct {
	Dir  string
	Port int
	bin  string
}

// URL is a connection string for database name on this cluster.
func (c *Cluster) URL(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, database)
}

func (c *Cluster) dataDir() string { return filepath.Join(c.Dir, "pgdata") }

// Start initialises the cluster when its directory is new and starts it,
// unless it is already running, in which case it is reused.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	c, err := Open(opts.Dir)
	if err != nil {
		return nil, err
	}
	dir := c.Dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := chownToPostgres(dir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		locale, err := initdbLocale(opts.Locale)
		if err != nil {
			return nil, err
		}
		args := append([]string{"-D", c.dataDir(), "-U", "postgres", "--auth=trust", "--encoding=UTF8"}, locale...)
		if err := c.run(ctx, "initdb", append(args, "--no-instructions")...); err != nil {
			return nil, fmt.Errorf("initdb: %w", err)
		}
	}
	portFile := filepath.Join(dir, "port")
	if c.running(ctx) {
		if b, err := os.ReadFile(portFile); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				c.Port = p
				return c, nil
			}
		}
		// Running but we lost its port: restart it on a known one.
		_ = c.Stop(ctx)
	}
	c.Port = opts.Port
	if c.Port == 0 {
		if b, err := os.ReadFile(portFile); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && portFree(p) {
				c.Port = p
			}
		}
	}
	if c.Port == 0 {
		if c.Port, err = freePort(); err != nil {
			return nil, err
		}
	}
	settings := []string{
		"-p", strconv.Itoa(c.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		"-c", "max_connections=200",
	}
	if opts.Fast {
		settings = append(settings, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	settings = append(settings, c.preloadSettings(opts)...)
	if err := c.run(ctx, "pg_ctl", "-D", c.dataDir(), "-l", filepath.Join(dir, "postgres.log"),
		"-w", "-t", "60", "-o", strings.Join(settings, " "), "start"); err != nil {
		return nil, fmt.Errorf("pg_ctl start (log in %s): %w", filepath.Join(dir, "postgres.log"), err)
	}
	if err := os.WriteFile(portFile, []byte(strconv.Itoa(c.Port)+"\n"), 0o644); err != nil {
		return nil, err
	}
	return c, nil
}

// HasTimescaleDB says whether the installation in use ships TimescaleDB:
// its library in the package library directory, as the installation's
// pg_config --pkglibdir names it (<bindir>/../lib, the Debian layout, when
// there is no pg_config beside the binaries).
func (c *Cluster) HasTimescaleDB() bool {
	lib := filepath.Join(c.bin, "..", "lib")
	if out, err := exec.Command(filepath.Join(c.bin, "pg_config"), "--pkglibdir").Output(); err == nil {
		lib = strings.TrimSpace(string(out))
	}
	_, err := os.Stat(filepath.Join(lib, "timescaledb.so"))
	return err == nil
}

// preloadSettings preloads TimescaleDB when the installation has it, so
// that migrations/00001 creates the extension and the time-series tables
// become hypertables: the whole test suite then runs on them. Telemetry
// (phoning home) is off. Throwaway clusters also get no background
// workers: the maintenance pass (internal/lifecycle) does the retention and
// compression work itself, and tests must not race a job scheduler.
// pg_stat_statements, when asked for, is preloaded beside it.
func (c *Cluster) preloadSettings(opts Options) []string {
	var libs, s []string
	if c.HasTimescaleDB() {
		libs = append(libs, "timescaledb")
		s = append(s, "-c", "timescaledb.telemetry_level=off")
		if opts.Fast {
			s = append(s, "-c", "timescaledb.max_background_workers=0")
		}
	}
	if opts.StatStatements {
		libs = append(libs, "pg_stat_statements")
		s = append(s, "-c", "pg_stat_statements.track_planning=on")
	}
	if len(libs) == 0 {
		return nil
	}
	return append([]string{"-c", "shared_preload_libraries=" + strings.Join(libs, ",")}, s...)
}

// Open names the cluster in dir without starting it (to stop it, say).
func Open(dir string) (*Cluster, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return &Cluster{Dir: abs, bin: bin}, nil
}

// Stop shuts the cluster down (fast mode: open sessions are disconnected).
func (c *Cluster) Stop(ctx context.Context) error {
	if !c.running(ctx) {
		return nil
	}
	return c.run(ctx, "pg_ctl", "-D", c.dataDir(), "-m", "fast", "-w", "stop")
}

// Remove stops the cluster and deletes its directory.
func (c *Cluster) Remove(ctx context.Context) error {
	err := c.Stop(ctx)
	return errors.Join(err, os.RemoveAll(c.Dir))
}

func (c *Cluster) running(ctx context.Context) bool {
	if _, err := os.Stat(filepath.Join(c.dataDir(), "postmaster.pid")); err != nil {
		return false
	}
	return c.run(ctx, "pg_ctl", "-D", c.dataDir(), "status") == nil
}

// run executes one of the server binaries, as the postgres user when root.
func (c *Cluster) run(ctx context.Context, name string, args ...string) error {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	// The server must outlive this process's stdio: pg_ctl keeps the
	// descriptors it is given, so hand it none.
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Dir = c.Dir
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// findBinaries locates initdb and pg_ctl: $PG_BIN, then the newest
// /usr/lib/postgresql/*/bin, then $PATH.
func findBinaries() (string, error) {
	if dir := os.Getenv("PG_BIN"); dir != "" {
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server binaries (initdb, pg_ctl) not found: install them (apt-get install postgresql) or set PG_BIN")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// chownToPostgres lets the postgres user write dir when we run as root.
func chownToPostgres(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("running as root needs a postgres user to run the server as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(dir, uid, gid)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
