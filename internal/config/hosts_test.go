package config

import (
	"fmt"
	"strings"
	"testing"
)

// ALLOWED_HOSTS: its default follows LISTEN_ADDR (and PPROF_ADDR for the
// profiler), a list is canonical, and a bad entry names the variable and
// the value once.
func TestAllowedHosts(t *testing.T) {
	load := func(env map[string]string) Config {
		t.Helper()
		c, err := Load(func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for addr, want := range map[string]string{
		"":                "*", // :8080
		":8080":           "*",
		"0.0.0.0:8080":    "*",
		"[::]:8080":       "*",
		"10.0.0.5:8080":   "*",
		"127.0.0.1:8080":  "localhost",
		"127.0.0.5:8080":  "localhost",
		"[::1]:8080":      "localhost",
		"localhost:8080":  "localhost",
		"LocalHost:8080":  "localhost",
		"myhost.lan:8080": "*",
	} {
		c := load(map[string]string{"LISTEN_ADDR": addr})
		if got := c.AllowedHosts.String(); got != want {
			t.Errorf("LISTEN_ADDR=%q: allowed hosts %q, want %q", addr, got, want)
		}
	}
	c := load(map[string]string{"LISTEN_ADDR": ":8080", "PPROF_ADDR": "127.0.0.1:6060"})
	if c.AllowedHosts.String() != "*" || c.PprofHosts().String() != "localhost" {
		t.Errorf("LISTEN_ADDR :8080, PPROF_ADDR 127.0.0.1:6060: %q, %q", c.AllowedHosts, c.PprofHosts())
	}
	c = load(map[string]string{"LISTEN_ADDR": "127.0.0.1:8080", "PPROF_ADDR": "127.0.0.1:6060",
		"ALLOWED_HOSTS": " Telemetry.Example.com. ,*.Apps.example:8443,[::1]:8080,10.0.0.5,"})
	want := "telemetry.example.com,*.apps.example:8443,[::1]:8080,10.0.0.5"
	if c.AllowedHosts.String() != want || c.PprofHosts().String() != want+",localhost" {
		t.Errorf("ALLOWED_HOSTS: %q, pprof %q, want %q and localhost on the loopback profiler", c.AllowedHosts, c.PprofHosts(), want)
	}
	// A profiler on loopback answers to localhost whatever ALLOWED_HOSTS
	// says (go tool pprof http://localhost:6060 got a 421); the API does
	// not, nor a profiler elsewhere.
	if h := c.PprofHosts(); !h.Allow("localhost:6060") || c.AllowedHosts.Allow("localhost:8080") {
		t.Errorf("pprof allows localhost: %v, the API: %v", h.Allow("localhost:6060"), c.AllowedHosts.Allow("localhost:8080"))
	}
	c = load(map[string]string{"LISTEN_ADDR": "127.0.0.1:8080", "PPROF_ADDR": "10.0.0.5:6060", "ALLOWED_HOSTS": "telemetry.example.com"})
	if got := c.PprofHosts().String(); got != "telemetry.example.com" {
		t.Errorf("a profiler off loopback: %q, want ALLOWED_HOSTS alone", got)
	}
	c = load(map[string]string{"LISTEN_ADDR": "127.0.0.1:8080", "PPROF_ADDR": "127.0.0.1:6060", "ALLOWED_HOSTS": "localhost,a.example"})
	if got := c.PprofHosts().String(); got != "localhost,a.example" {
		t.Errorf("ALLOWED_HOSTS with localhost: pprof %q, want it as is", got)
	}
	if c := load(map[string]string{"LISTEN_ADDR": "127.0.0.1:8080", "ALLOWED_HOSTS": "a.example, *"}); !c.AllowedHosts.Any() {
		t.Errorf("ALLOWED_HOSTS with *: %q", c.AllowedHosts)
	}
	for _, bad := range []string{",", "a.example:0", "a.example:65536", "a.example:x", "a.example:", "a..example", "*.", "**.example",
		"a b.example", "::1", "[::1", "[::1]x", "[::1]:", "[a.example]", "https://a.example", "a.example/ui", "a.example:80:80", strings.Repeat("a", 64) + ".example"} {
		_, err := Load(func(k string) string {
			if k == "ALLOWED_HOSTS" {
				return bad
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), "ALLOWED_HOSTS") || strings.Count(err.Error(), fmt.Sprintf("%q", bad)) != 1 {
			t.Errorf("ALLOWED_HOSTS=%q: error %v, want one naming the variable and the value once", bad, err)
		}
	}
}

func TestHostsAllow(t *testing.T) {
	h, err := parseHosts("telemetry.example.com,*.apps.example:8443,localhost")
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"":                           true, // HTTP/1.0 without Host: no browser
		"telemetry.example.com":      true,
		"TELEMETRY.example.com.:80":  true,
		"localhost:1":                true,
		"x.apps.example:8443":        true,
		"x.y.apps.example:8443":      true,
		"apps.example:8443":          false,
		"x.apps.example":             false,
		"xapps.example:8443":         false,
		"evil.example":               false,
		"telemetry.example.com.evil": false,
		"127.0.0.1":                  true,
		"192.0.2.1:8080":             true,
		"[::1]:8080":                 true,
		"[::1]":                      true,
		"::1":                        true,
		"[fe80::1%25eth0]:80":        true,
		"0x7f.1":                     false,
		"2130706433":                 false,
		"a:b:c":                      false,
	} {
		if got := h.Allow(host); got != want {
			t.Errorf("Allow(%q) = %v, want %v", host, got, want)
		}
	}
	if !(Hosts{}).Allow("anything.example") || !AnyHost.Allow("x") || LocalHosts.Allow("evil.example") || !LocalHosts.Allow("localhost:8080") {
		t.Error("AnyHost, the zero Hosts or LocalHosts")
	}
}
