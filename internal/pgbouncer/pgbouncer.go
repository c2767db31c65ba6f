// Package pgbouncer starts Debian's PgBouncer in front of a PostgreSQL
// server, for tests that check the service behind a pooler in transaction
// pooling mode (the way teams scale it out: docs/scaling.md). It writes a
// small configuration into a directory and runs the binary in the
// foreground as a child process; Stop ends it.
//
// PgBouncer refuses to run as root: when the current user is root it is
// started as root and told to switch to the "postgres" user (its `user`
// setting), as pgcluster runs the server.
package pgbouncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Options describes the pooler to start.
type Options struct {
	// Dir holds the configuration, the user list and the log.
	Dir string
	// ServerHost and ServerPort are the PostgreSQL server pooled; every
	// database name a client asks for is forwarded to the same name there.
	ServerHost string
	ServerPort int
	// PoolMode is "transaction" (the default here), "session" or "statement".
	PoolMode string
	// DefaultPoolSize is the server connections per database and user pair
	// (PgBouncer's default_pool_size; 20 when 0).
	DefaultPoolSize int
	// RoundRobin hands out server connections in turn (server_round_robin)
	// instead of the most recently used first: consecutive transactions of
	// one client then land on different server connections, as they do in
	// a busy deployment, so a test can see session state go astray.
	RoundRobin bool
}

// Bouncer is a running PgBouncer.
type Bouncer struct {
	Port int
	Dir  string
	cmd  *exec.Cmd
	done chan error
}

// PIDFile is the file in Options.Dir where PgBouncer writes its process
// id (removed when it exits), for testdb's reaper.
const PIDFile = "pgbouncer.pid"

// Binary is where Debian's package installs PgBouncer; PGBOUNCER overrides it.
func Binary() string {
	if p := os.Getenv("PGBOUNCER"); p != "" {
		return p
	}
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p
	}
	return "/usr/sbin/pgbouncer"
}

// Available reports whether the PgBouncer binary is installed.
func Available() bool {
	_, err := os.Stat(Binary())
	return err == nil
}

// Start writes the configuration and starts PgBouncer on a free port of
// 127.0.0.1, returning once it accepts connections.
func Start(ctx context.Context, opts Options) (*Bouncer, error) {
	if opts.PoolMode == "" {
		opts.PoolMode = "transaction"
	}
	if opts.DefaultPoolSize == 0 {
		opts.DefaultPoolSize = 20
	}
	if opts.ServerHost == "" {
		opts.ServerHost = "127.0.0.1"
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	runAs := ""
	if os.Geteuid() == 0 {
		runAs = "postgres"
		if err := chownTo(dir, runAs); err != nil {
			return nil, err
		}
	}
	// auth_type trust still wants the user in auth_file; the test server
	// trusts local connections, so no password travels either way.
	userlist := filepath.Join(dir, "userlist.txt")
	if err := os.WriteFile(userlist, []byte(`"postgres" ""`+"\n"), 0o644); err != nil {
		return nil, err
	}
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
admin_users = postgres
pool_mode = %s
default_pool_size = %d
max_client_conn = 2000
ignore_startup_parameters = extra_float_digits
logfile = %s
pidfile = %s
`, opts.ServerHost, opts.ServerPort, port, userlist, opts.PoolMode, opts.DefaultPoolSize, filepath.Join(dir, "pgbouncer.log"),
		filepath.Join(dir, PIDFile))
	if opts.RoundRobin {
		ini += "server_round_robin = 1\n"
	}
	if runAs != "" {
		ini += "user = " + runAs + "\n"
	}
	iniPath := filepath.Join(dir, "pgbouncer.ini")
	if err := os.WriteFile(iniPath, []byte(ini), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.Command(Binary(), iniPath)
	cmd.Dir = dir
	// Before the log file opens, PgBouncer complains on stderr.
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	// Its own process group, so that a Ctrl-C at the terminal does not
	// reach it: the test stops it, or, when the test process is cut short,
	// the test's reaper does through the pid file (testdb.Watch).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgbouncer: %w", err)
	}
	b := &Bouncer{Port: port, Dir: dir, cmd: cmd, done: make(chan error, 1)}
	go func() { b.done <- cmd.Wait() }()
	if err := b.waitListening(ctx); err != nil {
		_ = b.Stop()
		return nil, fmt.Errorf("pgbouncer did not start (log in %s): %w %s", filepath.Join(dir, "pgbouncer.log"), err, strings.TrimSpace(stderr.String()))
	}
	return b, nil
}

// Pid is the pooler's process id.
func (b *Bouncer) Pid() int { return b.cmd.Process.Pid }

// URL is a connection string for database through the pooler.
func (b *Bouncer) URL(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", b.Port, database)
}

// Via rewrites a URL of the pooled server (as testdb gives) to go through
// the pooler: same user, database and parameters, the pooler's address.
func (b *Bouncer) Via(serverURL string) string {
	u, err := url.Parse(serverURL)
	if err != nil {
		return serverURL
	}
	u.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port))
	return u.String()
}

// Log is what PgBouncer logged so far (for a failing test's message).
func (b *Bouncer) Log() string {
	out, _ := os.ReadFile(filepath.Join(b.Dir, "pgbouncer.log"))
	return string(out)
}

// Stop shuts PgBouncer down (SIGINT: close client connections at once) and
// waits for it.
func (b *Bouncer) Stop() error {
	if b.cmd.Process == nil {
		return nil
	}
	_ = b.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-b.done:
		return nil
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
		return errors.New("pgbouncer: killed after 10 s")
	}
}

func (b *Bouncer) waitListening(ctx context.Context) error {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-b.done:
			b.done <- err
			return fmt.Errorf("exited: %v: %s", err, strings.TrimSpace(b.Log()))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port)), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("not listening after 15 s")
}

func chownTo(dir, name string) error {
	u, err := user.Lookup(name)
	if err != nil {
		return fmt.Errorf("running as root needs a %s user to run PgBouncer as: %w", name, err)
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
