-- The grouped view's function (telemetry_measurements_grouped, migration
-- 00023) plans with enable_sort off, so that it groups its parts by hashing
-- instead of sorting them first.
--
-- Its plan is generic and kept per connection, planned from estimates of a
-- hundred rows per part; it sorted every part by (name, method) and grouped
-- the sorted rows. At 10 M rows a week's 2,000 sealed cells, each with its
-- histogram, took 1.5 ms to sort of a 6-8 ms statement (EXPLAIN ANALYZE
-- through auto_explain, warm cache). Hashed, the same calls took a fifth
-- to a quarter less in psql (the median of 3-4 blocks' p50, alternating
-- with the default: a week 10.2 -> 8.1 ms, a day 8.3 -> 6.2, 30 days
-- 23.7 -> 17.7, a week in the past with its last hour from the rows
-- 24.8 -> 18.5); a name filter (one group) and the other sort keys within
-- the noise. The sorts that order the page (the ranking's window and the
-- final ORDER BY) still run: enable_sort off only prices a sort out where
-- the planner has another way, as for collection_http (migrations 00015
-- and 00020).
-- telemetry_measurements_grouped_above (migration 00028) is left as it is:
-- the same setting did not change its time.

-- +goose Up
ALTER FUNCTION telemetry_measurements_grouped(
    timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz,
    text, text[], text, boolean, bigint, bigint)
    SET enable_sort = off;

-- +goose Down
ALTER FUNCTION telemetry_measurements_grouped(
    timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz, timestamptz,
    text, text[], text, boolean, bigint, bigint)
    RESET enable_sort;
