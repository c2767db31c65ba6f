package config

import (
	"strings"
	"testing"
)

// BODY_MIN_RATE and EXPORT_MIN_RATE take 0 (off) to 16 MiB/s: a larger
// rate leaves less than 63 ms of slack and would cut every large body or
// export.
func TestMinRates(t *testing.T) {
	for _, name := range []string{"BODY_MIN_RATE", "EXPORT_MIN_RATE"} {
		field := func(c Config) int64 {
			if name == "BODY_MIN_RATE" {
				return c.BodyMinRate
			}
			return c.ExportMinRate
		}
		for v, want := range map[string]int64{"0": 0, "1": 1, "32768": 32768, "16777216": 16 << 20} {
			c, err := Load(envOf(map[string]string{name: v}))
			if err != nil || field(c) != want {
				t.Errorf("%s=%q: %d %v, want %d", name, v, field(c), err, want)
			}
		}
		for _, v := range []string{"-1", "16777217", "1073741824", "9223372036854775807", "1MiB", "2.5"} {
			_, err := Load(envOf(map[string]string{name: v}))
			if err == nil || !strings.Contains(err.Error(), name+` must be 0 (off) or a rate in bytes a second up to 16777216 (16 MiB/s), got "`+v+`"`) {
				t.Errorf("%s=%q: got %v, want its error", name, v, err)
			}
		}
	}
	c, err := Load(envOf(nil))
	if err != nil || c.BodyMinRate != 262144 || c.ExportMinRate != 32768 {
		t.Errorf("defaults: %d %d %v", c.BodyMinRate, c.ExportMinRate, err)
	}
}
