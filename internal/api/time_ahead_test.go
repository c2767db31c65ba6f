package api

import (
	"testing"
	"time"
)

// TestFormatAhead: MAX_TIME_AHEAD written as an operator writes it.
func TestFormatAhead(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		24 * time.Hour:             "1d",
		48 * time.Hour:             "2d",
		36 * time.Hour:             "36h",
		time.Hour:                  "1h",
		90 * time.Minute:           "90m",
		time.Minute:                "1m",
		90 * time.Second:           "1m30s",
		36500 * 24 * time.Hour:     "36500d",
		25*time.Hour + time.Minute: "1501m",
	} {
		if got := formatAhead(d); got != want {
			t.Errorf("formatAhead(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestAheadLimit: now + MAX_TIME_AHEAD in UTC, cut to the second; off at 0.
func TestAheadLimit(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 30, 15, 700_000_000, time.FixedZone("x", 3600))
	latest, on := aheadLimit(now, 24*time.Hour)
	if want := time.Date(2026, 3, 2, 11, 30, 15, 0, time.UTC); !on || !latest.Equal(want) || latest.Location() != time.UTC {
		t.Fatalf("aheadLimit = %v %v, want %v true", latest, on, want)
	}
	if _, on := aheadLimit(now, 0); on {
		t.Fatal("aheadLimit with 0 is on")
	}
}
