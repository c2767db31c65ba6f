-- The elapsed orders and an elapsed filter below the slow-row threshold
-- (0.25 s, postgres.slowElapsed) had no index since migration 00012 dropped
-- the covering measurements_elapsed_idx for ingest: at 10 M rows the list
-- by elapsed ascending sorted the 7-day window's 2.2 M rows (4.4 s) and a
-- filter of elapsed >= 0.1 counted them from the heap (3.5 s; grouped 5 s).
--
-- This index is keyed by the histogram bucket of elapsed
-- (telemetry_elapsed_bucket, 5 % wide, about 270 occupied at these
-- elapsed values) and then started_at, not by elapsed itself: rows arrive
-- roughly in started_at order, so each insert goes to the right end of
-- its bucket's range, a few hundred hot leaf pages, instead of a random
-- leaf of an index larger than shared_buffers (the cost that removed the
-- elapsed index). The bucket never decreases as elapsed grows
-- (TestMeasurementsElapsedBucketIndex checks every bucket edge), so the
-- index read bucket by bucket, each bucket sorted by (elapsed, id) on its
-- own, is the elapsed order; and elapsed >= x implies bucket(elapsed) >=
-- bucket(x), the bound the queries add beside the filter. elapsed and
-- ended_at are included so that the filter's count reads the index alone.
--
-- An index evaluates its expression for every row version still visible to
-- some transaction, dead ones included: the values above the CHECK's
-- 253402300799 s that migration 00007 replaced can still be there (they
-- were, in a test, while parallel tests held old snapshots), and ln(elapsed
-- / 1e-6) overflows float8 above 1.8e302. The function therefore gives
-- values above 1e300 the bucket of 1e300: the same answer for every value
-- the table accepts (and for NULL: 32767, as before, since least() skips
-- the NULL of ln(NULL)), still non-decreasing.

-- +goose Up
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION telemetry_elapsed_bucket(elapsed double precision) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE WHEN elapsed <= 1e-6::float8 THEN 0
                 WHEN elapsed > 1e300::float8 THEN least(1 + floor(ln(1e300::float8 / 1e-6::float8) / ln(1.05::float8)), 32767)
                 ELSE least(1 + floor(ln(elapsed / 1e-6::float8) / ln(1.05::float8)), 32767) END)::smallint
$$;
-- +goose StatementEnd
CREATE INDEX measurements_elapsed_bucket_idx ON measurements (telemetry_elapsed_bucket(elapsed), started_at)
    INCLUDE (elapsed, ended_at);

-- +goose Down
DROP INDEX measurements_elapsed_bucket_idx;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION telemetry_elapsed_bucket(elapsed double precision) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE WHEN elapsed <= 1e-6::float8 THEN 0
                 ELSE least(1 + floor(ln(elapsed / 1e-6::float8) / ln(1.05::float8)), 32767) END)::smallint
$$;
-- +goose StatementEnd
