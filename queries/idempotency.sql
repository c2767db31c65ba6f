-- Answers of keyed writes (Idempotency-Key), migrations/00007_idempotency.sql.

-- name: GetIdempotentAnswer :one
-- The answer recorded under a key, unless it has expired. The statement also
-- deletes up to 10 expired rows, skipping those another transaction holds:
-- every keyed request clears more than it adds, so the table stays at about
-- the keys of the last IDEMPOTENCY_TTL without a background job. (The
-- SELECT sees the table as it was before the DELETE; it only reads live
-- rows.)
WITH purged AS (
    DELETE FROM idempotency_keys
    WHERE key IN (
        SELECT e.key FROM idempotency_keys e
        WHERE e.expires_at <= now()
        ORDER BY e.expires_at
        LIMIT 10
        FOR UPDATE SKIP LOCKED
    )
)
SELECT k.key, k.endpoint, k.request_hash, k.status, k.body, k.created_at, k.expires_at
FROM idempotency_keys k
WHERE k.key = @key AND k.expires_at > now();

-- name: ClaimIdempotencyKeys :many
-- Records the answers of a transaction's keyed writes, in key order so that
-- concurrent transactions take the keys in the same order (no deadlock). A
-- key recorded by another transaction that has not committed yet makes this
-- statement wait for it. A key already recorded and not expired is left
-- alone and not returned: the caller must not write for it. An expired one
-- is overwritten. The keys must be distinct.
INSERT INTO idempotency_keys AS k (key, endpoint, request_hash, status, body, created_at, expires_at)
SELECT c.key, c.endpoint, c.request_hash, c.status, c.body, now(), now() + c.ttl_seconds * INTERVAL '1 second'
FROM ROWS FROM (
    unnest(@keys::text[]),
    unnest(@endpoints::text[]),
    unnest(@request_hashes::bytea[]),
    unnest(@statuses::integer[]),
    unnest(@bodies::bytea[]),
    unnest(@ttl_seconds::float8[])
) AS c (key, endpoint, request_hash, status, body, ttl_seconds)
ORDER BY c.key
ON CONFLICT (key) DO UPDATE
SET endpoint = excluded.endpoint, request_hash = excluded.request_hash, status = excluded.status,
    body = excluded.body, created_at = excluded.created_at, expires_at = excluded.expires_at
WHERE k.expires_at <= now()
RETURNING k.key;

-- name: DeleteIdempotencyKeys :exec
-- Takes back keys this transaction recorded for writes it then refused (a
-- device metric report of an unknown device): refusals are not recorded.
DELETE FROM idempotency_keys WHERE key = ANY (@keys::text[]);
