package config

import (
	"strings"
	"testing"
	"time"
)

func TestLifecycleDefaults(t *testing.T) {
	c, err := Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]time.Duration{
		"MEASUREMENTS_RETENTION":    {c.MeasurementsRetention, 30 * 24 * time.Hour},
		"DEVICE_METRICS_RETENTION":  {c.DeviceMetricsRetention, 90 * 24 * time.Hour},
		"RUNTIME_SAMPLES_RETENTION": {c.RuntimeSamplesRetention, 7 * 24 * time.Hour},
		"EVENTS_RETENTION":          {c.EventsRetention, 0},
		"FLOWS_RETENTION":           {c.FlowsRetention, 0},
		"ROLLUPS_RETENTION":         {c.RollupsRetention, 400 * 24 * time.Hour},
		"COMPRESS_AFTER":            {c.CompressAfter, 7 * 24 * time.Hour},
		"MAINTENANCE_INTERVAL":      {c.MaintenanceInterval, time.Hour},
		"SEAL_INTERVAL":             {c.SealInterval, time.Minute},
	}
	for name, v := range want {
		if v[0] != v[1] {
			t.Errorf("%s defaults to %v, want %v", name, v[0], v[1])
		}
	}
}

func TestLifecycleValues(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"0": 0, "14d": 14 * 24 * time.Hour, "36h": 36 * time.Hour, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute,
		" 2d ": 48 * time.Hour, "0d": 0, "0s": 0,
	} {
		c, err := Load(func(k string) string {
			if k == "FLOWS_RETENTION" {
				return v
			}
			return ""
		})
		if err != nil || c.FlowsRetention != want {
			t.Errorf("FLOWS_RETENTION=%q: %v %v, want %v", v, c.FlowsRetention, err, want)
		}
	}
	// The two loops' intervals: 0 turns a loop off; at least a second for
	// SEAL_INTERVAL (TestLifecycleBadValues has the values below it).
	for _, v := range []struct {
		name, value string
		want        time.Duration
		got         func(Config) time.Duration
	}{
		{"SEAL_INTERVAL", "0", 0, func(c Config) time.Duration { return c.SealInterval }},
		{"SEAL_INTERVAL", "1s", time.Second, func(c Config) time.Duration { return c.SealInterval }},
		{"SEAL_INTERVAL", "1d", 24 * time.Hour, func(c Config) time.Duration { return c.SealInterval }},
		{"MAINTENANCE_INTERVAL", "0", 0, func(c Config) time.Duration { return c.MaintenanceInterval }},
		{"MAINTENANCE_INTERVAL", "30m", 30 * time.Minute, func(c Config) time.Duration { return c.MaintenanceInterval }},
	} {
		c, err := Load(envOf(map[string]string{v.name: v.value}))
		if err != nil || v.got(c) != v.want {
			t.Errorf("%s=%q: %v %v, want %v", v.name, v.value, v.got(c), err, v.want)
		}
	}
}

// A bad value is refused with a message naming its variable (Load's
// error stops every command, serve and maintain included).
func TestLifecycleBadValues(t *testing.T) {
	for _, c := range []struct{ name, value string }{
		{"MEASUREMENTS_RETENTION", "-1d"}, {"MEASUREMENTS_RETENTION", "14days"}, {"DEVICE_METRICS_RETENTION", "1.5d"},
		{"RUNTIME_SAMPLES_RETENTION", "30s"}, {"EVENTS_RETENTION", "forever"}, {"FLOWS_RETENTION", "-90m"},
		{"ROLLUPS_RETENTION", "99999999d"}, {"COMPRESS_AFTER", "7"}, {"MAINTENANCE_INTERVAL", "10ms"},
		{"MAINTENANCE_INTERVAL", "-1h"}, {"SEAL_INTERVAL", "500ms"}, {"SEAL_INTERVAL", "often"},
	} {
		_, err := Load(func(k string) string {
			if k == c.name {
				return c.value
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), c.name) || !strings.Contains(err.Error(), c.value) {
			t.Errorf("%s=%q: error %v, want one naming the variable and the value", c.name, c.value, err)
		}
	}
}
