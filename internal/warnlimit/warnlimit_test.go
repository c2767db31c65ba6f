package warnlimit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"
)

// Once Every has passed, the next failure of a kind is logged with the
// number of lines it stands for; kinds (message, operation, level) count
// apart.
func TestLimiterSaysWhatItSuppressed(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewJSONHandler(&buf, nil)))
	now := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	ctx := context.Background()
	for range 5 {
		l.Warn(ctx, "database unavailable", "add flows", "error", "x")
		now = now.Add(time.Second)
	}
	l.Warn(ctx, "database unavailable", "list flows", "error", "x")
	l.Error(ctx, "database unavailable", "list flows", "error", "e")
	l.Error(ctx, "database unavailable", "list flows", "error", "e2")
	now = now.Add(Every)
	l.Warn(ctx, "database unavailable", "add flows", "error", "y")
	l.Warn(ctx, "database unavailable", "add flows", "error", "z")
	l.Error(ctx, "database unavailable", "list flows", "error", "e3")

	var got []string
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		s := "-"
		if n, ok := m["suppressed"].(float64); ok {
			s = fmt.Sprint(n, " since ", m["suppressed_since"])
		}
		got = append(got, fmt.Sprint(m["level"], " ", m["op"], " ", m["error"], " ", s))
	}
	want := []string{
		"WARN add flows x -",
		"WARN list flows x -",
		"ERROR list flows e -",
		"WARN add flows y 4 since 2026-12-05T00:00:00Z",
		"ERROR list flows e3 1 since 2026-12-05T00:00:05Z",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("lines\n%q\nwant\n%q", got, want)
	}
}
