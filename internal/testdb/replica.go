package testdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/migrate"
	"github.com/telemetry/telemetry/internal/pgcluster"
)

// Pair is a primary cluster with a streaming replica (pg_basebackup -R,
// hot standby), for the tests of reads on a replica. A test binary starts
// one, the first time Replicated is called, apart from its other test
// server (a replica copies a whole cluster, and pausing its replay must not
// touch other tests); Run removes it at the end.
//
// Tests that use it must not call t.Parallel: they pause the replica's
// replay or stop it, and Replicated puts it back in order for the next.
type Pair struct {
	Primary, Replica *pgcluster.Cluster
	dir              string
	template         string
}

var (
	pairOnce sync.Once
	pair     *Pair
	pairErr  error
)

// Replicated creates a fresh migrated database for t on the pair's primary,
// waits until the replica has it, and returns the URLs of that database on
// the primary and on the replica. The database is dropped when t ends, and
// the replica is running and replaying again.
func Replicated(t testing.TB) (p *Pair, primaryURL, replicaURL string) {
	t.Helper()
	pairOnce.Do(func() { pair, pairErr = startPair() })
	if pairErr != nil {
		t.Fatalf("testdb: primary and replica: %v", pairErr)
	}
	p = pair
	ctx := context.Background()
	if err := p.restore(ctx); err != nil {
		t.Fatalf("testdb: replica: %v", err)
	}
	name := fmt.Sprintf("r_%d_%d", os.Getpid(), counter.Add(1))
	// FILE_COPY: a checkpoint and a copy of the files, which the replica
	// replays as such, instead of every page of the template in the WAL.
	if err := p.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{p.template}.Sanitize()+" STRATEGY FILE_COPY"); err != nil {
		t.Fatalf("testdb: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if err := p.restore(ctx); err != nil {
			t.Errorf("testdb: replica: %v", err)
		}
		_ = p.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	if err := p.CatchUp(ctx); err != nil {
		t.Fatalf("testdb: replica: %v", err)
	}
	return p, p.Primary.URL(name), p.Replica.URL(name)
}

func startPair() (*Pair, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "telemetry-replpg-")
	if err != nil {
		return nil, err
	}
	Watch(dir)
	// The clusters' own directories below belong to the postgres user when
	// the tests run as root: it must be able to reach them.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	p := &Pair{dir: dir, template: "tmpl_" + strconv.Itoa(os.Getpid())}
	fast := os.Getenv("TESTDB_DURABLE") != "1"
	if p.Primary, err = pgcluster.Start(ctx, pgcluster.Options{Dir: filepath.Join(dir, "primary"), Fast: fast, TimeZone: TimeZone()}); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("primary: %w", err)
	}
	// The template is migrated before the copy, so the replica starts with
	// it; each test's database then comes to it through the WAL.
	if err := p.exec(ctx, "CREATE DATABASE "+pgx.Identifier{p.template}.Sanitize()); err != nil {
		p.remove(ctx)
		return nil, err
	}
	pool, err := pgxpool.New(ctx, p.Primary.URL(p.template))
	if err != nil {
		p.remove(ctx)
		return nil, err
	}
	m, err := migrate.New(pool)
	if err == nil {
		err = m.Up(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
		m.Close()
	}
	pool.Close()
	if err != nil {
		p.remove(ctx)
		return nil, fmt.Errorf("migrate the template: %w", err)
	}
	if p.Replica, err = pgcluster.StartReplica(ctx, p.Primary, pgcluster.Options{Dir: filepath.Join(dir, "replica"), Fast: fast, TimeZone: TimeZone()}); err != nil {
		p.remove(ctx)
		return nil, fmt.Errorf("replica: %w", err)
	}
	return p, nil
}

// exec runs an administrative statement on the primary's postgres database.
func (p *Pair) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, p.Primary.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// replicaExec runs a statement on the replica's postgres database.
func (p *Pair) replicaExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, p.Replica.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// replicaQuery runs a query on the replica's postgres database and scans
// its one row into dest.
func (p *Pair) replicaQuery(ctx context.Context, sql string, dest ...any) error {
	conn, err := pgx.Connect(ctx, p.Replica.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, sql).Scan(dest...)
}

// PauseReplay stops the replica applying the primary's WAL (it keeps
// receiving it): from then on, the replica lags.
func (p *Pair) PauseReplay(ctx context.Context) error {
	return p.replicaExec(ctx, "SELECT pg_wal_replay_pause()")
}

// ResumeReplay lets the replica apply the WAL again.
func (p *Pair) ResumeReplay(ctx context.Context) error {
	return p.replicaExec(ctx, "SELECT pg_wal_replay_resume()")
}

// StopReplica shuts the replica down (Replicated starts it again for the
// next test).
func (p *Pair) StopReplica(ctx context.Context) error { return p.Replica.Stop(ctx) }

// FreezeReplica stops the replica's processes (SIGSTOP), as a host that
// hangs or a network cut without a reset would: its connections stay
// open, and nothing it was asked is answered or refused. thaw (SIGCONT)
// must be called before the test ends.
func (p *Pair) FreezeReplica() (thaw func(), err error) {
	b, err := os.ReadFile(filepath.Join(p.Replica.Dir, "pgdata", "postmaster.pid"))
	if err != nil {
		return nil, err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	postmaster, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return nil, fmt.Errorf("postmaster.pid: %w", err)
	}
	pids := []int{postmaster}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, not ")".
		_, rest, ok := strings.Cut(string(stat), ") ")
		if f := strings.Fields(rest); ok && len(f) > 1 && f[1] == strconv.Itoa(postmaster) {
			pids = append(pids, pid)
		}
	}
	signal := func(sig syscall.Signal) {
		for _, pid := range pids {
			_ = syscall.Kill(pid, sig)
		}
	}
	signal(syscall.SIGSTOP)
	return func() { signal(syscall.SIGCONT) }, nil
}

// CatchUp waits until the replica has replayed everything the primary had
// written when it was called.
func (p *Pair) CatchUp(ctx context.Context) error {
	var target int64
	conn, err := pgx.Connect(ctx, p.Primary.URL("postgres"))
	if err != nil {
		return err
	}
	err = conn.QueryRow(ctx, "SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint").Scan(&target)
	conn.Close(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var replayed int64
		err := p.replicaQuery(ctx, "SELECT COALESCE((pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint, 0)", &replayed)
		if err == nil && replayed >= target {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the replica did not catch up in a minute (replayed %d of %d; %v)", replayed, target, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// restore starts the replica when a test stopped it and resumes its replay
// when a test paused it.
func (p *Pair) restore(ctx context.Context) error {
	if _, err := pgcluster.Start(ctx, pgcluster.Options{Dir: p.Replica.Dir, Port: p.Replica.Port,
		Fast: os.Getenv("TESTDB_DURABLE") != "1", TimeZone: TimeZone()}); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return p.ResumeReplay(ctx)
}

func (p *Pair) remove(ctx context.Context) {
	var errs []error
	if p.Replica != nil {
		errs = append(errs, p.Replica.Stop(ctx))
	}
	errs = append(errs, p.Primary.Stop(ctx), os.RemoveAll(p.dir))
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(os.Stderr, "testdb: removing primary and replica:", err)
	}
}

// removePair stops and deletes the pair, if a test started one.
func removePair(ctx context.Context) {
	if pair != nil {
		pair.remove(ctx)
	}
}
