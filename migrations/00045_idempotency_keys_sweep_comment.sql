-- The maintenance pass now deletes expired answers of keyed writes
-- (queries/lifecycle.sql, DeleteExpiredIdempotencyKeys): before, only each
-- keyed request deleted up to 10, and once keyed writes stopped the rest
-- stayed for good (found by the operations audit). The table's comment said
-- they were deleted lazily only; it now names both. Comment only.

-- +goose Up
COMMENT ON TABLE idempotency_keys IS
    'Answers of keyed writes (Idempotency-Key request header): one row per key, inserted in the same transaction as the write it answers, so a row exists exactly when its write was committed. A repeat with the same key and the same method, path and body is answered from here (status and body) without writing again; the same key with another request is refused (422). Refused writes are never recorded. Rows live IDEMPOTENCY_TTL (default 24 h): an expired row is ignored, overwritten when its key is used again, and deleted by the next keyed request (up to 10 each) or maintenance pass.';

-- +goose Down
COMMENT ON TABLE idempotency_keys IS
    'Answers of keyed writes (Idempotency-Key request header): one row per key, inserted in the same transaction as the write it answers, so a row exists exactly when its write was committed. A repeat with the same key and the same method, path and body is answered from here (status and body) without writing again; the same key with another request is refused (422). Refused writes are never recorded. Rows live IDEMPOTENCY_TTL (default 24 h): an expired row is ignored, overwritten when its key is used again, and deleted lazily (each keyed request deletes up to 10 expired rows).';
