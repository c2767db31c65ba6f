-- Idempotency keys (IETF httpapi draft "The Idempotency-Key HTTP Header
-- Field"): the first successful answer of a keyed write (POST /flows,
-- POST /api/measurements, POST /apiv0.1/events/register and commit,
-- PUT /mrd/{device_id}/metrics), recorded in the write's own transaction,
-- so that a repeat of the request is answered from here without writing
-- again. README "Idempotency" has the rules.

-- +goose Up
CREATE TABLE idempotency_keys (
    key          text        NOT NULL,
    endpoint     text        NOT NULL,
    request_hash bytea       NOT NULL,
    status       integer     NOT NULL,
    body         bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (key),
    CONSTRAINT idempotency_keys_key_printable CHECK (key ~ '^[ -~]{1,255}$'),
    CONSTRAINT idempotency_keys_hash_sha256 CHECK (octet_length(request_hash) = 32),
    CONSTRAINT idempotency_keys_status_success CHECK (status BETWEEN 200 AND 299),
    CONSTRAINT idempotency_keys_expiry CHECK (expires_at > created_at)
);

COMMENT ON TABLE idempotency_keys IS
    'Answers of keyed writes (Idempotency-Key request header): one row per key, inserted in the same transaction as the write it answers, so a row exists exactly when its write was committed. A repeat with the same key and the same method, path and body is answered from here (status and body) without writing again; the same key with another request is refused (422). Refused writes are never recorded. Rows live IDEMPOTENCY_TTL (default 24 h): an expired row is ignored, overwritten when its key is used again, and deleted lazily (each keyed request deletes up to 10 expired rows).';
COMMENT ON COLUMN idempotency_keys.key IS 'The client''s Idempotency-Key: 1 to 255 printable ASCII characters. One key names one request of any endpoint.';
COMMENT ON COLUMN idempotency_keys.endpoint IS 'Method and path of the request that recorded the key, e.g. POST /flows or PUT /mrd/node01/metrics.';
COMMENT ON COLUMN idempotency_keys.request_hash IS 'SHA-256 of the request''s method, path and body (method, a space, the path, a newline, the body bytes as received): a repeat must have the same.';
COMMENT ON COLUMN idempotency_keys.status IS 'HTTP status of the recorded answer (always a success).';
COMMENT ON COLUMN idempotency_keys.body IS 'The recorded answer''s body, the exact JSON bytes sent (e.g. {"received":3}).';
COMMENT ON COLUMN idempotency_keys.created_at IS 'When the write that recorded the key started its transaction.';
COMMENT ON COLUMN idempotency_keys.expires_at IS 'created_at + IDEMPOTENCY_TTL: from then on the key is free again and the row may be deleted.';

-- Lazy expiry finds the oldest expired rows.
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

-- +goose Down
DROP TABLE IF EXISTS idempotency_keys;
