package api

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// warnEvery is how often a failure of the same kind and operation is logged
// with its cause while it lasts: during a database outage every request
// fails the same way, and one line per request (beside the request's own
// line, which stays) would flood the log with copies of one cause.
const warnEvery = 10 * time.Second

// warnLimiter logs the first failure of a kind (a message and an operation,
// a bounded set: both are constants of the code) at once, then at most one
// line of that kind every warnEvery, which says how many it stood for
// ("suppressed": the lines not written since the last one, written at
// "suppressed_since"). Nothing of a request is lost: its own request line
// still carries its status and id. Only failures take its lock.
type warnLimiter struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu    sync.Mutex
	kinds map[warnKind]*warnState
}

type warnKind struct{ msg, op string }

type warnState struct {
	last       time.Time
	suppressed int
}

func newWarnLimiter(log *slog.Logger) *warnLimiter {
	return &warnLimiter{log: log, every: warnEvery, now: time.Now, kinds: map[warnKind]*warnState{}}
}

// warn logs msg at WARN with op and args, unless a line of the same msg and
// op was written less than every ago.
func (w *warnLimiter) warn(ctx context.Context, msg, op string, args ...any) {
	now := w.now()
	k := warnKind{msg, op}
	w.mu.Lock()
	st := w.kinds[k]
	if st == nil {
		st = &warnState{}
		w.kinds[k] = st
	} else if now.Sub(st.last) < w.every {
		st.suppressed++
		w.mu.Unlock()
		return
	}
	suppressed, since := st.suppressed, st.last
	st.last, st.suppressed = now, 0
	w.mu.Unlock()
	if op != "" {
		args = append(args, "op", op)
	}
	if suppressed > 0 {
		// Since when: the failures suppressed may be those of an outage
		// that ended long before this line.
		args = append(args, "suppressed", suppressed, "suppressed_since", since.UTC().Format(time.RFC3339))
	}
	w.log.WarnContext(ctx, msg, args...)
}
