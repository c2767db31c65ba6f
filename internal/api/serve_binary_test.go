package api

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// serveBinary is the cmd/telemetry binary a benchmark runs as a process of
// its own: the one named by binEnv when set (MIXED_BIN, VOLUME_BIN: another
// build under the same load), else this tree's, built into b's temporary
// folder.
func serveBinary(b *testing.B, binEnv string) string {
	b.Helper()
	if bin := os.Getenv(binEnv); bin != "" {
		return bin
	}
	bin := filepath.Join(b.TempDir(), "telemetry")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/telemetry").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startServeBinary runs `bin serve` with env added to this process's
// environment, and answers the address it serves on (from its first line),
// its pid, and stop, which interrupts it and waits for it to exit. It ends
// with this process however this one ends (a -timeout, a kill), as its
// database does (internal/testdb/reaper.go): never left serving on. Its
// log goes to this process's stderr.
func startServeBinary(b *testing.B, bin string, env []string) (base string, pid int, stop func()) {
	b.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		stop()
		b.Fatalf("server printed nothing: %v", err)
	}
	if _, err := fmt.Sscanf(line, "telemetry: serving on %s", &base); err != nil {
		stop()
		b.Fatalf("unexpected first line %q", line)
	}
	return base, cmd.Process.Pid, stop
}
