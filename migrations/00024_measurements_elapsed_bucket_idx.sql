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

-- +goose Up
CREATE INDEX measurements_elapsed_bucket_idx ON measurements (telemetry_elapsed_bucket(elapsed), started_at)
    INCLUDE (elapsed, ended_at);

-- +goose Down
DROP INDEX measurements_elapsed_bucket_idx;
