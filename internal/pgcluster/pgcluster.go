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
	// Password, when not empty, is the postgres role's password in a new
	// cluster, and every connection must give it (initdb
	// --auth=scram-sha-256): the local cluster of `make run` (cmd/devdb),
	// which lives on and may sit on a shared machine. Empty: initdb
	// --auth=trust, any local user connects as any role without a password.
	// The throwaway test clusters keep trust: the tests log in as roles they
	// create without passwords (the analysts' roles), PgBouncer's test
	// configuration (internal/pgbouncer) trusts the server, and replicas
	// (StartReplica) stream over a trusted replication connection; the
	// clusters live as long as the tests, hold only test data, and are
	// removed at the end. Used by initdb only: a cluster that exists keeps
	// its pg_hba.conf (RequirePassword changes it).
	Password string
	// TimeZone, when not empty, is the server's default TimeZone for every
	// session (-c timezone=...); empty leaves initdb's choice, the
	// machine's zone. The throwaway test clusters set one with a half-hour
	// offset and daylight saving time (internal/testdb), so that a query
	// that cuts hours or days in the session's zone fails the tests.
	TimeZone string
	// WALDir, when not empty, is where a new cluster keeps its write-ahead
	// log (initdb --waldir: pgdata/pg_wal becomes a link to it), so that
	// the WAL may sit on another volume than the data files: the disk-full
	// tests (cmd/telemetry/diskfull_test.go) fill each one apart. It must
	// be empty or not exist; when we are root it is given to the postgres
	// user. Used by initdb only: a cluster that exists keeps its own.
	WALDir string
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

// BinDir is the directory of the server binaries the cluster runs (PG_BIN,
// or the newest /usr/lib/postgresql/*/bin): its pg_dump and pg_restore
// are those of the server's version.
func (c *Cluster) BinDir() string { return c.bin }

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
	if err := ChownToPostgres(dir); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		locale, err := initdbLocale(opts.Locale)
		if err != nil {
			return nil, err
		}
		args := append([]string{"-D", c.dataDir(), "-U", "postgres", "--encoding=UTF8", "--no-instructions"}, locale...)
		if opts.WALDir != "" {
			wal, err := filepath.Abs(opts.WALDir)
			if err != nil {
				return nil, err
			}
			if err := os.MkdirAll(wal, 0o700); err != nil {
				return nil, err
			}
			if err := ChownToPostgres(wal); err != nil {
				return nil, err
			}
			args = append(args, "--waldir="+wal)
		}
		if err := c.initdb(ctx, args, opts.Password); err != nil {
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
	if opts.TimeZone != "" {
		if strings.ContainsAny(opts.TimeZone, " '\"\x00") {
			return nil, fmt.Errorf("time zone %q: want a name such as UTC or America/St_Johns", opts.TimeZone)
		}
		settings = append(settings, "-c", "timezone="+opts.TimeZone)
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

// initdb runs initdb with args and the authentication password asks for.
// The password goes through a file (--pwfile) that initdb, run as the
// postgres user when we are root, can read: in the cluster's directory,
// which that user owns, private, and removed once initdb is done.
func (c *Cluster) initdb(ctx context.Context, args []string, password string) error {
	if password == "" {
		return c.run(ctx, "initdb", append(args, "--auth=trust")...)
	}
	if strings.ContainsAny(password, "\r\n") {
		return errors.New("the password may not contain a line break")
	}
	f, err := os.CreateTemp(c.Dir, "initdb-password-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(password + "\n")
	if err = errors.Join(err, f.Close()); err != nil {
		return err
	}
	if err := ChownToPostgres(f.Name()); err != nil {
		return err
	}
	return c.run(ctx, "initdb", append(args, "--auth=scram-sha-256", "--pwfile="+f.Name())...)
}

// Initialised says whether the cluster's data directory has been created
// (initdb has run).
func (c *Cluster) Initialised() bool {
	_, err := os.Stat(filepath.Join(c.dataDir(), "PG_VERSION"))
	return err == nil
}

// Trusts says whether the cluster's pg_hba.conf lets some connections in
// without a password (a "trust" method): a cluster initialised without
// Options.Password.
func (c *Cluster) Trusts() (bool, error) {
	lines, err := c.hbaLines()
	if err != nil {
		return false, err
	}
	for _, l := range lines {
		if l.method() == "trust" {
			return true, nil
		}
	}
	return false, nil
}

// RequirePassword changes every "trust" method of the cluster's
// pg_hba.conf to scram-sha-256 and has the running server reload it: from
// then on a connection needs its role's password. Set the password first
// (ALTER ROLE ... PASSWORD): a role without one can no longer log in.
// Comments and the other lines are kept as they are.
func (c *Cluster) RequirePassword(ctx context.Context) error {
	lines, err := c.hbaLines()
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, l := range lines {
		if l.method() == "trust" {
			// Rewritten from its fields: its spacing and a comment at its
			// end are not kept.
			l.fields[l.methodField()] = "scram-sha-256"
			b.WriteString(strings.Join(l.fields, "\t"))
		} else {
			b.WriteString(l.text)
		}
		b.WriteString("\n")
	}
	// Written in place: the file keeps its owner (postgres) and mode.
	if err := os.WriteFile(c.hbaFile(), []byte(b.String()), 0o600); err != nil {
		return err
	}
	return c.run(ctx, "pg_ctl", "-D", c.dataDir(), "reload")
}

func (c *Cluster) hbaFile() string { return filepath.Join(c.dataDir(), "pg_hba.conf") }

// hbaLine is a line of pg_hba.conf: its text, and its fields unless it is
// a comment or blank.
type hbaLine struct {
	text   string
	fields []string
}

// methodField is the index of the authentication method among the
// fields of a rule: after the connection type, database and user, and the
// address of a host rule (an IP address and a separate mask are two
// fields); -1 for a comment.
func (l hbaLine) methodField() int {
	switch {
	case len(l.fields) == 0:
		return -1
	case l.fields[0] == "local":
		return 3
	case len(l.fields) > 3 && !strings.Contains(l.fields[3], "/") && net.ParseIP(l.fields[3]) != nil:
		return 5
	}
	return 4
}

// method is the rule's authentication method, "" for a comment.
func (l hbaLine) method() string {
	if i := l.methodField(); i >= 0 && i < len(l.fields) {
		return l.fields[i]
	}
	return ""
}

func parseHBALine(text string) hbaLine {
	rule, _, _ := strings.Cut(text, "#")
	return hbaLine{text: text, fields: strings.Fields(rule)}
}

func (c *Cluster) hbaLines() ([]hbaLine, error) {
	b, err := os.ReadFile(c.hbaFile())
	if err != nil {
		return nil, err
	}
	var lines []hbaLine
	for _, text := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		lines = append(lines, parseHBALine(text))
	}
	return lines, nil
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

// Crash stops the cluster as a crash would (immediate mode: every server
// process quits at once, without a checkpoint; the next start replays the
// WAL), for tests of what the service does when its database dies.
func (c *Cluster) Crash(ctx context.Context) error {
	return c.run(ctx, "pg_ctl", "-D", c.dataDir(), "-m", "immediate", "-w", "stop")
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

// ChownToPostgres lets the postgres user write dir when we run as root
// (also a volume a test mounts for a cluster, cmd/telemetry/diskfull_test.go).
func ChownToPostgres(dir string) error {
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
