package pgcluster

import (
	"slices"
	"testing"
)

func TestInitdbLocale(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"", []string{"--locale=C"}},
		{"C", []string{"--locale=C"}},
		{"C.UTF-8", []string{"--locale=C.UTF-8"}},
		{"icu:en-US", []string{"--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en-US"}},
	} {
		got, err := initdbLocale(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("initdbLocale(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"icu:", "C.UTF-8 --auth=md5", "x=y"} {
		if got, err := initdbLocale(bad); err == nil {
			t.Errorf("initdbLocale(%q) = %q, want an error", bad, got)
		}
	}
}

// The method of a pg_hba.conf rule is found after the address of a host
// rule, and after the mask when the address has none.
func TestHBAMethod(t *testing.T) {
	for _, c := range []struct{ line, method string }{
		{"local   all             all                                     trust", "trust"},
		{"host    all             all             127.0.0.1/32            trust", "trust"},
		{"host    replication     all             ::1/128                 scram-sha-256", "scram-sha-256"},
		{"host    all             all             127.0.0.1 255.255.255.255  trust  # mask apart", "trust"},
		{"host    all             trust           127.0.0.1/32            md5", "md5"},
		{"hostssl all             all             localhost               cert clientcert=verify-full", "cert"},
		{"# host all all 0.0.0.0/0 trust", ""},
		{"", ""},
	} {
		if got := parseHBALine(c.line).method(); got != c.method {
			t.Errorf("%q: method %q, want %q", c.line, got, c.method)
		}
	}
}
