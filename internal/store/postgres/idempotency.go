package postgres

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/telemetry/telemetry/internal/store"
	"github.com/telemetry/telemetry/internal/store/db"
)

// Idempotency reads the answers keyed writes recorded
// (queries/idempotency.sql). The writes record them through claimKeys, in
// their own transactions.
type Idempotency struct {
	q *db.Queries
}

func newIdempotency(_ *pgxpool.Pool, q *db.Queries) *Idempotency { return &Idempotency{q: q} }

// Answer is the answer recorded under key; ErrNotFound when there is none
// or it has expired. It also deletes a few expired keys (lazy expiry).
func (s *Idempotency) Answer(ctx context.Context, key string) (store.IdempotentAnswer, error) {
	r, err := s.q.GetIdempotentAnswer(ctx, key)
	if err != nil {
		return store.IdempotentAnswer{}, wrap("read idempotency key", err)
	}
	return store.IdempotentAnswer{Key: r.Key, Endpoint: r.Endpoint, Hash: r.RequestHash, Status: int(r.Status),
		Body: r.Body, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt}, nil
}

// keyClaim is one keyed write of a transaction and its result (what its
// answer's body is made of).
type keyClaim struct {
	idem   *store.Idempotent
	result any
}

// claimKeys records the claims' answers in the transaction q runs in and
// reports, for each claim, whether its key was free: a claim whose key
// another request holds (committed, or in a transaction this one waited
// for) is not recorded, and its write must not be done. A key claimed
// twice in one call is taken for its second claim. The keys are inserted in
// order, so that transactions claiming overlapping keys cannot deadlock.
func claimKeys(ctx context.Context, q *db.Queries, claims []keyClaim) ([]bool, error) {
	free := make([]bool, len(claims))
	order := make([]int, 0, len(claims))
	seen := make(map[string]bool, len(claims))
	for i, c := range claims {
		if !seen[c.idem.Key] {
			seen[c.idem.Key] = true
			order = append(order, i)
		}
	}
	sort.Slice(order, func(a, b int) bool { return claims[order[a]].idem.Key < claims[order[b]].idem.Key })
	n := len(order)
	p := db.ClaimIdempotencyKeysParams{
		Keys:          make([]string, n),
		Endpoints:     make([]string, n),
		RequestHashes: make([][]byte, n),
		Statuses:      make([]int32, n),
		Bodies:        make([][]byte, n),
		TtlSeconds:    make([]float64, n),
	}
	for j, i := range order {
		idem := claims[i].idem
		body, err := idem.Body(claims[i].result)
		if err != nil {
			return nil, fmt.Errorf("idempotency key %q: answer body: %w", idem.Key, err)
		}
		p.Keys[j], p.Endpoints[j], p.RequestHashes[j] = idem.Key, idem.Endpoint, idem.Hash
		p.Statuses[j], p.Bodies[j], p.TtlSeconds[j] = int32(idem.Status), body, idem.TTL.Seconds()
	}
	claimed, err := q.ClaimIdempotencyKeys(ctx, p)
	if err != nil {
		return nil, err
	}
	got := make(map[string]bool, len(claimed))
	for _, k := range claimed {
		got[k] = true
	}
	for _, i := range order {
		free[i] = got[claims[i].idem.Key]
	}
	return free, nil
}

// claimKey is claimKeys for a transaction with one keyed write:
// store.ErrKeyInUse when its key is taken.
func claimKey(ctx context.Context, q *db.Queries, idem *store.Idempotent, result any) error {
	free, err := claimKeys(ctx, q, []keyClaim{{idem: idem, result: result}})
	if err != nil {
		return err
	}
	if !free[0] {
		return store.ErrKeyInUse
	}
	return nil
}

// inKeyedTx runs fn, whose statements must be atomic together, again when
// PostgreSQL aborts it for a deadlock or a serialization failure (see
// withRetry): in a transaction when the write is keyed (its key is recorded
// with it), on q as it is otherwise, so that a write of one statement stays
// one round trip without a key.
func inKeyedTx(ctx context.Context, pool *pgxpool.Pool, q *db.Queries, keyed bool, fn func(q *db.Queries) error) error {
	if !keyed {
		return withRetry(ctx, func() error { return fn(q) })
	}
	return withRetry(ctx, func() error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return fn(q.WithTx(tx)) })
	})
}
