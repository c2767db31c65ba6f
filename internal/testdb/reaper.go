package testdb

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/telemetry/telemetry/internal/pgbouncer"
	"github.com/telemetry/telemetry/internal/pgcluster"
)

// A throwaway cluster is a daemon (pg_ctl starts it): it outlives the test
// process unless Run removes it at the end, and a test process that ends
// otherwise (Ctrl-C, go test's -timeout, a kill) used to leave the cluster
// running and its directory behind, one more each time. So the first
// throwaway directory starts a reaper: this same test binary again, in a
// session of its own (a Ctrl-C at the terminal does not reach it), reading
// the directories to watch from a pipe whose only writer is the test
// process. The pipe closes when the test process ends, however it ends;
// the reaper then stops every cluster and PgBouncer in those directories
// and removes them, and exits. After a normal end there is nothing left to do.

// reaperEnv marks the reaper's process.
const reaperEnv = "TESTDB_REAPER"

var (
	reaperMu sync.Mutex
	reaperW  *os.File // the pipe's write end, nil until the first watch
)

// Watch has dir (a temporary directory named telemetry-*, holding clusters
// in dir/pgdata or dir/*/pgdata, or a PgBouncer's files) stopped and
// removed when this process ends without removing it itself. Run watches
// the throwaway clusters it starts; a test that starts a cluster
// (pgcluster.Start) or a PgBouncer (pgbouncer.Start) of its own calls Watch
// with its directory first. Only in a test binary whose TestMain
// calls Run or ReapIfAsked (which run the reaper). A failure to start the reaper is
// reported and otherwise ignored: the tests run as they did before it.
func Watch(dir string) {
	reaperMu.Lock()
	defer reaperMu.Unlock()
	if reaperW == nil {
		w, err := startReaper()
		if err != nil {
			fmt.Fprintln(os.Stderr, "testdb: no reaper for the throwaway clusters (an interrupted run may leave one running):", err)
			return
		}
		reaperW = w
	}
	fmt.Fprintf(reaperW, "%s\n", dir)
}

func startReaper() (*os.File, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe() // close-on-exec: no other child inherits the write end
	if err != nil {
		return nil, err
	}
	defer r.Close()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), reaperEnv+"=1")
	cmd.ExtraFiles = []*os.File{r} // its fd 3
	// No stdio (go test waits for the test's output to close) and a
	// session of its own.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, err
	}
	_ = cmd.Process.Release()
	return w, nil
}

// ReapIfAsked makes this process the reaper when it was started as one
// (startReaper): it reaps, then exits. Every TestMain of a binary that may
// start a reaper calls it first: Run does, and a TestMain that does not
// call Run but whose tests call Watch calls it itself (the reaper is the
// test binary again, which would otherwise run the tests).
func ReapIfAsked() {
	if os.Getenv(reaperEnv) == "1" {
		reap()
		os.Exit(0)
	}
}

// reap is the reaper's life: the directories to watch until the pipe
// closes, then what they hold stopped (removeWatched) and the directories
// removed.
func reap() {
	in := os.NewFile(3, "testdb-reaper")
	var dirs []string
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		if d := strings.TrimSpace(sc.Text()); filepath.IsAbs(d) && strings.HasPrefix(filepath.Base(d), "telemetry-") {
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		removeWatched(d)
	}
}

// removeWatched stops the PgBouncer whose pid file is in dir and the
// clusters whose data directories are dir/pgdata or dir/*/pgdata (a
// primary and its replica), then removes dir.
func removeWatched(dir string) {
	stopPgBouncer(filepath.Join(dir, pgbouncer.PIDFile))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	data, _ := filepath.Glob(filepath.Join(dir, "pgdata"))
	more, _ := filepath.Glob(filepath.Join(dir, "*", "pgdata"))
	for _, d := range append(data, more...) {
		if c, err := pgcluster.Open(filepath.Dir(d)); err == nil {
			_ = c.Stop(ctx)
		}
	}
	unmountUnder(dir)
	_ = os.RemoveAll(dir)
}

// unmountUnder detaches the file systems mounted under dir, the deepest
// first: the small volumes a disk-full test (cmd/telemetry/diskfull_test.go)
// mounts there and unmounts itself unless it is killed. RemoveAll would
// empty them and leave them mounted.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		// The kernel escapes a space, tab, newline and backslash in octal.
		p := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(f[1])
		if strings.HasPrefix(p, dir+string(filepath.Separator)) {
			points = append(points, p)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// stopPgBouncer ends the PgBouncer named by pidFile, if it still runs (it
// removes the file when it exits): SIGTERM, its immediate shutdown, then
// SIGKILL after 5 s. A process of that id that is not PgBouncer is left
// alone.
func stopPgBouncer(pidFile string) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err != nil || strings.TrimSpace(string(comm)) != "pgbouncer" {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}
