package postgres

import (
	"context"
	"time"
)

// halt stops the work the stores run on deadlines of their own: a combined
// flows round, a device batch, the round trip that carries a measurement
// batch's COMMIT. No request's cancellation may cut that work (it serves
// several requests, or a COMMIT may already be on its way), so without halt
// a write waiting on a lock would hold the process past SHUTDOWN_TIMEOUT
// for up to its own deadline (2 minutes for a flows round), and the pool's
// Close with it. Store.Abort cancels it, once the server has given up on
// its requests: their clients' connections are closed, so a round cut then
// answers nobody.
type halt struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newHalt() *halt {
	ctx, cancel := context.WithCancel(context.Background())
	return &halt{ctx: ctx, cancel: cancel}
}

// detach gives ctx's values without its cancellation, cancelled after d or
// by Abort.
func (h *halt) detach(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	stop := context.AfterFunc(h.ctx, cancel)
	return c, func() { stop(); cancel() }
}

// Abort cuts the writes still running on their own deadlines (see halt).
// For a shutdown that has run out of SHUTDOWN_TIMEOUT and closed the
// server's connections: call it before Close, which waits for the pool's
// connections to come back.
func (s *Store) Abort() { s.halt.cancel() }
