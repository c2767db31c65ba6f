package postgres

import (
	"context"
	"sync"
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
	mu     sync.Mutex
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
	h.mu.Lock()
	hctx := h.ctx
	h.mu.Unlock()
	c, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	stop := context.AfterFunc(hctx, cancel)
	if hctx.Err() != nil {
		// After Abort: cut before it starts. AfterFunc cancels from a
		// goroutine of its own, by which time a round trip may have been
		// sent and its COMMIT gone through, answered as cancelled.
		cancel()
	}
	return c, func() { stop(); cancel() }
}

// Abort cuts the writes still running on their own deadlines (see halt),
// and every one started after it until Resume.
// For a shutdown that has run out of SHUTDOWN_TIMEOUT and closed the
// server's connections: call it before Close, which waits for the pool's
// connections to come back.
func (s *Store) Abort() {
	s.halt.mu.Lock()
	defer s.halt.mu.Unlock()
	s.halt.cancel()
}

// Resume lets the writes started from now on run to their own deadlines
// again, after Abort: the shutdown's last writes of its own (the
// self-profiling records of the requests Abort cut, and those still
// buffered), which a later Abort bounds.
func (s *Store) Resume() {
	s.halt.mu.Lock()
	defer s.halt.mu.Unlock()
	if s.halt.ctx.Err() != nil {
		s.halt.ctx, s.halt.cancel = context.WithCancel(context.Background())
	}
}
