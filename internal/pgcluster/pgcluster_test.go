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
