// Package warnlimit keeps a failure that repeats from flooding the log:
// during a database outage every request, every self-profiling flush and
// every runtime sample fails the same way, and one line each would bury
// the cause under copies of it.
package warnlimit

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Every is how often a failure of the same kind is logged with its cause
// while it lasts.
const Every = 10 * time.Second

// Limiter logs the first failure of a kind (a message and an operation, a
// bounded set: both are constants of the code) at once, then at most one
// line of that kind every Every, which says how many it stood for
// ("suppressed": the lines not written since the last one, written at
// "suppressed_since"). What the lines would have counted is in the
// metrics; a request's own line still carries its status and id. Only
// failures take its lock.
type Limiter struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu    sync.Mutex
	kinds map[kind]*state
}

type kind struct {
	level slog.Level
	msg   string
	op    string
}

type state struct {
	last       time.Time
	suppressed int
}

// New returns a Limiter that writes to log.
func New(log *slog.Logger) *Limiter {
	return &Limiter{log: log, every: Every, now: time.Now, kinds: map[kind]*state{}}
}

// Warn logs msg at WARN with op ("" for none) and args, unless a line of
// the same msg and op was written less than Every ago.
func (l *Limiter) Warn(ctx context.Context, msg, op string, args ...any) {
	l.logAt(ctx, slog.LevelWarn, msg, op, args)
}

// Error is Warn at ERROR.
func (l *Limiter) Error(ctx context.Context, msg, op string, args ...any) {
	l.logAt(ctx, slog.LevelError, msg, op, args)
}

func (l *Limiter) logAt(ctx context.Context, level slog.Level, msg, op string, args []any) {
	now := l.now()
	k := kind{level, msg, op}
	l.mu.Lock()
	st := l.kinds[k]
	if st == nil {
		st = &state{}
		l.kinds[k] = st
	} else if now.Sub(st.last) < l.every {
		st.suppressed++
		l.mu.Unlock()
		return
	}
	suppressed, since := st.suppressed, st.last
	st.last, st.suppressed = now, 0
	l.mu.Unlock()
	if op != "" {
		args = append(args, "op", op)
	}
	if suppressed > 0 {
		// Since when: the failures suppressed may be those of an outage
		// that ended long before this line.
		args = append(args, "suppressed", suppressed, "suppressed_since", since.UTC().Format(time.RFC3339))
	}
	l.log.Log(ctx, level, msg, args...)
}
