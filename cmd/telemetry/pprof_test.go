package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/telemetry/telemetry/internal/testdb"
)

// PPROF_ADDR serves the profiler on its own address only, and stops with
// the server.
func TestServePprofAddr(t *testing.T) {
	// Port 0: the profiler's log line says where it listens (a port found
	// free beforehand could be taken before serve binds it).
	base, stop, done, logs := startServeLogged(t, map[string]string{"DATABASE_URL": testdb.URL(t), "LISTEN_ADDR": "127.0.0.1:0",
		"JWT_SECRET": testSecret, "PPROF_ADDR": "127.0.0.1:0", "SELF_SAMPLE_INTERVAL": "0"})
	addr := ""
	for _, line := range strings.Split(logs.String(), "\n") {
		var l struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "profiler listening" {
			addr = l.Addr
		}
	}
	if addr == "" || strings.HasSuffix(addr, ":0") {
		t.Fatalf("no profiler address logged:\n%s", logs)
	}
	res, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "telemetry") {
		t.Fatalf("pprof cmdline: %d %q", res.StatusCode, body)
	}
	res, err = http.Get(base + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("the API's address answers the profiler: %d", res.StatusCode)
	}
	// Both listen on loopback: by default (ALLOWED_HOSTS unset) a name
	// other than localhost, as a DNS-rebinding page sends, is refused
	// (421), on the profiler too; localhost and IP addresses pass.
	for _, c := range []struct {
		url, host string
		want      int
	}{
		{base + "/healthz", "evil.example", http.StatusMisdirectedRequest},
		{base + "/healthz", "localhost:8080", http.StatusOK},
		{"http://" + addr + "/debug/pprof/cmdline", "evil.example:6060", http.StatusMisdirectedRequest},
		{"http://" + addr + "/debug/pprof/cmdline", "localhost", http.StatusOK},
	} {
		req, err := http.NewRequest(http.MethodGet, c.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = c.host
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != c.want {
			t.Errorf("%s with Host %s: %d, want %d", c.url, c.host, res.StatusCode, c.want)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if res, err := http.Get("http://" + addr + "/debug/pprof/cmdline"); err == nil {
		res.Body.Close()
		t.Fatalf("the profiler still answers after the server stopped: %d", res.StatusCode)
	}
}

// A PPROF_ADDR that cannot be listened on stops serve with an error naming it.
func TestServePprofAddrTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = run(context.Background(), []string{"serve"}, env(map[string]string{"DATABASE_URL": testdb.URL(t),
		"LISTEN_ADDR": "127.0.0.1:0", "JWT_SECRET": testSecret, "PPROF_ADDR": ln.Addr().String(), "SELF_SAMPLE_INTERVAL": "0"}),
		io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "PPROF_ADDR") {
		t.Fatalf("serve with PPROF_ADDR taken: %v", err)
	}
}
