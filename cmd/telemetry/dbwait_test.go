package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/telemetry/telemetry/internal/testdb"
)

// closedPort is a local TCP port that refuses connections until open is
// called: a socket bound to it that does not listen yet. Bound for the
// whole test, so no other process can take the port meanwhile (a port
// found free and released could be, and was, about once in 10,000 runs).
type closedPort struct {
	addr string
	fd   int
}

func newClosedPort(t *testing.T) *closedPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &closedPort{fd: fd}
	t.Cleanup(func() {
		if p.fd >= 0 {
			syscall.Close(p.fd)
		}
	})
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	p.addr = fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	return p
}

// open starts listening on the port; the listener then owns the socket.
func (p *closedPort) open() (net.Listener, error) {
	if err := syscall.Listen(p.fd, 128); err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(p.fd), p.addr)
	p.fd = -1                      // f owns it now
	ln, err := net.FileListener(f) // listens on a duplicate
	return ln, errors.Join(err, f.Close())
}

// closedAddr is a local TCP address that refuses connections for the
// whole test.
func closedAddr(t *testing.T) string {
	t.Helper()
	return newClosedPort(t).addr
}

// withHost is dbURL with its host and port replaced by addr.
func withHost(t *testing.T, dbURL, addr string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// proxy accepts on ln and forwards every connection to target.
func proxy(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			s, err := net.Dial("tcp", target)
			if err != nil {
				return
			}
			defer s.Close()
			go func() { io.Copy(s, c); s.(*net.TCPConn).CloseWrite() }()
			io.Copy(c, s)
		}()
	}
}

// onLine is a log writer that calls fn once, on the first line containing
// marker, before the logging call returns.
type onLine struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	fn     func()
}

func (w *onLine) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.fn != nil && bytes.Contains(p, []byte(w.marker)) {
		w.fn()
		w.fn = nil
	}
	return len(p), nil
}

func (w *onLine) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestMigrateWaitsForTheDatabase: migrate started while the database's
// port is closed logs a retry and succeeds once the port opens. The port
// opens when the first retry is logged, so nothing depends on timing.
func TestMigrateWaitsForTheDatabase(t *testing.T) {
	real := testdb.Empty(t)
	target, err := url.Parse(real)
	if err != nil {
		t.Fatal(err)
	}
	port := newClosedPort(t)
	addr := port.addr
	var opened net.Listener
	stderr := &onLine{marker: "database unreachable, retrying", fn: func() {
		ln, err := port.open()
		if err != nil {
			t.Errorf("opening the database port: %v", err)
			return
		}
		opened = ln
		go proxy(ln, target.Host)
	}}
	t.Cleanup(func() {
		if opened != nil {
			opened.Close()
		}
	})
	err = run(context.Background(), []string{"migrate"},
		env(map[string]string{"DATABASE_URL": withHost(t, real, addr), "DATABASE_WAIT": "60s"}), io.Discard, stderr)
	if err != nil {
		t.Fatalf("migrate: %v\n%s", err, stderr)
	}
	log := stderr.String()
	for _, want := range []string{`"msg":"database unreachable, retrying","attempt":1`, `"msg":"database reachable"`, `"msg":"schema up to date"`} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %s:\n%s", want, log)
		}
	}
	if opened == nil {
		t.Fatal("migrate succeeded without the port ever opening")
	}
}

// TestMigrateGivesUpOnTheDatabase: a port that stays closed ends the wait
// with an error naming DATABASE_WAIT, after logging each retry; 0 tries
// once.
func TestMigrateGivesUpOnTheDatabase(t *testing.T) {
	dbURL := "postgres://telemetry@" + closedAddr(t) + "/telemetry?sslmode=disable"
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"migrate"},
		env(map[string]string{"DATABASE_URL": dbURL, "DATABASE_WAIT": "1s"}), io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "still unreachable after") || !strings.Contains(err.Error(), "DATABASE_WAIT=1s") {
		t.Fatalf("migrate against a closed port: %v", err)
	}
	if n := strings.Count(stderr.String(), "database unreachable, retrying"); n < 1 {
		t.Fatalf("no retry logged:\n%s", stderr.String())
	}

	stderr.Reset()
	err = run(context.Background(), []string{"migrate"},
		env(map[string]string{"DATABASE_URL": dbURL, "DATABASE_WAIT": "0"}), io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_WAIT is 0") {
		t.Fatalf("migrate with DATABASE_WAIT=0: %v", err)
	}
	if strings.Contains(stderr.String(), "retrying") {
		t.Fatalf("DATABASE_WAIT=0 retried:\n%s", stderr.String())
	}
}

// TestServeWaitsForTheDatabaseToo: serve goes through the same wait.
func TestServeWaitsForTheDatabaseToo(t *testing.T) {
	dbURL := "postgres://telemetry@" + closedAddr(t) + "/telemetry?sslmode=disable"
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"serve"}, env(map[string]string{"DATABASE_URL": dbURL, "DATABASE_WAIT": "1s",
		"JWT_SECRET": testSecret, "LISTEN_ADDR": "127.0.0.1:0"}), io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_WAIT=1s") || !strings.Contains(stderr.String(), "database unreachable, retrying") {
		t.Fatalf("serve against a closed port: %v\n%s", err, stderr.String())
	}
}

// TestWaitDoesNotRetryWhatTimeCannotMend: an unknown database fails at
// once, without a retry.
func TestWaitDoesNotRetryWhatTimeCannotMend(t *testing.T) {
	u, err := url.Parse(testdb.Empty(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/no_such_database"
	var stderr bytes.Buffer
	err = run(context.Background(), []string{"migrate"},
		env(map[string]string{"DATABASE_URL": u.String(), "DATABASE_WAIT": "60s"}), io.Discard, &stderr)
	if err == nil || !strings.Contains(err.Error(), "no_such_database") {
		t.Fatalf("migrate on an unknown database: %v", err)
	}
	if strings.Contains(stderr.String(), "retrying") {
		t.Fatalf("an unknown database was retried:\n%s", stderr.String())
	}
}

func TestDatabaseWaitMustBeADuration(t *testing.T) {
	for _, v := range []string{"soon", "-1s", "60"} {
		err := run(context.Background(), []string{"migrate"}, env(map[string]string{"DATABASE_URL": "x", "DATABASE_WAIT": v}), io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "DATABASE_WAIT") {
			t.Errorf("DATABASE_WAIT=%s: %v", v, err)
		}
	}
}
