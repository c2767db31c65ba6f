package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/telemetry/telemetry/internal/store"
)

// The pause between two attempts doubles from the first to the last.
const (
	firstDatabaseRetry = 250 * time.Millisecond
	lastDatabaseRetry  = 2 * time.Second
)

// waitForDatabase pings until the database answers, for up to wait
// (DATABASE_WAIT): started beside a database container, migrate and serve
// may come up before its server accepts TCP connections (the image's
// initialisation runs a server on a Unix socket only, then restarts it).
// Each failed attempt is logged. Only unavailability is waited out: a
// refused login or an unknown database fails at once, since time does not
// mend them. wait 0 tries once. An attempt may itself take up to the
// connect timeout, so the whole wait can exceed wait by that much.
func waitForDatabase(ctx context.Context, ping func(context.Context) error, wait time.Duration, log *slog.Logger) error {
	deadline := time.Now().Add(wait)
	pause := firstDatabaseRetry
	for attempt := 1; ; attempt++ {
		err := ping(ctx)
		if err == nil {
			if attempt > 1 {
				log.Info("database reachable", "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, store.ErrUnavailable) {
			return fmt.Errorf("database: %w", err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			if wait == 0 {
				return fmt.Errorf("database unreachable (DATABASE_WAIT is 0: no retries): %w", err)
			}
			return fmt.Errorf("database still unreachable after %d attempts in %s (DATABASE_WAIT=%s): %w", attempt, wait, wait, err)
		}
		pause = min(pause, left)
		log.Warn("database unreachable, retrying", "attempt", attempt, "retry_in", pause.Round(time.Millisecond).String(),
			"gives_up_in", left.Round(time.Millisecond).String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, lastDatabaseRetry)
	}
}
