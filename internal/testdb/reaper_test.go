package testdb

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/telemetry/telemetry/internal/pgbouncer"
	"github.com/telemetry/telemetry/internal/pgcluster"
)

// This package's tests need no database of their own: only the reaper's
// dispatch of Run.
func TestMain(m *testing.M) {
	ReapIfAsked()
	os.Exit(m.Run())
}

// childEnv makes TestReaperRemovesAKilledProcessCluster's process the
// child that starts a watched cluster and waits to be killed.
const childEnv = "TESTDB_REAPER_TEST_CHILD"

// A test process killed outright (as go test's -timeout or a Ctrl-C ends
// one: no deferred call, no TestMain epilogue) leaves no cluster or
// PgBouncer running and no directory behind: its reaper stops and removes
// them.
func TestReaperRemovesAKilledProcessCluster(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		dir, err := os.MkdirTemp("", "telemetry-testpg-")
		if err != nil {
			t.Fatal(err)
		}
		Watch(dir)
		c, err := pgcluster.Start(context.Background(), pgcluster.Options{Dir: dir, Fast: true})
		if err != nil {
			t.Fatal(err)
		}
		bdir, err := os.MkdirTemp("", "telemetry-pgbouncer-")
		if err != nil {
			t.Fatal(err)
		}
		Watch(bdir)
		b, err := pgbouncer.Start(context.Background(), pgbouncer.Options{Dir: bdir, ServerPort: c.Port})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("pgbouncer", bdir, b.Pid())
		fmt.Println("cluster", dir)
		time.Sleep(time.Minute) // killed before
		t.Fatal("not killed")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReaperRemovesAKilledProcessCluster$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var dir, bdir string
	bouncer := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "cluster "); ok {
			dir = d
			break
		}
		if rest, ok := strings.CutPrefix(sc.Text(), "pgbouncer "); ok {
			d, pid, _ := strings.Cut(rest, " ")
			bdir, bouncer = d, atoi(pid)
		}
	}
	if dir == "" || bouncer <= 1 || syscall.Kill(bouncer, 0) != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("the child started no cluster or no PgBouncer")
	}
	pidFile, err := os.ReadFile(filepath.Join(dir, "pgdata", "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(pidFile), "\n")
	postmaster, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || syscall.Kill(postmaster, 0) != nil {
		t.Fatalf("no running postmaster in %s: %q", dir, first)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, statErr := os.Stat(dir)
		_, bstatErr := os.Stat(bdir)
		alive, balive := syscall.Kill(postmaster, 0) == nil, syscall.Kill(bouncer, 0) == nil
		if os.IsNotExist(statErr) && os.IsNotExist(bstatErr) && !alive && !balive {
			return
		}
		if time.Now().After(deadline) {
			// Clean up after a failure, so that it does not leak either.
			removeWatched(bdir)
			removeWatched(dir)
			t.Fatalf("60 s after the kill: directories %s (stat %v) and %s (stat %v), postmaster %d running %v, PgBouncer %d running %v",
				dir, statErr, bdir, bstatErr, postmaster, alive, bouncer, balive)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// The reaper unmounts what a killed test left mounted in a watched
// directory (the disk-full test's small volumes) before removing it: a
// removal alone would empty the volumes and leave them mounted. Mounting
// needs root with CAP_SYS_ADMIN, as the tests have here and in CI.
func TestReaperUnmountsVolumes(t *testing.T) {
	dir, err := os.MkdirTemp("", "telemetry-testpg-")
	if err != nil {
		t.Fatal(err)
	}
	vol := filepath.Join(dir, "data", "vol")
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", vol).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		t.Fatalf("mounting a tmpfs needs root with CAP_SYS_ADMIN: %v: %s", err, out)
	}
	t.Cleanup(func() {
		_ = syscall.Unmount(vol, syscall.MNT_DETACH)
		os.RemoveAll(dir)
	})
	if err := os.WriteFile(filepath.Join(vol, "file"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	removeWatched(dir)
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), " "+vol+" ") {
		t.Errorf("%s still mounted", vol)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", dir, err)
	}
}
