-- The list with an elapsed filter at or above the slow-row threshold
-- (0.25 s, postgres.slowElapsed; migration 00012) in its time orders.
--
-- measurements_slow_idx is keyed by elapsed: it finds the slow rows, not
-- the newest of them. The default list (endedAt, descending) with
-- elapsed=1 walked measurements_end_idx back from the window's end and
-- dropped every row under 1 s: at 10 M rows (0.1 % of them at or above 1 s)
-- 49,728 rows and 2,100 heap pages for a page of 50, 70 ms alone and p99
-- 279 ms under 4 clients (docs/performance.md). The same two orders over the
-- slow rows only read the slow rows of the window from their end, and the
-- page's exact total counts them from the index alone (the other time and
-- elapsed are included): p99 36 ms for either order (242 ms when only
-- elapsed was included: the count then went back to measurements_slow_idx,
-- a parallel scan of every row at or above the filter). They hold the slow
-- rows alone (0.8 % of the rows at 10 M, 3.7 MB each), so ingest pays
-- nearly nothing for them.

-- +goose Up
CREATE INDEX measurements_slow_end_idx ON measurements (ended_at, id) INCLUDE (started_at, elapsed) WHERE elapsed >= 0.25;
CREATE INDEX measurements_slow_start_idx ON measurements (started_at, id) INCLUDE (ended_at, elapsed) WHERE elapsed >= 0.25;

-- +goose Down
DROP INDEX measurements_slow_start_idx;
DROP INDEX measurements_slow_end_idx;
