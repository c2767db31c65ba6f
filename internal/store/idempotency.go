package store

import (
	"context"
	"errors"
	"time"
)

// Idempotency keys (the IETF httpapi draft "The Idempotency-Key HTTP Header
// Field"): a write that carries a key records its answer under it in the
// write's own transaction, so that the answer exists exactly when the write
// does, and a repeat of the request can be answered from the record
// without writing again.
//
// The writes that take a key (Flows.Add, Measurements.Insert,
// Events.Register, Events.Commit, Devices.Report) find it in their context
// (WithIdempotent), so that their signatures, and every other caller's use
// of them, stay as they are; a write whose context carries none behaves as
// before.

// Idempotent is a keyed write's request for its answer to be recorded.
type Idempotent struct {
	// Key is the client's Idempotency-Key (1 to 255 printable ASCII
	// characters). One key names one request: keys are not scoped by
	// endpoint, so the same key on another endpoint is a mismatch.
	Key string
	// Endpoint is the request's method and path ("POST /flows"), kept
	// for people reading the table.
	Endpoint string
	// Hash is the SHA-256 of the request's method, path and body: a repeat
	// must match it.
	Hash []byte
	// Status is the answer's HTTP status (a success: errors are never
	// recorded, so the client may correct the request and retry).
	Status int
	// TTL is how long the answer is kept.
	TTL time.Duration
	// Body gives the answer's body from the write's result, inside the
	// write's transaction: nil for Flows.Add, Events.Commit and
	// Devices.Report, the new ids ([]int64) for Measurements.Insert, the
	// new run's uuid.UUID for Events.Register.
	Body func(result any) ([]byte, error)
}

// IdempotentAnswer is an answer recorded under a key.
type IdempotentAnswer struct {
	Key       string
	Endpoint  string
	Hash      []byte
	Status    int
	Body      []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}

// IdempotencyStore reads the answers recorded under keys (the writes
// record them).
type IdempotencyStore interface {
	// Answer is the answer recorded under key, ErrNotFound when there is
	// none or it has expired.
	Answer(ctx context.Context, key string) (IdempotentAnswer, error)
}

// ErrKeyInUse: the write was not done because another request holds its
// Idempotency-Key: that request committed first (read its answer), or was
// combined into the same commit (it is answered once the commit is done).
// Nothing of the refused write is stored.
var ErrKeyInUse error = &Error{Op: "record idempotency key", Kind: ErrConflict,
	Detail: "another request with the same Idempotency-Key was being processed",
	Err:    errors.New("idempotency key already recorded")}

type idempotentKey struct{}

// WithIdempotent asks the write run with the returned context to record its
// answer as idem says, in its own transaction. A nil idem changes nothing.
func WithIdempotent(ctx context.Context, idem *Idempotent) context.Context {
	if idem == nil {
		return ctx
	}
	return context.WithValue(ctx, idempotentKey{}, idem)
}

// IdempotentFrom is the Idempotent a write's context carries, or nil.
func IdempotentFrom(ctx context.Context) *Idempotent {
	idem, _ := ctx.Value(idempotentKey{}).(*Idempotent)
	return idem
}
