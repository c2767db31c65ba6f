-- The maintenance lease's table comment (migration 00009), which analysts
-- read with \d+, said the row is deleted at the end of a pass. Since the
-- full-disk audit the release lets the lease lapse and keeps the row
-- (queries/lifecycle.sql, ReleaseMaintenanceLease: a table emptied at every
-- release was truncated by autovacuum, and taking the lease again had to
-- extend the file, which a full disk refuses). Comment only.

-- +goose Up
COMMENT ON TABLE maintenance_lease IS
    'Who runs the maintenance pass (retention and compression) now: at most one row per name, taken by an atomic INSERT .. ON CONFLICT DO UPDATE .. WHERE expires_at <= now(), renewed while the pass works and let lapse at its end (expires_at set to now(); the row is kept, so that taking the lease never needs a new page: docs/lifecycle.md, "A full disk"). A crashed pass''s lease lapses at expires_at.';

-- +goose Down
COMMENT ON TABLE maintenance_lease IS
    'Who runs the maintenance pass (retention and compression) now: at most one row per name, taken by an atomic INSERT .. ON CONFLICT DO UPDATE .. WHERE expires_at <= now(), renewed while the pass works and deleted at its end. A crashed pass''s lease lapses at expires_at.';
