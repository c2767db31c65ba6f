-- Cheaper ingest for measurements: narrower indexes on the raw table.
--
-- Migration 00005 gave measurements four wide covering btrees (end, start,
-- name, elapsed, the first two and the last with five INCLUDE columns). Every
-- COPY'd row paid all four, and the elapsed one is keyed by a random value,
-- so each row dirtied a random leaf page of an index larger than
-- shared_buffers at 10 M rows. Measured per 10,000-record batch on the
-- shared 2-core machine (docs/measurements.md, "Ingest"): COPY into an
-- unindexed table of the same columns 134-140 ms, into measurements with the
-- four indexes 444-482 ms.
--
-- Now:
-- - measurements_end_idx and measurements_start_idx keep their keys without
--   the INCLUDE columns: both are appended at their right edge (times
--   arrive roughly in order), they serve the list orders, the window edges
--   and the late rows; the edges (less than an hour of rows, stored next to
--   each other) fetch their rows from the heap instead.
-- - measurements_elapsed_idx, the random one, is replaced by
--   measurements_slow_idx: the same covering index over the rows with
--   elapsed >= 0.25 s only. An elapsed filter at or above 0.25 s (slow
--   requests: what the filter is for) reads it alone, as before; the list in
--   elapsed-descending order reads it first (the store falls back to the
--   rows when the slow rows do not fill the page). A filter below 0.25 s
--   and the ascending elapsed order read the window's rows (as the method
--   order always did). The threshold is postgres.slowElapsed in Go; a test
--   checks that both agree.
-- - measurements_name_idx stays: a rare name's measurements would otherwise
--   cost a scan of the window.

-- +goose Up
DROP INDEX measurements_end_idx;
DROP INDEX measurements_start_idx;
DROP INDEX measurements_elapsed_idx;
CREATE INDEX measurements_end_idx ON measurements (ended_at, id);
CREATE INDEX measurements_start_idx ON measurements (started_at, id);
CREATE INDEX measurements_slow_idx ON measurements (elapsed, id) INCLUDE (started_at, ended_at, app, name, method)
    WHERE elapsed >= 0.25;

-- +goose Down
DROP INDEX measurements_slow_idx;
DROP INDEX measurements_start_idx;
DROP INDEX measurements_end_idx;
CREATE INDEX measurements_end_idx ON measurements (ended_at, id) INCLUDE (started_at, elapsed, app, name, method);
CREATE INDEX measurements_start_idx ON measurements (started_at, id) INCLUDE (ended_at, elapsed, app, name, method);
CREATE INDEX measurements_elapsed_idx ON measurements (elapsed, id) INCLUDE (started_at, ended_at, app, name, method);
