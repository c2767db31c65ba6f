// Command devdb manages the local development PostgreSQL cluster that
// `make run` uses when DATABASE_URL is unset: `devdb start` initialises
// ./.data/pg on first use, starts it (or finds it running) and prints the
// URL of its "telemetry" database; `devdb stop` stops it.
//
// The cluster asks every connection for the postgres role's password
// (scram-sha-256), a random one written at initdb into ./.data/pgpass, a
// libpq password file readable by its owner only. The URL names that file
// (passfile=...), so it holds no secret itself: psql and pgx read the
// password from the file, and it never appears on a command line. A
// cluster that trusted local connections (initialised before 2026-12-05)
// is given the password and made to ask for it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"

	"github.com/telemetry/telemetry/internal/pgcluster"
)

func main() {
	dir := flag.String("dir", ".data/pg", "cluster directory")
	passfile := flag.String("passfile", ".data/pgpass", "libpq password file with the postgres role's password (created with the cluster)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: devdb [-dir DIR] [-passfile FILE] start|stop")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(context.Background(), *dir, *passfile, flag.Arg(0), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "devdb:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, dir, passfile, cmd string, stdout, stderr io.Writer) error {
	if cmd == "start" || cmd == "stop" {
		unlock, err := lockDir(dir)
		if err != nil {
			return err
		}
		defer unlock()
	}
	switch cmd {
	case "start":
		u, err := start(ctx, dir, passfile, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, u)
		return nil
	case "stop":
		if _, err := os.Stat(dir); err != nil {
			return nil // nothing was ever started
		}
		c, err := pgcluster.Open(dir)
		if err != nil {
			return err
		}
		return c.Stop(ctx)
	}
	flag.Usage()
	return fmt.Errorf("unknown command %q", cmd)
}

// lockDir takes an exclusive lock on dir's cluster (a lock file beside
// it, dir + ".lock"), waiting for another devdb that holds it: two `make
// run`s (or `make run` and `make psql`) started together on a new
// checkout both ran initdb into the same directory and wrote the password
// file, and one failed.
func lockDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(dir+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil // closing the file releases the lock
}

// start starts the cluster (initialising it, with a new password, the
// first time) and returns the URL of its telemetry database.
func start(ctx context.Context, dir, passfile string, stderr io.Writer) (string, error) {
	passfile, err := filepath.Abs(passfile)
	if err != nil {
		return "", err
	}
	c, err := pgcluster.Open(dir)
	if err != nil {
		return "", err
	}
	password, err := readPassword(passfile)
	if errors.Is(err, fs.ErrNotExist) {
		if c.Initialised() {
			// A cluster made before the password: it trusts local
			// connections, and gets a password below. One that asks for a
			// password whose file is gone cannot be entered.
			if trusts, err := c.Trusts(); err != nil || !trusts {
				return "", errors.Join(err, fmt.Errorf("the cluster in %s asks for the postgres role's password, and %s, which held it, is missing: "+
					"`make clean` (or `devdb stop` and removing %s) deletes the cluster and its data, and the next start creates a new one", dir, passfile, dir))
			}
		}
		password, err = newPassword(passfile)
	}
	if err != nil {
		return "", err
	}
	c, err = pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Password: password})
	if err != nil {
		return "", err
	}
	trusts, err := c.Trusts()
	if err != nil {
		return "", err
	}
	if trusts {
		if err := requirePassword(ctx, c, urlOf(c, "postgres", passfile), password); err != nil {
			return "", fmt.Errorf("giving the cluster in %s a password: %w", dir, err)
		}
		fmt.Fprintf(stderr, "devdb: the cluster in %s let every local user in as its superuser without a password (trust): "+
			"it now asks for the postgres role's password, kept in %s\n", dir, passfile)
	}
	if err := ensureDatabase(ctx, urlOf(c, "postgres", passfile), "telemetry"); err != nil {
		return "", err
	}
	return urlOf(c, "telemetry", passfile), nil
}

// urlOf is the URL of database on c, its password read from passfile.
// libpq decodes %XX in a URL's values but not "+", so a space is %20.
func urlOf(c *pgcluster.Cluster, database, passfile string) string {
	return c.URL(database) + "&passfile=" + strings.ReplaceAll(url.QueryEscape(passfile), "+", "%20")
}

// passfileLine starts the line of the password file that holds the
// password: for the postgres role on 127.0.0.1, whatever the port (it may
// change) and the database.
const passfileLine = "127.0.0.1:*:*:postgres:"

// readPassword reads the password from passfile, making the file private
// if it was not (libpq ignores a password file others may read).
func readPassword(passfile string) (string, error) {
	b, err := os.ReadFile(passfile)
	if err != nil {
		return "", err
	}
	if err := os.Chmod(passfile, 0o600); err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), passfileLine); ok && p != "" {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s has no %q line", passfile, passfileLine+"password")
}

// newPassword writes a new random password (32 random bytes in hex: no
// character the password file or a SQL literal would need to escape) into
// passfile, readable by its owner only. The file appears whole or not at
// all (written aside, then linked into place): two first starts at once
// (two `make run`s) both get the password of the one that linked first,
// where the second used to fail on the file the first had just created, or
// read it half written.
func newPassword(passfile string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	password := hex.EncodeToString(b)
	if err := os.MkdirAll(filepath.Dir(passfile), 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Dir(passfile), ".pgpass-*") // 0600
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	_, err = fmt.Fprintf(f, "# The postgres role's password of the local cluster (cmd/devdb).\n%s%s\n", passfileLine, password)
	if err = errors.Join(err, f.Close()); err != nil {
		return "", err
	}
	if err := os.Link(f.Name(), passfile); errors.Is(err, fs.ErrExist) {
		return readPassword(passfile)
	} else if err != nil {
		return "", err
	}
	return password, nil
}

// requirePassword gives a cluster that trusts local connections the
// postgres role's password, then makes it ask for it.
func requirePassword(ctx context.Context, c *pgcluster.Cluster, adminURL, password string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	// A utility statement takes no parameters: format's %L quotes it.
	var stmt string
	if err := conn.QueryRow(ctx, `SELECT format('ALTER ROLE postgres PASSWORD %L', $1::text)`, password).Scan(&stmt); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return err
	}
	return c.RequirePassword(ctx)
}

func ensureDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return err
	}
	return nil
}
